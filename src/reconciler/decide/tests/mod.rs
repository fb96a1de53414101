//! The behaviour table of the decision: one row per behaviour, written as data (what the
//! step observed and the decision it must give), held by part like the decision itself —
//! `lifecycle.rs` (creation, lookup, adoption, the error table, Cleanup), `attributes.rs`
//! (an ACTIVE instance against the spec, ObserveOnly, drift), `configuration.rs` (the
//! instance configuration) and `polls.rs` (the shared poll) — each followed by the checks
//! a row cannot express (tokens, messages, events). This file has the fixtures, the row
//! builders and the test that runs every row of every part.

use super::*;
use crate::api::{IdentityManagementType, ManagementPolicy, UID_TAG};
use crate::aws::{InstanceState, Operation, token};

mod attributes;
mod configuration;
mod deletion;
mod lifecycle;
mod polls;
mod replica;

const UID: &str = "0b5a6c1e-0000-4000-8000-000000000001";
const ID: &str = "11111111-2222-4333-8444-555555555555";
const ARN: &str =
    "arn:aws:connect:us-east-1:123456789012:instance/11111111-2222-4333-8444-555555555555";
const NOW: i64 = 1_800_000_000;

fn spec(policy: DeletionPolicy) -> ConnectInstanceSpec {
    ConnectInstanceSpec {
        identity_management_type: IdentityManagementType::ConnectManaged,
        instance_alias: Some("contact-center".into()),
        directory_id: None,
        inbound_calls_enabled: true,
        outbound_calls_enabled: false,
        attributes: None,
        tags: [("team".to_owned(), "voice".to_owned())].into(),
        storage_configs: None,
        approved_origins: None,
        lambda_functions: None,
        lex_bots: None,
        security_keys: None,
        region: None,
        deletion_policy: Some(policy),
        deletion_protection: false,
        instance_id: None,
        management_policy: None,
        replica: None,
        traffic_distribution: None,
        account_ref: None,
    }
}

/// The spec adopts [`ID`].
fn adopting(spec: &mut ConnectInstanceSpec) {
    spec.instance_id = Some(ID.into());
}

/// The spec observes [`ID`] (ObserveOnly needs Retain, which the row sets).
fn observing(spec: &mut ConnectInstanceSpec) {
    spec.instance_id = Some(ID.into());
    spec.management_policy = Some(ManagementPolicy::ObserveOnly);
}

fn recorded() -> ConnectInstanceStatus {
    ConnectInstanceStatus {
        instance_id: Some(ID.into()),
        arn: Some(ARN.into()),
        ..ConnectInstanceStatus::default()
    }
}

fn instance(state: InstanceState) -> ObservedInstance {
    ObservedInstance {
        id: ID.into(),
        arn: ARN.into(),
        alias: Some("contact-center".into()),
        identity_management_type: Some("CONNECT_MANAGED".into()),
        state,
        status_reason: None,
        access_url: Some("https://contact-center.my.connect.aws".into()),
        service_role: None,
        created_time: None,
        created_epoch_seconds: Some(NOW - 80),
        tags: None,
        inbound_calls_enabled: None,
        outbound_calls_enabled: None,
        replication: None,
    }
}

/// An instance described as it is: attributes and tags as given.
fn described(state: InstanceState, inbound: bool, tags: &[(&str, &str)]) -> Observation {
    Observation::Instance(Box::new(Described {
        attributes: Some(
            [
                (AttributeType::InboundCalls, inbound),
                (AttributeType::OutboundCalls, false),
            ]
            .into(),
        ),
        tags: Some(
            tags.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        configuration: None,
        traffic: None,
        instance: instance(state),
    }))
}

fn in_sync() -> Observation {
    described(
        InstanceState::Active,
        true,
        &[("team", "voice"), (UID_TAG, UID)],
    )
}

fn summary(id: &str, alias: &str) -> InstanceSummary {
    InstanceSummary {
        id: id.into(),
        arn: format!("arn:aws:connect:us-east-1:123456789012:instance/{id}"),
        alias: Some(alias.into()),
        identity_management_type: Some("CONNECT_MANAGED".into()),
        state: Some(InstanceState::Active),
    }
}

fn failed(operation: Operation, kind: ErrorKind) -> Observation {
    Observation::Failed(AwsError {
        operation,
        kind,
        code: Some("SomeException".into()),
        message: "the message AWS sent".into(),
        request_id: Some("req-1".into()),
        retry_after: (kind == ErrorKind::RateLimited).then(|| Duration::from_millis(700)),
    })
}

fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Path {
    Apply,
    Cleanup,
}

/// What a row expects, written as data.
struct Row {
    what: &'static str,
    path: Path,
    policy: DeletionPolicy,
    status: ConnectInstanceStatus,
    failures: u32,
    observation: Observation,
    /// `Ready` reason, or `None` for "conditions unchanged".
    state: Option<&'static str>,
    /// The writes, by AWS operation name, in order.
    writes: &'static [&'static str],
    then: Then,
    counts: Failures,
    /// Changes to the row's spec.
    adjust: fn(&mut ConnectInstanceSpec),
    /// The paused annotation.
    paused: bool,
    /// The account's refusal, if it refuses the object.
    account: Option<State>,
}

