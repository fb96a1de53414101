//! The Apply path: find or create the instance, follow its creation, converge it.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::plan;
use super::status::{Reconciliation, Stop, record_observed};
use super::{Context, Error};
use crate::api::ConnectInstance;
use crate::aws::{CreateInstanceRequest, InstanceState, ObservedInstance, token};
use crate::conditions::State;

/// How long a lookup that found no instance of the object's is trusted.
const LOOKUP_REUSE: Duration = Duration::from_secs(300);

pub(super) async fn apply(obj: Arc<ConnectInstance>, ctx: &Context) -> Result<Action, Error> {
    let mut r = Reconciliation::new(obj, ctx)?;
    if r.status.conditions.is_empty() {
        r.set_state(
            State::Initializing,
            "Looking for an existing instance before creating one",
            |_| {},
        )
        .await?;
    }
    match steps(&mut r).await {
        Ok(action) | Err(Stop::Done(action)) => Ok(action),
        Err(Stop::Kube(e)) => Err(e),
        Err(Stop::Aws(e)) => {
            let after = r.record_failure(&e, &e.to_string()).await?;
            Ok(Action::requeue(after))
        }
    }
}

async fn steps(r: &mut Reconciliation<'_>) -> Result<Action, Stop> {
    let instance_id = match r.status.instance_id.clone() {
        Some(id) => id,
        None => find_or_create(r).await?,
    };
    let Some(observed) = r
        .ctx
        .connect
        .describe_instance(&r.region, &instance_id)
        .await?
    else {
        let message = format!(
            "Instance {instance_id} recorded in status no longer exists in {}; it is not re-created automatically. Delete this object and create it again to get a new instance.",
            r.region
        );
        r.set_state(State::InstanceNotFound, &message, |_| {})
            .await?;
        return Ok(requeue(r, State::InstanceNotFound));
    };
    match &observed.state {
        InstanceState::CreationInProgress => {
            let message = format!("Instance {instance_id} is being created (CREATION_IN_PROGRESS)");
            r.set_state(State::Creating, &message, |s| record_observed(s, &observed))
                .await?;
            r.ctx.reset_attempts(r.key());
            let creating_for = observed.created_epoch_seconds.and_then(|created| {
                let now = jiff::Timestamp::now().as_second();
                u64::try_from(now - created).ok().map(Duration::from_secs)
            });
            Ok(Action::requeue(plan::creation_poll_interval(
                r.ctx.settings.creation_poll_interval,
                creating_for,
            )))
        }
        InstanceState::CreationFailed => {
            let message = format!(
                "Instance {instance_id} failed to be created: {}. The operator does not retry creation on its own (each attempt counts against the 30-day limit): delete this object to clean up, then create it again.",
                observed
                    .status_reason
                    .as_deref()
                    .unwrap_or("no reason given")
            );
            r.set_state(State::CreationFailed, &message, |s| {
                record_observed(s, &observed)
            })
            .await?;
            Ok(requeue(r, State::CreationFailed))
        }
        InstanceState::Active => converge(r, &observed).await,
        InstanceState::Unknown(other) => {
            let message = format!(
                "Instance {instance_id} is in a state this operator does not know: {other:?}"
            );
            r.set_state(State::AwsError, &message, |s| record_observed(s, &observed))
                .await?;
            Ok(Action::requeue(r.backoff_after(State::AwsError)))
        }
    }
}

/// Finds the instance this object created earlier (alias + uid tag), refuses a foreign
/// instance holding the alias, or creates one with the UID-derived token.
async fn find_or_create(r: &mut Reconciliation<'_>) -> Result<String, Stop> {
    // A lookup that found nothing moments ago need not be repeated while the object waits
    // for its CreateInstance slot: the UID-derived token already makes a repeated create
    // return the same instance, and listing the account on every attempt would cost
    // O(objects²) ListInstances calls during a bulk creation.
    if !r.ctx.lookup_empty_within(r.key(), LOOKUP_REUSE) {
        if let Some(found) = find_ours(r).await? {
            return Ok(found);
        }
        r.ctx.record_lookup_empty(r.key());
    }
    let spec = &r.obj.spec;
    let request = CreateInstanceRequest {
        identity_management_type: spec.identity_management_type.as_aws_str().to_owned(),
        alias: spec.instance_alias.clone(),
        directory_id: spec.directory_id.clone(),
        inbound_calls_enabled: spec.inbound_calls_enabled,
        outbound_calls_enabled: spec.outbound_calls_enabled,
        tags: plan::desired_tags(&spec.tags, &r.uid),
        client_token: token::create_token(&r.uid),
    };
    let (id, arn) = r.ctx.connect.create_instance(&r.region, &request).await?;
    r.ctx.forget_lookup(r.key());
    // Recorded before anything else, so that a crash from here on cannot lose the instance.
    let message = format!("CreateInstance accepted: instance {id} is being created");
    r.set_state(State::Creating, &message, |s| {
        s.instance_id = Some(id.clone());
        s.arn = Some(arn);
        s.instance_status = Some(InstanceState::CreationInProgress.as_str().to_owned());
    })
    .await?;
    tracing::info!(instance_id = %id, region = %r.region, "instance creation requested");
    Ok(id)
}

