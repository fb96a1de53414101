//! Least-privilege RBAC: the rendered ServiceAccount and (Cluster)Role(Binding)s applied,
//! `kubectl auth can-i` as that identity for what the operator needs and for what it must
//! never do, and the operator process run with that token and the rendered Deployment's
//! settings through account Ready → instance create → Ready → account deletion waiting for
//! the instance → `kubectl delete` → both gone, without a single "forbidden"; with
//! `watchNamespace` set, every right on ConnectInstances is confined to that namespace, and
//! only the cluster-scoped account rules (ConnectAccounts, that one namespace's metadata,
//! listing ConnectInstances, account events in `default`) reach beyond it.

use std::path::Path;
use std::time::Instant;

use connect_operator::aws::token::{create_token, delete_token};
use k8s_openapi::api::core::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use test_kit::connect::{
    self, basic_spec, condition, create, generation, manifest, status_str, uid, wait_for, wait_gone,
};
use test_kit::control_plane::ACCOUNT_SCOPE_LABEL;
use test_kit::simulator::log_dir;
use test_kit::{
    DEADLINE, OperatorProcess, SimCall, Simulator, TestNamespace, client, heavy_slot, kubectl,
    random_suffix, wait_until,
};

use super::accounts::{ACCOUNT, ACCOUNT_FINALIZER, account_api};
use super::helm::{Rendered, name_of, render};
use super::identity::{
    CanI, ChartIdentity, assert_can_i, can, can_sub, can_sub_cluster, install_identity,
    options_from_deployment,
};
use super::{merged, release_name, scenario_simulator, scenario_values};

/// What the operator must never be able to do, wherever: read Secrets, touch other
/// resources, create or delete ConnectInstances or ConnectAccounts, write namespaces, or
/// anything through wildcards.
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
        ("create", "namespaces"),
        ("update", "namespaces"),
        ("patch", "namespaces"),
        ("delete", "namespaces"),
        ("deletecollection", "namespaces"),
        ("create", "connectaccounts.connect.operators.dev"),
        ("delete", "connectaccounts.connect.operators.dev"),
        ("deletecollection", "connectaccounts.connect.operators.dev"),
        ("*", "connectaccounts.connect.operators.dev"),
        ("delete", "connectattemptledgers.connect.operators.dev"),
        ("patch", "connectattemptledgers.connect.operators.dev"),
        ("*", "connectattemptledgers.connect.operators.dev"),
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
    needed_in_where(namespace, |_, _| allowed)
}

/// The questions of [`needed_in`], each expected as `allowed(verb, resource)` says.
fn needed_in_where(namespace: &str, allowed: impl Fn(&str, &str) -> bool) -> Vec<CanI> {
    const INSTANCES: &str = "connectinstances.connect.operators.dev";
    let mut questions = vec![];
    for verb in ["get", "list", "watch", "patch", "update"] {
        questions.push(can(
            verb,
            INSTANCES,
            Some(namespace),
            allowed(verb, INSTANCES),
        ));
    }
    for sub in ["status", "finalizers"] {
        for verb in ["patch", "update"] {
            questions.push(can_sub(
                verb,
                INSTANCES,
                sub,
                namespace,
                allowed(verb, &format!("{INSTANCES}/{sub}")),
            ));
        }
    }
    for resource in ["events", "events.events.k8s.io"] {
        for verb in ["create", "patch"] {
            questions.push(can(
                verb,
                resource,
                Some(namespace),
                allowed(verb, resource),
            ));
        }
    }
    questions
}

/// What the operator needs for accounts, in either mode: ConnectAccounts (read, the
/// finalizer, the status) cluster-wide, and events about them in `default`; namespaces are
/// checked by each test (all, or only the watched one).
fn needed_for_accounts() -> Vec<CanI> {
    let mut questions = vec![];
    for verb in ["get", "list", "watch", "patch", "update"] {
        questions.push(can(
            verb,
            "connectaccounts.connect.operators.dev",
            None,
            true,
        ));
    }
    for sub in ["status", "finalizers"] {
        for verb in ["patch", "update"] {
            questions.push(can_sub_cluster(
                verb,
                "connectaccounts.connect.operators.dev",
                sub,
                true,
            ));
        }
    }
    // The attempt ledgers: read, created, replaced with their resourceVersion.
    for verb in ["get", "list", "watch", "create", "update"] {
        questions.push(can(
            verb,
            "connectattemptledgers.connect.operators.dev",
            None,
            true,
        ));
    }
    for verb in ["create", "patch"] {
        questions.push(can(verb, "events.events.k8s.io", Some("default"), true));
    }
    // ConnectInstances in every namespace: listed (does anything still use an account
    // being deleted?), nothing else.
    questions.push(can(
        "list",
        "connectinstances.connect.operators.dev",
        None,
        true,
    ));
    questions
}

