//! Rows of the replica part: replicate once the instance is ACTIVE and converged, wait
//! while AWS replicates, then the split (held back while the replica is not complete, sent
//! only when AWS differs and the group is ACTIVE); removal only once the traffic is back;
//! Cleanup deletes the replica first. Then the checks rows cannot express: a failed
//! replication is not sent again, also once AWS no longer lists the failed replica.

use std::collections::BTreeMap;

use super::*;
use crate::api::{IdentityManagementType, ReplicaSpec, ReplicaStatus, TrafficDistributionSpec};
use crate::aws::{ObservedReplication, TrafficSplit};
use crate::reconciler::decide::replica::{ObservedTraffic, REPLICA_POLL};

const WEST: &str = "us-west-2";
const GROUP: &str = "arn:aws:connect:us-east-1:123456789012:traffic-distribution-group/g-1";

fn replicated(spec: &mut ConnectInstanceSpec) {
    spec.identity_management_type = IdentityManagementType::Saml;
    spec.replica = Some(ReplicaSpec {
        region: "us-west-2".into(),
        alias: "contact-center-west".into(),
    });
}

fn percent(pairs: &[(&str, u8)]) -> BTreeMap<String, u8> {
    pairs.iter().map(|(r, p)| ((*r).to_owned(), *p)).collect()
}

/// A replica, with half of the telephony on it.
fn replicated_half(spec: &mut ConnectInstanceSpec) {
    replicated(spec);
    spec.traffic_distribution = Some(TrafficDistributionSpec {
        telephony: Some(percent(&[("us-east-1", 50), (WEST, 50)])),
        agents: None,
        sign_in: None,
    });
}

/// A replica in a region that is not the pair of us-east-1.
fn replicated_unpaired(spec: &mut ConnectInstanceSpec) {
    replicated(spec);
    if let Some(replica) = spec.replica.as_mut() {
        replica.region = "eu-west-2".into();
    }
}

/// The instance, converged, with AWS's replication (`None`: none listed) and default group
/// (`None`: not readable), whose split puts `on_replica` % of telephony and agents on the
/// replica.
fn observed(status: Option<&str>, group: Option<(&str, u8)>) -> Observation {
    let Observation::Converged(mut described) = with_replication(status) else {
        unreachable!("with_replication gives a converged instance")
    };
    described.traffic = group.map(|(group_status, on_replica)| {
        let split = percent(&[("us-east-1", 100 - on_replica), (WEST, on_replica)]);
        ObservedTraffic {
            group_arn: GROUP.into(),
            group_status: Some(group_status.into()),
            split: TrafficSplit {
                telephony: split.clone(),
                agents: split,
                sign_in: BTreeMap::new(),
            },
        }
    });
    Observation::Converged(described)
}

/// The same observation on the Cleanup path (an instance described, not converged).
fn described_for_cleanup(status: Option<&str>) -> Observation {
    let Observation::Converged(described) = observed(status, None) else {
        unreachable!("observed gives a converged instance")
    };
    Observation::Instance(described)
}

fn replica_recorded(mut row: Row, requested_ago: Option<i64>, refused: bool) -> Row {
    row.status.replica = Some(ReplicaStatus {
        region: WEST.into(),
        arn: Some(format!("arn:aws:connect:{WEST}:123456789012:instance/{ID}")),
        requested_time: requested_ago.and_then(|ago| rfc3339(NOW - ago)),
        refused_generation: refused.then_some(3),
        ..ReplicaStatus::default()
    });
    row
}

