//! One reconcile's view of its object: the version it decides from, the status it last
//! wrote, the decision's status and conditions committed by server-side apply (only when
//! something changed, and only onto the version decided from), and events.
//!
//! Decisions are made from the watch's cache, which may be behind (a watch that missed
//! events until it was re-established, a list served by a lagging API server). So a status
//! write names the `resourceVersion` it was computed from and is refused if the object
//! changed since, and before anything irreversible (CreateInstance, DeleteInstance) the
//! object is read afresh from the API server: a reconcile whose version is not the current
//! one starts over from the current one ([`Error::Stale`]).

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::decide::{Decision, Inputs};
use super::{Context, Error};
use crate::accounts::Resolution;
use crate::api::{ConnectInstance, ConnectInstanceStatus};
use crate::aws::Target;
use crate::conditions::{self, State, types};

/// The object being reconciled and what the operator knows of its status.
pub(super) struct Reconciliation<'a> {
    pub ctx: &'a Context,
    pub obj: Arc<ConnectInstance>,
    api: Api<ConnectInstance>,
    pub uid: String,
    pub region: String,
    /// The account the object uses, or why it may not reach AWS.
    pub account: Resolution,
    /// Where the object's AWS calls go (`None` when the account refuses it).
    pub target: Option<Target>,
    pub status: ConnectInstanceStatus,
    /// The version decided from: the object's as read, then that of each status written.
    resource_version: Option<String>,
}

impl<'a> Reconciliation<'a> {
    pub fn new(obj: Arc<ConnectInstance>, ctx: &'a Context) -> Result<Self, Error> {
        let namespace = obj
            .namespace()
            .ok_or(Error::MissingObjectKey("namespace"))?;
        let uid = obj.uid().ok_or(Error::MissingObjectKey("uid"))?;
        let status = obj.status.clone().unwrap_or_default();
        let region = obj.region(ctx.connect.default_region());
        let account = ctx.directory.resolve(&obj);
        let target = account.target(&region);
        Ok(Self {
            ctx,
            api: Api::namespaced(ctx.client.clone(), &namespace),
            resource_version: obj.resource_version(),
            obj,
            uid,
            region,
            account,
            target,
            status,
        })
    }

