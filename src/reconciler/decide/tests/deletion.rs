//! The deletion rows of the behaviour table: Cleanup under each deletion policy (Retain
//! releases without AWS, Delete sends DeleteInstance once and follows it until the instance
//! is gone) and deletion protection, which never lets the operator delete; then the checks
//! of the delete token, the recorded time and the resend poll.

use super::*;

fn protected(spec: &mut ConnectInstanceSpec) {
    spec.deletion_protection = true;
}

pub(super) fn rows() -> Vec<Row> {
    use ErrorKind as K;
    use Operation as O;
    let poll = secs(5);
    let drift = minutes(10);
    vec![
        // ---- Cleanup
        retained(row(
            "Retain: released, AWS never called",
            Path::Cleanup,
            Observation::NotAsked,
            None,
            &[],
            Then::Release,
            Failures::Keep,
        )),
        row(
            "Delete: DeleteInstance with the UID token",
            Path::Cleanup,
            in_sync(),
            None,
            &["DeleteInstance"],
            Then::ObserveAgain,
            Failures::Keep,
        ),
        row(
            "DeleteInstance accepted: Deleting, the finalizer stays, polled",
            Path::Cleanup,
            Observation::DeleteAccepted,
            Some("Deleting"),
            &[],
            Then::Pending(poll, Jitter::None),
            Failures::Reset,
        ),
        deleting_since(
            row(
                "accepted a minute ago (status): polled, not resent",
                Path::Cleanup,
                in_sync(),
                None,
                &[],
                Then::Pending(poll, Jitter::None),
                Failures::Reset,
            ),
            60,
        ),
        deleting_since(
            row(
                "accepted long ago and still there: resent, same token",
                Path::Cleanup,
                in_sync(),
                None,
                &["DeleteInstance"],
                Then::ObserveAgain,
                Failures::Keep,
            ),
            3600,
        ),
        row(
            "ResourceNotFound on describe: gone, the finalizer is released",
            Path::Cleanup,
            Observation::Gone,
            None,
            &[],
            Then::Release,
            Failures::Reset,
        ),
        row(
            "ResourceNotFound on delete is success",
            Path::Cleanup,
            Observation::DeleteFoundNothing,
            None,
            &[],
            Then::Release,
            Failures::Reset,
        ),
        unrecorded(row(
            "nothing recorded and nothing found: nothing to delete",
            Path::Cleanup,
            Observation::Lookup(Lookup::Nothing),
            None,
            &[],
            Then::Release,
            Failures::Reset,
        )),
        unrecorded(row(
            "nothing recorded, ours found by alias + uid tag: recorded, then deleted",
            Path::Cleanup,
            Observation::Lookup(Lookup::Ours(summary(ID, "contact-center"))),
            None,
            &[],
            Then::ObserveAgain,
            Failures::Keep,
        )),
        unrecorded(row(
            "a foreign instance holding the alias is never deleted",
            Path::Cleanup,
            Observation::Lookup(Lookup::Foreign(summary(ID, "contact-center"))),
            None,
            &[],
            Then::Release,
            Failures::Reset,
        )),
        row(
            "the 30-day limit on delete: QuotaExceeded, the finalizer stays, slow retry",
            Path::Cleanup,
            failed(O::DeleteInstance, K::LifecycleAttemptLimitExceeded),
            Some("QuotaExceeded"),
            &[],
            pending(minutes(120)),
            Failures::Count,
        ),
        row(
            "errors on delete are retried with backoff, never terminal",
            Path::Cleanup,
            failed(O::DeleteInstance, K::Transient),
            Some("AwsError"),
            &[],
            pending(secs(2)),
            Failures::Count,
        ),
        row(
            "invalid request on delete is not InvalidSpec: retried",
            Path::Cleanup,
            failed(O::DeleteInstance, K::InvalidRequest),
            Some("AwsError"),
            &[],
            pending(secs(2)),
            Failures::Count,
        ),
        // ---- Deletion protection and policies that never delete
        with(
            row(
                "protected under Delete: DeletionProtected, no DeleteInstance",
                Path::Cleanup,
                Observation::NotAsked,
                Some("DeletionProtected"),
                &[],
                pending(drift),
                Failures::Keep,
            ),
            protected,
        ),
        retained(with(
            row(
                "protected under Retain: released, the instance kept",
                Path::Cleanup,
                Observation::NotAsked,
                None,
                &[],
                Then::Release,
                Failures::Keep,
            ),
            protected,
        )),
        retained(with(
            row(
                "ObserveOnly being deleted: released, never deleted",
                Path::Cleanup,
                Observation::NotAsked,
                None,
                &[],
                Then::Release,
                Failures::Keep,
            ),
            observing,
        )),
        with(
            unrecorded(row(
                "an instance never adopted is never deleted",
                Path::Cleanup,
                Observation::NotAsked,
                None,
                &[],
                Then::Release,
                Failures::Reset,
            )),
            adopting,
        ),
    ]
}

#[test]
fn delete_records_when_it_was_accepted_once_and_uses_the_uid_token() {
    let rows = table();
    let send = find(&rows, "Delete: DeleteInstance");
    assert_eq!(
        decide_row(send).writes,
        vec![Write::DeleteInstance {
            instance_id: ID.into(),
            client_token: token::delete_token(UID),
        }]
    );
    let accepted = find(&rows, "DeleteInstance accepted");
    let first = decide_row(accepted);
    assert_eq!(first.status.delete_requested_time, rfc3339(NOW));
    // A later acceptance (a resend) keeps the first time: the field never churns.
    let mut again = Row {
        status: first.status.clone(),
        ..decide_row_clone(accepted)
    };
    again.status.delete_requested_time = rfc3339(NOW - 900);
    assert_eq!(
        decide_row(&again).status.delete_requested_time,
        rfc3339(NOW - 900)
    );
}

#[test]
fn this_process_resending_recently_only_polls() {
    let spec = spec(DeletionPolicy::Delete);
    let mut status = recorded();
    status.delete_requested_time = rfc3339(NOW - 3600);
    let inputs = Inputs {
        spec: &spec,
        uid: UID,
        generation: 3,
        status: &status,
        region: "us-east-1",
        now_epoch_seconds: NOW,
        retry: RetryPolicy::default(),
        failures: 0,
        delete_sent_ago: Some(secs(30)),
        paused: false,
        next_poll: secs(5),
        account: None,
    };
    let decision = cleanup(&inputs, &in_sync());
    assert!(decision.writes.is_empty(), "{:?}", decision.writes);
    // What comes next: a poll at the poll interval, the finalizer kept, nothing new to
    // report (the deletion is already recorded as requested).
    assert_eq!(decision.then, Then::Pending(secs(5), Jitter::None));
    assert_eq!(decision.state, None, "{:?}", decision.state);
    assert!(decision.events.is_empty(), "{:?}", decision.events);
}
