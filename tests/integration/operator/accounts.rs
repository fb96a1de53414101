//! Several AWS accounts from one operator: each object's calls use its ConnectAccount's
//! assumed role and land in that account (the simulator's view, from the SigV4 scope); a
//! namespace the account does not select never reaches AWS, and recovers by itself when
//! the selector changes or the account appears; a refused AssumeRole shows on the account
//! and on its objects and recovers when allowed; a throttled account does not delay
//! another; deleting an account waits for its objects; admission refuses bad accounts.

use std::collections::BTreeMap;

use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use serde_json::{Value, json};

use test_kit::connect::{
    self, basic_spec, condition, create, describe, is_true, manifest, status_str, wait_for,
    wait_gone,
};
use test_kit::control_plane::ACCOUNT_SCOPE_LABEL;
use test_kit::{DEADLINE, TestNamespace, kubectl_with_input, random_suffix};

use super::Scenario;

const ROLE_A: &str = "arn:aws:iam::111111111111:role/connect-operator";
const ROLE_B: &str = "arn:aws:iam::222222222222:role/connect-operator";
const ROLE_C: &str = "arn:aws:iam::333333333333:role/connect-operator";

fn accounts_api(client: &Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("connect.operators.dev", "v1alpha1", "ConnectAccount"),
        "connectaccounts",
    );
    Api::all_with(client.clone(), &resource)
}

/// Applies a ConnectAccount that only this scenario's operator serves.
pub(super) async fn apply_account(s: &Scenario, name: &str, spec: Value) -> DynamicObject {
    let account: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "connect.operators.dev/v1alpha1",
        "kind": "ConnectAccount",
        "metadata": {"name": name, "labels": {ACCOUNT_SCOPE_LABEL: s.namespace}},
        "spec": spec,
    }))
    .expect("a ConnectAccount");
    accounts_api(&s.client)
        .patch(
            name,
            &PatchParams::apply("e2e-test").force(),
            &Patch::Apply(&account),
        )
        .await
        .unwrap_or_else(|error| panic!("applying ConnectAccount {name}: {error}"))
}

pub(super) async fn wait_account(
    s: &Scenario,
    name: &str,
    what: &str,
    accept: impl Fn(&DynamicObject) -> bool,
) -> DynamicObject {
    wait_for(&accounts_api(&s.client), name, what, DEADLINE, accept).await
}

fn ready_reason(object: &DynamicObject) -> Option<(String, String)> {
    condition(object, "Ready").map(|c| (c.status, c.reason))
}

/// Labels a namespace.
async fn label_namespace(client: &Client, namespace: &str, labels: &BTreeMap<&str, &str>) {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            namespace,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": labels}})),
        )
        .await
        .unwrap_or_else(|error| panic!("labelling namespace {namespace}: {error}"));
}

/// The reasons of the events on a (cluster-scoped) account; they are in `default`.
async fn account_event_reasons(client: &Client, name: &str) -> Vec<String> {
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    events
        .list(&Default::default())
        .await
        .expect("listing events")
        .items
        .into_iter()
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some("ConnectAccount")
                && e.involved_object.name.as_deref() == Some(name)
        })
        .filter_map(|e| e.reason)
        .collect()
}

fn with_account(alias: &str, account: &str) -> Value {
    let mut spec = basic_spec(alias);
    spec["accountRef"] = json!({"name": account});
    spec
}

