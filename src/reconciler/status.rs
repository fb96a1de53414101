//! One reconcile's view of its object: the status it last wrote, status writes (server-side
//! apply, only when something changed, bounded by a timeout) and events.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};

use kube::runtime::controller::Action;

use super::{Context, Error, FIELD_MANAGER, plan};
use crate::api::{ConnectInstance, ConnectInstanceStatus};
use crate::aws::{AwsError, ErrorKind, InstanceSummary, ObservedInstance};
use crate::conditions::{self, State, types};

/// Why a step of a reconcile stopped early.
pub(super) enum Stop {
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

/// What a lookup by alias and uid tag found.
pub(super) struct Lookup {
    /// The instance this object created (it carries our uid tag).
    pub ours: Option<InstanceSummary>,
    /// An instance with the same alias that this object did not create.
    pub foreign: Option<InstanceSummary>,
}

/// The object being reconciled and what the operator knows of its status.
pub(super) struct Reconciliation<'a> {
    pub ctx: &'a Context,
    pub obj: Arc<ConnectInstance>,
    api: Api<ConnectInstance>,
    pub uid: String,
    pub region: String,
    pub status: ConnectInstanceStatus,
}

impl<'a> Reconciliation<'a> {
    pub fn new(obj: Arc<ConnectInstance>, ctx: &'a Context) -> Result<Self, Error> {
        let namespace = obj
            .namespace()
            .ok_or(Error::MissingObjectKey("namespace"))?;
        let uid = obj.uid().ok_or(Error::MissingObjectKey("uid"))?;
        let status = obj.status.clone().unwrap_or_default();
        // The region recorded at creation wins: the instance stays where it was created even
        // if the operator's default region changes later.
        let region = status
            .region
            .clone()
            .or_else(|| obj.spec.region.clone())
            .unwrap_or_else(|| ctx.connect.default_region().to_owned());
        Ok(Self {
            ctx,
            api: Api::namespaced(ctx.client.clone(), &namespace),
            obj,
            uid,
            region,
            status,
        })
    }

    /// The key used for the per-object failure counter.
    pub fn key(&self) -> &str {
        &self.uid
    }

    /// The current `Ready` reason, if any.
    pub fn ready_reason(&self) -> Option<&str> {
        self.status
            .conditions
            .iter()
            .find(|c| c.type_ == types::READY)
            .map(|c| c.reason.as_str())
    }

    /// Writes the conditions for `state` (and whatever `update` changes in the status
    /// fields), only if the result differs from what is there. A change of the `Ready`
    /// reason is announced with an event; error states always are.
    pub async fn set_state(
        &mut self,
        state: State,
        message: &str,
        update: impl FnOnce(&mut ConnectInstanceStatus),
    ) -> Result<(), Error> {
        let generation = self.obj.metadata.generation;
        let mut next = self.status.clone();
        update(&mut next);
        next.observed_generation = generation;
        next.region = Some(self.region.clone());
        let now = Time(jiff::Timestamp::now());
        next.conditions =
            conditions::compute(state, message, generation, &self.status.conditions, &now);
        let reason_changed = self.ready_reason() != Some(state.reason());
        if next != self.status {
            self.write(&next).await?;
            self.status = next;
        }
        if reason_changed || state.is_error() {
            let kind = if state.is_error() {
                EventType::Warning
            } else {
                EventType::Normal
            };
            self.event(kind, state.reason(), message).await;
        }
        Ok(())
    }

    async fn write(&self, status: &ConnectInstanceStatus) -> Result<(), Error> {
        let patch = serde_json::json!({
            "apiVersion": ConnectInstance::api_version(&()),
            "kind": ConnectInstance::kind(&()),
            "status": status,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let timeout = self.ctx.settings.kube_write_timeout;
        let name = self.obj.name_any();
        tokio::time::timeout(
            timeout,
            self.api.patch_status(&name, &params, &Patch::Apply(&patch)),
        )
        .await
        .map_err(|_| Error::KubeTimeout(timeout))?
        .map_err(Error::Kube)?;
        self.ctx.metrics.status_patched();
        Ok(())
    }

    /// Looks for the instance this object created (alias + uid tag) among the account's
    /// instances in its region; also reports a foreign instance holding the alias.
    pub async fn lookup(&self) -> Result<Lookup, AwsError> {
        let instances = self.ctx.connect.list_instances(&self.region).await?;
        let alias = self.obj.spec.instance_alias.as_deref();
        let mut foreign = None;
        for candidate in plan::lookup_candidates(alias, &instances) {
            let tags = self
                .ctx
                .connect
                .list_tags(&self.region, &candidate.arn)
                .await?;
            if plan::is_ours(&tags, &self.uid) {
                return Ok(Lookup {
                    ours: Some(candidate.clone()),
                    foreign,
                });
            }
            foreign.get_or_insert_with(|| candidate.clone());
        }
        Ok(Lookup {
            ours: None,
            foreign,
        })
    }

    /// Turns an AWS failure into conditions, a Warning event and the failure metric, and
    /// returns when to try again. A refusal by the client-side rate limiter sent nothing to
    /// AWS: no condition changes, only a requeue for the expected slot.
    pub async fn record_failure(
        &mut self,
        err: &AwsError,
        message: &str,
    ) -> Result<Duration, Error> {
        if err.kind == ErrorKind::RateLimited {
            return Ok(err.retry_after.unwrap_or(Duration::from_secs(1))
                + Duration::from_millis(fastrand::u64(0..250)));
        }
        let state = plan::state_for_error(err);
        self.ctx.metrics.reconcile_failed(err.kind.as_str());
        tracing::warn!(error = %err, state = state.reason(), "AWS call failed; will retry");
        self.set_state(state, message, |_| {}).await?;
        Ok(self.backoff_after(state))
    }

    /// When to look again after ending in `state` with no failure streak (jittered).
    pub fn requeue_after(&self, state: State) -> Duration {
        Context::jittered(plan::retry_after(&self.ctx.settings.retry, state, 0))
    }

    /// When to look again after one more consecutive failure ending in `state` (jittered).
    pub fn backoff_after(&self, state: State) -> Duration {
        let attempt = self.ctx.next_attempt(self.key());
        Context::jittered(plan::retry_after(&self.ctx.settings.retry, state, attempt))
    }

    /// Publishes an event on the object. A failure is logged, never fails the reconcile.
    pub async fn event(&self, type_: EventType, reason: &str, note: &str) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note, 1024)),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        let reference = self.obj.object_ref(&());
        if let Err(e) = self.ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }
}

/// Copies what DescribeInstance reported into status fields.
pub(super) fn record_observed(status: &mut ConnectInstanceStatus, observed: &ObservedInstance) {
    status.instance_id = Some(observed.id.clone());
    if !observed.arn.is_empty() {
        status.arn = Some(observed.arn.clone());
    }
    status.instance_status = Some(observed.state.as_str().to_owned());
    status.status_reason.clone_from(&observed.status_reason);
    status.instance_access_url.clone_from(&observed.access_url);
    status.service_role.clone_from(&observed.service_role);
    status.created_time.clone_from(&observed.created_time);
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
