//! The lifecycle through the operator: a created object becomes Ready with exactly one
//! CreateInstance carrying its UID-derived token and then stays still; a spec change sends
//! only the attribute and tag calls it needs; `kubectl delete` keeps the finalizer until
//! Connect answers NotFound; `deletionPolicy: Retain` releases the object and keeps the
//! instance.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use connect_operator::aws::token::{create_token, delete_token};
use serde_json::{Value, json};

use test_kit::connect::{
    self, basic_spec, create, describe, generation, has_finalizer, manifest, status_str, uid,
    wait_gone,
};
use test_kit::{DEADLINE, SimCall, kubectl, kubectl_ok};

use super::{Scenario, assert_ready_and_settled, assert_steady, aws_view, count, count_ok, tally};

#[tokio::test]
async fn create_becomes_ready_with_one_uid_token_create_instance() {
    let s = Scenario::start(
        "create_becomes_ready_with_one_uid_token_create_instance",
        &["--creation-delay", "1s"],
        // Drift checks every second, so that the steady state is seen under them.
        &[("drift-interval", "1s")],
    )
    .await;
    let name = "support-center";
    s.kubectl_apply(&manifest(name, basic_spec("support-center-e2e")))
        .await;

    let waited = kubectl(&[
        "wait",
        "-n",
        &s.namespace,
        "--for=condition=Ready",
        &format!("connectinstance/{name}"),
        "--timeout=60s",
    ])
    .await;
    assert!(waited.success, "kubectl wait: {waited:?}");

    let object = s.get(name).await;
    let uid = uid(&object);
    assert_ready_and_settled(&object);
    assert!(
        has_finalizer(&object),
        "finalizer missing: {}",
        describe(&object)
    );
    assert_eq!(
        object
            .data
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64),
        Some(generation(&object))
    );
    let instance_id = status_str(&object, "instanceId").expect("status.instanceId");
    let arn = status_str(&object, "arn").expect("status.arn");
    let access_url = status_str(&object, "instanceAccessUrl").expect("status.instanceAccessUrl");
    assert!(access_url.contains("support-center-e2e"), "{access_url}");
    assert_eq!(
        status_str(&object, "instanceStatus").as_deref(),
        Some("ACTIVE")
    );

    // The simulator's side: one instance, created once, with the UID token and tag.
    let instances = s.sim.instances().await;
    assert_eq!(instances.len(), 1, "{instances:?}");
    let instance = &instances[0];
    assert_eq!(instance.id, instance_id);
    assert_eq!(instance.arn, arn);
    assert_eq!(instance.alias.as_deref(), Some("support-center-e2e"));
    assert_eq!(instance.identity_management_type, "CONNECT_MANAGED");
    assert_eq!(instance.status, "ACTIVE");
    assert!(instance.inbound_calls_enabled);
    assert!(!instance.outbound_calls_enabled);
    assert_eq!(
        instance
            .attributes
            .get("CONTACTFLOW_LOGS")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        instance.attributes.get("CONTACT_LENS").map(String::as_str),
        Some("false")
    );
    assert_eq!(
        instance.tags.get("team").map(String::as_str),
        Some("support")
    );
    assert_eq!(
        instance.tags.get("cost-center").map(String::as_str),
        Some("42")
    );
    assert_eq!(instance.tags.get(connect::UID_TAG), Some(&uid));
    // The same, as the real SDK reads it back.
    let seen = aws_view(&s, &instance_id)
        .await
        .expect("the instance exists");
    assert_eq!(seen.status, "ACTIVE");
    assert_eq!(seen.alias.as_deref(), Some("support-center-e2e"));
    for (attribute, value) in [
        ("INBOUND_CALLS", "true"),
        ("OUTBOUND_CALLS", "false"),
        ("CONTACTFLOW_LOGS", "true"),
        ("CONTACT_LENS", "false"),
    ] {
        assert_eq!(
            seen.attributes.get(attribute).map(String::as_str),
            Some(value),
            "{attribute}: {seen:?}"
        );
    }
    assert_eq!(
        seen.tags, instance.tags,
        "the SDK and the simulator agree on the tags"
    );

    let calls = s.connect_calls().await;
    let creates: Vec<&SimCall> = calls
        .iter()
        .filter(|call| call.operation == "CreateInstance")
        .collect();
    assert_eq!(creates.len(), 1, "CreateInstance calls: {creates:?}");
    assert!(creates[0].succeeded());
    assert_eq!(
        creates[0].client_token.as_deref(),
        Some(create_token(&uid).as_str())
    );
    assert_eq!(s.sim.state().await.lifecycle_attempts, 1);
    assert_eq!(count(&calls, "DeleteInstance"), 0);

    let events = s.event_summaries(name).await;
    assert!(!events.is_empty(), "no events about {name}");
    assert!(
        events.iter().all(|(type_, _, _)| type_ == "Normal"),
        "warnings on a clean create: {events:?}"
    );

    let printed = kubectl_ok(&["get", "connectinstances", "-n", &s.namespace]).await;
    assert!(
        printed.contains("True") && printed.contains("Available") && printed.contains(&instance_id),
        "printer columns: {printed}"
    );

    assert_steady(&s, name, 2).await;
    eprintln!(
        "create scenario calls: {:?}",
        tally(&s.connect_calls().await)
    );

    // The operator's own endpoints: AWS calls counted by operation, ready after sync.
    let metrics = s.operator.metrics().await;
    assert!(
        metrics.contains("CreateInstance"),
        "AWS calls by operation in /metrics:\n{metrics}"
    );
    assert!(s.operator.endpoint_ok("/livez").await);
    assert!(
        s.operator.endpoint_ok("/readyz").await,
        "/readyz must answer 200 once the watch has synced"
    );
}

