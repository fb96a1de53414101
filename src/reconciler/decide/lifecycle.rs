//! The lifecycle part of the decision table: where an object's instance comes from and how
//! it goes. CreateInstance with the UID token (unless the account's attempt budget refuses
//! it, and then nothing is sent), the lookup by alias and uid tag that finds an instance created
//! earlier or one in the way, adoption of `spec.instanceId` (only an instance that is what
//! the spec says and that no other object owns), the polls that follow a creation (sharing
//! DescribeInstance's rate with the other creations in flight), the grace in which a new
//! instance may not be visible yet, an instance that vanished, and Cleanup: one
//! DeleteInstance, resent only after a while, the finalizer released only once AWS reports
//! the instance gone or the policy keeps it.

use std::time::Duration;

use kube::runtime::events::EventType;

use super::{
    Decision, Described, Failures, Inputs, Jitter, Lookup, Observation, Then, Write, attributes,
    failure, record_observed, rfc3339, settled,
};
use crate::api::{ConnectInstanceSpec, DeletionPolicy, UID_TAG};
use crate::aws::{CreateInstanceRequest, InstanceState, InstanceSummary, ObservedInstance, token};
use crate::conditions::State;
use crate::reconciler::plan;

/// How long after an accepted DeleteInstance the same request is sent again (with the same
/// token, so AWS does not count a new attempt) if the instance is still there.
pub const DELETE_RESEND_AFTER: Duration = Duration::from_secs(300);

/// How long after CreateInstance answered an instance that DescribeInstance does not find
/// is taken for "not visible yet" rather than "gone": AWS does not document how long its
/// reads may lag a create.
pub const VISIBILITY_GRACE: Duration = Duration::from_secs(300);

/// No instance recorded and none found: CreateInstance.
pub(super) fn create(inputs: &Inputs<'_>) -> Decision {
    Decision {
        writes: vec![Write::CreateInstance(create_request(inputs))],
        ..Decision::new(inputs, Then::ObserveAgain)
    }
}

/// CreateInstance as the spec says, with the spec's tags plus the uid tag and the
/// UID-derived token.
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

