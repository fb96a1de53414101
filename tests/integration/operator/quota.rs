//! Connect's limits through the operator: an exhausted instance quota sets
//! QuotaExceeded/InstanceLimitExceeded, is retried at most once per quota retry interval and
//! recovers when the quota is raised; the lifecycle attempt limit on delete keeps the
//! finalizer (and the instance) until the deletion policy is switched to Retain.

use std::time::Instant;

use connect_operator::aws::token::{create_token, delete_token};
use connect_sim::ConfigPatch;

use test_kit::connect::{
    basic_spec, condition, create, describe, has_finalizer, is_true, manifest, status_str, uid,
    wait_gone,
};
use test_kit::{DEADLINE, SimCall, kubectl_ok};

use super::{Scenario, assert_ready_and_settled, count_ok, tally};

#[tokio::test]
async fn instance_quota_sets_quota_exceeded_and_recovers_when_raised() {
    let s = Scenario::start(
        "instance_quota_sets_quota_exceeded_and_recovers_when_raised",
        &["--creation-delay", "500ms", "--instance-quota", "1"],
        &[("quota-retry-interval", "3s")],
    )
    .await;
    // The account's only slot is taken by an instance outside Kubernetes.
    s.sim
        .insert_instance("someone-elses", &[("owner", "other-team")])
        .await;

    let name = "over-quota";
    let started = Instant::now();
    create(&s.api, &manifest(name, basic_spec("over-quota-e2e")))
        .await
        .expect("create");
    let object = s
        .wait_for(name, "QuotaExceeded=True/InstanceLimitExceeded", |object| {
            is_true(object, "QuotaExceeded", Some("InstanceLimitExceeded"))
        })
        .await;
    let uid = uid(&object);
    assert!(
        is_true(&object, "Stalled", Some("QuotaExceeded")),
        "{}",
        describe(&object)
    );
    assert!(
        !is_true(&object, "Reconciling", None),
        "{}",
        describe(&object)
    );
    let ready = condition(&object, "Ready").expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "QuotaExceeded")
    );
    let quota = condition(&object, "QuotaExceeded").expect("QuotaExceeded");
    assert!(
        !quota.message.is_empty(),
        "the AWS message belongs in the condition"
    );
    assert!(status_str(&object, "instanceId").is_none());

    // Over a window of retry intervals (until it has tried again twice: proof that it
    // retries at all), at most one attempt per interval.
    s.wait_calls(0, 3, "two retries of the create", |c| {
        c.operation == "CreateInstance"
    })
    .await;
    let calls = s.connect_calls().await;
    let creates: Vec<&SimCall> = calls
        .iter()
        .filter(|call| call.operation == "CreateInstance")
        .collect();
    let allowed = (started.elapsed().as_secs_f64() / 3.0).floor() as usize + 2;
    assert!(
        !creates.is_empty() && creates.len() <= allowed,
        "{} CreateInstance calls in {:?} with a 3 s quota retry interval (at most {allowed}): {creates:?}",
        creates.len(),
        started.elapsed()
    );
    assert!(
        creates.iter().all(|call| call.status == 402
            && call.error_type.as_deref() == Some("ServiceQuotaExceededException")),
        "{creates:?}"
    );
    let warnings: Vec<_> = s
        .event_summaries(name)
        .await
        .into_iter()
        .filter(|(type_, _, _)| type_ == "Warning")
        .collect();
    assert!(!warnings.is_empty(), "no Warning event for the quota error");

    // Raising the quota: the next attempt succeeds and the conditions clear.
    s.sim
        .set_config(&ConfigPatch {
            instance_quota: Some(2),
            ..ConfigPatch::default()
        })
        .await;
    let object = s.wait_ready(name).await;
    assert_ready_and_settled(&object);
    let calls = s.connect_calls().await;
    assert_eq!(count_ok(&calls, "CreateInstance"), 1, "{:?}", tally(&calls));
    let token = create_token(&uid);
    assert!(
        calls
            .iter()
            .filter(|call| call.operation == "CreateInstance")
            .all(|call| call.client_token.as_deref() == Some(token.as_str())),
        "every attempt uses the UID token"
    );
    eprintln!("quota scenario calls: {:?}", tally(&calls));
}

#[tokio::test]
async fn lifecycle_limit_on_delete_keeps_finalizer_until_switched_to_retain() {
    let s = Scenario::start(
        "lifecycle_limit_on_delete_keeps_finalizer_until_switched_to_retain",
        &[
            "--creation-delay",
            "500ms",
            "--lifecycle-attempt-limit",
            "1",
        ],
        &[("quota-retry-interval", "3s")],
    )
    .await;
    let name = "stuck";
    create(&s.api, &manifest(name, basic_spec("stuck-e2e")))
        .await
        .expect("create");
    let object = s.wait_ready(name).await;
    let uid = uid(&object);
    let instance_id = status_str(&object, "instanceId").expect("instanceId");

    // The creation used the account's only attempt: deleting is refused.
    let deleting_since = Instant::now();
    kubectl_ok(&[
        "delete",
        "-n",
        &s.namespace,
        "connectinstance",
        name,
        "--wait=false",
    ])
    .await;
    let object = s
        .wait_for(
            name,
            "QuotaExceeded=True/LifecycleAttemptLimitExceeded",
            |object| {
                is_true(
                    object,
                    "QuotaExceeded",
                    Some("LifecycleAttemptLimitExceeded"),
                )
            },
        )
        .await;
    assert!(object.metadata.deletion_timestamp.is_some());
    assert!(has_finalizer(&object), "{}", describe(&object));
    assert!(
        is_true(&object, "Stalled", Some("QuotaExceeded")),
        "{}",
        describe(&object)
    );
    assert!(
        condition(&object, "QuotaExceeded")
            .is_some_and(|quota| quota.message.contains("excessive number")),
        "the AWS message: {}",
        describe(&object)
    );

    // Until it has tried again (proof that it retries, slowly): the finalizer stays.
    let tried = s.connect_calls().await.len();
    s.wait_calls(tried, 1, "the delete retried", |c| {
        c.operation == "DeleteInstance"
    })
    .await;
    let object = s.get(name).await;
    assert!(
        has_finalizer(&object),
        "released without deleting: {}",
        describe(&object)
    );
    assert!(s.sim.instance(&instance_id).await.is_some());
    let calls = s.connect_calls().await;
    let deletes: Vec<&SimCall> = calls
        .iter()
        .filter(|call| call.operation == "DeleteInstance")
        .collect();
    let allowed = (deleting_since.elapsed().as_secs_f64() / 3.0).floor() as usize + 2;
    assert!(
        !deletes.is_empty() && deletes.len() <= allowed,
        "{} DeleteInstance calls in {:?} (at most {allowed}): {deletes:?}",
        deletes.len(),
        deleting_since.elapsed()
    );
    let token = delete_token(&uid);
    assert!(
        deletes
            .iter()
            .all(|call| !call.succeeded() && call.client_token.as_deref() == Some(token.as_str()))
    );

    // Retain releases the object; the instance stays.
    kubectl_ok(&[
        "patch",
        "-n",
        &s.namespace,
        "connectinstance",
        name,
        "--type=merge",
        "-p",
        r#"{"spec":{"deletionPolicy":"Retain"}}"#,
    ])
    .await;
    wait_gone(&s.api, name, DEADLINE).await;
    assert!(
        s.sim.instance(&instance_id).await.is_some(),
        "instance retained"
    );
    eprintln!(
        "lifecycle-limit scenario calls: {:?}",
        tally(&s.connect_calls().await)
    );
}
