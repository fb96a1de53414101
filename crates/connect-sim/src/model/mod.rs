//! One simulated account in one region: instances, their lifecycle, ClientToken records and
//! quotas. The service layer keeps one [`Model`] per account and region.
//!
//! Everything here is synchronous and works on explicit points in time, so the HTTP layer
//! holds one lock for the duration of an operation and the lifecycle is advanced lazily
//! (no background tasks: an instance becomes ACTIVE when someone looks after its delay).
//!
//! Split by API area: instances and their lifecycle here, attributes and tags in
//! [`attributes`], storage configurations in
//! [`storage`], the other associations (origins, Lambda functions, Lex V2 bots, security
//! keys) in [`associations`]; all of them are methods of the one [`Model`], whose state
//! (instances, token records, counters) they share. Request validation is apart, in
//! `validate.rs`.

pub(crate) mod associations;
mod attributes;
pub(crate) mod storage;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use regex::Regex;
use serde_json::{Value, json};

use super::config::SimConfig;
use super::errors::ApiError;
use super::validate::{
    IDENTITY_MANAGEMENT_TYPES, decode_token, encode_token, parse_max_results, validate_alias,
    validate_client_token, validate_create, validate_tags,
};

/// Every `InstanceAttributeType` the Connect API knows, in the order `ListInstanceAttributes`
/// returns them. All of them are boolean-valued (`"true"` / `"false"`).
pub(crate) const ATTRIBUTE_TYPES: [&str; 14] = [
    "INBOUND_CALLS",
    "OUTBOUND_CALLS",
    "CONTACTFLOW_LOGS",
    "CONTACT_LENS",
    "AUTO_RESOLVE_BEST_VOICES",
    "USE_CUSTOM_TTS_VOICES",
    "EARLY_MEDIA",
    "MULTI_PARTY_CONFERENCE",
    "HIGH_VOLUME_OUTBOUND",
    "ENHANCED_CONTACT_MONITORING",
    "ENHANCED_CHAT_MONITORING",
    "MULTI_PARTY_CHAT_CONFERENCE",
    "MESSAGE_STREAMING",
    "AUTO_MUTE_AGENT_ON_HOLD",
];

/// Page sizes AWS allows (and uses when `maxResults` is absent).
pub(crate) const LIST_INSTANCES_MAX_RESULTS: usize = 10;
pub(crate) const LIST_INSTANCE_ATTRIBUTES_MAX_RESULTS: usize = 7;

/// The message AWS returns when the 30-day create/delete attempt limit is reached.
pub(crate) const LIFECYCLE_LIMIT_MESSAGE: &str = "Your account has been flagged for an excessive number of creation and deletion attempts. \
     Wait until the 30-day period has passed or contact AWS Support to have the limit reviewed.";

/// Lifecycle state of an instance, as `InstanceStatus` on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InstanceStatus {
    CreationInProgress,
    Active,
    CreationFailed,
}

impl InstanceStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::CreationInProgress => "CREATION_IN_PROGRESS",
            Self::Active => "ACTIVE",
            Self::CreationFailed => "CREATION_FAILED",
        }
    }
}

/// One simulated Amazon Connect instance.
#[derive(Clone, Debug)]
pub(crate) struct Instance {
    /// Creation order, used for stable listing and pagination tokens.
    seq: u64,
    pub(crate) id: String,
    pub(crate) arn: String,
    account_id: String,
    region: String,
    pub(crate) alias: String,
    identity_management_type: String,
    /// Epoch seconds (with milliseconds) of creation.
    created_time: f64,
    service_role: String,
    access_url: String,
    pub(crate) status: InstanceStatus,
    status_reason: Option<String>,
    /// When CREATION_IN_PROGRESS ends.
    settles_at: Instant,
    /// Whether creation ends CREATION_FAILED rather than ACTIVE.
    fails: bool,
    /// Eventual consistency: until this point lookups and listings do not see the instance
    /// (`visibilityDelayMs` in force when it was created). `None` once visible.
    hidden_until: Option<Instant>,
    /// When creation ended CREATION_FAILED (the end of its creation delay).
    failed_at: Option<Instant>,
    /// Set once DeleteInstance was accepted: the instance vanishes at this point.
    vanishes_at: Option<Instant>,
    attributes: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
    /// Storage configurations, in association order.
    storage: Vec<storage::StorageAssociation>,
    /// Approved origins, Lambda functions, Lex V2 bots, security keys.
    associations: associations::Associations,
}

impl Instance {
    fn inbound_calls_enabled(&self) -> bool {
        self.attributes
            .get("INBOUND_CALLS")
            .is_some_and(|v| v == "true")
    }

    fn outbound_calls_enabled(&self) -> bool {
        self.attributes
            .get("OUTBOUND_CALLS")
            .is_some_and(|v| v == "true")
    }

