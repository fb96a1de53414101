//! The chart's identity: the rendered ServiceAccount and RBAC applied, a kubeconfig with a
//! token from `kubectl create token` (checked with `kubectl auth whoami`), `kubectl auth
//! can-i` questions asked as it, and operator options taken from the rendered Deployment
//! the way the kubelet would fill in its environment.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use test_kit::{OperatorOptions, kubectl_ok};

use super::helm::{Rendered, kind_of, kubectl_as, name_of, operator_container, plane};

/// The chart's ServiceAccount with its RBAC applied, and a kubeconfig with its token.
pub(super) struct ChartIdentity {
    pub(super) service_account: String,
    pub(super) namespace: String,
    pub(super) kubeconfig: PathBuf,
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
pub(super) async fn install_identity(rendered: &Rendered, dir: &Path) -> ChartIdentity {
    let yaml = rendered.yaml(|doc| RBAC_KINDS.contains(&kind_of(doc).as_str()));
    let applied = super::apply_server_side(&yaml).await;
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
pub(super) struct CanI {
    verb: &'static str,
    resource: String,
    /// `Some(ns)`: `-n ns`; `None`: `--all-namespaces` (or cluster scope).
    namespace: Option<String>,
    subresource: Option<&'static str>,
    allowed: bool,
}

pub(super) fn can(
    verb: &'static str,
    resource: &str,
    namespace: Option<&str>,
    allowed: bool,
) -> CanI {
    CanI {
        verb,
        resource: resource.to_owned(),
        namespace: namespace.map(str::to_owned),
        subresource: None,
        allowed,
    }
}

pub(super) fn can_sub(
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

/// A question about a subresource of a cluster-scoped resource (asked cluster-wide).
pub(super) fn can_sub_cluster(
    verb: &'static str,
    resource: &str,
    subresource: &'static str,
    allowed: bool,
) -> CanI {
    CanI {
        subresource: Some(subresource),
        ..can(verb, resource, None, allowed)
    }
}

/// Asks every question as the identity; fails listing every wrong answer. Returns the
/// answers as a printable table.
pub(super) async fn assert_can_i(identity: &ChartIdentity, questions: &[CanI]) -> String {
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

/// Operator options from the rendered Deployment: every literal env var of the container
/// (those the harness sets as flags are passed as the same flags, which win over its fast
/// defaults), and the downward-API variables as the kubelet would fill them in.
pub(super) fn options_from_deployment(
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
            // The harness serves each test its own accounts and the shared default one
            // (`--account-selector`, which wins over the environment).
            "CONNECT_OPERATOR_ACCOUNT_SELECTOR" => {}
            _ => match AS_FLAGS.iter().find(|(env, _)| *env == name) {
                Some((_, flag)) => options = options.flag(flag, &value),
                None => options.envs.push((name.to_owned(), value)),
            },
        }
    }
    options
}
