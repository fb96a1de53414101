//! When things go wrong: throttling and server errors converge without a retry storm and
//! with one instance per object; an operator killed right after CreateInstance adopts the
//! instance it created; a creation that ends CREATION_FAILED is Stalled without a second
//! attempt; an alias held by an instance the operator does not own is an AliasConflict and
//! that instance is left untouched, also when the object is deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use connect_operator::aws::token::create_token;
use connect_sim::{ConfigPatch, FaultsPatch};

use serde_json::{Value, json};
use test_kit::connect::{
    self, basic_spec, condition, create, describe, generation, is_true, manifest, status_str, uid,
    wait_gone,
};
use test_kit::{DEADLINE, SimCall, kubectl_ok, wait_until};

use super::{Scenario, assert_ready_and_settled, count, mutating, tally};

#[tokio::test]
async fn throttling_and_server_errors_converge_without_retry_storm() {
    let s = Scenario::start(
        "throttling_and_server_errors_converge_without_retry_storm",
        &["--creation-delay", "500ms", "--deletion-delay", "500ms"],
        // The operator's own limiter allows more than the simulator will take below.
        &[("api-rate", "10")],
    )
    .await;
    // Phase 1, the outage: half the calls fail with 5xx, some connections drop (after the
    // simulator acted: a create may happen without an answer), and the read operations are
    // throttled hard.
    fn throttle<T: Copy>(rate: T) -> BTreeMap<String, T> {
        [
            "DescribeInstance",
            "ListInstances",
            "ListInstanceAttributes",
        ]
        .into_iter()
        .map(|operation| (operation.to_owned(), rate))
        .collect()
    }
    s.sim
        .set_config(&ConfigPatch {
            rate_limits: Some(throttle(Some(0.5))),
            rate_bursts: Some(throttle(1)),
            faults: Some(FaultsPatch {
                server_error_ratio: Some(0.5),
                drop_connection_ratio: Some(0.1),
                operations: Some(vec![]),
                ..FaultsPatch::default()
            }),
            ..ConfigPatch::default()
        })
        .await;
    let names = ["faulty-a", "faulty-b"];
    let mut uids = BTreeMap::new();
    for name in names {
        let object = create(&s.api, &manifest(name, basic_spec(&format!("{name}-e2e"))))
            .await
            .expect("create");
        uids.insert(name, uid(&object));
    }
    let outage = Duration::from_secs(10);
    tokio::time::sleep(outage).await;
    let during = s.connect_calls().await;
    let throttled = during
        .iter()
        .filter(|call| call.error_type.as_deref() == Some("ThrottlingException"))
        .count();
    let server_errors = during.iter().filter(|call| call.status >= 500).count();
    eprintln!(
        "fault scenario, {outage:?} outage: {} calls, {throttled} throttled, {server_errors} 5xx: {:?}",
        during.len(),
        tally(&during)
    );
    assert!(
        throttled > 0 && server_errors > 0,
        "faults were not exercised"
    );
    // Per-object exponential backoff (300 ms doubling to 3 s in these tests) keeps two
    // objects far below this; a retry storm would not be.
    assert!(
        during.len() <= 120,
        "retry storm: {} calls in {outage:?}: {:?}",
        during.len(),
        tally(&during)
    );

    // Phase 2, recovery: everything converges, with exactly one instance per object.
    s.sim
        .set_config(&ConfigPatch {
            rate_limits: Some(throttle(None)),
            faults: Some(FaultsPatch {
                server_error_ratio: Some(0.0),
                drop_connection_ratio: Some(0.0),
                ..FaultsPatch::default()
            }),
            ..ConfigPatch::default()
        })
        .await;
    for name in names {
        let object = s.wait_ready(name).await;
        assert_ready_and_settled(&object);
    }
    let calls = s.connect_calls().await;
    eprintln!(
        "fault scenario, total: {} calls: {:?}",
        calls.len(),
        tally(&calls)
    );
    let instances = s.sim.instances().await;
    assert_eq!(instances.len(), 2, "{instances:?}");
    for (name, uid) in &uids {
        let token = create_token(uid);
        let ids: BTreeSet<&str> = calls
            .iter()
            .filter(|call| {
                call.operation == "CreateInstance"
                    && call.client_token.as_deref() == Some(token.as_str())
            })
            .filter_map(|call| call.instance_id.as_deref())
            .collect();
        assert!(
            ids.len() <= 1,
            "{name}: several instances for one token: {ids:?}"
        );
        let object = s.get(name).await;
        let id = status_str(&object, "instanceId").expect("instanceId");
        let instance = s.sim.instance(&id).await.expect("the object's instance");
        assert_eq!(instance.tags.get(connect::UID_TAG), Some(uid));
    }
    assert_eq!(s.sim.state().await.lifecycle_attempts, 2);

    // Deleting leaves nothing behind.
    for name in names {
        s.api
            .delete(name, &Default::default())
            .await
            .expect("delete");
    }
    for name in names {
        wait_gone(&s.api, name, DEADLINE).await;
    }
    assert!(s.sim.instances().await.is_empty(), "instances left behind");
}

#[tokio::test]
async fn operator_killed_after_create_instance_adopts_the_same_instance() {
    killed_after_create_instance(
        "operator_killed_after_create_instance_adopts_the_same_instance",
        &["--creation-delay", "3s"],
    )
    .await;
}

