//! The operations the simulator serves (Connect's and STS's) and what is set per operation:
//! the token-bucket [`RateLimit`] (with Connect's default API quotas) and the injected
//! faults of [`FaultConfig`], which apply to all Connect operations or to the ones listed.

use std::fmt;
use std::time::Duration;

/// A Connect API operation the simulator serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// `PUT /instance`
    CreateInstance,
    /// `GET /instance/{InstanceId}`
    DescribeInstance,
    /// `GET /instance`
    ListInstances,
    /// `DELETE /instance/{InstanceId}`
    DeleteInstance,
    /// `POST /instance/{InstanceId}/attribute/{AttributeType}`
    UpdateInstanceAttribute,
    /// `GET /instance/{InstanceId}/attribute/{AttributeType}`
    DescribeInstanceAttribute,
    /// `GET /instance/{InstanceId}/attributes`
    ListInstanceAttributes,
    /// `POST /tags/{resourceArn}`
    TagResource,
    /// `DELETE /tags/{resourceArn}`
    UntagResource,
    /// `GET /tags/{resourceArn}`
    ListTagsForResource,
    /// `PUT /instance/{InstanceId}/storage-config`
    AssociateInstanceStorageConfig,
    /// `GET /instance/{InstanceId}/storage-config/{AssociationId}`
    DescribeInstanceStorageConfig,
    /// `GET /instance/{InstanceId}/storage-configs`
    ListInstanceStorageConfigs,
    /// `POST /instance/{InstanceId}/storage-config/{AssociationId}`
    UpdateInstanceStorageConfig,
    /// `DELETE /instance/{InstanceId}/storage-config/{AssociationId}`
    DisassociateInstanceStorageConfig,
    /// `PUT /instance/{InstanceId}/approved-origin`
    AssociateApprovedOrigin,
    /// `GET /instance/{InstanceId}/approved-origins`
    ListApprovedOrigins,
    /// `DELETE /instance/{InstanceId}/approved-origin`
    DisassociateApprovedOrigin,
    /// `PUT /instance/{InstanceId}/lambda-function`
    AssociateLambdaFunction,
    /// `GET /instance/{InstanceId}/lambda-functions`
    ListLambdaFunctions,
    /// `DELETE /instance/{InstanceId}/lambda-function`
    DisassociateLambdaFunction,
    /// `PUT /instance/{InstanceId}/bot`
    AssociateBot,
    /// `GET /instance/{InstanceId}/bots`
    ListBots,
    /// `POST /instance/{InstanceId}/bot`
    DisassociateBot,
    /// `PUT /instance/{InstanceId}/security-key`
    AssociateSecurityKey,
    /// `GET /instance/{InstanceId}/security-keys`
    ListSecurityKeys,
    /// `DELETE /instance/{InstanceId}/security-key/{AssociationId}`
    DisassociateSecurityKey,
    /// `POST /instance/{InstanceId}/replicate`
    ReplicateInstance,
    /// `PUT /traffic-distribution-group`
    CreateTrafficDistributionGroup,
    /// `GET /traffic-distribution-group/{TrafficDistributionGroupId}`
    DescribeTrafficDistributionGroup,
    /// `DELETE /traffic-distribution-group/{TrafficDistributionGroupId}`
    DeleteTrafficDistributionGroup,
    /// `GET /traffic-distribution-groups`
    ListTrafficDistributionGroups,
    /// `GET /traffic-distribution/{Id}`
    GetTrafficDistribution,
    /// `PUT /traffic-distribution/{Id}`
    UpdateTrafficDistribution,
    /// STS `POST /` `Action=AssumeRole` (query protocol).
    AssumeRole,
    /// STS `POST /` `Action=GetCallerIdentity` (query protocol).
    GetCallerIdentity,
}

impl Operation {
    /// Every Connect operation, in a stable order: the ones with rate limits, and the ones
    /// faults apply to when `faults.operations` is empty.
    pub const ALL: [Operation; 34] = [
        Self::CreateInstance,
        Self::DescribeInstance,
        Self::ListInstances,
        Self::DeleteInstance,
        Self::UpdateInstanceAttribute,
        Self::DescribeInstanceAttribute,
        Self::ListInstanceAttributes,
        Self::TagResource,
        Self::UntagResource,
        Self::ListTagsForResource,
        Self::AssociateInstanceStorageConfig,
        Self::DescribeInstanceStorageConfig,
        Self::ListInstanceStorageConfigs,
        Self::UpdateInstanceStorageConfig,
        Self::DisassociateInstanceStorageConfig,
        Self::AssociateApprovedOrigin,
        Self::ListApprovedOrigins,
        Self::DisassociateApprovedOrigin,
        Self::AssociateLambdaFunction,
        Self::ListLambdaFunctions,
        Self::DisassociateLambdaFunction,
        Self::AssociateBot,
        Self::ListBots,
        Self::DisassociateBot,
        Self::AssociateSecurityKey,
        Self::ListSecurityKeys,
        Self::DisassociateSecurityKey,
        Self::ReplicateInstance,
        Self::CreateTrafficDistributionGroup,
        Self::DescribeTrafficDistributionGroup,
        Self::DeleteTrafficDistributionGroup,
        Self::ListTrafficDistributionGroups,
        Self::GetTrafficDistribution,
        Self::UpdateTrafficDistribution,
    ];

    /// The STS operations: never rate limited, faulted only when `faults.operations` names
    /// them.
    pub const STS: [Operation; 2] = [Self::AssumeRole, Self::GetCallerIdentity];

