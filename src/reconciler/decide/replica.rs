//! The part of the decision table for a replica in the paired region (Global Resiliency)
//! and the traffic split between the two regions.
//!
//! Under `Manage`, once the instance is ACTIVE and matches the rest of the spec:
//! ReplicateInstance (a token derived from the uid and the replica region) when AWS shows
//! no replica, `Replicating` until DescribeInstance's `ReplicationConfiguration` says the
//! replica is complete, then the traffic split written with one UpdateTrafficDistribution
//! when it differs from GetTrafficDistribution, in the region that is to take the traffic.
//! A split that sends telephony or agents to a replica that is not complete is not sent.
//! AWS's refusal of ReplicateInstance is Stalled `ReplicationFailed`, and not sent again
//! for the same generation.
//!
//! Removing `spec.replica` deletes the replica only once all telephony and all agents are
//! on the source; deleting the object deletes the replica first, and the source only once
//! AWS no longer lists the replica.

use std::time::Duration;

use kube::runtime::events::EventType;

use super::lifecycle::{DELETE_RESEND_AFTER, VISIBILITY_GRACE, since};
use super::{Decision, Described, Failures, Inputs, Jitter, Then, Write, rfc3339};
use crate::api::{AppliedTrafficDistribution, ReplicaSpec, ReplicaStatus, is_replica_pair};
use crate::aws::{
    AwsError, ErrorKind, ObservedReplication, REPLICA_DELETING, REPLICA_DELETION_FAILED,
    REPLICATION_COMPLETE, REPLICATION_FAILED, TrafficSplit, token,
};
use crate::conditions::State;

/// How often a replica being created or deleted is looked at (one DescribeInstance of the
/// source each time): replication takes minutes, and Ready follows completion within this.
pub const REPLICA_POLL: Duration = Duration::from_secs(5);

/// The default traffic distribution group and its split, read once the replica is
/// complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedTraffic {
    /// The group's ARN.
    pub group_arn: String,
    /// The group's status (`ACTIVE`, `CREATION_IN_PROGRESS`, ...).
    pub group_status: Option<String>,
    /// GetTrafficDistribution.
    pub split: TrafficSplit,
}

/// The replica's entry in `ReplicationConfiguration`, if AWS lists one for `region`.
fn entry<'a>(
    replication: Option<&'a ObservedReplication>,
    region: &str,
) -> Option<(&'a str, Option<&'a str>)> {
    replication
        .and_then(|r| r.regions.get(region))
        .map(|(status, reason)| (status.as_str(), reason.as_deref()))
}

/// The Apply decision for an ACTIVE instance that matches the rest of the spec: `base`
/// (its `Available` decision) as it is when no replica is managed, amended with the
/// replica's status when it is complete and the split matches, or replaced by the step
/// the replica needs.
pub(super) fn after_converged(
    inputs: &Inputs<'_>,
    described: &Described,
    base: Decision,
) -> Decision {
    let replication = described.instance.replication.as_ref();
    match (&inputs.spec.replica, &inputs.status.replica) {
        (None, None) => base,
        (Some(want), recorded) => match recorded {
            Some(rec) if rec.region != want.region => remove(inputs, described, base, rec),
            _ => wanted(inputs, described, base, want, replication),
        },
        (None, Some(rec)) => remove(inputs, described, base, rec),
    }
}

fn replicating(base: Decision, message: String) -> Decision {
    Decision {
        then: Then::Requeue(REPLICA_POLL, Jitter::None),
        ..base
    }
    .state(State::Replicating, message)
}

fn failed(inputs: &Inputs<'_>, base: Decision, message: String) -> Decision {
    Decision {
        then: Then::Requeue(inputs.retry.drift_interval, Jitter::Spread),
        ..base
    }
    .state(State::ReplicationFailed, message)
}

fn record_entry(
    base: Decision,
    region: &str,
    status: &str,
    reason: Option<&str>,
    replication: Option<&ObservedReplication>,
) -> Decision {
    base.record(|s| {
        let rec = s.replica.get_or_insert_with(|| ReplicaStatus {
            region: region.to_owned(),
            ..ReplicaStatus::default()
        });
        rec.status = Some(status.to_owned());
        rec.reason = reason.map(str::to_owned);
        rec.refused_generation = None;
        if let Some(endpoint) = replication.and_then(|r| r.global_sign_in_endpoint.clone()) {
            s.global_sign_in_endpoint = Some(endpoint);
        }
    })
}

