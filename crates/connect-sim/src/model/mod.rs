//! One simulated account in one region: its instances and everything configured on them,
//! ClientToken records and quotas. The service layer keeps one [`Model`] per account and
//! region.
//!
//! Everything here is synchronous and works on explicit points in time, so the HTTP layer
//! holds one lock for the duration of an operation and the lifecycle is advanced lazily
//! (no background tasks: an instance becomes ACTIVE when someone looks after its delay).
//!
//! Split by API area, all of them methods of the one [`Model`] and sharing its state
//! (instances, token records, counters): instances and their lifecycle in [`instances`],
//! attributes and tags in [`attributes`], storage configurations in [`storage`], the other
//! associations (approved origins, Lambda functions, Lex V2 bots, security keys) in
//! [`associations`]. This file holds that state and what the areas have in common: looking
//! an instance up, the ClientToken replay of configuration calls, ids and timestamps.
//! Request validation is apart, in `validate.rs`.

pub(crate) mod associations;
mod attributes;
mod instances;
pub(crate) mod storage;
#[cfg(test)]
mod testing;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use regex::Regex;
use serde::Serialize;
use serde_json::{Value, json};

use super::config::SimConfig;
use super::errors::ApiError;
use super::validate::{decode_token, encode_token, parse_max_results, validate_client_token};

pub(crate) use attributes::ATTRIBUTE_TYPES;
use attributes::UpdateTokenRecord;
use instances::CreateTokenRecord;
pub(crate) use instances::{CreateInstanceRequest, NewInstance};

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
    pub(crate) identity_management_type: String,
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
    /// For a replica made by ReplicateInstance: the source instance's region.
    pub(crate) replica_of: Option<String>,
}

impl Instance {
    /// Whether the API sees it yet (see `visibilityDelayMs`).
    pub(crate) fn visible(&self) -> bool {
        self.hidden_until.is_none()
    }

    /// Whether DeleteInstance was accepted for it.
    pub(crate) fn deleting(&self) -> bool {
        self.vanishes_at.is_some()
    }

    /// Why creation failed, when it did.
    pub(crate) fn status_reason(&self) -> Option<&str> {
        self.status_reason.as_deref()
    }
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

    /// How many of the instances are replicas of another region's instance.
    pub(crate) fn replica_count(&self) -> usize {
        self.instances
            .iter()
            .filter(|i| i.replica_of.is_some())
            .count()
    }

    pub(crate) fn instances(&self) -> &[Instance] {
        &self.instances
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
}

/// The answer of a List call: one page of `items` after `next_token` as `member`, at most
/// `max_results` (default and maximum `limit`), and the `NextToken` of the next page if there
/// is one. `kind` tells the tokens of one list from those of another.
pub(crate) fn list_page<T: Serialize>(
    member: &str,
    items: &[T],
    max_results: Option<&str>,
    next_token: Option<&str>,
    limit: usize,
    kind: &str,
) -> Result<Value, ApiError> {
    let page_size = parse_max_results(max_results, limit).map_err(ApiError::invalid_parameter)?;
    let start = match next_token {
        None => 0,
        Some(token) => decode_token(token, kind)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| ApiError::invalid_parameter("The NextToken is not valid."))?,
    };
    let page: Vec<Value> = items
        .iter()
        .skip(start)
        .take(page_size)
        .map(|item| serde_json::to_value(item).unwrap_or(Value::Null))
        .collect();
    let mut body = json!({ member: page });
    let end = start + page_size;
    if end < items.len()
        && let Value::Object(map) = &mut body
    {
        map.insert("NextToken".into(), json!(encode_token(end as u64, kind)));
    }
    Ok(body)
}

pub(crate) fn epoch_seconds(time: SystemTime) -> f64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    // Millisecond precision, like Connect's timestamps.
    (since.as_millis() as f64) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::testing::new_model;

    #[test]
    fn uuids_are_version_four() {
        let mut model = new_model(7);
        let id = model.uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert!(matches!(id.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
    }
}
