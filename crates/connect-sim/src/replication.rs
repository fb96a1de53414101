//! Global Resiliency: ReplicateInstance, the `ReplicationConfiguration` of DescribeInstance,
//! traffic distribution groups and their distributions, and what deleting a source or a
//! replica does.
//!
//! A replication spans two regions of one account, so it lives beside the per-region
//! models, in [`ReplicationState`] of the shared state: the replica itself is an instance of
//! the replica region's model (same id, that region's ARN, `replica_of` set), and the
//! replication's status is read from it (CREATION_IN_PROGRESS → IN_PROGRESS, ACTIVE →
//! COMPLETE, CREATION_FAILED → FAILED, being deleted → INSTANCE_REPLICA_DELETING). When
//! the replica has vanished, the replication and its traffic distribution groups go too.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{Value, json};

use crate::auth::Caller;
use crate::config::SourceDeleteWithReplica;
use crate::errors::{ApiError, ErrorKind};
use crate::model::{InstanceStatus, Reply, list_page, random_uuid};
use crate::service::Inner;
use crate::validate::{validate_alias, validate_client_token, validate_tags};

#[cfg(test)]
mod tests;

/// The region pairs AWS documents for Global Resiliency: source → replica.
pub(crate) const REGION_PAIRS: [(&str, &str); 5] = [
    ("us-east-1", "us-west-2"),
    ("us-west-2", "us-east-1"),
    ("eu-central-1", "eu-west-2"),
    ("eu-west-2", "eu-central-1"),
    ("ap-northeast-1", "ap-northeast-3"),
];

/// Whether AWS replicates from `source` to `replica`.
pub(crate) fn pair_allowed(source: &str, replica: &str) -> bool {
    REGION_PAIRS.contains(&(source, replica))
}

/// Page size of ListTrafficDistributionGroups (its maximum and default).
const LIST_GROUPS_MAX_RESULTS: usize = 10;

/// The name of the traffic distribution group ReplicateInstance creates.
pub(crate) const DEFAULT_GROUP_NAME: &str = "DefaultTrafficDistributionGroup";

/// One instance replicated to another region.
#[derive(Clone, Debug)]
pub(crate) struct Replication {
    pub(crate) account_id: String,
    pub(crate) instance_id: String,
    pub(crate) source_region: String,
    pub(crate) replica_region: String,
    pub(crate) source_alias: String,
    pub(crate) replica_alias: String,
}

/// The replication state as it shows in `ReplicationStatusSummary`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReplicationStatus {
    InProgress,
    Complete,
    Failed(String),
    Deleting,
}

impl ReplicationStatus {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Self::InProgress => "INSTANCE_REPLICATION_IN_PROGRESS",
            Self::Complete => "INSTANCE_REPLICATION_COMPLETE",
            Self::Failed(_) => "INSTANCE_REPLICATION_FAILED",
            Self::Deleting => "INSTANCE_REPLICA_DELETING",
        }
    }

    /// The `Status` of the replication's default traffic distribution group.
    fn default_group_status(&self) -> &'static str {
        match self {
            Self::InProgress => "CREATION_IN_PROGRESS",
            Self::Complete => "ACTIVE",
            Self::Failed(_) => "CREATION_FAILED",
            Self::Deleting => "PENDING_DELETION",
        }
    }

    fn reason(&self) -> String {
        match self {
            Self::InProgress => "The instance is being replicated.".into(),
            Self::Complete => "The instance was replicated.".into(),
            Self::Failed(reason) => reason.clone(),
            Self::Deleting => "The replica is being deleted.".into(),
        }
    }
}

/// A traffic distribution group: the default one of a replication or one made by
/// CreateTrafficDistributionGroup.
#[derive(Clone, Debug)]
pub(crate) struct TrafficGroup {
    pub(crate) id: String,
    pub(crate) arn: String,
    pub(crate) account_id: String,
    /// The source instance: the group's ARN is in its region.
    pub(crate) instance_id: String,
    pub(crate) instance_arn: String,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) is_default: bool,
    pub(crate) tags: std::collections::BTreeMap<String, String>,
    /// Region → percentage, source region first.
    pub(crate) telephony: Vec<(String, u8)>,
    pub(crate) agents: Vec<(String, u8)>,
    /// Region → sign-in enabled (only the default group has a sign-in distribution).
    pub(crate) sign_in: Vec<(String, bool)>,
}