pub(super) fn rows() -> Vec<Row> {
    let drift = RetryPolicy::default().drift_interval;
    let poll = Then::Requeue(REPLICA_POLL, Jitter::None);
    vec![
        // ---- Apply, spec.replica set
        with(
            row(
                "ACTIVE and converged, AWS lists no replica: ReplicateInstance",
                Path::Apply,
                observed(None, None),
                Some("Replicating"),
                &["ReplicateInstance"],
                Then::ObserveAgain,
                Failures::Reset,
            ),
            replicated,
        ),
        with(
            replica_recorded(
                row(
                    "ReplicateInstance accepted 10 s ago, not listed yet: waits, not resent",
                    Path::Apply,
                    observed(None, None),
                    Some("Replicating"),
                    &[],
                    poll,
                    Failures::Reset,
                ),
                Some(10),
                false,
            ),
            replicated,
        ),
        with(
            replica_recorded(
                row(
                    "refused for this generation, not listed: ReplicationFailed, not resent",
                    Path::Apply,
                    observed(None, None),
                    Some("ReplicationFailed"),
                    &[],
                    spread(drift),
                    Failures::Reset,
                ),
                None,
                true,
            ),
            replicated,
        ),
        with(
            row(
                "replica IN_PROGRESS: Replicating, polled",
                Path::Apply,
                observed(Some("INSTANCE_REPLICATION_IN_PROGRESS"), None),
                Some("Replicating"),
                &[],
                poll,
                Failures::Reset,
            ),
            replicated,
        ),
        with(
            row(
                "replica IN_PROGRESS, the split sends half to it: held back",
                Path::Apply,
                observed(
                    Some("INSTANCE_REPLICATION_IN_PROGRESS"),
                    Some(("ACTIVE", 0)),
                ),
                Some("Replicating"),
                &[],
                poll,
                Failures::Reset,
            ),
            replicated_half,
        ),
        with(
            row(
                "replica COMPLETE, its group not readable yet: Replicating",
                Path::Apply,
                observed(Some("INSTANCE_REPLICATION_COMPLETE"), None),
                Some("Replicating"),
                &[],
                poll,
                Failures::Reset,
            ),
            replicated,
        ),
        with(
            row(
                "replica COMPLETE, no split managed: Available, no write",
                Path::Apply,
                observed(Some("INSTANCE_REPLICATION_COMPLETE"), Some(("ACTIVE", 0))),
                Some("Available"),
                &[],
                spread(drift),
                Failures::Reset,
            ),
            replicated,
        ),
        with(
            row(
                "replica COMPLETE, AWS has the split: Available, no write",
                Path::Apply,
                observed(Some("INSTANCE_REPLICATION_COMPLETE"), Some(("ACTIVE", 50))),
                Some("Available"),
                &[],
                spread(drift),
                Failures::Reset,
            ),
            replicated_half,
        ),
        with(
            row(
                "replica COMPLETE, AWS differs: one UpdateTrafficDistribution",
                Path::Apply,
                observed(Some("INSTANCE_REPLICATION_COMPLETE"), Some(("ACTIVE", 0))),
                Some("Updating"),
                &["UpdateTrafficDistribution"],
                Then::ObserveAgain,
                Failures::Reset,
            ),
            replicated_half,
        ),
        with(
            row(
                "replica COMPLETE, AWS differs, group not ACTIVE: waits",
                Path::Apply,
                observed(
                    Some("INSTANCE_REPLICATION_COMPLETE"),
                    Some(("UPDATE_IN_PROGRESS", 0)),
                ),
                Some("Replicating"),
                &[],
                poll,
                Failures::Reset,
            ),
            replicated_half,
        ),
        with(
            row(
                "spec.replica.region not the pair: InvalidSpec, nothing sent",
                Path::Apply,
                observed(None, None),
                Some("InvalidSpec"),
                &[],
                spread(drift),
                Failures::Reset,
            ),
            replicated_unpaired,
        ),
        // ---- Apply, spec.replica removed
        replica_recorded(
            row(
                "removed while 30% is on the replica: ReplicationFailed, not deleted",
                Path::Apply,
                observed(Some("INSTANCE_REPLICATION_COMPLETE"), Some(("ACTIVE", 30))),
                Some("ReplicationFailed"),
                &[],
                spread(drift),
                Failures::Reset,
            ),
            Some(3_600),
            false,
        ),
        replica_recorded(
            row(
                "removed with all traffic on the source: DeleteInstance of the replica",
                Path::Apply,
                observed(Some("INSTANCE_REPLICATION_COMPLETE"), Some(("ACTIVE", 0))),
                Some("Replicating"),
                &["DeleteReplica"],
                Then::ObserveAgain,
                Failures::Reset,
            ),
            Some(3_600),
            false,
        ),
        replica_recorded(
            row(
                "removed, the replica DELETING: polled",
                Path::Apply,
                observed(Some("INSTANCE_REPLICA_DELETING"), None),
                Some("Replicating"),
                &[],
                poll,
                Failures::Reset,
            ),
            Some(3_600),
            false,
        ),
        replica_recorded(
            row(
                "removed, the replica no longer listed: forgotten, Available",
                Path::Apply,
                observed(None, None),
                Some("Available"),
                &[],
                spread(drift),
                Failures::Reset,
            ),
            Some(3_600),
            false,
        ),
        // ---- Cleanup
        with(
            row(
                "Cleanup, a replica listed: its DeleteInstance first, not the source's",
                Path::Cleanup,
                described_for_cleanup(Some("INSTANCE_REPLICATION_COMPLETE")),
                Some("Deleting"),
                &["DeleteReplica"],
                Then::ObserveAgain,
                Failures::Keep,
            ),
            replicated,
        ),
        with(
            row(
                "Cleanup, the replica DELETING: the finalizer waits",
                Path::Cleanup,
                described_for_cleanup(Some("INSTANCE_REPLICA_DELETING")),
                Some("Deleting"),
                &[],
                Then::Pending(REPLICA_POLL, Jitter::None),
                Failures::Keep,
            ),
            replicated,
        ),
        with(
            row(
                "Cleanup, the replica no longer listed: DeleteInstance of the source",
                Path::Cleanup,
                described_for_cleanup(None),
                None,
                &["DeleteInstance"],
                Then::ObserveAgain,
                Failures::Keep,
            ),
            replicated,
        ),
    ]
}

