//! The Apply path: find or create the instance, follow its creation, converge it.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::plan;
use super::status::{Reconciliation, record_observed};
use super::{Context, Error};
use crate::api::ConnectInstance;
use crate::aws::{
    AwsError, CreateInstanceRequest, ErrorKind, InstanceState, ObservedInstance, token,
};
use crate::conditions::State;

/// How long a lookup that found no instance of the object's is trusted.
const LOOKUP_REUSE: Duration = Duration::from_secs(300);

/// Why a step stopped early.
enum Stop {
    /// An AWS call failed: becomes a condition and a requeue.
    Aws(AwsError),
    /// A Kubernetes write failed: goes to the error policy.
    Kube(Error),
    /// The step already set the state; requeue with this action.
    Done(Action),
}

impl From<AwsError> for Stop {
    fn from(e: AwsError) -> Self {
        Self::Aws(e)
    }
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Self::Kube(e)
    }
}

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
        Err(Stop::Aws(e)) => handle_aws_error(&mut r, e).await,
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
            let attempt = r.ctx.next_attempt(r.key());
            Ok(Action::requeue(Context::jittered(plan::retry_after(
                &r.ctx.settings.retry,
                State::AwsError,
                attempt,
            ))))
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

/// Looks for the instance this object created earlier (alias + uid tag); stops with
/// `AliasConflict` when the alias belongs to an instance it did not create.
async fn find_ours(r: &mut Reconciliation<'_>) -> Result<Option<String>, Stop> {
    let alias = r.obj.spec.instance_alias.clone();
    let instances = r.ctx.connect.list_instances(&r.region).await?;
    let mut foreign = None;
    for candidate in plan::lookup_candidates(alias.as_deref(), &instances) {
        let tags = r.ctx.connect.list_tags(&r.region, &candidate.arn).await?;
        if plan::is_ours(&tags, &r.uid) {
            let (id, arn) = (candidate.id.clone(), candidate.arn.clone());
            let message =
                format!("Found instance {id} created earlier for this object; adopting it");
            r.set_state(State::Creating, &message, |s| {
                s.instance_id = Some(id.clone());
                s.arn = Some(arn);
            })
            .await?;
            r.event(EventType::Normal, "Adopted", &message).await;
            return Ok(Some(id));
        }
        foreign.get_or_insert_with(|| candidate.clone());
    }
    if let (Some(other), Some(alias)) = (foreign, alias.as_deref()) {
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

/// Turns an AWS failure into conditions, an event and a requeue.
async fn handle_aws_error(r: &mut Reconciliation<'_>, err: AwsError) -> Result<Action, Error> {
    if err.kind == ErrorKind::RateLimited {
        // Nothing was sent: not an error, just not now.
        return Ok(Action::requeue(
            err.retry_after.unwrap_or(Duration::from_secs(1))
                + Duration::from_millis(fastrand::u64(0..250)),
        ));
    }
    let state = plan::state_for_error(&err);
    r.ctx.metrics.reconcile_failed(err.kind.as_str());
    tracing::warn!(error = %err, state = state.reason(), "AWS call failed");
    r.set_state(state, &err.to_string(), |_| {}).await?;
    let attempt = r.ctx.next_attempt(r.key());
    Ok(Action::requeue(Context::jittered(plan::retry_after(
        &r.ctx.settings.retry,
        state,
        attempt,
    ))))
}

fn requeue(r: &Reconciliation<'_>, state: State) -> Action {
    Action::requeue(Context::jittered(plan::retry_after(
        &r.ctx.settings.retry,
        state,
        0,
    )))
}

/// The drift-check period number, part of attribute tokens (see [`token::attribute_token`]).
fn drift_epoch(interval: Duration) -> u64 {
    let now = u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or_default();
    now / interval.as_secs().max(1)
}