    /// Whether the API sees it yet (see `visibilityDelayMs`).
    pub(crate) fn visible(&self) -> bool {
        self.hidden_until.is_none()
    }

    /// The `Instance` structure of DescribeInstance.
    pub(crate) fn describe_json(&self) -> Value {
        let mut value = self.summary_json();
        if let Value::Object(map) = &mut value {
            if let Some(reason) = &self.status_reason {
                map.insert("StatusReason".into(), json!({ "Message": reason }));
            }
            map.insert("Tags".into(), json!(self.tags));
        }
        value
    }

    /// The `InstanceSummary` structure of ListInstances.
    pub(crate) fn summary_json(&self) -> Value {
        json!({
            "Id": self.id,
            "Arn": self.arn,
            "IdentityManagementType": self.identity_management_type,
            "InstanceAlias": self.alias,
            "CreatedTime": self.created_time,
            "ServiceRole": self.service_role,
            "InstanceStatus": self.status.as_str(),
            "InboundCallsEnabled": self.inbound_calls_enabled(),
            "OutboundCallsEnabled": self.outbound_calls_enabled(),
            "InstanceAccessUrl": self.access_url,
        })
    }

    /// The inspection view served by `GET /_sim/instances` (camelCase keys).
    pub(crate) fn inspection_json(&self) -> Value {
        json!({
            "id": self.id,
            "arn": self.arn,
            "accountId": self.account_id,
            "region": self.region,
            "alias": self.alias,
            "identityManagementType": self.identity_management_type,
            "status": self.status.as_str(),
            "statusReason": self.status_reason,
            "inboundCallsEnabled": self.inbound_calls_enabled(),
            "outboundCallsEnabled": self.outbound_calls_enabled(),
            "attributes": self.attributes,
            "tags": self.tags,
            "createdTime": self.created_time,
            "accessUrl": self.access_url,
            "deleting": self.vanishes_at.is_some(),
            "visible": self.visible(),
            "storageConfigs": self.storage.iter().map(|a| json!({
                "resourceType": a.resource_type,
                "storageConfig": a.config,
            })).collect::<Vec<_>>(),
            "approvedOrigins": self.associations.origins,
            "lambdaFunctions": self.associations.lambda_functions,
            "lexV2Bots": self.associations.lex_v2_bots,
            "securityKeys": self.associations.security_keys,
        })
    }
}

/// Parsed body of CreateInstance.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CreateInstanceRequest {
    pub(crate) client_token: Option<String>,
    pub(crate) identity_management_type: Option<String>,
    pub(crate) instance_alias: Option<String>,
    pub(crate) directory_id: Option<String>,
    pub(crate) inbound_calls_enabled: Option<bool>,
    pub(crate) outbound_calls_enabled: Option<bool>,
    pub(crate) tags: Option<BTreeMap<String, String>>,
}

/// What an accepted Connect operation answers, plus what the call log needs to know.
#[derive(Debug)]
pub(crate) struct Reply {
    /// JSON body; `None` for operations with an empty output.
    pub(crate) body: Option<Value>,
    /// The instance the call concerned, when known.
    pub(crate) instance_id: Option<String>,
    /// True when a ClientToken replay answered without doing anything new.
    pub(crate) replay: bool,
}

impl Reply {
    fn new(body: Option<Value>, instance_id: Option<String>) -> Self {
        Self {
            body,
            instance_id,
            replay: false,
        }
    }
}

/// What a CreateInstance ClientToken was first used for.
#[derive(Clone, Debug)]
struct CreateTokenRecord {
    id: String,
    arn: String,
    alias: String,
    identity_management_type: String,
}

/// What an UpdateInstanceAttribute ClientToken was first used for.
#[derive(Clone, Debug, PartialEq, Eq)]
struct UpdateTokenRecord {
    instance_id: String,
    attribute_type: String,
    value: String,
}

/// What a ClientToken of a configuration call (Associate / Update / Disassociate) was first
/// used for.
#[derive(Clone, Debug)]
struct ConfigTokenRecord {
    operation: &'static str,
    instance_id: String,
    /// The request's parameters, canonically.
    fingerprint: String,
    /// The first answer, returned again to a replay.
    answer: Option<Value>,
}

/// The simulated account in one region.
#[derive(Debug)]
pub(crate) struct Model {
    account_id: String,
    region: String,
    instances: Vec<Instance>,
    next_seq: u64,
    create_tokens: HashMap<String, CreateTokenRecord>,
    delete_tokens: HashMap<String, String>,
    update_tokens: HashMap<String, UpdateTokenRecord>,
    config_tokens: HashMap<String, ConfigTokenRecord>,
    lifecycle_attempts: u64,
    rng: fastrand::Rng,
}