/// The ClusterRole of the account rules, and the ClusterRoleBinding of that name.
fn accounts_cluster_role(rendered: &Rendered) -> &Value {
    let roles = rendered.of_kind("ClusterRole");
    let role = roles
        .iter()
        .find(|role| name_of(role).ends_with("-accounts"))
        .unwrap_or_else(|| panic!("no <fullname>-accounts ClusterRole: {roles:?}"));
    assert!(
        rendered
            .of_kind("ClusterRoleBinding")
            .iter()
            .any(|binding| binding["roleRef"]["name"] == role["metadata"]["name"]),
        "the accounts ClusterRole is not bound"
    );
    role
}

/// A ConnectAccount only this test's operator serves (the harness's `--account-selector`
/// takes the shared default account and the ones labelled with the watched namespace), for
/// `watch_namespace` only, by its `kubernetes.io/metadata.name` label.
fn test_account(name: &str, watch_namespace: &str) -> Value {
    json!({
        "apiVersion": "connect.operators.dev/v1alpha1",
        "kind": ACCOUNT,
        "metadata": {
            "name": name,
            "labels": { ACCOUNT_SCOPE_LABEL: watch_namespace },
        },
        "spec": {
            "namespaceSelector": {
                "matchLabels": { "kubernetes.io/metadata.name": watch_namespace },
            },
        },
    })
}

/// Events about the ConnectAccount `name` (recorded in `default`, as for every
/// cluster-scoped object).
async fn account_events(client: &Client, name: &str) -> Vec<(String, String)> {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    events
        .list(&ListParams::default())
        .await
        .expect("listing events in default")
        .items
        .into_iter()
        .filter(|event| {
            event.involved_object.kind.as_deref() == Some(ACCOUNT)
                && event.involved_object.name.as_deref() == Some(name)
        })
        .map(|event| {
            (
                event.reason.unwrap_or_default(),
                event.message.unwrap_or_default(),
            )
        })
        .collect()
}