fn wanted(
    inputs: &Inputs<'_>,
    described: &Described,
    base: Decision,
    want: &ReplicaSpec,
    replication: Option<&ObservedReplication>,
) -> Decision {
    let id = &described.instance.id;
    let source = inputs.region;
    if !is_replica_pair(source, &want.region) {
        let message = format!(
            "spec.replica.region {} is not the pair of the instance's region {source}: AWS replicates us-east-1 and us-west-2, eu-central-1 and eu-west-2, ap-northeast-1 to ap-northeast-3",
            want.region
        );
        return Decision {
            then: Then::Requeue(inputs.retry.drift_interval, Jitter::Spread),
            ..base
        }
        .state(State::InvalidSpec, message);
    }
    let Some((status, reason)) = entry(replication, &want.region) else {
        return not_listed(inputs, base, want, id);
    };
    let base = record_entry(base, &want.region, status, reason, replication);
    let why = reason.map_or_else(String::new, |r| format!(": {r}"));
    match status {
        REPLICATION_COMPLETE => traffic(inputs, described, base, want),
        // Recorded as a refusal for this generation: if AWS later removes the failed
        // replica, it is not replicated again until the spec changes.
        REPLICATION_FAILED | REPLICA_DELETION_FAILED => failed(
            inputs,
            base.record(|s| {
                if let Some(rec) = s.replica.as_mut() {
                    rec.refused_generation = Some(inputs.generation);
                }
            }),
            format!(
                "The replica of instance {id} in {} is {status}{why}",
                want.region
            ),
        ),
        _ => {
            let mut message = format!(
                "Instance {id} is ACTIVE; its replica in {} is {status}{why}",
                want.region
            );
            if let Some(refusal) = split_refusal(inputs, &want.region) {
                message.push_str("; ");
                message.push_str(&refusal);
            }
            replicating(base, message)
        }
    }
}

/// AWS lists no replica in the wanted region: replicate, unless AWS refused to for this
/// generation, or a replica just requested may not be listed yet.
fn not_listed(inputs: &Inputs<'_>, base: Decision, want: &ReplicaSpec, id: &str) -> Decision {
    if let Some(rec) = &inputs.status.replica {
        if rec.refused_generation == Some(inputs.generation) {
            return failed(
                inputs,
                base,
                format!(
                    "AWS refused to replicate instance {id} into {}: {}. Not sent again until the spec changes",
                    want.region,
                    rec.reason.as_deref().unwrap_or("no reason given")
                ),
            );
        }
        let requested = since(inputs, rec.requested_time.as_deref());
        if rec.arn.is_some() && requested.is_some_and(|ago| ago < VISIBILITY_GRACE) {
            return replicating(
                base,
                format!(
                    "ReplicateInstance accepted for instance {id} into {}; waiting until AWS lists the replica",
                    want.region
                ),
            );
        }
    }
    Decision {
        writes: vec![Write::Replicate {
            region: want.region.clone(),
            alias: want.alias.clone(),
            client_token: token::replicate_token(inputs.uid, &want.region),
        }],
        then: Then::ObserveAgain,
        ..base
    }
    .state(
        State::Replicating,
        format!("Replicating instance {id} into {}", want.region),
    )
}

/// Why the spec's split cannot be sent while the replica in `region` is not complete, if
/// it sends telephony or agents there.
fn split_refusal(inputs: &Inputs<'_>, region: &str) -> Option<String> {
    let split = inputs.spec.traffic_distribution.as_ref()?;
    let telephony = split.telephony.as_ref().map_or(0, |t| share(t, region));
    let agents = split.effective_agents().map_or(0, |a| share(a, region));
    (telephony > 0 || agents > 0).then(|| {
        format!(
            "spec.trafficDistribution sends {telephony}% of telephony and {agents}% of agents to {region}, whose replica is not complete: not sent until it is"
        )
    })
}

