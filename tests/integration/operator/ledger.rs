//! The 30-day attempt limit: the write-ahead ledger and the budget guard, with the
//! simulator's attempt counter as the truth. A create the budget does not allow is refused
//! before AWS is asked and goes on by itself when the budget is raised; deletes are never
//! refused; a hand-damaged ledger only makes the operator more careful; SIGKILLs at random
//! moments (and, in a second run, leader changes) neither lose nor double an attempt.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use serde_json::{Value, json};

use test_kit::connect::{basic_spec, condition, create, is_true, manifest, wait_gone};
use test_kit::control_plane::ACCOUNT_SCOPE_LABEL;
use test_kit::{DEADLINE, OperatorOptions, OperatorProcess, random_suffix};

use super::Scenario;

pub(super) const ROLE: &str = "arn:aws:iam::444444444444:role/connect-operator";
pub(super) const ACCOUNT_ID: &str = "444444444444";

fn api_of(client: &Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("connect.operators.dev", "v1alpha1", kind),
        plural,
    );
    Api::all_with(client.clone(), &resource)
}

pub(super) fn accounts(client: &Client) -> Api<DynamicObject> {
    api_of(client, "ConnectAccount", "connectaccounts")
}

pub(super) fn ledgers(client: &Client) -> Api<DynamicObject> {
    api_of(client, "ConnectAttemptLedger", "connectattemptledgers")
}

pub(super) async fn apply_account(s: &Scenario, name: &str, budget: u32) {
    let account: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "connect.operators.dev/v1alpha1",
        "kind": "ConnectAccount",
        "metadata": {"name": name, "labels": {ACCOUNT_SCOPE_LABEL: s.namespace}},
        "spec": {"roleArn": ROLE, "namespaceSelector": {}, "lifecycleAttemptBudget": budget},
    }))
    .expect("a ConnectAccount");
    accounts(&s.client)
        .patch(
            name,
            &PatchParams::apply("e2e-test").force(),
            &Patch::Apply(&account),
        )
        .await
        .unwrap_or_else(|error| panic!("applying ConnectAccount {name}: {error}"));
}

pub(super) fn spec_in(alias: &str, account: &str) -> Value {
    let mut spec = basic_spec(alias);
    spec["accountRef"] = json!({"name": account});
    spec
}

/// The ledger's entries that count (as the operator counts them: not `NotAccepted`).
async fn ledger_counting(client: &Client, account: &str) -> (usize, Vec<Value>) {
    ledger_counting_in(client, account, "us-east-1").await
}

/// The same, in `region`'s ledger.
pub(super) async fn ledger_counting_in(
    client: &Client,
    account: &str,
    region: &str,
) -> (usize, Vec<Value>) {
    let ledger = ledgers(client)
        .get_opt(&format!("{account}.{region}"))
        .await
        .expect("reading the ledger");
    let entries: Vec<Value> = ledger
        .and_then(|l| l.data.pointer("/spec/entries").cloned())
        .and_then(|e| e.as_array().cloned())
        .unwrap_or_default();
    let counting = entries
        .iter()
        .filter(|e| e.get("outcome").and_then(Value::as_str) != Some("NotAccepted"))
        .count();
    (counting, entries)
}

async fn sim_attempts(s: &Scenario) -> u64 {
    s.sim
        .state_of(ACCOUNT_ID, "us-east-1")
        .await
        .lifecycle_attempts
}

/// A scenario whose simulator creates and deletes in 300 ms and allows ten instances.
async fn fast_scenario(test: &str) -> Scenario {
    Scenario::start(
        test,
        &[
            "--creation-delay",
            "300ms",
            "--deletion-delay",
            "300ms",
            "--instance-quota",
            "10",
        ],
        &[],
    )
    .await
}

