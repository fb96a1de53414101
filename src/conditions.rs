//! The one place conditions are computed (kstatus-compatible).
//!
//! `Ready` is always present; `Reconciling`, `Stalled`, `QuotaExceeded`, `Drifted` and
//! `Paused` are present only while True. `lastTransitionTime` moves only when a condition's status changes, and
//! nothing in a condition changes from one reconcile to the next unless the state did, so
//! a reconcile that finds nothing new writes nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition types.
pub mod types {
    /// The instance exists, is ACTIVE and matches the spec.
    pub const READY: &str = "Ready";
    /// The operator is working towards the spec.
    pub const RECONCILING: &str = "Reconciling";
    /// Progress needs a human.
    pub const STALLED: &str = "Stalled";
    /// An AWS quota blocks progress.
    pub const QUOTA_EXCEEDED: &str = "QuotaExceeded";
    /// AWS differs from the spec (the message lists how).
    pub const DRIFTED: &str = "Drifted";
    /// The object is paused by its annotation: no AWS call is made.
    pub const PAUSED: &str = "Paused";
}

/// The `Drifted` condition's reason.
pub const DRIFT_DETECTED: &str = "DriftDetected";

/// The `Paused` condition's reason.
pub const PAUSED_BY_ANNOTATION: &str = "PausedByAnnotation";

/// Which AWS quota was hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quota {
    /// The number of instances per account (ServiceQuotaExceededException on create).
    InstanceLimit,
    /// The 30-day create/delete attempt limit.
    LifecycleAttemptLimit,
    /// The account's own attempt budget (`lifecycleAttemptBudget`), before AWS is asked.
    AttemptBudget,
}

impl Quota {
    /// The `QuotaExceeded` condition reason.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Self::InstanceLimit => "InstanceLimitExceeded",
            Self::LifecycleAttemptLimit => "LifecycleAttemptLimitExceeded",
            Self::AttemptBudget => "AttemptBudgetExhausted",
        }
    }
}

/// Where a `ConnectInstance` stands, as the reconciler found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// First visit: nothing known yet.
    Initializing,
    /// CreateInstance was sent and AWS reports CREATION_IN_PROGRESS.
    Creating,
    /// The instance is ACTIVE and differences from the spec are being applied.
    Updating,
    /// The instance is ACTIVE and matches the spec.
    Available,
    /// `ObserveOnly`: the instance exists and is ACTIVE; differences show in `Drifted`.
    Observed,
    /// The object is being deleted and so is the instance.
    Deleting,
    /// AWS reports CREATION_FAILED; the operator does not re-create on its own.
    CreationFailed,
    /// A quota blocks creation or deletion.
    QuotaExceeded(Quota),
    /// The credentials lack a permission.
    AccessDenied,
    /// AWS throttled a call; retrying with backoff.
    Throttled,
    /// AWS rejected the spec; waits for a spec change.
    InvalidSpec,
    /// The alias belongs to an instance this object did not create.
    AliasConflict,
    /// The recorded (or adopted) instance does not exist in AWS; never re-created silently.
    InstanceNotFound,
    /// The instance to adopt differs from the spec in identity type or alias.
    AdoptionMismatch,
    /// The instance to adopt carries another object's uid tag.
    AlreadyManaged,
    /// The object is being deleted under `Delete` while `deletionProtection` is true.
    DeletionProtected,
    /// The `ConnectAccount` the object names does not exist; nothing is sent to AWS.
    AccountNotFound,
    /// The `ConnectAccount` does not select the object's namespace; nothing is sent to AWS.
    AccountNotAllowed,
    /// The instance is ACTIVE but some of its configuration (a storage config, an
    /// origin, a function, a bot, a key) could not be applied; the rest was, and the
    /// failed items are retried with backoff.
    ConfigurationFailed,
    /// The instance is ACTIVE and its replica is being created (or deleted, when
    /// `spec.replica` was removed).
    Replicating,
    /// AWS could not replicate the instance (or refused to: an account not allow-listed),
    /// or the replica cannot be removed yet; waits for a spec change.
    ReplicationFailed,
    /// Any other AWS failure; retrying with backoff.
    AwsError,
}