fn row(
    what: &'static str,
    path: Path,
    observation: Observation,
    state: Option<&'static str>,
    writes: &'static [&'static str],
    then: Then,
    counts: Failures,
) -> Row {
    Row {
        what,
        path,
        policy: DeletionPolicy::Delete,
        status: recorded(),
        failures: 0,
        observation,
        state,
        writes,
        then,
        counts,
        adjust: |_| {},
        paused: false,
        account: None,
    }
}

fn refused(mut row: Row, state: State) -> Row {
    row.account = Some(state);
    row
}

fn with(mut row: Row, adjust: fn(&mut ConnectInstanceSpec)) -> Row {
    row.adjust = adjust;
    row
}

fn paused(mut row: Row) -> Row {
    row.paused = true;
    row
}

fn unrecorded(mut row: Row) -> Row {
    row.status = ConnectInstanceStatus::default();
    row
}

fn after_failures(mut row: Row, failures: u32) -> Row {
    row.failures = failures;
    row
}

fn retained(mut row: Row) -> Row {
    row.policy = DeletionPolicy::Retain;
    row
}

fn deleting_since(mut row: Row, ago: i64) -> Row {
    row.status.delete_requested_time = rfc3339(NOW - ago);
    row
}

fn created_ago(mut row: Row, ago: i64) -> Row {
    row.status.create_requested_time = rfc3339(NOW - ago);
    row
}

fn seen(mut row: Row) -> Row {
    row.status.created_time = Some("2026-12-01T11:00:00Z".into());
    row
}

fn failed_then_vanished(mut row: Row) -> Row {
    row.status.create_requested_time = rfc3339(NOW - 86_400);
    row.status.instance_status = Some("CREATION_FAILED".into());
    row
}

fn spread(d: Duration) -> Then {
    Then::Requeue(d, Jitter::Spread)
}

fn pending(d: Duration) -> Then {
    Then::Pending(d, Jitter::Spread)
}

/// Every row of every part.
fn table() -> Vec<Row> {
    let mut rows = lifecycle::rows();
    rows.extend(deletion::rows());
    rows.extend(attributes::rows());
    rows.extend(configuration::rows());
    rows.extend(replica::rows());
    rows
}

fn decide_row(row: &Row) -> Decision {
    let mut spec = spec(row.policy);
    (row.adjust)(&mut spec);
    let inputs = Inputs {
        spec: &spec,
        uid: UID,
        generation: 3,
        status: &row.status,
        region: "us-east-1",
        now_epoch_seconds: NOW,
        retry: RetryPolicy::default(),
        failures: row.failures,
        delete_sent_ago: None,
        paused: row.paused,
        next_poll: secs(5),
        account: row.account.map(|state| (state, "the account refuses")),
    };
    match row.path {
        Path::Apply => apply(&inputs, &row.observation),
        Path::Cleanup => cleanup(&inputs, &row.observation),
    }
}

fn write_name(write: &Write) -> &'static str {
    match write {
        Write::CreateInstance(_) => "CreateInstance",
        Write::UpdateAttribute { .. } => "UpdateInstanceAttribute",
        Write::Tag(_) => "TagResource",
        Write::Untag(_) => "UntagResource",
        Write::DeleteInstance { .. } => "DeleteInstance",
        Write::Configure(_) => "Configure",
        Write::Replicate { .. } => "ReplicateInstance",
        Write::UpdateTraffic { .. } => "UpdateTrafficDistribution",
        Write::DeleteReplica { .. } => "DeleteReplica",
    }
}

#[test]
fn every_row_of_the_behaviour_table() {
    for row in table() {
        let decision = decide_row(&row);
        let state = decision.state.as_ref().map(|(s, _)| s.reason());
        let writes: Vec<_> = decision.writes.iter().map(write_name).collect();
        assert_eq!(state, row.state, "{}: state", row.what);
        assert_eq!(writes, row.writes, "{}: writes", row.what);
        assert_eq!(decision.then, row.then, "{}: then", row.what);
        assert_eq!(decision.failures, row.counts, "{}: failures", row.what);
    }
}

fn decide_row_clone(row: &Row) -> Row {
    Row {
        what: row.what,
        path: row.path,
        policy: row.policy,
        status: row.status.clone(),
        failures: row.failures,
        observation: row.observation.clone(),
        state: row.state,
        writes: row.writes,
        then: row.then,
        counts: row.counts,
        adjust: row.adjust,
        paused: row.paused,
        account: row.account,
    }
}

fn find<'a>(rows: &'a [Row], what: &str) -> &'a Row {
    rows.iter()
        .find(|r| r.what.starts_with(what))
        .unwrap_or_else(|| panic!("no row {what:?}"))
}
