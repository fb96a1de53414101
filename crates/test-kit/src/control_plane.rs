//! One real etcd + kube-apiserver per test binary, started on first use.
//!
//! What it sets up, and why:
//! - etcd and kube-apiserver on free loopback ports, data in a throwaway directory;
//! - TLS from a CA made with `openssl` (kube-rs, reqwest and kubectl all verify it);
//! - an admin user in `system:masters` through a static bearer token;
//! - `--authorization-mode=RBAC`, so RBAC rules of the chart can be proven;
//! - a service-account issuer and RSA signing key, so `kubectl create token` works;
//! - every CRD under `crds/` applied and waited for until `Established`.
//!
//! The processes run under the watchdog of [`crate::process`], so they stop when the test
//! binary exits (statics are never dropped); a janitor process then removes the data
//! directory (kept when `CONNECT_OPERATOR_KEEP_TEST_DIR` is set).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use serde::Deserialize as _;

use crate::paths::repo_root;
use crate::process::{ManagedProcess, Spawn, free_port, log_tail};

/// Field manager for everything the harness applies.
pub const FIELD_MANAGER: &str = "connect-operator-tests";

/// The started control plane. Lives in a static for the whole test binary.
pub struct ControlPlane {
    /// kubeconfig for the admin user (`system:masters`).
    pub kubeconfig: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub server: String,
    /// The admin's bearer token.
    pub admin_token: String,
    /// CA certificate that signed the API server's serving certificate.
    pub ca_cert: PathBuf,
    /// Directory with the certificates, etcd data and logs.
    pub dir: PathBuf,
    /// The directory holding kube-apiserver, etcd (and maybe kubectl).
    pub assets: PathBuf,
    /// kubectl to use: `$KUBEBUILDER_ASSETS/kubectl` when present, else the one on `PATH`.
    pub kubectl: PathBuf,
    /// Names of the CRDs installed from `crds/`.
    pub crds: Vec<String>,
    /// How long starting took (binaries already built).
    pub startup: Duration,
    _etcd: ManagedProcess,
    _apiserver: ManagedProcess,
    /// Write end of the janitor's stdin: EOF (the test binary exited) makes it wait for
    /// etcd and kube-apiserver to stop and then remove `dir`.
    _janitor: Option<std::process::ChildStdin>,
}

/// Waits for EOF on stdin, then for the given pids to exit, then removes the directory.
const JANITOR: &str = r#"
dir=$1; shift
cat >/dev/null 2>&1
for pid in "$@"; do
  i=0
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 200 ]; do sleep 0.1; i=$((i+1)); done
done
rm -rf "$dir"
"#;

/// Starts the janitor for `dir` unless `CONNECT_OPERATOR_KEEP_TEST_DIR` is set.
fn janitor(dir: &Path, pids: &[u32]) -> Option<std::process::ChildStdin> {
    if std::env::var_os("CONNECT_OPERATOR_KEEP_TEST_DIR").is_some() {
        eprintln!("keeping {} (CONNECT_OPERATOR_KEEP_TEST_DIR)", dir.display());
        return None;
    }
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(JANITOR)
        .arg("connect-operator-test-janitor")
        .arg(dir)
        .args(pids.iter().map(u32::to_string))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()
}

static CONTROL_PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

/// The shared control plane, started on the first call (blocking, from any thread).
pub fn control_plane() -> &'static ControlPlane {
    let started = CONTROL_PLANE.get_or_init(|| {
        // A thread of its own: start-up uses a private tokio runtime, which must not be
        // created on a thread that already runs one (the calling test's).
        std::thread::spawn(start)
            .join()
            .unwrap_or_else(|_| Err("control plane start-up panicked".to_owned()))
    });
    match started {
        Ok(control_plane) => control_plane,
        Err(error) => panic!("local control plane unavailable: {error}"),
    }
}

/// Directory with kube-apiserver and etcd: `KUBEBUILDER_ASSETS`, or what
/// `hack/build-binaries.sh` builds (or finds cached) and prints.
pub fn assets_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS").filter(|dir| !dir.is_empty()) {
        let dir = PathBuf::from(dir);
        if dir.join("kube-apiserver").is_file() && dir.join("etcd").is_file() {
            return Ok(dir);
        }
        return Err(format!(
            "KUBEBUILDER_ASSETS={} lacks kube-apiserver or etcd",
            dir.display()
        ));
    }
    eprintln!(
        "KUBEBUILDER_ASSETS is not set; running hack/build-binaries.sh (cached after the first build)"
    );
    build_with_script("k8s", "KUBEBUILDER_ASSETS")
}

/// Runs `hack/build-binaries.sh` for `only` (`k8s` or `helm`; cached after the first build)
/// and returns the path it exports as `variable`.
pub fn build_with_script(only: &str, variable: &str) -> Result<PathBuf, String> {
    let output = Command::new("bash")
        .arg(repo_root().join("hack/build-binaries.sh"))
        .env("BUILD_ONLY", only)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|error| format!("running hack/build-binaries.sh: {error}"))?;
    if !output.status.success() {
        return Err(format!("hack/build-binaries.sh failed ({})", output.status));
    }
    let prefix = format!("export {variable}=");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .map(|path| PathBuf::from(path.trim()))
        .filter(|path| path.exists())
        .ok_or_else(|| format!("hack/build-binaries.sh printed no usable {variable}"))
}

