//! The one classification of AWS outcomes: every failure of every call becomes one
//! [`ErrorKind`], from which the reconciler derives state, condition and retry timing.

use std::fmt;

use aws_sdk_connect::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_connect::operation::RequestId;
use aws_smithy_runtime_api::http::Response as HttpResponse;

/// The Connect operations the operator calls. Used for rate limits, metrics and errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// `CreateInstance`
    CreateInstance,
    /// `DescribeInstance`
    DescribeInstance,
    /// `ListInstances`
    ListInstances,
    /// `DeleteInstance`
    DeleteInstance,
    /// `UpdateInstanceAttribute`
    UpdateInstanceAttribute,
    /// `ListInstanceAttributes`
    ListInstanceAttributes,
    /// `DescribeInstanceAttribute`
    DescribeInstanceAttribute,
    /// `TagResource`
    TagResource,
    /// `UntagResource`
    UntagResource,
    /// `ListTagsForResource`
    ListTagsForResource,
    /// `ListInstanceStorageConfigs`
    ListInstanceStorageConfigs,
    /// `AssociateInstanceStorageConfig`
    AssociateInstanceStorageConfig,
    /// `UpdateInstanceStorageConfig`
    UpdateInstanceStorageConfig,
    /// `DisassociateInstanceStorageConfig`
    DisassociateInstanceStorageConfig,
    /// `ListApprovedOrigins`
    ListApprovedOrigins,
    /// `AssociateApprovedOrigin`
    AssociateApprovedOrigin,
    /// `DisassociateApprovedOrigin`
    DisassociateApprovedOrigin,
    /// `ListLambdaFunctions`
    ListLambdaFunctions,
    /// `AssociateLambdaFunction`
    AssociateLambdaFunction,
    /// `DisassociateLambdaFunction`
    DisassociateLambdaFunction,
    /// `ListBots`
    ListBots,
    /// `AssociateBot`
    AssociateBot,
    /// `DisassociateBot`
    DisassociateBot,
    /// `ListSecurityKeys`
    ListSecurityKeys,
    /// `AssociateSecurityKey`
    AssociateSecurityKey,
    /// `DisassociateSecurityKey`
    DisassociateSecurityKey,
    /// `ReplicateInstance`
    ReplicateInstance,
    /// `ListTrafficDistributionGroups`
    ListTrafficDistributionGroups,
    /// `GetTrafficDistribution`
    GetTrafficDistribution,
    /// `UpdateTrafficDistribution`
    UpdateTrafficDistribution,
    /// STS `GetCallerIdentity`, to verify an account's credentials.
    GetCallerIdentity,
    /// STS `AssumeRole`, made by the SDK's credentials provider (not rate limited here).
    AssumeRole,
}

impl Operation {
    /// Every operation, for metrics initialisation.
    pub const ALL: [Self; 31] = [
        Self::CreateInstance,
        Self::DescribeInstance,
        Self::ListInstances,
        Self::DeleteInstance,
        Self::UpdateInstanceAttribute,
        Self::ListInstanceAttributes,
        Self::DescribeInstanceAttribute,
        Self::TagResource,
        Self::UntagResource,
        Self::ListTagsForResource,
        Self::ListInstanceStorageConfigs,
        Self::AssociateInstanceStorageConfig,
        Self::UpdateInstanceStorageConfig,
        Self::DisassociateInstanceStorageConfig,
        Self::ListApprovedOrigins,
        Self::AssociateApprovedOrigin,
        Self::DisassociateApprovedOrigin,
        Self::ListLambdaFunctions,
        Self::AssociateLambdaFunction,
        Self::DisassociateLambdaFunction,
        Self::ListBots,
        Self::AssociateBot,
        Self::DisassociateBot,
        Self::ListSecurityKeys,
        Self::AssociateSecurityKey,
        Self::DisassociateSecurityKey,
        Self::ReplicateInstance,
        Self::ListTrafficDistributionGroups,
        Self::GetTrafficDistribution,
        Self::UpdateTrafficDistribution,
        Self::GetCallerIdentity,
    ];

