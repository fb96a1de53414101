//! Gauges of the replicas in a second region and of the traffic split between the two
//! regions, computed from the objects' status like the other state gauges.
//!
//! `replicas` counts objects by account, replica region and replication status. The age of
//! the oldest replica that is not complete names that one object, one series per account
//! and region (as the oldest pending deletion does), so an alert can say which object to
//! look at. The traffic split has a label per object: it exists only for objects with a
//! replica, which AWS allows only for allow-listed accounts and SAML instances, and a
//! dashboard of a two-region contact centre is read per instance.

use std::collections::BTreeMap;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};

use crate::api::{ConnectInstance, ReplicaStatus};
use crate::aws::instance::REPLICATION_COMPLETE;
use crate::conditions::types;

use super::state::encode_gauges;

/// The `status` of a replica that AWS refused to create (ReplicateInstance answered an error
/// that sending it again would not change).
pub const REFUSED: &str = "Refused";
/// The `status` of a replica not requested yet (its source is not ACTIVE and converged).
pub const NOT_REQUESTED: &str = "NotRequested";
/// The `status` of a replica that ReplicateInstance accepted and AWS does not report yet.
pub const REQUESTED: &str = "Requested";

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct ReplicaLabels {
    account: String,
    region: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct OldestReplicaLabels {
    account: String,
    region: String,
    object: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct TrafficLabels {
    account: String,
    object: String,
    region: String,
    channel: String,
}

/// The oldest incomplete replica of one account and region.
#[derive(Debug, PartialEq)]
struct Oldest {
    object: String,
    status: String,
    age: f64,
}

/// The replica gauges' values at one moment.
#[derive(Debug, Default, PartialEq)]
pub struct ReplicaSnapshot {
    replicas: BTreeMap<ReplicaLabels, i64>,
    /// Per (account, replica region).
    oldest_incomplete: BTreeMap<(String, String), Oldest>,
    traffic: BTreeMap<TrafficLabels, i64>,
}

/// The status label of a replica's record.
fn status_of(replica: &ReplicaStatus) -> String {
    match (&replica.status, replica.refused_generation) {
        (Some(status), _) => status.clone(),
        (None, Some(_)) => REFUSED.to_owned(),
        (None, None) if replica.requested_time.is_some() => REQUESTED.to_owned(),
        (None, None) => NOT_REQUESTED.to_owned(),
    }
}

fn parse_time(at: &str) -> Option<jiff::Timestamp> {
    at.parse::<jiff::Timestamp>().ok()
}

impl ReplicaSnapshot {
    /// Adds one object (`name` is `namespace/name`) of `account`.
    pub fn add(&mut self, obj: &ConnectInstance, account: &str, name: &str, now: jiff::Timestamp) {
        let Some(status) = obj.status.as_ref() else {
            return;
        };
        if let Some(replica) = status.replica.as_ref() {
            let state = status_of(replica);
            *self
                .replicas
                .entry(ReplicaLabels {
                    account: account.to_owned(),
                    region: replica.region.clone(),
                    status: state.clone(),
                })
                .or_default() += 1;
            // Not complete: requested and not there yet (or failed), or refused. A replica
            // being deleted is the deletion's to report.
            let since = match state.as_str() {
                REPLICATION_COMPLETE | NOT_REQUESTED => None,
                REFUSED => obj
                    .condition(types::READY)
                    .map(|c| c.last_transition_time.0),
                _ if replica.delete_requested_time.is_some() => None,
                _ => replica.requested_time.as_deref().and_then(parse_time),
            };
            if let Some(since) = since {
                let age = now.duration_since(since).as_secs_f64().max(0.0);
                let candidate = Oldest {
                    object: name.to_owned(),
                    status: state,
                    age,
                };
                let key = (account.to_owned(), replica.region.clone());
                match self.oldest_incomplete.get(&key) {
                    // The oldest wins; equal ages go to the first name, so the series is
                    // stable.
                    Some(held)
                        if held.age > age
                            || (held.age == age && held.object <= candidate.object) => {}
                    _ => {
                        self.oldest_incomplete.insert(key, candidate);
                    }
                }
            }
        }
        if let Some(applied) = status.traffic_distribution.as_ref() {
            for (channel, shares) in [
                ("telephony", &applied.telephony),
                ("agents", &applied.agents),
            ] {
                for (region, percent) in shares {
                    self.traffic.insert(
                        TrafficLabels {
                            account: account.to_owned(),
                            object: name.to_owned(),
                            region: region.clone(),
                            channel: channel.to_owned(),
                        },
                        i64::from(*percent),
                    );
                }
            }
        }
    }

    pub(super) fn encode(self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_gauges(
            encoder,
            "replicas",
            "ConnectInstance objects with a replica, by account, the replica's region and its replication status",
            self.replicas,
        )?;
        encode_gauges(
            encoder,
            "oldest_incomplete_replica_age_seconds",
            "Per account and replica region, how long the oldest replica that is not complete has waited (since ReplicateInstance, or since AWS refused it), and which object it is",
            self.oldest_incomplete
                .into_iter()
                .map(|((account, region), oldest)| {
                    (
                        OldestReplicaLabels {
                            account,
                            region,
                            object: oldest.object,
                            status: oldest.status,
                        },
                        oldest.age,
                    )
                }),
        )?;
        encode_gauges(
            encoder,
            "traffic_percent",
            "Per object with a replica, the percentage of a channel (telephony, agents) sent to a region, as last applied to AWS",
            self.traffic,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(name: &str, status: serde_json::Value) -> ConnectInstance {
        serde_json::from_value(json!({
            "apiVersion": "connect.operators.dev/v1alpha1",
            "kind": "ConnectInstance",
            "metadata": {"name": name, "namespace": "team-a", "uid": format!("uid-{name}")},
            "spec": {"identityManagementType": "SAML", "instanceAlias": name,
                     "inboundCallsEnabled": true, "outboundCallsEnabled": true,
                     "region": "us-east-1",
                     "replica": {"region": "us-west-2", "alias": format!("{name}-west")}},
            "status": status,
        }))
        .expect("a ConnectInstance")
    }

    fn encoded(snapshot: ReplicaSnapshot) -> String {
        #[derive(Debug)]
        struct Fixed(std::sync::Mutex<Option<ReplicaSnapshot>>);
        impl prometheus_client::collector::Collector for Fixed {
            fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
                match self.0.lock().expect("lock").take() {
                    Some(snapshot) => snapshot.encode(&mut encoder),
                    None => Ok(()),
                }
            }
        }
        let mut registry = prometheus_client::registry::Registry::with_prefix("x");
        registry.register_collector(Box::new(Fixed(std::sync::Mutex::new(Some(snapshot)))));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        text
    }

    #[test]
    fn replicas_by_status_the_oldest_incomplete_and_the_applied_split() {
        let now: jiff::Timestamp = "2026-06-01T12:00:00Z".parse().expect("time");
        let ready = |at: &str| {
            json!([{"type": "Ready", "status": "False", "reason": "ReplicationFailed",
                    "message": "", "lastTransitionTime": at}])
        };
        let objects = [
            object(
                "complete",
                json!({"replica": {"region": "us-west-2", "status": "INSTANCE_REPLICATION_COMPLETE",
                                   "requestedTime": "2026-06-01T08:00:00Z"},
                       "trafficDistribution": {"telephony": {"us-east-1": 70, "us-west-2": 30},
                                               "agents": {"us-east-1": 100},
                                               "signIn": {"us-east-1": true}}}),
            ),
            object(
                "slow",
                json!({"replica": {"region": "us-west-2", "status": "INSTANCE_REPLICATION_IN_PROGRESS",
                                   "requestedTime": "2026-06-01T10:00:00Z"}}),
            ),
            object(
                "just-sent",
                json!({"replica": {"region": "us-west-2", "requestedTime": "2026-06-01T11:59:00Z"}}),
            ),
            // Refused: aged from the Ready condition's transition, older than the others.
            object(
                "refused",
                json!({"replica": {"region": "us-west-2", "refusedGeneration": 1},
                       "conditions": ready("2026-06-01T09:00:00Z")}),
            ),
            // Being deleted: not incomplete, whatever it says.
            object(
                "going",
                json!({"replica": {"region": "us-west-2", "status": "INSTANCE_REPLICA_DELETING",
                                   "requestedTime": "2026-06-01T01:00:00Z",
                                   "deleteRequestedTime": "2026-06-01T11:00:00Z"}}),
            ),
            object("not-yet", json!({"replica": {"region": "us-west-2"}})),
        ];
        let mut snapshot = ReplicaSnapshot::default();
        for obj in &objects {
            let name = format!(
                "team-a/{}",
                obj.metadata.name.as_deref().unwrap_or_default()
            );
            snapshot.add(obj, "prod", &name, now);
        }
        let text = encoded(snapshot);
        for line in [
            r#"x_replicas{account="prod",region="us-west-2",status="INSTANCE_REPLICATION_COMPLETE"} 1"#,
            r#"x_replicas{account="prod",region="us-west-2",status="INSTANCE_REPLICATION_IN_PROGRESS"} 1"#,
            r#"x_replicas{account="prod",region="us-west-2",status="Requested"} 1"#,
            r#"x_replicas{account="prod",region="us-west-2",status="Refused"} 1"#,
            r#"x_replicas{account="prod",region="us-west-2",status="INSTANCE_REPLICA_DELETING"} 1"#,
            r#"x_replicas{account="prod",region="us-west-2",status="NotRequested"} 1"#,
            r#"x_oldest_incomplete_replica_age_seconds{account="prod",region="us-west-2",object="team-a/refused",status="Refused"} 10800.0"#,
            r#"x_traffic_percent{account="prod",object="team-a/complete",region="us-east-1",channel="telephony"} 70"#,
            r#"x_traffic_percent{account="prod",object="team-a/complete",region="us-west-2",channel="telephony"} 30"#,
            r#"x_traffic_percent{account="prod",object="team-a/complete",region="us-east-1",channel="agents"} 100"#,
        ] {
            assert!(text.contains(line), "{line} not in:\n{text}");
        }
        assert_eq!(
            text.matches("x_oldest_incomplete_replica_age_seconds{")
                .count(),
            1,
            "one series per account and region:\n{text}"
        );
    }

    #[test]
    fn the_oldest_in_progress_replica_is_aged_from_its_request() {
        let now: jiff::Timestamp = "2026-06-01T12:00:00Z".parse().expect("time");
        let mut snapshot = ReplicaSnapshot::default();
        for (name, at) in [("b", "2026-06-01T11:00:00Z"), ("a", "2026-06-01T10:30:00Z")] {
            let obj = object(
                name,
                json!({"replica": {"region": "us-west-2", "status": "INSTANCE_REPLICATION_FAILED",
                                   "requestedTime": at}}),
            );
            snapshot.add(&obj, "prod", &format!("team-a/{name}"), now);
        }
        let text = encoded(snapshot);
        let line = r#"x_oldest_incomplete_replica_age_seconds{account="prod",region="us-west-2",object="team-a/a",status="INSTANCE_REPLICATION_FAILED"} 5400.0"#;
        assert!(text.contains(line), "{line} not in:\n{text}");
    }
}
