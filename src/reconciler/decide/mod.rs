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
//! One file on purpose, though long: Apply, Cleanup, adoption, ObserveOnly and the error
//! table are one decision table over the same inputs and observations, and reading it in
//! one place is how a row is checked against its neighbours. Its row tests are in
//! `tests.rs`.

pub mod configuration;

use std::collections::BTreeMap;
use std::time::Duration;

use kube::runtime::events::EventType;

use super::plan::{self, RetryPolicy, TagChanges};
use crate::api::{
    AttributeType, ConnectInstanceSpec, ConnectInstanceStatus, DeletionPolicy, UID_TAG,
};
use crate::aws::{
    AwsError, CreateInstanceRequest, ErrorKind, InstanceState, InstanceSummary, ObservedInstance,
    token,
};
use crate::conditions::State;

/// How long after an accepted DeleteInstance the same request is sent again (with the same
/// token, so AWS does not count a new attempt) if the instance is still there.
pub const DELETE_RESEND_AFTER: Duration = Duration::from_secs(300);

/// How long after CreateInstance answered an instance that DescribeInstance does not find
/// is taken for "not visible yet" rather than "gone": AWS does not document how long its
/// reads may lag a create.
pub const VISIBILITY_GRACE: Duration = Duration::from_secs(300);

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
    /// Whether the object carries the paused annotation.
    pub paused: bool,
    /// Instances this operator is following through creation in the object's account and
    /// region, this one included: creation polls share DescribeInstance's rate.
    pub creations_in_flight: usize,
    /// DescribeInstance calls per second that creation polls may use together.
    pub creation_polls_per_second: f64,
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
        }
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

/// The Apply path's decision.
#[must_use]
pub fn apply(inputs: &Inputs<'_>, observation: &Observation) -> Decision {
    let requeue = |state: State| settled(inputs, state);
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
        return Decision::new(inputs, requeue(state)).state(state, message);
    }
    match observation {
        Observation::Failed(err) => failure(inputs, err, None, Then::Requeue),
        Observation::BudgetRefused {
            used,
            budget,
            oldest_expires_at,
        } => budget_refused(inputs, *used, *budget, oldest_expires_at.as_deref()),
        Observation::Instance(described) if inputs.spec.instance_id.is_some() => {
            adoption(inputs, described)
        }
        Observation::Gone
            if inputs.spec.instance_id.is_some() && inputs.status.instance_id.is_none() =>
        {
            let id = inputs.spec.instance_id.as_deref().unwrap_or_default();
            let message = format!(
                "spec.instanceId {id} does not exist in {} (or these credentials cannot see it); nothing is adopted and nothing is created. Correct spec.instanceId or the region.",
                inputs.region
            );
            Decision::new(inputs, requeue(State::InstanceNotFound))
                .state(State::InstanceNotFound, message)
        }
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
                "The alias {alias:?} belongs to instance {} ({}), which this object did not create; the operator never takes over an instance it did not create. Choose another alias, or adopt that instance: set spec.instanceId: {} with an explicit spec.deletionPolicy (`connect-operator import --instance-id {}` prints such a manifest).",
                other.id, other.arn, other.id, other.id
            );
            Decision::new(inputs, requeue(State::AliasConflict))
                .state(State::AliasConflict, message)
        }
        Observation::Created { id, arn } => {
            // Recorded before anything else, so that a crash from here on cannot lose it.
            let message = format!("CreateInstance accepted: instance {id} is being created");
            Decision::new(inputs, Then::Requeue(creation_poll(inputs), Jitter::None))
                .state(State::Creating, message)
                .record(|s| {
                    s.instance_id = Some(id.clone());
                    s.arn = Some(arn.clone());
                    s.instance_status = Some(InstanceState::CreationInProgress.as_str().to_owned());
                    if s.create_requested_time.is_none() {
                        s.create_requested_time = rfc3339(inputs.now_epoch_seconds);
                    }
                })
                .failures(Failures::Reset)
        }
        Observation::Gone | Observation::DeleteFoundNothing => {
            let id = inputs.status.instance_id.as_deref().unwrap_or_default();
            if within_visibility_grace(inputs) {
                return Decision::new(inputs, Then::Requeue(creation_poll(inputs), Jitter::None))
                    .state(
                        State::Creating,
                        format!("Instance {id} was just created and is not visible in AWS yet"),
                    );
            }
            if inputs.status.instance_status.as_deref()
                == Some(InstanceState::CreationFailed.as_str())
            {
                // AWS removes failed instances by itself after a while: still a failed
                // creation, and nothing is left to delete.
                let message = format!(
                    "Instance {id} failed to be created and AWS has since removed it. The operator does not retry creation on its own (each attempt counts against the 30-day limit): delete this object (nothing is left to delete in AWS), then create it again."
                );
                return Decision::new(inputs, requeue(State::CreationFailed))
                    .state(State::CreationFailed, message);
            }
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
                .record(|s| {
                    record_observed(s, &described.instance);
                    record_configuration(inputs, s, described, &[]);
                })
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
        Observation::Configured {
            described,
            applied,
            failed,
        } => configured(inputs, described, applied, failed),
        // Not answers to any Apply write; treated as a fresh look being needed.
        Observation::DeleteAccepted => Decision::new(inputs, Then::ObserveAgain),
    }
}

