//! The decision of one reconcile step: a pure function of the spec, the status and what the
//! step observed (or what its writes answered), giving the state to report, the status
//! fields to record, the AWS writes to send in order, the events and when to look again.
//!
//! Apply and Cleanup both run as a short loop of observe → decide → act: a write's outcome
//! (CreateInstance's new id, an accepted DeleteInstance, a failure) is itself an
//! observation that the next decision turns into status. The I/O lives in `apply.rs`,
//! `cleanup.rs` and `status.rs`; everything that chooses lives here, so the behaviour table
//! is tested row by row without a cluster or AWS.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::runtime::events::EventType;

use super::plan::{self, RetryPolicy, TagChanges};
use crate::api::{AttributeType, ConnectInstanceSpec, ConnectInstanceStatus, DeletionPolicy};
use crate::aws::{
    AwsError, CreateInstanceRequest, ErrorKind, InstanceState, InstanceSummary, ObservedInstance,
    token,
};
use crate::conditions::State;

/// How long after an accepted DeleteInstance the same request is sent again (with the same
/// token, so AWS does not count a new attempt) if the instance is still there.
pub const DELETE_RESEND_AFTER: Duration = Duration::from_secs(300);

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
    /// The first poll interval while an instance is being created or deleted.
    pub poll_interval: Duration,
    /// The object's consecutive failures so far.
    pub failures: u32,
    /// How long ago this process last sent DeleteInstance for the object, if it did.
    pub delete_sent_ago: Option<Duration>,
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
    /// DeleteInstance was accepted.
    DeleteAccepted,
    /// DeleteInstance answered ResourceNotFound.
    DeleteFoundNothing,
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
}

/// Randomness applied to a wait by the caller (the decision itself stays deterministic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// Exactly as given (poll intervals).
    None,
    /// Spread over [0.8, 1.2) of the wait, so objects do not march in step forever.
    Spread,
    /// Up to a quarter second added (the client-side limiter's next slot).
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
        }
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

/// The Apply path's decision.
#[must_use]
pub fn apply(inputs: &Inputs<'_>, observation: &Observation) -> Decision {
    let requeue =
        |state: State| Then::Requeue(plan::retry_after(&inputs.retry, state, 0), Jitter::Spread);
    match observation {
        Observation::Failed(err) => failure(inputs, err, None, Then::Requeue),
        // Apply always asks; nothing to decide on.
        Observation::NotAsked => Decision::new(
            inputs,
            Then::Requeue(inputs.retry.backoff_base, Jitter::Spread),
        ),
        Observation::Lookup(Lookup::Nothing | Lookup::Skipped) => Decision {
            writes: vec![Write::CreateInstance(create_request(inputs))],
            ..Decision::new(inputs, Then::ObserveAgain)
        },
        Observation::Lookup(Lookup::Ours(found)) => {
            let message = format!(
                "Found instance {} created earlier for this object; adopting it",
                found.id
            );
            Decision::new(inputs, Then::ObserveAgain)
                .state(State::Creating, &message)
                .record(|s| {
                    s.instance_id = Some(found.id.clone());
                    s.arn = Some(found.arn.clone());
                })
                .event(EventType::Normal, "Adopted", message)
        }
        Observation::Lookup(Lookup::Foreign(other)) => {
            let alias = inputs.spec.instance_alias.as_deref().unwrap_or_default();
            let message = format!(
                "The alias {alias:?} belongs to instance {} ({}), which this object did not create; the operator never takes over an instance it did not create. Choose another alias, or delete that instance.",
                other.id, other.arn
            );
            Decision::new(inputs, requeue(State::AliasConflict))
                .state(State::AliasConflict, message)
        }
        Observation::Created { id, arn } => {
            // Recorded before anything else, so that a crash from here on cannot lose it.
            let message = format!("CreateInstance accepted: instance {id} is being created");
            Decision::new(inputs, Then::Requeue(inputs.poll_interval, Jitter::None))
                .state(State::Creating, message)
                .record(|s| {
                    s.instance_id = Some(id.clone());
                    s.arn = Some(arn.clone());
                    s.instance_status = Some(InstanceState::CreationInProgress.as_str().to_owned());
                })
                .failures(Failures::Reset)
        }
        Observation::Gone | Observation::DeleteFoundNothing => {
            let id = inputs.status.instance_id.as_deref().unwrap_or_default();
            let message = format!(
                "Instance {id} recorded in status no longer exists in {}; it is not re-created automatically. Delete this object and create it again to get a new instance.",
                inputs.region
            );
            Decision::new(inputs, requeue(State::InstanceNotFound))
                .state(State::InstanceNotFound, message)
        }
        Observation::Instance(described) => described_instance(inputs, described),
        Observation::Converged(described) => {
            let message = format!(
                "Instance {} is ACTIVE and matches the spec",
                described.instance.id
            );
            let changed = described_changes(inputs, described);
            let mut decision = Decision::new(inputs, requeue(State::Available))
                .state(State::Available, message)
                .record(|s| record_observed(s, &described.instance))
                .failures(Failures::Reset);
            if !changed.is_empty() {
                decision = decision.event(
                    EventType::Normal,
                    "Updated",
                    format!("Applied {}", changed.join(", ")),
                );
            }
            decision
        }
        // Not answers to any Apply write; treated as a fresh look being needed.
        Observation::DeleteAccepted => Decision::new(inputs, Then::ObserveAgain),
    }
}

