//! The Helm chart `charts/connect-operator`, proven against the real tools and the real API
//! server of the shared control plane (issue 4 §1 and §2):
//!
//! - `helm lint --strict` with every `ci/*.yaml`; bad values fail `helm template` and
//!   `helm install` (server dry run) with the schema's or the chart's message; the chart's
//!   CRDs are byte-identical to the generated `crds/` (`hack/sync-chart-crds.sh --check`);
//! - `helm template` for several value sets applied with `kubectl apply --server-side
//!   --dry-run=server` into a namespace enforcing (and warning on) the `restricted` Pod
//!   Security Standard, and the Deployment's pod template created as a Pod (server dry run)
//!   there, which `enforce` rejects if it violates the standard;
//! - RBAC: the rendered ServiceAccount and (Cluster)Role(Binding)s applied, a token from
//!   `kubectl create token`, `kubectl auth can-i` as that identity, and the operator process
//!   run with that token and the rendered Deployment's settings through create → Ready →
//!   `kubectl delete` → gone, without a single "forbidden";
//! - leader election: two operator processes with the chart's identity and Lease; only the
//!   leader calls AWS; after a SIGKILL of the leader the other takes the Lease and carries on
//!   without creating anything twice.
//!
//! helm is `$HELM_BIN` or what `hack/build-binaries.sh` builds. It is built without the
//! version ldflags, so every `helm template`/`helm lint` here passes `--kube-version`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use connect_operator::aws::token::{create_token, delete_token};
use connect_sim::ConfigPatch;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, DynamicObject};
use serde::Deserialize as _;
use serde_json::{Value, json};

use test_kit::connect::{
    self, basic_spec, condition, create, describe, generation, manifest, status_str, uid, wait_for,
    wait_gone,
};
use test_kit::simulator::log_dir;
use test_kit::{
    DEADLINE, OperatorOptions, OperatorProcess, SimCall, Simulator, TestNamespace, client,
    control_plane, heavy_slot, kubectl, kubectl_ok, kubectl_with_input, random_suffix, wait_until,
};

/// The Kubernetes version `helm template`/`helm lint` render for (the control plane's).
const KUBE_VERSION: &str = "1.36.3";

/// Field manager of what these tests apply.
const FIELD_MANAGER: &str = "connect-operator-chart-tests";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart_dir() -> PathBuf {
    repo_root().join("charts/connect-operator")
}

// ---------------------------------------------------------------------------------------
// Running helm and kubectl
// ---------------------------------------------------------------------------------------

/// The outcome of one program run.
#[derive(Debug)]
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs a program to completion off the async runtime.
async fn run_program(
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
    HELM.get_or_init(|| {
        if let Some(helm) = std::env::var_os("HELM_BIN").filter(|helm| !helm.is_empty()) {
            let helm = PathBuf::from(helm);
            return if helm.is_file() {
                Ok(helm)
            } else {
                Err(format!("HELM_BIN={} is not a file", helm.display()))
            };
        }
        test_kit::control_plane::build_with_script("helm", "HELM_BIN")
    })
    .as_ref()
    .unwrap_or_else(|error| panic!("helm unavailable: {error}"))
}

async fn helm(args: &[&str]) -> Run {
    run_program(
        helm_bin().to_owned(),
        args.iter().map(|arg| (*arg).to_owned()).collect(),
        None,
        None,
    )
    .await
}

/// The shared control plane (started if needed), from async code.
async fn plane() -> &'static test_kit::control_plane::ControlPlane {
    tokio::task::spawn_blocking(control_plane)
        .await
        .expect("control plane start-up")
}

/// kubectl against the shared control plane with another identity's kubeconfig.
async fn kubectl_as(kubeconfig: &Path, args: &[&str]) -> Run {
    let kubectl = plane().await.kubectl.clone();
    let mut all = vec!["--kubeconfig".to_owned(), kubeconfig.display().to_string()];
    all.extend(args.iter().map(|arg| (*arg).to_owned()));
    run_program(kubectl, all, None, None).await
}

// ---------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------

/// The documents `helm template` rendered.
struct Rendered {
    docs: Vec<Value>,
}

impl Rendered {
    fn kinds(&self) -> BTreeSet<String> {
        self.docs.iter().map(kind_of).collect()
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.docs
            .iter()
            .filter(|doc| kind_of(doc) == kind)
            .collect()
    }

    fn one(&self, kind: &str) -> &Value {
        let docs = self.of_kind(kind);
        assert_eq!(docs.len(), 1, "expected one {kind}, got {}", docs.len());
        docs[0]
    }

    /// The selected documents as one YAML stream.
    fn yaml(&self, keep: impl Fn(&Value) -> bool) -> String {
        yaml_stream(self.docs.iter().filter(|doc| keep(doc)))
    }
}

fn kind_of(doc: &Value) -> String {
    doc["kind"].as_str().unwrap_or_default().to_owned()
}