/// The configuration writes for an ACTIVE instance under `Manage`.
fn configuration_changes(
    inputs: &Inputs<'_>,
    described: &Described,
) -> Vec<configuration::ConfigWrite> {
    let Some(observed) = &described.configuration else {
        return Vec::new();
    };
    let alias = described.instance.alias.as_deref().unwrap_or_default();
    configuration::configuration_writes(
        inputs.spec,
        alias,
        &inputs.status.storage_configs,
        observed,
        configuration::Intent {
            uid: inputs.uid,
            generation: inputs.generation,
            epoch: drift_epoch(inputs.now_epoch_seconds, inputs.retry.drift_interval),
        },
    )
}

/// Records the storage associations and security keys the operator manages.
fn record_configuration(
    inputs: &Inputs<'_>,
    status: &mut ConnectInstanceStatus,
    described: &Described,
    applied: &[(configuration::ConfigWrite, configuration::Applied)],
) {
    let Some(observed) = &described.configuration else {
        return;
    };
    let applied: Vec<configuration::Applied> = applied.iter().map(|(_, a)| a.clone()).collect();
    let (storage, keys) = configuration::recorded_after(
        inputs.spec,
        &inputs.status.storage_configs,
        observed,
        &applied,
    );
    status.storage_configs = storage;
    if inputs.spec.security_keys.is_some() {
        status.security_keys = keys;
    }
}

/// After configuration writes: Ready once they all succeeded (the next look confirms);
/// otherwise `ConfigurationFailed`, naming each item with AWS's answer, retried with
/// backoff.
fn configured(
    inputs: &Inputs<'_>,
    described: &Described,
    applied: &[(configuration::ConfigWrite, configuration::Applied)],
    failed: &[(configuration::ConfigWrite, AwsError)],
) -> Decision {
    let id = &described.instance.id;
    let done: Vec<String> = applied
        .iter()
        .map(|(write, _)| {
            let verb = if write.is_removal() {
                "removed"
            } else {
                "applied"
            };
            format!("{} {verb}", write.item(inputs.spec))
        })
        .collect();
    let record = |s: &mut ConnectInstanceStatus| {
        record_observed(s, &described.instance);
        record_configuration(inputs, s, described, applied);
    };
    let refused = described
        .configuration
        .as_ref()
        .map(|c| c.refused.as_slice())
        .unwrap_or_default();
    let mut decision = if failed.is_empty() && refused.is_empty() {
        Decision::new(inputs, Then::ObserveAgain)
            .state(
                State::Updating,
                format!("Configuration of instance {id} applied; checking it"),
            )
            .record(record)
    } else {
        let problems: Vec<String> = refused
            .iter()
            .map(|(item, e)| format!("{item}: {e}"))
            .chain(
                failed
                    .iter()
                    .map(|(write, e)| format!("{}: {}", write.item(inputs.spec), e)),
            )
            .collect();
        // The List calls before these writes found the instance, so a ResourceNotFound here
        // names the item's own resource (a bucket, a function), not a lagging instance.
        let message = format!(
            "{} of the configuration of instance {id} could not be applied (the rest was): {}",
            problems.len(),
            problems.join("; ")
        );
        Decision::new(
            inputs,
            Then::Requeue(
                plan::retry_after(&inputs.retry, State::ConfigurationFailed, inputs.failures),
                Jitter::Spread,
            ),
        )
        .state(State::ConfigurationFailed, message.clone())
        .record(record)
        .failures(Failures::Count)
        .event(EventType::Warning, "ConfigurationFailed", message)
    };
    if !done.is_empty() {
        decision = decision.event(
            EventType::Normal,
            "Configured",
            format!("Instance {id}: {}", done.join(", ")),
        );
    }
    decision
}