/// Settings a single operation needs from the configuration.
pub(crate) struct Settings<'a> {
    pub(crate) config: &'a SimConfig,
    pub(crate) fail_alias: Option<&'a Regex>,
    /// `missingResourcePattern`: referenced resources that do not exist.
    pub(crate) missing_resource: Option<&'a Regex>,
    /// The instance quota of this account (the default or its exception).
    pub(crate) instance_quota: u32,
    /// The 30-day attempt limit of this account (the default or its exception).
    pub(crate) lifecycle_attempt_limit: u32,
    /// Lower-cased aliases of the instances of other accounts and regions: aliases are
    /// unique across AWS.
    pub(crate) aliases_elsewhere: HashSet<String>,
}

impl Settings<'_> {
    /// Refuses a configuration that names a resource matching `missingResourcePattern`, as
    /// AWS refuses a bucket, stream, key, function or bot that does not exist.
    pub(crate) fn check_referenced(&self, names: &[&str]) -> Result<(), ApiError> {
        let Some(pattern) = self.missing_resource else {
            return Ok(());
        };
        match names.iter().find(|name| pattern.is_match(name)) {
            Some(name) => Err(ApiError::resource_not_found(format!(
                "The resource {name} does not exist or cannot be reached by Amazon Connect."
            ))),
            None => Ok(()),
        }
    }
}

impl<'a> Settings<'a> {
    /// The defaults of `config`, with no other accounts.
    #[cfg(test)]
    pub(crate) fn new(config: &'a SimConfig, fail_alias: Option<&'a Regex>) -> Self {
        Self {
            config,
            fail_alias,
            missing_resource: None,
            instance_quota: config.instance_quota,
            lifecycle_attempt_limit: config.lifecycle_attempt_limit,
            aliases_elsewhere: HashSet::new(),
        }
    }
}