fn name_of(doc: &Value) -> String {
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

fn parse_yaml_stream(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).expect("helm rendered valid YAML"))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// `helm template <release> <chart> --namespace <namespace> -f <values> <extra>`.
async fn render(release: &str, namespace: &str, values: &Value, extra: &[&str]) -> Rendered {
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

async fn render_raw(release: &str, namespace: &str, values: &Value, extra: &[&str]) -> Run {
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

/// A release name nobody else uses (cluster-scoped RBAC objects are named after it).
fn release_name(prefix: &str) -> String {
    format!("{prefix}-{}", random_suffix(5))
}

/// A simulator for a scenario: quick lifecycle, and Connect's CreateInstance/DeleteInstance
/// quota of 0.1/s lifted so timings measure the operator, not AWS's throttling.
async fn scenario_simulator(logs: &Path) -> Simulator {
    let sim = Simulator::start(
        logs,
        &["--creation-delay", "1s", "--deletion-delay", "500ms"],
    );
    sim.set_config(&ConfigPatch {
        rate_limits: Some(
            [("CreateInstance", Some(5.0)), ("DeleteInstance", Some(5.0))]
                .into_iter()
                .map(|(operation, rate)| (operation.to_owned(), rate))
                .collect(),
        ),
        ..ConfigPatch::default()
    })
    .await;
    sim
}

/// Values that point the chart at a simulator and make a test scenario quick, while the
/// rest stays at the chart's defaults.
fn scenario_values(sim_url: &str) -> Value {
    json!({
        "aws": {
            "region": "us-east-1",
            "endpointUrl": sim_url,
            "timeout": "5s",
            "createDeleteRate": 5,
            "apiRate": 50,
        },
        "reconcile": { "creationPollInterval": "300ms" },
        "logging": { "level": "info,connect_operator=debug" },
    })
}

/// Merges `patch` into `base` (objects recursively; anything else replaced).
fn merged(mut base: Value, patch: Value) -> Value {
    fn merge(base: &mut Value, patch: Value) {
        match (base, patch) {
            (Value::Object(base), Value::Object(patch)) => {
                for (key, value) in patch {
                    merge(base.entry(key).or_insert(Value::Null), value);
                }
            }
            (base, patch) => *base = patch,
        }
    }
    merge(&mut base, patch);
    base
}

/// The operator container of the rendered Deployment.
fn operator_container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    containers
        .iter()
        .find(|container| container["name"] == "operator")
        .expect("a container named operator")
}

/// The literal `env` of the operator container.
fn rendered_env(deployment: &Value) -> BTreeMap<String, String> {
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

// ---------------------------------------------------------------------------------------
// The chart's identity
// ---------------------------------------------------------------------------------------

/// The chart's ServiceAccount with its RBAC applied, and a kubeconfig with its token.
struct ChartIdentity {
    service_account: String,
    namespace: String,
    kubeconfig: PathBuf,
}

const RBAC_KINDS: &[&str] = &[
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

/// Applies the rendered ServiceAccount and RBAC objects (as the admin), creates a token for
/// the ServiceAccount with `kubectl create token` and writes a kubeconfig using it.
async fn install_identity(rendered: &Rendered, dir: &Path) -> ChartIdentity {
    let yaml = rendered.yaml(|doc| RBAC_KINDS.contains(&kind_of(doc).as_str()));
    let applied = kubectl_with_input(
        &[
            "apply",
            "--server-side",
            &format!("--field-manager={FIELD_MANAGER}"),
            "-f",
            "-",
        ],
        Some(&yaml),
    )
    .await;
    assert!(
        applied.success,
        "applying the chart's RBAC failed: {applied:?}\n{yaml}"
    );
    let service_account = rendered.one("ServiceAccount");
    let name = name_of(service_account);
    let namespace = service_account["metadata"]["namespace"]
        .as_str()
        .expect("ServiceAccount namespace")
        .to_owned();
    let token = kubectl_ok(&["create", "token", &name, "-n", &namespace, "--duration=2h"])
        .await
        .trim()
        .to_owned();
    assert!(!token.is_empty(), "kubectl create token printed nothing");
    let plane = plane().await;
    let kubeconfig = dir.join(format!("kubeconfig-{name}"));
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: local\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n\
             users:\n\
             - name: {name}\n  user:\n    token: {token}\n\
             contexts:\n\
             - name: {name}\n  context:\n    cluster: local\n    user: {name}\n    namespace: {namespace}\n\
             current-context: {name}\n",
            server = plane.server,
            ca = plane.ca_cert.display(),
        ),
    )
    .expect("writing the ServiceAccount kubeconfig");

    // The kubeconfig really is the ServiceAccount (not the admin).
    let whoami = kubectl_as(
        &kubeconfig,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    )
    .await;
    assert!(whoami.success, "kubectl auth whoami: {whoami:?}");
    assert_eq!(
        whoami.stdout.trim(),
        format!("system:serviceaccount:{namespace}:{name}")
    );
    ChartIdentity {
        service_account: name,
        namespace,
        kubeconfig,
    }
}

/// One `kubectl auth can-i` question and the expected answer.
struct CanI {
    verb: &'static str,
    resource: String,
    /// `Some(ns)`: `-n ns`; `None`: `--all-namespaces` (or cluster scope).
    namespace: Option<String>,
    subresource: Option<&'static str>,
    allowed: bool,
}

fn can(verb: &'static str, resource: &str, namespace: Option<&str>, allowed: bool) -> CanI {
    CanI {
        verb,
        resource: resource.to_owned(),
        namespace: namespace.map(str::to_owned),
        subresource: None,
        allowed,
    }
}

fn can_sub(
    verb: &'static str,
    resource: &str,
    subresource: &'static str,
    namespace: &str,
    allowed: bool,
) -> CanI {
    CanI {
        subresource: Some(subresource),
        ..can(verb, resource, Some(namespace), allowed)
    }
}

/// Asks every question as the identity; fails listing every wrong answer. Returns the
/// answers as a printable table.
async fn assert_can_i(identity: &ChartIdentity, questions: &[CanI]) -> String {
    let mut table = vec![];
    let mut wrong = vec![];
    for question in questions {
        let mut args = vec!["auth", "can-i", question.verb, &question.resource];
        let scope = match &question.namespace {
            Some(namespace) => {
                args.extend(["-n", namespace]);
                namespace.clone()
            }
            None => {
                args.push("--all-namespaces");
                "*".to_owned()
            }
        };
        let subresource = question
            .subresource
            .map(|sub| format!("--subresource={sub}"));
        if let Some(subresource) = &subresource {
            args.push(subresource);
        }
        let run = kubectl_as(&identity.kubeconfig, &args).await;
        let answer = run.stdout.trim();
        let allowed = if answer.starts_with("yes") {
            true
        } else if answer.starts_with("no") {
            false
        } else {
            panic!("kubectl {} gave no answer: {run:?}", args.join(" "));
        };
        let what = format!(
            "{} {}{} in {scope}",
            question.verb,
            question.resource,
            question
                .subresource
                .map(|sub| format!("/{sub}"))
                .unwrap_or_default()
        );
        table.push(format!(
            "  {:<3} {what}",
            if allowed { "yes" } else { "no" }
        ));
        if allowed != question.allowed {
            wrong.push(format!(
                "{what}: expected {}, got {}",
                if question.allowed { "yes" } else { "no" },
                if allowed { "yes" } else { "no" }
            ));
        }
    }
    let table = table.join("\n");
    assert!(
        wrong.is_empty(),
        "RBAC of system:serviceaccount:{}:{} is not what the chart promises:\n{}\nall answers:\n{table}",
        identity.namespace,
        identity.service_account,
        wrong.join("\n")
    );
    table
}

/// What the operator must never be able to do, wherever: read Secrets, touch other
/// resources, create or delete ConnectInstances, or anything through wildcards.
fn forbidden_everywhere(namespaces: &[&str]) -> Vec<CanI> {
    let mut questions = vec![];
    for namespace in namespaces.iter().map(|ns| Some(*ns)).chain([None]) {
        for (verb, resource) in [
            ("get", "secrets"),
            ("list", "secrets"),
            ("watch", "secrets"),
            ("get", "configmaps"),
            ("create", "configmaps"),
            ("get", "pods"),
            ("create", "pods"),
            ("get", "deployments.apps"),
            ("create", "deployments.apps"),
            ("create", "serviceaccounts"),
            ("create", "rolebindings.rbac.authorization.k8s.io"),
            ("create", "connectinstances.connect.operators.dev"),
            ("delete", "connectinstances.connect.operators.dev"),
            ("deletecollection", "connectinstances.connect.operators.dev"),
            ("delete", "events"),
            ("*", "*"),
            ("get", "*"),
            ("*", "connectinstances.connect.operators.dev"),
        ] {
            questions.push(can(verb, resource, namespace, false));
        }
        if let Some(namespace) = namespace {
            questions.push(can_sub(
                "create",
                "serviceaccounts",
                "token",
                namespace,
                false,
            ));
        }
    }
    for (verb, resource) in [
        ("get", "customresourcedefinitions.apiextensions.k8s.io"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
        ("update", "customresourcedefinitions.apiextensions.k8s.io"),
        ("get", "nodes"),
        ("list", "namespaces"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
        ("escalate", "clusterroles.rbac.authorization.k8s.io"),
        ("bind", "clusterroles.rbac.authorization.k8s.io"),
        ("impersonate", "users"),
        ("impersonate", "serviceaccounts"),
    ] {
        questions.push(can(verb, resource, None, false));
    }
    questions
}

/// What the operator needs in a namespace it watches.
fn needed_in(namespace: &str, allowed: bool) -> Vec<CanI> {
    let mut questions = vec![];
    for verb in ["get", "list", "watch", "patch", "update"] {
        questions.push(can(
            verb,
            "connectinstances.connect.operators.dev",
            Some(namespace),
            allowed,
        ));
    }
    for sub in ["status", "finalizers"] {
        for verb in ["patch", "update"] {
            questions.push(can_sub(
                verb,
                "connectinstances.connect.operators.dev",
                sub,
                namespace,
                allowed,
            ));
        }
    }
    for resource in ["events", "events.events.k8s.io"] {
        for verb in ["create", "patch"] {
            questions.push(can(verb, resource, Some(namespace), allowed));
        }
    }
    questions
}

/// Operator options from the rendered Deployment: every literal env var of the container
/// (those the harness sets as flags are passed as the same flags, which win over its fast
/// defaults), and the downward-API variables as the kubelet would fill them in.
fn options_from_deployment(
    deployment: &Value,
    watch_namespace: &str,
    sim_url: &str,
    kubeconfig: &Path,
    pod_name: &str,
) -> OperatorOptions {
    const AS_FLAGS: &[(&str, &str)] = &[
        ("AWS_REGION", "region"),
        ("CONNECT_OPERATOR_DRIFT_INTERVAL", "drift-interval"),
        (
            "CONNECT_OPERATOR_CREATION_POLL_INTERVAL",
            "creation-poll-interval",
        ),
        (
            "CONNECT_OPERATOR_QUOTA_RETRY_INTERVAL",
            "quota-retry-interval",
        ),
        ("CONNECT_OPERATOR_CONCURRENCY", "concurrency"),
        ("CONNECT_OPERATOR_CREATE_DELETE_RATE", "create-delete-rate"),
        ("CONNECT_OPERATOR_API_RATE", "api-rate"),
        ("CONNECT_OPERATOR_AWS_TIMEOUT", "aws-timeout"),
        ("CONNECT_OPERATOR_LOG_FORMAT", "log-format"),
    ];
    let container = operator_container(deployment);
    assert_eq!(
        container["args"],
        json!(["run"]),
        "the container runs `connect-operator run`"
    );
    let release_namespace = deployment["metadata"]["namespace"]
        .as_str()
        .expect("Deployment namespace");
    let mut options = OperatorOptions::new(watch_namespace, sim_url);
    options.kubeconfig = Some(kubeconfig.to_owned());
    for var in container["env"].as_array().expect("env") {
        let name = var["name"].as_str().expect("env name");
        let value = if let Some(value) = var["value"].as_str() {
            value.to_owned()
        } else {
            match var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.name") => pod_name.to_owned(),
                Some("metadata.namespace") => release_namespace.to_owned(),
                other => panic!("env {name} has a source the test cannot emulate: {other:?}"),
            }
        };
        match name {
            // The harness passes these as flags (which win over the environment).
            "CONNECT_OPERATOR_WATCH_NAMESPACE" => assert_eq!(value, watch_namespace),
            "AWS_ENDPOINT_URL" => assert_eq!(value, sim_url),
            "CONNECT_OPERATOR_METRICS_ADDR" => {}
            _ => match AS_FLAGS.iter().find(|(env, _)| *env == name) {
                Some((_, flag)) => options = options.flag(flag, &value),
                None => options.envs.push((name.to_owned(), value)),
            },
        }
    }
    options
}

// ---------------------------------------------------------------------------------------
// Lint, schema, CRDs
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn chart_lints_strictly_with_every_ci_values_file() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart_dir().join("ci"))
        .expect("charts/connect-operator/ci")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "ci/ has too few values files: {files:?}");
    let chart = chart_dir().display().to_string();
    for file in &files {
        let file = file.display().to_string();
        let run = helm(&[
            "lint",
            "--strict",
            &chart,
            "-f",
            &file,
            "--kube-version",
            KUBE_VERSION,
        ])
        .await;
        assert!(run.success, "helm lint --strict -f {file}:\n{}", run.text());
        assert!(
            run.stdout.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{}",
            run.text()
        );
        // Templates render with these values too (lint does not fail on a `fail` call in
        // every helm version).
        let rendered = helm(&[
            "template",
            "ci",
            &chart,
            "-f",
            &file,
            "--kube-version",
            KUBE_VERSION,
        ])
        .await;
        assert!(
            rendered.success,
            "helm template -f {file}:\n{}",
            rendered.text()
        );
    }
    // Lint sees the values: a wrong type fails it.
    let bad = helm(&[
        "lint",
        "--strict",
        &chart,
        "--set",
        "aws.region=us-east-1",
        "--set",
        "replicaCount=two",
        "--kube-version",
        KUBE_VERSION,
    ])
    .await;
    assert!(
        !bad.success,
        "helm lint accepted replicaCount=two:\n{}",
        bad.text()
    );
    assert!(bad.text().contains("/replicaCount"), "{}", bad.text());
}