#[tokio::test]
async fn spec_change_sends_only_the_needed_attribute_and_tag_calls() {
    let s = Scenario::start(
        "spec_change_sends_only_the_needed_attribute_and_tag_calls",
        &["--creation-delay", "500ms"],
        &[("drift-interval", "1s")],
    )
    .await;
    let name = "sales";
    create(&s.api, &manifest(name, basic_spec("sales-e2e")))
        .await
        .expect("create");
    let before = s.wait_ready(name).await;
    let uid = uid(&before);
    let instance_id = status_str(&before, "instanceId").expect("instanceId");
    s.sim.clear_calls().await;

    // One attribute flag, one other attribute, one tag changed, one added, one removed.
    let patched = s
        .merge_patch(
            name,
            json!({ "spec": {
                "outboundCallsEnabled": true,
                "attributes": { "contactflowLogs": false },
                "tags": { "team": "platform", "env": "prod", "cost-center": null },
            }}),
        )
        .await;
    assert!(generation(&patched) > generation(&before));
    let after = s.wait_ready(name).await;
    assert_ready_and_settled(&after);
    assert_eq!(status_str(&after, "instanceId"), Some(instance_id.clone()));

    let calls = s.connect_calls().await;
    assert_eq!(
        count_ok(&calls, "UpdateInstanceAttribute"),
        2,
        "OUTBOUND_CALLS and CONTACTFLOW_LOGS only: {:?}",
        tally(&calls)
    );
    assert_eq!(count_ok(&calls, "TagResource"), 1, "{:?}", tally(&calls));
    assert_eq!(count_ok(&calls, "UntagResource"), 1, "{:?}", tally(&calls));
    assert_eq!(count(&calls, "CreateInstance"), 0, "{:?}", tally(&calls));
    assert_eq!(count(&calls, "DeleteInstance"), 0, "{:?}", tally(&calls));

    let instance = s.sim.instance(&instance_id).await.expect("instance");
    assert!(instance.outbound_calls_enabled);
    assert!(instance.inbound_calls_enabled);
    assert_eq!(
        instance
            .attributes
            .get("CONTACTFLOW_LOGS")
            .map(String::as_str),
        Some("false")
    );
    assert_eq!(
        instance.attributes.get("CONTACT_LENS").map(String::as_str),
        Some("false")
    );
    let expected: BTreeMap<String, String> = [
        ("team", "platform"),
        ("env", "prod"),
        (connect::UID_TAG, uid.as_str()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    assert_eq!(instance.tags, expected);
    let seen = aws_view(&s, &instance_id)
        .await
        .expect("the instance exists");
    assert_eq!(seen.tags, expected, "the tags, as the SDK reads them");
    for (attribute, value) in [
        ("OUTBOUND_CALLS", "true"),
        ("INBOUND_CALLS", "true"),
        ("CONTACTFLOW_LOGS", "false"),
        ("CONTACT_LENS", "false"),
    ] {
        assert_eq!(
            seen.attributes.get(attribute).map(String::as_str),
            Some(value),
            "{attribute}: {seen:?}"
        );
    }

    assert_steady(&s, name, 2).await;
}

#[tokio::test]
async fn kubectl_delete_sends_uid_token_and_keeps_finalizer_until_not_found() {
    let s = Scenario::start(
        "kubectl_delete_sends_uid_token_and_keeps_finalizer_until_not_found",
        &["--creation-delay", "500ms", "--deletion-delay", "2s"],
        &[],
    )
    .await;
    let name = "to-delete";
    s.kubectl_apply(&manifest(name, basic_spec("to-delete-e2e")))
        .await;
    let object = s.wait_ready(name).await;
    let uid = uid(&object);
    let instance_id = status_str(&object, "instanceId").expect("instanceId");
    let attempts_before = s.sim.state().await.lifecycle_attempts;

    kubectl_ok(&[
        "delete",
        "-n",
        &s.namespace,
        "connectinstance",
        name,
        "--wait=false",
    ])
    .await;

    // Sample the object first, then the simulator: the object must never be gone while
    // the instance still exists, and it must be seen held by its finalizer meanwhile.
    let mut held_while_instance_existed = false;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let object = s.api.get_opt(name).await.expect("get");
        let instance = s.sim.instance(&instance_id).await;
        match (&object, &instance) {
            (None, Some(instance)) => panic!(
                "the object is gone while the instance still exists: {instance:?}\n{:?}",
                tally(&s.connect_calls().await)
            ),
            (None, None) => break,
            (Some(object), Some(_)) => {
                assert!(
                    has_finalizer(object),
                    "finalizer dropped early: {}",
                    describe(object)
                );
                if object.metadata.deletion_timestamp.is_some() {
                    held_while_instance_existed = true;
                }
            }
            (Some(_), None) => {}
        }
        assert!(
            Instant::now() < deadline,
            "still not deleted after {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        held_while_instance_existed,
        "never saw the object held by its finalizer while the instance was being deleted"
    );
    let gone = kubectl(&["get", "-n", &s.namespace, "connectinstance", name]).await;
    assert!(
        !gone.success && gone.stderr.contains("NotFound"),
        "{gone:?}"
    );
    assert!(
        aws_view(&s, &instance_id).await.is_none(),
        "the SDK still finds the instance"
    );

    let calls = s.connect_calls().await;
    let deletes: Vec<&SimCall> = calls
        .iter()
        .filter(|call| call.operation == "DeleteInstance")
        .collect();
    assert!(deletes.iter().any(|call| call.succeeded()), "{deletes:?}");
    let token = delete_token(&uid);
    assert!(
        deletes
            .iter()
            .all(|call| call.client_token.as_deref() == Some(token.as_str())),
        "every DeleteInstance carries the UID-derived token {token}: {deletes:?}"
    );
    // Waiting for NotFound: a DescribeInstance answered 404 after the first delete.
    let first_delete = deletes[0].seq;
    assert!(
        calls.iter().any(|call| call.operation == "DescribeInstance"
            && call.seq > first_delete
            && call.status == 404),
        "no DescribeInstance saw the instance gone: {calls:?}"
    );
    assert_eq!(
        s.sim.state().await.lifecycle_attempts,
        attempts_before + 1,
        "one deletion attempt"
    );
    assert!(s.sim.instances().await.is_empty());
}

#[tokio::test]
async fn retain_policy_removes_object_and_keeps_instance() {
    let s = Scenario::start(
        "retain_policy_removes_object_and_keeps_instance",
        &["--creation-delay", "500ms"],
        &[],
    )
    .await;
    let name = "kept";
    let mut spec = basic_spec("kept-e2e");
    spec["deletionPolicy"] = json!("Retain");
    s.kubectl_apply(&manifest(name, spec)).await;
    let object = s.wait_ready(name).await;
    let instance_id = status_str(&object, "instanceId").expect("instanceId");

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

    let instance = s
        .sim
        .instance(&instance_id)
        .await
        .expect("instance retained");
    assert_eq!(instance.status, "ACTIVE");
    let calls = s.connect_calls().await;
    assert_eq!(count(&calls, "DeleteInstance"), 0, "{:?}", tally(&calls));
    assert_eq!(s.sim.state().await.lifecycle_attempts, 1);
    let events = s.event_summaries(name).await;
    assert!(
        events.iter().any(|(_, reason, message)| {
            format!("{reason} {message}")
                .to_ascii_lowercase()
                .contains("retain")
        }),
        "no event tells the instance was retained: {events:?}"
    );
}
