//! The `ConnectAccount` resource: an AWS account (the credentials that reach it) as a
//! cluster-scoped object, which namespaces may use it, and its attempt budget.
//!
//! The account is what owns Connect's quotas: the instance quota, the API rate limits and
//! the 30-day create/delete attempt limit. Naming it explicitly lets one operator serve
//! several accounts, and its namespace selector decides which teams may spend it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// The finalizer that keeps a `ConnectAccount` while any `ConnectInstance` refers to it.
pub const ACCOUNT_FINALIZER: &str = "connect.operators.dev/account-in-use";

/// The default of `spec.lifecycleAttemptBudget`.
pub const DEFAULT_LIFECYCLE_ATTEMPT_BUDGET: i32 = 80;

/// An AWS account that `ConnectInstance` objects use.
// The derive's repeated `printcolumn(type_ = ...)` keys look like duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "connect.operators.dev",
    version = "v1alpha1",
    kind = "ConnectAccount",
    plural = "connectaccounts",
    shortname = "connectacct",
    category = "aws",
    category = "amazon-connect",
    status = "ConnectAccountStatus",
    doc = "An AWS account that ConnectInstance objects use: the credentials that reach it (the operator's own, or an IAM role assumed on top of them), the namespaces allowed to use it, and its budget of instance create/delete attempts.",
    printcolumn(name = "Account-ID", type_ = "string", json_path = ".status.accountId"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(name = "Attempts", type_ = "string", json_path = ".status.attempts"),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#,
        priority = 1
    ),
    printcolumn(
        name = "Role",
        type_ = "string",
        json_path = ".spec.roleArn",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].message"#,
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.roleArn) || !has(self.externalId)")
        .message("spec.externalId requires spec.roleArn: it is passed to STS AssumeRole for that role")
        .field_path(".externalId"),
    validation = Rule::new("!has(self.namespaceSelector.matchExpressions) || self.namespaceSelector.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])")
        .message("spec.namespaceSelector.matchExpressions[].operator must be In, NotIn, Exists or DoesNotExist")
        .field_path(".namespaceSelector.matchExpressions"),
    validation = Rule::new("!has(self.namespaceSelector.matchExpressions) || self.namespaceSelector.matchExpressions.all(e, (e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0))")
        .message("spec.namespaceSelector.matchExpressions[].values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist")
        .field_path(".namespaceSelector.matchExpressions"),
)]
pub struct ConnectAccountSpec {
    /// An IAM role to assume (STS AssumeRole) on top of the operator's own credentials, for
    /// example `arn:aws:iam::111122223333:role/connect-operator`. Unset: the operator's own
    /// credentials are used as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 20, max = 2048),
        regex(pattern = r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
    )]
    pub role_arn: Option<String>,

    /// The external id the role's trust policy requires (`sts:ExternalId`), if any.
    /// Requires `roleArn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 1224), regex(pattern = r"^[\w+=,.@:/-]+$"))]
    pub external_id: Option<String>,

    /// Which namespaces' ConnectInstance objects may use this account. Required; `{}`
    /// selects every namespace. An object in a namespace it does not select is refused
    /// (`AccountNotAllowed`) before any AWS call.
    pub namespace_selector: LabelSelector,

    /// How many instance create and delete attempts, in a sliding 30 days, the operator may
    /// spend on creates in this account and region (1–100; AWS allows about 100 in all).
    /// Deletes may go on up to AWS's own limit, so what is above the budget is kept for
    /// clean-up.
    #[serde(default = "default_budget")]
    #[schemars(range(min = 1, max = 100))]
    pub lifecycle_attempt_budget: i32,
}

fn default_budget() -> i32 {
    DEFAULT_LIFECYCLE_ATTEMPT_BUDGET
}

/// Observed state of an account, written only by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectAccountStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The AWS account id, from STS GetCallerIdentity with this account's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Create and delete attempts in the last 30 days against the budget, in the operator's
    /// default region (`used/budget`): the ATTEMPTS column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<String>,
    /// Per region, a summary of the attempt ledger (`ConnectAttemptLedger` objects hold
    /// the entries; this summary is derived from them and rewritten from them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "region_attempts_schema")]
    pub lifecycle_attempts: Vec<RegionAttempts>,
    /// `Ready`: whether the credentials work (`CredentialsVerified`; False:
    /// `AssumeRoleFailed`, `AccessDenied`, `AwsError`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::instance::conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// The attempt ledger's summary for one region.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegionAttempts {
    /// The region.
    pub region: String,
    /// Attempts that count now (within 30 days, not certainly refused by AWS; unreadable
    /// ledger entries included).
    pub used: u32,
    /// `spec.lifecycleAttemptBudget`.
    pub budget: u32,
    /// When the oldest counting attempt expires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_expires_at: Option<String>,
    /// Ledger entries that could not be read (each counts; fix or remove them by hand).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub malformed_entries: u32,
    /// When AWS last answered that its own 30-day limit is reached (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_limit_reached_at: Option<String>,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn region_attempts_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let item = generator.subschema_for::<RegionAttempts>();
    schemars::json_schema!({
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["region"]
    })
}

impl ConnectAccount {
    /// The condition of the given type, if present.
    #[must_use]
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
    }

    /// `spec.lifecycleAttemptBudget`, held to its 1–100 range.
    #[must_use]
    pub fn budget(&self) -> u32 {
        u32::try_from(self.spec.lifecycle_attempt_budget.clamp(1, 100)).unwrap_or(1)
    }

    /// The account id, once the credentials have been verified for the current spec.
    #[must_use]
    pub fn verified_account_id(&self) -> Option<&str> {
        let status = self.status.as_ref()?;
        let ready = self.condition(crate::conditions::types::READY)?;
        let current = status.observed_generation == self.metadata.generation
            && ready.observed_generation == self.metadata.generation;
        (ready.status == "True" && current)
            .then_some(status.account_id.as_deref())
            .flatten()
    }
}
