//! Simulator settings: the start-up [`SimConfig`], and its JSON view and partial updates
//! served by `GET`/`PUT /_sim/config`.
//!
//! A knob has three shapes, and a new one is added to all three at once: the field of
//! [`SimConfig`] (here, with its default), its key in [`ConfigView`] (`view.rs`) and its key
//! in [`ConfigPatch`] with how it is applied (`patch.rs`); the binary's flag sets the field.
//! The operations and what is set per operation (rate limits, faults) are in
//! `operations.rs`, the checks of what can be invalid in `checks.rs`.

mod checks;
mod operations;
mod patch;
#[cfg(test)]
mod tests;
mod view;

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;

use checks::{
    check_account_id, check_external_id, check_extra_attribute_types, check_region, check_role_arn,
};
pub use operations::{FaultConfig, Operation, RateLimit};
pub use patch::{AccountPatch, ConfigPatch, FaultsPatch};
pub use view::{AccountView, ConfigView, FaultsView};

/// Settings of one account that differ from the defaults (`accounts` in `/_sim/config`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountSettings {
    /// Instances per account in each region, instead of [`SimConfig::instance_quota`].
    pub instance_quota: Option<u32>,
    /// Create and delete attempts per region, instead of
    /// [`SimConfig::lifecycle_attempt_limit`].
    pub lifecycle_attempt_limit: Option<u32>,
    /// Whether AWS allow-listed the account for Global Resiliency (ReplicateInstance),
    /// instead of [`SimConfig::replication_allowed`].
    pub replication_allowed: Option<bool>,
}

/// What DeleteInstance of a source instance does while it has a replica
/// (`sourceDeleteWithReplica`; AWS does not document it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceDeleteWithReplica {
    /// Refused with InvalidRequestException naming the replica.
    #[default]
    Refuse,
    /// Accepted: the replica and its traffic distribution groups are deleted with it.
    Cascade,
}

/// Everything the simulator can be configured with.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// The region of requests whose signature names none (and of unsigned requests).
    pub region: String,
    /// The account of every access key the simulator did not issue (and of unsigned
    /// requests).
    pub account_id: String,
    /// How long a new instance stays CREATION_IN_PROGRESS.
    pub creation_delay: Duration,
    /// How long a deleted instance stays visible after DeleteInstance was accepted.
    pub deletion_delay: Duration,
    /// Instances per account and region (instances that exist, in any state).
    pub instance_quota: u32,
    /// Create and delete attempts allowed per account and region in the (simulated) 30-day
    /// window.
    pub lifecycle_attempt_limit: u32,
    /// Per-account exceptions to `instance_quota` and `lifecycle_attempt_limit`, by account id.
    pub accounts: BTreeMap<String, AccountSettings>,
    /// Answer requests without a SigV4 `Authorization` (or `X-Amz-Credential`) as AWS does
    /// (403 MissingAuthenticationToken…) instead of serving them as the default account.
    pub require_authentication: bool,
    /// Role ARNs AssumeRole refuses (AccessDenied).
    pub refuse_assume_role: Vec<String>,
    /// Role ARN → the ExternalId AssumeRole of that role requires (AccessDenied otherwise).
    pub role_external_ids: BTreeMap<String, String>,
    /// Aliases matching this regex end CREATION_FAILED.
    pub fail_creation_alias_pattern: Option<String>,
    /// Resources an instance configuration refers to (bucket names, KMS keys, stream,
    /// Firehose, Lambda function and Lex bot alias ARNs) that match this regex do not exist:
    /// the Associate or Update call answers ResourceNotFoundException.
    pub missing_resource_pattern: Option<String>,
    /// Eventual consistency: for this long after CreateInstance created an instance, every
    /// lookup by id or ARN answers as for an unknown id and ListInstances omits it. Zero is
    /// off. Applies to instances created while it is set.
    pub visibility_delay: Duration,
    /// DeleteInstance of a CREATION_IN_PROGRESS instance answers InvalidRequestException
    /// (not counted against the attempt limit) instead of being accepted.
    pub refuse_delete_while_creating: bool,
    /// A CREATION_FAILED instance vanishes (as if AWS deleted it) this long after it failed;
    /// `None` keeps it forever.
    pub failed_instance_retention: Option<Duration>,
    /// Attribute types beyond the 14 the SDK knows, listed by ListInstanceAttributes with the
    /// value `"false"` (as when AWS adds a type the client's model predates).
    pub extra_attribute_types: Vec<String>,
    /// How long a replica made by ReplicateInstance stays CREATION_IN_PROGRESS.
    pub replication_delay: Duration,
    /// How long a deleted replica stays visible (INSTANCE_REPLICA_DELETING).
    pub replica_deletion_delay: Duration,
    /// Whether accounts are allow-listed for Global Resiliency unless `accounts` says
    /// otherwise; a refused account's ReplicateInstance answers AccessDeniedException.
    pub replication_allowed: bool,
    /// Replicas whose alias matches this regex end INSTANCE_REPLICATION_FAILED.
    pub fail_replication_alias_pattern: Option<String>,
    /// DeleteInstance of a source instance that has a replica.
    pub source_delete_with_replica: SourceDeleteWithReplica,
    /// Rate limit per operation; an operation missing here uses its default.
    pub rate_limits: BTreeMap<Operation, RateLimit>,
    /// Injected faults.
    pub faults: FaultConfig,
    /// Seed for ids and fault decisions; `None` seeds randomly.
    pub seed: Option<u64>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account_id: crate::DEFAULT_ACCOUNT_ID.into(),
            creation_delay: Duration::from_secs(2),
            deletion_delay: Duration::from_secs(1),
            instance_quota: 2,
            lifecycle_attempt_limit: 100,
            accounts: BTreeMap::new(),
            require_authentication: false,
            refuse_assume_role: Vec::new(),
            role_external_ids: BTreeMap::new(),
            fail_creation_alias_pattern: None,
            missing_resource_pattern: None,
            visibility_delay: Duration::ZERO,
            refuse_delete_while_creating: false,
            failed_instance_retention: None,
            extra_attribute_types: Vec::new(),
            replication_delay: Duration::from_secs(2),
            replica_deletion_delay: Duration::from_secs(1),
            replication_allowed: true,
            fail_replication_alias_pattern: None,
            source_delete_with_replica: SourceDeleteWithReplica::Refuse,
            rate_limits: Operation::ALL
                .into_iter()
                .map(|op| (op, op.default_rate_limit()))
                .collect(),
            faults: FaultConfig::default(),
            seed: None,
        }
    }
}