/// The recorded instance, as described.
fn described_instance(inputs: &Inputs<'_>, described: &Described) -> Decision {
    let observed = &described.instance;
    let id = &observed.id;
    match &observed.state {
        InstanceState::CreationInProgress => {
            let creating_for = observed.created_epoch_seconds.and_then(|created| {
                u64::try_from(inputs.now_epoch_seconds - created)
                    .ok()
                    .map(Duration::from_secs)
            });
            let after = plan::creation_poll_interval(inputs.poll_interval, creating_for);
            Decision::new(inputs, Then::Requeue(after, Jitter::None))
                .state(
                    State::Creating,
                    format!("Instance {id} is being created (CREATION_IN_PROGRESS)"),
                )
                .record(|s| record_observed(s, observed))
                .failures(Failures::Reset)
        }
        InstanceState::CreationFailed => {
            let message = format!(
                "Instance {id} failed to be created: {}. The operator does not retry creation on its own (each attempt counts against the 30-day limit): delete this object to clean up, then create it again.",
                observed
                    .status_reason
                    .as_deref()
                    .unwrap_or("no reason given")
            );
            Decision::new(
                inputs,
                Then::Requeue(
                    plan::retry_after(&inputs.retry, State::CreationFailed, 0),
                    Jitter::Spread,
                ),
            )
            .state(State::CreationFailed, message)
            .record(|s| record_observed(s, observed))
        }
        InstanceState::Unknown(other) => Decision::new(
            inputs,
            Then::Requeue(
                plan::retry_after(&inputs.retry, State::AwsError, inputs.failures),
                Jitter::Spread,
            ),
        )
        .state(
            State::AwsError,
            format!("Instance {id} is in a state this operator does not know: {other:?}"),
        )
        .record(|s| record_observed(s, observed))
        .failures(Failures::Count),
        InstanceState::Active => {
            let writes = convergence_writes(inputs, described);
            if writes.is_empty() {
                return apply(inputs, &Observation::Converged(Box::new(described.clone())));
            }
            let tag_writes = writes
                .iter()
                .map(|w| match w {
                    Write::Tag(set) => set.len(),
                    Write::Untag(keys) => keys.len(),
                    _ => 0,
                })
                .sum::<usize>();
            let attribute_writes = writes
                .iter()
                .filter(|w| matches!(w, Write::UpdateAttribute { .. }))
                .count();
            let message = format!(
                "Applying {attribute_writes} attribute change(s) and {tag_writes} tag change(s) to instance {id}"
            );
            Decision {
                writes,
                ..Decision::new(inputs, Then::ObserveAgain)
                    .state(State::Updating, message)
                    .record(|s| record_observed(s, observed))
            }
        }
    }
}

/// The attribute and tag writes that bring an ACTIVE instance to the spec, in order:
/// attributes (each with its token), then TagResource, then UntagResource.
fn convergence_writes(inputs: &Inputs<'_>, described: &Described) -> Vec<Write> {
    let (attributes, tags) = differences(inputs, described);
    let epoch = drift_epoch(inputs.now_epoch_seconds, inputs.retry.drift_interval);
    let mut writes: Vec<Write> = attributes
        .into_iter()
        .map(|(attribute, value)| Write::UpdateAttribute {
            attribute,
            value,
            client_token: token::attribute_token(
                inputs.uid,
                attribute,
                value,
                inputs.generation,
                epoch,
            ),
        })
        .collect();
    if !tags.set.is_empty() {
        writes.push(Write::Tag(tags.set));
    }
    if !tags.remove.is_empty() {
        writes.push(Write::Untag(tags.remove));
    }
    writes
}

fn differences(
    inputs: &Inputs<'_>,
    described: &Described,
) -> (Vec<(AttributeType, bool)>, TagChanges) {
    let attributes = described
        .attributes
        .as_ref()
        .map(|observed| plan::attribute_changes(&inputs.spec.desired_attributes(), observed))
        .unwrap_or_default();
    let tags = described
        .tags
        .as_ref()
        .map(|observed| plan::tag_changes(&inputs.spec.tags, inputs.uid, observed))
        .unwrap_or_default();
    (attributes, tags)
}

