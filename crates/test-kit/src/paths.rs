//! Where things are: the repository, the cargo target directory of the running test or
//! benchmark, and the workspace's binaries in it.
//!
//! A library cannot use `CARGO_BIN_EXE_*` (cargo sets those only for a package's own
//! integration tests), so the binaries are found next to the running executable:
//! `target/<profile>/deps/<test>-<hash>` → `target/<profile>/<binary>`. A binary that is not
//! there yet is built with the cargo that runs the tests (`$CARGO`), in the same profile.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The repository root (the workspace root).
#[must_use]
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(Path::parent)
        .map_or_else(|| here.to_path_buf(), Path::to_path_buf)
}

/// `target/<profile>`: the directory holding the running test's binaries.
#[must_use]
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.pop();
    }
    dir
}

/// `target/tmp`, for logs and scratch files kept after a run.
#[must_use]
pub fn target_tmp_dir() -> PathBuf {
    let profile = profile_dir();
    profile
        .parent()
        .map_or_else(|| profile.join("tmp"), |target| target.join("tmp"))
}

/// Serialises builds of missing binaries within one test process.
static BUILD: Mutex<()> = Mutex::new(());

/// The path of the workspace binary `name` (of package `package`), built if missing.
///
/// `CONNECT_OPERATOR_BIN` / `CONNECT_SIM_BIN`-style overrides are read from `env_override`.
///
/// # Panics
/// When the binary is neither there nor buildable: a test cannot go on without it.
#[must_use]
pub fn workspace_binary(package: &str, name: &str, env_override: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_override).filter(|path| !path.is_empty()) {
        return PathBuf::from(path);
    }
    let profile = profile_dir();
    let path = profile.join(name);
    let _guard = BUILD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if path.is_file() {
        return path;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(repo_root())
        .args(["build", "--package", package, "--bin", name]);
    if profile.file_name().is_some_and(|p| p == "release") {
        command.arg("--release");
    }
    if let Some(target) = profile.parent() {
        command.arg("--target-dir").arg(target);
    }
    eprintln!("{} not built yet; building it: {command:?}", path.display());
    let status = command.status();
    assert!(
        status.as_ref().is_ok_and(std::process::ExitStatus::success) && path.is_file(),
        "could not build {name} ({status:?}); build it with `cargo build -p {package}` or set {env_override}"
    );
    path
}

/// The operator binary under test.
#[must_use]
pub fn operator_binary() -> PathBuf {
    workspace_binary(
        "connect-operator",
        "connect-operator",
        "CONNECT_OPERATOR_BIN",
    )
}

/// The simulator binary.
#[must_use]
pub fn simulator_binary() -> PathBuf {
    workspace_binary("connect-sim", "connect-sim", "CONNECT_SIM_BIN")
}
