//! Rendering under the `restricted` Pod Security Standard: `helm template` for several value
//! sets, applied with `kubectl apply --server-side --dry-run=server` into a namespace that
//! enforces (and warns on) the standard without a warning, and the Deployment's pod template
//! created as a Pod (server dry run) there, which `enforce` rejects if it violates the
//! standard. A privilege-escalating pod template shows that the check can fail.

use serde_json::{Value, json};

use test_kit::{TestNamespace, client, kubectl_ok, kubectl_with_input};

use super::helm::{Rendered, Run, kind_of, operator_container, render, rendered_env};
use super::{FIELD_MANAGER, IMAGE_REPOSITORY, chart_dir, merged, release_name};

/// prometheus-operator's own ServiceMonitor and PrometheusRule CRDs (`$MONITORING_CRDS`, or
/// what `hack/build-binaries.sh` copies out of its Go module), so the chart's monitoring
/// objects are validated against their real schemas without prometheus-operator running.
fn monitoring_crds() -> Vec<String> {
    let dir = super::helm::go_built_tool("MONITORING_CRDS", "monitoring-crds")
        .unwrap_or_else(|error| panic!("the prometheus-operator CRDs are unavailable: {error}"));
    ["servicemonitors", "prometheusrules"]
        .iter()
        .map(|kind| {
            std::fs::read_to_string(dir.join(format!("{kind}.yaml")))
                .unwrap_or_else(|error| panic!("{kind}.yaml in {}: {error}", dir.display()))
        })
        .collect()
}

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
    let created = super::apply_server_side(&service_accounts).await;
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
    for crd in monitoring_crds() {
        let applied = super::apply_server_side(&crd).await;
        assert!(applied.success, "a prometheus-operator CRD: {applied:?}");
    }
    for crd in ["servicemonitors", "prometheusrules"] {
        kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            &format!("crd/{crd}.monitoring.coreos.com"),
            "--timeout=60s",
        ])
        .await;
    }

    let region = json!({
        "image": { "repository": IMAGE_REPOSITORY },
        "aws": { "region": "us-east-1" },
    });
    let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
    let ha_values = chart_dir().join("ci/ha-values.yaml").display().to_string();
    let accounts_values = chart_dir()
        .join("ci/accounts-values.yaml")
        .display()
        .to_string();
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
                    "metrics": {
                        "serviceMonitor": { "enabled": true },
                        "prometheusRule": { "enabled": true },
                        "dashboard": { "enabled": true },
                    },
                    "networkPolicy": { "enabled": true },
                }),
            ),
            vec![],
        ),
        (
            "pinned-digest",
            merged(
                region.clone(),
                json!({ "image": { "tag": "9.9.9", "digest": digest } }),
            ),
            vec![],
        ),
        (
            "ci-ha",
            json!({}),
            vec!["-f", &ha_values, "--set", &watch_override],
        ),
        ("ci-accounts", json!({}), vec!["-f", &accounts_values]),
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
                // ConnectAccount/default (also applied, with a server-side dry run, below).
                assert_eq!(
                    rendered.one("ConnectAccount")["metadata"]["name"],
                    "default"
                );
            }
            "ci-accounts" => {
                assert_eq!(
                    rendered.one("ConnectAccount")["metadata"]["name"],
                    "payments"
                );
                assert_eq!(
                    env["CONNECT_OPERATOR_ACCOUNT_SELECTOR"],
                    "connect.operators.dev/operator=payments"
                );
            }
            "replicas-2" => {
                assert!(kinds.contains("PodDisruptionBudget"), "{kinds:?}");
                assert!(kinds.contains("Role"), "leader-election Role: {kinds:?}");
                assert_eq!(env["CONNECT_OPERATOR_LEADER_ELECTION"], "true");
            }
            "watch-namespace" | "ci-ha" => {
                // The only cluster-wide rights: the account rules (cluster-scoped
                // resources), see rbac.rs.
                for kind in ["ClusterRole", "ClusterRoleBinding"] {
                    let names: Vec<String> = rendered
                        .of_kind(kind)
                        .into_iter()
                        .map(|doc| {
                            doc["metadata"]["name"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned()
                        })
                        .collect();
                    assert!(
                        names.len() == 1 && names[0].ends_with("-accounts"),
                        "{kind}: {names:?}"
                    );
                }
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
        // The image: repository:appVersion, or repository@digest (the tag ignored).
        let image = operator_container(rendered.one("Deployment"))["image"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match *label {
            "pinned-digest" => assert_eq!(image, format!("{IMAGE_REPOSITORY}@{digest}")),
            "ci-ha" => assert!(
                image.starts_with(&format!("{IMAGE_REPOSITORY}@sha256:")),
                "{image}"
            ),
            _ => assert_eq!(
                image,
                format!("{IMAGE_REPOSITORY}:{}", env!("CARGO_PKG_VERSION"))
            ),
        }
        if *label == "monitoring" || *label == "ci-ha" {
            for kind in [
                "ServiceMonitor",
                "NetworkPolicy",
                "PrometheusRule",
                "ConfigMap",
            ] {
                assert!(kinds.contains(kind), "{label}: no {kind} in {kinds:?}");
            }
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