#[tokio::test]
async fn the_budget_refuses_creates_before_aws_and_recovers_when_raised() {
    let s = fast_scenario("the_budget_refuses_creates_before_aws_and_recovers_when_raised").await;
    let account = format!("budget-{}", random_suffix(5));
    apply_account(&s, &account, 2).await;
    let suffix = random_suffix(5);
    for i in 0..2 {
        create(
            &s.api,
            &manifest(
                &format!("ok-{i}"),
                spec_in(&format!("ok-{i}-{suffix}"), &account),
            ),
        )
        .await
        .expect("create");
        s.wait_ready(&format!("ok-{i}")).await;
    }
    create(
        &s.api,
        &manifest("over", spec_in(&format!("over-{suffix}"), &account)),
    )
    .await
    .expect("create");
    let over = s
        .wait_for("over", "QuotaExceeded=True/AttemptBudgetExhausted", |o| {
            is_true(o, "QuotaExceeded", Some("AttemptBudgetExhausted"))
        })
        .await;
    assert!(is_true(&over, "Stalled", Some("QuotaExceeded")));
    let message = condition(&over, "QuotaExceeded")
        .expect("QuotaExceeded")
        .message;
    assert!(
        message.contains("2/2") && message.contains("expires at"),
        "{message}"
    );
    // Refused before AWS was asked: two creates reached the simulator, and both count.
    let creates = s.sim.calls_of("CreateInstance").await;
    assert_eq!(creates.len(), 2, "{creates:?}");
    assert_eq!(sim_attempts(&s).await, 2);
    assert_eq!(ledger_counting(&s.client, &account).await.0, 2);

    // The account shows the summary, the gauges say the same.
    let shown = test_kit::wait_until("the account's ATTEMPTS 2/2", DEADLINE, || async {
        let a = accounts(&s.client)
            .get(&account)
            .await
            .map_err(|e| e.to_string())?;
        match a.data.pointer("/status/attempts").and_then(Value::as_str) {
            Some("2/2") => Ok(a),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let region = shown
        .data
        .pointer("/status/lifecycleAttempts/0")
        .cloned()
        .expect("a region summary");
    assert_eq!(region["used"], 2);
    assert_eq!(region["budget"], 2);
    assert!(region["oldestExpiresAt"].is_string(), "{region}");
    // The gauges follow the account's status.
    s.metrics_with(&[
        format!("connect_operator_lifecycle_attempts{{account=\"{account}\",region=\"us-east-1\"}} 2"),
        format!(
            "connect_operator_lifecycle_attempt_budget{{account=\"{account}\",region=\"us-east-1\"}} 2"
        ),
    ])
    .await;

    // Deletes are never refused by the budget.
    s.api
        .delete("ok-0", &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&s.api, "ok-0", DEADLINE).await;
    assert_eq!(sim_attempts(&s).await, 3);
    assert_eq!(ledger_counting(&s.client, &account).await.0, 3);

    // Wiping the summary changes nothing: the guard reads the ledger.
    accounts(&s.client)
        .patch_status(
            &account,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"lifecycleAttempts": [], "attempts": "0/2"}})),
        )
        .await
        .expect("wiping the summary");
    create(
        &s.api,
        &manifest("over-2", spec_in(&format!("over2-{suffix}"), &account)),
    )
    .await
    .expect("create");
    s.wait_for("over-2", "refused by the budget", |o| {
        is_true(o, "QuotaExceeded", Some("AttemptBudgetExhausted"))
    })
    .await;
    assert_eq!(s.sim.calls_of("CreateInstance").await.len(), 2);

    // A hand-damaged ledger: the unreadable entry counts, and the account reports it.
    let name = format!("{account}.us-east-1");
    let (_, mut entries) = ledger_counting(&s.client, &account).await;
    entries.push(json!({"note": "edited by hand"}));
    ledgers(&s.client)
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"entries": entries}})),
        )
        .await
        .expect("editing the ledger");
    test_kit::wait_until(
        "the account reporting the damaged entry",
        DEADLINE,
        || async {
            let a = accounts(&s.client)
                .get(&account)
                .await
                .map_err(|e| e.to_string())?;
            let region = a
                .data
                .pointer("/status/lifecycleAttempts/0")
                .cloned()
                .unwrap_or_default();
            if region["malformedEntries"] == 1 && region["used"] == 4 {
                Ok(())
            } else {
                Err(region.to_string())
            }
        },
    )
    .await;

    // Raising the budget lets the refused objects go on by themselves (4 counted: 2
    // creates, 1 delete, 1 unreadable entry; a budget of 6 leaves room for both).
    apply_account(&s, &account, 6).await;
    s.wait_ready("over").await;
    s.wait_ready("over-2").await;
    assert_eq!(
        s.sim
            .calls_of("CreateInstance")
            .await
            .iter()
            .filter(|c| c.succeeded())
            .count(),
        4
    );
    assert_eq!(
        ledger_counting(&s.client, &account).await.0,
        6,
        "5 attempts and the damaged entry"
    );
    assert_eq!(sim_attempts(&s).await, 5);

    for name in ["ok-1", "over", "over-2"] {
        s.api
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }
    for name in ["ok-1", "over", "over-2"] {
        wait_gone(&s.api, name, DEADLINE).await;
    }
    assert_eq!(s.sim.instances_in(ACCOUNT_ID).await.len(), 0);
    accounts(&s.client)
        .delete(&account, &DeleteParams::default())
        .await
        .expect("delete account");
    wait_gone(&accounts(&s.client), &account, DEADLINE).await;
}