#[tokio::test]
async fn chart_rejects_bad_values_with_a_clear_message() {
    let client = client().await;
    let namespace = TestNamespace::create(&client, "chart-values").await.name;
    let kubeconfig = plane().await.kubeconfig.display().to_string();
    let chart = chart_dir().display().to_string();
    let region = ["--set", "aws.region=us-east-1"];
    let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        (
            "replicaCount=two",
            [&region[..], &["--set", "replicaCount=two"]].concat(),
            vec!["/replicaCount", "got string, want integer"],
        ),
        (
            "unknown log format",
            [&region[..], &["--set", "logging.format=xml"]].concat(),
            vec!["/logging/format", "value must be one of 'json', 'text'"],
        ),
        ("missing aws.region", vec![], vec!["aws.region is required"]),
        (
            "malformed aws.region",
            vec!["--set", "aws.region=US East"],
            vec!["/aws/region"],
        ),
        (
            "misspelt key",
            [&region[..], &["--set", "replicas=2"]].concat(),
            vec!["additional properties 'replicas' not allowed"],
        ),
        (
            "unknown nested key",
            [&region[..], &["--set", "aws.regoin=eu-west-2"]].concat(),
            vec!["/aws", "additional properties 'regoin' not allowed"],
        ),
        (
            "bad duration",
            [
                &region[..],
                &["--set", "reconcile.driftInterval=ten minutes"],
            ]
            .concat(),
            vec!["/reconcile/driftInterval"],
        ),
        (
            "two replicas without leader election",
            [
                &region[..],
                &[
                    "--set",
                    "replicaCount=2",
                    "--set",
                    "leaderElection.enabled=false",
                ],
            ]
            .concat(),
            vec!["leaderElection.enabled=false with replicaCount=2"],
        ),
        (
            "grace period not above the AWS timeout",
            [&region[..], &["--set", "terminationGracePeriodSeconds=30"]].concat(),
            vec!["terminationGracePeriodSeconds (30) must be greater than aws.timeout (30s)"],
        ),
    ];
    let mut report = vec![];
    for (what, values, expected) in &cases {
        // helm template (client side) and helm install against the real API server.
        let template = helm(
            &[
                &["template", "bad", &chart, "--kube-version", KUBE_VERSION][..],
                values.as_slice(),
            ]
            .concat(),
        )
        .await;
        let install = helm(
            &[
                &[
                    "install",
                    "bad",
                    &chart,
                    "--dry-run=server",
                    "--kubeconfig",
                    &kubeconfig,
                    "--namespace",
                    &namespace,
                ][..],
                values.as_slice(),
            ]
            .concat(),
        )
        .await;
        for (command, run) in [("helm template", &template), ("helm install", &install)] {
            assert!(
                !run.success,
                "{command} accepted bad values ({what}): {values:?}"
            );
            for needle in expected {
                assert!(
                    run.stderr.contains(needle),
                    "{command} with {what} ({values:?}) failed without {needle:?}:\n{}",
                    run.text()
                );
            }
        }
        report.push(format!(
            "  {what}: {}",
            install.stderr.lines().collect::<Vec<_>>().join(" | ")
        ));
    }
    // Control: the same helm install with good values passes the same path.
    let good = helm(&[
        "install",
        "good",
        &chart,
        "--dry-run=server",
        "--kubeconfig",
        &kubeconfig,
        "--namespace",
        &namespace,
        "--set",
        "aws.region=us-east-1",
    ])
    .await;
    assert!(
        good.success,
        "helm install --dry-run=server with good values:\n{}",
        good.text()
    );
    eprintln!(
        "bad values rejected by helm install:\n{}",
        report.join("\n")
    );
}