/// The lookup found an instance carrying this object's uid tag (made by an earlier
/// CreateInstance whose answer was never recorded): it is recorded and followed, never
/// created again.
pub(super) fn found_ours(inputs: &Inputs<'_>, found: &InstanceSummary) -> Decision {
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

/// The alias belongs to an instance this object did not create: never taken over.
pub(super) fn alias_conflict(inputs: &Inputs<'_>, other: &InstanceSummary) -> Decision {
    let alias = inputs.spec.instance_alias.as_deref().unwrap_or_default();
    let message = format!(
        "The alias {alias:?} belongs to instance {} ({}), which this object did not create; the operator never takes over an instance it did not create. Choose another alias, or adopt that instance: set spec.instanceId: {} with an explicit spec.deletionPolicy (`connect-operator import --instance-id {}` prints such a manifest).",
        other.id, other.arn, other.id, other.id
    );
    Decision::new(inputs, settled(inputs, State::AliasConflict))
        .state(State::AliasConflict, message)
}

/// CreateInstance answered: the new instance is recorded before anything else, so that a
/// crash from here on cannot lose it, then its creation is polled.
pub(super) fn created(inputs: &Inputs<'_>, id: &str, arn: &str) -> Decision {
    let message = format!("CreateInstance accepted: instance {id} is being created");
    Decision::new(inputs, Then::Requeue(inputs.next_poll, Jitter::None))
        .polls()
        .state(State::Creating, message)
        .record(|s| {
            s.instance_id = Some(id.to_owned());
            s.arn = Some(arn.to_owned());
            s.instance_status = Some(InstanceState::CreationInProgress.as_str().to_owned());
            if s.create_requested_time.is_none() {
                s.create_requested_time = rfc3339(inputs.now_epoch_seconds);
            }
        })
        .failures(Failures::Reset)
}

/// A create the account's attempt budget refused: Stalled until an attempt expires (the
/// requeue) or the budget is raised (a change of the account wakes the object).
pub(super) fn budget_refused(
    inputs: &Inputs<'_>,
    used: u32,
    budget: u32,
    oldest: Option<&str>,
) -> Decision {
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

/// The recorded instance, as described: its creation followed until it settles; once
/// ACTIVE, compared with the spec (`attributes`).
pub(super) fn described_instance(inputs: &Inputs<'_>, described: &Described) -> Decision {
    let observed = &described.instance;
    let id = &observed.id;
    match &observed.state {
        InstanceState::CreationInProgress => {
            Decision::new(inputs, Then::Requeue(inputs.next_poll, Jitter::None))
                .polls()
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
        InstanceState::Active if inputs.spec.observe_only() => {
            attributes::observed_only(inputs, described)
        }
        InstanceState::Active => attributes::converge(inputs, described),
    }
}

/// The recorded instance is not found (on Apply): not visible yet within the grace after
/// CreateInstance, a failed creation AWS has since removed, or gone; never re-created on
/// its own.
pub(super) fn vanished(inputs: &Inputs<'_>) -> Decision {
    let id = inputs.status.instance_id.as_deref().unwrap_or_default();
    if within_visibility_grace(inputs) {
        return Decision::new(inputs, Then::Requeue(inputs.next_poll, Jitter::None))
            .polls()
            .state(
                State::Creating,
                format!("Instance {id} was just created and is not visible in AWS yet"),
            );
    }
    if inputs.status.instance_status.as_deref() == Some(InstanceState::CreationFailed.as_str()) {
        // AWS removes failed instances by itself after a while: still a failed
        // creation, and nothing is left to delete.
        let message = format!(
            "Instance {id} failed to be created and AWS has since removed it. The operator does not retry creation on its own (each attempt counts against the 30-day limit): delete this object (nothing is left to delete in AWS), then create it again."
        );
        return Decision::new(inputs, settled(inputs, State::CreationFailed))
            .state(State::CreationFailed, message);
    }
    let message = format!(
        "Instance {id} recorded in status no longer exists in {}; it is not re-created automatically. Delete this object and create it again to get a new instance.",
        inputs.region
    );
    Decision::new(inputs, settled(inputs, State::InstanceNotFound))
        .state(State::InstanceNotFound, message)
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
pub(super) fn since(inputs: &Inputs<'_>, time: Option<&str>) -> Option<Duration> {
    time.and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| inputs.now_epoch_seconds.saturating_sub(t.as_second()))
        .and_then(|secs| u64::try_from(secs).ok())
        .map(Duration::from_secs)
}

/// An instance named by `spec.instanceId`: adopted only if it is what the spec says and no
/// other object owns it; then followed like any other.
pub(super) fn adoption(inputs: &Inputs<'_>, described: &Described) -> Decision {
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

/// `spec.instanceId` names an instance that does not exist: nothing is adopted and
/// nothing is created.
pub(super) fn nothing_to_adopt(inputs: &Inputs<'_>) -> Decision {
    let id = inputs.spec.instance_id.as_deref().unwrap_or_default();
    let message = format!(
        "spec.instanceId {id} does not exist in {} (or these credentials cannot see it); nothing is adopted and nothing is created. Correct spec.instanceId or the region.",
        inputs.region
    );
    Decision::new(inputs, settled(inputs, State::InstanceNotFound))
        .state(State::InstanceNotFound, message)
}

/// The Cleanup path's decision. Never blocked by the spec; every failure is retried and
/// nothing short of "gone" (or `Retain`) releases the finalizer.
#[must_use]
pub fn cleanup(inputs: &Inputs<'_>, observation: &Observation) -> Decision {
    // The shared poll of the account and region: every instance being deleted (or still
    // being created) there is looked at together.
    let poll = Then::Pending(inputs.next_poll, Jitter::None);
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
            Decision::new(inputs, poll).polls().state(
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
            Decision::new(inputs, poll).polls().state(
                State::Deleting,
                format!(
                    "Instance {} is still being created; DeleteInstance is sent once creation has settled",
                    described.instance.id
                ),
            )
        }
        Observation::Instance(described) => {
            let id = &described.instance.id;
            // A replica goes first; the instance once AWS no longer lists it.
            if let Some(first) = super::replica::cleanup_first(inputs, described) {
                return first;
            }
            if delete_recently_sent(inputs) {
                return Decision::new(inputs, poll)
                    .polls()
                    .failures(Failures::Reset);
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
                .polls()
                .state(State::Deleting, message)
                .record(|s| {
                    if s.delete_requested_time.is_none() {
                        s.delete_requested_time = rfc3339(now);
                    }
                })
                .failures(Failures::Reset)
        }
        Observation::Unchanged => Decision::new(inputs, poll).polls(),
        Observation::ReplicaDeleteAccepted { region } => {
            super::replica::replica_delete_accepted(inputs, region, true)
        }
        // Not answers to any Cleanup write; look again.
        Observation::Replicated { .. }
        | Observation::ReplicateRefused { .. }
        | Observation::TrafficUpdated(_)
        | Observation::Created { .. }
        | Observation::Converged(_)
        | Observation::Configured { .. } => Decision::new(inputs, Then::ObserveAgain),
    }
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

/// Whether DeleteInstance was accepted recently enough that the step should only poll:
/// by the time recorded in status (which survives restarts) and by this process's own
/// memory of its last resend.
pub(super) fn delete_recently_sent(inputs: &Inputs<'_>) -> bool {
    let accepted_ago = since(inputs, inputs.status.delete_requested_time.as_deref());
    let recent = |ago: Option<Duration>| ago.is_some_and(|ago| ago < DELETE_RESEND_AFTER);
    recent(accepted_ago) || recent(inputs.delete_sent_ago)
}