#[tokio::test]
async fn instances_land_in_their_accounts_and_unselected_namespaces_never_reach_aws() {
    let client = test_kit::client().await;
    let team_b = TestNamespace::create(&client, "accounts-team-b").await.name;
    let team_c = TestNamespace::create(&client, "accounts-team-c").await.name;
    let s = Scenario::start_watching(
        "instances_land_in_their_accounts_and_unselected_namespaces_never_reach_aws",
        &["--creation-delay", "300ms", "--deletion-delay", "300ms"],
        &[],
        &[&team_b, &team_c],
    )
    .await;
    label_namespace(&s.client, &s.namespace, &BTreeMap::from([("team", "a")])).await;
    label_namespace(&s.client, &team_b, &BTreeMap::from([("team", "b")])).await;
    label_namespace(&s.client, &team_c, &BTreeMap::from([("team", "c")])).await;
    s.sim
        .require_external_ids(&[(ROLE_A, "team-a-external")])
        .await;

    let suffix = random_suffix(5);
    let account_a = format!("team-a-{suffix}");
    let account_b = format!("team-b-{suffix}");
    apply_account(
        &s,
        &account_a,
        json!({"roleArn": ROLE_A, "externalId": "team-a-external",
               "namespaceSelector": {"matchLabels": {"team": "a"}}}),
    )
    .await;
    apply_account(
        &s,
        &account_b,
        json!({"roleArn": ROLE_B,
               "namespaceSelector": {"matchExpressions": [
                   {"key": "team", "operator": "In", "values": ["b"]}]}}),
    )
    .await;
    for (name, id) in [(&account_a, "111111111111"), (&account_b, "222222222222")] {
        let account = wait_account(&s, name, "Ready=True/CredentialsVerified", |a| {
            ready_reason(a) == Some(("True".into(), "CredentialsVerified".into()))
        })
        .await;
        assert_eq!(status_str(&account, "accountId").as_deref(), Some(id));
    }

    // Team A's object in account A, team B's in account B, team C's names account B, whose
    // selector leaves team C out, and a fourth names an account that does not exist yet.
    let api_b = connect::api(&s.client, &team_b);
    let api_c = connect::api(&s.client, &team_c);
    let alias = |team: &str| format!("acct-{team}-{suffix}");
    create(
        &s.api,
        &manifest("in-a", with_account(&alias("a"), &account_a)),
    )
    .await
    .expect("create in-a");
    create(
        &api_b,
        &manifest("in-b", with_account(&alias("b"), &account_b)),
    )
    .await
    .expect("create in-b");
    create(
        &api_c,
        &manifest("in-c", with_account(&alias("c"), &account_b)),
    )
    .await
    .expect("create in-c");
    let later = format!("later-{suffix}");
    create(
        &s.api,
        &manifest("later", with_account(&alias("later"), &later)),
    )
    .await
    .expect("create later");

    let in_a = s.wait_ready("in-a").await;
    let in_b = wait_for(&api_b, "in-b", "Ready=True", DEADLINE, |o| {
        is_true(o, "Ready", Some("Available"))
    })
    .await;
    assert_eq!(
        status_str(&in_a, "accountId").as_deref(),
        Some("111111111111")
    );
    assert_eq!(
        status_str(&in_b, "accountId").as_deref(),
        Some("222222222222")
    );
    let in_c = wait_for(
        &api_c,
        "in-c",
        "Stalled=True/AccountNotAllowed",
        DEADLINE,
        |o| is_true(o, "Stalled", Some("AccountNotAllowed")),
    )
    .await;
    let message = condition(&in_c, "Ready").expect("Ready").message;
    assert!(
        message.contains(&account_b) && message.contains(&team_c),
        "{}",
        describe(&in_c)
    );
    let waiting = s
        .wait_for("later", "Stalled=True/AccountNotFound", |o| {
            is_true(o, "Stalled", Some("AccountNotFound"))
        })
        .await;
    assert!(
        condition(&waiting, "Ready")
            .is_some_and(|c| c.reason == "AccountNotFound" && c.message.contains(&later)),
        "{}",
        describe(&waiting)
    );

    // The simulator's view: each instance in its own account, nothing for team C or the
    // missing account anywhere, and no call in the default account.
    let a = s.sim.instances_in("111111111111").await;
    let b = s.sim.instances_in("222222222222").await;
    let aliases = |list: &[test_kit::simulator::SimInstance]| -> Vec<String> {
        list.iter().filter_map(|i| i.alias.clone()).collect()
    };
    assert_eq!(aliases(&a), vec![alias("a")]);
    assert_eq!(aliases(&b), vec![alias("b")]);
    assert!(a[0].arn.contains(":111111111111:"), "{:?}", a[0]);
    let everything = s.sim.instances().await;
    assert!(
        everything
            .iter()
            .all(|i| i.alias != Some(alias("c")) && i.alias != Some(alias("later"))),
        "{everything:?}"
    );
    let default_calls: Vec<_> = s
        .sim
        .calls_in("123456789012")
        .await
        .into_iter()
        .filter(|c| c.operation != "AssumeRole" && c.operation != "GetCallerIdentity")
        .collect();
    assert!(default_calls.is_empty(), "{default_calls:?}");
    let creates = s.sim.calls_of("CreateInstance").await;
    assert_eq!(creates.len(), 2, "{creates:?}");

    // The selector now takes team C in, and the missing account appears: both recover by
    // themselves (the account and namespace watches wake them), no edit of the objects.
    apply_account(
        &s,
        &account_b,
        json!({"roleArn": ROLE_B,
               "namespaceSelector": {"matchExpressions": [
                   {"key": "team", "operator": "In", "values": ["b", "c"]}]}}),
    )
    .await;
    apply_account(
        &s,
        &later,
        json!({"roleArn": ROLE_A, "externalId": "team-a-external",
        "namespaceSelector": {}}),
    )
    .await;
    wait_for(
        &api_c,
        "in-c",
        "Ready=True after the selector changed",
        DEADLINE,
        |o| is_true(o, "Ready", Some("Available")),
    )
    .await;
    s.wait_ready("later").await;
    let b = s.sim.instances_in("222222222222").await;
    assert_eq!(b.len(), 2, "{b:?}");
    assert_eq!(s.sim.instances_in("111111111111").await.len(), 2);

    // Deleting an account that objects use waits, and says why; it goes once they are gone.
    accounts_api(&s.client)
        .delete(&account_b, &DeleteParams::default())
        .await
        .expect("delete account B");
    let held = wait_account(&s, &account_b, "deletion waiting on its users", |a| {
        a.metadata.deletion_timestamp.is_some()
    })
    .await;
    assert!(
        held.metadata.finalizers.as_ref().is_some_and(|f| f
            .iter()
            .any(|f| f == "connect.operators.dev/account-in-use")),
        "{held:?}"
    );
    test_kit::wait_until("an AccountInUse event", DEADLINE, || async {
        let reasons = account_event_reasons(&s.client, &account_b).await;
        if reasons.iter().any(|reason| reason == "AccountInUse") {
            Ok(())
        } else {
            Err(format!("{reasons:?}"))
        }
    })
    .await;
    for (api, name) in [(&api_b, "in-b"), (&api_c, "in-c")] {
        api.delete(name, &DeleteParams::default())
            .await
            .expect("delete");
        wait_gone(api, name, DEADLINE).await;
    }
    wait_gone(&accounts_api(&s.client), &account_b, DEADLINE).await;
    assert!(s.sim.instances_in("222222222222").await.is_empty());
    for name in ["in-a", "later"] {
        s.api
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
        wait_gone(&s.api, name, DEADLINE).await;
    }
    for name in [&account_a, &later] {
        accounts_api(&s.client)
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete account");
        wait_gone(&accounts_api(&s.client), name, DEADLINE).await;
    }
    // Two roles assumed, objects created and deleted through them: no secret in the log.
    assert_no_secret_in_log(&s).await;
}

