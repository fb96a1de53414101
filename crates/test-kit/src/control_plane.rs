//! One real etcd + kube-apiserver per test binary, started on first use, and private ones
//! for tests that crash and restart them.
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
//!
//! The shared control plane serves every test of the binary at once, so nothing may stop
//! it. A test that SIGKILLs etcd or kube-apiserver takes a [`PrivateControlPlane`] from
//! [`start_private`] instead: same set-up, its own ports and directory, and processes it may
//! kill and restart with the same flags, ports, certificates and data.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use serde::Deserialize as _;

use crate::paths::repo_root;
use crate::process::{ManagedProcess, Spawn, free_port, log_tail};

/// Field manager for everything the harness applies.
pub const FIELD_MANAGER: &str = "connect-operator-tests";

/// How long start-up waits for `/readyz`: a cold kube-apiserver on two busy cores needs tens
/// of seconds.
const STARTUP_READY_TIMEOUT: Duration = Duration::from_secs(120);

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
    /// Removes `dir` once the test binary has exited and etcd and kube-apiserver stopped.
    _janitor: Option<Janitor>,
}

/// Waits for EOF on stdin, then for the pids recorded in `$dir/*.pid` to exit, then removes
/// the directory. The pids are read only at EOF, so processes restarted since the janitor
/// started are the ones waited for.
const JANITOR: &str = r#"
dir=$1
cat >/dev/null 2>&1
for file in "$dir"/*.pid; do
  [ -f "$file" ] || continue
  pid=$(cat "$file" 2>/dev/null)
  [ -n "$pid" ] || continue
  i=0
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 200 ]; do sleep 0.1; i=$((i+1)); done
done
rm -rf "$dir"
"#;

/// A janitor process. Our end of its stdin closes when the test binary exits, however it
/// exits, which is what makes the directory go away even when no destructor runs.
struct Janitor {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Drop for Janitor {
    /// Reaps the janitor, so a test binary that starts many private control planes does not
    /// collect zombies. Bounded: the janitor gives up on each pid after 20 s.
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.wait();
    }
}

/// Whether to leave control-plane directories behind for debugging.
fn keep_test_dir() -> bool {
    std::env::var_os("CONNECT_OPERATOR_KEEP_TEST_DIR").is_some()
}

/// Starts the janitor for `dir` unless `CONNECT_OPERATOR_KEEP_TEST_DIR` is set.
fn janitor(dir: &Path) -> Option<Janitor> {
    if keep_test_dir() {
        eprintln!("keeping {} (CONNECT_OPERATOR_KEEP_TEST_DIR)", dir.display());
        return None;
    }
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(JANITOR)
        .arg("connect-operator-test-janitor")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdin = child.stdin.take();
    Some(Janitor { child, stdin })
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
        .stderr(Stdio::inherit())
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

/// Everything a control plane is made of apart from its running processes: enough to
/// (re)start either process with the same flags, ports, certificates and data.
struct Layout {
    assets: PathBuf,
    kubectl: PathBuf,
    dir: PathBuf,
    server: String,
    admin_token: String,
    ca_cert: PathBuf,
    kubeconfig: PathBuf,
    placeholders: Placeholders,
    /// Started as soon as the directory exists, so a failed start-up leaves nothing behind.
    janitor: Option<Janitor>,
}

/// Picks kubectl and makes the directory, keys, tokens file and kubeconfig.
fn prepare(assets: PathBuf) -> Result<Layout, String> {
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
    let janitor = janitor(&dir);
    make_keys(&dir)?;

    let admin_token = format!("admin-{:016x}", fastrand::u64(..));
    std::fs::write(
        dir.join("tokens.csv"),
        format!("{admin_token},admin,admin,\"system:masters\"\n"),
    )
    .map_err(|error| error.to_string())?;

    let placeholders = Placeholders {
        dir: dir.display().to_string(),
        etcd_port: free_port(),
        peer_port: free_port(),
        api_port: free_port(),
    };
    let server = format!("https://127.0.0.1:{}", placeholders.api_port);
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
    Ok(Layout {
        assets,
        kubectl,
        dir,
        server,
        admin_token,
        ca_cert,
        kubeconfig,
        placeholders,
        janitor,
    })
}

/// Starts `program` (`etcd` or `kube-apiserver`) with its flags, appending to
/// `<dir>/<program>.log`, and records its pid in `<dir>/<program>.pid` for the janitor.
fn spawn(layout: &Layout, program: &str) -> Result<ManagedProcess, String> {
    let process = ManagedProcess::spawn(Spawn {
        name: program,
        program: &layout.assets.join(program),
        args: flags(program, &layout.placeholders)
            .into_iter()
            .map(os)
            .collect(),
        envs: vec![],
        env_remove: vec![],
        log: &layout.dir.join(format!("{program}.log")),
        capture_stdout: false,
        grace: Duration::from_secs(2),
    })
    .map_err(|error| error.to_string())?;
    std::fs::write(
        layout.dir.join(format!("{program}.pid")),
        process.pid().to_string(),
    )
    .map_err(|error| format!("recording the pid of {program}: {error}"))?;
    Ok(process)
}

/// `error` followed by the tails of both logs, which usually say why.
fn with_log_tails(error: &str, dir: &Path) -> String {
    format!(
        "{error}\n--- kube-apiserver log (tail) ---\n{}\n--- etcd log (tail) ---\n{}",
        log_tail(&dir.join("kube-apiserver.log"), 40),
        log_tail(&dir.join("etcd.log"), 20),
    )
}

/// The CRDs and the default account, once the API server is ready.
async fn provision(kubeconfig: &Path) -> Result<Vec<String>, String> {
    let crds = install_crds(kubeconfig).await?;
    install_default_account(kubeconfig, &crds).await?;
    Ok(crds)
}

fn start() -> Result<ControlPlane, String> {
    let began = Instant::now();
    let assets = assets_dir()?;
    let began_after_build = Instant::now();
    let mut layout = prepare(assets)?;
    let etcd = spawn(&layout, "etcd")?;
    let apiserver = spawn(&layout, "kube-apiserver")?;

    let mut control_plane = ControlPlane {
        kubeconfig: layout.kubeconfig,
        server: layout.server,
        admin_token: layout.admin_token,
        ca_cert: layout.ca_cert,
        dir: layout.dir,
        assets: layout.assets,
        kubectl: layout.kubectl,
        crds: vec![],
        startup: Duration::ZERO,
        _janitor: layout.janitor.take(),
        _etcd: etcd,
        _apiserver: apiserver,
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    let crds = runtime.block_on(async {
        wait_ready(
            Endpoint {
                kubeconfig: &control_plane.kubeconfig,
                server: &control_plane.server,
                admin_token: &control_plane.admin_token,
                ca_cert: &control_plane.ca_cert,
            },
            || exited(&mut control_plane._etcd, &mut control_plane._apiserver),
            STARTUP_READY_TIMEOUT,
        )
        .await?;
        provision(&control_plane.kubeconfig).await
    });
    control_plane.crds = crds.map_err(|error| with_log_tails(&error, &control_plane.dir))?;
    control_plane.startup = began_after_build.elapsed();
    eprintln!(
        "local control plane at {} ready in {:.1?} ({:.1?} including finding binaries); dir {}",
        control_plane.server,
        control_plane.startup,
        began.elapsed(),
        control_plane.dir.display()
    );
    Ok(control_plane)
}

/// Where and as whom to ask `/readyz`.
struct Endpoint<'a> {
    kubeconfig: &'a Path,
    server: &'a str,
    admin_token: &'a str,
    ca_cert: &'a Path,
}

/// A namespace nobody creates: reading it is answered by etcd (a quorum read), 404 or not.
const STORAGE_PROBE: &str = "/api/v1/namespaces/connect-test-kit-storage-probe";

/// Polls until `/readyz` answers 200 and a read reaches etcd; returns how long that took.
/// Fails as soon as `exited` names a process that has exited: waiting longer could not help.
///
/// `/readyz` alone is not enough after etcd restarts: its etcd check has a client of its
/// own, which reconnects seconds before or after the one serving requests does.
async fn wait_ready(
    endpoint: Endpoint<'_>,
    mut exited: impl FnMut() -> Option<String>,
    timeout: Duration,
) -> Result<Duration, String> {
    let began = Instant::now();
    // kube installs its rustls crypto provider as the process default when it builds a
    // client; do that first so reqwest finds one whatever TLS features are enabled.
    crate::client_for(endpoint.kubeconfig)
        .await
        .map_err(|error| error.to_string())?;
    let ca = std::fs::read(endpoint.ca_cert).map_err(|error| error.to_string())?;
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&ca).map_err(|error| error.to_string())?,
        )
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|error| error.to_string())?;
    let answered = |path: &str, accept: &[u16]| {
        let request = http
            .get(format!("{}{path}", endpoint.server))
            .bearer_auth(endpoint.admin_token);
        let accept = accept.to_vec();
        let path = path.to_owned();
        async move {
            match request.send().await {
                Ok(response) if accept.contains(&response.status().as_u16()) => Ok(()),
                Ok(response) => Err(format!("{path} answered {}", response.status())),
                Err(error) => Err(format!("{path}: {error}")),
            }
        }
    };
    let deadline = began + timeout;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        if let Some(exited) = exited() {
            return Err(exited);
        }
        let ready = match answered("/readyz", &[200]).await {
            Ok(()) => answered(STORAGE_PROBE, &[200, 404]).await,
            Err(error) => Err(error),
        };
        match ready {
            Ok(()) => return Ok(began.elapsed()),
            Err(error) => last = error,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "kube-apiserver not ready after {timeout:?}: {last}"
    ))
}

/// Which of the two processes has exited, and how, if one has.
fn exited(etcd: &mut ManagedProcess, apiserver: &mut ManagedProcess) -> Option<String> {
    if let Some(status) = apiserver.exited() {
        return Some(format!("kube-apiserver exited ({status})"));
    }
    etcd.exited()
        .map(|status| format!("etcd exited ({status})"))
}

/// The label every test's operator serves accounts by (`--account-selector`): `shared`
/// for the default account, a test's namespace for the accounts that test creates.
pub const ACCOUNT_SCOPE_LABEL: &str = "connect-test/scope";

/// Creates `ConnectAccount/default` (the operator's own credentials, every namespace), as
/// the chart does, labelled for every test's operator to serve.
async fn install_default_account(kubeconfig: &Path, crds: &[String]) -> Result<(), String> {
    if !crds
        .iter()
        .any(|c| c == "connectaccounts.connect.operators.dev")
    {
        return Ok(());
    }
    let client = crate::client_for(kubeconfig)
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
async fn install_crds(kubeconfig: &Path) -> Result<Vec<String>, String> {
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
    let client = crate::client_for(kubeconfig)
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

/// A control plane of one test's own, whose etcd and kube-apiserver it may SIGKILL and
/// restart while other processes (an operator) keep talking to them.
///
/// Dropping it kills both processes and removes its directory (kept when
/// `CONNECT_OPERATOR_KEEP_TEST_DIR` is set); if the test binary dies first, the watchdog
/// and the janitor do the same.
pub struct PrivateControlPlane {
    layout: Layout,
    // Mutexes only so that `wait_ready` can take `&self` and still reap exited children.
    etcd: Mutex<ManagedProcess>,
    apiserver: Mutex<ManagedProcess>,
    crds: Vec<String>,
    startup: Duration,
}

/// A process whether or not a previous holder panicked: a poisoned lock around a child
/// process protects no invariant.
fn lock(process: &Mutex<ManagedProcess>) -> MutexGuard<'_, ManagedProcess> {
    process.lock().unwrap_or_else(PoisonError::into_inner)
}

fn process_mut(process: &mut Mutex<ManagedProcess>) -> &mut ManagedProcess {
    process.get_mut().unwrap_or_else(PoisonError::into_inner)
}

/// Starts a private control plane: everything the shared one has (certificates, admin
/// token, CRDs, `ConnectAccount/default`), on ports and in a directory of its own.
pub async fn start_private() -> Result<PrivateControlPlane, String> {
    // The build script, openssl and spawning block; keep them off the test's runtime.
    let started = tokio::task::spawn_blocking(|| {
        let assets = assets_dir()?;
        let began = Instant::now();
        let layout = prepare(assets)?;
        let etcd = spawn(&layout, "etcd")?;
        let apiserver = spawn(&layout, "kube-apiserver")?;
        Ok::<_, String>((began, layout, etcd, apiserver))
    })
    .await
    .map_err(|error| format!("private control plane start-up panicked: {error}"))?;
    let (began, layout, etcd, apiserver) = started?;
    let mut control_plane = PrivateControlPlane {
        layout,
        etcd: Mutex::new(etcd),
        apiserver: Mutex::new(apiserver),
        crds: vec![],
        startup: Duration::ZERO,
    };
    control_plane.wait_ready(STARTUP_READY_TIMEOUT).await?;
    control_plane.crds = provision(control_plane.kubeconfig())
        .await
        .map_err(|error| with_log_tails(&error, control_plane.dir()))?;
    control_plane.startup = began.elapsed();
    eprintln!(
        "private control plane at {} ready in {:.1?}; dir {}",
        control_plane.server(),
        control_plane.startup,
        control_plane.dir().display()
    );
    Ok(control_plane)
}

impl PrivateControlPlane {
    /// kubeconfig for the admin user (`system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.layout.kubeconfig
    }

    /// `https://127.0.0.1:PORT`; the same across restarts.
    pub fn server(&self) -> &str {
        &self.layout.server
    }

    /// kube-apiserver's secure port; the same across restarts.
    pub fn api_port(&self) -> u16 {
        self.layout.placeholders.api_port
    }

    /// The admin's bearer token.
    pub fn admin_token(&self) -> &str {
        &self.layout.admin_token
    }

    /// CA certificate that signed the API server's serving certificate.
    pub fn ca_cert(&self) -> &Path {
        &self.layout.ca_cert
    }

    /// Directory with the certificates, etcd data and logs (appended to across restarts).
    pub fn dir(&self) -> &Path {
        &self.layout.dir
    }

    /// The directory holding kube-apiserver, etcd (and maybe kubectl).
    pub fn assets(&self) -> &Path {
        &self.layout.assets
    }

    /// kubectl to use: `$KUBEBUILDER_ASSETS/kubectl` when present, else the one on `PATH`.
    pub fn kubectl(&self) -> &Path {
        &self.layout.kubectl
    }

    /// Names of the CRDs installed from `crds/`.
    pub fn crds(&self) -> &[String] {
        &self.crds
    }

    /// How long starting took (binaries already built).
    pub fn startup(&self) -> Duration {
        self.startup
    }

    /// SIGKILLs kube-apiserver, as a crash would, and waits until it has exited. Fails the
    /// test if it was not running: a fault that did not happen proves nothing.
    pub fn kill_apiserver(&mut self) {
        assert!(
            process_mut(&mut self.apiserver).kill(),
            "kube-apiserver was not running when it was to be killed"
        );
    }

    /// SIGKILLs etcd, as a crash would, and waits until it has exited. Fails the test if it
    /// was not running.
    pub fn kill_etcd(&mut self) {
        assert!(
            process_mut(&mut self.etcd).kill(),
            "etcd was not running when it was to be killed"
        );
    }

    /// Starts kube-apiserver again with the same flags, port and certificates; returns once
    /// it is spawned ([`Self::wait_ready`] says when it serves). It needs etcd up to become
    /// ready, so start etcd first.
    pub fn start_apiserver(&mut self) -> Result<(), String> {
        restart(
            &self.layout,
            process_mut(&mut self.apiserver),
            "kube-apiserver",
        )
    }

    /// Starts etcd again with the same flags, ports and data directory; returns once it is
    /// spawned. A running kube-apiserver reconnects by itself.
    pub fn start_etcd(&mut self) -> Result<(), String> {
        restart(&self.layout, process_mut(&mut self.etcd), "etcd")
    }

    /// Waits until kube-apiserver is ready and serves reads from etcd; returns how long that
    /// took. Fails at once, with the logs' tails, when either process has exited.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<Duration, String> {
        let endpoint = Endpoint {
            kubeconfig: &self.layout.kubeconfig,
            server: &self.layout.server,
            admin_token: &self.layout.admin_token,
            ca_cert: &self.layout.ca_cert,
        };
        let exited = || exited(&mut lock(&self.etcd), &mut lock(&self.apiserver));
        wait_ready(endpoint, exited, timeout)
            .await
            .map_err(|error| with_log_tails(&error, &self.layout.dir))
    }
}

/// Replaces the exited `process` with a fresh `program` from the same layout. Refuses while
/// it still runs: two of them would fight over the ports and the data directory.
fn restart(layout: &Layout, process: &mut ManagedProcess, program: &str) -> Result<(), String> {
    if process.exited().is_none() {
        return Err(format!("{program} is still running; kill it first"));
    }
    // A marker in the log, so a log tail shows where one run ends and the next begins.
    let log = layout.dir.join(format!("{program}.log"));
    if let Ok(mut file) = std::fs::File::options().append(true).open(&log) {
        use std::io::Write as _;
        let _ = writeln!(file, "=== test kit: restarting {program} ===");
    }
    *process = spawn(layout, program)?;
    Ok(())
}

impl Drop for PrivateControlPlane {
    fn drop(&mut self) {
        // SIGKILL rather than SIGTERM: the data is thrown away, so a graceful shutdown would
        // only cost seconds. kube-apiserver first, so it does not log etcd's absence.
        let _ = process_mut(&mut self.apiserver).kill();
        let _ = process_mut(&mut self.etcd).kill();
        if !keep_test_dir()
            && let Err(error) = std::fs::remove_dir_all(&self.layout.dir)
        {
            eprintln!("removing {}: {error}", self.layout.dir.display());
        }
    }
}
