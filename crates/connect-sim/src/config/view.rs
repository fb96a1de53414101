//! `GET /_sim/config`: the JSON view of the settings in force ([`ConfigView`]), durations
//! in milliseconds and operations by their AWS names.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Operation, SimConfig, SourceDeleteWithReplica};

/// `GET /_sim/config`: the knobs as they are now.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigView {
    /// The default region: of requests whose signature names none.
    pub region: String,
    /// The default account: of every access key the simulator did not issue.
    pub account_id: String,
    /// How long CREATION_IN_PROGRESS lasts.
    pub creation_delay_ms: u64,
    /// How long a deleted instance stays visible.
    pub deletion_delay_ms: u64,
    /// Instances per account.
    pub instance_quota: u32,
    /// Create + delete attempts per 30 days.
    pub lifecycle_attempt_limit: u32,
    /// Account id → its exceptions to `instanceQuota` / `lifecycleAttemptLimit`.
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountView>,
    /// Unsigned requests answer 403 MissingAuthenticationToken… (else: default account).
    #[serde(default)]
    pub require_authentication: bool,
    /// Role ARNs AssumeRole refuses with AccessDenied.
    #[serde(default)]
    pub refuse_assume_role: Vec<String>,
    /// Role ARN → the ExternalId AssumeRole requires for it.
    #[serde(default)]
    pub role_external_ids: BTreeMap<String, String>,
    /// Aliases matching this pattern end CREATION_FAILED.
    pub fail_creation_alias_pattern: Option<String>,
    /// Referenced resources matching this pattern do not exist.
    pub missing_resource_pattern: Option<String>,
    /// How long a new instance stays invisible to lookups and listings (0: off).
    #[serde(default)]
    pub visibility_delay_ms: u64,
    /// DeleteInstance of a CREATION_IN_PROGRESS instance is refused.
    #[serde(default)]
    pub refuse_delete_while_creating: bool,
    /// How long a CREATION_FAILED instance stays before it vanishes (`None`: forever).
    #[serde(default)]
    pub failed_instance_retention_ms: Option<u64>,
    /// Attribute types ListInstanceAttributes serves beyond the SDK's.
    #[serde(default)]
    pub extra_attribute_types: Vec<String>,
    /// How long a replica stays CREATION_IN_PROGRESS.
    #[serde(default)]
    pub replication_delay_ms: u64,
    /// How long a deleted replica stays visible.
    #[serde(default)]
    pub replica_deletion_delay_ms: u64,
    /// Accounts are allow-listed for Global Resiliency unless `accounts` says otherwise.
    #[serde(default = "yes")]
    pub replication_allowed: bool,
    /// Replica aliases matching this pattern end INSTANCE_REPLICATION_FAILED.
    #[serde(default)]
    pub fail_replication_alias_pattern: Option<String>,
    /// DeleteInstance of a source with a replica: `refuse` or `cascade`.
    #[serde(default)]
    pub source_delete_with_replica: SourceDeleteWithReplica,
    /// Operation → requests/second (`None`: unlimited).
    pub rate_limits: BTreeMap<String, Option<f64>>,
    /// Operation → bucket size.
    pub rate_bursts: BTreeMap<String, u32>,
    /// Injected faults.
    pub faults: FaultsView,
}

/// One account's exceptions in [`ConfigView`] (`None`: the default applies).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    /// Instances per region of this account.
    pub instance_quota: Option<u32>,
    /// Create + delete attempts per region of this account.
    pub lifecycle_attempt_limit: Option<u32>,
    /// Whether this account is allow-listed for Global Resiliency.
    #[serde(default)]
    pub replication_allowed: Option<bool>,
}

fn yes() -> bool {
    true
}

/// The injected faults in [`ConfigView`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultsView {
    /// Share of requests answered 500.
    pub server_error_ratio: f64,
    /// Added latency per request.
    pub latency_ms: u64,
    /// Share of requests whose connection is dropped before the reply.
    pub drop_connection_ratio: f64,
    /// Share of requests answered AccessDeniedException.
    pub access_denied_ratio: f64,
    /// The operations faults apply to (empty: all).
    pub operations: Vec<String>,
}

impl SimConfig {
    /// The JSON view of `GET /_sim/config`.
    pub(crate) fn view(&self) -> ConfigView {
        ConfigView {
            region: self.region.clone(),
            account_id: self.account_id.clone(),
            creation_delay_ms: duration_ms(self.creation_delay),
            deletion_delay_ms: duration_ms(self.deletion_delay),
            instance_quota: self.instance_quota,
            lifecycle_attempt_limit: self.lifecycle_attempt_limit,
            accounts: self
                .accounts
                .iter()
                .map(|(id, settings)| {
                    (
                        id.clone(),
                        AccountView {
                            instance_quota: settings.instance_quota,
                            lifecycle_attempt_limit: settings.lifecycle_attempt_limit,
                            replication_allowed: settings.replication_allowed,
                        },
                    )
                })
                .collect(),
            require_authentication: self.require_authentication,
            refuse_assume_role: self.refuse_assume_role.clone(),
            role_external_ids: self.role_external_ids.clone(),
            fail_creation_alias_pattern: self.fail_creation_alias_pattern.clone(),
            missing_resource_pattern: self.missing_resource_pattern.clone(),
            visibility_delay_ms: duration_ms(self.visibility_delay),
            refuse_delete_while_creating: self.refuse_delete_while_creating,
            failed_instance_retention_ms: self.failed_instance_retention.map(duration_ms),
            extra_attribute_types: self.extra_attribute_types.clone(),
            replication_delay_ms: duration_ms(self.replication_delay),
            replica_deletion_delay_ms: duration_ms(self.replica_deletion_delay),
            replication_allowed: self.replication_allowed,
            fail_replication_alias_pattern: self.fail_replication_alias_pattern.clone(),
            source_delete_with_replica: self.source_delete_with_replica,
            rate_limits: Operation::ALL
                .into_iter()
                .map(|op| (op.name().to_owned(), self.rate_limit(op).per_second))
                .collect(),
            rate_bursts: Operation::ALL
                .into_iter()
                .map(|op| (op.name().to_owned(), self.rate_limit(op).burst))
                .collect(),
            faults: FaultsView {
                server_error_ratio: self.faults.server_error_ratio,
                latency_ms: duration_ms(self.faults.latency),
                drop_connection_ratio: self.faults.drop_connection_ratio,
                access_denied_ratio: self.faults.access_denied_ratio,
                operations: self
                    .faults
                    .operations
                    .iter()
                    .map(|op| op.name().to_owned())
                    .collect(),
            },
        }
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