/// Objects that settle: Ready, or refused by the budget.
async fn settled(api: &Api<DynamicObject>, names: &[String]) -> (usize, usize) {
    let (mut ready, mut refused) = (0, 0);
    for name in names {
        let Ok(object) = api.get(name).await else {
            continue;
        };
        if is_true(&object, "Ready", Some("Available")) {
            ready += 1;
        } else if is_true(&object, "QuotaExceeded", Some("AttemptBudgetExhausted")) {
            refused += 1;
        }
    }
    (ready, refused)
}

/// Creates `objects` objects in `account`, deletes them once each is Ready or refused by the
/// budget, and calls `crash` at random moments all along, until every object is gone and
/// `crash` has really crashed something at least `min_kills` times (it says whether it
/// did). Returns the number of real kills.
async fn churn_under_crashes<F, Fut>(
    s: &Scenario,
    account: &str,
    budget: usize,
    objects: usize,
    min_kills: usize,
    mut crash: F,
) -> usize
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let suffix = random_suffix(5);
    let names: Vec<String> = (0..objects).map(|i| format!("churn-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        create(
            &s.api,
            &manifest(name, spec_in(&format!("churn-{i}-{suffix}"), account)),
        )
        .await
        .expect("create");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    let mut kills = 0;
    let mut deleting = false;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no progress after {kills} kills: {:?}",
            settled(&s.api, &names).await
        );
        tokio::time::sleep(Duration::from_millis(fastrand::u64(150..700))).await;
        if crash().await {
            kills += 1;
        }
        if !deleting {
            let (ready, refused) = settled(&s.api, &names).await;
            if ready + refused == objects && kills >= min_kills / 2 {
                assert_eq!(ready, budget, "{ready} Ready, {refused} refused");
                for name in &names {
                    s.api
                        .delete(name, &DeleteParams::default())
                        .await
                        .expect("delete");
                }
                deleting = true;
            }
        } else if s
            .api
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .is_empty()
            && kills >= min_kills
        {
            return kills;
        }
    }
}

async fn assert_ledger_is_the_truth(s: &Scenario, account: &str, budget: usize) {
    let creates: std::collections::BTreeSet<String> = s
        .sim
        .calls_in(ACCOUNT_ID)
        .await
        .into_iter()
        .filter(|c| c.operation == "CreateInstance" && c.applied() && !c.replay)
        .filter_map(|c| c.client_token)
        .collect();
    assert!(
        creates.len() <= budget,
        "{} creates accepted, budget {budget}",
        creates.len()
    );
    assert_eq!(creates.len(), budget);
    let attempts = sim_attempts(s).await;
    let (counting, entries) = ledger_counting(&s.client, account).await;
    assert_eq!(counting as u64, attempts, "ledger {entries:#?}");
    assert_eq!(
        attempts as usize,
        2 * budget,
        "every created instance deleted once"
    );
    assert!(s.sim.instances_in(ACCOUNT_ID).await.is_empty());
}

/// Waits until the account has an event with `reason` whose message contains `text`.
async fn wait_account_event(s: &Scenario, account: &str, reason: &str, text: &str) -> String {
    test_kit::wait_until(
        &format!("a {reason} event on {account}"),
        DEADLINE,
        || async {
            let events = test_kit::connect::event_summaries(
                &test_kit::connect::cluster_events(&s.client, "ConnectAccount", account).await,
            );
            events
                .iter()
                .find(|(_, r, m)| r == reason && m.contains(text))
                .map(|(_, _, m)| m.clone())
                .ok_or_else(|| format!("{events:?}"))
        },
    )
    .await
}