impl State {
    /// The `Ready` condition's reason: the reason shown in `kubectl get`.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Self::Initializing => "Initializing",
            Self::Creating => "Creating",
            Self::Updating => "Updating",
            Self::Available => "Available",
            Self::Observed => "Observed",
            Self::Deleting => "Deleting",
            Self::CreationFailed => "CreationFailed",
            Self::QuotaExceeded(_) => "QuotaExceeded",
            Self::AccessDenied => "AccessDenied",
            Self::Throttled => "Throttled",
            Self::InvalidSpec => "InvalidSpec",
            Self::AliasConflict => "AliasConflict",
            Self::InstanceNotFound => "InstanceNotFound",
            Self::AdoptionMismatch => "AdoptionMismatch",
            Self::AlreadyManaged => "AlreadyManaged",
            Self::DeletionProtected => "DeletionProtected",
            Self::AccountNotFound => "AccountNotFound",
            Self::AccountNotAllowed => "AccountNotAllowed",
            Self::ConfigurationFailed => "ConfigurationFailed",
            Self::Replicating => "Replicating",
            Self::ReplicationFailed => "ReplicationFailed",
            Self::AwsError => "AwsError",
        }
    }

    /// Whether this state is an error (Warning events, failure metrics).
    #[must_use]
    pub fn is_error(self) -> bool {
        !matches!(
            self,
            Self::Initializing
                | Self::Creating
                | Self::Updating
                | Self::Available
                | Self::Observed
                | Self::Deleting
                | Self::Replicating
        )
    }

    fn ready_status(self) -> &'static str {
        match self {
            Self::Available | Self::Observed => "True",
            Self::Initializing => "Unknown",
            _ => "False",
        }
    }

    fn reconciling_reason(self) -> Option<&'static str> {
        match self {
            Self::Initializing | Self::Creating => Some("Creating"),
            Self::Updating => Some("Updating"),
            Self::Deleting => Some("Deleting"),
            Self::Replicating => Some("Replicating"),
            Self::AccessDenied | Self::Throttled | Self::AwsError | Self::ConfigurationFailed => {
                Some("RetryingAfterError")
            }
            _ => None,
        }
    }

    fn stalled_reason(self) -> Option<&'static str> {
        match self {
            Self::CreationFailed
            | Self::InvalidSpec
            | Self::AliasConflict
            | Self::QuotaExceeded(_)
            | Self::InstanceNotFound
            | Self::AdoptionMismatch
            | Self::AlreadyManaged
            | Self::DeletionProtected
            | Self::AccountNotFound
            | Self::AccountNotAllowed
            | Self::ReplicationFailed => Some(self.reason()),
            _ => None,
        }
    }
}

/// The conditions for `state`, keeping each previous `lastTransitionTime` whose status did
/// not change. `drift` (the differences between AWS and the spec) adds `Drifted=True`
/// with that list as its message.
#[must_use]
pub fn compute(
    state: State,
    message: &str,
    generation: Option<i64>,
    previous: &[Condition],
    now: &Time,
    drift: Option<&str>,
) -> Vec<Condition> {
    let mut wanted = vec![(types::READY, state.ready_status(), state.reason(), message)];
    if let Some(reason) = state.reconciling_reason() {
        wanted.push((types::RECONCILING, "True", reason, message));
    }
    if let Some(reason) = state.stalled_reason() {
        wanted.push((types::STALLED, "True", reason, message));
    }
    if let State::QuotaExceeded(quota) = state {
        wanted.push((types::QUOTA_EXCEEDED, "True", quota.reason(), message));
    }
    if let Some(drift) = drift {
        wanted.push((types::DRIFTED, "True", DRIFT_DETECTED, drift));
    }
    wanted
        .into_iter()
        .map(|(type_, status, reason, message)| {
            condition(type_, status, reason, message, generation, previous, now)
        })
        .collect()
}