/// An instance named by `spec.instanceId`: adopted only if it is what the spec says and no
/// other object owns it; then followed like any other.
fn adoption(inputs: &Inputs<'_>, described: &Described) -> Decision {
    let observed = &described.instance;
    let stalled = |state: State, message: String| {
        Decision::new(inputs, settled(inputs, state)).state(state, message)
    };
    let mismatches = adoption_mismatches(inputs.spec, observed);
    if !mismatches.is_empty() {
        return stalled(
            State::AdoptionMismatch,
            format!(
                "Instance {} is not the one this spec describes: {}. Nothing was written; correct the spec (or spec.instanceId).",
                observed.id,
                mismatches.join("; ")
            ),
        );
    }
    let owner = described
        .tags
        .as_ref()
        .or(observed.tags.as_ref())
        .and_then(|tags| tags.get(UID_TAG));
    if let Some(owner) = owner.filter(|owner| owner.as_str() != inputs.uid) {
        return stalled(
            State::AlreadyManaged,
            format!(
                "Instance {} carries the tag {UID_TAG}={owner}: another ConnectInstance (here or in another cluster) manages it, and it is never taken over. Delete or release that object first (deletionPolicy: Retain), then remove the tag.",
                observed.id
            ),
        );
    }
    let mut decision = described_instance(inputs, described);
    if inputs.status.instance_id.is_none() {
        decision.status.instance_id = Some(observed.id.clone());
        if !observed.arn.is_empty() {
            decision.status.arn = Some(observed.arn.clone());
        }
        let (reason, note) = if inputs.spec.observe_only() {
            (
                "Observing",
                format!(
                    "Observing existing instance {} (spec.instanceId); nothing is ever written to AWS",
                    observed.id
                ),
            )
        } else {
            (
                "Adopted",
                format!(
                    "Adopted existing instance {} (spec.instanceId); it now converges to the spec",
                    observed.id
                ),
            )
        };
        decision = decision.event(EventType::Normal, reason, note);
    }
    decision
}

/// How an instance to adopt differs from the spec in what cannot be changed: identity
/// management type and alias (AWS's value, then the spec's).
fn adoption_mismatches(spec: &ConnectInstanceSpec, observed: &ObservedInstance) -> Vec<String> {
    let mut out = vec![];
    let wanted = spec.identity_management_type.as_aws_str();
    if let Some(actual) = observed.identity_management_type.as_deref()
        && actual != wanted
    {
        out.push(format!(
            "identityManagementType is {actual} in AWS, {wanted} in the spec"
        ));
    }
    if let Some(wanted) = spec.instance_alias.as_deref() {
        let actual = observed.alias.as_deref().unwrap_or("");
        if !actual.eq_ignore_ascii_case(wanted) {
            out.push(format!(
                "instanceAlias is {actual:?} in AWS, {wanted:?} in the spec"
            ));
        }
    }
    out
}