#[tokio::test]
async fn the_account_says_when_80_and_100_percent_of_its_budget_are_spent() {
    let s = fast_scenario("the_account_says_when_80_and_100_percent_of_its_budget_are_spent").await;
    let account = format!("events-{}", random_suffix(5));
    apply_account(&s, &account, 5).await;
    let suffix = random_suffix(5);
    let create_ready = |i: usize| {
        let s = &s;
        let account = account.clone();
        let suffix = suffix.clone();
        async move {
            let name = format!("spend-{i}");
            create(
                &s.api,
                &manifest(&name, spec_in(&format!("{name}-{suffix}"), &account)),
            )
            .await
            .expect("create");
            s.wait_ready(&name).await;
        }
    };
    for i in 0..3 {
        create_ready(i).await;
    }
    // 3/5: neither event yet (60%).
    let events = test_kit::connect::event_summaries(
        &test_kit::connect::cluster_events(&s.client, "ConnectAccount", &account).await,
    );
    assert!(
        !events
            .iter()
            .any(|(_, r, _)| r.starts_with("AttemptBudget")),
        "{events:?}"
    );
    create_ready(3).await;
    let nearly = wait_account_event(&s, &account, "AttemptBudgetNearlySpent", "4/5").await;
    assert!(
        nearly.contains("80%") && nearly.contains("us-east-1"),
        "{nearly}"
    );
    create_ready(4).await;
    let exhausted = wait_account_event(&s, &account, "AttemptBudgetExhausted", "5/5").await;
    assert!(
        exhausted.contains("new instances are refused"),
        "{exhausted}"
    );
    // Each announced once, as Warnings.
    let events = test_kit::connect::event_summaries(
        &test_kit::connect::cluster_events(&s.client, "ConnectAccount", &account).await,
    );
    for reason in ["AttemptBudgetNearlySpent", "AttemptBudgetExhausted"] {
        let of: Vec<_> = events.iter().filter(|(_, r, _)| r == reason).collect();
        assert_eq!(of.len(), 1, "{reason}: {events:?}");
        assert_eq!(of[0].0, "Warning", "{reason}: {events:?}");
    }
    for i in 0..5 {
        s.api
            .delete(&format!("spend-{i}"), &DeleteParams::default())
            .await
            .expect("delete");
    }
    for i in 0..5 {
        wait_gone(&s.api, &format!("spend-{i}"), DEADLINE).await;
    }
    accounts(&s.client)
        .delete(&account, &DeleteParams::default())
        .await
        .expect("delete account");
}

#[tokio::test]
async fn sigkills_at_random_moments_neither_lose_nor_double_an_attempt() {
    const TEST: &str = "sigkills_at_random_moments_neither_lose_nor_double_an_attempt";
    let mut s = Scenario::start(
        TEST,
        &[
            "--creation-delay",
            "300ms",
            "--deletion-delay",
            "300ms",
            "--instance-quota",
            "20",
        ],
        &[],
    )
    .await;
    // The scenario's operator makes way for one this test kills at will.
    s.operator.stop();
    let logs = test_kit::simulator::log_dir(&format!("{TEST}-killed"));
    std::fs::create_dir_all(&logs).expect("log dir");
    let operator =
        OperatorProcess::start(&logs, OperatorOptions::new(&s.namespace, &s.sim.url)).await;
    let operator = std::sync::Arc::new(tokio::sync::Mutex::new(operator));
    let account = format!("churn-{}", random_suffix(5));
    apply_account(&s, &account, 4).await;
    let kills = {
        let operator = operator.clone();
        churn_under_crashes(&s, &account, 4, 7, 50, move || {
            let operator = operator.clone();
            async move {
                let mut operator = operator.lock().await;
                // A kill counts only if it ended a running operator by SIGKILL.
                let killed = operator.kill();
                operator.restart().await;
                killed
            }
        })
        .await
    };
    // Every kill was of a running process, and each was followed by a start of its own:
    // the operator's log shows one start more than there were kills.
    let operator = operator.lock().await;
    let log = std::fs::read_to_string(operator.log_path()).expect("the operator's log");
    let starts = log.matches("=== test harness: start #").count();
    eprintln!("{TEST}: {kills} SIGKILLs, {starts} starts");
    assert!(kills >= 50, "only {kills} real kills");
    assert_eq!(starts, kills + 1, "one start per kill, and the first");
    assert_eq!(operator.starts() as usize, starts);
    drop(operator);
    assert_ledger_is_the_truth(&s, &account, 4).await;
    accounts(&s.client)
        .delete(&account, &DeleteParams::default())
        .await
        .expect("delete account");
    wait_gone(&accounts(&s.client), &account, DEADLINE).await;
}

/// Who holds the Lease (an API error fails the test: it must not read as "nobody").
async fn lease_holder(leases: &Api<Lease>, name: &str) -> Option<String> {
    leases
        .get_opt(name)
        .await
        .expect("reading the Lease")
        .and_then(|l| l.spec)
        .and_then(|spec| spec.holder_identity)
        .filter(|holder| !holder.is_empty())
}

