//! The test kit: what connect-operator's integration tests and benchmarks share. The local
//! control plane (real etcd + kube-apiserver), the process watchdog, the Connect simulator
//! (as a process or in-process) with a typed client of its `/_sim/` endpoints, the operator
//! as a process, and kubectl and helm helpers.
//!
//! Everything here talks to real processes over real interfaces: the API server over HTTPS
//! (kube-rs and kubectl), the simulator over HTTP. See `docs/testing.md`.
//!
//! Each test builds its own kube `Client` with [`client`]: a client is bound to the tokio
//! runtime that created it, and every `#[tokio::test]` has its own runtime.

// Test code: a failed expectation is a test failure.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod connect;
pub mod control_plane;
pub mod operator;
pub mod paths;
pub mod process;
pub mod proxy;
pub mod simulator;

use std::future::Future;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::sync::{Semaphore, SemaphorePermit};

pub use control_plane::control_plane;
pub use operator::{OperatorOptions, OperatorProcess};
pub use simulator::{SimCall, Simulator};

/// Default deadline for waiting on asynchronous outcomes.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A kube client for `kubeconfig` on the current tokio runtime.
pub async fn client_for(kubeconfig: &Path) -> Result<Client, kube::Error> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).map_err(kube::Error::InferKubeconfig)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(kube::Error::InferKubeconfig)?;
    Client::try_from(config)
}

/// An admin (`system:masters`) client of the shared control plane, started if needed.
pub async fn client() -> Client {
    let kubeconfig = tokio::task::spawn_blocking(|| control_plane().kubeconfig.clone())
        .await
        .expect("control plane start-up");
    client_for(&kubeconfig).await.expect("admin client")
}

/// Limits how many heavy scenarios (own simulator + operator processes) run at once, so
/// the suite stays within two cores whatever `--test-threads` says.
static HEAVY: Semaphore = Semaphore::const_new(2);

/// Holds one of the heavy-scenario slots until dropped.
pub async fn heavy_slot() -> SemaphorePermit<'static> {
    HEAVY.acquire().await.expect("semaphore never closed")
}

/// A fresh namespace for one test, created through the API.
///
/// Never deleted: without a namespace controller a deleted namespace never finishes
/// terminating, and the whole control plane is thrown away at the end anyway.
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    /// Creates `<prefix>-<random>`.
    pub async fn create(client: &Client, prefix: &str) -> Self {
        let name = format!("{prefix}-{}", random_suffix(6));
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(
                    [("connect.operators.dev/test".to_owned(), "true".to_owned())]
                        .into_iter()
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|error| panic!("creating namespace {name}: {error}"));
        Self { name }
    }
}

/// Lowercase letters and digits, valid in DNS labels.
pub fn random_suffix(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| char::from(CHARS[fastrand::usize(..CHARS.len())]))
        .collect()
}

/// The outcome of a kubectl run.
#[derive(Debug)]
pub struct KubectlOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl KubectlOutput {
    fn from(output: Output) -> Self {
        Self {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs the real kubectl against the shared control plane, with `stdin` as its input.
pub async fn kubectl_with_input(args: &[&str], stdin: Option<&str>) -> KubectlOutput {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let stdin = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let control_plane = control_plane();
        let mut command = Command::new(&control_plane.kubectl);
        command
            .arg("--kubeconfig")
            .arg(&control_plane.kubeconfig)
            .args(&args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("running {}: {error}", control_plane.kubectl.display()));
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(input.as_bytes())
                .expect("writing kubectl stdin");
        }
        KubectlOutput::from(child.wait_with_output().expect("waiting for kubectl"))
    })
    .await
    .expect("kubectl task")
}

/// Runs the real kubectl against the shared control plane.
pub async fn kubectl(args: &[&str]) -> KubectlOutput {
    kubectl_with_input(args, None).await
}

/// Runs kubectl and fails the test unless it succeeds; returns its stdout.
pub async fn kubectl_ok(args: &[&str]) -> String {
    let output = kubectl(args).await;
    assert!(
        output.success,
        "kubectl {} failed:\n{}{}",
        args.join(" "),
        output.stdout,
        output.stderr
    );
    output.stdout
}

/// Polls `probe` every 100 ms until it returns `Some` or `timeout` passes; then fails the
/// test with `what` and the last value `describe_last` produced.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