/// What the writes of the previous step changed, for the `Updated` event: the differences
/// between the spec and the instance as it was described before them.
fn described_changes(inputs: &Inputs<'_>, described: &Described) -> Vec<String> {
    let (attributes, tags) = differences(inputs, described);
    attributes
        .iter()
        .map(|(a, v)| format!("{}={v}", a.as_aws_str()))
        .chain(tags.set.keys().map(|k| format!("tag {k}")))
        .chain(tags.remove.iter().map(|k| format!("untag {k}")))
        .collect()
}

/// The Cleanup path's decision. Never blocked by the spec; every failure is retried and
/// nothing short of "gone" (or `Retain`) releases the finalizer.
#[must_use]
pub fn cleanup(inputs: &Inputs<'_>, observation: &Observation) -> Decision {
    let poll = Then::Pending(inputs.poll_interval, Jitter::None);
    if inputs.spec.deletion_policy == DeletionPolicy::Retain {
        let message = match &inputs.status.instance_id {
            Some(id) => format!(
                "deletionPolicy is Retain: instance {id} is left in AWS ({})",
                inputs.region
            ),
            None => "deletionPolicy is Retain: nothing is deleted in AWS".to_owned(),
        };
        return Decision::new(inputs, Then::Release).event(EventType::Normal, "Retained", message);
    }
    let deleted = |message: String| {
        Decision::new(inputs, Then::Release)
            .failures(Failures::Reset)
            .event(EventType::Normal, "Deleted", message)
    };
    let recorded = inputs.status.instance_id.as_deref().unwrap_or_default();
    match observation {
        Observation::Failed(err) => failure(
            inputs,
            err,
            Some("Deleting the instance failed"),
            Then::Pending,
        ),
        Observation::NotAsked
        | Observation::Lookup(Lookup::Nothing | Lookup::Skipped | Lookup::Foreign(_)) => {
            deleted("No instance was created for this object; nothing to delete".to_owned())
        }
        Observation::Gone | Observation::DeleteFoundNothing => {
            deleted(format!("Instance {recorded} is deleted"))
        }
        Observation::Lookup(Lookup::Ours(found)) => {
            // Recorded first, so that the next look describes it by id.
            Decision::new(inputs, Then::ObserveAgain).record(|s| {
                s.instance_id = Some(found.id.clone());
                s.arn = Some(found.arn.clone());
            })
        }
        Observation::Instance(described) => {
            let id = &described.instance.id;
            if delete_recently_sent(inputs) {
                return Decision::new(inputs, poll).failures(Failures::Reset);
            }
            Decision {
                writes: vec![Write::DeleteInstance {
                    instance_id: id.clone(),
                    client_token: token::delete_token(inputs.uid),
                }],
                ..Decision::new(inputs, Then::ObserveAgain)
            }
        }
        Observation::DeleteAccepted => {
            let message = format!(
                "DeleteInstance accepted for instance {recorded}; waiting until AWS reports it gone"
            );
            let now = inputs.now_epoch_seconds;
            Decision::new(inputs, poll)
                .state(State::Deleting, message)
                .record(|s| {
                    if s.delete_requested_time.is_none() {
                        s.delete_requested_time = rfc3339(now);
                    }
                })
                .failures(Failures::Reset)
        }
        // Not answers to any Cleanup write; look again.
        Observation::Created { .. } | Observation::Converged(_) => {
            Decision::new(inputs, Then::ObserveAgain)
        }
    }
}

/// Whether DeleteInstance was accepted recently enough that the step should only poll:
/// by the time recorded in status (which survives restarts) and by this process's own
/// memory of its last resend.
fn delete_recently_sent(inputs: &Inputs<'_>) -> bool {
    let accepted_ago = inputs
        .status
        .delete_requested_time
        .as_deref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| inputs.now_epoch_seconds.saturating_sub(t.as_second()))
        .and_then(|secs| u64::try_from(secs).ok())
        .map(Duration::from_secs);
    let recent = |ago: Option<Duration>| ago.is_some_and(|ago| ago < DELETE_RESEND_AFTER);
    recent(accepted_ago) || recent(inputs.delete_sent_ago)
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

fn create_request(inputs: &Inputs<'_>) -> CreateInstanceRequest {
    let spec = inputs.spec;
    CreateInstanceRequest {
        identity_management_type: spec.identity_management_type.as_aws_str().to_owned(),
        alias: spec.instance_alias.clone(),
        directory_id: spec.directory_id.clone(),
        inbound_calls_enabled: spec.inbound_calls_enabled,
        outbound_calls_enabled: spec.outbound_calls_enabled,
        tags: plan::desired_tags(&spec.tags, inputs.uid),
        client_token: token::create_token(inputs.uid),
    }
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

/// The drift-check period number, part of attribute tokens (see [`token::attribute_token`]).
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