/// The split the spec asks for, over both regions (a region it leaves out gets 0 %); the
/// parts it leaves unset are empty (not managed).
fn desired_split(inputs: &Inputs<'_>, replica_region: &str) -> TrafficSplit {
    let regions = [inputs.region, replica_region];
    let fill = |m: &std::collections::BTreeMap<String, u8>| {
        regions
            .iter()
            .map(|r| ((*r).to_owned(), share(m, r)))
            .collect()
    };
    let Some(spec) = inputs.spec.traffic_distribution.as_ref() else {
        return TrafficSplit::default();
    };
    TrafficSplit {
        telephony: spec.telephony.as_ref().map(fill).unwrap_or_default(),
        agents: spec.effective_agents().map(fill).unwrap_or_default(),
        sign_in: spec.sign_in.clone().unwrap_or_default(),
    }
}

/// The parts of `desired` that AWS's `observed` split does not match (a region AWS does not
/// list has 0 % and sign-in disabled).
fn split_differs(desired: &TrafficSplit, observed: &TrafficSplit) -> bool {
    desired
        .telephony
        .iter()
        .any(|(r, p)| share(&observed.telephony, r) != *p)
        || desired
            .agents
            .iter()
            .any(|(r, p)| share(&observed.agents, r) != *p)
        || desired
            .sign_in
            .iter()
            .any(|(r, e)| observed.sign_in.get(r).copied().unwrap_or(false) != *e)
}

/// The region that should take the call: the one whose telephony share grows, else the one
/// whose agents' share grows, else the source.
fn call_region<'a>(
    inputs: &Inputs<'a>,
    replica_region: &'a str,
    desired: &TrafficSplit,
    observed: &TrafficSplit,
) -> &'a str {
    let grows = |want: &std::collections::BTreeMap<String, u8>,
                 have: &std::collections::BTreeMap<String, u8>,
                 region: &str| { share(want, region) > share(have, region) };
    if grows(&desired.telephony, &observed.telephony, replica_region)
        || (!grows(&desired.telephony, &observed.telephony, inputs.region)
            && grows(&desired.agents, &observed.agents, replica_region))
    {
        replica_region
    } else {
        inputs.region
    }
}

fn applied(split: &TrafficSplit) -> AppliedTrafficDistribution {
    AppliedTrafficDistribution {
        telephony: split.telephony.clone(),
        agents: split.agents.clone(),
        sign_in: split.sign_in.clone(),
    }
}

/// The replica is complete: the split, when the spec manages it and AWS differs.
fn traffic(
    inputs: &Inputs<'_>,
    described: &Described,
    base: Decision,
    want: &ReplicaSpec,
) -> Decision {
    let id = &described.instance.id;
    let Some(observed) = &described.traffic else {
        // The group is not readable yet (AWS creates it with the replica).
        return replicating(
            base,
            format!(
                "The replica of instance {id} in {} is complete; waiting for its default traffic distribution group",
                want.region
            ),
        );
    };
    let base = base.record(|s| {
        s.traffic_distribution_group_arn = Some(observed.group_arn.clone());
        s.traffic_distribution = Some(applied(&observed.split));
    });
    let desired = desired_split(inputs, &want.region);
    if !split_differs(&desired, &observed.split) {
        let Decision { state, .. } = &base;
        let message = state.as_ref().map_or_else(String::new, |(_, m)| m.clone());
        return base.state(
            State::Available,
            format!("{message}; its replica in {} is complete", want.region),
        );
    }
    if observed
        .group_status
        .as_deref()
        .is_some_and(|s| s != "ACTIVE")
    {
        return replicating(
            base,
            format!(
                "The traffic distribution group of instance {id} is {}; the split is sent once it is ACTIVE",
                observed.group_status.as_deref().unwrap_or_default()
            ),
        );
    }
    let region = call_region(inputs, &want.region, &desired, &observed.split).to_owned();
    Decision {
        writes: vec![Write::UpdateTraffic {
            region,
            group_arn: observed.group_arn.clone(),
            split: desired,
        }],
        then: Then::ObserveAgain,
        ..base
    }
    .state(
        State::Updating,
        format!("Applying the traffic distribution of instance {id}"),
    )
}

/// UpdateTrafficDistribution succeeded: recorded, then looked at again.
pub(super) fn traffic_updated(inputs: &Inputs<'_>, split: &TrafficSplit) -> Decision {
    let note = format!(
        "Traffic distribution applied: telephony {:?}, agents {:?}, sign-in {:?}",
        split.telephony, split.agents, split.sign_in
    );
    Decision::new(inputs, Then::ObserveAgain)
        .record(|s| s.traffic_distribution = Some(applied(split)))
        .event(EventType::Normal, "TrafficDistributed", note)
}