/// The recorded instance, as described.
fn described_instance(inputs: &Inputs<'_>, described: &Described) -> Decision {
    let observed = &described.instance;
    let id = &observed.id;
    match &observed.state {
        InstanceState::CreationInProgress => {
            Decision::new(inputs, Then::Requeue(creation_poll(inputs), Jitter::None))
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
        InstanceState::Active if inputs.spec.observe_only() => observed_only(inputs, described),
        InstanceState::Active => {
            let mut writes = convergence_writes(inputs, described);
            writes.extend(
                configuration_changes(inputs, described)
                    .into_iter()
                    .map(Write::Configure),
            );
            if writes.is_empty() {
                if described
                    .configuration
                    .as_ref()
                    .is_some_and(|c| !c.refused.is_empty())
                {
                    return configured(inputs, described, &[], &[]);
                }
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
            let configuration_writes = writes
                .iter()
                .filter(|w| matches!(w, Write::Configure(_)))
                .count();
            let message = format!(
                "Applying {attribute_writes} attribute change(s), {tag_writes} tag change(s) and {configuration_writes} configuration change(s) to instance {id}"
            );
            Decision {
                writes,
                // Transient under Manage: the writes that follow clear it.
                drift: drift_report(inputs, described),
                ..Decision::new(inputs, Then::ObserveAgain)
                    .state(State::Updating, message)
                    .record(|s| record_observed(s, observed))
            }
        }
    }
}

/// `ObserveOnly` and ACTIVE: report, never write. `Drifted` lists the differences and an
/// event marks each change of them.
fn observed_only(inputs: &Inputs<'_>, described: &Described) -> Decision {
    let observed = &described.instance;
    let drift = drift_report(inputs, described);
    let before = inputs
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == crate::conditions::types::DRIFTED && c.status == "True")
        .map(|c| c.message.clone());
    let message = match &drift {
        None => format!(
            "Instance {} is ACTIVE and matches the spec (ObserveOnly: nothing is written)",
            observed.id
        ),
        Some(_) => format!(
            "Instance {} is ACTIVE; it differs from the spec (see Drifted). ObserveOnly: nothing is written",
            observed.id
        ),
    };
    let mut decision = Decision {
        drift: drift.clone(),
        ..Decision::new(
            inputs,
            Then::Requeue(
                plan::retry_after(&inputs.retry, State::Observed, 0),
                Jitter::Spread,
            ),
        )
        .state(State::Observed, message)
        .record(|s| record_observed(s, observed))
        .failures(Failures::Reset)
    };
    if drift != before {
        decision = match drift {
            Some(list) => decision.event(EventType::Warning, "DriftDetected", list),
            None => decision.event(
                EventType::Normal,
                "DriftResolved",
                "The instance matches the spec again",
            ),
        };
    }
    decision
}

/// How AWS differs from the spec, for people: each managed attribute with AWS's and the
/// spec's value, each tag to add, change or remove. The operator's own uid tag is not part
/// of the spec and never listed. `None` when they agree.
fn drift_report(inputs: &Inputs<'_>, described: &Described) -> Option<String> {
    let mut out = vec![];
    if let Some(observed) = &described.attributes {
        for (attribute, wanted) in inputs.spec.desired_attributes() {
            let actual = observed.get(&attribute);
            if actual != Some(&wanted) {
                let actual = actual.map_or_else(|| "unset".to_owned(), bool::to_string);
                out.push(format!(
                    "{}: AWS {actual}, spec {wanted}",
                    attribute.as_aws_str()
                ));
            }
        }
    }
    if let Some(observed) = &described.tags {
        for (key, wanted) in &inputs.spec.tags {
            match observed.get(key) {
                Some(actual) if actual == wanted => {}
                Some(actual) => out.push(format!("tag {key}: AWS {actual:?}, spec {wanted:?}")),
                None => out.push(format!("tag {key}: missing in AWS, spec {wanted:?}")),
            }
        }
        for (key, actual) in observed {
            if !inputs.spec.tags.contains_key(key) && !key.starts_with("aws:") && key != UID_TAG {
                out.push(format!("tag {key}: AWS {actual:?}, not in the spec"));
            }
        }
    }
    if let Some(observed) = &described.configuration {
        out.extend(configuration::configuration_drift(
            inputs.spec,
            described.instance.alias.as_deref().unwrap_or_default(),
            &inputs.status.storage_configs,
            observed,
        ));
    }
    (!out.is_empty()).then(|| out.join("; "))
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
    let left_in_aws = |why: &str| match &inputs.status.instance_id {
        Some(id) => format!("{why}: instance {id} is left in AWS ({})", inputs.region),
        None => format!("{why}: nothing is deleted in AWS"),
    };
    if inputs.spec.effective_deletion_policy() == DeletionPolicy::Retain {
        return Decision::new(inputs, Then::Release).event(
            EventType::Normal,
            "Retained",
            left_in_aws("deletionPolicy is Retain"),
        );
    }
    if inputs.spec.observe_only() {
        // Admission requires Retain with ObserveOnly; whatever got past it, an observed
        // instance is never deleted.
        return Decision::new(inputs, Then::Release).event(
            EventType::Normal,
            "Retained",
            left_in_aws("managementPolicy is ObserveOnly"),
        );
    }
    let wait = Then::Pending(inputs.retry.drift_interval, Jitter::Spread);
    if inputs.paused {
        return Decision {
            paused: true,
            ..Decision::new(inputs, wait)
        }
        .event(
            EventType::Warning,
            "DeletionPaused",
            "The object is paused (connect.operators.dev/paused: \"true\"): the instance is not deleted and the finalizer stays until the annotation is removed or deletionPolicy is Retain",
        );
    }
    if inputs.spec.deletion_protection {
        return Decision::new(inputs, wait).state(
            State::DeletionProtected,
            "spec.deletionProtection is true: the instance is not deleted and the finalizer stays. Set spec.deletionProtection to false to delete it, or spec.deletionPolicy to Retain to keep it and release this object.",
        );
    }
    let deleted = |message: String| {
        Decision::new(inputs, Then::Release)
            .failures(Failures::Reset)
            .event(EventType::Normal, "Deleted", message)
    };
    if let (Some(id), None) = (&inputs.spec.instance_id, &inputs.status.instance_id) {
        // Adoption never happened (the instance did not match, or another object owns
        // it): it is not this object's to delete.
        return Decision::new(inputs, Then::Release)
            .failures(Failures::Reset)
            .event(
                EventType::Normal,
                "Released",
                format!("Instance {id} (spec.instanceId) was never adopted by this object; it is left untouched"),
            );
    }
    if let Some((state, message)) = inputs.account {
        if never_sent_create(inputs) {
            // Refused by its account from the start: nothing can exist in AWS for it.
            return Decision::new(inputs, Then::Release)
                .failures(Failures::Reset)
                .event(
                    EventType::Normal,
                    "Released",
                    format!("Nothing was ever sent to AWS for this object ({message}); nothing to delete"),
                );
        }
        // Its instance can only be deleted with the account's credentials: wait for the
        // account (a change of it wakes the object), keeping the finalizer.
        return Decision::new(inputs, Then::Pending(inputs.retry.drift_interval, Jitter::Spread))
            .state(
                state,
                format!("{message}. The instance cannot be deleted until the account is usable again; the finalizer stays (set spec.deletionPolicy to Retain to release the object and keep the instance)"),
            );
    }
    let recorded = inputs.status.instance_id.as_deref().unwrap_or_default();
    match observation {
        Observation::Failed(err) => failure(
            inputs,
            err,
            Some("Deleting the instance failed"),
            Then::Pending,
        ),
        // Never released without a look. (The budget never refuses a delete.)
        Observation::NotAsked | Observation::BudgetRefused { .. } => Decision::new(inputs, poll),
        Observation::Lookup(Lookup::Nothing | Lookup::Skipped | Lookup::Foreign(_)) => {
            deleted("No instance was created for this object; nothing to delete".to_owned())
        }
        Observation::Gone | Observation::DeleteFoundNothing if within_visibility_grace(inputs) => {
            // Not visible yet is not gone: releasing now could leave the instance behind.
            Decision::new(inputs, poll).state(
                State::Deleting,
                format!("Instance {recorded} was just created and is not visible in AWS yet; it is deleted once it is"),
            )
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
        Observation::Instance(described)
            if described.instance.state == InstanceState::CreationInProgress =>
        {
            // AWS may refuse to delete an instance that is still being created: wait for
            // creation to settle (ACTIVE or CREATION_FAILED), then send one DeleteInstance.
            Decision::new(inputs, Then::Pending(creation_poll(inputs), Jitter::None)).state(
                State::Deleting,
                format!(
                    "Instance {} is still being created; DeleteInstance is sent once creation has settled",
                    described.instance.id
                ),
            )
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
        Observation::Created { .. }
        | Observation::Converged(_)
        | Observation::Configured { .. } => Decision::new(inputs, Then::ObserveAgain),
    }
}

/// The wait between two looks at an instance being created: the poll interval, or longer
/// when so many creations are in flight in the account and region that polling them all
/// that often would use more than their share of DescribeInstance's rate. Derived from what
/// is in flight, not from how long creation has taken, so ACTIVE is seen within one
/// interval whatever the creation takes.
fn creation_poll(inputs: &Inputs<'_>) -> Duration {
    plan::creation_poll_interval(
        inputs.poll_interval,
        inputs.creations_in_flight,
        inputs.creation_polls_per_second,
    )
}

/// The next look after ending in a settled `state` (no failure streak), spread.
fn settled(inputs: &Inputs<'_>, state: State) -> Then {
    Then::Requeue(plan::retry_after(&inputs.retry, state, 0), Jitter::Spread)
}

/// Whether the step needs AWS at all. A paused object makes no call, nor one its account
/// refuses; a Cleanup that will
/// not delete (Retain, ObserveOnly, protected, an instance never adopted) has nothing to
/// ask. The same conditions, in the same order, open `cleanup`.
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

/// A create the account's attempt budget refused: Stalled until an attempt expires (the
/// requeue) or the budget is raised (a change of the account wakes the object).
fn budget_refused(inputs: &Inputs<'_>, used: u32, budget: u32, oldest: Option<&str>) -> Decision {
    let state = State::QuotaExceeded(crate::conditions::Quota::AttemptBudget);
    let account = inputs.spec.account_name();
    let expiry = oldest.map_or_else(String::new, |t| format!("; the oldest expires at {t}"));
    let message = format!(
        "ConnectAccount {account} has spent its attempt budget in {}: {used}/{budget} instance create and delete attempts in the last 30 days{expiry}. Nothing was sent to AWS. The object goes on by itself when an attempt expires or spec.lifecycleAttemptBudget is raised (at most 100: AWS's own limit locks the account for 30 days)",
        inputs.region
    );
    let until_expiry = since_until(inputs, oldest).unwrap_or(inputs.retry.quota_retry);
    let after = until_expiry
        .min(inputs.retry.quota_retry)
        .max(Duration::from_secs(1));
    Decision::new(inputs, Then::Requeue(after, Jitter::None)).state(state, message)
}

/// How long until an RFC 3339 time recorded in status (`None` if past or unreadable).
fn since_until(inputs: &Inputs<'_>, time: Option<&str>) -> Option<Duration> {
    time.and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_second().saturating_sub(inputs.now_epoch_seconds))
        .and_then(|secs| u64::try_from(secs).ok())
        .map(|secs| Duration::from_secs(secs + 1))
}

/// Whether the status proves that no CreateInstance was ever sent for the object: no
/// instance recorded, no CreateInstance answer recorded, and every condition written says
/// the object was refused by its account (or had not started).
fn never_sent_create(inputs: &Inputs<'_>) -> bool {
    let status = inputs.status;
    status.instance_id.is_none()
        && status.create_requested_time.is_none()
        && status.conditions.iter().all(|c| {
            c.type_ != crate::conditions::types::READY
                || matches!(c.reason.as_str(), "AccountNotFound" | "AccountNotAllowed")
        })
}

/// Whether an instance AWS does not show may only be not visible yet: CreateInstance
/// answered recently, DescribeInstance has never shown it (the creation time it reports is
/// not recorded), and no DeleteInstance was accepted for it (after which "not found" is
/// the deletion finishing).
fn within_visibility_grace(inputs: &Inputs<'_>) -> bool {
    let status = inputs.status;
    status.created_time.is_none()
        && status.delete_requested_time.is_none()
        && since(inputs, status.create_requested_time.as_deref())
            .is_some_and(|ago| ago < VISIBILITY_GRACE)
}

/// How long ago an RFC 3339 time recorded in status was.
fn since(inputs: &Inputs<'_>, time: Option<&str>) -> Option<Duration> {
    time.and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| inputs.now_epoch_seconds.saturating_sub(t.as_second()))
        .and_then(|secs| u64::try_from(secs).ok())
        .map(Duration::from_secs)
}

/// Whether DeleteInstance was accepted recently enough that the step should only poll:
/// by the time recorded in status (which survives restarts) and by this process's own
/// memory of its last resend.
fn delete_recently_sent(inputs: &Inputs<'_>) -> bool {
    let accepted_ago = since(inputs, inputs.status.delete_requested_time.as_deref());
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
