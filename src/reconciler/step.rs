//! The loop both paths run: observe → decide → act, until a decision needs no fresh look.
//!
//! A decision with writes continues with their outcome as the next observation, so that
//! what a write answered (CreateInstance's new id above all) is committed to status by the
//! very next decision, before anything else happens.

use std::time::Duration;

use std::collections::BTreeMap;

use super::decide::configuration::{self, Applied, ConfigWrite, ObservedConfiguration};
use super::decide::{self, Described, Failures, Jitter, Lookup, Observation, Then, Write};
use super::polls::Look;
use super::status::Reconciliation;
use super::{Error, plan};
use crate::accounts::Resolution;
use crate::accounts::ledger::{Admission, Attempt, Outcome};
use crate::aws::{AwsError, ErrorKind, InstanceState, Operation, Target};

/// How long a lookup that found no instance of the object's is trusted.
const LOOKUP_REUSE: Duration = Duration::from_secs(300);

/// How long a listing of the account (a poll's or another lookup's) serves the lookup of
/// an object that has never sent a CreateInstance.
const LISTING_REUSE: Duration = Duration::from_secs(5);

/// How long what was described before a wait for the DeleteInstance slot still decides
/// when the slot comes (instead of describing again).
const SLOT_WAIT_REUSE: Duration = Duration::from_secs(600);

/// Steps of one reconcile at most (a lookup, a create, a describe, a convergence, …): a
/// bound against a decision that keeps asking for a fresh look.
const MAX_STEPS: usize = 6;

/// Which path is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Path {
    Apply,
    Cleanup,
}

/// Runs the loop and returns what the last decision said comes next.
pub(super) async fn run(r: &mut Reconciliation<'_>, path: Path) -> Result<Then, Error> {
    let mut observation = observe(r, path).await;
    for _ in 0..MAX_STEPS {
        let decision = {
            let inputs = r.inputs();
            match path {
                Path::Apply => decide::apply(&inputs, &observation),
                Path::Cleanup => decide::cleanup(&inputs, &observation),
            }
        };
        r.commit(&decision).await?;
        match (decision.poll, r.target.as_ref()) {
            (true, Some(target)) => r.ctx.polls.follow(target, &r.uid),
            _ => r.ctx.polls.unfollow(&r.uid),
        }
        match decision.failures {
            Failures::Keep => {}
            Failures::Reset => r.ctx.memory.reset_failures(&r.uid),
            Failures::Count => {
                r.ctx.memory.count_failure(&r.uid);
            }
        }
        if !decision.writes.is_empty() {
            observation = act(r, &decision.writes, &observation).await?;
            continue;
        }
        if decision.then != Then::ObserveAgain {
            return Ok(decision.then);
        }
        observation = observe(r, path).await;
    }
    tracing::warn!("reconcile needed more steps than expected; looking again shortly");
    Ok(match path {
        Path::Apply => Then::Requeue(r.ctx.settings.creation_poll_interval, Jitter::Spread),
        Path::Cleanup => Then::Pending(r.ctx.settings.creation_poll_interval, Jitter::Spread),
    })
}

/// What the step needs to know from AWS.
async fn observe(r: &Reconciliation<'_>, path: Path) -> Observation {
    let cleanup = path == Path::Cleanup;
    // What the decision inputs say about asking AWS, read once before any call.
    let (asks, awaited) = {
        let inputs = r.inputs();
        (
            decide::asks_aws(&inputs, cleanup),
            decide::awaited(&inputs, cleanup),
        )
    };
    let target = match r.target.as_ref() {
        Some(target) if asks => target,
        _ => return Observation::NotAsked,
    };
    // An instance named by the spec is described, never looked up or created.
    let id = r
        .status
        .instance_id
        .clone()
        .or_else(|| r.obj.spec.instance_id.clone());
    let Some(id) = id else {
        return lookup(r, target, path)
            .await
            .map_or_else(Observation::Failed, Observation::Lookup);
    };
    if cleanup && let Some(described) = r.ctx.memory.waiting_for_slot(&r.uid, SLOT_WAIT_REUSE) {
        // Waiting for its DeleteInstance slot: what was described before the wait decides,
        // with no AWS call (DeleteInstance itself reports an instance gone meanwhile).
        return Observation::Instance(described);
    }
    if let Some(awaited) = awaited {
        let look = r
            .ctx
            .polls
            .look(&r.ctx.connect, target, &r.uid, &id, awaited)
            .await;
        if look == Look::Unchanged {
            return Observation::Unchanged;
        }
    }
    let observed = describe(r, target, &id, path)
        .await
        .unwrap_or_else(Observation::Failed);
    if awaited.is_some() {
        match &observed {
            Observation::Instance(_) => r.ctx.polls.described(target, &r.uid, true),
            Observation::Gone => r.ctx.polls.described(target, &r.uid, false),
            _ => {}
        }
    }
    observed
}

