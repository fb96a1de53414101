//! The shared poll in the decision: an object whose creation (or accepted deletion) is in
//! flight comes back at its account and region's next poll, and what the poll's listing
//! answers stands for a DescribeInstance only where the describe would add nothing.

use super::*;

#[test]
fn polls_wait_for_the_shared_poll_and_say_so() {
    let spec = spec(DeletionPolicy::Delete);
    let mut status = recorded();
    status.instance_status = Some("CREATION_IN_PROGRESS".into());
    status.observed_generation = Some(3);
    status.conditions = vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        type_: crate::conditions::types::READY.into(),
        status: "False".into(),
        reason: "Creating".into(),
        message: "being created".into(),
        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::UNIX_EPOCH,
        ),
        observed_generation: Some(3),
    }];
    let inputs = |next_poll| Inputs {
        spec: &spec,
        uid: UID,
        generation: 3,
        status: &status,
        region: "us-east-1",
        now_epoch_seconds: NOW,
        retry: RetryPolicy::default(),
        failures: 0,
        delete_sent_ago: None,
        paused: false,
        next_poll,
        account: None,
    };
    // However long the creation has taken, the next look is the account and region's
    // shared poll, whenever that is (the poll's own interval is stretched by the reads all
    // its objects cost, not by this object).
    let creating = described(InstanceState::CreationInProgress, true, &[]);
    let mut long = creating.clone();
    if let Observation::Instance(d) = &mut long {
        d.instance.created_epoch_seconds = Some(NOW - 600);
    }
    for (observation, next) in [(&long, secs(3)), (&creating, secs(12))] {
        let decision = apply(&inputs(next), observation);
        assert_eq!(decision.then, Then::Requeue(next, Jitter::None));
        assert!(decision.poll, "a creation follows the shared poll");
    }
    // The shared poll shows the instance still being created: nothing changes, nothing is
    // written, the object stays with the poll.
    let unchanged = apply(&inputs(secs(4)), &Observation::Unchanged);
    assert_eq!(unchanged.then, Then::Requeue(secs(4), Jitter::None));
    assert!(unchanged.poll && unchanged.state.is_none() && unchanged.writes.is_empty());
    assert_eq!(unchanged.status, status, "no status change");
    let pending = cleanup(&inputs(secs(4)), &Observation::Unchanged);
    assert_eq!(pending.then, Then::Pending(secs(4), Jitter::None));
    assert!(pending.poll && pending.writes.is_empty());
    // Settled: no longer polled.
    let active = apply(
        &inputs(secs(4)),
        &described(
            InstanceState::Active,
            true,
            &[(UID_TAG, UID), ("team", "voice")],
        ),
    );
    assert!(!active.poll);
}

#[test]
fn the_shared_poll_answers_only_where_a_describe_would_add_nothing() {
    use crate::reconciler::polls::Awaited;
    let spec = spec(DeletionPolicy::Delete);
    let creating_status = |generation_seen: i64, reason: &str| {
        let mut status = recorded();
        status.instance_status = Some("CREATION_IN_PROGRESS".into());
        status.observed_generation = Some(generation_seen);
        status.conditions = vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: crate::conditions::types::READY.into(),
            status: "False".into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::UNIX_EPOCH,
            ),
            observed_generation: Some(generation_seen),
        }];
        status
    };
    let inputs = |status: &ConnectInstanceStatus, cleanup: bool, paused: bool| {
        let inputs = Inputs {
            spec: &spec,
            uid: UID,
            generation: 3,
            status,
            region: "us-east-1",
            now_epoch_seconds: NOW,
            retry: RetryPolicy::default(),
            failures: 0,
            delete_sent_ago: None,
            paused,
            next_poll: secs(4),
            account: None,
        };
        awaited(&inputs, cleanup)
    };
    assert_eq!(
        inputs(&creating_status(3, "Creating"), false, false),
        Some(Awaited::Settled)
    );
    // A spec changed since (a newer generation), another state, a paused object, no
    // instance: described as usual.
    assert_eq!(inputs(&creating_status(2, "Creating"), false, false), None);
    assert_eq!(inputs(&creating_status(3, "AwsError"), false, false), None);
    assert_eq!(inputs(&creating_status(3, "Creating"), false, true), None);
    assert_eq!(
        inputs(&ConnectInstanceStatus::default(), false, false),
        None
    );
    // Cleanup: still being created, or deleted moments ago; an accepted delete older than
    // the resend interval is described (it may need sending again).
    assert_eq!(
        inputs(&creating_status(1, "Deleting"), true, false),
        Some(Awaited::Settled)
    );
    let mut deleting = recorded();
    deleting.instance_status = Some("ACTIVE".into());
    assert_eq!(inputs(&deleting, true, false), None);
    deleting.delete_requested_time = rfc3339(NOW - 30);
    assert_eq!(inputs(&deleting, true, false), Some(Awaited::Gone));
    deleting.delete_requested_time = rfc3339(NOW - 3600);
    assert_eq!(inputs(&deleting, true, false), None);
}
