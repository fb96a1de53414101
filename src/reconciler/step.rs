//! The loop both paths run: observe → decide → act, until a decision needs no fresh look.
//!
//! A decision with writes continues with their outcome as the next observation, so that
//! what a write answered (CreateInstance's new id above all) is committed to status by the
//! very next decision, before anything else happens.

use std::time::Duration;

use super::decide::{self, Described, Failures, Jitter, Lookup, Observation, Then, Write};
use super::status::Reconciliation;
use super::{Error, plan};
use crate::aws::{AwsError, InstanceState};

/// How long a lookup that found no instance of the object's is trusted.
const LOOKUP_REUSE: Duration = Duration::from_secs(300);

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
        if let Some((state, _)) = &decision.state {
            let creating = path == Path::Apply && *state == crate::conditions::State::Creating;
            r.ctx
                .memory
                .set_creating(&r.uid, creating.then_some(r.region.as_str()));
        }
        match decision.failures {
            Failures::Keep => {}
            Failures::Reset => r.ctx.memory.reset_failures(&r.uid),
            Failures::Count => {
                r.ctx.memory.count_failure(&r.uid);
            }
        }
        if !decision.writes.is_empty() {
            observation = act(r, &decision.writes, &observation).await;
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
    if !decide::asks_aws(&r.inputs(), path == Path::Cleanup) {
        return Observation::NotAsked;
    }
    // An instance named by the spec is described, never looked up or created.
    let id = r
        .status
        .instance_id
        .clone()
        .or_else(|| r.obj.spec.instance_id.clone());
    let result = match id {
        None => lookup(r, path).await.map(Observation::Lookup),
        Some(id) => describe(r, &id, path).await,
    };
    result.unwrap_or_else(Observation::Failed)
}

/// Looks for the instance this object created (alias + uid tag) among the account's
/// instances in its region; also reports a foreign instance holding the alias.
async fn lookup(r: &Reconciliation<'_>, path: Path) -> Result<Lookup, AwsError> {
    // A lookup that found nothing moments ago need not be repeated while the object waits
    // for its CreateInstance slot: the UID-derived token already makes a repeated create
    // return the same instance, and listing the account on every attempt would cost
    // O(objects²) ListInstances calls during a bulk creation. Cleanup always looks.
    if path == Path::Apply && r.ctx.memory.lookup_empty_within(&r.uid, LOOKUP_REUSE) {
        return Ok(Lookup::Skipped);
    }
    let instances = r.ctx.connect.list_instances(&r.region).await?;
    let alias = r.obj.spec.instance_alias.as_deref();
    let mut foreign = None;
    for candidate in plan::lookup_candidates(alias, &instances) {
        let tags = r.ctx.connect.list_tags(&r.region, &candidate.arn).await?;
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

/// DescribeInstance of the recorded instance; on the Apply path, an ACTIVE instance's
/// attributes and tags too, and the tags of an instance named by `spec.instanceId` in any
/// state (whose owner must be known before it is adopted).
async fn describe(r: &Reconciliation<'_>, id: &str, path: Path) -> Result<Observation, AwsError> {
    let Some(instance) = r.ctx.connect.describe_instance(&r.region, id).await? else {
        return Ok(Observation::Gone);
    };
    let mut described = Described {
        attributes: None,
        tags: None,
        instance,
    };
    let active = described.instance.state == InstanceState::Active;
    if path == Path::Apply && active {
        described.attributes = Some(r.ctx.connect.list_attributes(&r.region, id).await?);
    }
    if path == Path::Apply && (active || r.obj.spec.instance_id.is_some()) {
        described.tags = Some(match &described.instance.tags {
            Some(tags) => tags.clone(),
            None => {
                r.ctx
                    .connect
                    .list_tags(&r.region, &described.instance.arn)
                    .await?
            }
        });
    }
    Ok(Observation::Instance(Box::new(described)))
}

/// Sends the writes in order; the first failure stops the rest. Returns their outcome.
async fn act(r: &Reconciliation<'_>, writes: &[Write], before: &Observation) -> Observation {
    let connect = &r.ctx.connect;
    let region = r.region.as_str();
    let arn = || match before {
        Observation::Instance(described) => described.instance.arn.clone(),
        _ => r.status.arn.clone().unwrap_or_default(),
    };
    let instance_id = || r.status.instance_id.clone().unwrap_or_default();
    let mut outcome = None;
    for write in writes {
        let result = match write {
            Write::CreateInstance(request) => {
                match connect.create_instance(region, request).await {
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
                    .update_attribute(region, &instance_id(), *attribute, *value, client_token)
                    .await
            }
            Write::Tag(tags) => connect.tag(region, &arn(), tags).await,
            Write::Untag(keys) => connect.untag(region, &arn(), keys).await,
            Write::DeleteInstance {
                instance_id,
                client_token,
            } => match connect
                .delete_instance(region, instance_id, client_token)
                .await
            {
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
            },
        };
        if let Err(e) = result {
            return Observation::Failed(e);
        }
    }
    outcome.unwrap_or_else(|| match before {
        Observation::Instance(described) => Observation::Converged(described.clone()),
        other => other.clone(),
    })
}