/// Looks for the instance this object created (alias + uid tag) among the account's
/// instances in its region; also reports a foreign instance holding the alias.
async fn lookup(r: &Reconciliation<'_>, target: &Target, path: Path) -> Result<Lookup, AwsError> {
    // A lookup that found nothing moments ago need not be repeated while the object waits
    // for its CreateInstance slot: the UID-derived token already makes a repeated create
    // return the same instance, and listing the account on every attempt would cost
    // O(objects²) ListInstances calls during a bulk creation. Cleanup always looks.
    if path == Path::Apply && r.ctx.memory.lookup_empty_within(&r.uid, LOOKUP_REUSE) {
        return Ok(Lookup::Skipped);
    }
    // An object that never sent a CreateInstance has no instance of its own to find (one
    // created more than a moment ago is in any listing, and the ledger records each create
    // before it is sent): a listing a few seconds old, shared with the objects applied
    // with it and with the shared poll, tells whether another instance holds the alias as
    // well as a new one would. An object that may have created lists afresh.
    let instances = if path == Path::Apply && !may_have_created(r, target).await {
        r.ctx
            .polls
            .recent_listing(&r.ctx.connect, target, LISTING_REUSE)
            .await?
    } else {
        std::sync::Arc::new(r.ctx.connect.list_instances(target).await?)
    };
    let alias = r.obj.spec.instance_alias.as_deref();
    let mut foreign = None;
    for candidate in plan::lookup_candidates(alias, instances.as_slice()) {
        let tags = r.ctx.connect.list_tags(target, &candidate.arn).await?;
        if plan::is_ours(&tags, &r.uid) {
            return Ok(Lookup::Ours(candidate.clone()));
        }
        foreign.get_or_insert_with(|| candidate.clone());
    }
    if let Some(foreign) = foreign {
        return Ok(Lookup::Foreign(foreign));
    }
    if path == Path::Apply {
        r.ctx.memory.lookup_found_nothing(&r.uid);
    }
    Ok(Lookup::Nothing)
}

/// Whether the attempt ledger holds a CreateInstance of this object (or cannot tell: no
/// ledger for its account, or it could not be read).
async fn may_have_created(r: &Reconciliation<'_>, target: &Target) -> bool {
    let Some((account, _)) = ledger_account(r) else {
        return true;
    };
    r.ctx
        .ledgers
        .has_attempt(
            &account,
            &target.region,
            "CreateInstance",
            &crate::aws::token::create_token(&r.uid),
        )
        .await
        .inspect_err(
            |e| tracing::debug!(error = %e, "could not read the attempt ledger; listing afresh"),
        )
        .unwrap_or(true)
}

/// DescribeInstance of the recorded instance; on the Apply path, an ACTIVE instance's
/// attributes and tags too, and the tags of an instance named by `spec.instanceId` in any
/// state (whose owner must be known before it is adopted).
async fn describe(
    r: &Reconciliation<'_>,
    target: &Target,
    id: &str,
    path: Path,
) -> Result<Observation, AwsError> {
    let Some(instance) = r.ctx.connect.describe_instance(target, id).await? else {
        return Ok(Observation::Gone);
    };
    let mut described = Described {
        attributes: None,
        tags: None,
        configuration: None,
        traffic: None,
        instance,
    };
    let active = described.instance.state == InstanceState::Active;
    if path == Path::Apply && active {
        described.attributes = Some(
            r.ctx
                .connect
                .managed_attributes(
                    target,
                    &described.instance,
                    r.obj.spec.desired_attributes().into_keys(),
                )
                .await?,
        );
        // DescribeInstance just found the instance ACTIVE: a configuration List that does
        // not find it (or refuses it as not ready) is AWS catching up, not a gone instance.
        described.configuration = observe_configuration(r, target, id)
            .await
            .map_err(|mut e| {
                if matches!(e.kind, ErrorKind::NotFound | ErrorKind::InvalidRequest) {
                    e.kind = ErrorKind::Transient;
                    e.message =
                        format!("not visible to the configuration calls yet: {}", e.message);
                }
                e
            })?;
    }
    if path == Path::Apply && active {
        described.traffic = observe_traffic(r, target, &described.instance).await?;
    }
    if path == Path::Apply && (active || r.obj.spec.instance_id.is_some()) {
        described.tags = Some(match &described.instance.tags {
            Some(tags) => tags.clone(),
            None => {
                r.ctx
                    .connect
                    .list_tags(target, &described.instance.arn)
                    .await?
            }
        });
    }
    Ok(Observation::Instance(Box::new(described)))
}

