//! What the client says about instances: their lifecycle state, what DescribeInstance and
//! ListInstances report, and the parameters of CreateInstance.

use std::collections::BTreeMap;

/// The instance lifecycle states AWS reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstanceState {
    /// `CREATION_IN_PROGRESS`
    CreationInProgress,
    /// `ACTIVE`
    Active,
    /// `CREATION_FAILED`
    CreationFailed,
    /// A state this version does not know.
    Unknown(String),
}

impl InstanceState {
    pub(super) fn from_aws(s: &str) -> Self {
        match s {
            "CREATION_IN_PROGRESS" => Self::CreationInProgress,
            "ACTIVE" => Self::Active,
            "CREATION_FAILED" => Self::CreationFailed,
            other => Self::Unknown(other.to_owned()),
        }
    }

    /// AWS's name for the state.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::CreationInProgress => "CREATION_IN_PROGRESS",
            Self::Active => "ACTIVE",
            Self::CreationFailed => "CREATION_FAILED",
            Self::Unknown(s) => s,
        }
    }
}

/// What DescribeInstance reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedInstance {
    /// Instance id.
    pub id: String,
    /// Instance ARN.
    pub arn: String,
    /// Instance alias.
    pub alias: Option<String>,
    /// Identity management type, AWS's name.
    pub identity_management_type: Option<String>,
    /// Lifecycle state.
    pub state: InstanceState,
    /// Why creation failed.
    pub status_reason: Option<String>,
    /// Access URL.
    pub access_url: Option<String>,
    /// Service-linked role.
    pub service_role: Option<String>,
    /// Creation time, RFC 3339.
    pub created_time: Option<String>,
    /// Creation time, seconds since the epoch.
    pub created_epoch_seconds: Option<i64>,
    /// Tags, when DescribeInstance returns them.
    pub tags: Option<BTreeMap<String, String>>,
    /// Whether inbound calls are enabled, when DescribeInstance says.
    pub inbound_calls_enabled: Option<bool>,
    /// Whether outbound calls are enabled, when DescribeInstance says.
    pub outbound_calls_enabled: Option<bool>,
    /// DescribeInstance's `ReplicationConfiguration`: present only for a replicated
    /// instance (or one whose replica is being created or deleted).
    pub replication: Option<ObservedReplication>,
}

/// A replicated instance's `ReplicationConfiguration`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedReplication {
    /// The region the instance was replicated from.
    pub source_region: Option<String>,
    /// The global sign-in endpoint.
    pub global_sign_in_endpoint: Option<String>,
    /// Region → (replication status, reason), as `ReplicationStatusSummaryList` lists them.
    pub regions: BTreeMap<String, (String, Option<String>)>,
}

impl ObservedReplication {
    /// The replication status of `region`, if AWS lists it.
    #[must_use]
    pub fn status_of(&self, region: &str) -> Option<&str> {
        self.regions.get(region).map(|(status, _)| status.as_str())
    }
}

/// The replication status of a replica that can take traffic.
pub const REPLICATION_COMPLETE: &str = "INSTANCE_REPLICATION_COMPLETE";
/// The replication status of a replica that could not be created.
pub const REPLICATION_FAILED: &str = "INSTANCE_REPLICATION_FAILED";
/// The replication status of a replica whose deletion failed.
pub const REPLICA_DELETION_FAILED: &str = "INSTANCE_REPLICATION_DELETION_FAILED";
/// The replication status of a replica being deleted.
pub const REPLICA_DELETING: &str = "INSTANCE_REPLICA_DELETING";

/// A traffic distribution group of an instance, as ListTrafficDistributionGroups reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrafficGroup {
    /// Its id.
    pub id: String,
    /// Its ARN.
    pub arn: String,
    /// `CREATION_IN_PROGRESS`, `ACTIVE`, ...
    pub status: Option<String>,
    /// Whether AWS created it with the replica.
    pub is_default: bool,
}

/// A traffic distribution: telephony and agents as region → percentage, sign-in as
/// region → enabled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrafficSplit {
    /// Telephony.
    pub telephony: BTreeMap<String, u8>,
    /// Agents.
    pub agents: BTreeMap<String, u8>,
    /// Sign-in.
    pub sign_in: BTreeMap<String, bool>,
}

/// One entry of ListInstances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceSummary {
    /// Instance id.
    pub id: String,
    /// Instance ARN.
    pub arn: String,
    /// Instance alias.
    pub alias: Option<String>,
    /// Identity management type, AWS's name.
    pub identity_management_type: Option<String>,
    /// Lifecycle state, when ListInstances reports it.
    pub state: Option<InstanceState>,
}

/// The parameters of CreateInstance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateInstanceRequest {
    /// Identity management type, AWS's name.
    pub identity_management_type: String,
    /// Alias.
    pub alias: Option<String>,
    /// Directory id.
    pub directory_id: Option<String>,
    /// Inbound calls.
    pub inbound_calls_enabled: bool,
    /// Outbound calls.
    pub outbound_calls_enabled: bool,
    /// Tags, including the operator's uid tag.
    pub tags: BTreeMap<String, String>,
    /// The UID-derived token.
    pub client_token: String,
}