/// SIGKILL the moment CreateInstance was answered, restart: one instance, one attempt, one
/// token, whatever the simulator's knobs (`sim_args`) make AWS answer meanwhile.
pub(super) async fn killed_after_create_instance(test: &str, sim_args: &[&str]) {
    let mut s = Scenario::start(test, sim_args, &[]).await;
    let name = "crash";
    create(&s.api, &manifest(name, basic_spec("crash-e2e")))
        .await
        .expect("create");
    // Kill the operator the moment the simulator has answered CreateInstance.
    wait_until("a CreateInstance answer", DEADLINE, || async {
        let calls = s.sim.calls_of("CreateInstance").await;
        if calls.iter().any(SimCall::succeeded) {
            Ok(())
        } else {
            Err(format!("{calls:?}"))
        }
    })
    .await;
    s.operator.kill();
    let at_kill = s.get(name).await;
    eprintln!(
        "at SIGKILL status.instanceId was {:?}",
        status_str(&at_kill, "instanceId")
    );
    let uid = uid(&at_kill);

    s.operator.restart().await;
    let object = s.wait_ready(name).await;
    assert_ready_and_settled(&object);

    let instances = s.sim.instances().await;
    assert_eq!(instances.len(), 1, "exactly one instance: {instances:?}");
    assert_eq!(
        status_str(&object, "instanceId").as_deref(),
        Some(instances[0].id.as_str())
    );
    assert_eq!(instances[0].tags.get(connect::UID_TAG), Some(&uid));
    let calls = s.connect_calls().await;
    let token = create_token(&uid);
    assert!(
        calls
            .iter()
            .filter(|call| call.operation == "CreateInstance")
            .all(|call| call.client_token.as_deref() == Some(token.as_str())),
        "{calls:?}"
    );
    assert_eq!(
        s.sim.state().await.lifecycle_attempts,
        1,
        "one creation attempt"
    );
    eprintln!("crash scenario calls: {:?}", tally(&calls));
}

#[tokio::test]
async fn creation_failed_is_stalled_without_a_second_create() {
    let s = Scenario::start(
        "creation_failed_is_stalled_without_a_second_create",
        &["--creation-delay", "500ms"],
        &[],
    )
    .await;
    s.sim
        .set_config(&ConfigPatch {
            fail_creation_alias_pattern: Some(Some("^doomed-".to_owned())),
            ..ConfigPatch::default()
        })
        .await;
    let name = "doomed";
    create(&s.api, &manifest(name, basic_spec("doomed-center")))
        .await
        .expect("create");
    let object = s
        .wait_for(name, "Stalled=True/CreationFailed", |object| {
            is_true(object, "Stalled", Some("CreationFailed"))
        })
        .await;
    let ready = condition(&object, "Ready").expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "CreationFailed")
    );
    assert!(
        !is_true(&object, "Reconciling", None),
        "{}",
        describe(&object)
    );
    assert_eq!(
        status_str(&object, "instanceStatus").as_deref(),
        Some("CREATION_FAILED")
    );
    assert!(
        status_str(&object, "statusReason").is_some_and(|reason| !reason.is_empty()),
        "statusReason: {}",
        describe(&object)
    );

    // A spec change makes it look again (proof that it is at work): still a single
    // attempt, still CreationFailed.
    s.merge_patch(
        name,
        json!({ "spec": { "tags": { "looked-at": "again" } } }),
    )
    .await;
    let again = s
        .wait_for(name, "the change observed", |o| {
            o.data
                .pointer("/status/observedGeneration")
                .and_then(Value::as_i64)
                == Some(generation(o))
        })
        .await;
    assert!(
        is_true(&again, "Stalled", Some("CreationFailed")),
        "{}",
        describe(&again)
    );
    let calls = s.connect_calls().await;
    assert_eq!(count(&calls, "CreateInstance"), 1, "{:?}", tally(&calls));
    assert!(
        s.event_summaries(name)
            .await
            .iter()
            .any(|(type_, _, _)| type_ == "Warning"),
        "no Warning event for the failed creation"
    );
}

#[tokio::test]
async fn alias_held_by_foreign_instance_is_alias_conflict_and_left_untouched() {
    let s = Scenario::start(
        "alias_held_by_foreign_instance_is_alias_conflict_and_left_untouched",
        &[],
        &[],
    )
    .await;
    let foreign = s
        .sim
        .insert_instance("taken-alias", &[("owner", "another-team")])
        .await;
    let name = "usurper";
    create(&s.api, &manifest(name, basic_spec("taken-alias")))
        .await
        .expect("create");
    let object = s
        .wait_for(name, "Ready=False/AliasConflict", |object| {
            condition(object, "Ready")
                .is_some_and(|ready| ready.status == "False" && ready.reason == "AliasConflict")
        })
        .await;
    assert!(
        is_true(&object, "Stalled", Some("AliasConflict")),
        "{}",
        describe(&object)
    );
    assert!(
        status_str(&object, "instanceId").is_none(),
        "{}",
        describe(&object)
    );

    // Deleting the object must not touch the foreign instance either.
    kubectl_ok(&[
        "delete",
        "-n",
        &s.namespace,
        "connectinstance",
        name,
        "--timeout=60s",
    ])
    .await;
    wait_gone(&s.api, name, DEADLINE).await;

    let calls = s.connect_calls().await;
    let writes: Vec<&SimCall> = calls
        .iter()
        .filter(|call| mutating(&call.operation))
        .collect();
    assert!(
        writes.is_empty(),
        "the foreign instance was touched: {writes:?}"
    );
    let instance = s.sim.instance(&foreign.id).await.expect("foreign instance");
    assert_eq!(instance.tags, foreign.tags);
    assert_eq!(instance.status, "ACTIVE");
    assert_eq!(s.sim.instances().await.len(), 1);
    let events = s.event_summaries(name).await;
    assert!(
        events.iter().any(|(type_, _, _)| type_ == "Warning"),
        "no Warning event for the conflict: {events:?}"
    );
}