#[test]
fn chart_crds_are_identical_to_generated_crds() {
    let root = repo_root();
    let check = Command::new("bash")
        .arg(root.join("hack/sync-chart-crds.sh"))
        .arg("--check")
        .output()
        .expect("running hack/sync-chart-crds.sh --check");
    assert!(
        check.status.success(),
        "chart CRDs drifted from crds/:\n{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // The same, byte for byte, in Rust.
    let names = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| name.ends_with(".yaml"))
            .collect()
    };
    let generated = root.join("crds");
    let charted = chart_dir().join("crds");
    assert!(!names(&generated).is_empty(), "no CRDs in crds/");
    assert_eq!(names(&generated), names(&charted));
    for name in names(&generated) {
        assert!(
            std::fs::read(generated.join(&name)).expect("crds/")
                == std::fs::read(charted.join(&name)).expect("chart crds/"),
            "{name} differs"
        );
    }

    // The check notices drift: a copy of the layout with one changed byte fails it.
    let scratch = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir_all(scratch.path().join("hack")).expect("hack/");
    std::fs::create_dir_all(scratch.path().join("crds")).expect("crds/");
    std::fs::create_dir_all(scratch.path().join("charts/connect-operator/crds")).expect("chart");
    std::fs::copy(
        root.join("hack/sync-chart-crds.sh"),
        scratch.path().join("hack/sync-chart-crds.sh"),
    )
    .expect("copying the script");
    for name in names(&generated) {
        let text = std::fs::read_to_string(generated.join(&name)).expect("CRD");
        std::fs::write(scratch.path().join("crds").join(&name), &text).expect("copy");
        std::fs::write(
            scratch
                .path()
                .join("charts/connect-operator/crds")
                .join(&name),
            text.replacen("ConnectInstance", "ConnectInstanse", 1),
        )
        .expect("drifted copy");
    }
    let drifted = Command::new("bash")
        .arg(scratch.path().join("hack/sync-chart-crds.sh"))
        .arg("--check")
        .output()
        .expect("running the copied script");
    assert!(!drifted.status.success(), "--check missed a drifted CRD");
    assert!(
        String::from_utf8_lossy(&drifted.stderr).contains("differs from crds/"),
        "{}",
        String::from_utf8_lossy(&drifted.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// Server-side dry run under the restricted Pod Security Standard
// ---------------------------------------------------------------------------------------

/// A ServiceMonitor CRD that only makes the kind exist (schema: anything), so rendered
/// ServiceMonitors can be applied in a cluster without prometheus-operator.
const SERVICE_MONITOR_STUB_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names:
    kind: ServiceMonitor
    listKind: ServiceMonitorList
    plural: servicemonitors
    singular: servicemonitor
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"#;

/// A Pod made of the Deployment's pod template, as the ReplicaSet controller would create.
fn pod_from_template(deployment: &Value, name: &str) -> Value {
    let template = &deployment["spec"]["template"];
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": deployment["metadata"]["namespace"],
            "labels": template["metadata"]["labels"],
        },
        "spec": template["spec"],
    })
}