/// A random version-4 UUID, as Connect uses for instance ids, from a (seedable) generator.
pub(crate) fn random_uuid(rng: &mut fastrand::Rng) -> String {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

impl Model {
    pub(crate) fn new(account_id: &str, region: &str, rng: fastrand::Rng) -> Self {
        Self {
            account_id: account_id.to_owned(),
            region: region.to_owned(),
            instances: Vec::new(),
            next_seq: 1,
            create_tokens: HashMap::new(),
            delete_tokens: HashMap::new(),
            update_tokens: HashMap::new(),
            config_tokens: HashMap::new(),
            lifecycle_attempts: 0,
            rng,
        }
    }

    pub(crate) fn lifecycle_attempts(&self) -> u64 {
        self.lifecycle_attempts
    }

    pub(crate) fn instance_count(&self) -> usize {
        self.instances.len()
    }

    pub(crate) fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// Moves every instance whose delay has passed to its next state: creation ends
    /// ACTIVE or CREATION_FAILED, a new instance becomes visible after the visibility delay,
    /// accepted deletions make the instance vanish, and so does a CREATION_FAILED instance
    /// once `failed_instance_retention` (as configured now) has passed since it failed.
    pub(crate) fn advance(&mut self, config: &SimConfig, now: Instant) {
        for instance in &mut self.instances {
            if instance.hidden_until.is_some_and(|until| now >= until) {
                instance.hidden_until = None;
            }
            if instance.status == InstanceStatus::CreationInProgress && now >= instance.settles_at {
                if instance.fails {
                    instance.status = InstanceStatus::CreationFailed;
                    instance.failed_at = Some(instance.settles_at);
                    instance.status_reason = Some(format!(
                        "Instance creation failed: the Amazon Connect simulator was configured to fail \
                         aliases matching its failCreationAliasPattern ('{}').",
                        instance.alias
                    ));
                } else {
                    instance.status = InstanceStatus::Active;
                }
            }
        }
        let retention = config.failed_instance_retention;
        self.instances.retain(|instance| {
            let deleted = instance.vanishes_at.is_some_and(|at| now >= at);
            let expired = retention
                .zip(instance.failed_at)
                .is_some_and(|(keep, failed)| now >= failed + keep);
            !deleted && !expired
        });
    }

    /// A random version-4 UUID from the model's own (seedable) generator.
    fn uuid(&mut self) -> String {
        random_uuid(&mut self.rng)
    }

    /// The instance with this id as the API sees it: not while it is still invisible.
    fn find(&self, id: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.id == id && i.visible())
    }

    fn find_mut(&mut self, id: &str) -> Option<&mut Instance> {
        self.instances
            .iter_mut()
            .find(|i| i.id == id && i.visible())
    }

    /// The instance a configuration call acts on: it must be visible and ACTIVE.
    fn configurable(&self, id: &str) -> Result<&Instance, ApiError> {
        let instance = self
            .find(id)
            .ok_or_else(|| ApiError::instance_not_found(id))?;
        if instance.status != InstanceStatus::Active || instance.vanishes_at.is_some() {
            let status = if instance.vanishes_at.is_some() {
                "being deleted"
            } else {
                instance.status.as_str()
            };
            return Err(ApiError::invalid_request(format!(
                "Instance {id} is not ACTIVE ({status}); its configuration cannot be read or changed."
            )));
        }
        Ok(instance)
    }

    fn configurable_mut(&mut self, id: &str) -> Result<&mut Instance, ApiError> {
        self.configurable(id)?;
        self.find_mut(id)
            .ok_or_else(|| ApiError::instance_not_found(id))
    }

    /// A replay of a configuration call: `Some` with the first answer when `token` was used
    /// for the same request before, an error when it was used for a different one.
    fn replayed(
        &self,
        token: Option<&str>,
        operation: &'static str,
        instance_id: &str,
        fingerprint: &str,
    ) -> Result<Option<Reply>, ApiError> {
        let Some(token) = token else {
            return Ok(None);
        };
        validate_client_token(token)?;
        let Some(previous) = self.config_tokens.get(token) else {
            return Ok(None);
        };
        if previous.operation != operation
            || previous.instance_id != instance_id
            || previous.fingerprint != fingerprint
        {
            return Err(ApiError::invalid_request(format!(
                "ClientToken {token} was already used for a {} request with different parameters.",
                previous.operation
            )));
        }
        Ok(Some(Reply {
            body: previous.answer.clone(),
            instance_id: Some(instance_id.to_owned()),
            replay: true,
        }))
    }

    /// Records what `token` was used for once the call took effect.
    fn remember(
        &mut self,
        token: Option<&str>,
        operation: &'static str,
        instance_id: &str,
        fingerprint: String,
        answer: Option<Value>,
    ) {
        if let Some(token) = token {
            self.config_tokens.insert(
                token.to_owned(),
                ConfigTokenRecord {
                    operation,
                    instance_id: instance_id.to_owned(),
                    fingerprint,
                    answer,
                },
            );
        }
    }

    /// An association id as Connect makes them: 64 lower-case hex digits.
    fn association_id(&mut self) -> String {
        (0..32)
            .map(|_| format!("{:02x}", self.rng.u8(..)))
            .collect()
    }

    /// Every existing instance holds its alias, visible or not, in whichever account and
    /// region.
    fn alias_in_use(&self, settings: &Settings<'_>, alias: &str) -> bool {
        self.instances
            .iter()
            .any(|i| i.alias.eq_ignore_ascii_case(alias))
            || settings
                .aliases_elsewhere
                .contains(&alias.to_ascii_lowercase())
    }

    fn insert_instance(
        &mut self,
        settings: &Settings<'_>,
        spec: NewInstance,
        hidden_until: Option<Instant>,
        now: Instant,
    ) -> Instance {
        let NewInstance {
            alias,
            identity_management_type,
            inbound,
            outbound,
            tags,
        } = spec;
        let config = settings.config;
        let id = self.uuid();
        let role_suffix: String = (0..16).map(|_| self.rng.alphanumeric()).collect();
        let mut attributes: BTreeMap<String, String> = ATTRIBUTE_TYPES
            .iter()
            .map(|name| ((*name).to_owned(), "false".to_owned()))
            .collect();
        attributes.insert("INBOUND_CALLS".into(), inbound.to_string());
        attributes.insert("OUTBOUND_CALLS".into(), outbound.to_string());
        let fails = settings.fail_alias.is_some_and(|re| re.is_match(&alias));
        let instance = Instance {
            seq: self.next_seq,
            arn: format!(
                "arn:aws:connect:{}:{}:instance/{id}",
                self.region, self.account_id
            ),
            account_id: self.account_id.clone(),
            region: self.region.clone(),
            access_url: format!("https://{alias}.my.connect.aws"),
            service_role: format!(
                "arn:aws:iam::{}:role/aws-service-role/connect.amazonaws.com/AWSServiceRoleForAmazonConnect_{role_suffix}",
                self.account_id
            ),
            id,
            alias,
            identity_management_type,
            created_time: epoch_seconds(SystemTime::now()),
            status: InstanceStatus::CreationInProgress,
            status_reason: None,
            settles_at: now + config.creation_delay,
            fails,
            hidden_until,
            failed_at: None,
            vanishes_at: None,
            attributes,
            tags,
            storage: Vec::new(),
            associations: associations::Associations::default(),
        };
        self.next_seq += 1;
        self.instances.push(instance.clone());
        instance
    }

    /// CreateInstance.
    pub(crate) fn create_instance(
        &mut self,
        settings: &Settings<'_>,
        request: CreateInstanceRequest,
        now: Instant,
    ) -> Result<Reply, ApiError> {
        let valid = validate_create(request)?;
        if let Some(token) = &valid.client_token
            && let Some(record) = self.create_tokens.get(token)
        {
            if record.alias != valid.alias
                || record.identity_management_type != valid.identity_management_type
            {
                return Err(ApiError::invalid_request(format!(
                    "ClientToken {token} was already used for a CreateInstance request with different parameters."
                )));
            }
            return Ok(Reply {
                body: Some(json!({ "Id": record.id, "Arn": record.arn })),
                instance_id: Some(record.id.clone()),
                replay: true,
            });
        }
        if self.alias_in_use(settings, &valid.alias) {
            return Err(ApiError::invalid_request(format!(
                "The alias '{}' is already in use. Instance aliases must be unique across AWS; choose a different alias.",
                valid.alias
            )));
        }
        if self.lifecycle_attempts >= u64::from(settings.lifecycle_attempt_limit) {
            return Err(ApiError::service_quota_exceeded(LIFECYCLE_LIMIT_MESSAGE));
        }
        let quota = settings.instance_quota;
        if self.instances.len() >= quota as usize {
            return Err(ApiError::service_quota_exceeded(format!(
                "The maximum number of Amazon Connect instances for this account has been reached \
                 (instances per account quota: {quota}). Delete an instance or request a quota increase."
            )));
        }
        self.lifecycle_attempts += 1;
        let spec = NewInstance {
            alias: valid.alias,
            identity_management_type: valid.identity_management_type.clone(),
            inbound: valid.inbound,
            outbound: valid.outbound,
            tags: valid.tags,
        };
        let visibility_delay = settings.config.visibility_delay;
        let hidden_until = (!visibility_delay.is_zero()).then(|| now + visibility_delay);
        let instance = self.insert_instance(settings, spec, hidden_until, now);
        if let Some(token) = valid.client_token {
            self.create_tokens.insert(
                token,
                CreateTokenRecord {
                    id: instance.id.clone(),
                    arn: instance.arn.clone(),
                    alias: instance.alias.clone(),
                    identity_management_type: valid.identity_management_type,
                },
            );
        }
        // A zero delay settles at once, so the very next read already sees the outcome.
        self.advance(settings.config, now);
        Ok(Reply::new(
            Some(json!({ "Id": instance.id, "Arn": instance.arn })),
            Some(instance.id),
        ))
    }

    /// Inserts an ACTIVE instance directly (one the operator did not create), bypassing
    /// quotas and the attempt counter. Aliases stay unique.
    pub(crate) fn insert_foreign(
        &mut self,
        settings: &Settings<'_>,
        spec: NewInstance,
        now: Instant,
    ) -> Result<Instance, String> {
        validate_alias(&spec.alias)?;
        if !IDENTITY_MANAGEMENT_TYPES.contains(&spec.identity_management_type.as_str()) {
            return Err(format!(
                "identityManagementType must be one of {IDENTITY_MANAGEMENT_TYPES:?}"
            ));
        }
        validate_tags(&spec.tags, spec.tags.len())?;
        if self.alias_in_use(settings, &spec.alias) {
            return Err(format!("The alias '{}' is already in use.", spec.alias));
        }
        let mut instance = self.insert_instance(settings, spec, None, now);
        if let Some(stored) = self.find_mut(&instance.id) {
            stored.status = InstanceStatus::Active;
            stored.fails = false;
            stored.settles_at = now;
            instance = stored.clone();
        }
        Ok(instance)
    }

    /// DescribeInstance.
    pub(crate) fn describe_instance(&self, id: &str) -> Result<Reply, ApiError> {
        let instance = self
            .find(id)
            .ok_or_else(|| ApiError::instance_not_found(id))?;
        Ok(Reply::new(
            Some(json!({ "Instance": instance.describe_json() })),
            Some(instance.id.clone()),
        ))
    }

    /// ListInstances.
    pub(crate) fn list_instances(
        &self,
        max_results: Option<&str>,
        next_token: Option<&str>,
    ) -> Result<Reply, ApiError> {
        let page_size = parse_max_results(max_results, LIST_INSTANCES_MAX_RESULTS)
            .map_err(ApiError::invalid_request)?;
        let after_seq = match next_token {
            None => 0,
            Some(token) => decode_token(token, "instances")
                .ok_or_else(|| ApiError::invalid_request("The NextToken is not valid."))?,
        };
        let remaining: Vec<&Instance> = self
            .instances
            .iter()
            .filter(|i| i.seq > after_seq && i.visible())
            .collect();
        let page: Vec<Value> = remaining
            .iter()
            .take(page_size)
            .map(|i| i.summary_json())
            .collect();
        let mut body = json!({ "InstanceSummaryList": page });
        if remaining.len() > page_size
            && let (Some(last), Value::Object(map)) = (remaining.get(page_size - 1), &mut body)
        {
            map.insert(
                "NextToken".into(),
                json!(encode_token(last.seq, "instances")),
            );
        }
        Ok(Reply::new(Some(body), None))
    }

    /// DeleteInstance.
    pub(crate) fn delete_instance(
        &mut self,
        settings: &Settings<'_>,
        id: &str,
        client_token: Option<&str>,
        now: Instant,
    ) -> Result<Reply, ApiError> {
        if let Some(token) = client_token {
            validate_client_token(token)?;
            if let Some(previous) = self.delete_tokens.get(token) {
                if previous != id {
                    return Err(ApiError::invalid_request(format!(
                        "ClientToken {token} was already used for a DeleteInstance request for a different instance."
                    )));
                }
                return Ok(Reply {
                    body: None,
                    instance_id: Some(id.to_owned()),
                    replay: true,
                });
            }
        }
        let Some(instance) = self.find(id) else {
            return Err(ApiError::instance_not_found(id));
        };
        // Not an accepted attempt, so not counted against the 30-day limit (AWS does not
        // document either way; refusing before anything happens is the likelier reading).
        if settings.config.refuse_delete_while_creating
            && instance.status == InstanceStatus::CreationInProgress
        {
            return Err(ApiError::invalid_request(format!(
                "Instance {id} is still being created (CREATION_IN_PROGRESS) and cannot be deleted \
                 until its creation has finished. Try again later."
            )));
        }
        if self.lifecycle_attempts >= u64::from(settings.lifecycle_attempt_limit) {
            return Err(ApiError::service_quota_exceeded(LIFECYCLE_LIMIT_MESSAGE));
        }
        self.lifecycle_attempts += 1;
        let vanish = now + settings.config.deletion_delay;
        if let Some(instance) = self.find_mut(id) {
            // A repeated delete (new token) counts as an attempt but does not postpone the end.
            let at = instance.vanishes_at.map_or(vanish, |at| at.min(vanish));
            instance.vanishes_at = Some(at);
        }
        if let Some(token) = client_token {
            self.delete_tokens.insert(token.to_owned(), id.to_owned());
        }
        self.advance(settings.config, now);
        Ok(Reply::new(None, Some(id.to_owned())))
    }
}