fn run(program: &str, args: &[&str], dir: &Path) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|error| format!("running {program}: {error} (is it installed?)"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// CA, API-server serving certificate, service-account signing key.
fn make_keys(dir: &Path) -> Result<(), String> {
    const CA: &str = "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 7 \
        -subj /CN=connect-operator-test-ca -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign";
    const SERVING_REQUEST: &str = "req -newkey rsa:2048 -nodes -keyout apiserver.key \
        -out apiserver.csr -subj /CN=kube-apiserver";
    const SERVING_CERT: &str = "x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key \
        -CAcreateserial -out apiserver.crt -days 7 -extfile apiserver.ext";
    std::fs::write(
        dir.join("apiserver.ext"),
        format!(
            "basicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName={}\n",
            flags("san", &Placeholders::default()).join(",")
        ),
    )
    .map_err(|error| error.to_string())?;
    for args in [
        CA,
        SERVING_REQUEST,
        SERVING_CERT,
        "genrsa -out sa.key 2048",
        "rsa -in sa.key -pubout -out sa.pub",
    ] {
        run("openssl", &args.split_whitespace().collect::<Vec<_>>(), dir)?;
    }
    Ok(())
}

/// The control plane's flags, shared with `hack/control-plane.sh`.
const FLAGS: &str = include_str!("../../../hack/control-plane.flags");

/// What the placeholders of [`FLAGS`] stand for.
#[derive(Default)]
struct Placeholders {
    dir: String,
    etcd_port: u16,
    peer_port: u16,
    api_port: u16,
}

/// `program`'s lines of [`FLAGS`], placeholders filled in.
fn flags(program: &str, values: &Placeholders) -> Vec<String> {
    FLAGS
        .lines()
        .filter_map(|line| line.strip_prefix(program)?.strip_prefix(' '))
        .map(|flag| {
            flag.replace("{dir}", &values.dir)
                .replace("{etcd_port}", &values.etcd_port.to_string())
                .replace("{peer_port}", &values.peer_port.to_string())
                .replace("{api_port}", &values.api_port.to_string())
        })
        .collect()
}

fn os(value: impl Into<OsString>) -> OsString {
    value.into()
}

fn start() -> Result<ControlPlane, String> {
    let began = Instant::now();
    let assets = assets_dir()?;
    let kubectl = if assets.join("kubectl").is_file() {
        assets.join("kubectl")
    } else {
        PathBuf::from("kubectl")
    };
    let dir = tempfile::Builder::new()
        .prefix("connect-operator-control-plane-")
        .tempdir()
        .map_err(|error| format!("creating a temporary directory: {error}"))?
        .keep();
    let began_after_build = Instant::now();
    make_keys(&dir)?;

    let admin_token = format!("admin-{:016x}", fastrand::u64(..));
    std::fs::write(
        dir.join("tokens.csv"),
        format!("{admin_token},admin,admin,\"system:masters\"\n"),
    )
    .map_err(|error| error.to_string())?;

    let etcd_port = free_port();
    let peer_port = free_port();
    let api_port = free_port();
    let placeholders = Placeholders {
        dir: dir.display().to_string(),
        etcd_port,
        peer_port,
        api_port,
    };

    let etcd = ManagedProcess::spawn(Spawn {
        name: "etcd",
        program: &assets.join("etcd"),
        args: flags("etcd", &placeholders).into_iter().map(os).collect(),
        envs: vec![],
        env_remove: vec![],
        log: &dir.join("etcd.log"),
        capture_stdout: false,
        grace: Duration::from_secs(2),
    })
    .map_err(|error| error.to_string())?;

    let apiserver = ManagedProcess::spawn(Spawn {
        name: "kube-apiserver",
        program: &assets.join("kube-apiserver"),
        args: flags("kube-apiserver", &placeholders)
            .into_iter()
            .map(os)
            .collect(),
        envs: vec![],
        env_remove: vec![],
        log: &dir.join("kube-apiserver.log"),
        capture_stdout: false,
        grace: Duration::from_secs(2),
    })
    .map_err(|error| error.to_string())?;

    let server = format!("https://127.0.0.1:{api_port}");
    let ca_cert = dir.join("ca.crt");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: local\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n\
             users:\n\
             - name: admin\n  user:\n    token: {admin_token}\n\
             contexts:\n\
             - name: local\n  context:\n    cluster: local\n    user: admin\n    namespace: default\n\
             current-context: local\n",
            ca = ca_cert.display(),
        ),
    )
    .map_err(|error| error.to_string())?;

    let mut control_plane = ControlPlane {
        kubeconfig,
        server,
        admin_token,
        ca_cert,
        dir: dir.clone(),
        assets,
        kubectl,
        crds: vec![],
        startup: Duration::ZERO,
        _janitor: janitor(&dir, &[etcd.pid(), apiserver.pid()]),
        _etcd: etcd,
        _apiserver: apiserver,
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    let crds = runtime.block_on(async {
        wait_ready(&mut control_plane).await?;
        let crds = install_crds(&control_plane).await?;
        install_default_account(&control_plane, &crds).await?;
        Ok::<_, String>(crds)
    });
    let crds = match crds {
        Ok(crds) => crds,
        Err(error) => {
            return Err(format!(
                "{error}\n--- kube-apiserver log (tail) ---\n{}\n--- etcd log (tail) ---\n{}",
                log_tail(&dir.join("kube-apiserver.log"), 40),
                log_tail(&dir.join("etcd.log"), 20),
            ));
        }
    };
    control_plane.crds = crds;
    control_plane.startup = began_after_build.elapsed();
    eprintln!(
        "local control plane at {} ready in {:.1?} ({:.1?} including finding binaries); dir {}",
        control_plane.server,
        control_plane.startup,
        began.elapsed(),
        dir.display()
    );
    Ok(control_plane)
}

