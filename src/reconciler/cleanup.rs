//! The Cleanup path: release (`Retain`) or delete the instance and keep the finalizer until
//! AWS reports it gone. The choices are `decide::cleanup`'s; this runs them and turns
//! anything short of "gone" into a pending cleanup, so the finalizer stays.

use std::sync::Arc;

use kube::runtime::controller::Action;

use super::decide::Then;
use super::status::Reconciliation;
use super::step::{self, Path};
use super::{Context, Error};
use crate::accounts::Wake;
use crate::api::{ConnectInstance, DeletionPolicy};

pub(super) async fn cleanup(obj: Arc<ConnectInstance>, ctx: &Context) -> Result<Action, Error> {
    let mut r = Reconciliation::new(obj, ctx)?;
    match step::run(&mut r, Path::Cleanup).await? {
        Then::Release => {
            tracing::info!("cleanup done; removing finalizer");
            ctx.memory.forget(&r.uid);
            ctx.polls.unfollow(&r.uid);
            // An instance of ours is gone from its account and region: objects waiting
            // there for room under the instance quota may try now.
            let deleted = r.obj.spec.effective_deletion_policy() == DeletionPolicy::Delete
                && r.status.instance_id.is_some();
            if let (true, Some(target)) = (deleted, &r.target) {
                ctx.directory.wake(Wake::CapacityFreed {
                    account: r.obj.spec.account_name().to_owned(),
                    account_id: target.account_id.clone(),
                    region: target.region.clone(),
                });
            }
            Ok(Action::await_change())
        }
        Then::Pending(after, jitter) | Then::Requeue(after, jitter) => Err(Error::CleanupPending {
            reason: pending_reason(&r),
            after: super::jittered(after, jitter),
        }),
        Then::ObserveAgain | Then::Idle => Err(Error::CleanupPending {
            reason: pending_reason(&r),
            after: ctx.settings.creation_poll_interval,
        }),
    }
}

fn pending_reason(r: &Reconciliation<'_>) -> String {
    r.status
        .condition_message(crate::conditions::types::READY)
        .unwrap_or("waiting for AWS to finish deleting the instance")
        .to_owned()
}