/// `spec.replica` was removed (or names another region than the recorded replica): the
/// recorded replica is deleted once all traffic is back on the source.
fn remove(
    inputs: &Inputs<'_>,
    described: &Described,
    base: Decision,
    rec: &ReplicaStatus,
) -> Decision {
    let id = &described.instance.id;
    let replication = described.instance.replication.as_ref();
    let Some((status, reason)) = entry(replication, &rec.region) else {
        // Gone (or never created): forget it, and go on as the spec says.
        let region = rec.region.clone();
        let cleared = base
            .record(|s| {
                s.replica = None;
                s.traffic_distribution_group_arn = None;
                s.traffic_distribution = None;
                s.global_sign_in_endpoint = None;
            })
            .event(
                EventType::Normal,
                "ReplicaDeleted",
                format!("The replica of instance {id} in {region} is deleted"),
            );
        return match &inputs.spec.replica {
            Some(want) => {
                let status = cleared.status.clone();
                let inputs_without = Inputs {
                    status: &status,
                    ..inputs.clone()
                };
                wanted(&inputs_without, described, cleared, want, replication)
            }
            None => cleared,
        };
    };
    let base = record_entry(base, &rec.region, status, reason, replication);
    if status == REPLICA_DELETING {
        return replicating(
            base,
            format!("Deleting the replica of instance {id} in {}", rec.region),
        );
    }
    if status == REPLICATION_COMPLETE
        && let Some(observed) = &described.traffic
    {
        let telephony = share(&observed.split.telephony, &rec.region);
        let agents = share(&observed.split.agents, &rec.region);
        if telephony > 0 || agents > 0 {
            return failed(
                inputs,
                base,
                format!(
                    "spec.replica was removed, but {telephony}% of telephony and {agents}% of agents still go to the replica in {}: the replica is deleted only once spec.trafficDistribution sends all of them to {} (keep spec.replica until then)",
                    rec.region, inputs.region
                ),
            );
        }
    }
    delete_replica(inputs, base, rec, id, false)
}

/// The state and the next look while a replica's deletion is followed: on Cleanup the
/// finalizer waits (`Deleting`), on Apply the object requeues (`Replicating`).
fn replica_wait(cleanup: bool) -> (State, Then) {
    let poll = (REPLICA_POLL, Jitter::None);
    if cleanup {
        (State::Deleting, Then::Pending(poll.0, poll.1))
    } else {
        (State::Replicating, Then::Requeue(poll.0, poll.1))
    }
}

/// A region's share in a split; a region it does not name has 0 %.
fn share(split: &std::collections::BTreeMap<String, u8>, region: &str) -> u8 {
    split.get(region).copied().unwrap_or(0)
}

/// DeleteInstance of the replica, unless it was accepted recently (then: wait).
fn delete_replica(
    inputs: &Inputs<'_>,
    base: Decision,
    rec: &ReplicaStatus,
    id: &str,
    cleanup: bool,
) -> Decision {
    let (state, then_wait) = replica_wait(cleanup);
    let recently = since(inputs, rec.delete_requested_time.as_deref())
        .is_some_and(|ago| ago < DELETE_RESEND_AFTER);
    if recently {
        return Decision {
            then: then_wait,
            ..base
        }
        .state(
            state,
            format!(
                "DeleteInstance accepted for the replica of instance {id} in {}; waiting until AWS reports it gone",
                rec.region
            ),
        );
    }
    Decision {
        writes: vec![Write::DeleteReplica {
            region: rec.region.clone(),
            instance_id: id.to_owned(),
            client_token: token::replica_delete_token(inputs.uid, &rec.region),
        }],
        then: Then::ObserveAgain,
        ..base
    }
    .state(
        state,
        format!("Deleting the replica of instance {id} in {}", rec.region),
    )
}

