//! `PUT /_sim/config`: the partial update ([`ConfigPatch`]) and how it is applied to the
//! settings in force, all or nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::checks::{
    check_account_id, check_external_id, check_extra_attribute_types, check_ratio, check_role_arn,
};
use super::operations::{parse_operation, parse_rate_limited_operation};
use super::{AccountSettings, Operation, SimConfig, SourceDeleteWithReplica};

/// `PUT /_sim/config`: every key optional; unknown keys are rejected so typos do not go
/// unnoticed. Tests build it as a value and send it as JSON.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigPatch {
    /// The default region (read-only: only its current value is accepted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The default account (read-only: only its current value is accepted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// How long CREATION_IN_PROGRESS lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_delay_ms: Option<u64>,
    /// How long a deleted instance stays visible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_delay_ms: Option<u64>,
    /// Instances per account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_quota: Option<u32>,
    /// Create + delete attempts per 30 days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle_attempt_limit: Option<u32>,
    /// Account id → exceptions to the two limits above, merged per account and key; an
    /// account given as `null` loses all its exceptions, a key given as `null` that one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounts: Option<BTreeMap<String, Option<AccountPatch>>>,
    /// Unsigned requests answer 403 MissingAuthenticationToken… as on AWS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_authentication: Option<bool>,
    /// Replaces the list of role ARNs AssumeRole refuses (`[]`: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refuse_assume_role: Option<Vec<String>>,
    /// Replaces the map role ARN → required ExternalId (`{}`: none required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_external_ids: Option<BTreeMap<String, String>>,
    /// Absent: unchanged; `null` or `""`: no failing aliases.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub fail_creation_alias_pattern: Option<Option<String>>,
    /// Absent: unchanged; `null` or `""`: every referenced resource exists.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub missing_resource_pattern: Option<Option<String>>,
    /// How long a new instance stays invisible to lookups and listings (0: off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility_delay_ms: Option<u64>,
    /// Refuse DeleteInstance of a CREATION_IN_PROGRESS instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refuse_delete_while_creating: Option<bool>,
    /// Absent: unchanged; `null`: CREATION_FAILED instances stay forever; a number: they
    /// vanish this many milliseconds after they failed.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub failed_instance_retention_ms: Option<Option<u64>>,
    /// Replaces the list of extra attribute types (`[]`: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_attribute_types: Option<Vec<String>>,
    /// How long a replica stays CREATION_IN_PROGRESS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_delay_ms: Option<u64>,
    /// How long a deleted replica stays visible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_deletion_delay_ms: Option<u64>,
    /// The default of every account's Global Resiliency allow-listing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_allowed: Option<bool>,
    /// Absent: unchanged; `null` or `""`: every replication completes.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub fail_replication_alias_pattern: Option<Option<String>>,
    /// DeleteInstance of a source with a replica: `refuse` or `cascade`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_delete_with_replica: Option<SourceDeleteWithReplica>,
    /// Operation → requests/second; `null` removes the limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<BTreeMap<String, Option<f64>>>,
    /// Operation → bucket size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_bursts: Option<BTreeMap<String, u32>>,
    /// Injected faults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faults: Option<FaultsPatch>,
}

/// One account's entry in [`ConfigPatch::accounts`]: absent keys unchanged, `null` back to the
/// default.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountPatch {
    /// Instances per region of this account; `null`: the default `instanceQuota`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub instance_quota: Option<Option<u32>>,
    /// Attempts per region of this account; `null`: the default `lifecycleAttemptLimit`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub lifecycle_attempt_limit: Option<Option<u32>>,
    /// Whether this account is allow-listed for Global Resiliency; `null`: the default
    /// `replicationAllowed`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub replication_allowed: Option<Option<bool>>,
}

/// The `faults` part of [`ConfigPatch`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultsPatch {
    /// Share of requests answered 500 (0–1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_error_ratio: Option<f64>,
    /// Added latency per request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Share of requests whose connection is dropped (0–1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_connection_ratio: Option<f64>,
    /// Share of requests answered AccessDeniedException (0–1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_denied_ratio: Option<f64>,
    /// The operations faults apply to (empty: every Connect operation; STS operations only
    /// when listed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operations: Option<Vec<String>>,
}