/// The default traffic distribution group and its split, when the replica the spec
/// manages (or the recorded one, being removed) is complete: the group's ARN as recorded,
/// or found with ListTrafficDistributionGroups once.
async fn observe_traffic(
    r: &Reconciliation<'_>,
    target: &Target,
    instance: &crate::aws::ObservedInstance,
) -> Result<Option<decide::replica::ObservedTraffic>, AwsError> {
    let region = r
        .status
        .replica
        .as_ref()
        .map(|rec| rec.region.as_str())
        .or_else(|| r.obj.spec.replica.as_ref().map(|want| want.region.as_str()));
    let complete = region.is_some_and(|region| {
        instance
            .replication
            .as_ref()
            .and_then(|rep| rep.status_of(region))
            == Some(crate::aws::REPLICATION_COMPLETE)
    });
    if !complete {
        return Ok(None);
    }
    let connect = &r.ctx.connect;
    let (group_arn, group_status) = match &r.status.traffic_distribution_group_arn {
        Some(arn) => (arn.clone(), None),
        None => {
            let groups = connect.traffic_groups(target, &instance.id).await?;
            match groups.into_iter().find(|g| g.is_default) {
                Some(group) => (group.arn, group.status),
                None => return Ok(None),
            }
        }
    };
    let split = connect.traffic_distribution(target, &group_arn).await?;
    Ok(Some(decide::replica::ObservedTraffic {
        group_arn,
        group_status,
        split,
    }))
}

/// The configuration parts the spec manages, each read with its List call (storage: one
/// per resource type listed or recorded); `None` when the spec manages none.
async fn observe_configuration(
    r: &Reconciliation<'_>,
    target: &Target,
    id: &str,
) -> Result<Option<ObservedConfiguration>, AwsError> {
    let spec = &r.obj.spec;
    let connect = &r.ctx.connect;
    let mut observed = ObservedConfiguration::default();
    if let Some(types) = configuration::storage_types_to_read(spec, &r.status.storage_configs) {
        let mut storage = BTreeMap::new();
        for resource_type in types {
            match connect
                .list_storage_configs(target, id, &resource_type)
                .await
            {
                Ok(associations) => {
                    storage.insert(resource_type, associations);
                }
                // A type AWS does not know (one added to the spec ahead of AWS, or a typo that
                // matches the pattern): that item fails, the others go on.
                Err(e) if e.kind == ErrorKind::InvalidRequest => {
                    observed
                        .refused
                        .push((format!("storageConfigs[{resource_type}]"), e));
                }
                Err(e) => return Err(e),
            }
        }
        observed.storage = Some(storage);
    }
    if spec.approved_origins.is_some() {
        observed.approved_origins = Some(connect.list_approved_origins(target, id).await?);
    }
    if spec.lambda_functions.is_some() {
        observed.lambda_functions = Some(connect.list_lambda_functions(target, id).await?);
    }
    if spec.lex_bots.is_some() {
        observed.lex_bots = Some(connect.list_lex_v2_bots(target, id).await?);
    }
    if spec.security_keys.is_some() {
        observed.security_keys = Some(connect.list_security_keys(target, id).await?);
    }
    Ok((observed != ObservedConfiguration::default()).then_some(observed))
}

/// What the ledger needs to know of the object's account.
fn ledger_account(r: &Reconciliation<'_>) -> Option<(String, u32)> {
    match &r.account {
        Resolution::Usable { name, budget, .. } => Some((name.clone(), *budget)),
        Resolution::Refused(..) => None,
    }
}