/// What a ReplicateInstance ClientToken was first used for.
#[derive(Clone, Debug)]
struct ReplicateToken {
    instance_id: String,
    replica_region: String,
    replica_alias: String,
    answer: Value,
}

/// Replications, traffic distribution groups and their ClientTokens, for every account.
#[derive(Debug, Default)]
pub(crate) struct ReplicationState {
    pub(crate) replications: Vec<Replication>,
    pub(crate) groups: Vec<TrafficGroup>,
    /// (account, region, token) → the ReplicateInstance it was used for.
    replicate_tokens: HashMap<(String, String, String), ReplicateToken>,
    /// (account, region, token) → (request fingerprint, answer) of
    /// CreateTrafficDistributionGroup.
    group_tokens: HashMap<(String, String, String), (String, Value)>,
}

/// Body of ReplicateInstance.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ReplicateRequest {
    pub(crate) replica_region: Option<String>,
    pub(crate) client_token: Option<String>,
    pub(crate) replica_alias: Option<String>,
}

/// Body of CreateTrafficDistributionGroup.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CreateGroupRequest {
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_token: Option<String>,
    pub(crate) tags: Option<std::collections::BTreeMap<String, String>>,
}

/// Body of UpdateTrafficDistribution (distributions kept as JSON to check their types).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateDistributionRequest {
    pub(crate) telephony_config: Option<Value>,
    pub(crate) sign_in_config: Option<Value>,
    pub(crate) agent_config: Option<Value>,
}

/// The id of a traffic distribution group given as its id or ARN.
pub(crate) fn group_id(raw: &str) -> String {
    raw.rsplit_once(":traffic-distribution-group/")
        .map_or_else(|| raw.to_owned(), |(_, id)| id.to_owned())
}

/// The global sign-in endpoint of a replicated instance (a format of the simulator's own:
/// the source alias's access URL with the `/connect/global-sign-in` path).
pub(crate) fn global_sign_in_endpoint(source_alias: &str) -> String {
    format!("https://{source_alias}.my.connect.aws/connect/global-sign-in")
}

/// Checks one `Distributions` list of UpdateTrafficDistribution: `Region` one of `regions`
/// (each at most once), `Percentage` an integer 0–100, the percentages summing to 100.
/// Regions left out get 0.
pub(crate) fn parse_distributions(
    member: &str,
    config: &Value,
    regions: &[String; 2],
) -> Result<Vec<(String, u8)>, ApiError> {
    let list = config
        .get("Distributions")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid_request(format!("{member}.Distributions is required.")))?;
    let mut shares: Vec<(String, u8)> = regions.iter().map(|r| (r.clone(), 0)).collect();
    let mut seen = Vec::new();
    let mut total = 0u64;
    for entry in list {
        let region = entry.get("Region").and_then(Value::as_str).ok_or_else(|| {
            ApiError::invalid_request(format!("{member}: every distribution needs a Region."))
        })?;
        let percentage = entry
            .get("Percentage")
            .and_then(Value::as_u64)
            .filter(|p| *p <= 100)
            .ok_or_else(|| {
                ApiError::invalid_request(format!(
                    "{member}: the Percentage of {region} must be an integer from 0 to 100."
                ))
            })?;
        let Some(slot) = shares.iter_mut().find(|(r, _)| r == region) else {
            return Err(ApiError::invalid_request(format!(
                "{member}: {region} is not a Region of this traffic distribution group ({} and {}).",
                regions[0], regions[1]
            )));
        };
        if seen.contains(&region) {
            return Err(ApiError::invalid_request(format!(
                "{member}: {region} is given more than once."
            )));
        }
        seen.push(region);
        slot.1 = percentage as u8;
        total += percentage;
    }
    if total != 100 {
        return Err(ApiError::invalid_request(format!(
            "{member}: the percentages must add up to 100 (they add up to {total})."
        )));
    }
    Ok(shares)
}