impl SimConfig {
    /// A configuration without rate limits, handy for tests that are not about throttling.
    pub fn without_rate_limits(mut self) -> Self {
        for op in Operation::ALL {
            self.rate_limits.insert(
                op,
                RateLimit {
                    per_second: None,
                    burst: 1,
                },
            );
        }
        self
    }

    /// The rate limit in force for `operation`.
    pub fn rate_limit(&self, operation: Operation) -> RateLimit {
        self.rate_limits
            .get(&operation)
            .copied()
            .unwrap_or_else(|| operation.default_rate_limit())
    }

    /// Compiles `fail_creation_alias_pattern`.
    pub(crate) fn fail_alias_regex(&self) -> Result<Option<Regex>, String> {
        match self.fail_creation_alias_pattern.as_deref() {
            None | Some("") => Ok(None),
            Some(pattern) => Regex::new(pattern)
                .map(Some)
                .map_err(|e| format!("failCreationAliasPattern is not a valid regex: {e}")),
        }
    }

    /// Compiles `fail_replication_alias_pattern`.
    pub(crate) fn fail_replication_regex(&self) -> Result<Option<Regex>, String> {
        match self.fail_replication_alias_pattern.as_deref() {
            None | Some("") => Ok(None),
            Some(pattern) => Regex::new(pattern)
                .map(Some)
                .map_err(|e| format!("failReplicationAliasPattern is not a valid regex: {e}")),
        }
    }

    /// Whether `account_id` is allow-listed for Global Resiliency.
    pub fn replication_allowed_of(&self, account_id: &str) -> bool {
        self.accounts
            .get(account_id)
            .and_then(|a| a.replication_allowed)
            .unwrap_or(self.replication_allowed)
    }

    /// Compiles `missing_resource_pattern`.
    pub(crate) fn missing_resource_regex(&self) -> Result<Option<Regex>, String> {
        match self.missing_resource_pattern.as_deref() {
            None | Some("") => Ok(None),
            Some(pattern) => Regex::new(pattern)
                .map(Some)
                .map_err(|e| format!("missingResourcePattern is not a valid regex: {e}")),
        }
    }

    /// Checks the settings that can be invalid: the alias regex, the extra attribute types,
    /// account ids and role ARNs. [`spawn`](crate::spawn) and [`serve`](crate::serve) check it
    /// too.
    pub fn validate(&self) -> Result<(), String> {
        self.fail_alias_regex()?;
        self.missing_resource_regex()?;
        self.fail_replication_regex()?;
        check_extra_attribute_types(&self.extra_attribute_types)?;
        check_account_id("accountId", &self.account_id)?;
        check_region("region", &self.region)?;
        for account in self.accounts.keys() {
            check_account_id("accounts", account)?;
        }
        for arn in &self.refuse_assume_role {
            check_role_arn("refuseAssumeRole", arn)?;
        }
        for (arn, external_id) in &self.role_external_ids {
            check_role_arn("roleExternalIds", arn)?;
            check_external_id(arn, external_id)?;
        }
        Ok(())
    }

    /// The instance quota in force for `account_id` (in each of its regions).
    pub fn instance_quota_of(&self, account_id: &str) -> u32 {
        self.accounts
            .get(account_id)
            .and_then(|a| a.instance_quota)
            .unwrap_or(self.instance_quota)
    }

    /// The lifecycle attempt limit in force for `account_id` (in each of its regions).
    pub fn lifecycle_attempt_limit_of(&self, account_id: &str) -> u32 {
        self.accounts
            .get(account_id)
            .and_then(|a| a.lifecycle_attempt_limit)
            .unwrap_or(self.lifecycle_attempt_limit)
    }
}