#[tokio::test]
async fn a_refused_assume_role_shows_on_the_account_and_its_objects_and_recovers() {
    let s = Scenario::start(
        "a_refused_assume_role_shows_on_the_account_and_its_objects_and_recovers",
        &["--creation-delay", "300ms", "--refuse-assume-role", ROLE_C],
        &[("access-denied-retry-interval", "1s")],
    )
    .await;
    let account = format!("refused-{}", random_suffix(5));
    apply_account(
        &s,
        &account,
        json!({"roleArn": ROLE_C, "namespaceSelector": {}}),
    )
    .await;
    let refused = wait_account(&s, &account, "Ready=False/AssumeRoleFailed", |a| {
        ready_reason(a) == Some(("False".into(), "AssumeRoleFailed".into()))
    })
    .await;
    let message = condition(&refused, "Ready").expect("Ready").message;
    assert!(message.contains(ROLE_C), "{message}");

    let alias = format!("refused-{}", random_suffix(5));
    create(&s.api, &manifest("blocked", with_account(&alias, &account)))
        .await
        .expect("create");
    let blocked = s
        .wait_for("blocked", "Ready=False/AccessDenied", |o| {
            condition(o, "Ready").is_some_and(|c| c.reason == "AccessDenied")
        })
        .await;
    let message = condition(&blocked, "Ready").expect("Ready").message;
    assert!(message.contains("credentials"), "{}", describe(&blocked));
    // Not a single Connect call reached account C; no secret shows anywhere.
    let in_c: Vec<_> = s
        .sim
        .calls_in("333333333333")
        .await
        .into_iter()
        .filter(|c| c.operation != "AssumeRole")
        .collect();
    assert!(in_c.is_empty(), "{in_c:?}");
    let yaml = serde_yaml::to_string(&s.get("blocked").await).expect("yaml");
    for secret in secrets_of(&s).await {
        assert!(
            !yaml.contains(&secret),
            "a secret in the object's YAML:\n{yaml}"
        );
    }

    s.sim.refuse_assume_role(&[]).await;
    wait_account(&s, &account, "Ready=True once allowed", |a| {
        ready_reason(a) == Some(("True".into(), "CredentialsVerified".into()))
    })
    .await;
    let ready = s.wait_ready("blocked").await;
    assert_eq!(
        status_str(&ready, "accountId").as_deref(),
        Some("333333333333")
    );
    assert_eq!(s.sim.instances_in("333333333333").await.len(), 1);
    assert_no_secret_in_log(&s).await;

    s.api
        .delete("blocked", &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&s.api, "blocked", DEADLINE).await;
    accounts_api(&s.client)
        .delete(&account, &DeleteParams::default())
        .await
        .expect("delete account");
    wait_gone(&accounts_api(&s.client), &account, DEADLINE).await;
}