/// Polls `/readyz` until the API server answers 200.
async fn wait_ready(control_plane: &mut ControlPlane) -> Result<(), String> {
    // kube installs its rustls crypto provider as the process default when it builds a
    // client; do that first so reqwest finds one whatever TLS features are enabled.
    crate::client_for(&control_plane.kubeconfig)
        .await
        .map_err(|error| error.to_string())?;
    let ca = std::fs::read(&control_plane.ca_cert).map_err(|error| error.to_string())?;
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&ca).map_err(|error| error.to_string())?,
        )
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|error| error.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        if let Some(status) = control_plane._apiserver.exited() {
            return Err(format!("kube-apiserver exited ({status})"));
        }
        if let Some(status) = control_plane._etcd.exited() {
            return Err(format!("etcd exited ({status})"));
        }
        match http
            .get(format!("{}/readyz", control_plane.server))
            .bearer_auth(&control_plane.admin_token)
            .send()
            .await
        {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => last = format!("/readyz answered {}", response.status()),
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("kube-apiserver not ready after 120 s: {last}"))
}

/// The label every test's operator serves accounts by (`--account-selector`): `shared`
/// for the default account, a test's namespace for the accounts that test creates.
pub const ACCOUNT_SCOPE_LABEL: &str = "connect-test/scope";

/// Creates `ConnectAccount/default` (the operator's own credentials, every namespace), as
/// the chart does, labelled for every test's operator to serve.
async fn install_default_account(
    control_plane: &ControlPlane,
    crds: &[String],
) -> Result<(), String> {
    if !crds
        .iter()
        .any(|c| c == "connectaccounts.connect.operators.dev")
    {
        return Ok(());
    }
    let client = crate::client_for(&control_plane.kubeconfig)
        .await
        .map_err(|error| error.to_string())?;
    let account: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "connect.operators.dev/v1alpha1",
        "kind": "ConnectAccount",
        "metadata": {"name": "default", "labels": {ACCOUNT_SCOPE_LABEL: "shared"}},
        "spec": {"namespaceSelector": {}},
    }))
    .map_err(|error| error.to_string())?;
    let resource = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("connect.operators.dev", "v1alpha1", "ConnectAccount"),
        "connectaccounts",
    );
    let api: Api<kube::api::DynamicObject> = Api::all_with(client, &resource);
    api.patch(
        "default",
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&account),
    )
    .await
    .map_err(|error| format!("creating ConnectAccount/default: {error}"))?;
    Ok(())
}

/// Applies every CRD document under `crds/` and waits until each is `Established`.
/// An empty or missing `crds/` is not an error (the CRD may not be committed yet).
async fn install_crds(control_plane: &ControlPlane) -> Result<Vec<String>, String> {
    let dir = repo_root().join("crds");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "yaml" || extension == "yml")
            })
            .collect(),
        Err(_) => vec![],
    };
    files.sort();
    if files.is_empty() {
        eprintln!("no CRDs under {}: skipping CRD installation", dir.display());
        return Ok(vec![]);
    }
    let client = crate::client_for(&control_plane.kubeconfig)
        .await
        .map_err(|error| error.to_string())?;
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    let mut names = vec![];
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|error| error.to_string())?;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(document)
                .map_err(|error| format!("{}: {error}", file.display()))?;
            if value.is_null() {
                continue;
            }
            let crd: CustomResourceDefinition = serde_yaml::from_value(value)
                .map_err(|error| format!("{} is not a CRD: {error}", file.display()))?;
            let name = crd.metadata.name.clone().unwrap_or_default();
            crds.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&crd),
            )
            .await
            .map_err(|error| format!("applying CRD {name} from {}: {error}", file.display()))?;
            names.push(name);
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for name in &names {
        let established = await_condition(crds.clone(), name, conditions::is_crd_established());
        tokio::time::timeout_at(deadline, established)
            .await
            .map_err(|_elapsed| format!("CRD {name} not Established after 60 s"))?
            .map_err(|error| format!("waiting for CRD {name} to be Established: {error}"))?;
    }
    Ok(names)
}
