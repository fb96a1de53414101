//! The Cleanup path: release (`Retain`) or delete the instance and keep the finalizer until
//! AWS reports it gone. Never blocked by spec validation; every error is retried.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::status::{Reconciliation, Stop};
use super::{Context, Error};
use crate::api::{ConnectInstance, DeletionPolicy};
use crate::aws::{AwsError, token};
use crate::conditions::State;

/// How long after an accepted DeleteInstance the same request is sent again (with the same
/// token, so AWS does not count a new attempt) if the instance is still there.
const DELETE_RESEND_AFTER: Duration = Duration::from_secs(300);

pub(super) async fn cleanup(obj: Arc<ConnectInstance>, ctx: &Context) -> Result<Action, Error> {
    let mut r = Reconciliation::new(obj, ctx)?;
    if r.obj.spec.deletion_policy == DeletionPolicy::Retain {
        let message = match &r.status.instance_id {
            Some(id) => format!(
                "deletionPolicy is Retain: instance {id} is left in AWS ({})",
                r.region
            ),
            None => "deletionPolicy is Retain: nothing is deleted in AWS".to_owned(),
        };
        r.event(EventType::Normal, "Retained", &message).await;
        tracing::info!(%message, "releasing object");
        return Ok(Action::await_change());
    }
    match delete(&mut r).await {
        Ok(Some(message)) => {
            r.event(EventType::Normal, "Deleted", &message).await;
            tracing::info!(%message, "instance gone; removing finalizer");
            ctx.reset_attempts(r.key());
            ctx.forget_delete(r.key());
            Ok(Action::await_change())
        }
        Ok(None) => {
            ctx.reset_attempts(r.key());
            Err(Error::CleanupPending {
                reason: "waiting for AWS to finish deleting the instance".to_owned(),
                after: ctx.settings.creation_poll_interval,
            })
        }
        Err(Stop::Kube(e)) => Err(e),
        // Deletion never ends early with a plain requeue: anything short of "gone" keeps the
        // finalizer.
        Err(Stop::Done(_)) => Err(Error::CleanupPending {
            reason: "deletion not finished".to_owned(),
            after: ctx.settings.creation_poll_interval,
        }),
        Err(Stop::Aws(err)) => {
            let after = r
                .record_failure(&err, &format!("Deleting the instance failed: {err}"))
                .await?;
            Err(Error::CleanupPending {
                reason: err.to_string(),
                after,
            })
        }
    }
}

/// Deletes the instance. `Some(message)` when it is gone, `None` while AWS is deleting it.
async fn delete(r: &mut Reconciliation<'_>) -> Result<Option<String>, Stop> {
    let Some(instance_id) = find_recorded_or_tagged(r).await? else {
        return Ok(Some(
            "No instance was created for this object; nothing to delete".to_owned(),
        ));
    };
    if r.ctx
        .connect
        .describe_instance(&r.region, &instance_id)
        .await?
        .is_none()
    {
        return Ok(Some(format!("Instance {instance_id} is deleted")));
    }
    // Once DeleteInstance has been accepted, poll; re-send it (same token) only rarely.
    if recently_accepted(r) {
        return Ok(None);
    }
    let client_token = token::delete_token(&r.uid);
    if !r
        .ctx
        .connect
        .delete_instance(&r.region, &instance_id, &client_token)
        .await?
    {
        return Ok(Some(format!("Instance {instance_id} is deleted")));
    }
    r.ctx.record_delete_accepted(r.key());
    let message = format!(
        "DeleteInstance accepted for instance {instance_id}; waiting until AWS reports it gone"
    );
    r.set_state(State::Deleting, &message, |_| {}).await?;
    Ok(None)
}

/// The recorded instance id, or else one found by alias and uid tag (an instance whose
/// alias matches but that carries no uid tag of ours is someone else's and never deleted).
async fn find_recorded_or_tagged(r: &Reconciliation<'_>) -> Result<Option<String>, AwsError> {
    if let Some(id) = &r.status.instance_id {
        return Ok(Some(id.clone()));
    }
    Ok(r.lookup().await?.ours.map(|ours| ours.id))
}

fn recently_accepted(r: &Reconciliation<'_>) -> bool {
    r.ctx
        .delete_accepted_at(r.key())
        .is_some_and(|at| at.elapsed() < DELETE_RESEND_AFTER)
}