/// What an attempt's answer tells the ledger: AWS answered (an error code) or it was never
/// sent: not accepted; no answer at all: unknown.
fn ledger_outcome(error: Option<&AwsError>) -> (Outcome, bool) {
    match error {
        None => (Outcome::Accepted, false),
        Some(e) if matches!(e.kind, ErrorKind::RateLimited | ErrorKind::NotLeader) => {
            (Outcome::NotAccepted, false)
        }
        Some(e) if e.code.is_some() => (
            Outcome::NotAccepted,
            e.kind == ErrorKind::LifecycleAttemptLimitExceeded,
        ),
        Some(_) => (Outcome::Unknown, false),
    }
}

/// The budget's refusal of a creation (nothing was sent), as an observation.
fn budget_refused(
    r: &Reconciliation<'_>,
    summary: &crate::accounts::ledger::Summary,
) -> Observation {
    let (_, budget) = ledger_account(r).unwrap_or_default();
    Observation::BudgetRefused {
        used: summary.used,
        budget,
        oldest_expires_at: summary.oldest_expires_at.map(|t| t.to_string()),
    }
}

/// Write-ahead: the attempt is in the ledger before it is sent (or refused by the budget).
async fn ledger_record(
    r: &Reconciliation<'_>,
    region: &str,
    attempt: &Attempt,
) -> Result<Admission, Error> {
    let Some((account, budget)) = ledger_account(r) else {
        return Ok(Admission::Go);
    };
    r.ctx
        .ledgers
        .record(&account, region, attempt, budget)
        .await
        .map_err(Error::Ledger)
}

/// Records the attempt's outcome. A failure leaves the entry pending, which counts: the
/// ledger errs on the careful side.
async fn ledger_settle(
    r: &Reconciliation<'_>,
    region: &str,
    attempt: &Attempt,
    (outcome, aws_limit): (Outcome, bool),
) {
    let Some((account, _)) = ledger_account(r) else {
        return;
    };
    if let Err(e) = r
        .ctx
        .ledgers
        .settle(&account, region, attempt, outcome, aws_limit)
        .await
    {
        tracing::warn!(error = %e, "could not record an attempt's outcome; it keeps counting");
    }
}

fn attempt(r: &Reconciliation<'_>, operation: &'static str, client_token: &str) -> Attempt {
    Attempt {
        operation,
        client_token: client_token.to_owned(),
        object: format!(
            "{}/{}",
            r.obj.metadata.namespace.as_deref().unwrap_or_default(),
            r.obj.metadata.name.as_deref().unwrap_or_default()
        ),
        uid: r.uid.clone(),
    }
}