/// What a new instance is made of.
pub(crate) struct NewInstance {
    pub(crate) alias: String,
    pub(crate) identity_management_type: String,
    pub(crate) inbound: bool,
    pub(crate) outbound: bool,
    pub(crate) tags: BTreeMap<String, String>,
}

pub(crate) fn epoch_seconds(time: SystemTime) -> f64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    // Millisecond precision, like Connect's timestamps.
    (since.as_millis() as f64) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(config: &SimConfig) -> Settings<'_> {
        Settings::new(config, None)
    }

    fn new_model(seed: u64) -> Model {
        Model::new("123456789012", "us-east-1", fastrand::Rng::with_seed(seed))
    }

    fn request(alias: &str, token: Option<&str>) -> CreateInstanceRequest {
        CreateInstanceRequest {
            client_token: token.map(str::to_owned),
            identity_management_type: Some("CONNECT_MANAGED".into()),
            instance_alias: Some(alias.into()),
            directory_id: None,
            inbound_calls_enabled: Some(true),
            outbound_calls_enabled: Some(false),
            tags: None,
        }
    }

    #[test]
    fn creation_settles_after_delay_and_deletion_vanishes_after_delay() {
        let config = SimConfig {
            creation_delay: Duration::from_secs(2),
            deletion_delay: Duration::from_secs(1),
            ..SimConfig::default()
        };
        let mut model = new_model(1);
        let t0 = Instant::now();
        let reply = model.create_instance(&settings(&config), request("one", None), t0);
        let id = reply.ok().and_then(|r| r.instance_id).unwrap_or_default();
        assert_eq!(
            model.instances()[0].status,
            InstanceStatus::CreationInProgress
        );
        model.advance(&config, t0 + Duration::from_secs(2));
        assert_eq!(model.instances()[0].status, InstanceStatus::Active);
        let t1 = t0 + Duration::from_secs(3);
        assert!(
            model
                .delete_instance(&settings(&config), &id, Some("d"), t1)
                .is_ok()
        );
        model.advance(&config, t1 + Duration::from_millis(999));
        assert_eq!(model.instance_count(), 1);
        model.advance(&config, t1 + Duration::from_secs(1));
        assert_eq!(model.instance_count(), 0);
        assert_eq!(model.lifecycle_attempts(), 2);
    }

    fn error_code(result: Result<Reply, ApiError>) -> Option<&'static str> {
        result.err().map(|e| e.kind.code())
    }

    fn listed_ids(model: &Model) -> Vec<String> {
        let reply = model.list_instances(None, None).unwrap();
        let body = reply.body.unwrap();
        body["InstanceSummaryList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Id"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn a_new_instance_is_invisible_for_the_visibility_delay_but_exists() {
        let config = SimConfig {
            creation_delay: Duration::from_secs(1),
            visibility_delay: Duration::from_secs(5),
            ..SimConfig::default()
        };
        let settings = settings(&config);
        let mut model = new_model(3);
        let t0 = Instant::now();
        let id = model
            .create_instance(&settings, request("late", Some("tok")), t0)
            .unwrap()
            .instance_id
            .unwrap();
        let t1 = t0 + Duration::from_secs(2);
        model.advance(&config, t1);
        // Unknown to every lookup, as an id that does not exist...
        assert_eq!(
            error_code(model.describe_instance(&id)),
            Some("ResourceNotFoundException")
        );
        assert!(listed_ids(&model).is_empty());
        assert_eq!(
            error_code(model.delete_instance(&settings, &id, Some("del"), t1)),
            Some("ResourceNotFoundException")
        );
        assert_eq!(
            error_code(model.list_instance_attributes(&settings, &id, None, None)),
            Some("ResourceNotFoundException")
        );
        let arn = model.instances()[0].arn.clone();
        assert_eq!(
            error_code(model.list_tags_for_resource(&arn)),
            Some("ResourceNotFoundException")
        );
        // ...but it exists: a replay answers with it, it holds its alias and its quota slot,
        // and its lifecycle goes on.
        let replay = model
            .create_instance(&settings, request("late", Some("tok")), t1)
            .unwrap();
        assert!(replay.replay);
        assert_eq!(replay.instance_id.as_deref(), Some(id.as_str()));
        assert_eq!(
            error_code(model.create_instance(&settings, request("LATE", None), t1)),
            Some("InvalidRequestException")
        );
        assert_eq!(model.instance_count(), 1);
        assert_eq!(
            model.lifecycle_attempts(),
            1,
            "the refused delete did not count"
        );
        assert_eq!(model.instances()[0].status, InstanceStatus::Active);

        model.advance(&config, t0 + Duration::from_secs(5));
        assert!(model.describe_instance(&id).is_ok());
        assert_eq!(listed_ids(&model), std::slice::from_ref(&id));
        assert!(
            model
                .delete_instance(&settings, &id, Some("del"), t0 + Duration::from_secs(5))
                .is_ok()
        );
    }

    #[test]
    fn the_visibility_delay_applies_to_instances_created_while_it_is_set() {
        let mut config = SimConfig::default();
        let mut model = new_model(4);
        let t0 = Instant::now();
        let old = model
            .create_instance(&settings(&config), request("before", None), t0)
            .unwrap()
            .instance_id
            .unwrap();
        config.visibility_delay = Duration::from_secs(10);
        let new = model
            .create_instance(&settings(&config), request("after", None), t0)
            .unwrap()
            .instance_id
            .unwrap();
        model.advance(&config, t0 + Duration::from_secs(1));
        assert!(model.describe_instance(&old).is_ok());
        assert!(model.describe_instance(&new).is_err());
        // Turning the knob off later does not reveal it early: the delay was fixed at creation.
        config.visibility_delay = Duration::ZERO;
        model.advance(&config, t0 + Duration::from_secs(9));
        assert!(model.describe_instance(&new).is_err());
        model.advance(&config, t0 + Duration::from_secs(10));
        assert!(model.describe_instance(&new).is_ok());
    }

    #[test]
    fn deleting_while_creating_is_refused_when_configured_and_not_counted() {
        let config = SimConfig {
            creation_delay: Duration::from_secs(2),
            refuse_delete_while_creating: true,
            ..SimConfig::default()
        };
        let settings = settings(&config);
        let mut model = new_model(5);
        let t0 = Instant::now();
        let id = model
            .create_instance(&settings, request("busy", None), t0)
            .unwrap()
            .instance_id
            .unwrap();
        let refused = model
            .delete_instance(&settings, &id, Some("d1"), t0 + Duration::from_secs(1))
            .err()
            .unwrap();
        assert_eq!(refused.kind.code(), "InvalidRequestException");
        assert_eq!(refused.kind.status(), 400);
        assert!(
            refused.message.contains("still being created"),
            "{}",
            refused.message
        );
        assert_eq!(model.lifecycle_attempts(), 1, "only the create counted");
        assert!(model.instances()[0].vanishes_at.is_none());

        // The same token is not burnt: once ACTIVE it deletes.
        let t2 = t0 + Duration::from_secs(2);
        model.advance(&config, t2);
        let accepted = model
            .delete_instance(&settings, &id, Some("d1"), t2)
            .unwrap();
        assert!(!accepted.replay);
        assert_eq!(model.lifecycle_attempts(), 2);
    }

    #[test]
    fn deleting_while_creating_is_accepted_by_default() {
        let config = SimConfig::default();
        let mut model = new_model(6);
        let t0 = Instant::now();
        let id = model
            .create_instance(&settings(&config), request("busy", None), t0)
            .unwrap()
            .instance_id
            .unwrap();
        assert_eq!(
            model.instances()[0].status,
            InstanceStatus::CreationInProgress
        );
        assert!(
            model
                .delete_instance(&settings(&config), &id, None, t0)
                .is_ok()
        );
        assert_eq!(model.lifecycle_attempts(), 2);
    }

    #[test]
    fn a_failed_instance_vanishes_after_the_retention_counted_from_its_failure() {
        let mut config = SimConfig {
            creation_delay: Duration::from_secs(2),
            failed_instance_retention: Some(Duration::from_secs(10)),
            ..SimConfig::default()
        };
        let fail = Regex::new("^doomed").unwrap();
        let mut model = new_model(7);
        let t0 = Instant::now();
        let failing = {
            let settings = Settings::new(&config, Some(&fail));
            model
                .create_instance(&settings, request("doomed-1", None), t0)
                .unwrap()
                .instance_id
                .unwrap()
        };
        let fine = model
            .create_instance(&settings(&config), request("fine-1", None), t0)
            .unwrap()
            .instance_id
            .unwrap();
        // Failed at t0 + 2 s, observed only at t0 + 5 s: the retention runs from the failure.
        model.advance(&config, t0 + Duration::from_secs(5));
        assert_eq!(
            model.find(&failing).unwrap().status,
            InstanceStatus::CreationFailed
        );
        model.advance(&config, t0 + Duration::from_millis(11_999));
        assert!(model.describe_instance(&failing).is_ok());
        model.advance(&config, t0 + Duration::from_secs(12));
        assert_eq!(
            error_code(model.describe_instance(&failing)),
            Some("ResourceNotFoundException")
        );
        assert!(
            model.describe_instance(&fine).is_ok(),
            "ACTIVE instances stay"
        );
        assert_eq!(model.instance_count(), 1, "the quota slot is free again");
        assert_eq!(
            model.lifecycle_attempts(),
            2,
            "AWS's clean-up is no attempt"
        );
        // Its alias is free again.
        assert!(
            model
                .create_instance(
                    &settings(&config),
                    request("doomed-1", None),
                    t0 + Duration::from_secs(12)
                )
                .is_ok()
        );

        // Without retention (the default) a failed instance stays.
        config.failed_instance_retention = None;
        let mut model = new_model(8);
        let settings = Settings::new(&config, Some(&fail));
        let kept = model
            .create_instance(&settings, request("doomed-2", None), t0)
            .unwrap()
            .instance_id
            .unwrap();
        model.advance(&config, t0 + Duration::from_secs(86_400 * 30));
        assert!(model.describe_instance(&kept).is_ok());
    }

    #[test]
    fn extra_attribute_types_are_listed_after_the_known_ones_and_paged() {
        let config = SimConfig {
            extra_attribute_types: vec!["FUTURE_ONE".into(), "FUTURE_TWO".into()],
            ..SimConfig::default()
        };
        let settings = settings(&config);
        let mut model = new_model(9);
        let t0 = Instant::now();
        let id = model
            .create_instance(&settings, request("attrs", None), t0)
            .unwrap()
            .instance_id
            .unwrap();
        let mut listed = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let body = model
                .list_instance_attributes(&settings, &id, None, token.as_deref())
                .unwrap()
                .body
                .unwrap();
            for attribute in body["Attributes"].as_array().unwrap() {
                listed.push((
                    attribute["AttributeType"].as_str().unwrap().to_owned(),
                    attribute["Value"].as_str().unwrap().to_owned(),
                ));
            }
            match body["NextToken"].as_str() {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(listed.len(), 16);
        assert_eq!(
            listed[14..],
            [
                ("FUTURE_ONE".to_owned(), "false".to_owned()),
                ("FUTURE_TWO".to_owned(), "false".to_owned())
            ]
        );
        let body = model
            .describe_instance_attribute(&settings, &id, "FUTURE_TWO")
            .unwrap()
            .body
            .unwrap();
        assert_eq!(body["Attribute"]["Value"], "false");
        let plain = SimConfig::default();
        assert!(
            model
                .describe_instance_attribute(&self::settings(&plain), &id, "FUTURE_TWO")
                .is_err(),
            "unknown without the knob"
        );
    }

    #[test]
    fn uuids_are_version_four() {
        let mut model = new_model(7);
        let id = model.uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert!(matches!(id.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
    }
}
