//! The one place conditions are computed (kstatus-compatible).
//!
//! `Ready` is always present; `Reconciling`, `Stalled` and `QuotaExceeded` are present only
//! while True. `lastTransitionTime` moves only when a condition's status changes, and
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
}

/// Which AWS quota was hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quota {
    /// The number of instances per account (ServiceQuotaExceededException on create).
    InstanceLimit,
    /// The 30-day create/delete attempt limit.
    LifecycleAttemptLimit,
}

impl Quota {
    /// The `QuotaExceeded` condition reason.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Self::InstanceLimit => "InstanceLimitExceeded",
            Self::LifecycleAttemptLimit => "LifecycleAttemptLimitExceeded",
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
    /// The recorded instance no longer exists in AWS; it is not re-created silently.
    InstanceNotFound,
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
            Self::Deleting => "Deleting",
            Self::CreationFailed => "CreationFailed",
            Self::QuotaExceeded(_) => "QuotaExceeded",
            Self::AccessDenied => "AccessDenied",
            Self::Throttled => "Throttled",
            Self::InvalidSpec => "InvalidSpec",
            Self::AliasConflict => "AliasConflict",
            Self::InstanceNotFound => "InstanceNotFound",
            Self::AwsError => "AwsError",
        }
    }

    /// Whether this state is an error (Warning events, failure metrics).
    #[must_use]
    pub fn is_error(self) -> bool {
        !matches!(
            self,
            Self::Initializing | Self::Creating | Self::Updating | Self::Available | Self::Deleting
        )
    }

    fn ready_status(self) -> &'static str {
        match self {
            Self::Available => "True",
            Self::Initializing => "Unknown",
            _ => "False",
        }
    }

    fn reconciling_reason(self) -> Option<&'static str> {
        match self {
            Self::Initializing | Self::Creating => Some("Creating"),
            Self::Updating => Some("Updating"),
            Self::Deleting => Some("Deleting"),
            Self::AccessDenied | Self::Throttled | Self::AwsError => Some("RetryingAfterError"),
            _ => None,
        }
    }

    fn stalled_reason(self) -> Option<&'static str> {
        match self {
            Self::CreationFailed
            | Self::InvalidSpec
            | Self::AliasConflict
            | Self::QuotaExceeded(_)
            | Self::InstanceNotFound => Some(self.reason()),
            _ => None,
        }
    }
}

/// The conditions for `state`, keeping each previous `lastTransitionTime` whose status did
/// not change.
#[must_use]
pub fn compute(
    state: State,
    message: &str,
    generation: Option<i64>,
    previous: &[Condition],
    now: &Time,
) -> Vec<Condition> {
    let mut wanted = vec![(types::READY, state.ready_status(), state.reason())];
    if let Some(reason) = state.reconciling_reason() {
        wanted.push((types::RECONCILING, "True", reason));
    }
    if let Some(reason) = state.stalled_reason() {
        wanted.push((types::STALLED, "True", reason));
    }
    if let State::QuotaExceeded(quota) = state {
        wanted.push((types::QUOTA_EXCEEDED, "True", quota.reason()));
    }
    wanted
        .into_iter()
        .map(|(type_, status, reason)| {
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
        })
        .collect()
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
        ];
        for (state, want) in table {
            let got = compute(state, "msg", Some(3), &[], &time(100));
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
        let creating = compute(State::Creating, "creating", Some(1), &[], &time(100));
        // Same state later: identical conditions, so no status write.
        let again = compute(State::Creating, "creating", Some(1), &creating, &time(200));
        assert_eq!(creating, again);
        // Ready stays False with another reason: its time is kept; Reconciling is dropped.
        let failed = compute(State::CreationFailed, "failed", Some(1), &again, &time(300));
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
        let ready = compute(State::Available, "ok", Some(1), &failed, &time(400));
        assert_eq!(ready[0].last_transition_time, time(400));
    }
}
