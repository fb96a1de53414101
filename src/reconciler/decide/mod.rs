//! The decision of one reconcile step: a pure function of the spec, the status and what the
//! step observed (or what its writes answered), giving the state to report, the status
//! fields to record, the AWS writes to send in order, the events and when to look again.
//!
//! Apply and Cleanup both run as a short loop of observe → decide → act: a write's outcome
//! (CreateInstance's new id, an accepted DeleteInstance, a failure) is itself an
//! observation that the next decision turns into status. The I/O lives in `apply.rs`,
//! `cleanup.rs` and `status.rs`; everything that chooses lives here, so the behaviour table
//! is tested row by row without a cluster or AWS.
//!
//! One decision table over the same inputs and observations, held by part. This file has
//! what every part shares: the inputs, observations, writes and the decision, the entry
//! points ([`apply`], which sends each observation to the part that decides it, [`cleanup`]
//! and [`asks_aws`]) and the error table. The parts:
//! - `lifecycle.rs`: where the instance comes from and how it goes: CreateInstance, the
//!   lookup by alias and uid tag, adoption of `spec.instanceId`, creation polls, the grace
//!   in which a new instance may not be visible yet, the attempt budget, and Cleanup;
//! - `attributes.rs`: an ACTIVE instance against the spec: attribute and tag writes,
//!   ObserveOnly and the `Drifted` report;
//! - [`configuration`]: the instance configuration (storage, approved origins, Lambda
//!   functions, Lex V2 bots, security keys);
//! - [`replica`]: the replica in the paired region and the traffic split.
//!
//! The rows are tested part by part under `tests/`.

mod attributes;
pub mod configuration;
mod lifecycle;
pub mod replica;

use std::collections::BTreeMap;
use std::time::Duration;

use kube::runtime::events::EventType;

use super::plan::{self, RetryPolicy};
use crate::api::{AttributeType, ConnectInstanceSpec, ConnectInstanceStatus, DeletionPolicy};
use crate::aws::{
    AwsError, CreateInstanceRequest, ErrorKind, InstanceSummary, ObservedInstance, TrafficSplit,
};
use crate::conditions::State;

pub use lifecycle::{DELETE_RESEND_AFTER, VISIBILITY_GRACE, cleanup};

/// Everything a decision depends on besides the observation.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    /// The desired state.
    pub spec: &'a ConnectInstanceSpec,
    /// The object's UID (tokens, the uid tag).
    pub uid: &'a str,
    /// `metadata.generation`.
    pub generation: i64,
    /// The status as last written.
    pub status: &'a ConnectInstanceStatus,
    /// The region the instance lives (or will live) in.
    pub region: &'a str,
    /// Now, seconds since the Unix epoch.
    pub now_epoch_seconds: i64,
    /// Retry and drift-check timing.
    pub retry: RetryPolicy,
    /// The object's consecutive failures so far.
    pub failures: u32,
    /// How long ago this process last sent DeleteInstance for the object, if it did.
    pub delete_sent_ago: Option<Duration>,
    /// Whether the object carries the paused annotation.
    pub paused: bool,
    /// How long until the next shared poll of the object's account and region (the
    /// instances being created or deleted there are looked at together).
    pub next_poll: Duration,
    /// Why the object may not reach AWS through its account (`AccountNotFound`,
    /// `AccountNotAllowed`), if it may not.
    pub account: Option<(State, &'a str)>,
}

/// What a lookup by alias and uid tag found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// An instance carrying this object's uid tag.
    Ours(InstanceSummary),
    /// No instance of ours; one with the same alias that this object did not create.
    Foreign(InstanceSummary),
    /// Nothing of ours and nothing in the way.
    Nothing,
    /// Not asked: a lookup found nothing moments ago (a creation waiting for its slot).
    Skipped,
}

/// The recorded instance as AWS describes it, with its attributes and tags when it is
/// ACTIVE (only then are they compared with the spec).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Described {
    /// DescribeInstance.
    pub instance: ObservedInstance,
    /// ListInstanceAttributes, when ACTIVE.
    pub attributes: Option<BTreeMap<AttributeType, bool>>,
    /// The instance's tags, when ACTIVE.
    pub tags: Option<BTreeMap<String, String>>,
    /// The configuration parts the spec manages, when ACTIVE (`None` before, or when the
    /// spec manages none).
    pub configuration: Option<configuration::ObservedConfiguration>,
    /// The default traffic distribution group and its split, when a replica the spec
    /// manages (or that is being removed) is complete.
    pub traffic: Option<replica::ObservedTraffic>,
}

