//! The rows of the behaviour table for an ACTIVE instance against the spec: convergence
//! under Manage (only the differences written, attributes first) and ObserveOnly (never a
//! write); then the checks of attribute tokens, the `Updated` event, the `Drifted` report
//! and its events.

use super::*;

pub(super) fn rows() -> Vec<Row> {
    let poll = secs(5);
    let drift = minutes(10);
    vec![
        // ---- Apply: an ACTIVE instance under Manage
        row(
            "ACTIVE and matching: Available, no write, next look at the drift interval",
            Path::Apply,
            in_sync(),
            Some("Available"),
            &[],
            spread(drift),
            Failures::Reset,
        ),
        row(
            "ACTIVE and differing: only the differences are written, attributes first",
            Path::Apply,
            described(
                InstanceState::Active,
                false,
                &[("team", "data"), ("old", "x")],
            ),
            Some("Updating"),
            &["UpdateInstanceAttribute", "TagResource", "UntagResource"],
            Then::ObserveAgain,
            Failures::Keep,
        ),
        row(
            "the writes succeeded: Available",
            Path::Apply,
            Observation::Converged(Box::new(Described {
                attributes: None,
                tags: None,
                configuration: None,
                traffic: None,
                instance: instance(InstanceState::Active),
            })),
            Some("Available"),
            &[],
            spread(drift),
            Failures::Reset,
        ),
        // ---- ObserveOnly: never a write
        retained(with(
            unrecorded(row(
                "observing a matching instance: Observed, no write (not even the uid tag)",
                Path::Apply,
                described(InstanceState::Active, true, &[("team", "voice")]),
                Some("Observed"),
                &[],
                spread(drift),
                Failures::Reset,
            )),
            observing,
        )),
        retained(with(
            row(
                "observing a drifted instance: Observed, Drifted, no write",
                Path::Apply,
                described(
                    InstanceState::Active,
                    false,
                    &[("team", "data"), ("old", "x")],
                ),
                Some("Observed"),
                &[],
                spread(drift),
                Failures::Reset,
            ),
            observing,
        )),
        retained(with(
            row(
                "observing an instance being created: Creating, no write",
                Path::Apply,
                described(InstanceState::CreationInProgress, true, &[]),
                Some("Creating"),
                &[],
                Then::Requeue(poll, Jitter::None),
                Failures::Reset,
            ),
            observing,
        )),
    ]
}

#[test]
fn convergence_writes_carry_tokens_and_the_event_lists_what_changed() {
    let rows = rows();
    let row = find(&rows, "ACTIVE and differing");
    let decision = decide_row(row);
    let epoch = u64::try_from(NOW).unwrap_or_default() / 600;
    assert_eq!(
        decision.writes,
        vec![
            Write::UpdateAttribute {
                attribute: AttributeType::InboundCalls,
                value: true,
                client_token: token::attribute_token(
                    UID,
                    AttributeType::InboundCalls,
                    true,
                    3,
                    epoch
                ),
            },
            Write::Tag(
                [
                    ("team".to_owned(), "voice".to_owned()),
                    (UID_TAG.to_owned(), UID.to_owned())
                ]
                .into()
            ),
            Write::Untag(vec!["old".into()]),
        ]
    );
    let Observation::Instance(before) = &row.observation else {
        panic!("row observes an instance");
    };
    let spec = spec(DeletionPolicy::Delete);
    let status = recorded();
    let inputs = Inputs {
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
        next_poll: secs(5),
        account: None,
    };
    let done = apply(&inputs, &Observation::Converged(before.clone()));
    assert_eq!(done.events.len(), 1);
    assert_eq!(done.events[0].reason, "Updated");
    assert_eq!(
        done.events[0].note,
        format!("Applied INBOUND_CALLS=true, tag {UID_TAG}, tag team, untag old")
    );
}

#[test]
fn observe_only_lists_every_difference_and_announces_each_change_of_them() {
    let rows = rows();
    let drifted = decide_row(find(&rows, "observing a drifted instance"));
    assert_eq!(
        drifted.drift.as_deref(),
        Some(
            r#"INBOUND_CALLS: AWS false, spec true; tag team: AWS "data", spec "voice"; tag old: AWS "x", not in the spec"#
        )
    );
    assert_eq!(drifted.events.len(), 1);
    assert_eq!(drifted.events[0].reason, "DriftDetected");

    let matching = decide_row(find(&rows, "observing a matching instance"));
    assert_eq!(matching.drift, None, "the missing uid tag is not drift");
    assert!(matching.events.iter().all(|e| e.reason != "DriftDetected"));

    // The same drift seen again: no new event. Drift gone: DriftResolved.
    let row = find(&rows, "observing a drifted instance");
    let mut status = row.status.clone();
    status.conditions = crate::conditions::compute(
        State::Observed,
        "x",
        Some(3),
        &[],
        &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        drifted.drift.as_deref(),
    );
    let again = decide_row(&Row {
        status: status.clone(),
        ..decide_row_clone(row)
    });
    assert!(again.events.is_empty(), "{:?}", again.events);
    let resolved = decide_row(&Row {
        status,
        ..decide_row_clone(find(&rows, "observing a matching instance"))
    });
    assert_eq!(resolved.events.len(), 1);
    assert_eq!(resolved.events[0].reason, "DriftResolved");
}

#[test]
fn drift_under_manage_is_transient_and_pause_marks_the_decision() {
    let rows = table();
    let updating = decide_row(find(&rows, "ACTIVE and differing"));
    assert!(updating.drift.is_some());
    let done = decide_row(find(&rows, "the writes succeeded"));
    assert_eq!(done.drift, None);
    let paused = decide_row(find(&rows, "paused: nothing asked"));
    assert!(paused.paused);
    assert_eq!(
        paused.status,
        recorded(),
        "no status field changes while paused"
    );
}