/// Checks the `SignInConfig` of UpdateTrafficDistribution: each `Region` one of `regions`,
/// at most once, `Enabled` a boolean. Regions left out keep their setting.
pub(crate) fn parse_sign_in(
    config: &Value,
    regions: &[String; 2],
    current: &[(String, bool)],
) -> Result<Vec<(String, bool)>, ApiError> {
    let list = config
        .get("Distributions")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid_request("SignInConfig.Distributions is required."))?;
    let mut result = current.to_vec();
    let mut seen = Vec::new();
    for entry in list {
        let region = entry.get("Region").and_then(Value::as_str).ok_or_else(|| {
            ApiError::invalid_request("SignInConfig: every distribution needs a Region.")
        })?;
        let enabled = entry
            .get("Enabled")
            .and_then(Value::as_bool)
            .ok_or_else(|| {
                ApiError::invalid_request(format!(
                    "SignInConfig: Enabled of {region} must be a boolean."
                ))
            })?;
        if !regions.iter().any(|r| r == region) {
            return Err(ApiError::invalid_request(format!(
                "SignInConfig: {region} is not a Region of this traffic distribution group ({} and {}).",
                regions[0], regions[1]
            )));
        }
        if seen.contains(&region) {
            return Err(ApiError::invalid_request(format!(
                "SignInConfig: {region} is given more than once."
            )));
        }
        seen.push(region);
        if let Some(slot) = result.iter_mut().find(|(r, _)| r == region) {
            slot.1 = enabled;
        }
    }
    Ok(result)
}

fn distributions_json(shares: &[(String, u8)]) -> Value {
    json!({
        "Distributions": shares
            .iter()
            .map(|(region, pct)| json!({ "Region": region, "Percentage": pct }))
            .collect::<Vec<_>>()
    })
}

impl Inner {
    /// The replication of `instance_id` in `account_id` that `region` takes part in.
    fn replication_of(
        &self,
        account_id: &str,
        region: &str,
        instance_id: &str,
    ) -> Option<&Replication> {
        self.replication.replications.iter().find(|r| {
            r.account_id == account_id
                && r.instance_id == instance_id
                && (r.source_region == region || r.replica_region == region)
        })
    }

    /// The status of a replication, read from its replica.
    pub(crate) fn replication_status(&self, replication: &Replication) -> ReplicationStatus {
        let replica = self
            .model(&replication.account_id, &replication.replica_region)
            .and_then(|m| {
                m.instances()
                    .iter()
                    .find(|i| i.id == replication.instance_id)
            });
        match replica {
            None => ReplicationStatus::Deleting,
            Some(i) if i.deleting() => ReplicationStatus::Deleting,
            Some(i) => match i.status {
                InstanceStatus::CreationInProgress => ReplicationStatus::InProgress,
                InstanceStatus::Active => ReplicationStatus::Complete,
                InstanceStatus::CreationFailed => ReplicationStatus::Failed(
                    i.status_reason()
                        .unwrap_or("Instance replication failed.")
                        .to_owned(),
                ),
            },
        }
    }

    /// Forgets replications whose replica has vanished, with their traffic distribution
    /// groups (after the models advanced).
    pub(crate) fn advance_replications(&mut self) {
        let gone: Vec<Replication> = self
            .replication
            .replications
            .iter()
            .filter(|r| {
                self.model(&r.account_id, &r.replica_region)
                    .is_none_or(|m| !m.instances().iter().any(|i| i.id == r.instance_id))
            })
            .cloned()
            .collect();
        for r in gone {
            self.replication
                .replications
                .retain(|x| !(x.account_id == r.account_id && x.instance_id == r.instance_id));
            self.replication
                .groups
                .retain(|g| !(g.account_id == r.account_id && g.instance_id == r.instance_id));
        }
    }

    /// The `ReplicationConfiguration` of DescribeInstance of `instance_id` in `region`;
    /// `None` for an instance without a replica. The summary list names the other region
    /// of the pair: the replica's on the source, the source's on the replica.
    pub(crate) fn replication_configuration(
        &self,
        account_id: &str,
        region: &str,
        instance_id: &str,
    ) -> Option<Value> {
        let replication = self.replication_of(account_id, region, instance_id)?;
        let status = self.replication_status(replication);
        let other = if replication.source_region == region {
            &replication.replica_region
        } else {
            &replication.source_region
        };
        Some(json!({
            "ReplicationStatusSummaryList": [{
                "Region": other,
                "ReplicationStatus": status.as_str(),
                "ReplicationStatusReason": status.reason(),
            }],
            "SourceRegion": replication.source_region,
            "GlobalSignInEndpoint": global_sign_in_endpoint(&replication.source_alias),
        }))
    }