/// Every secret the scenario's operator holds: the static secret access key it was given and
/// the secret keys and session tokens the simulator's STS issued to it.
async fn secrets_of(s: &Scenario) -> Vec<String> {
    let issued = s.sim.issued_credentials().await;
    let mut secrets = vec![s.operator.static_secret().to_owned()];
    for credentials in issued {
        secrets.push(credentials.secret_access_key);
        secrets.push(credentials.session_token);
    }
    secrets
}

/// The operator's log holds none of the secrets it was given or issued. Fails if STS issued
/// none (the scenario assumed no role: the check would look for nothing but the static key).
async fn assert_no_secret_in_log(s: &Scenario) {
    let secrets = secrets_of(s).await;
    assert!(secrets.len() > 1, "STS issued no credentials");
    let log = std::fs::read_to_string(s.operator.log_path()).expect("reading the operator's log");
    assert!(!log.is_empty(), "the operator's log is empty");
    for secret in &secrets {
        if let Some(line) = log.lines().find(|line| line.contains(secret.as_str())) {
            panic!("a secret in the operator's log: {line}");
        }
    }
}

#[tokio::test]
async fn a_throttled_account_does_not_delay_another() {
    // The simulator allows one CreateInstance per 20 s in each account; the operator's own
    // limit is faster, so account A's burst of creations is throttled by AWS.
    let s = Scenario::start(
        "a_throttled_account_does_not_delay_another",
        &[
            "--creation-delay",
            "300ms",
            "--instance-quota",
            "10",
            "--rate-limit",
            "CreateInstance=0.05/1",
        ],
        &[("create-delete-rate", "5")],
    )
    .await;
    let suffix = random_suffix(5);
    let busy = format!("busy-{suffix}");
    let quiet = format!("quiet-{suffix}");
    apply_account(
        &s,
        &busy,
        json!({"roleArn": ROLE_A, "namespaceSelector": {}}),
    )
    .await;
    apply_account(
        &s,
        &quiet,
        json!({"roleArn": ROLE_B, "namespaceSelector": {}}),
    )
    .await;
    for name in [&busy, &quiet] {
        wait_account(&s, name, "Ready=True", |a| {
            ready_reason(a).is_some_and(|(status, _)| status == "True")
        })
        .await;
    }
    for i in 0..4 {
        create(
            &s.api,
            &manifest(
                &format!("busy-{i}"),
                with_account(&format!("busy-{i}-{suffix}"), &busy),
            ),
        )
        .await
        .expect("create busy");
    }
    create(
        &s.api,
        &manifest("quiet", with_account(&format!("quiet-{suffix}"), &quiet)),
    )
    .await
    .expect("create quiet");
    s.wait_ready("quiet").await;
    // When the quiet account's object is Ready, the busy account has created at most two of
    // its four (one per 20 s), and the quiet account never saw a 429.
    let busy_created = s.sim.instances_in("111111111111").await.len();
    assert!(busy_created <= 2, "busy account created {busy_created}");
    let quiet_calls = s.sim.calls_in("222222222222").await;
    let throttled: Vec<_> = quiet_calls.iter().filter(|c| c.status == 429).collect();
    assert!(throttled.is_empty(), "{throttled:?}");
    let busy_throttled = s
        .sim
        .calls_in("111111111111")
        .await
        .iter()
        .filter(|c| c.status == 429)
        .count();
    assert!(busy_throttled >= 1, "the busy account was never throttled");
    let states: Vec<_> = (0..4).map(|i| format!("busy-{i}")).collect::<Vec<_>>();
    let mut not_ready = 0;
    for name in &states {
        if !is_true(&s.get(name).await, "Ready", Some("Available")) {
            not_ready += 1;
        }
    }
    assert!(not_ready >= 2, "{not_ready} busy objects not ready");
}