fn with_replication(status: Option<&str>) -> Observation {
    let Observation::Instance(mut described) = in_sync() else {
        unreachable!("in_sync describes an instance")
    };
    described.instance.replication = status.map(|status| ObservedReplication {
        source_region: Some("us-east-1".into()),
        global_sign_in_endpoint: None,
        regions: [(
            "us-west-2".to_owned(),
            (status.to_owned(), Some("it failed".to_owned())),
        )]
        .into(),
    });
    Observation::Converged(described)
}

#[test]
fn a_failed_replication_is_not_sent_again_once_aws_no_longer_lists_it() {
    let mut failed = row(
        "the replica is INSTANCE_REPLICATION_FAILED",
        Path::Apply,
        with_replication(Some("INSTANCE_REPLICATION_FAILED")),
        Some("ReplicationFailed"),
        &[],
        spread(RetryPolicy::default().drift_interval),
        Failures::Reset,
    );
    failed.adjust = replicated;
    let decision = decide_row(&failed);
    assert_eq!(
        decision.state.as_ref().map(|(s, _)| s.reason()),
        Some("ReplicationFailed")
    );
    assert!(decision.writes.is_empty(), "{:?}", decision.writes);
    let recorded = decision
        .status
        .replica
        .clone()
        .expect("the replica recorded");
    assert_eq!(recorded.refused_generation, Some(3));

    // AWS removes the failed replica: nothing lists it, and nothing is sent.
    let mut vanished = row(
        "the failed replica is no longer listed",
        Path::Apply,
        with_replication(None),
        Some("ReplicationFailed"),
        &[],
        spread(RetryPolicy::default().drift_interval),
        Failures::Reset,
    );
    vanished.adjust = replicated;
    vanished.status = decision.status.clone();
    let after = decide_row(&vanished);
    let writes: Vec<_> = after.writes.iter().map(write_name).collect();
    assert_eq!(writes, Vec::<&str>::new(), "ReplicateInstance sent again");
    assert_eq!(
        after.state.as_ref().map(|(s, _)| s.reason()),
        Some("ReplicationFailed")
    );
}