    /// The AWS name of the operation.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateInstance => "CreateInstance",
            Self::DescribeInstance => "DescribeInstance",
            Self::ListInstances => "ListInstances",
            Self::DeleteInstance => "DeleteInstance",
            Self::UpdateInstanceAttribute => "UpdateInstanceAttribute",
            Self::ListInstanceAttributes => "ListInstanceAttributes",
            Self::DescribeInstanceAttribute => "DescribeInstanceAttribute",
            Self::TagResource => "TagResource",
            Self::UntagResource => "UntagResource",
            Self::ListTagsForResource => "ListTagsForResource",
            Self::ListInstanceStorageConfigs => "ListInstanceStorageConfigs",
            Self::AssociateInstanceStorageConfig => "AssociateInstanceStorageConfig",
            Self::UpdateInstanceStorageConfig => "UpdateInstanceStorageConfig",
            Self::DisassociateInstanceStorageConfig => "DisassociateInstanceStorageConfig",
            Self::ListApprovedOrigins => "ListApprovedOrigins",
            Self::AssociateApprovedOrigin => "AssociateApprovedOrigin",
            Self::DisassociateApprovedOrigin => "DisassociateApprovedOrigin",
            Self::ListLambdaFunctions => "ListLambdaFunctions",
            Self::AssociateLambdaFunction => "AssociateLambdaFunction",
            Self::DisassociateLambdaFunction => "DisassociateLambdaFunction",
            Self::ListBots => "ListBots",
            Self::AssociateBot => "AssociateBot",
            Self::DisassociateBot => "DisassociateBot",
            Self::ListSecurityKeys => "ListSecurityKeys",
            Self::AssociateSecurityKey => "AssociateSecurityKey",
            Self::DisassociateSecurityKey => "DisassociateSecurityKey",
            Self::ReplicateInstance => "ReplicateInstance",
            Self::ListTrafficDistributionGroups => "ListTrafficDistributionGroups",
            Self::GetTrafficDistribution => "GetTrafficDistribution",
            Self::UpdateTrafficDistribution => "UpdateTrafficDistribution",
            Self::GetCallerIdentity => "GetCallerIdentity",
            Self::AssumeRole => "AssumeRole",
        }
    }

    /// Whether the operation creates or deletes an instance (a replica is one too): these
    /// count against the 30-day lifecycle attempt limit and have their own, much lower,
    /// rate limit.
    #[must_use]
    pub fn is_lifecycle(self) -> bool {
        matches!(
            self,
            Self::CreateInstance | Self::DeleteInstance | Self::ReplicateInstance
        )
    }

    /// Whether the operation changes something in AWS: only the leader may send it.
    #[must_use]
    pub fn is_write(self) -> bool {
        self != Self::AssumeRole && is_write_operation(self.as_str())
    }
}

/// Whether an AWS operation, by its name, changes something: every one but the reads
/// (`Describe…`, `List…`, `Get…`, `Search…`). Decided by name so that an operation added
/// later is a write until it is known to be a read.
#[must_use]
pub fn is_write_operation(name: &str) -> bool {
    !["Describe", "List", "Get", "Search"]
        .iter()
        .any(|read| name.starts_with(read))
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an AWS failure means for the reconciler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The instances-per-account quota is reached (ServiceQuotaExceededException on create).
    InstanceLimitExceeded,
    /// The 30-day create/delete attempt limit is reached.
    LifecycleAttemptLimitExceeded,
    /// AWS throttled the call (ThrottlingException, HTTP 429).
    Throttled,
    /// The credentials are missing, invalid or lack a permission.
    AccessDenied,
    /// AWS rejected the request as invalid (InvalidRequest / InvalidParameter).
    InvalidRequest,
    /// The resource does not exist.
    NotFound,
    /// A 5xx, timeout or connection failure: retry with backoff.
    Transient,
    /// The client-side rate limiter has no capacity now; nothing was sent to AWS.
    RateLimited,
    /// This replica may not write (it does not lead, or could not renew its lease in
    /// time); nothing was sent to AWS.
    NotLeader,
    /// Anything else AWS answered.
    Other,
}

impl ErrorKind {
    /// A stable label for metrics and logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InstanceLimitExceeded => "instance_limit_exceeded",
            Self::LifecycleAttemptLimitExceeded => "lifecycle_attempt_limit_exceeded",
            Self::Throttled => "throttled",
            Self::AccessDenied => "access_denied",
            Self::InvalidRequest => "invalid_request",
            Self::NotFound => "not_found",
            Self::Transient => "transient",
            Self::RateLimited => "rate_limited",
            Self::NotLeader => "not_leader",
            Self::Other => "other",
        }
    }
}