/// What a step observed, or what its writes answered.
#[derive(Clone, Debug)]
pub enum Observation {
    /// Nothing was asked of AWS (Cleanup under `Retain`).
    NotAsked,
    /// No instance recorded: the lookup's result.
    Lookup(Lookup),
    /// The recorded instance.
    Instance(Box<Described>),
    /// DescribeInstance of the recorded instance answered ResourceNotFound.
    Gone,
    /// CreateInstance answered with the new instance.
    Created {
        /// Instance id.
        id: String,
        /// Instance ARN.
        arn: String,
    },
    /// The attribute and tag writes of the previous decision all succeeded.
    Converged(Box<Described>),
    /// The previous decision's writes included configuration writes: what each that
    /// succeeded changed, and each that failed with its error (the others were sent all
    /// the same).
    Configured {
        /// What was observed before the writes.
        described: Box<Described>,
        /// The configuration writes that succeeded, with what each changed.
        applied: Vec<(configuration::ConfigWrite, configuration::Applied)>,
        /// The configuration writes that failed.
        failed: Vec<(configuration::ConfigWrite, AwsError)>,
    },
    /// DeleteInstance was accepted.
    DeleteAccepted,
    /// ReplicateInstance answered with the replica's ARN.
    Replicated {
        /// The replica's region.
        region: String,
        /// The replica's ARN.
        arn: String,
    },
    /// AWS refused ReplicateInstance.
    ReplicateRefused {
        /// The replica's region.
        region: String,
        /// AWS's answer.
        error: AwsError,
    },
    /// UpdateTrafficDistribution succeeded with this split.
    TrafficUpdated(TrafficSplit),
    /// DeleteInstance of the replica was accepted.
    ReplicaDeleteAccepted {
        /// The replica's region.
        region: String,
    },
    /// The account's attempt budget refused the create: nothing was sent.
    BudgetRefused {
        /// Attempts counting now.
        used: u32,
        /// The budget.
        budget: u32,
        /// When the oldest counting attempt expires (RFC 3339), if known.
        oldest_expires_at: Option<String>,
    },
    /// DeleteInstance answered ResourceNotFound.
    DeleteFoundNothing,
    /// The shared poll of the account and region shows the instance as it was (still
    /// being created, or still there after DeleteInstance was accepted): nothing was
    /// described.
    Unchanged,
    /// An AWS call failed.
    Failed(AwsError),
}

/// One AWS write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// CreateInstance with the UID-derived token.
    CreateInstance(CreateInstanceRequest),
    /// UpdateInstanceAttribute with its token.
    UpdateAttribute {
        /// The attribute.
        attribute: AttributeType,
        /// Its desired value.
        value: bool,
        /// ClientToken for this intent.
        client_token: String,
    },
    /// An instance-configuration write.
    Configure(configuration::ConfigWrite),
    /// TagResource.
    Tag(BTreeMap<String, String>),
    /// UntagResource.
    Untag(Vec<String>),
    /// DeleteInstance with the UID-derived token.
    DeleteInstance {
        /// The instance.
        instance_id: String,
        /// ClientToken.
        client_token: String,
    },
    /// ReplicateInstance into the replica region.
    Replicate {
        /// The replica's region.
        region: String,
        /// The replica's alias.
        alias: String,
        /// ClientToken (uid and region).
        client_token: String,
    },
    /// UpdateTrafficDistribution of the default group.
    UpdateTraffic {
        /// The region the call is made in (the one that is to take the traffic).
        region: String,
        /// The group's ARN.
        group_arn: String,
        /// The split; empty parts are not sent.
        split: TrafficSplit,
    },
    /// DeleteInstance of the replica, in its region.
    DeleteReplica {
        /// The replica's region.
        region: String,
        /// The instance id (the replica's is the source's).
        instance_id: String,
        /// ClientToken (uid and region).
        client_token: String,
    },
}

/// Randomness applied to a wait by the caller (the decision itself stays deterministic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// Exactly as given (poll intervals).
    None,
    /// Spread over [0.8, 1.2) of the wait, so objects do not march in step forever.
    Spread,
    /// A little added (the client-side limiter's next slot; `aws::ratelimit::SLOT_JITTER`).
    Slot,
}

/// What comes after the decision's writes succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// Observe again within this reconcile (the next step needs a fresh look).
    ObserveAgain,
    /// Apply is done for now: look again after this long.
    Requeue(Duration, Jitter),
    /// Cleanup is done: remove the finalizer.
    Release,
    /// Cleanup is not done: keep the finalizer, look again after this long.
    Pending(Duration, Jitter),
    /// Nothing to do until the object changes (paused).
    Idle,
}