#[tokio::test]
async fn admission_rejects_bad_accounts_and_a_changed_account_ref() {
    let s = Scenario::start(
        "admission_rejects_bad_accounts_and_a_changed_account_ref",
        &[],
        &[],
    )
    .await;
    let cases = [
        (
            json!({"roleArn": "arn:aws:iam::12345:role/x", "namespaceSelector": {}}),
            "roleArn",
        ),
        (
            json!({"namespaceSelector": {}, "lifecycleAttemptBudget": 0}),
            "lifecycleAttemptBudget",
        ),
        (
            json!({"namespaceSelector": {}, "lifecycleAttemptBudget": 101}),
            "lifecycleAttemptBudget",
        ),
        (json!({"roleArn": ROLE_A}), "namespaceSelector"),
        (
            json!({"externalId": "abc", "namespaceSelector": {}}),
            "spec.externalId requires spec.roleArn",
        ),
        (
            json!({"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "Near"}]}}),
            "operator must be In, NotIn, Exists or DoesNotExist",
        ),
    ];
    for (i, (spec, expected)) in cases.into_iter().enumerate() {
        let yaml = serde_yaml::to_string(&json!({
            "apiVersion": "connect.operators.dev/v1alpha1",
            "kind": "ConnectAccount",
            "metadata": {"name": format!("bad-{i}-{}", random_suffix(4)),
                         "labels": {ACCOUNT_SCOPE_LABEL: s.namespace}},
            "spec": spec,
        }))
        .expect("yaml");
        let output = kubectl_with_input(&["apply", "-f", "-"], Some(&yaml)).await;
        assert!(!output.success, "accepted: {yaml}");
        assert!(
            output.stderr.contains(expected),
            "{expected}: {}",
            output.stderr
        );
    }
    // A valid account has the budget's default.
    let name = format!("good-{}", random_suffix(4));
    let good = apply_account(&s, &name, json!({"namespaceSelector": {}})).await;
    assert_eq!(
        good.data
            .pointer("/spec/lifecycleAttemptBudget")
            .and_then(Value::as_i64),
        Some(80)
    );

    // accountRef cannot change, not even from unset to another account.
    create(
        &s.api,
        &manifest("fixed", basic_spec(&format!("fixed-{}", random_suffix(5)))),
    )
    .await
    .expect("create");
    let patch = json!({"spec": {"accountRef": {"name": name}}});
    let refused = s
        .api
        .patch("fixed", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect_err("accountRef changed");
    assert!(
        refused.to_string().contains("spec.accountRef is immutable"),
        "{refused}"
    );
    // Naming the default explicitly is no change.
    s.merge_patch(
        "fixed",
        json!({"spec": {"accountRef": {"name": "default"}}}),
    )
    .await;
    s.api
        .delete("fixed", &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&s.api, "fixed", DEADLINE).await;
    accounts_api(&s.client)
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete account");
    wait_gone(&accounts_api(&s.client), &name, DEADLINE).await;
}

#[tokio::test]
async fn deleting_an_instance_wakes_objects_waiting_on_the_instance_quota() {
    // An hour between quota retries: only the wake can explain a prompt recovery.
    let s = Scenario::start(
        "deleting_an_instance_wakes_objects_waiting_on_the_instance_quota",
        &[
            "--creation-delay",
            "300ms",
            "--deletion-delay",
            "300ms",
            "--instance-quota",
            "1",
        ],
        &[("quota-retry-interval", "1h")],
    )
    .await;
    let suffix = random_suffix(5);
    create(
        &s.api,
        &manifest("first", basic_spec(&format!("first-{suffix}"))),
    )
    .await
    .expect("create first");
    s.wait_ready("first").await;
    create(
        &s.api,
        &manifest("second", basic_spec(&format!("second-{suffix}"))),
    )
    .await
    .expect("create second");
    s.wait_for("second", "QuotaExceeded=True/InstanceLimitExceeded", |o| {
        is_true(o, "QuotaExceeded", Some("InstanceLimitExceeded"))
    })
    .await;
    let refused_creates = s
        .sim
        .calls_of("CreateInstance")
        .await
        .iter()
        .filter(|c| c.error_type.as_deref() == Some("ServiceQuotaExceededException"))
        .count();
    assert_eq!(refused_creates, 1);

    s.api
        .delete("first", &DeleteParams::default())
        .await
        .expect("delete first");
    wait_gone(&s.api, "first", DEADLINE).await;
    let second = s.wait_ready("second").await;
    assert!(
        !is_true(&second, "QuotaExceeded", None),
        "{}",
        describe(&second)
    );
    let creates = s.sim.calls_of("CreateInstance").await;
    assert_eq!(
        creates.iter().filter(|c| c.succeeded()).count(),
        2,
        "{creates:?}"
    );
    s.api
        .delete("second", &DeleteParams::default())
        .await
        .expect("delete second");
    wait_gone(&s.api, "second", DEADLINE).await;
}

#[tokio::test]
async fn import_through_an_account_reads_with_its_role_and_names_it() {
    let s = Scenario::start(
        "import_through_an_account_reads_with_its_role_and_names_it",
        &["--creation-delay", "300ms"],
        &[],
    )
    .await;
    let account = format!("import-{}", random_suffix(5));
    apply_account(
        &s,
        &account,
        json!({"roleArn": ROLE_A, "namespaceSelector": {}}),
    )
    .await;
    let alias = format!("imported-{}", random_suffix(5));
    let live = s
        .sim
        .insert_instance_in("111111111111", "us-east-1", &alias, &[("team", "a")])
        .await;

    let kubeconfig = tokio::task::spawn_blocking(|| test_kit::control_plane().kubeconfig.clone())
        .await
        .expect("control plane");
    let output = tokio::process::Command::new(test_kit::paths::operator_binary())
        .args([
            "import",
            "--instance-id",
            &live.id,
            "--name",
            "imported",
            "--account",
            &account,
        ])
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &s.sim.url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("KUBECONFIG", kubeconfig)
        .env_remove("AWS_PROFILE")
        .output()
        .await
        .expect("running connect-operator import");
    assert!(
        output.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let yaml = String::from_utf8(output.stdout).expect("UTF-8");
    let manifest: Value = serde_yaml::from_str(&yaml).expect("a manifest");
    assert_eq!(
        manifest
            .pointer("/spec/accountRef/name")
            .and_then(Value::as_str),
        Some(account.as_str()),
        "{yaml}"
    );
    // Read through the role, in the role's account; the default account was never asked.
    let assumed = s.sim.calls_of("AssumeRole").await;
    assert!(
        assumed
            .iter()
            .any(|c| c.role_arn.as_deref() == Some(ROLE_A)),
        "{assumed:?}"
    );
    let described: Vec<_> = s
        .sim
        .calls_of("DescribeInstance")
        .await
        .into_iter()
        .filter(|c| c.instance_id.as_deref() == Some(live.id.as_str()))
        .collect();
    assert!(
        !described.is_empty() && described.iter().all(|c| c.account_id == "111111111111"),
        "{described:?}"
    );

    // Applied as is, it adopts the instance in that account.
    let output = kubectl_with_input(&["apply", "-n", &s.namespace, "-f", "-"], Some(&yaml)).await;
    assert!(output.success, "{output:?}");
    let adopted = s.wait_ready("imported").await;
    assert_eq!(
        status_str(&adopted, "instanceId").as_deref(),
        Some(live.id.as_str())
    );
    assert_eq!(
        status_str(&adopted, "accountId").as_deref(),
        Some("111111111111")
    );
    s.api
        .delete("imported", &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&s.api, "imported", DEADLINE).await;
    assert_eq!(
        s.sim.instances_in("111111111111").await.len(),
        1,
        "Retain kept it"
    );
    accounts_api(&s.client)
        .delete(&account, &DeleteParams::default())
        .await
        .expect("delete account");
    wait_gone(&accounts_api(&s.client), &account, DEADLINE).await;
}