/// Applies everything rendered with a server-side dry run, then creates (for real) the
/// ServiceAccount and creates the pod template as a Pod with a server-side dry run.
/// Returns (apply, pod) runs.
async fn dry_run_in(namespace: &str, rendered: &Rendered, label: &str) -> (Run, Run) {
    let all = rendered.yaml(|_| true);
    let apply = kubectl_with_input(
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            &format!("--field-manager={FIELD_MANAGER}"),
            "-f",
            "-",
        ],
        Some(&all),
    )
    .await;
    let service_accounts = rendered.yaml(|doc| kind_of(doc) == "ServiceAccount");
    let created = kubectl_with_input(
        &[
            "apply",
            "--server-side",
            &format!("--field-manager={FIELD_MANAGER}"),
            "-f",
            "-",
        ],
        Some(&service_accounts),
    )
    .await;
    assert!(created.success, "creating the ServiceAccount: {created:?}");
    let pod = pod_from_template(rendered.one("Deployment"), &format!("psa-check-{label}"));
    let pod = kubectl_with_input(
        &["create", "--dry-run=server", "-n", namespace, "-f", "-"],
        Some(&serde_yaml::to_string(&pod).expect("pod YAML")),
    )
    .await;
    (
        Run {
            success: apply.success,
            stdout: apply.stdout,
            stderr: apply.stderr,
        },
        Run {
            success: pod.success,
            stdout: pod.stdout,
            stderr: pod.stderr,
        },
    )
}