/// Sends the writes in order; the first failure stops the rest. Returns their outcome; a
/// write the fence refused ends the reconcile (this replica no longer leads).
async fn act(
    r: &Reconciliation<'_>,
    writes: &[Write],
    before: &Observation,
) -> Result<Observation, Error> {
    let connect = &r.ctx.connect;
    let Some(target) = r.target.as_ref() else {
        return Ok(Observation::NotAsked);
    };
    let region = target.region.as_str();
    let arn = || match before {
        Observation::Instance(described) => described.instance.arn.clone(),
        _ => r.status.arn.clone().unwrap_or_default(),
    };
    let instance_id = || r.status.instance_id.clone().unwrap_or_default();
    let mut outcome = None;
    // Configuration writes do not stop at a failure: one item's failure never blocks the
    // others.
    let mut applied = Vec::new();
    let mut failed = Vec::new();
    for write in writes {
        let result = match write {
            Write::Configure(change) => match configure(r, target, &instance_id(), change).await {
                Ok(done) => {
                    applied.push((change.clone(), done));
                    Ok(())
                }
                Err(e) if e.kind == ErrorKind::NotLeader => Err(e),
                Err(e) => {
                    failed.push((change.clone(), e));
                    Ok(())
                }
            },
            Write::CreateInstance(request) => {
                r.ctx.reporter.fence().check()?;
                let attempt = attempt(r, "CreateInstance", &request.client_token);
                // The rate limiter first: an attempt that cannot go now is not written.
                if let Err(e) = connect
                    .lifecycle_slot(target, Operation::CreateInstance, &r.uid)
                    .await
                {
                    return Ok(Observation::Failed(e));
                }
                // Never decided from a cache that missed an update of the object (a
                // deletion begun, an id recorded since): checked after the wait for the
                // slot, right before the attempt is recorded and sent.
                r.ensure_current().await?;
                if let Admission::Refused(summary) = ledger_record(r, region, &attempt).await? {
                    return Ok(budget_refused(r, &summary));
                }
                let result = connect.create_instance(target, request).await;
                ledger_settle(r, region, &attempt, ledger_outcome(result.as_ref().err())).await;
                match result {
                    Ok((id, arn)) => {
                        r.ctx.memory.forget_lookup(&r.uid);
                        tracing::info!(instance_id = %id, region, "instance creation requested");
                        outcome = Some(Observation::Created { id, arn });
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Write::UpdateAttribute {
                attribute,
                value,
                client_token,
            } => {
                connect
                    .update_attribute(target, &instance_id(), *attribute, *value, client_token)
                    .await
            }
            Write::Tag(tags) => connect.tag(target, &arn(), tags).await,
            Write::Untag(keys) => connect.untag(target, &arn(), keys).await,
            Write::DeleteInstance {
                instance_id,
                client_token,
            } => {
                r.ctx.reporter.fence().check()?;
                let attempt = attempt(r, "DeleteInstance", client_token);
                if let Err(e) = connect
                    .lifecycle_slot(target, Operation::DeleteInstance, &r.uid)
                    .await
                {
                    // Its place in line is kept; until the slot comes the object makes no
                    // AWS call (the look before the wait decides then).
                    if let Observation::Instance(described) = before {
                        r.ctx.memory.wait_for_slot(&r.uid, described.clone());
                    }
                    return Ok(Observation::Failed(e));
                }
                r.ctx.memory.slot_taken(&r.uid);
                // Never decided from a cache that missed an update (a switch to Retain,
                // protection turned on).
                r.ensure_current().await?;
                // Deletes are never refused by the budget; they are recorded all the same.
                ledger_record(r, region, &attempt).await?;
                let result = connect
                    .delete_instance(target, instance_id, client_token)
                    .await;
                let settled = match &result {
                    Ok(true) => (Outcome::Accepted, false),
                    // NotFound: nothing was deleted, not an accepted attempt.
                    Ok(false) => (Outcome::NotAccepted, false),
                    Err(e) => ledger_outcome(Some(e)),
                };
                ledger_settle(r, region, &attempt, settled).await;
                match result {
                    Ok(true) => {
                        r.ctx.memory.delete_sent(&r.uid);
                        tracing::info!(%instance_id, region, "DeleteInstance accepted");
                        outcome = Some(Observation::DeleteAccepted);
                        Ok(())
                    }
                    Ok(false) => {
                        outcome = Some(Observation::DeleteFoundNothing);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Write::Replicate {
                region: replica_region,
                alias,
                client_token,
            } => {
                r.ctx.reporter.fence().check()?;
                // A replica's creation is an attempt in the replica's region.
                let attempt = attempt(r, "CreateInstance", client_token);
                if let Err(e) = connect
                    .lifecycle_slot(target, Operation::ReplicateInstance, &r.uid)
                    .await
                {
                    return Ok(Observation::Failed(e));
                }
                r.ensure_current().await?;
                if let Admission::Refused(summary) =
                    ledger_record(r, replica_region, &attempt).await?
                {
                    return Ok(budget_refused(r, &summary));
                }
                let result = connect
                    .replicate_instance(target, &instance_id(), replica_region, alias, client_token)
                    .await;
                ledger_settle(
                    r,
                    replica_region,
                    &attempt,
                    ledger_outcome(result.as_ref().err()),
                )
                .await;
                match result {
                    Ok(arn) => {
                        tracing::info!(instance_id = %instance_id(), replica_region, "replication requested");
                        outcome = Some(Observation::Replicated {
                            region: replica_region.clone(),
                            arn,
                        });
                        Ok(())
                    }
                    Err(e) if decide::replica::is_refusal(&e) => {
                        return Ok(Observation::ReplicateRefused {
                            region: replica_region.clone(),
                            error: e,
                        });
                    }
                    Err(e) => Err(e),
                }
            }
            Write::UpdateTraffic {
                region: call_region,
                group_arn,
                split,
            } => {
                let there = Target {
                    region: call_region.clone(),
                    ..target.clone()
                };
                match connect
                    .update_traffic_distribution(&there, group_arn, split)
                    .await
                {
                    Ok(()) => {
                        tracing::info!(%group_arn, call_region, "traffic distribution updated");
                        outcome = Some(Observation::TrafficUpdated(split.clone()));
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Write::DeleteReplica {
                region: replica_region,
                instance_id,
                client_token,
            } => {
                r.ctx.reporter.fence().check()?;
                let replica = Target {
                    region: replica_region.clone(),
                    ..target.clone()
                };
                let attempt = attempt(r, "DeleteInstance", client_token);
                if let Err(e) = connect
                    .lifecycle_slot(&replica, Operation::DeleteInstance, &r.uid)
                    .await
                {
                    return Ok(Observation::Failed(e));
                }
                r.ensure_current().await?;
                ledger_record(r, replica_region, &attempt).await?;
                let result = connect
                    .delete_instance(&replica, instance_id, client_token)
                    .await;
                let settled = match &result {
                    Ok(true) => (Outcome::Accepted, false),
                    Ok(false) => (Outcome::NotAccepted, false),
                    Err(e) => ledger_outcome(Some(e)),
                };
                ledger_settle(r, replica_region, &attempt, settled).await;
                match result {
                    Ok(_) => {
                        tracing::info!(%instance_id, replica_region, "DeleteInstance of the replica accepted");
                        outcome = Some(Observation::ReplicaDeleteAccepted {
                            region: replica_region.clone(),
                        });
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Err(e) if e.kind == ErrorKind::NotLeader => {
                return Err(Error::NotLeader(crate::fence::NotLeader));
            }
            Err(e) => return Ok(Observation::Failed(e)),
            Ok(()) => {}
        }
    }
    if (!applied.is_empty() || !failed.is_empty())
        && let Observation::Instance(described) = before
    {
        return Ok(Observation::Configured {
            described: described.clone(),
            applied,
            failed,
        });
    }
    Ok(outcome.unwrap_or_else(|| match before {
        Observation::Instance(described) => Observation::Converged(described.clone()),
        other => other.clone(),
    }))
}

/// One configuration write, and what it changed in what status records.
async fn configure(
    r: &Reconciliation<'_>,
    target: &Target,
    instance_id: &str,
    write: &ConfigWrite,
) -> Result<Applied, AwsError> {
    let connect = &r.ctx.connect;
    Ok(match write {
        ConfigWrite::AssociateStorage {
            config,
            client_token,
        } => {
            let id = connect
                .associate_storage_config(target, instance_id, config, client_token)
                .await?;
            Applied::StorageAssociated(config.resource_type.clone(), id)
        }
        ConfigWrite::UpdateStorage {
            association_id,
            config,
            client_token,
        } => {
            connect
                .update_storage_config(target, instance_id, association_id, config, client_token)
                .await?;
            Applied::StorageAssociated(config.resource_type.clone(), association_id.clone())
        }
        ConfigWrite::DisassociateStorage {
            resource_type,
            association_id,
            client_token,
        } => {
            connect
                .disassociate_storage_config(
                    target,
                    instance_id,
                    resource_type,
                    association_id,
                    client_token,
                )
                .await?;
            Applied::StorageDisassociated(resource_type.clone())
        }
        ConfigWrite::AssociateOrigin {
            origin,
            client_token,
        } => {
            connect
                .associate_approved_origin(target, instance_id, origin, client_token)
                .await?;
            Applied::Other
        }
        ConfigWrite::DisassociateOrigin {
            origin,
            client_token,
        } => {
            connect
                .disassociate_approved_origin(target, instance_id, origin, client_token)
                .await?;
            Applied::Other
        }
        ConfigWrite::AssociateLambda {
            function_arn,
            client_token,
        } => {
            connect
                .associate_lambda_function(target, instance_id, function_arn, client_token)
                .await?;
            Applied::Other
        }
        ConfigWrite::DisassociateLambda {
            function_arn,
            client_token,
        } => {
            connect
                .disassociate_lambda_function(target, instance_id, function_arn, client_token)
                .await?;
            Applied::Other
        }
        ConfigWrite::AssociateBot {
            alias_arn,
            client_token,
        } => {
            connect
                .associate_lex_v2_bot(target, instance_id, alias_arn, client_token)
                .await?;
            Applied::Other
        }
        ConfigWrite::DisassociateBot {
            alias_arn,
            client_token,
        } => {
            connect
                .disassociate_lex_v2_bot(target, instance_id, alias_arn, client_token)
                .await?;
            Applied::Other
        }
        ConfigWrite::AssociateKey { key, client_token } => {
            let id = connect
                .associate_security_key(target, instance_id, key, client_token)
                .await?;
            Applied::KeyAssociated(id)
        }
        ConfigWrite::DisassociateKey {
            association_id,
            client_token,
        } => {
            connect
                .disassociate_security_key(target, instance_id, association_id, client_token)
                .await?;
            Applied::KeyDisassociated(association_id.clone())
        }
    })
}