    /// What a decision needs besides the observation.
    pub fn inputs(&self) -> Inputs<'_> {
        Inputs {
            spec: &self.obj.spec,
            uid: &self.uid,
            generation: self.obj.metadata.generation.unwrap_or_default(),
            status: &self.status,
            region: &self.region,
            now_epoch_seconds: jiff::Timestamp::now().as_second(),
            retry: self.ctx.settings.retry,
            failures: self.ctx.memory.failures(&self.uid),
            delete_sent_ago: self.ctx.memory.delete_sent_ago(&self.uid),
            paused: self.obj.is_paused(),
            next_poll: match self.target.as_ref() {
                Some(target) => self.ctx.polls.next_poll(target),
                None => self.ctx.settings.creation_poll_interval,
            },
            account: self.account.refusal(),
        }
    }

    /// The current `Ready` reason, if any.
    fn ready_reason(&self) -> Option<&str> {
        self.status
            .conditions
            .iter()
            .find(|c| c.type_ == types::READY)
            .map(|c| c.reason.as_str())
    }

    /// Writes the decision's status (and the conditions of its state), only if the result
    /// differs from what is there, then publishes its events. A change of the `Ready` reason
    /// is announced with an event; error states always are.
    pub async fn commit(&mut self, decision: &Decision) -> Result<(), Error> {
        let mut next = decision.status.clone();
        let mut announce = None;
        let generation = self.obj.metadata.generation;
        let now = Time(jiff::Timestamp::now());
        if decision.paused {
            // Ready and observedGeneration stay as they were: a paused object keeps its
            // last Ready, and a spec change made while paused shows as not yet observed.
            next.conditions = conditions::paused(&self.status.conditions, generation, &now);
        } else if let Some((state, message)) = &decision.state {
            next.observed_generation = generation;
            next.region = Some(self.region.clone());
            if let Resolution::Usable {
                account_id: Some(id),
                ..
            } = &self.account
            {
                next.account_id = Some(id.clone());
            }
            next.conditions = conditions::compute(
                *state,
                message,
                generation,
                &self.status.conditions,
                &now,
                decision.drift.as_deref(),
            );
            if self.ready_reason() != Some(state.reason()) || state.is_error() {
                announce = Some((*state, message.as_str()));
            }
            if state.is_error() {
                tracing::warn!(state = state.reason(), %message, "reconcile ended in an error state");
            }
        }
        if !decision.paused {
            // Unpaused: whatever else this step decided, Paused goes.
            next.conditions
                .retain(|c| c.type_ != conditions::types::PAUSED);
        }
        if next == ConnectInstanceStatus::default() && next != self.status {
            // An object whose only status was `Paused` (paused from its creation), released
            // unpaused: an empty applied status would make server-side apply drop every
            // field it owns and leave `status: null`, which the schema refuses, so the
            // finalizer could never be removed. The generation it describes keeps it an
            // object.
            next.observed_generation = generation;
        }
        if next != self.status {
            match self.write(&next).await {
                // What AWS answered to a write already sent (a new instance's id, an
                // accepted deletion) must be recorded, whatever else changed in the
                // object meanwhile: the status is the operator's alone, so it is written
                // again onto the current version.
                Err(Error::Stale) if records_an_answer(&self.status, &next) => {
                    self.adopt_current_version().await?;
                    self.write(&next).await?;
                }
                other => other?,
            }
            self.status = next;
        }
        if let Some((state, message)) = announce {
            self.event(event_type(state), state.reason(), message).await;
        }
        for event in &decision.events {
            self.event(event.type_, event.reason, &event.note).await;
        }
        Ok(())
    }

    /// Writes `Ready=Unknown/Initializing` on the first visit (a paused object's first
    /// write is its `Paused` condition instead).
    pub async fn initialize(&mut self) -> Result<(), Error> {
        if !self.status.conditions.is_empty() || self.obj.is_paused() {
            return Ok(());
        }
        let decision = Decision::report(
            &self.inputs(),
            State::Initializing,
            "Looking for an existing instance before creating one",
        );
        self.commit(&decision).await
    }

    async fn write(&mut self, status: &ConnectInstanceStatus) -> Result<(), Error> {
        let written = self
            .ctx
            .reporter
            .apply_status(
                &self.api,
                &self.obj.name_any(),
                status,
                self.resource_version.as_deref(),
            )
            .await?;
        self.resource_version = written.resource_version();
        Ok(())
    }

    /// Takes the object's current version as the one to write onto (the same object: a
    /// replaced or vanished one is [`Error::Stale`]).
    async fn adopt_current_version(&mut self) -> Result<(), Error> {
        let current = self
            .api
            .get_opt(&self.obj.name_any())
            .await
            .map_err(Error::Kube)?;
        match current {
            Some(current) if current.uid() == self.obj.uid() => {
                self.resource_version = current.resource_version();
                Ok(())
            }
            _ => Err(Error::Stale),
        }
    }

    /// Reads the object from the API server and fails with [`Error::Stale`] unless it is
    /// still at the version this reconcile decided from (or has gone). Called before an
    /// irreversible write: a decision to create or delete an instance is never made from a
    /// cache that missed an update.
    pub async fn ensure_current(&self) -> Result<(), Error> {
        let current = self
            .api
            .get_opt(&self.obj.name_any())
            .await
            .map_err(Error::Kube)?;
        let Some(current) = current else {
            tracing::info!("the object is gone; nothing more to do for it");
            return Err(Error::Stale);
        };
        if current.resource_version() == self.resource_version && current.uid() == self.obj.uid() {
            Ok(())
        } else {
            tracing::info!(
                decided_from = self.resource_version.as_deref().unwrap_or_default(),
                current = current.resource_version().unwrap_or_default(),
                "the object changed since this reconcile read it; deciding again"
            );
            Err(Error::Stale)
        }
    }

    /// Publishes an event on the object. A failure is logged, never fails the reconcile.
    pub async fn event(&self, type_: EventType, reason: &str, note: &str) {
        self.ctx
            .reporter
            .publish(&self.obj.object_ref(&()), type_, reason, note, "Reconcile")
            .await;
    }
}

/// Whether `next` records something AWS answered that no later look can be sure to find
/// again: a new instance id (a lookup may not see it yet) or when a deletion was accepted.
fn records_an_answer(before: &ConnectInstanceStatus, next: &ConnectInstanceStatus) -> bool {
    (next.instance_id.is_some() && next.instance_id != before.instance_id)
        || (next.delete_requested_time.is_some()
            && next.delete_requested_time != before.delete_requested_time)
}

fn event_type(state: State) -> EventType {
    if state.is_error() {
        EventType::Warning
    } else {
        EventType::Normal
    }
}