/// The conditions of a paused object: everything as it was (a paused object keeps its last
/// `Ready`), plus `Paused=True`.
#[must_use]
pub fn paused(previous: &[Condition], generation: Option<i64>, now: &Time) -> Vec<Condition> {
    let mut out: Vec<Condition> = previous
        .iter()
        .filter(|c| c.type_ != types::PAUSED)
        .cloned()
        .collect();
    out.push(condition(
        types::PAUSED,
        "True",
        PAUSED_BY_ANNOTATION,
        "The annotation connect.operators.dev/paused is \"true\": no AWS call is made for this object until it is removed",
        generation,
        previous,
        now,
    ));
    out
}

/// One condition, keeping the previous `lastTransitionTime` when its status did not
/// change (for resources other than `ConnectInstance`, whose table is [`compute`]).
#[must_use]
pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    previous: &[Condition],
    now: &Time,
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation: generation,
        last_transition_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(secs).unwrap_or_default())
    }

    fn summary(conditions: &[Condition]) -> Vec<(String, String, String)> {
        conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect()
    }

    fn owned(rows: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
        rows.iter()
            .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
            .collect()
    }

    #[test]
    fn every_state_maps_to_the_conditions_table() {
        type Row<'a> = (&'a str, &'a str, &'a str);
        let table: Vec<(State, Vec<Row>)> = vec![
            (
                State::Initializing,
                vec![
                    ("Ready", "Unknown", "Initializing"),
                    ("Reconciling", "True", "Creating"),
                ],
            ),
            (
                State::Creating,
                vec![
                    ("Ready", "False", "Creating"),
                    ("Reconciling", "True", "Creating"),
                ],
            ),
            (
                State::Updating,
                vec![
                    ("Ready", "False", "Updating"),
                    ("Reconciling", "True", "Updating"),
                ],
            ),
            (State::Available, vec![("Ready", "True", "Available")]),
            (State::Observed, vec![("Ready", "True", "Observed")]),
            (
                State::AdoptionMismatch,
                vec![
                    ("Ready", "False", "AdoptionMismatch"),
                    ("Stalled", "True", "AdoptionMismatch"),
                ],
            ),
            (
                State::AlreadyManaged,
                vec![
                    ("Ready", "False", "AlreadyManaged"),
                    ("Stalled", "True", "AlreadyManaged"),
                ],
            ),
            (
                State::DeletionProtected,
                vec![
                    ("Ready", "False", "DeletionProtected"),
                    ("Stalled", "True", "DeletionProtected"),
                ],
            ),
            (
                State::Deleting,
                vec![
                    ("Ready", "False", "Deleting"),
                    ("Reconciling", "True", "Deleting"),
                ],
            ),
            (
                State::CreationFailed,
                vec![
                    ("Ready", "False", "CreationFailed"),
                    ("Stalled", "True", "CreationFailed"),
                ],
            ),
            (
                State::QuotaExceeded(Quota::InstanceLimit),
                vec![
                    ("Ready", "False", "QuotaExceeded"),
                    ("Stalled", "True", "QuotaExceeded"),
                    ("QuotaExceeded", "True", "InstanceLimitExceeded"),
                ],
            ),
            (
                State::QuotaExceeded(Quota::LifecycleAttemptLimit),
                vec![
                    ("Ready", "False", "QuotaExceeded"),
                    ("Stalled", "True", "QuotaExceeded"),
                    ("QuotaExceeded", "True", "LifecycleAttemptLimitExceeded"),
                ],
            ),
            (
                State::AccessDenied,
                vec![
                    ("Ready", "False", "AccessDenied"),
                    ("Reconciling", "True", "RetryingAfterError"),
                ],
            ),
            (
                State::Throttled,
                vec![
                    ("Ready", "False", "Throttled"),
                    ("Reconciling", "True", "RetryingAfterError"),
                ],
            ),
            (
                State::AwsError,
                vec![
                    ("Ready", "False", "AwsError"),
                    ("Reconciling", "True", "RetryingAfterError"),
                ],
            ),
            (
                State::InvalidSpec,
                vec![
                    ("Ready", "False", "InvalidSpec"),
                    ("Stalled", "True", "InvalidSpec"),
                ],
            ),
            (
                State::AliasConflict,
                vec![
                    ("Ready", "False", "AliasConflict"),
                    ("Stalled", "True", "AliasConflict"),
                ],
            ),
            (
                State::InstanceNotFound,
                vec![
                    ("Ready", "False", "InstanceNotFound"),
                    ("Stalled", "True", "InstanceNotFound"),
                ],
            ),
            (
                State::QuotaExceeded(Quota::AttemptBudget),
                vec![
                    ("Ready", "False", "QuotaExceeded"),
                    ("Stalled", "True", "QuotaExceeded"),
                    ("QuotaExceeded", "True", "AttemptBudgetExhausted"),
                ],
            ),
            (
                State::AccountNotFound,
                vec![
                    ("Ready", "False", "AccountNotFound"),
                    ("Stalled", "True", "AccountNotFound"),
                ],
            ),
            (
                State::AccountNotAllowed,
                vec![
                    ("Ready", "False", "AccountNotAllowed"),
                    ("Stalled", "True", "AccountNotAllowed"),
                ],
            ),
        ];
        for (state, want) in table {
            let got = compute(state, "msg", Some(3), &[], &time(100), None);
            assert_eq!(summary(&got), owned(&want), "{state:?}");
            let reconciling = got.iter().any(|c| c.type_ == "Reconciling");
            let stalled = got.iter().any(|c| c.type_ == "Stalled");
            assert!(
                !(reconciling && stalled),
                "{state:?}: Reconciling and Stalled both True"
            );
            assert!(
                got.iter()
                    .all(|c| c.observed_generation == Some(3) && c.message == "msg")
            );
        }
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let creating = compute(State::Creating, "creating", Some(1), &[], &time(100), None);
        // Same state later: identical conditions, so no status write.
        let again = compute(
            State::Creating,
            "creating",
            Some(1),
            &creating,
            &time(200),
            None,
        );
        assert_eq!(creating, again);
        // Ready stays False with another reason: its time is kept; Reconciling is dropped.
        let failed = compute(
            State::CreationFailed,
            "failed",
            Some(1),
            &again,
            &time(300),
            None,
        );
        let ready = failed
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.last_transition_time.clone());
        assert_eq!(ready, Some(time(100)));
        let stalled = failed
            .iter()
            .find(|c| c.type_ == "Stalled")
            .map(|c| c.last_transition_time.clone());
        assert_eq!(stalled, Some(time(300)));
        // Ready becomes True: a real transition.
        let ready = compute(State::Available, "ok", Some(1), &failed, &time(400), None);
        assert_eq!(ready[0].last_transition_time, time(400));
    }

    #[test]
    fn drift_adds_drifted_with_its_own_message_and_pause_keeps_ready() {
        let observed = compute(
            State::Observed,
            "observed",
            Some(2),
            &[],
            &time(100),
            Some("INBOUND_CALLS: AWS false, spec true"),
        );
        assert_eq!(
            summary(&observed),
            owned(&[
                ("Ready", "True", "Observed"),
                ("Drifted", "True", "DriftDetected")
            ])
        );
        assert_eq!(observed[1].message, "INBOUND_CALLS: AWS false, spec true");
        // Once AWS agrees, Drifted is gone.
        let agreed = compute(
            State::Observed,
            "observed",
            Some(2),
            &observed,
            &time(200),
            None,
        );
        assert_eq!(summary(&agreed), owned(&[("Ready", "True", "Observed")]));

        let paused = paused(&observed, Some(3), &time(300));
        assert_eq!(
            summary(&paused),
            owned(&[
                ("Ready", "True", "Observed"),
                ("Drifted", "True", "DriftDetected"),
                ("Paused", "True", "PausedByAnnotation"),
            ])
        );
        assert_eq!(
            paused[0], observed[0],
            "Ready keeps its last value, generation and all"
        );
        // Pausing again changes nothing: no status write.
        assert_eq!(super::paused(&paused, Some(3), &time(400)), paused);
    }
}