    /// Whether this is an STS (not a Connect) operation.
    pub fn is_sts(self) -> bool {
        Self::STS.contains(&self)
    }

    /// The operation name as AWS spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::CreateInstance => "CreateInstance",
            Self::DescribeInstance => "DescribeInstance",
            Self::ListInstances => "ListInstances",
            Self::DeleteInstance => "DeleteInstance",
            Self::UpdateInstanceAttribute => "UpdateInstanceAttribute",
            Self::DescribeInstanceAttribute => "DescribeInstanceAttribute",
            Self::ListInstanceAttributes => "ListInstanceAttributes",
            Self::TagResource => "TagResource",
            Self::UntagResource => "UntagResource",
            Self::ListTagsForResource => "ListTagsForResource",
            Self::AssociateInstanceStorageConfig => "AssociateInstanceStorageConfig",
            Self::DescribeInstanceStorageConfig => "DescribeInstanceStorageConfig",
            Self::ListInstanceStorageConfigs => "ListInstanceStorageConfigs",
            Self::UpdateInstanceStorageConfig => "UpdateInstanceStorageConfig",
            Self::DisassociateInstanceStorageConfig => "DisassociateInstanceStorageConfig",
            Self::AssociateApprovedOrigin => "AssociateApprovedOrigin",
            Self::ListApprovedOrigins => "ListApprovedOrigins",
            Self::DisassociateApprovedOrigin => "DisassociateApprovedOrigin",
            Self::AssociateLambdaFunction => "AssociateLambdaFunction",
            Self::ListLambdaFunctions => "ListLambdaFunctions",
            Self::DisassociateLambdaFunction => "DisassociateLambdaFunction",
            Self::AssociateBot => "AssociateBot",
            Self::ListBots => "ListBots",
            Self::DisassociateBot => "DisassociateBot",
            Self::AssociateSecurityKey => "AssociateSecurityKey",
            Self::ListSecurityKeys => "ListSecurityKeys",
            Self::DisassociateSecurityKey => "DisassociateSecurityKey",
            Self::ReplicateInstance => "ReplicateInstance",
            Self::CreateTrafficDistributionGroup => "CreateTrafficDistributionGroup",
            Self::DescribeTrafficDistributionGroup => "DescribeTrafficDistributionGroup",
            Self::DeleteTrafficDistributionGroup => "DeleteTrafficDistributionGroup",
            Self::ListTrafficDistributionGroups => "ListTrafficDistributionGroups",
            Self::GetTrafficDistribution => "GetTrafficDistribution",
            Self::UpdateTrafficDistribution => "UpdateTrafficDistribution",
            Self::AssumeRole => "AssumeRole",
            Self::GetCallerIdentity => "GetCallerIdentity",
        }
    }

    /// Parses an operation name as AWS spells it (Connect or STS).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain(Self::STS)
            .find(|op| op.name() == name)
    }

    /// Connect's default API quota for the operation: CreateInstance, DeleteInstance and
    /// ReplicateInstance 0.1 requests/second with a burst of 1, everything else (the traffic
    /// distribution operations too) 2/s with a burst of 5. STS
    /// operations are not rate limited.
    pub fn default_rate_limit(self) -> RateLimit {
        match self {
            Self::AssumeRole | Self::GetCallerIdentity => RateLimit {
                per_second: None,
                burst: 1,
            },
            Self::CreateInstance | Self::DeleteInstance | Self::ReplicateInstance => RateLimit {
                per_second: Some(0.1),
                burst: 1,
            },
            _ => RateLimit {
                per_second: Some(2.0),
                burst: 5,
            },
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A token-bucket rate limit for one operation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second; `None` means unlimited, `Some(0.0)` throttles every call.
    pub per_second: Option<f64>,
    /// Bucket size: how many calls may arrive at once.
    pub burst: u32,
}

/// Injected faults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// Share of calls (0..=1) answered 500 InternalServiceException without any effect.
    pub server_error_ratio: f64,
    /// Delay added before each affected call is handled.
    pub latency: Duration,
    /// Share of calls (0..=1) answered 403 AccessDeniedException without any effect.
    pub access_denied_ratio: f64,
    /// Share of calls (0..=1) that are applied and then lose their response: the connection
    /// is closed without an HTTP answer.
    pub drop_connection_ratio: f64,
    /// Operations the faults apply to; empty means every Connect operation (STS operations
    /// only when listed).
    pub operations: Vec<Operation>,
}

impl FaultConfig {
    /// Whether the faults apply to `operation`.
    pub fn applies_to(&self, operation: Operation) -> bool {
        if self.operations.is_empty() {
            !operation.is_sts()
        } else {
            self.operations.contains(&operation)
        }
    }
}

pub(super) fn parse_operation(name: &str) -> Result<Operation, String> {
    Operation::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = Operation::ALL
            .iter()
            .chain(&Operation::STS)
            .map(|op| op.name())
            .collect();
        format!(
            "unknown operation '{name}'; known operations: {}",
            known.join(", ")
        )
    })
}

/// A Connect operation: STS operations have no rate limits.
pub(super) fn parse_rate_limited_operation(name: &str) -> Result<Operation, String> {
    let op = parse_operation(name)?;
    if op.is_sts() {
        return Err(format!(
            "{name} is an STS operation; the simulator does not rate limit STS"
        ));
    }
    Ok(op)
}