/// What happens to the object's consecutive-failure count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failures {
    /// Unchanged.
    Keep,
    /// Progress: back to zero.
    Reset,
    /// One more failure (the wait above already used the count before it).
    Count,
}

/// An event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// Normal or Warning.
    pub type_: EventType,
    /// The event reason.
    pub reason: &'static str,
    /// The message.
    pub note: String,
}

/// The outcome of one decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The state to report and its message; `None` leaves the conditions as they are.
    pub state: Option<(State, String)>,
    /// The status fields after this step (conditions are computed from `state`).
    pub status: ConnectInstanceStatus,
    /// AWS writes, sent in this order; the first failure stops the rest.
    pub writes: Vec<Write>,
    /// After the writes (or at once when there are none).
    pub then: Then,
    /// The failure count.
    pub failures: Failures,
    /// Events besides the one every change of `Ready` reason gets.
    pub events: Vec<Announcement>,
    /// How AWS differs from the spec (the `Drifted` condition's message), if it does.
    pub drift: Option<String>,
    /// The object is paused: the conditions stay as they are, plus `Paused=True`.
    pub paused: bool,
    /// The next look is the account and region's shared poll (the instance is being
    /// created, or deleted).
    pub poll: bool,
}

impl Decision {
    fn new(inputs: &Inputs<'_>, then: Then) -> Self {
        Self {
            state: None,
            status: inputs.status.clone(),
            writes: vec![],
            then,
            failures: Failures::Keep,
            events: vec![],
            drift: None,
            paused: false,
            poll: false,
        }
    }

    /// The next look is the shared poll.
    fn polls(mut self) -> Self {
        self.poll = true;
        self
    }

    /// A decision that only reports `state` (used for the first visit, too).
    #[must_use]
    pub fn report(inputs: &Inputs<'_>, state: State, message: &str) -> Self {
        Self::new(inputs, Then::ObserveAgain).state(state, message)
    }

    fn state(mut self, state: State, message: impl Into<String>) -> Self {
        self.state = Some((state, message.into()));
        self
    }

    fn failures(mut self, failures: Failures) -> Self {
        self.failures = failures;
        self
    }

    fn event(mut self, type_: EventType, reason: &'static str, note: impl Into<String>) -> Self {
        self.events.push(Announcement {
            type_,
            reason,
            note: note.into(),
        });
        self
    }

    fn record(mut self, update: impl FnOnce(&mut ConnectInstanceStatus)) -> Self {
        update(&mut self.status);
        self
    }
}

/// The Apply path's decision: a paused object or one its account refuses is decided
/// without AWS; otherwise each observation goes to the part that decides it.
#[must_use]
pub fn apply(inputs: &Inputs<'_>, observation: &Observation) -> Decision {
    if inputs.paused {
        // No AWS call at all; one status write says so; unpausing wakes the object.
        return Decision {
            paused: true,
            ..Decision::new(inputs, Then::Idle)
        };
    }
    if let Some((state, message)) = inputs.account {
        // No AWS call: the account is missing or does not select the namespace. A change
        // of either wakes the object; the requeue is only a safety net.
        return Decision::new(inputs, settled(inputs, state)).state(state, message);
    }
    match observation {
        Observation::Failed(err) => failure(inputs, err, None, Then::Requeue),
        Observation::BudgetRefused {
            used,
            budget,
            oldest_expires_at,
        } => lifecycle::budget_refused(inputs, *used, *budget, oldest_expires_at.as_deref()),
        Observation::Instance(described) if inputs.spec.instance_id.is_some() => {
            lifecycle::adoption(inputs, described)
        }
        Observation::Gone
            if inputs.spec.instance_id.is_some() && inputs.status.instance_id.is_none() =>
        {
            lifecycle::nothing_to_adopt(inputs)
        }
        // Apply always asks; nothing to decide on.
        Observation::NotAsked => Decision::new(
            inputs,
            Then::Requeue(inputs.retry.backoff_base, Jitter::Spread),
        ),
        Observation::Lookup(Lookup::Nothing | Lookup::Skipped) => lifecycle::create(inputs),
        Observation::Lookup(Lookup::Ours(found)) => lifecycle::found_ours(inputs, found),
        Observation::Lookup(Lookup::Foreign(other)) => lifecycle::alias_conflict(inputs, other),
        Observation::Created { id, arn } => lifecycle::created(inputs, id, arn),
        Observation::Gone | Observation::DeleteFoundNothing => lifecycle::vanished(inputs),
        Observation::Instance(described) => lifecycle::described_instance(inputs, described),
        Observation::Converged(described) => attributes::converged(inputs, described),
        Observation::Configured {
            described,
            applied,
            failed,
        } => configuration::configured(inputs, described, applied, failed),
        Observation::Unchanged => {
            Decision::new(inputs, Then::Requeue(inputs.next_poll, Jitter::None)).polls()
        }
        Observation::Replicated { region, arn } => replica::replicated(inputs, region, arn),
        Observation::ReplicateRefused { region, error } => replica::refused(inputs, region, error),
        Observation::TrafficUpdated(split) => replica::traffic_updated(inputs, split),
        Observation::ReplicaDeleteAccepted { region } => {
            replica::replica_delete_accepted(inputs, region, false)
        }
        // Not answers to any Apply write; treated as a fresh look being needed.
        Observation::DeleteAccepted => Decision::new(inputs, Then::ObserveAgain),
    }
}

