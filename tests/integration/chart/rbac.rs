//! Least-privilege RBAC: the rendered ServiceAccount and (Cluster)Role(Binding)s applied,
//! `kubectl auth can-i` as that identity for what the operator needs and for what it must
//! never do, and the operator process run with that token and the rendered Deployment's
//! settings through create → Ready → `kubectl delete` → gone without a single
//! "forbidden"; with `watchNamespace` set, every right is confined to that namespace.

use std::path::Path;
use std::time::Instant;

use connect_operator::aws::token::{create_token, delete_token};
use kube::Client;
use serde_json::json;

use test_kit::connect::{
    self, basic_spec, condition, create, generation, manifest, status_str, uid, wait_for, wait_gone,
};
use test_kit::simulator::log_dir;
use test_kit::{
    DEADLINE, OperatorProcess, SimCall, Simulator, TestNamespace, client, heavy_slot, kubectl,
    random_suffix,
};

use super::helm::{Rendered, name_of, render};
use super::identity::{
    CanI, ChartIdentity, assert_can_i, can, can_sub, install_identity, options_from_deployment,
};
use super::{merged, release_name, scenario_simulator, scenario_values};

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
