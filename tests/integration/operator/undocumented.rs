//! The existing lifecycle and crash scenarios with the simulator answering what AWS does
//! not document the other way: new instances invisible for a while after CreateInstance,
//! DeleteInstance refused while an instance is being created, failed instances removed by
//! AWS after a while, attribute types the SDK does not know. The operator must stay right:
//! one CreateInstance per object, never InstanceNotFound for an instance it just created,
//! one DeleteInstance sent after creation settled, nothing left behind, nothing stuck.

use connect_sim::ConfigPatch;
use test_kit::DEADLINE;
use test_kit::connect::{basic_spec, condition, create, is_true, manifest, wait_gone};

use super::{Scenario, assert_ready_and_settled, count, count_ok, tally};

/// Every knob on at once.
const ODD_AWS: &[&str] = &[
    "--instance-quota",
    "10",
    "--creation-delay",
    "2s",
    "--visibility-delay",
    "4s",
    "--refuse-delete-while-creating",
    "--failed-instance-retention",
    "3s",
    "--extra-attribute-type",
    "AUTO_SUMMARIZE_CONTACTS",
    "--extra-attribute-type",
    "SOMETHING_NEW",
];

#[tokio::test]
async fn operator_killed_after_create_instance_with_new_instances_invisible_at_first() {
    super::failures::killed_after_create_instance(
        "operator_killed_after_create_instance_with_new_instances_invisible_at_first",
        &["--creation-delay", "3s", "--visibility-delay", "6s"],
    )
    .await;
}

#[tokio::test]
async fn lifecycle_stays_exact_when_aws_answers_the_undocumented_questions_the_other_way() {
    let s = Scenario::start(
        "lifecycle_stays_exact_when_aws_answers_the_undocumented_questions_the_other_way",
        ODD_AWS,
        &[],
    )
    .await;
    s.sim
        .set_config(&ConfigPatch {
            fail_creation_alias_pattern: Some(Some("^doomed-".to_owned())),
            ..ConfigPatch::default()
        })
        .await;
    // Created while invisible: Creating, never InstanceNotFound, then Ready; the unknown
    // attribute types in ListInstanceAttributes are ignored (it manages more attributes
    // than the listing has pages, so it lists them).
    let mut late = basic_spec("late-e2e");
    late["attributes"] = serde_json::json!({
        "contactflowLogs": true,
        "contactLens": false,
        "earlyMedia": true,
        "autoResolveBestVoices": false,
    });
    create(&s.api, &manifest("late", late))
        .await
        .expect("create");
    // Deleted while still being created: DeleteInstance waits for creation to settle.
    create(&s.api, &manifest("hasty", basic_spec("hasty-e2e")))
        .await
        .expect("create");
    // Fails; AWS removes the failed instance after a while.
    create(&s.api, &manifest("doomed", basic_spec("doomed-e2e")))
        .await
        .expect("create");

    s.wait_for("hasty", "an instance id", |o| {
        o.data.pointer("/status/instanceId").is_some()
    })
    .await;
    let output = test_kit::kubectl(&[
        "delete",
        "connectinstance",
        "hasty",
        "-n",
        &s.namespace,
        "--wait=false",
    ])
    .await;
    assert!(output.success, "{output:?}");

    let late = s.wait_ready("late").await;
    assert_ready_and_settled(&late);
    let late_id = late.data.pointer("/status/instanceId").cloned();
    assert!(
        s.connect_calls().await.iter().any(|c| {
            c.operation == "ListInstanceAttributes"
                && c.status == 200
                && c.instance_id.as_ref().map(|id| serde_json::json!(id)) == late_id
        }),
        "late's attributes were never listed"
    );
    wait_gone(&s.api, "hasty", DEADLINE).await;
    let doomed = s
        .wait_for("doomed", "Stalled=True/CreationFailed", |o| {
            is_true(o, "Stalled", Some("CreationFailed"))
        })
        .await;
    // After the retention AWS has removed it; the object stays CreationFailed.
    let doomed_id = doomed
        .data
        .pointer("/status/instanceId")
        .and_then(serde_json::Value::as_str)
        .expect("instance id")
        .to_owned();
    test_kit::wait_until("AWS to remove the failed instance", DEADLINE, || async {
        match s.sim.instance(&doomed_id).await {
            None => Ok(()),
            Some(instance) => Err(format!("{instance:?}")),
        }
    })
    .await;
    // Gone from AWS, looked at again (a spec change, proof that it is at work): still
    // CreationFailed, never re-created.
    s.merge_patch(
        "doomed",
        serde_json::json!({ "spec": { "tags": { "looked-at": "again" } } }),
    )
    .await;
    let doomed = s
        .wait_for("doomed", "the change observed", |o| {
            o.data
                .pointer("/status/observedGeneration")
                .and_then(serde_json::Value::as_i64)
                == Some(test_kit::connect::generation(o))
        })
        .await;
    assert_eq!(
        condition(&doomed, "Ready").map(|c| c.reason).as_deref(),
        Some("CreationFailed")
    );
    wait_gone_after_delete(&s, "doomed").await;
    wait_gone_after_delete(&s, "late").await;

    let calls = s.connect_calls().await;
    let summary = tally(&calls);
    assert_eq!(
        count(&calls, "CreateInstance"),
        3,
        "one per object: {summary:?}"
    );
    // One accepted DeleteInstance each for hasty and late; none refused (it waited for
    // creation to settle), none for the failed instance AWS had already removed.
    let deletes: Vec<_> = calls
        .iter()
        .filter(|c| c.operation == "DeleteInstance")
        .collect();
    assert_eq!(count_ok(&calls, "DeleteInstance"), 2, "{deletes:?}");
    assert!(
        deletes.iter().all(|c| c.status < 400),
        "a refused delete: {deletes:?}"
    );
    assert!(
        deletes
            .iter()
            .all(|c| c.instance_id.as_deref() != Some(doomed_id.as_str())),
        "{deletes:?}"
    );
    assert!(s.sim.instances().await.is_empty(), "nothing left behind");
    let events = s.event_summaries("late").await;
    assert!(
        events
            .iter()
            .all(|(_, reason, _)| reason != "InstanceNotFound"),
        "an instance just created was taken for gone: {events:?}"
    );
}

async fn wait_gone_after_delete(s: &Scenario, name: &str) {
    let output = test_kit::kubectl(&[
        "delete",
        "connectinstance",
        name,
        "-n",
        &s.namespace,
        "--wait=false",
    ])
    .await;
    assert!(output.success, "{output:?}");
    wait_gone(&s.api, name, DEADLINE).await;
}