/// Adopts the instance this object created earlier (alias + uid tag); stops with
/// `AliasConflict` when the alias belongs to an instance it did not create.
async fn find_ours(r: &mut Reconciliation<'_>) -> Result<Option<String>, Stop> {
    let found = r.lookup().await?;
    if let Some(ours) = found.ours {
        let (id, arn) = (ours.id, ours.arn);
        let message = format!("Found instance {id} created earlier for this object; adopting it");
        r.set_state(State::Creating, &message, |s| {
            s.instance_id = Some(id.clone());
            s.arn = Some(arn);
        })
        .await?;
        r.event(EventType::Normal, "Adopted", &message).await;
        return Ok(Some(id));
    }
    if let (Some(other), Some(alias)) = (found.foreign, r.obj.spec.instance_alias.as_deref()) {
        let message = format!(
            "The alias {alias:?} belongs to instance {} ({}), which this object did not create; the operator never takes over an instance it did not create. Choose another alias, or delete that instance.",
            other.id, other.arn
        );
        r.set_state(State::AliasConflict, &message, |_| {}).await?;
        return Err(Stop::Done(requeue(r, State::AliasConflict)));
    }
    Ok(None)
}

/// Writes the attribute and tag differences, then reports Ready.
async fn converge(r: &mut Reconciliation<'_>, observed: &ObservedInstance) -> Result<Action, Stop> {
    let spec = &r.obj.spec;
    let attributes = plan::attribute_changes(
        &spec.desired_attributes(),
        &r.ctx
            .connect
            .list_attributes(&r.region, &observed.id)
            .await?,
    );
    let observed_tags = match &observed.tags {
        Some(tags) => tags.clone(),
        None => r.ctx.connect.list_tags(&r.region, &observed.arn).await?,
    };
    let tags = plan::tag_changes(&spec.tags, &r.uid, &observed_tags);

    if !attributes.is_empty() || !tags.is_empty() {
        let summary = format!(
            "Applying {} attribute change(s) and {} tag change(s) to instance {}",
            attributes.len(),
            tags.set.len() + tags.remove.len(),
            observed.id
        );
        r.set_state(State::Updating, &summary, |s| record_observed(s, observed))
            .await?;
        let generation = r.obj.metadata.generation.unwrap_or_default();
        let epoch = drift_epoch(r.ctx.settings.retry.drift_interval);
        for (attribute, value) in &attributes {
            let client_token =
                token::attribute_token(&r.uid, *attribute, *value, generation, epoch);
            r.ctx
                .connect
                .update_attribute(&r.region, &observed.id, *attribute, *value, &client_token)
                .await?;
        }
        if !tags.set.is_empty() {
            r.ctx
                .connect
                .tag(&r.region, &observed.arn, &tags.set)
                .await?;
        }
        if !tags.remove.is_empty() {
            r.ctx
                .connect
                .untag(&r.region, &observed.arn, &tags.remove)
                .await?;
        }
        let changed: Vec<String> = attributes
            .iter()
            .map(|(a, v)| format!("{}={v}", a.as_aws_str()))
            .chain(tags.set.keys().map(|k| format!("tag {k}")))
            .chain(tags.remove.iter().map(|k| format!("untag {k}")))
            .collect();
        r.event(
            EventType::Normal,
            "Updated",
            &format!("Applied {}", changed.join(", ")),
        )
        .await;
    }

    let message = format!("Instance {} is ACTIVE and matches the spec", observed.id);
    r.set_state(State::Available, &message, |s| record_observed(s, observed))
        .await?;
    r.ctx.reset_attempts(r.key());
    Ok(requeue(r, State::Available))
}

fn requeue(r: &Reconciliation<'_>, state: State) -> Action {
    Action::requeue(r.requeue_after(state))
}

/// The drift-check period number, part of attribute tokens (see [`token::attribute_token`]).
fn drift_epoch(interval: Duration) -> u64 {
    let now = u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or_default();
    now / interval.as_secs().max(1)
}