/// Runs the operator with the chart's identity and settings in `watch_namespace`: a
/// ConnectAccount of the test verified (Ready, `status.accountId`, finalizer), an instance
/// using it created → Ready, the account's deletion waiting for the instance (finalizer kept,
/// `AccountInUse` event in `default`), then `kubectl delete` of the instance → both gone.
/// Returns the operator's log.
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
    let accounts = account_api(client);
    let account = format!("chart-identity-{}", random_suffix(6));
    create(&accounts, &test_account(&account, watch_namespace))
        .await
        .expect("creating the ConnectAccount");
    let verified = wait_for(
        &accounts,
        &account,
        "Ready=True (credentials verified), status.accountId and the finalizer",
        DEADLINE,
        |object| {
            condition(object, "Ready").is_some_and(|ready| {
                ready.status == "True" && ready.reason == "CredentialsVerified"
            }) && status_str(object, "accountId").is_some()
                && object
                    .metadata
                    .finalizers
                    .as_ref()
                    .is_some_and(|f| f.iter().any(|f| f == ACCOUNT_FINALIZER))
        },
    )
    .await;
    let account_id = status_str(&verified, "accountId").expect("status.accountId");

    let api = connect::api(client, watch_namespace);
    let name = "chart-identity";
    let alias = format!("chart-{}", random_suffix(8));
    let mut spec = basic_spec(&alias);
    spec["accountRef"] = json!({ "name": account });
    create(&api, &manifest(name, spec))
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
    assert_eq!(
        status_str(&ready, "accountId").as_deref(),
        Some(account_id.as_str()),
        "the instance's status.accountId is its account's"
    );
    let events = connect::events(client, watch_namespace, name).await;
    assert!(
        !events.is_empty(),
        "the operator recorded no Events with the chart's RBAC"
    );

    // The account cannot go while the instance uses it: the operator lists ConnectInstances
    // in every namespace, keeps the finalizer and says why in an event in `default`.
    let deleting = kubectl(&["delete", "connectaccount", &account, "--wait=false"]).await;
    assert!(
        deleting.success,
        "kubectl delete connectaccount: {deleting:?}"
    );
    let in_use = wait_until("an AccountInUse event in default", DEADLINE, || async {
        let events = account_events(client, &account).await;
        events
            .iter()
            .find(|(reason, _)| reason == "AccountInUse")
            .cloned()
            .ok_or_else(|| format!("events about {account}: {events:?}"))
    })
    .await;
    assert!(
        in_use.1.contains(&format!("{watch_namespace}/{name}")),
        "the AccountInUse event names the instance: {in_use:?}"
    );
    let held = accounts
        .get(&account)
        .await
        .expect("the account waits for its instance");
    assert!(
        held.metadata.deletion_timestamp.is_some(),
        "{account} is not being deleted"
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
    // With its last user gone, the operator releases the account.
    wait_gone(&accounts, &account, DEADLINE).await;

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
        "no leader election with one replica, no events Role (the ClusterRole covers default): {kinds:?}"
    );
    // Cluster-wide, the accounts ClusterRole adds nothing on ConnectInstances (the main
    // ClusterRole lists them already) and reads every namespace.
    let accounts_role = accounts_cluster_role(&rendered);
    assert!(
        !accounts_role["rules"]
            .to_string()
            .contains("connectinstances")
            && !accounts_role["rules"].to_string().contains("resourceNames"),
        "{accounts_role}"
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
    questions.extend(needed_for_accounts());
    // Every namespace's labels, read-only (the writes are in forbidden_everywhere).
    for verb in ["get", "list", "watch"] {
        questions.push(can(verb, "namespaces", None, true));
    }
    questions.extend(forbidden_everywhere(&[&namespace, &other, "default"]));
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
         account Ready → create → Ready → account deletion waits → delete → both gone with \
         no \"forbidden\" in {:.1?}\n{table}",
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
    // The only cluster-wide rights are the account rules (ConnectAccounts and namespaces are
    // cluster-scoped): one ClusterRole, whose only rule on ConnectInstances is list, and
    // which names the watched namespace as the only one it may read.
    let cluster_roles: Vec<String> = rendered
        .of_kind("ClusterRole")
        .into_iter()
        .map(name_of)
        .collect();
    let accounts_role = accounts_cluster_role(&rendered);
    assert_eq!(cluster_roles, vec![name_of(accounts_role)]);
    assert_eq!(rendered.of_kind("ClusterRoleBinding").len(), 1);
    let rules = accounts_role["rules"].as_array().expect("rules");
    let on_instances: Vec<&Value> = rules
        .iter()
        .filter(|rule| rule["resources"].to_string().contains("connectinstances"))
        .collect();
    assert_eq!(
        on_instances,
        vec![&json!({
            "apiGroups": ["connect.operators.dev"],
            "resources": ["connectinstances"],
            "verbs": ["list"],
        })]
    );
    assert!(
        rules
            .iter()
            .any(|rule| rule["resources"] == json!(["namespaces"])
                && rule["resourceNames"] == json!([watched])),
        "{accounts_role}"
    );
    let identity = install_identity(&rendered, &logs).await;

    let mut questions = needed_in(&watched, true);
    // Nothing outside the watched namespace, not even in its own, except listing
    // ConnectInstances (which the account rules allow everywhere).
    questions.extend(needed_in_where(&release_namespace, |verb, resource| {
        verb == "list" && resource == "connectinstances.connect.operators.dev"
    }));
    // Listing them in every namespace is in needed_for_accounts; nothing more.
    for (verb, allowed) in [("get", false), ("watch", false)] {
        questions.push(can(
            verb,
            "connectinstances.connect.operators.dev",
            None,
            allowed,
        ));
    }
    questions.extend(needed_for_accounts());
    // Only the watched namespace's metadata: by name (the operator's field selector), not a
    // list of all of them, and no other namespace.
    for verb in ["get", "list", "watch"] {
        questions.push(can(verb, &format!("namespaces/{watched}"), None, true));
        questions.push(can(
            verb,
            &format!("namespaces/{release_namespace}"),
            None,
            false,
        ));
    }
    for verb in ["list", "watch"] {
        questions.push(can(verb, "namespaces", None, false));
    }
    // In default only account events (events.k8s.io), nothing else.
    for verb in ["create", "patch"] {
        questions.push(can(verb, "events", Some("default"), false));
    }
    for verb in ["get", "list", "delete"] {
        questions.push(can(verb, "events.events.k8s.io", Some("default"), false));
    }
    questions.extend(forbidden_everywhere(&[
        &watched,
        &release_namespace,
        "default",
    ]));
    let table = assert_can_i(&identity, &questions).await;

    lifecycle_as_chart_identity(TEST, &logs, &client, &sim, &rendered, &identity, &watched).await;
    eprintln!(
        "{TEST}: {} can-i answers as expected; account Ready → create → Ready → account \
         deletion waits → delete → both gone in {watched} with no \"forbidden\" in {:.1?}\n{table}",
        questions.len(),
        started.elapsed()
    );
}