    /// DescribeInstance, with the `ReplicationConfiguration` of a replicated instance.
    pub(crate) fn describe_instance(
        &mut self,
        caller: &Caller,
        id: &str,
        now: Instant,
    ) -> Result<Reply, ApiError> {
        let (model, _) = self.split(&caller.account_id, &caller.region, now);
        let mut reply = model.describe_instance(id)?;
        if let Some(config) = self.replication_configuration(&caller.account_id, &caller.region, id)
            && let Some(Value::Object(body)) = &mut reply.body
        {
            body.insert("ReplicationConfiguration".into(), config);
        }
        Ok(reply)
    }

    /// ReplicateInstance.
    pub(crate) fn replicate_instance(
        &mut self,
        caller: &Caller,
        id: &str,
        request: ReplicateRequest,
        now: Instant,
    ) -> Result<Reply, ApiError> {
        let (account, region) = (caller.account_id.clone(), caller.region.clone());
        let replica_region = request
            .replica_region
            .filter(|r| !r.is_empty())
            .ok_or_else(|| ApiError::invalid_request("ReplicaRegion is required."))?;
        let alias = request
            .replica_alias
            .ok_or_else(|| ApiError::invalid_request("ReplicaAlias is required."))?;
        validate_alias(&alias)
            .map_err(|m| ApiError::invalid_request(m.replace("InstanceAlias", "ReplicaAlias")))?;
        if let Some(token) = &request.client_token {
            validate_client_token(token)?;
            let key = (account.clone(), region.clone(), token.clone());
            if let Some(record) = self.replication.replicate_tokens.get(&key) {
                if record.instance_id != id
                    || record.replica_region != replica_region
                    || record.replica_alias != alias
                {
                    return Err(ApiError::invalid_request(format!(
                        "ClientToken {token} was already used for a ReplicateInstance request with different parameters."
                    )));
                }
                return Ok(Reply {
                    body: Some(record.answer.clone()),
                    instance_id: Some(id.to_owned()),
                    replay: true,
                });
            }
        }
        if !self.config.replication_allowed_of(&account) {
            return Err(ApiError::new(
                ErrorKind::AccessDenied,
                format!(
                    "Account {account} is not allow-listed for Amazon Connect Global Resiliency; \
                     contact AWS to have it allow-listed before calling ReplicateInstance."
                ),
            ));
        }
        let (model, _) = self.split(&account, &region, now);
        let source = model
            .instance(id)
            .cloned()
            .ok_or_else(|| ApiError::instance_not_found(id))?;
        if source.replica_of.is_some() {
            return Err(ApiError::invalid_request(format!(
                "Instance {id} is a replica; only its source instance can be replicated."
            )));
        }
        if source.identity_management_type != "SAML" {
            return Err(ApiError::invalid_request(format!(
                "Instance {id} uses {} identity management; only SAML instances can be replicated.",
                source.identity_management_type
            )));
        }
        if source.status != InstanceStatus::Active || source.deleting() {
            let status = if source.deleting() {
                "being deleted"
            } else {
                source.status.as_str()
            };
            return Err(ApiError::new(
                ErrorKind::ResourceNotReady,
                format!("Instance {id} is not ACTIVE ({status}); it cannot be replicated yet."),
            ));
        }
        if let Some(existing) = self
            .replication
            .replications
            .iter()
            .find(|r| r.account_id == account && r.instance_id == id)
        {
            return Err(ApiError::resource_conflict(format!(
                "Instance {id} is already replicated to {}; an instance can have one replica.",
                existing.replica_region
            )));
        }
        if replica_region == region {
            return Err(ApiError::invalid_request(format!(
                "ReplicaRegion {replica_region} is the instance's own Region; choose the other Region of its pair."
            )));
        }
        if !pair_allowed(&region, &replica_region) {
            let pairs: Vec<String> = REGION_PAIRS
                .iter()
                .map(|(s, r)| format!("{s} -> {r}"))
                .collect();
            return Err(ApiError::invalid_request(format!(
                "Instances in {region} cannot be replicated to {replica_region}. Global Resiliency \
                 replicates between these Regions only: {}.",
                pairs.join(", ")
            )));
        }
        let fails = self
            .config
            .fail_replication_regex()
            .ok()
            .flatten()
            .is_some_and(|re| re.is_match(&alias));
        let (replica_model, settings) = self.split(&account, &replica_region, now);
        let alias_taken = replica_model
            .instances()
            .iter()
            .any(|i| i.alias.eq_ignore_ascii_case(&alias))
            || settings
                .aliases_elsewhere
                .contains(&alias.to_ascii_lowercase());
        if alias_taken {
            return Err(ApiError::invalid_request(format!(
                "The alias '{alias}' is already in use in {replica_region}. Instance aliases must be \
                 unique across AWS; choose a different ReplicaAlias."
            )));
        }
        replica_model.check_room(&settings)?;
        let replica = replica_model.insert_replica(&settings, &source, alias.clone(), fails, now);
        let answer = json!({ "Id": replica.id, "Arn": replica.arn });
        let group_id = random_uuid(&mut self.rng);
        self.replication.groups.push(TrafficGroup {
            arn: format!(
                "arn:aws:connect:{region}:{account}:traffic-distribution-group/{group_id}"
            ),
            id: group_id,
            account_id: account.clone(),
            instance_id: id.to_owned(),
            instance_arn: source.arn.clone(),
            name: DEFAULT_GROUP_NAME.into(),
            description: None,
            is_default: true,
            tags: Default::default(),
            telephony: vec![(region.clone(), 100), (replica_region.clone(), 0)],
            agents: vec![(region.clone(), 100), (replica_region.clone(), 0)],
            sign_in: vec![(region.clone(), true), (replica_region.clone(), true)],
        });
        self.replication.replications.push(Replication {
            account_id: account.clone(),
            instance_id: id.to_owned(),
            source_region: region.clone(),
            replica_region: replica_region.clone(),
            source_alias: source.alias.clone(),
            replica_alias: alias.clone(),
        });
        if let Some(token) = request.client_token {
            self.replication.replicate_tokens.insert(
                (account, region, token),
                ReplicateToken {
                    instance_id: id.to_owned(),
                    replica_region,
                    replica_alias: alias,
                    answer: answer.clone(),
                },
            );
        }
        Ok(Reply {
            body: Some(answer),
            instance_id: Some(id.to_owned()),
            replay: false,
        })
    }