/// A failed AWS call, classified.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct AwsError {
    /// The operation that failed.
    pub operation: Operation,
    /// What the failure means.
    pub kind: ErrorKind,
    /// AWS's error code, when AWS answered.
    pub code: Option<String>,
    /// AWS's message, or a description of the transport failure.
    pub message: String,
    /// AWS's request id, when AWS answered.
    pub request_id: Option<String>,
    /// For [`ErrorKind::RateLimited`]: when capacity is expected.
    pub retry_after: Option<std::time::Duration>,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed", self.operation)?;
        if let Some(code) = &self.code {
            write!(f, ": {code}")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

impl AwsError {
    /// Classifies an SDK error.
    pub fn from_sdk<E>(operation: Operation, err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        if chain_holds::<crate::fence::NotLeader>(err) {
            return Self::not_leader(operation);
        }
        match err {
            SdkError::ServiceError(service) => {
                let inner = service.err();
                let status = service.raw().status().as_u16();
                let code = inner.code().map(str::to_owned);
                let message = inner.message().unwrap_or_default().to_owned();
                let kind = classify(code.as_deref(), &message, Some(status));
                Self {
                    operation,
                    kind,
                    code,
                    message,
                    request_id: err.request_id().map(str::to_owned),
                    retry_after: None,
                }
            }
            SdkError::TimeoutError(_) => Self::transport(operation, "the call timed out"),
            // The account's credentials could not be obtained (a refused AssumeRole, no
            // credentials at all): nothing reached the service. Retried slowly, like
            // AccessDenied; the account's own status says why.
            SdkError::DispatchFailure(_) if credentials_failed(err) => Self {
                operation,
                kind: ErrorKind::AccessDenied,
                code: None,
                message: format!(
                    "could not obtain the account's credentials: {}",
                    sdk_error_chain(err, None)
                ),
                request_id: None,
                retry_after: None,
            },
            SdkError::DispatchFailure(d) => Self::transport(
                operation,
                &format!(
                    "connection failure: {}",
                    sdk_error_chain(
                        err,
                        d.as_connector_error().map(|c| c as &dyn std::error::Error)
                    )
                ),
            ),
            SdkError::ResponseError(_) => Self::transport(
                operation,
                &format!("unreadable response: {}", sdk_error_chain(err, None)),
            ),
            // Construction failures are bugs or bad input built into the request; retrying
            // cannot help, but they must not panic the reconciler either.
            _ => Self {
                operation,
                kind: ErrorKind::Other,
                code: None,
                message: sdk_error_chain(err, None),
                request_id: None,
                retry_after: None,
            },
        }
    }

    fn transport(operation: Operation, message: &str) -> Self {
        Self {
            operation,
            kind: ErrorKind::Transient,
            code: None,
            message: message.to_owned(),
            request_id: None,
            retry_after: None,
        }
    }

    /// The fence refused the call: this replica may not write now.
    #[must_use]
    pub fn not_leader(operation: Operation) -> Self {
        Self {
            operation,
            kind: ErrorKind::NotLeader,
            code: None,
            message: crate::fence::NotLeader.to_string(),
            request_id: None,
            retry_after: None,
        }
    }

    /// The client-side rate limiter refused the call for now.
    #[must_use]
    pub fn rate_limited(operation: Operation, retry_after: std::time::Duration) -> Self {
        Self {
            operation,
            kind: ErrorKind::RateLimited,
            code: None,
            message: "client-side rate limit reached; the call was not sent".to_owned(),
            request_id: None,
            retry_after: Some(retry_after),
        }
    }
}

/// Whether an error's chain holds a credentials provider's failure.
fn credentials_failed(err: &(dyn std::error::Error + 'static)) -> bool {
    chain_holds::<aws_credential_types::provider::error::CredentialsError>(err)
}

/// Whether an error, or one of its sources, is a `T`.
fn chain_holds<T: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if e.is::<T>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// An error and its sources, as one line.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    sdk_error_chain(err, None)
}

fn sdk_error_chain(
    err: &dyn std::error::Error,
    connector: Option<&dyn std::error::Error>,
) -> String {
    let mut out = String::new();
    let mut current: Option<&dyn std::error::Error> = connector.or(Some(err));
    while let Some(e) = current {
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&e.to_string());
        current = e.source();
    }
    out
}