/// Distinguishes a key given as `null` (`Some(None)`) from an absent key (`None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl SimConfig {
    /// Applies a partial update; on error nothing changes. Returns the operations whose rate
    /// limit changed (their buckets start over).
    pub(crate) fn apply(&mut self, patch: ConfigPatch) -> Result<Vec<Operation>, String> {
        let mut next = self.clone();
        if patch.region.is_some_and(|region| region != self.region) {
            return Err("region is read-only at run time".into());
        }
        if patch
            .account_id
            .is_some_and(|account_id| account_id != self.account_id)
        {
            return Err("accountId is read-only at run time".into());
        }
        if let Some(ms) = patch.creation_delay_ms {
            next.creation_delay = Duration::from_millis(ms);
        }
        if let Some(ms) = patch.deletion_delay_ms {
            next.deletion_delay = Duration::from_millis(ms);
        }
        if let Some(quota) = patch.instance_quota {
            next.instance_quota = quota;
        }
        if let Some(limit) = patch.lifecycle_attempt_limit {
            next.lifecycle_attempt_limit = limit;
        }
        for (account, settings) in patch.accounts.unwrap_or_default() {
            check_account_id("accounts", &account)?;
            match settings {
                None => {
                    next.accounts.remove(&account);
                }
                Some(settings) => {
                    let entry = next.accounts.entry(account.clone()).or_default();
                    if let Some(quota) = settings.instance_quota {
                        entry.instance_quota = quota;
                    }
                    if let Some(limit) = settings.lifecycle_attempt_limit {
                        entry.lifecycle_attempt_limit = limit;
                    }
                    if let Some(allowed) = settings.replication_allowed {
                        entry.replication_allowed = allowed;
                    }
                    if *entry == AccountSettings::default() {
                        next.accounts.remove(&account);
                    }
                }
            }
        }
        if let Some(require) = patch.require_authentication {
            next.require_authentication = require;
        }
        if let Some(arns) = patch.refuse_assume_role {
            for arn in &arns {
                check_role_arn("refuseAssumeRole", arn)?;
            }
            next.refuse_assume_role = arns;
        }
        if let Some(ids) = patch.role_external_ids {
            for (arn, external_id) in &ids {
                check_role_arn("roleExternalIds", arn)?;
                check_external_id(arn, external_id)?;
            }
            next.role_external_ids = ids;
        }
        if let Some(pattern) = patch.fail_creation_alias_pattern {
            next.fail_creation_alias_pattern = pattern.filter(|p| !p.is_empty());
            next.fail_alias_regex()?;
        }
        if let Some(pattern) = patch.missing_resource_pattern {
            next.missing_resource_pattern = pattern.filter(|p| !p.is_empty());
            next.missing_resource_regex()?;
        }
        if let Some(ms) = patch.visibility_delay_ms {
            next.visibility_delay = Duration::from_millis(ms);
        }
        if let Some(refuse) = patch.refuse_delete_while_creating {
            next.refuse_delete_while_creating = refuse;
        }
        if let Some(retention) = patch.failed_instance_retention_ms {
            next.failed_instance_retention = retention.map(Duration::from_millis);
        }
        if let Some(types) = patch.extra_attribute_types {
            check_extra_attribute_types(&types)?;
            next.extra_attribute_types = types;
        }
        if let Some(ms) = patch.replication_delay_ms {
            next.replication_delay = Duration::from_millis(ms);
        }
        if let Some(ms) = patch.replica_deletion_delay_ms {
            next.replica_deletion_delay = Duration::from_millis(ms);
        }
        if let Some(allowed) = patch.replication_allowed {
            next.replication_allowed = allowed;
        }
        if let Some(pattern) = patch.fail_replication_alias_pattern {
            next.fail_replication_alias_pattern = pattern.filter(|p| !p.is_empty());
            next.fail_replication_regex()?;
        }
        if let Some(mode) = patch.source_delete_with_replica {
            next.source_delete_with_replica = mode;
        }
        let mut changed = Vec::new();
        for (name, rate) in patch.rate_limits.unwrap_or_default() {
            let op = parse_rate_limited_operation(&name)?;
            if rate.is_some_and(|rate| !rate.is_finite() || rate < 0.0) {
                return Err(format!("rateLimits.{name} must be a number >= 0 or null"));
            }
            let mut limit = next.rate_limit(op);
            limit.per_second = rate;
            next.rate_limits.insert(op, limit);
            changed.push(op);
        }
        for (name, burst) in patch.rate_bursts.unwrap_or_default() {
            let op = parse_rate_limited_operation(&name)?;
            if burst == 0 {
                return Err(format!("rateBursts.{name} must be at least 1"));
            }
            let mut limit = next.rate_limit(op);
            limit.burst = burst;
            next.rate_limits.insert(op, limit);
            changed.push(op);
        }
        if let Some(faults) = patch.faults {
            if let Some(ratio) = faults.server_error_ratio {
                next.faults.server_error_ratio = check_ratio("faults.serverErrorRatio", ratio)?;
            }
            if let Some(ms) = faults.latency_ms {
                next.faults.latency = Duration::from_millis(ms);
            }
            if let Some(ratio) = faults.drop_connection_ratio {
                next.faults.drop_connection_ratio =
                    check_ratio("faults.dropConnectionRatio", ratio)?;
            }
            if let Some(ratio) = faults.access_denied_ratio {
                next.faults.access_denied_ratio = check_ratio("faults.accessDeniedRatio", ratio)?;
            }
            if let Some(operations) = faults.operations {
                next.faults.operations = operations
                    .iter()
                    .map(|name| parse_operation(name))
                    .collect::<Result<_, _>>()?;
            }
        }
        *self = next;
        changed.sort();
        changed.dedup();
        Ok(changed)
    }
}