    /// DeleteInstance: of a replica (called in its region) like any instance, after
    /// `replicaDeletionDelay`; of a source that has a replica as `sourceDeleteWithReplica`
    /// says.
    pub(crate) fn delete_instance(
        &mut self,
        caller: &Caller,
        id: &str,
        client_token: Option<&str>,
        now: Instant,
    ) -> Result<Reply, ApiError> {
        let (account, region) = (caller.account_id.clone(), caller.region.clone());
        let replica_region = self
            .replication_of(&account, &region, id)
            .filter(|r| r.source_region == region)
            .map(|r| r.replica_region.clone());
        let replayed = client_token.is_some_and(|token| {
            self.model(&account, &region)
                .is_some_and(|m| m.delete_token_used(token))
        });
        if let Some(replica_region) = &replica_region
            && !replayed
            && self.config.source_delete_with_replica == SourceDeleteWithReplica::Refuse
        {
            return Err(ApiError::invalid_request(format!(
                "Instance {id} has a replica in {replica_region} (the same instance id there); \
                 delete the replica in {replica_region} first."
            )));
        }
        let (model, settings) = self.split(&account, &region, now);
        let reply = model.delete_instance(&settings, id, client_token, now)?;
        if let Some(replica_region) = replica_region
            && !reply.replay
        {
            let (replica_model, settings) = self.split(&account, &replica_region, now);
            replica_model.delete_with_source(&settings, id, now);
        }
        Ok(reply)
    }

    /// The traffic distribution group `raw` (id or ARN) as seen from the caller's region:
    /// a group is visible in both regions of its replication.
    fn group_index(&self, caller: &Caller, raw: &str) -> Result<usize, ApiError> {
        let id = group_id(raw);
        self.replication
            .groups
            .iter()
            .position(|g| {
                g.id == id
                    && g.account_id == caller.account_id
                    && self
                        .replication_of(&caller.account_id, &caller.region, &g.instance_id)
                        .is_some()
            })
            .ok_or_else(|| {
                ApiError::resource_not_found(format!("Traffic distribution group {id} not found."))
            })
    }