/// Classifies an AWS answer by error code, message and HTTP status.
///
/// The 30-day lifecycle limit arrives as `ServiceQuotaExceededException` too, and only its
/// message tells it apart from the instance quota; DeleteInstance does not model the
/// exception at all, so it is recognised by code and message on every operation.
#[must_use]
pub fn classify(code: Option<&str>, message: &str, http_status: Option<u16>) -> ErrorKind {
    let lower = message.to_ascii_lowercase();
    let lifecycle_message = lower.contains("excessive number of")
        || (lower.contains("creation and deletion") && lower.contains("attempt"));
    match code.unwrap_or_default() {
        _ if lifecycle_message => ErrorKind::LifecycleAttemptLimitExceeded,
        "ServiceQuotaExceededException" => ErrorKind::InstanceLimitExceeded,
        "ThrottlingException" | "TooManyRequestsException" | "RequestLimitExceeded" => {
            ErrorKind::Throttled
        }
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException"
        | "MissingAuthenticationTokenException" => ErrorKind::AccessDenied,
        "InvalidRequestException" | "InvalidParameterException" | "ValidationException" => {
            ErrorKind::InvalidRequest
        }
        "ResourceNotFoundException" => ErrorKind::NotFound,
        "InternalServiceException" | "InternalFailure" | "ServiceUnavailableException" => {
            ErrorKind::Transient
        }
        _ => match http_status {
            Some(429) => ErrorKind::Throttled,
            Some(403) => ErrorKind::AccessDenied,
            Some(404) => ErrorKind::NotFound,
            Some(s) if s >= 500 => ErrorKind::Transient,
            _ => ErrorKind::Other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_every_row_of_the_error_table() {
        let rows: &[(Option<&str>, &str, Option<u16>, ErrorKind)] = &[
            (
                Some("ServiceQuotaExceededException"),
                "The maximum number of instances has been reached",
                Some(402),
                ErrorKind::InstanceLimitExceeded,
            ),
            (
                Some("ServiceQuotaExceededException"),
                "Your account has been flagged for an excessive number of creation and deletion attempts",
                Some(402),
                ErrorKind::LifecycleAttemptLimitExceeded,
            ),
            // DeleteInstance does not model the exception: recognised by its message.
            (
                None,
                "Your account has been flagged for an excessive number of creation and deletion attempts",
                Some(400),
                ErrorKind::LifecycleAttemptLimitExceeded,
            ),
            (
                Some("ThrottlingException"),
                "Rate exceeded",
                Some(429),
                ErrorKind::Throttled,
            ),
            (None, "", Some(429), ErrorKind::Throttled),
            (
                Some("AccessDeniedException"),
                "not authorized",
                Some(403),
                ErrorKind::AccessDenied,
            ),
            (
                Some("UnrecognizedClientException"),
                "bad token",
                Some(403),
                ErrorKind::AccessDenied,
            ),
            (
                Some("InvalidRequestException"),
                "bad",
                Some(400),
                ErrorKind::InvalidRequest,
            ),
            (
                Some("InvalidParameterException"),
                "bad",
                Some(400),
                ErrorKind::InvalidRequest,
            ),
            (
                Some("ResourceNotFoundException"),
                "gone",
                Some(404),
                ErrorKind::NotFound,
            ),
            (
                Some("InternalServiceException"),
                "oops",
                Some(500),
                ErrorKind::Transient,
            ),
            (None, "bad gateway", Some(502), ErrorKind::Transient),
            (Some("SomethingNew"), "?", Some(409), ErrorKind::Other),
        ];
        for (code, message, status, want) in rows {
            assert_eq!(
                classify(*code, message, *status),
                *want,
                "{code:?} {message} {status:?}"
            );
        }
    }

    #[test]
    fn the_documented_iam_policy_allows_every_connect_operation_the_operator_calls() {
        let policy = include_str!("../../docs/iam-policy.json");
        for op in Operation::ALL {
            // STS GetCallerIdentity needs no permission.
            if op == Operation::GetCallerIdentity {
                continue;
            }
            assert!(
                policy.contains(&format!("\"connect:{op}\"")),
                "docs/iam-policy.json does not allow connect:{op}"
            );
        }
    }

    #[test]
    fn only_reads_are_sent_by_a_replica_that_does_not_lead() {
        for op in Operation::ALL {
            let read = matches!(
                op,
                Operation::DescribeInstance
                    | Operation::ListInstances
                    | Operation::ListInstanceAttributes
                    | Operation::DescribeInstanceAttribute
                    | Operation::ListTagsForResource
                    | Operation::ListInstanceStorageConfigs
                    | Operation::ListApprovedOrigins
                    | Operation::ListLambdaFunctions
                    | Operation::ListBots
                    | Operation::ListSecurityKeys
                    | Operation::ListTrafficDistributionGroups
                    | Operation::GetTrafficDistribution
                    | Operation::GetCallerIdentity
            );
            assert_eq!(op.is_write(), !read, "{op}");
        }
        // Operations the operator may call later are writes until known to be reads.
        for name in ["ReplicateInstance", "UpdateTrafficDistribution"] {
            assert!(is_write_operation(name), "{name}");
        }
        for name in [
            "ListBots",
            "DescribeInstanceStorageConfig",
            "GetTrafficDistribution",
        ] {
            assert!(!is_write_operation(name), "{name}");
        }
    }

    #[test]
    fn display_carries_code_message_and_request_id() {
        let err = AwsError {
            operation: Operation::CreateInstance,
            kind: ErrorKind::Throttled,
            code: Some("ThrottlingException".into()),
            message: "Rate exceeded".into(),
            request_id: Some("req-1".into()),
            retry_after: None,
        };
        assert_eq!(
            err.to_string(),
            "CreateInstance failed: ThrottlingException: Rate exceeded (request id req-1)"
        );
    }
}