/// What the shared poll may answer for this step instead of a DescribeInstance: on Apply,
/// an instance recorded as being created, while nothing asks for more (the Ready condition
/// was written for this generation with reason `Creating`); on Cleanup, an instance still
/// being created, or one whose DeleteInstance was accepted recently (until it is resent).
#[must_use]
pub fn awaited(inputs: &Inputs<'_>, cleanup: bool) -> Option<crate::reconciler::polls::Awaited> {
    use crate::reconciler::polls::Awaited;
    let status = inputs.status;
    status.instance_id.as_ref()?;
    let in_progress = status.instance_status.as_deref()
        == Some(crate::aws::InstanceState::CreationInProgress.as_str());
    if cleanup {
        if lifecycle::delete_recently_sent(inputs) {
            return Some(Awaited::Gone);
        }
        return in_progress.then_some(Awaited::Settled);
    }
    let creating = status.observed_generation == Some(inputs.generation)
        && status.conditions.iter().any(|c| {
            c.type_ == crate::conditions::types::READY && c.reason == State::Creating.reason()
        });
    (in_progress && creating && !inputs.paused && inputs.account.is_none())
        .then_some(Awaited::Settled)
}

/// Whether the step needs AWS at all. A paused object makes no call, nor one its account
/// refuses; a Cleanup that will not delete (Retain, ObserveOnly, protected, an instance
/// never adopted) has nothing to ask. The same conditions, in the same order, open
/// [`cleanup`] (in `lifecycle.rs`).
#[must_use]
pub fn asks_aws(inputs: &Inputs<'_>, cleanup: bool) -> bool {
    let spec = inputs.spec;
    let decided_without_aws = inputs.paused
        || inputs.account.is_some()
        || (cleanup
            && (spec.effective_deletion_policy() == DeletionPolicy::Retain
                || spec.observe_only()
                || spec.deletion_protection
                || (spec.instance_id.is_some() && inputs.status.instance_id.is_none())));
    !decided_without_aws
}

/// The next look after ending in a settled `state` (no failure streak), spread.
fn settled(inputs: &Inputs<'_>, state: State) -> Then {
    Then::Requeue(plan::retry_after(&inputs.retry, state, 0), Jitter::Spread)
}

/// A failed AWS call: the state its category means, a Warning, and the wait the error table
/// gives. A refusal by the client-side limiter sent nothing to AWS: it changes no condition
/// and waits for the limiter's slot.
fn failure(
    inputs: &Inputs<'_>,
    err: &AwsError,
    context: Option<&str>,
    then: impl Fn(Duration, Jitter) -> Then,
) -> Decision {
    if err.kind == ErrorKind::RateLimited {
        let after = err.retry_after.unwrap_or(Duration::from_secs(1));
        return Decision::new(inputs, then(after, Jitter::Slot));
    }
    let state = plan::state_for_error(err);
    let message = match context {
        Some(context) => format!("{context}: {err}"),
        None => err.to_string(),
    };
    Decision::new(
        inputs,
        then(
            plan::retry_after(&inputs.retry, state, inputs.failures),
            Jitter::Spread,
        ),
    )
    .state(state, message)
    .failures(Failures::Count)
}

/// Copies what DescribeInstance reported into status fields.
fn record_observed(status: &mut ConnectInstanceStatus, observed: &ObservedInstance) {
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

/// The drift-check period number, part of attribute tokens (see [`crate::aws::token::attribute_token`]).
fn drift_epoch(now_epoch_seconds: i64, interval: Duration) -> u64 {
    u64::try_from(now_epoch_seconds).unwrap_or_default() / interval.as_secs().max(1)
}

fn rfc3339(epoch_seconds: i64) -> Option<String> {
    jiff::Timestamp::from_second(epoch_seconds)
        .ok()
        .map(|t| t.to_string())
}

#[cfg(test)]
mod tests;