#[tokio::test]
async fn chart_renders_apply_server_side_under_restricted_pod_security() {
    let client = client().await;
    let namespace = TestNamespace::create(&client, "chart-psa").await.name;
    let watched = TestNamespace::create(&client, "chart-psa-watched")
        .await
        .name;
    kubectl_ok(&[
        "label",
        "namespace",
        &namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
        "pod-security.kubernetes.io/audit=restricted",
        "--overwrite",
    ])
    .await;
    let stub = kubectl_with_input(
        &[
            "apply",
            "--server-side",
            &format!("--field-manager={FIELD_MANAGER}"),
            "-f",
            "-",
        ],
        Some(SERVICE_MONITOR_STUB_CRD),
    )
    .await;
    assert!(stub.success, "ServiceMonitor stub CRD: {stub:?}");
    kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/servicemonitors.monitoring.coreos.com",
        "--timeout=60s",
    ])
    .await;

    let region = json!({ "aws": { "region": "us-east-1" } });
    let ha_values = chart_dir().join("ci/ha-values.yaml").display().to_string();
    let watch_override = format!("watchNamespace={watched}");
    let sets: Vec<(&str, Value, Vec<&str>)> = vec![
        ("default", region.clone(), vec![]),
        (
            "replicas-2",
            merged(region.clone(), json!({ "replicaCount": 2 })),
            vec![],
        ),
        (
            "watch-namespace",
            merged(region.clone(), json!({ "watchNamespace": watched })),
            vec![],
        ),
        (
            "monitoring",
            merged(
                region.clone(),
                json!({
                    "metrics": { "serviceMonitor": { "enabled": true } },
                    "networkPolicy": { "enabled": true },
                }),
            ),
            vec![],
        ),
        (
            "ci-ha",
            json!({}),
            vec!["-f", &ha_values, "--set", &watch_override],
        ),
    ];

    let mut summary = vec![];
    for (label, values, extra) in &sets {
        let release = release_name(&format!("psa-{label}"));
        let rendered = render(
            &release,
            &namespace,
            values,
            &[&["--include-crds"][..], extra].concat(),
        )
        .await;
        let kinds = rendered.kinds();
        let env = rendered_env(rendered.one("Deployment"));
        // What each value set must render.
        match *label {
            "default" => {
                assert!(
                    kinds.contains("ClusterRole") && !kinds.contains("Role"),
                    "{kinds:?}"
                );
                assert!(!kinds.contains("PodDisruptionBudget"), "{kinds:?}");
                assert_eq!(env["CONNECT_OPERATOR_LEADER_ELECTION"], "false");
            }
            "replicas-2" => {
                assert!(kinds.contains("PodDisruptionBudget"), "{kinds:?}");
                assert!(kinds.contains("Role"), "leader-election Role: {kinds:?}");
                assert_eq!(env["CONNECT_OPERATOR_LEADER_ELECTION"], "true");
            }
            "watch-namespace" | "ci-ha" => {
                assert!(!kinds.contains("ClusterRole"), "{kinds:?}");
                assert!(!kinds.contains("ClusterRoleBinding"), "{kinds:?}");
                let watched_roles: Vec<&Value> = rendered
                    .of_kind("Role")
                    .into_iter()
                    .filter(|role| role["metadata"]["namespace"] == watched.as_str())
                    .collect();
                assert_eq!(watched_roles.len(), 1, "a Role in {watched}");
                assert_eq!(env["CONNECT_OPERATOR_WATCH_NAMESPACE"], watched);
            }
            _ => {}
        }
        if *label == "monitoring" || *label == "ci-ha" {
            assert!(kinds.contains("ServiceMonitor"), "{kinds:?}");
            assert!(kinds.contains("NetworkPolicy"), "{kinds:?}");
        }
        let deployment = rendered.one("Deployment");
        let container = operator_container(deployment);
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/livez");
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");

        let (apply, pod) = dry_run_in(&namespace, &rendered, label).await;
        assert!(
            apply.success,
            "kubectl apply --server-side --dry-run=server of {label} failed:\n{}",
            apply.text()
        );
        assert!(
            !apply.stderr.contains("Warning") && !apply.stderr.contains("PodSecurity"),
            "warnings applying {label}:\n{}",
            apply.stderr
        );
        let applied = apply.stdout.matches("(server dry run)").count();
        assert_eq!(
            applied,
            rendered.docs.len(),
            "every rendered object applied:\n{}",
            apply.stdout
        );
        assert!(
            pod.success && !pod.stderr.contains("Warning"),
            "the pod template of {label} is rejected under enforce=restricted:\n{}",
            pod.text()
        );
        summary.push(format!("  {label}: {kinds:?}"));
    }

    // The check can fail: a pod template that allows privilege escalation is warned about
    // on the Deployment and rejected as a Pod.
    let release = release_name("psa-bad");
    let rendered = render(
        &release,
        &namespace,
        &merged(
            region,
            json!({ "securityContext": { "allowPrivilegeEscalation": true } }),
        ),
        &[],
    )
    .await;
    let (apply, pod) = dry_run_in(&namespace, &rendered, "bad").await;
    assert!(
        apply
            .stderr
            .contains("would violate PodSecurity \"restricted"),
        "no PodSecurity warning for allowPrivilegeEscalation=true:\n{}",
        apply.text()
    );
    assert!(
        !pod.success && pod.stderr.contains("violates PodSecurity"),
        "a privilege-escalating pod was admitted under enforce=restricted:\n{}",
        pod.text()
    );
    eprintln!(
        "server-side dry run under restricted Pod Security, no warnings:\n{}",
        summary.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// RBAC: the chart's ServiceAccount runs the operator
// ---------------------------------------------------------------------------------------

/// Runs the operator with the chart's identity and settings through create → Ready →
/// `kubectl delete` → gone in `watch_namespace`; returns its log.
async fn lifecycle_as_chart_identity(
    test: &str,
    logs: &Path,
    client: &Client,
    sim: &Simulator,
    rendered: &Rendered,
    identity: &ChartIdentity,
    watch_namespace: &str,
) -> String {
    let options = options_from_deployment(
        rendered.one("Deployment"),
        watch_namespace,
        &sim.url,
        &identity.kubeconfig,
        &format!("{}-5d8f7c9b4-x2x7q", name_of(rendered.one("Deployment"))),
    );
    let mut operator = OperatorProcess::start(logs, options).await;
    let api = connect::api(client, watch_namespace);
    let name = "chart-identity";
    let alias = format!("chart-{}", random_suffix(8));
    create(&api, &manifest(name, basic_spec(&alias)))
        .await
        .expect("creating the ConnectInstance");
    let ready = wait_for(
        &api,
        name,
        "Ready=True for the current generation",
        DEADLINE,
        |object| {
            condition(object, "Ready").is_some_and(|ready| {
                ready.status == "True" && ready.observed_generation == Some(generation(object))
            })
        },
    )
    .await;
    let object_uid = uid(&ready);
    let instance_id = status_str(&ready, "instanceId").expect("status.instanceId");
    let events = connect::events(client, watch_namespace, name).await;
    assert!(
        !events.is_empty(),
        "the operator recorded no Events with the chart's RBAC"
    );

    let deleted = kubectl(&[
        "delete",
        "connectinstance",
        name,
        "-n",
        watch_namespace,
        "--timeout=60s",
    ])
    .await;
    assert!(deleted.success, "kubectl delete: {deleted:?}");
    wait_gone(&api, name, DEADLINE).await;
    assert!(
        sim.instance(&instance_id).await.is_none(),
        "instance {instance_id} still exists after the object is gone"
    );

    let calls = sim.calls().await;
    let creates: Vec<&SimCall> = calls
        .iter()
        .filter(|call| call.operation == "CreateInstance")
        .collect();
    assert_eq!(creates.len(), 1, "{creates:?}");
    assert_eq!(
        creates[0].client_token.as_deref(),
        Some(create_token(&object_uid).as_str())
    );
    assert!(
        calls.iter().any(|call| call.operation == "DeleteInstance"
            && call.client_token.as_deref() == Some(delete_token(&object_uid).as_str())),
        "no DeleteInstance with the UID token: {calls:?}"
    );

    operator.stop();
    let log = std::fs::read_to_string(operator.log_path()).expect("operator log");
    let forbidden: Vec<&str> = log
        .lines()
        .filter(|line| line.to_ascii_lowercase().contains("forbidden"))
        .collect();
    assert!(
        forbidden.is_empty(),
        "{test}: the operator hit RBAC denials with the chart's ServiceAccount:\n{}",
        forbidden.join("\n")
    );
    assert!(
        log.contains("starting connect-operator"),
        "unexpected log:\n{log}"
    );
    log
}

#[tokio::test]
async fn chart_rbac_cluster_role_is_least_privilege_and_runs_the_operator() {
    const TEST: &str = "chart_rbac_cluster_role_is_least_privilege_and_runs_the_operator";
    let _slot = heavy_slot().await;
    let started = Instant::now();
    let client = client().await;
    let namespace = TestNamespace::create(&client, "chart-rbac").await.name;
    let other = TestNamespace::create(&client, "chart-rbac-other")
        .await
        .name;
    let logs = log_dir(TEST);
    let sim = scenario_simulator(&logs).await;
    let release = release_name("rbac");
    let rendered = render(&release, &namespace, &scenario_values(&sim.url), &[]).await;
    let kinds = rendered.kinds();
    assert!(
        kinds.contains("ClusterRole") && kinds.contains("ClusterRoleBinding"),
        "{kinds:?}"
    );
    assert!(
        !kinds.contains("Role"),
        "no leader election with one replica: {kinds:?}"
    );
    let identity = install_identity(&rendered, &logs).await;

    let mut questions = needed_in(&namespace, true);
    questions.extend(needed_in(&other, true));
    for verb in ["list", "watch"] {
        questions.push(can(
            verb,
            "connectinstances.connect.operators.dev",
            None,
            true,
        ));
    }
    questions.extend(forbidden_everywhere(&[&namespace, &other]));
    // No leader election with one replica: no Lease rights at all.
    for verb in ["get", "create", "patch"] {
        questions.push(can(
            verb,
            "leases.coordination.k8s.io",
            Some(&namespace),
            false,
        ));
    }
    let table = assert_can_i(&identity, &questions).await;

    let log =
        lifecycle_as_chart_identity(TEST, &logs, &client, &sim, &rendered, &identity, &namespace)
            .await;
    assert!(
        log.contains("\"leader_election\":false") || log.contains("leader_election=false"),
        "the chart's CONNECT_OPERATOR_LEADER_ELECTION=false reached the operator"
    );
    eprintln!(
        "{TEST}: {} can-i answers as system:serviceaccount:{namespace}:{} as expected; \
         create → Ready → delete → gone with no \"forbidden\" in {:.1?}\n{table}",
        questions.len(),
        identity.service_account,
        started.elapsed()
    );
}

#[tokio::test]
async fn chart_rbac_watch_namespace_role_is_confined_and_runs_the_operator() {
    const TEST: &str = "chart_rbac_watch_namespace_role_is_confined_and_runs_the_operator";
    let _slot = heavy_slot().await;
    let started = Instant::now();
    let client = client().await;
    let release_namespace = TestNamespace::create(&client, "chart-role").await.name;
    let watched = TestNamespace::create(&client, "chart-role-watched")
        .await
        .name;
    let logs = log_dir(TEST);
    let sim = scenario_simulator(&logs).await;
    let release = release_name("role");
    let rendered = render(
        &release,
        &release_namespace,
        &merged(
            scenario_values(&sim.url),
            json!({ "watchNamespace": watched }),
        ),
        &[],
    )
    .await;
    let kinds = rendered.kinds();
    assert!(
        !kinds.contains("ClusterRole") && !kinds.contains("ClusterRoleBinding"),
        "watchNamespace must not grant cluster-wide rights: {kinds:?}"
    );
    let identity = install_identity(&rendered, &logs).await;

    let mut questions = needed_in(&watched, true);
    // Nothing outside the watched namespace, not even in its own.
    questions.extend(needed_in(&release_namespace, false));
    for verb in ["get", "list", "watch"] {
        questions.push(can(
            verb,
            "connectinstances.connect.operators.dev",
            None,
            false,
        ));
    }
    questions.extend(forbidden_everywhere(&[&watched, &release_namespace]));
    let table = assert_can_i(&identity, &questions).await;

    lifecycle_as_chart_identity(TEST, &logs, &client, &sim, &rendered, &identity, &watched).await;
    eprintln!(
        "{TEST}: {} can-i answers as expected; create → Ready → delete → gone in {watched} \
         with no \"forbidden\" in {:.1?}\n{table}",
        questions.len(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// Leader election
// ---------------------------------------------------------------------------------------

/// The sum of `connect_operator_aws_calls_total` over all label sets (0 when absent).
fn aws_calls_total(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with("connect_operator_aws_calls_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn lease_holder(client: &Client, namespace: &str, name: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    leases
        .get_opt(name)
        .await
        .expect("reading the Lease")
        .and_then(|lease| lease.spec)
        .and_then(|spec| spec.holder_identity)
}

fn is_ready_now(object: &DynamicObject) -> bool {
    condition(object, "Ready").is_some_and(|ready| {
        ready.status == "True" && ready.observed_generation == Some(generation(object))
    })
}

#[tokio::test]
async fn chart_leader_election_hands_over_after_leader_crash_without_duplicate_create() {
    const TEST: &str =
        "chart_leader_election_hands_over_after_leader_crash_without_duplicate_create";
    const LEASE_DURATION: u64 = 6;
    const MARGIN: Duration = Duration::from_secs(30);
    let _slot = heavy_slot().await;
    let started = Instant::now();
    let client = client().await;
    let namespace = TestNamespace::create(&client, "chart-leader").await.name;
    let logs = log_dir(TEST);
    let sim = scenario_simulator(&logs).await;

    // Two replicas: the chart turns leader election on and grants the Lease.
    let release = release_name("leader");
    let rendered = render(
        &release,
        &namespace,
        &merged(scenario_values(&sim.url), json!({ "replicaCount": 2 })),
        &[],
    )
    .await;
    let deployment = rendered.one("Deployment");
    let env = rendered_env(deployment);
    assert_eq!(env["CONNECT_OPERATOR_LEADER_ELECTION"], "true");
    let lease_name = env["CONNECT_OPERATOR_LEASE_NAME"].clone();
    let identity = install_identity(&rendered, &logs).await;
    assert_can_i(
        &identity,
        &[
            can(
                "get",
                &format!("leases.coordination.k8s.io/{lease_name}"),
                Some(&namespace),
                true,
            ),
            can(
                "patch",
                &format!("leases.coordination.k8s.io/{lease_name}"),
                Some(&namespace),
                true,
            ),
            can(
                "create",
                "leases.coordination.k8s.io",
                Some(&namespace),
                true,
            ),
            can(
                "get",
                "leases.coordination.k8s.io/someone-else",
                Some(&namespace),
                false,
            ),
            can(
                "patch",
                "leases.coordination.k8s.io/someone-else",
                Some(&namespace),
                false,
            ),
            can(
                "delete",
                &format!("leases.coordination.k8s.io/{lease_name}"),
                Some(&namespace),
                false,
            ),
            can(
                "list",
                "leases.coordination.k8s.io",
                Some(&namespace),
                false,
            ),
            can(
                "create",
                "leases.coordination.k8s.io",
                Some("kube-system"),
                false,
            ),
        ],
    )
    .await;

    let replica = |id: &str| {
        let dir = logs.join(id);
        std::fs::create_dir_all(&dir).expect("log directory");
        let options =
            options_from_deployment(deployment, &namespace, &sim.url, &identity.kubeconfig, id)
                .flag("identity", id)
                .flag("lease-namespace", &namespace)
                .flag("lease-name", &lease_name)
                .flag("lease-duration-seconds", &LEASE_DURATION.to_string())
                .flag("lease-grace-seconds", "2");
        (dir, options)
    };
    let (dir_a, options_a) = replica("a");
    let (dir_b, options_b) = replica("b");
    // Started together: the follower never turns ready, so the harness waits its grace
    // period for it; meanwhile the other takes the Lease.
    let (operator_a, operator_b) = tokio::join!(
        OperatorProcess::start(&dir_a, options_a),
        OperatorProcess::start(&dir_b, options_b),
    );
    let leader_id = wait_until("a Lease holder", DEADLINE, || async {
        match lease_holder(&client, &namespace, &lease_name).await {
            Some(holder) if holder == "a" || holder == "b" => Ok(holder),
            other => Err(format!("holder {other:?}")),
        }
    })
    .await;
    let (mut leader, follower, follower_id) = if leader_id == "a" {
        (operator_a, operator_b, "b")
    } else {
        (operator_b, operator_a, "a")
    };
    wait_until("the leader's /readyz", DEADLINE, || async {
        if leader.endpoint_ok("/readyz").await {
            Ok(())
        } else {
            Err("not ready".to_owned())
        }
    })
    .await;
    let follower_ready = follower.endpoint_ok("/readyz").await;

    // The leader reconciles; the follower makes no AWS call.
    let api = connect::api(&client, &namespace);
    let first = create(
        &api,
        &manifest(
            "first",
            basic_spec(&format!("le-first-{}", random_suffix(6))),
        ),
    )
    .await
    .expect("creating first");
    let first_ready = wait_for(&api, "first", "Ready", DEADLINE, is_ready_now).await;
    let first_instance = status_str(&first_ready, "instanceId").expect("instanceId");
    let sim_calls = wait_until(
        "the leader's metrics to count every simulator call",
        Duration::from_secs(10),
        || async {
            let leader_calls = aws_calls_total(&leader.metrics().await);
            let sim_calls = sim.calls().await.len() as f64;
            if leader_calls == sim_calls {
                Ok(sim_calls)
            } else {
                Err(format!(
                    "leader counted {leader_calls}, the simulator saw {sim_calls}"
                ))
            }
        },
    )
    .await;
    let follower_metrics = follower.metrics().await;
    assert_eq!(
        aws_calls_total(&follower_metrics),
        0.0,
        "the follower called AWS:\n{follower_metrics}"
    );
    assert_eq!(
        lease_holder(&client, &namespace, &lease_name)
            .await
            .as_deref(),
        Some(leader_id.as_str()),
        "the Lease changed hands without a failure"
    );

    // Crash the leader; a new object arrives while nobody leads.
    leader.kill();
    let killed = Instant::now();
    let second = create(
        &api,
        &manifest(
            "second",
            basic_spec(&format!("le-second-{}", random_suffix(6))),
        ),
    )
    .await
    .expect("creating second");
    wait_until(
        "the follower to take the Lease",
        Duration::from_secs(LEASE_DURATION) + MARGIN,
        || async {
            match lease_holder(&client, &namespace, &lease_name).await {
                Some(holder) if holder == follower_id => Ok(()),
                other => Err(format!("holder {other:?}")),
            }
        },
    )
    .await;
    let takeover = killed.elapsed();
    let second_ready = wait_for(&api, "second", "Ready", DEADLINE, is_ready_now).await;
    let second_ready_after = killed.elapsed();

    // Nothing created twice: one accepted CreateInstance per object, with its UID token;
    // the first object's CreateInstance was never sent again by the new leader.
    let calls = sim.calls().await;
    let mut creates: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for call in calls
        .iter()
        .filter(|call| call.operation == "CreateInstance")
    {
        let entry = creates
            .entry(call.client_token.clone().unwrap_or_default())
            .or_default();
        entry.0 += 1;
        if call.succeeded() {
            entry.1 += 1;
        }
    }
    let first_token = create_token(&uid(&first));
    let second_token = create_token(&uid(&second));
    assert_eq!(
        creates.keys().collect::<BTreeSet<_>>(),
        [&first_token, &second_token].into_iter().collect(),
        "CreateInstance (sent, accepted) by ClientToken: {creates:?}"
    );
    assert_eq!(
        creates[&first_token],
        (1, 1),
        "the first object's CreateInstance (sent, accepted): {creates:?}"
    );
    assert_eq!(
        creates[&second_token].1, 1,
        "the second object's CreateInstance (sent, accepted): {creates:?}"
    );
    assert_eq!(sim.instances().await.len(), 2);
    let first_after = api.get("first").await.expect("first");
    assert!(is_ready_now(&first_after), "{}", describe(&first_after));
    assert_eq!(
        status_str(&first_after, "instanceId").as_deref(),
        Some(first_instance.as_str()),
        "the new leader kept the first instance"
    );
    assert_ne!(
        status_str(&second_ready, "instanceId"),
        Some(first_instance.clone())
    );
    assert!(
        aws_calls_total(&follower.metrics().await) > 0.0,
        "the new leader calls AWS"
    );
    assert!(
        takeover <= Duration::from_secs(LEASE_DURATION) + MARGIN,
        "takeover took {takeover:.1?}"
    );
    eprintln!(
        "{TEST}: leader {leader_id} (follower /readyz {}), SIGKILLed; {follower_id} held the \
         Lease {takeover:.1?} later (lease duration {LEASE_DURATION}s) and had a new object \
         Ready {second_ready_after:.1?} after the kill; CreateInstance (sent, accepted) by \
         token: {creates:?}; {sim_calls:.0} Connect calls before the kill, all counted by the \
         leader, none by the follower; test took {:.1?}",
        if follower_ready { "200" } else { "503" },
        started.elapsed()
    );
    for dir in [&dir_a, &dir_b] {
        let log = std::fs::read_to_string(dir.join("operator.log")).expect("operator log");
        let forbidden: Vec<&str> = log
            .lines()
            .filter(|line| line.to_ascii_lowercase().contains("forbidden"))
            .collect();
        assert!(
            forbidden.is_empty(),
            "RBAC denials in {}:\n{}",
            dir.display(),
            forbidden.join("\n")
        );
    }
    drop(follower);
}
