//! Instances and their lifecycle: Create / Describe / List / DeleteInstance, the delays
//! that move an instance from CREATION_IN_PROGRESS to ACTIVE or CREATION_FAILED and make a
//! deleted (or, when configured, a failed) instance vanish, instance quotas and the 30-day
//! attempt limit, unique aliases, and the JSON shapes an instance is answered in.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use serde_json::{Value, json};

use super::{
    ATTRIBUTE_TYPES, Instance, InstanceStatus, Model, Reply, Settings, associations, epoch_seconds,
};
use crate::config::SimConfig;
use crate::errors::ApiError;
use crate::validate::{
    IDENTITY_MANAGEMENT_TYPES, decode_token, encode_token, parse_max_results, validate_alias,
    validate_client_token, validate_create, validate_tags,
};

#[cfg(test)]
mod tests;

/// Page size AWS allows (and uses when `maxResults` is absent).
pub(crate) const LIST_INSTANCES_MAX_RESULTS: usize = 10;

/// The message AWS returns when the 30-day create/delete attempt limit is reached.
pub(crate) const LIFECYCLE_LIMIT_MESSAGE: &str = "Your account has been flagged for an excessive number of creation and deletion attempts. \
     Wait until the 30-day period has passed or contact AWS Support to have the limit reviewed.";

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

/// What a new instance is made of.
pub(crate) struct NewInstance {
    pub(crate) alias: String,
    pub(crate) identity_management_type: String,
    pub(crate) inbound: bool,
    pub(crate) outbound: bool,
    pub(crate) tags: BTreeMap<String, String>,
}

/// What a CreateInstance ClientToken was first used for.
#[derive(Clone, Debug)]
pub(super) struct CreateTokenRecord {
    id: String,
    arn: String,
    alias: String,
    identity_management_type: String,
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
            "replicaOf": self.replica_of,
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

impl Model {
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
                    instance.status_reason = Some(if instance.replica_of.is_some() {
                        format!(
                            "Instance replication failed: the Amazon Connect simulator was configured to fail \
                             replica aliases matching its failReplicationAliasPattern ('{}').",
                            instance.alias
                        )
                    } else {
                        format!(
                            "Instance creation failed: the Amazon Connect simulator was configured to fail \
                         aliases matching its failCreationAliasPattern ('{}').",
                            instance.alias
                        )
                    });
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
            replica_of: None,
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

    /// The instance with this id as the API sees it (not while it is still invisible).
    pub(crate) fn instance(&self, id: &str) -> Option<&Instance> {
        self.find(id)
    }

    /// Refuses a new create (or replica) here when the 30-day attempt limit or the instance
    /// quota is reached.
    pub(crate) fn check_room(&self, settings: &Settings<'_>) -> Result<(), ApiError> {
        if self.lifecycle_attempts >= u64::from(settings.lifecycle_attempt_limit) {
            return Err(ApiError::service_quota_exceeded(LIFECYCLE_LIMIT_MESSAGE));
        }
        let quota = settings.instance_quota;
        if self.instances.len() >= quota as usize {
            return Err(ApiError::service_quota_exceeded(format!(
                "The maximum number of Amazon Connect instances for this account has been reached \
                 in {} (instances per account quota: {quota}).",
                self.region
            )));
        }
        Ok(())
    }

    /// Inserts the replica of `source` (another region's instance): the same id, this
    /// region's ARN, CREATION_IN_PROGRESS for `replicationDelay`, and one creation attempt
    /// counted here. `fails` ends it CREATION_FAILED.
    pub(crate) fn insert_replica(
        &mut self,
        settings: &Settings<'_>,
        source: &Instance,
        alias: String,
        fails: bool,
        now: Instant,
    ) -> Instance {
        let spec = NewInstance {
            alias,
            identity_management_type: source.identity_management_type.clone(),
            inbound: source.inbound_calls_enabled(),
            outbound: source.outbound_calls_enabled(),
            tags: source.tags.clone(),
        };
        self.lifecycle_attempts += 1;
        let mut instance = self.insert_instance(settings, spec, None, now);
        if let Some(stored) = self.instances.iter_mut().find(|i| i.id == instance.id) {
            stored.id = source.id.clone();
            stored.arn = format!(
                "arn:aws:connect:{}:{}:instance/{}",
                self.region, self.account_id, source.id
            );
            stored.replica_of = Some(source.region.clone());
            stored.fails = fails;
            stored.settles_at = now + settings.config.replication_delay;
            instance = stored.clone();
        }
        self.advance(settings.config, now);
        instance
    }

    /// Deletes an instance as a consequence of another deletion (a replica deleted with its
    /// source): counted as a deletion attempt here, without checking the limit.
    pub(crate) fn delete_with_source(&mut self, settings: &Settings<'_>, id: &str, now: Instant) {
        let config = settings.config;
        if let Some(instance) = self.instances.iter_mut().find(|i| i.id == id)
            && instance.vanishes_at.is_none()
        {
            instance.vanishes_at = Some(now + config.replica_deletion_delay);
            self.lifecycle_attempts += 1;
        }
        self.advance(config, now);
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

    /// Whether a DeleteInstance used `token` already.
    pub(crate) fn delete_token_used(&self, token: &str) -> bool {
        self.delete_tokens.contains_key(token)
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
        let delay = if instance.replica_of.is_some() {
            settings.config.replica_deletion_delay
        } else {
            settings.config.deletion_delay
        };
        if self.lifecycle_attempts >= u64::from(settings.lifecycle_attempt_limit) {
            return Err(ApiError::service_quota_exceeded(LIFECYCLE_LIMIT_MESSAGE));
        }
        self.lifecycle_attempts += 1;
        let vanish = now + delay;
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
