//! Running helm and kubectl (as the admin or as another identity), and reading what
//! `helm template` renders: the documents of a release, the operator container of its
//! Deployment and that container's environment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde::Deserialize as _;
use serde_json::Value;

use test_kit::control_plane;

use super::{KUBE_VERSION, chart_dir};

/// The outcome of one program run.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) success: bool,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

impl Run {
    pub(crate) fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs a program to completion off the async runtime.
pub(super) async fn run_program(
    program: PathBuf,
    args: Vec<String>,
    stdin: Option<String>,
    dir: Option<PathBuf>,
) -> Run {
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(&program);
        command
            .args(&args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("running {}: {error}", program.display()));
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(input.as_bytes()).expect("writing stdin");
        }
        let output = child.wait_with_output().expect("waiting for the program");
        Run {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .expect("program task")
}

/// `$HELM_BIN`, or the helm `hack/build-binaries.sh` builds (cached after the first build).
fn helm_bin() -> &'static Path {
    static HELM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    HELM.get_or_init(|| go_built_tool("HELM_BIN", "helm"))
        .as_ref()
        .unwrap_or_else(|error| panic!("helm unavailable: {error}"))
}

/// What the Go module proxy provides (a tool built from it, or files from a module): the
/// path `$variable` names, or what `BUILD_ONLY=<only> hack/build-binaries.sh` prints
/// (cached after the first build).
pub(super) fn go_built_tool(variable: &str, only: &str) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(variable).filter(|path| !path.is_empty()) {
        let path = PathBuf::from(path);
        return if path.exists() {
            Ok(path)
        } else {
            Err(format!("{variable}={} does not exist", path.display()))
        };
    }
    test_kit::control_plane::build_with_script(only, variable)
}

pub(super) async fn helm(args: &[&str]) -> Run {
    run_program(
        helm_bin().to_owned(),
        args.iter().map(|arg| (*arg).to_owned()).collect(),
        None,
        None,
    )
    .await
}

/// The shared control plane (started if needed), from async code.
pub(super) async fn plane() -> &'static test_kit::control_plane::ControlPlane {
    tokio::task::spawn_blocking(control_plane)
        .await
        .expect("control plane start-up")
}

/// kubectl against the shared control plane with another identity's kubeconfig.
pub(super) async fn kubectl_as(kubeconfig: &Path, args: &[&str]) -> Run {
    let kubectl = plane().await.kubectl.clone();
    let mut all = vec!["--kubeconfig".to_owned(), kubeconfig.display().to_string()];
    all.extend(args.iter().map(|arg| (*arg).to_owned()));
    run_program(kubectl, all, None, None).await
}

/// The documents `helm template` rendered.
pub(super) struct Rendered {
    pub(super) docs: Vec<Value>,
}

impl Rendered {
    pub(super) fn kinds(&self) -> BTreeSet<String> {
        self.docs.iter().map(kind_of).collect()
    }

    pub(super) fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.docs
            .iter()
            .filter(|doc| kind_of(doc) == kind)
            .collect()
    }

    pub(super) fn one(&self, kind: &str) -> &Value {
        let docs = self.of_kind(kind);
        assert_eq!(docs.len(), 1, "expected one {kind}, got {}", docs.len());
        docs[0]
    }

    /// The selected documents as one YAML stream.
    pub(super) fn yaml(&self, keep: impl Fn(&Value) -> bool) -> String {
        yaml_stream(self.docs.iter().filter(|doc| keep(doc)))
    }
}

pub(super) fn kind_of(doc: &Value) -> String {
    doc["kind"].as_str().unwrap_or_default().to_owned()
}

pub(super) fn name_of(doc: &Value) -> String {
    doc["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn yaml_stream<'a>(docs: impl Iterator<Item = &'a Value>) -> String {
    docs.map(|doc| serde_yaml::to_string(doc).expect("YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

pub(super) fn parse_yaml_stream(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).expect("helm rendered valid YAML"))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// `helm template <release> <chart> --namespace <namespace> -f <values> <extra>`.
pub(super) async fn render(
    release: &str,
    namespace: &str,
    values: &Value,
    extra: &[&str],
) -> Rendered {
    let run = render_raw(release, namespace, values, extra).await;
    assert!(
        run.success,
        "helm template {release} failed with values {values}:\n{}",
        run.text()
    );
    Rendered {
        docs: parse_yaml_stream(&run.stdout),
    }
}

/// `helm template` as [`render`] runs it, whether it succeeds or not.
pub(super) async fn render_raw(
    release: &str,
    namespace: &str,
    values: &Value,
    extra: &[&str],
) -> Run {
    let file = tempfile::Builder::new()
        .prefix("chart-values-")
        .suffix(".yaml")
        .tempfile()
        .expect("values file");
    std::fs::write(
        file.path(),
        serde_yaml::to_string(values).expect("values YAML"),
    )
    .expect("writing values");
    let chart = chart_dir().display().to_string();
    let values_path = file.path().display().to_string();
    let mut args = vec![
        "template",
        release,
        &chart,
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
        "-f",
        &values_path,
    ];
    args.extend_from_slice(extra);
    helm(&args).await
}

/// The operator container of the rendered Deployment.
pub(super) fn operator_container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    containers
        .iter()
        .find(|container| container["name"] == "operator")
        .expect("a container named operator")
}

/// The literal `env` of the operator container.
pub(super) fn rendered_env(deployment: &Value) -> BTreeMap<String, String> {
    operator_container(deployment)["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|var| {
            Some((
                var["name"].as_str()?.to_owned(),
                var["value"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// One template of the chart rendered with `sets` (`--set name=value`), for suites outside
/// the chart tests that apply a part of the chart (e.g. its admission policies).
pub(crate) async fn template_only(template: &str, sets: &[(&str, &str)]) -> String {
    let chart = chart_dir().display().to_string();
    let sets: Vec<String> = sets.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args = vec![
        "template",
        "connect-operator",
        &chart,
        "--kube-version",
        KUBE_VERSION,
        "--show-only",
        template,
    ];
    for set in &sets {
        args.extend(["--set", set.as_str()]);
    }
    let run = helm(&args).await;
    assert!(
        run.success,
        "helm template --show-only {template}: {}",
        run.text()
    );
    run.stdout
}
