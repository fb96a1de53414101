//! Rows of the replica part: a failed replication is not sent again, also once AWS no
//! longer lists the failed replica.

use super::*;
use crate::api::{IdentityManagementType, ReplicaSpec};
use crate::aws::ObservedReplication;

fn replicated(spec: &mut ConnectInstanceSpec) {
    spec.identity_management_type = IdentityManagementType::Saml;
    spec.replica = Some(ReplicaSpec {
        region: "us-west-2".into(),
        alias: "contact-center-west".into(),
    });
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