    /// The `Status` of a traffic distribution group.
    fn group_status(&self, group: &TrafficGroup) -> &'static str {
        let replication = self
            .replication
            .replications
            .iter()
            .find(|r| r.account_id == group.account_id && r.instance_id == group.instance_id);
        match replication {
            None => "PENDING_DELETION",
            Some(r) => {
                let status = self.replication_status(r);
                if group.is_default || status == ReplicationStatus::Deleting {
                    status.default_group_status()
                } else {
                    "ACTIVE"
                }
            }
        }
    }

    fn group_json(&self, group: &TrafficGroup, full: bool) -> Value {
        let mut value = json!({
            "Id": group.id,
            "Arn": group.arn,
            "Name": group.name,
            "InstanceArn": group.instance_arn,
            "Status": self.group_status(group),
            "IsDefault": group.is_default,
        });
        if full && let Value::Object(map) = &mut value {
            if let Some(description) = &group.description {
                map.insert("Description".into(), json!(description));
            }
            map.insert("Tags".into(), json!(group.tags));
        }
        value
    }

    /// DescribeTrafficDistributionGroup.
    pub(crate) fn describe_traffic_distribution_group(
        &self,
        caller: &Caller,
        raw: &str,
    ) -> Result<Reply, ApiError> {
        let group = &self.replication.groups[self.group_index(caller, raw)?];
        Ok(Reply {
            body: Some(json!({ "TrafficDistributionGroup": self.group_json(group, true) })),
            instance_id: Some(group.instance_id.clone()),
            replay: false,
        })
    }

    /// ListTrafficDistributionGroups: the groups visible in the caller's region, optionally
    /// of one instance (id or ARN).
    pub(crate) fn list_traffic_distribution_groups(
        &self,
        caller: &Caller,
        instance: Option<&str>,
        max_results: Option<&str>,
        next_token: Option<&str>,
    ) -> Result<Reply, ApiError> {
        let instance = instance.map(crate::api::instance_id);
        let items: Vec<Value> = self
            .replication
            .groups
            .iter()
            .filter(|g| {
                g.account_id == caller.account_id
                    && instance.as_ref().is_none_or(|id| *id == g.instance_id)
                    && self
                        .replication_of(&caller.account_id, &caller.region, &g.instance_id)
                        .is_some()
            })
            .map(|g| self.group_json(g, false))
            .collect();
        let body = list_page(
            "TrafficDistributionGroupSummaryList",
            &items,
            max_results,
            next_token,
            LIST_GROUPS_MAX_RESULTS,
            "traffic-distribution-groups",
        )
        .map_err(|e| ApiError::invalid_request(e.message))?;
        Ok(Reply {
            body: Some(body),
            instance_id: instance,
            replay: false,
        })
    }

    /// CreateTrafficDistributionGroup: a further group of a replicated instance, ACTIVE at
    /// once.
    pub(crate) fn create_traffic_distribution_group(
        &mut self,
        caller: &Caller,
        request: CreateGroupRequest,
        now: Instant,
    ) -> Result<Reply, ApiError> {
        let (account, region) = (caller.account_id.clone(), caller.region.clone());
        let name = request
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::invalid_request("Name is required."))?;
        if name.chars().count() > 128
            || name.starts_with(char::is_whitespace)
            || name.ends_with(char::is_whitespace)
        {
            return Err(ApiError::invalid_request(
                "Name must be 1-128 characters, not starting or ending with white space.",
            ));
        }
        if let Some(description) = &request.description
            && (description.is_empty() || description.chars().count() > 250)
        {
            return Err(ApiError::invalid_request(
                "Description must be 1-250 characters.",
            ));
        }
        let raw_instance = request
            .instance_id
            .ok_or_else(|| ApiError::invalid_request("InstanceId is required."))?;
        let id = crate::api::instance_id(&raw_instance);
        let tags = request.tags.unwrap_or_default();
        validate_tags(&tags, tags.len()).map_err(ApiError::invalid_request)?;
        let fingerprint = format!("{id}\u{1}{name}\u{1}{:?}\u{1}{tags:?}", request.description);
        if let Some(token) = &request.client_token {
            validate_client_token(token)?;
            let key = (account.clone(), region.clone(), token.clone());
            if let Some((previous, answer)) = self.replication.group_tokens.get(&key) {
                if *previous != fingerprint {
                    return Err(ApiError::invalid_request(format!(
                        "ClientToken {token} was already used for a CreateTrafficDistributionGroup request with different parameters."
                    )));
                }
                return Ok(Reply {
                    body: Some(answer.clone()),
                    instance_id: Some(id),
                    replay: true,
                });
            }
        }
        let (model, _) = self.split(&account, &region, now);
        let instance = model
            .instance(&id)
            .cloned()
            .ok_or_else(|| ApiError::instance_not_found(&id))?;
        let Some(replication) = self.replication_of(&account, &region, &id).cloned() else {
            return Err(ApiError::invalid_request(format!(
                "Instance {id} has no replica; traffic distribution groups need a replicated instance."
            )));
        };
        if replication.source_region != region {
            return Err(ApiError::invalid_request(format!(
                "Create traffic distribution groups in the source Region {} of instance {id}.",
                replication.source_region
            )));
        }
        if self.replication_status(&replication) != ReplicationStatus::Complete {
            return Err(ApiError::new(
                ErrorKind::ResourceNotReady,
                format!("The replication of instance {id} is not complete yet."),
            ));
        }
        if self
            .replication
            .groups
            .iter()
            .any(|g| g.account_id == account && g.instance_id == id && g.name == name)
        {
            return Err(ApiError::resource_conflict(format!(
                "A traffic distribution group named {name} already exists for instance {id}."
            )));
        }
        let group_id = random_uuid(&mut self.rng);
        let arn =
            format!("arn:aws:connect:{region}:{account}:traffic-distribution-group/{group_id}");
        let answer = json!({ "Id": group_id, "Arn": arn });
        let (source, replica) = (replication.source_region, replication.replica_region);
        self.replication.groups.push(TrafficGroup {
            id: group_id,
            arn,
            account_id: account.clone(),
            instance_id: id.clone(),
            instance_arn: instance.arn,
            name,
            description: request.description,
            is_default: false,
            tags,
            telephony: vec![(source.clone(), 100), (replica.clone(), 0)],
            agents: vec![(source.clone(), 100), (replica.clone(), 0)],
            sign_in: vec![(source, true), (replica, true)],
        });
        if let Some(token) = request.client_token {
            self.replication
                .group_tokens
                .insert((account, region, token), (fingerprint, answer.clone()));
        }
        Ok(Reply {
            body: Some(answer),
            instance_id: Some(id),
            replay: false,
        })
    }

    /// DeleteTrafficDistributionGroup: not the default group (it goes with the replica),
    /// only in the Region the group was created in.
    pub(crate) fn delete_traffic_distribution_group(
        &mut self,
        caller: &Caller,
        raw: &str,
    ) -> Result<Reply, ApiError> {
        let index = self.group_index(caller, raw)?;
        let group = &self.replication.groups[index];
        if group.is_default {
            return Err(ApiError::invalid_request(format!(
                "Traffic distribution group {} is the default group of instance {}; it cannot be \
                 deleted and is deleted with the replica.",
                group.id, group.instance_id
            )));
        }
        if !group
            .arn
            .starts_with(&format!("arn:aws:connect:{}:", caller.region))
        {
            return Err(ApiError::invalid_request(format!(
                "Traffic distribution group {} can only be deleted in the Region it was created in.",
                group.id
            )));
        }
        let instance_id = group.instance_id.clone();
        self.replication.groups.remove(index);
        Ok(Reply {
            body: None,
            instance_id: Some(instance_id),
            replay: false,
        })
    }

    /// GetTrafficDistribution.
    pub(crate) fn get_traffic_distribution(
        &self,
        caller: &Caller,
        raw: &str,
    ) -> Result<Reply, ApiError> {
        let group = &self.replication.groups[self.group_index(caller, raw)?];
        let mut body = json!({
            "Id": group.id,
            "Arn": group.arn,
            "TelephonyConfig": distributions_json(&group.telephony),
            "AgentConfig": distributions_json(&group.agents),
        });
        if group.is_default
            && let Value::Object(map) = &mut body
        {
            map.insert(
                "SignInConfig".into(),
                json!({ "Distributions": group.sign_in.iter()
                    .map(|(region, enabled)| json!({ "Region": region, "Enabled": enabled }))
                    .collect::<Vec<_>>() }),
            );
        }
        Ok(Reply {
            body: Some(body),
            instance_id: Some(group.instance_id.clone()),
            replay: false,
        })
    }

    /// UpdateTrafficDistribution: all or nothing, only while the group is ACTIVE (so the
    /// replication is complete).
    pub(crate) fn update_traffic_distribution(
        &mut self,
        caller: &Caller,
        raw: &str,
        request: UpdateDistributionRequest,
    ) -> Result<Reply, ApiError> {
        let index = self.group_index(caller, raw)?;
        let group = &self.replication.groups[index];
        let status = self.group_status(group);
        if status != "ACTIVE" {
            return Err(ApiError::resource_conflict(format!(
                "Traffic distribution group {} is {status}; its distribution can be updated once it \
                 is ACTIVE and the replication of its instance is complete.",
                group.id
            )));
        }
        let regions = [group.telephony[0].0.clone(), group.telephony[1].0.clone()];
        let telephony = request
            .telephony_config
            .as_ref()
            .map(|c| parse_distributions("TelephonyConfig", c, &regions))
            .transpose()?;
        let agents = request
            .agent_config
            .as_ref()
            .map(|c| parse_distributions("AgentConfig", c, &regions))
            .transpose()?;
        let sign_in = match &request.sign_in_config {
            None => None,
            Some(_) if !group.is_default => {
                return Err(ApiError::invalid_request(format!(
                    "SignInConfig is available only on the default traffic distribution group; {} is not.",
                    group.id
                )));
            }
            Some(config) => Some(parse_sign_in(config, &regions, &group.sign_in)?),
        };
        let instance_id = group.instance_id.clone();
        let group = &mut self.replication.groups[index];
        if let Some(telephony) = telephony {
            group.telephony = telephony;
        }
        if let Some(agents) = agents {
            group.agents = agents;
        }
        if let Some(sign_in) = sign_in {
            group.sign_in = sign_in;
        }
        Ok(Reply {
            body: None,
            instance_id: Some(instance_id),
            replay: false,
        })
    }

    /// `GET /_sim/replication`: replications and traffic distribution groups.
    pub(crate) fn replication_view(&self, scope: &crate::service::Scope) -> Value {
        let replications: Vec<Value> = self
            .replication
            .replications
            .iter()
            .filter(|r| {
                scope.covers(&r.account_id, &r.source_region)
                    || scope.covers(&r.account_id, &r.replica_region)
            })
            .map(|r| {
                let status = self.replication_status(r);
                json!({
                    "accountId": r.account_id,
                    "instanceId": r.instance_id,
                    "sourceRegion": r.source_region,
                    "replicaRegion": r.replica_region,
                    "sourceAlias": r.source_alias,
                    "replicaAlias": r.replica_alias,
                    "status": status.as_str(),
                    "statusReason": status.reason(),
                })
            })
            .collect();
        let groups: Vec<Value> = self
            .replication
            .groups
            .iter()
            .filter(|g| {
                self.replication.replications.iter().any(|r| {
                    r.account_id == g.account_id
                        && r.instance_id == g.instance_id
                        && (scope.covers(&r.account_id, &r.source_region)
                            || scope.covers(&r.account_id, &r.replica_region))
                })
            })
            .map(|g| {
                json!({
                    "id": g.id,
                    "arn": g.arn,
                    "accountId": g.account_id,
                    "instanceId": g.instance_id,
                    "instanceArn": g.instance_arn,
                    "name": g.name,
                    "isDefault": g.is_default,
                    "status": self.group_status(g),
                    "telephony": g.telephony.iter().map(|(r, p)| json!({"region": r, "percentage": p})).collect::<Vec<_>>(),
                    "agents": g.agents.iter().map(|(r, p)| json!({"region": r, "percentage": p})).collect::<Vec<_>>(),
                    "signIn": g.sign_in.iter().map(|(r, e)| json!({"region": r, "enabled": e})).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({ "replications": replications, "trafficDistributionGroups": groups })
    }
}