/// The Lease's `leaseTransitions` (0 before it exists).
async fn lease_transitions(leases: &Api<Lease>, name: &str) -> i64 {
    leases
        .get_opt(name)
        .await
        .expect("reading the Lease")
        .and_then(|l| l.spec)
        .and_then(|spec| spec.lease_transitions)
        .map_or(0, i64::from)
}

#[tokio::test]
async fn leader_changes_neither_lose_nor_double_an_attempt() {
    let mut s = Scenario::start(
        "leader_changes_neither_lose_nor_double_an_attempt",
        &[
            "--creation-delay",
            "300ms",
            "--deletion-delay",
            "300ms",
            "--instance-quota",
            "20",
        ],
        &[],
    )
    .await;
    // The scenario's own operator is stopped; two replicas with leader election take over.
    s.operator.stop();
    let lease = format!("ledger-{}", random_suffix(5));
    let replica = |id: &str| {
        let mut options = OperatorOptions::new(&s.namespace, &s.sim.url);
        // A switch without a value: given by its environment variable.
        options
            .envs
            .push(("CONNECT_OPERATOR_LEADER_ELECTION".into(), "true".into()));
        options
            .flag("lease-name", &lease)
            .flag("lease-namespace", &s.namespace)
            .flag("lease-duration-seconds", "3")
            .flag("lease-grace-seconds", "1")
            .flag("lease-retry-period", "500ms")
            .flag("identity", id)
    };

    let logs =
        test_kit::simulator::log_dir("leader_changes_neither_lose_nor_double_an_attempt-replicas");
    for id in ["a", "b"] {
        std::fs::create_dir_all(logs.join(id)).expect("log dir");
    }
    let a = OperatorProcess::start(&logs.join("a"), replica("a")).await;
    let b = OperatorProcess::start(&logs.join("b"), replica("b")).await;
    let replicas = std::sync::Arc::new(tokio::sync::Mutex::new([("a", a), ("b", b)]));
    let account = format!("leaders-{}", random_suffix(5));
    apply_account(&s, &account, 3).await;
    let leases: Api<Lease> = Api::namespaced(s.client.clone(), &s.namespace);
    let transitions_before = lease_transitions(&leases, &lease).await;
    let kills = {
        let replicas = replicas.clone();
        let leases = leases.clone();
        let lease = lease.clone();
        churn_under_crashes(&s, &account, 3, 5, 10, move || {
            let replicas = replicas.clone();
            let leases = leases.clone();
            let lease = lease.clone();
            async move {
                // Let a leader work a little, then kill whichever replica holds the Lease
                // and start it again (as a follower, until it wins the Lease back). A kill
                // counts only if it ended the running holder and the other replica then
                // took the Lease.
                tokio::time::sleep(Duration::from_millis(fastrand::u64(1500..3000))).await;
                let Some(holder) = lease_holder(&leases, &lease).await else {
                    return false;
                };
                let mut replicas = replicas.lock().await;
                let Some((killed, leader)) =
                    replicas.iter_mut().find(|(id, _)| *id == holder.as_str())
                else {
                    panic!("the Lease is held by {holder}, which is no replica");
                };
                if !leader.kill() {
                    panic!("the holder {killed} was not running");
                }
                // The other replica takes the Lease once it expires; only then does the
                // killed one come back, as a follower.
                let killed = *killed;
                test_kit::wait_until(
                    "the other replica to take the Lease",
                    Duration::from_secs(30),
                    || async {
                        match lease_holder(&leases, &lease).await {
                            Some(now) if now != killed => Ok(()),
                            other => Err(format!("held by {other:?}")),
                        }
                    },
                )
                .await;
                leader.restart().await;
                true
            }
        })
        .await
    };
    // Each kill handed the Lease to the other replica: the Lease counted a transition each.
    let transitions = lease_transitions(&leases, &lease).await - transitions_before;
    eprintln!("leader churn: {kills} leader kills, {transitions} Lease transitions");
    assert!(kills >= 10, "only {kills} leader kills");
    assert!(
        transitions >= kills as i64,
        "{transitions} Lease transitions for {kills} kills"
    );
    assert_ledger_is_the_truth(&s, &account, 3).await;
    // The leader releases the account once nothing uses it.
    accounts(&s.client)
        .delete(&account, &DeleteParams::default())
        .await
        .expect("delete account");
    wait_gone(&accounts(&s.client), &account, DEADLINE).await;
    drop(replicas);
}