/// DeleteInstance of the replica was accepted.
pub(super) fn replica_delete_accepted(
    inputs: &Inputs<'_>,
    region: &str,
    cleanup: bool,
) -> Decision {
    let now = inputs.now_epoch_seconds;
    let (state, then) = replica_wait(cleanup);
    let id = inputs.status.instance_id.clone().unwrap_or_default();
    Decision::new(inputs, then)
        .record(|s| {
            let rec = s.replica.get_or_insert_with(|| ReplicaStatus {
                region: region.to_owned(),
                ..ReplicaStatus::default()
            });
            if rec.delete_requested_time.is_none() {
                rec.delete_requested_time = rfc3339(now);
            }
        })
        .state(
            state,
            format!(
                "DeleteInstance accepted for the replica of instance {id} in {region}; waiting until AWS reports it gone"
            ),
        )
        .failures(Failures::Reset)
}

/// ReplicateInstance answered with the replica's ARN: recorded at once.
pub(super) fn replicated(inputs: &Inputs<'_>, region: &str, arn: &str) -> Decision {
    let now = inputs.now_epoch_seconds;
    let id = inputs.status.instance_id.clone().unwrap_or_default();
    Decision::new(inputs, Then::Requeue(REPLICA_POLL, Jitter::None))
        .record(|s| {
            let rec = s.replica.get_or_insert_with(ReplicaStatus::default);
            rec.region = region.to_owned();
            rec.arn = Some(arn.to_owned());
            rec.reason = None;
            rec.refused_generation = None;
            if rec.requested_time.is_none() {
                rec.requested_time = rfc3339(now);
            }
        })
        .state(
            State::Replicating,
            format!("ReplicateInstance accepted for instance {id} into {region}"),
        )
        .event(
            EventType::Normal,
            "Replicating",
            format!("Replicating instance {id} into {region} ({arn})"),
        )
        .failures(Failures::Reset)
}

/// Whether AWS's answer to ReplicateInstance is a refusal that sending it again will not
/// change (as opposed to throttling or a failure to answer).
#[must_use]
pub fn is_refusal(err: &AwsError) -> bool {
    err.code.is_some()
        && matches!(
            err.kind,
            ErrorKind::AccessDenied
                | ErrorKind::InvalidRequest
                | ErrorKind::Other
                | ErrorKind::NotFound
        )
}

/// AWS refused ReplicateInstance: Stalled `ReplicationFailed`, recorded for this
/// generation so that it is not sent again until the spec changes.
pub(super) fn refused(inputs: &Inputs<'_>, region: &str, err: &AwsError) -> Decision {
    let id = inputs.status.instance_id.clone().unwrap_or_default();
    let generation = inputs.generation;
    let message = format!(
        "AWS refused to replicate instance {id} into {region}: {err}. Not sent again until the spec changes"
    );
    Decision::new(
        inputs,
        Then::Requeue(inputs.retry.drift_interval, Jitter::Spread),
    )
    .record(|s| {
        let rec = s.replica.get_or_insert_with(ReplicaStatus::default);
        rec.region = region.to_owned();
        rec.status = None;
        rec.reason = Some(err.to_string());
        rec.refused_generation = Some(generation);
    })
    .state(State::ReplicationFailed, message.clone())
    .event(EventType::Warning, "ReplicationFailed", message)
    .failures(Failures::Count)
}

/// Cleanup of an instance with a replica: the replica goes first. `None` when AWS lists
/// no replica of the object's (the source may be deleted).
pub(super) fn cleanup_first(inputs: &Inputs<'_>, described: &Described) -> Option<Decision> {
    let region = inputs
        .status
        .replica
        .as_ref()
        .map(|r| r.region.clone())
        .or_else(|| inputs.spec.replica.as_ref().map(|r| r.region.clone()))?;
    let replication = described.instance.replication.as_ref();
    let (status, reason) = entry(replication, &region)?;
    let id = described.instance.id.clone();
    let base = record_entry(
        Decision::new(inputs, Then::Pending(REPLICA_POLL, Jitter::None)),
        &region,
        status,
        reason,
        replication,
    );
    if status == REPLICA_DELETING {
        return Some(base.state(
            State::Deleting,
            format!("Deleting the replica of instance {id} in {region} first; the instance is deleted once it is gone"),
        ));
    }
    let rec = base
        .status
        .replica
        .clone()
        .unwrap_or_else(|| ReplicaStatus {
            region: region.clone(),
            ..ReplicaStatus::default()
        });
    Some(delete_replica(inputs, base, &rec, &id, true))
}
