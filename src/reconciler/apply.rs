//! The Apply path: find or create the instance, follow its creation, converge it. The
//! choices are `decide::apply`'s; this runs them.

use std::sync::Arc;

use kube::runtime::controller::Action;

use super::decide::Then;
use super::status::Reconciliation;
use super::step::{self, Path};
use super::{Context, Error};
use crate::api::ConnectInstance;

pub(super) async fn apply(obj: Arc<ConnectInstance>, ctx: &Context) -> Result<Action, Error> {
    let mut r = Reconciliation::new(obj, ctx)?;
    r.initialize().await?;
    let after = match step::run(&mut r, Path::Apply).await? {
        Then::Requeue(after, jitter) | Then::Pending(after, jitter) => {
            super::jittered(after, jitter)
        }
        // Paused: removing the annotation wakes the object (the watch predicate sees it).
        Then::Idle => return Ok(Action::await_change()),
        Then::ObserveAgain | Then::Release => ctx.settings.creation_poll_interval,
    };
    Ok(Action::requeue(after))
}
