//! Simulator settings: the start-up `SimConfig`, and its JSON view and partial updates served
//! by `GET`/`PUT /_sim/config`.
//!
//! One file: the flags' settings, their JSON view and the partial update are three shapes of
//! the same knobs, and a knob is added to all three at once.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize};

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
    /// STS `POST /` `Action=AssumeRole` (query protocol).
    AssumeRole,
    /// STS `POST /` `Action=GetCallerIdentity` (query protocol).
    GetCallerIdentity,
}

impl Operation {
    /// Every Connect operation, in a stable order: the ones with rate limits, and the ones
    /// faults apply to when `faults.operations` is empty.
    pub const ALL: [Operation; 27] = [
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

    /// Connect's default API quota for the operation: CreateInstance and DeleteInstance
    /// 0.1 requests/second with a burst of 1, everything else 2/s with a burst of 5. STS
    /// operations are not rate limited.
    pub fn default_rate_limit(self) -> RateLimit {
        match self {
            Self::AssumeRole | Self::GetCallerIdentity => RateLimit {
                per_second: None,
                burst: 1,
            },
            Self::CreateInstance | Self::DeleteInstance => RateLimit {
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

/// Settings of one account that differ from the defaults (`accounts` in `/_sim/config`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountSettings {
    /// Instances per account in each region, instead of [`SimConfig::instance_quota`].
    pub instance_quota: Option<u32>,
    /// Create and delete attempts per region, instead of
    /// [`SimConfig::lifecycle_attempt_limit`].
    pub lifecycle_attempt_limit: Option<u32>,
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

fn parse_operation(name: &str) -> Result<Operation, String> {
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
fn parse_rate_limited_operation(name: &str) -> Result<Operation, String> {
    let op = parse_operation(name)?;
    if op.is_sts() {
        return Err(format!(
            "{name} is an STS operation; the simulator does not rate limit STS"
        ));
    }
    Ok(op)
}

/// A 12-digit AWS account id.
pub(crate) fn is_account_id(value: &str) -> bool {
    value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit())
}

fn check_account_id(field: &str, value: &str) -> Result<(), String> {
    if is_account_id(value) {
        Ok(())
    } else {
        Err(format!("{field}: '{value}' is not a 12-digit account id"))
    }
}

/// A region name as it appears in ARNs and credential scopes (`us-east-1`).
pub(crate) fn is_region(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn check_region(field: &str, value: &str) -> Result<(), String> {
    if is_region(value) {
        Ok(())
    } else {
        Err(format!("{field}: '{value}' is not a region name"))
    }
}

fn check_role_arn(field: &str, arn: &str) -> Result<(), String> {
    match crate::sts::RoleArn::parse(arn) {
        Some(_) => Ok(()),
        None => Err(format!(
            "{field}: '{arn}' is not a role ARN (arn:aws:iam::<12 digits>:role/<name>)"
        )),
    }
}

fn check_external_id(arn: &str, external_id: &str) -> Result<(), String> {
    match crate::sts::external_id_violation(external_id) {
        None => Ok(()),
        Some(problem) => Err(format!(
            "roleExternalIds: the ExternalId for {arn} is not valid: {problem}"
        )),
    }
}

/// Extra attribute types must look like AWS's enum values (`UPPER_CASE`), be new to the
/// simulator's list and appear once.
fn check_extra_attribute_types(types: &[String]) -> Result<(), String> {
    for (n, name) in types.iter().enumerate() {
        let well_formed = name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_uppercase())
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !well_formed {
            return Err(format!(
                "extraAttributeTypes: '{name}' is not an attribute type name (A-Z, 0-9, _; starting with a letter; at most 64)"
            ));
        }
        if crate::model::ATTRIBUTE_TYPES.contains(&name.as_str()) {
            return Err(format!(
                "extraAttributeTypes: '{name}' is one of the attribute types the simulator always serves"
            ));
        }
        if types[..n].contains(name) {
            return Err(format!("extraAttributeTypes: '{name}' is listed twice"));
        }
    }
    Ok(())
}

fn check_ratio(field: &str, ratio: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err(format!("{field} must be between 0 and 1"))
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn patch(json: &str) -> Result<ConfigPatch, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn partial_update_changes_only_given_keys() -> TestResult {
        let mut config = SimConfig::default();
        let changed = config.apply(patch(
            r#"{"instanceQuota": 5, "rateLimits": {"CreateInstance": null}}"#,
        )?)?;
        assert_eq!(changed, vec![Operation::CreateInstance]);
        assert_eq!(config.instance_quota, 5);
        assert_eq!(config.lifecycle_attempt_limit, 100);
        assert_eq!(
            config.rate_limit(Operation::CreateInstance).per_second,
            None
        );
        assert_eq!(
            config.rate_limit(Operation::DeleteInstance).per_second,
            Some(0.1)
        );
        Ok(())
    }

    #[test]
    fn invalid_update_changes_nothing() -> TestResult {
        let mut config = SimConfig::default();
        let before = config.clone();
        let bad_ratio = patch(r#"{"instanceQuota": 9, "faults": {"serverErrorRatio": 2.0}}"#)?;
        assert!(config.apply(bad_ratio).is_err());
        assert!(
            config
                .apply(patch(r#"{"failCreationAliasPattern": "("}"#)?)
                .is_err()
        );
        assert!(
            config
                .apply(patch(r#"{"rateLimits": {"Nope": 1}}"#)?)
                .is_err()
        );
        assert_eq!(config, before);
        assert!(patch(r#"{"instanceQuotas": 1}"#).is_err());
        Ok(())
    }

    #[test]
    fn undocumented_behaviour_knobs_are_off_by_default_and_merge() -> TestResult {
        let mut config = SimConfig::default();
        let view = config.view();
        assert_eq!(view.visibility_delay_ms, 0);
        assert!(!view.refuse_delete_while_creating);
        assert_eq!(view.failed_instance_retention_ms, None);
        assert!(view.extra_attribute_types.is_empty());
        config.apply(patch(
            r#"{"visibilityDelayMs": 1500, "refuseDeleteWhileCreating": true,
                "failedInstanceRetentionMs": 86400000, "extraAttributeTypes": ["NEW_THING"]}"#,
        )?)?;
        assert_eq!(config.visibility_delay, Duration::from_millis(1500));
        assert!(config.refuse_delete_while_creating);
        assert_eq!(
            config.failed_instance_retention,
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(config.extra_attribute_types, ["NEW_THING"]);
        config.apply(patch("{}")?)?;
        assert_eq!(
            config.failed_instance_retention,
            Some(Duration::from_secs(86_400)),
            "absent keeps"
        );
        config.apply(patch(
            r#"{"failedInstanceRetentionMs": null, "extraAttributeTypes": []}"#,
        )?)?;
        assert_eq!(config.failed_instance_retention, None, "null is forever");
        assert!(config.extra_attribute_types.is_empty());
        // The typed patch the test kit sends says the same.
        let typed = ConfigPatch {
            failed_instance_retention_ms: Some(None),
            ..ConfigPatch::default()
        };
        assert_eq!(
            serde_json::to_string(&typed)?,
            r#"{"failedInstanceRetentionMs":null}"#
        );
        Ok(())
    }

    #[test]
    fn extra_attribute_types_must_be_new_well_formed_and_unique() -> TestResult {
        let mut config = SimConfig::default();
        let before = config.clone();
        for bad in [
            r#"{"extraAttributeTypes": ["lower"]}"#,
            r#"{"extraAttributeTypes": [""]}"#,
            r#"{"extraAttributeTypes": ["CONTACT_LENS"]}"#,
            r#"{"extraAttributeTypes": ["A_B", "A_B"]}"#,
        ] {
            assert!(config.apply(patch(bad)?).is_err(), "{bad} was accepted");
        }
        assert_eq!(config, before);
        let invalid = SimConfig {
            extra_attribute_types: vec!["EARLY_MEDIA".into()],
            ..SimConfig::default()
        };
        assert!(invalid.validate().is_err());
        Ok(())
    }

    #[test]
    fn account_exceptions_merge_per_key_and_null_restores_the_default() -> TestResult {
        let mut config = SimConfig::default();
        config.apply(patch(
            r#"{"accounts": {"111111111111": {"instanceQuota": 5}}}"#,
        )?)?;
        assert_eq!(config.instance_quota_of("111111111111"), 5);
        assert_eq!(config.instance_quota_of("123456789012"), 2);
        config.apply(patch(
            r#"{"accounts": {"111111111111": {"lifecycleAttemptLimit": 3}}}"#,
        )?)?;
        assert_eq!(
            config.instance_quota_of("111111111111"),
            5,
            "merged per key"
        );
        assert_eq!(config.lifecycle_attempt_limit_of("111111111111"), 3);
        assert_eq!(
            config.view().accounts["111111111111"],
            AccountView {
                instance_quota: Some(5),
                lifecycle_attempt_limit: Some(3)
            }
        );
        config.apply(patch(
            r#"{"accounts": {"111111111111": {"instanceQuota": null}}}"#,
        )?)?;
        assert_eq!(config.instance_quota_of("111111111111"), 2);
        config.apply(patch(r#"{"accounts": {"111111111111": null}}"#)?)?;
        assert!(config.accounts.is_empty());
        assert!(
            config
                .apply(patch(r#"{"accounts": {"1111": {"instanceQuota": 1}}}"#)?)
                .is_err()
        );
        assert!(patch(r#"{"accounts": {"111111111111": {"quota": 1}}}"#).is_err());
        Ok(())
    }

    #[test]
    fn role_knobs_replace_and_reject_what_is_not_a_role_arn() -> TestResult {
        let mut config = SimConfig::default();
        let role = "arn:aws:iam::222222222222:role/connect";
        config.apply(patch(&format!(
            r#"{{"refuseAssumeRole": ["{role}"], "roleExternalIds": {{"{role}": "ext-1"}}}}"#
        ))?)?;
        assert_eq!(config.refuse_assume_role, [role]);
        assert_eq!(config.role_external_ids[role], "ext-1");
        let before = config.clone();
        for bad in [
            r#"{"refuseAssumeRole": ["arn:aws:iam::2222:role/x"]}"#,
            r#"{"refuseAssumeRole": ["arn:aws:iam::222222222222:user/x"]}"#,
            r#"{"roleExternalIds": {"arn:aws:iam::222222222222:role/x": "a"}}"#,
            r#"{"rateLimits": {"AssumeRole": 1}}"#,
        ] {
            assert!(config.apply(patch(bad)?).is_err(), "{bad} was accepted");
        }
        assert_eq!(config, before);
        config.apply(patch(r#"{"refuseAssumeRole": [], "roleExternalIds": {}}"#)?)?;
        assert!(config.refuse_assume_role.is_empty());
        assert!(config.role_external_ids.is_empty());
        // STS operations are faulted only when named.
        config.apply(patch(r#"{"faults": {"operations": []}}"#)?)?;
        assert!(!config.faults.applies_to(Operation::AssumeRole));
        assert!(config.faults.applies_to(Operation::CreateInstance));
        config.apply(patch(r#"{"faults": {"operations": ["AssumeRole"]}}"#)?)?;
        assert!(config.faults.applies_to(Operation::AssumeRole));
        assert!(!config.faults.applies_to(Operation::GetCallerIdentity));
        Ok(())
    }

    #[test]
    fn null_pattern_clears_and_absent_pattern_keeps() -> TestResult {
        let mut config = SimConfig {
            fail_creation_alias_pattern: Some("^fail".into()),
            ..SimConfig::default()
        };
        config.apply(patch("{}")?)?;
        assert_eq!(config.fail_creation_alias_pattern.as_deref(), Some("^fail"));
        config.apply(patch(r#"{"failCreationAliasPattern": null}"#)?)?;
        assert_eq!(config.fail_creation_alias_pattern, None);
        Ok(())
    }
}
