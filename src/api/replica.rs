//! Global Resiliency in the `ConnectInstance` spec: a replica of a SAML instance in its
//! paired region, and the split of telephony, agents and sign-in between the two regions
//! through the default traffic distribution group AWS creates with the replica.
//!
//! Validation is in the schema where the API server can check it (a documented pair, SAML
//! only, percentages in steps of 10 summing to 100, only the instance's two regions,
//! immutability); what needs the region the account resolves to is checked at reconcile.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The region pairs AWS replicates between: (source, replica). us-east-1 ↔ us-west-2 and
/// eu-central-1 ↔ eu-west-2 both ways; ap-northeast-1 → ap-northeast-3 one way.
pub const REPLICA_REGION_PAIRS: [(&str, &str); 5] = [
    ("us-east-1", "us-west-2"),
    ("us-west-2", "us-east-1"),
    ("eu-central-1", "eu-west-2"),
    ("eu-west-2", "eu-central-1"),
    ("ap-northeast-1", "ap-northeast-3"),
];

/// Whether AWS replicates an instance in `source` into `replica`.
#[must_use]
pub fn is_replica_pair(source: &str, replica: &str) -> bool {
    REPLICA_REGION_PAIRS.contains(&(source, replica))
}

/// A replica of the instance in its paired region (Amazon Connect Global Resiliency).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSpec {
    /// The replica's region: the source region's pair (us-east-1 ↔ us-west-2,
    /// eu-central-1 ↔ eu-west-2, ap-northeast-1 → ap-northeast-3).
    #[schemars(regex(pattern = r"^(us-east-1|us-west-2|eu-central-1|eu-west-2|ap-northeast-3)$"))]
    pub region: String,
    /// The replica's alias, unique in the replica region; the same rules as
    /// `instanceAlias`.
    #[schemars(
        length(min = 1, max = 45),
        regex(pattern = r"^([\da-zA-Z]+)([-]*[\da-zA-Z])*$")
    )]
    pub alias: String,
}

/// How traffic is split between the source and replica regions. Each map is keyed by the
/// two regions of the instance (the source's and the replica's).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficDistributionSpec {
    /// Region → percentage of telephony traffic, in steps of 10, summing to 100. Unset:
    /// not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "percentages_schema")]
    pub telephony: Option<BTreeMap<String, u8>>,
    /// Region → percentage of agents, in steps of 10, summing to 100. Unset: agents move
    /// with telephony.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "percentages_schema")]
    pub agents: Option<BTreeMap<String, u8>>,
    /// Region → whether agents may sign in there (through the global sign-in endpoint).
    /// Unset: not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "sign_in_schema")]
    pub sign_in: Option<BTreeMap<String, bool>>,
}

impl TrafficDistributionSpec {
    /// The agents' split: as given, or the telephony split when unset.
    #[must_use]
    pub fn effective_agents(&self) -> Option<&BTreeMap<String, u8>> {
        self.agents.as_ref().or(self.telephony.as_ref())
    }
}

/// The replica as AWS reports it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// The replica's region.
    pub region: String,
    /// The replica's ARN, recorded as soon as ReplicateInstance answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The replication status from DescribeInstance's `ReplicationConfiguration`:
    /// `INSTANCE_REPLICATION_IN_PROGRESS`, `INSTANCE_REPLICATION_COMPLETE`,
    /// `INSTANCE_REPLICATION_FAILED`, `INSTANCE_REPLICA_DELETING`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Why, as AWS reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When ReplicateInstance first answered (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_time: Option<String>,
    /// When DeleteInstance of the replica was first accepted (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_requested_time: Option<String>,
    /// The `metadata.generation` for which AWS refused ReplicateInstance (`reason` says
    /// why): it is not sent again until the spec changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_generation: Option<i64>,
}

/// The traffic distribution as last applied to (or read from) the default group.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedTrafficDistribution {
    /// Region → percentage of telephony traffic.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub telephony: BTreeMap<String, u8>,
    /// Region → percentage of agents.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub agents: BTreeMap<String, u8>,
    /// Region → sign-in enabled.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sign_in: BTreeMap<String, bool>,
}

fn percentages_schema(_: &mut schemars::generate::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "minProperties": 1,
        "maxProperties": 2,
        "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100, "multipleOf": 10},
        "x-kubernetes-validations": [
            {
                "rule": "(size(self) == 1 && self.all(k, self[k] == 100)) || (size(self) == 2 && self.all(k, self.all(j, j == k || self[k] + self[j] == 100)))",
                "message": "percentages must sum to 100 over the source and replica regions"
            }
        ]
    })
}

fn sign_in_schema(_: &mut schemars::generate::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "minProperties": 1,
        "maxProperties": 2,
        "additionalProperties": {"type": "boolean"},
        "x-kubernetes-validations": [
            {
                "rule": "self.exists(k, self[k])",
                "message": "sign-in must stay enabled in at least one region"
            }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_the_documented_ones_and_ap_northeast_is_one_way() {
        assert!(is_replica_pair("us-east-1", "us-west-2"));
        assert!(is_replica_pair("eu-west-2", "eu-central-1"));
        assert!(is_replica_pair("ap-northeast-1", "ap-northeast-3"));
        assert!(!is_replica_pair("ap-northeast-3", "ap-northeast-1"));
        assert!(!is_replica_pair("us-east-1", "us-east-1"));
        assert!(!is_replica_pair("us-east-1", "eu-west-2"));
    }

    #[test]
    fn agents_follow_telephony_unless_given() {
        let mut split = TrafficDistributionSpec {
            telephony: Some(BTreeMap::from([("us-west-2".to_owned(), 100)])),
            ..Default::default()
        };
        assert_eq!(split.effective_agents(), split.telephony.as_ref());
        let agents = BTreeMap::from([("us-east-1".to_owned(), 100)]);
        split.agents = Some(agents.clone());
        assert_eq!(split.effective_agents(), Some(&agents));
    }
}
