//! Pure decisions of the reconciler: what differs, which instance is ours, which state an
//! error means and when to look again. No I/O here, so all of it is unit-tested.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::api::{AttributeType, UID_TAG};
use crate::aws::{AwsError, ErrorKind, InstanceSummary, Operation};
use crate::conditions::{Quota, State};

/// Attribute writes needed to reach `desired` from `observed`, in a stable order.
/// An attribute AWS did not report is written.
#[must_use]
pub fn attribute_changes(
    desired: &BTreeMap<AttributeType, bool>,
    observed: &BTreeMap<AttributeType, bool>,
) -> Vec<(AttributeType, bool)> {
    desired
        .iter()
        .filter(|(kind, value)| observed.get(kind) != Some(value))
        .map(|(kind, value)| (*kind, *value))
        .collect()
}

/// Tag writes needed to reach the spec's tags (plus the operator's uid tag).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagChanges {
    /// Tags to add or change (one TagResource call).
    pub set: BTreeMap<String, String>,
    /// Keys to remove (one UntagResource call).
    pub remove: Vec<String>,
}

impl TagChanges {
    /// Whether nothing needs writing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

/// The tags an instance of this object must carry: the spec's and the uid tag.
#[must_use]
pub fn desired_tags(spec_tags: &BTreeMap<String, String>, uid: &str) -> BTreeMap<String, String> {
    let mut tags = spec_tags.clone();
    tags.insert(UID_TAG.to_owned(), uid.to_owned());
    tags
}

/// Tag differences. Keys starting with `aws:` belong to AWS and are never removed.
#[must_use]
pub fn tag_changes(
    spec_tags: &BTreeMap<String, String>,
    uid: &str,
    observed: &BTreeMap<String, String>,
) -> TagChanges {
    let desired = desired_tags(spec_tags, uid);
    TagChanges {
        set: desired
            .iter()
            .filter(|(k, v)| observed.get(*k) != Some(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        remove: observed
            .keys()
            .filter(|k| !desired.contains_key(*k) && !k.starts_with("aws:"))
            .cloned()
            .collect(),
    }
}

/// The instances worth a tag lookup when searching for one this object created: same alias
/// (AWS aliases are case-insensitive), or, without an alias, every instance on an existing
/// directory (whose alias AWS takes from the directory).
#[must_use]
pub fn lookup_candidates<'a>(
    alias: Option<&str>,
    instances: &'a [InstanceSummary],
) -> Vec<&'a InstanceSummary> {
    instances
        .iter()
        .filter(|i| match alias {
            Some(alias) => i
                .alias
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(alias)),
            None => i.identity_management_type.as_deref() == Some("EXISTING_DIRECTORY"),
        })
        .collect()
}

/// Whether an instance's tags say it was created for the object with this UID.
#[must_use]
pub fn is_ours(tags: &BTreeMap<String, String>, uid: &str) -> bool {
    tags.get(UID_TAG).is_some_and(|v| v == uid)
}

/// The state an AWS failure puts the object in.
#[must_use]
pub fn state_for_error(err: &AwsError) -> State {
    match err.kind {
        ErrorKind::InstanceLimitExceeded if err.operation == Operation::CreateInstance => {
            State::QuotaExceeded(Quota::InstanceLimit)
        }
        ErrorKind::LifecycleAttemptLimitExceeded => {
            State::QuotaExceeded(Quota::LifecycleAttemptLimit)
        }
        ErrorKind::Throttled => State::Throttled,
        ErrorKind::AccessDenied => State::AccessDenied,
        ErrorKind::InvalidRequest
            if matches!(
                err.operation,
                Operation::CreateInstance
                    | Operation::UpdateInstanceAttribute
                    | Operation::TagResource
                    | Operation::UntagResource
            ) =>
        {
            State::InvalidSpec
        }
        _ => State::AwsError,
    }
}

/// How long to wait before the next look at an instance in CREATION_IN_PROGRESS: the
/// initial interval, stretched so that `in_flight` creations polled together stay within
/// `polls_per_second` DescribeInstance calls.
#[must_use]
pub fn creation_poll_interval(
    initial: Duration,
    in_flight: usize,
    polls_per_second: f64,
) -> Duration {
    if !(polls_per_second.is_finite() && polls_per_second > 0.0) {
        return initial;
    }
    let in_flight = u32::try_from(in_flight.max(1)).unwrap_or(u32::MAX);
    let shared = Duration::from_secs_f64(f64::from(in_flight) / polls_per_second);
    initial.max(shared)
}

/// Retry timing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// First backoff after a transient failure.
    pub backoff_base: Duration,
    /// Backoff ceiling.
    pub backoff_max: Duration,
    /// Retry interval after AccessDenied (credentials rarely fix themselves quickly).
    pub access_denied_retry: Duration,
    /// Retry interval after a quota error: hours, never a storm.
    pub quota_retry: Duration,
    /// The steady-state drift-check interval, also used to re-check stalled objects.
    pub drift_interval: Duration,
    /// Backoff ceiling after a failure of the Kubernetes API (unreachable, slow): trying
    /// again costs nothing, and the API server may be back any moment.
    pub kube_backoff_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            access_denied_retry: Duration::from_secs(300),
            quota_retry: Duration::from_secs(2 * 3600),
            drift_interval: Duration::from_secs(600),
            kube_backoff_max: Duration::from_secs(10),
        }
    }
}

/// When to look again after ending in `state`; `attempt` counts the object's consecutive
/// failures (0 for the first). Jitter is applied by the caller.
#[must_use]
pub fn retry_after(policy: &RetryPolicy, state: State, attempt: u32) -> Duration {
    match state {
        State::QuotaExceeded(_) => policy.quota_retry,
        State::AccessDenied => policy.access_denied_retry.max(backoff(policy, attempt)),
        State::Throttled | State::AwsError | State::ConfigurationFailed => backoff(policy, attempt),
        State::CreationFailed
        | State::InvalidSpec
        | State::AliasConflict
        | State::InstanceNotFound
        | State::AdoptionMismatch
        | State::AlreadyManaged
        | State::DeletionProtected
        | State::AccountNotFound
        | State::AccountNotAllowed
        | State::ReplicationFailed
        | State::Available
        | State::Observed => policy.drift_interval,
        State::Initializing
        | State::Creating
        | State::Updating
        | State::Deleting
        | State::Replicating => policy.backoff_base,
    }
}

/// Exponential backoff: base × 2^attempt, capped.
#[must_use]
pub fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(20));
    policy
        .backoff_base
        .saturating_mul(factor)
        .min(policy.backoff_max)
}

pub use crate::retry::jitter;

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn attribute_diff_writes_only_differences() {
        use AttributeType::*;
        type Attrs = Vec<(AttributeType, bool)>;
        let cases: Vec<(Attrs, Attrs, Attrs)> = vec![
            // nothing differs
            (
                vec![(InboundCalls, true), (OutboundCalls, false)],
                vec![
                    (InboundCalls, true),
                    (OutboundCalls, false),
                    (ContactLens, true),
                ],
                vec![],
            ),
            // one flip
            (
                vec![(InboundCalls, true), (OutboundCalls, true)],
                vec![(InboundCalls, true), (OutboundCalls, false)],
                vec![(OutboundCalls, true)],
            ),
            // unmanaged attributes are left alone; a missing observation is written
            (
                vec![(InboundCalls, true), (EarlyMedia, false)],
                vec![(InboundCalls, true), (ContactLens, true)],
                vec![(EarlyMedia, false)],
            ),
            // all 13
            (
                AttributeType::ALL.iter().map(|t| (*t, true)).collect(),
                vec![],
                AttributeType::ALL.iter().map(|t| (*t, true)).collect(),
            ),
        ];
        for (desired, observed, want) in cases {
            let desired = desired.into_iter().collect();
            let observed = observed.into_iter().collect();
            assert_eq!(attribute_changes(&desired, &observed), want);
        }
    }

    #[test]
    fn tag_diff_sets_changes_removes_extras_and_keeps_aws_and_uid_tags() {
        let spec = map(&[("team", "voice"), ("env", "prod")]);
        let observed = map(&[
            ("team", "voice"),
            ("env", "dev"),
            ("old", "x"),
            ("aws:cloudformation:stack-name", "s"),
            (UID_TAG, "u1"),
        ]);
        let changes = tag_changes(&spec, "u1", &observed);
        assert_eq!(changes.set, map(&[("env", "prod")]));
        assert_eq!(changes.remove, vec!["old".to_owned()]);

        // A missing uid tag is restored; identical tags need nothing.
        let changes = tag_changes(&spec, "u1", &map(&[("team", "voice"), ("env", "prod")]));
        assert_eq!(changes.set, map(&[(UID_TAG, "u1")]));
        let converged = desired_tags(&spec, "u1");
        assert!(tag_changes(&spec, "u1", &converged).is_empty());
    }

    #[test]
    fn lookup_matches_alias_case_insensitively_or_directory_instances() {
        let summary = |id: &str, alias: Option<&str>, idm: &str| InstanceSummary {
            id: id.into(),
            arn: format!("arn:{id}"),
            alias: alias.map(str::to_owned),
            identity_management_type: Some(idm.into()),
            state: None,
        };
        let all = vec![
            summary("1", Some("Contact-Center"), "CONNECT_MANAGED"),
            summary("2", Some("other"), "CONNECT_MANAGED"),
            summary("3", Some("corp"), "EXISTING_DIRECTORY"),
        ];
        let ids = |v: Vec<&InstanceSummary>| v.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
        assert_eq!(
            ids(lookup_candidates(Some("contact-center"), &all)),
            vec!["1"]
        );
        assert_eq!(ids(lookup_candidates(None, &all)), vec!["3"]);
        assert!(lookup_candidates(Some("absent"), &all).is_empty());
        assert!(is_ours(&map(&[(UID_TAG, "u1")]), "u1"));
        assert!(!is_ours(&map(&[(UID_TAG, "u2")]), "u1"));
        assert!(!is_ours(&map(&[]), "u1"));
    }

    #[test]
    fn errors_map_to_states() {
        let err = |operation, kind| AwsError {
            operation,
            kind,
            code: None,
            message: String::new(),
            request_id: None,
            retry_after: None,
        };
        use ErrorKind as K;
        use Operation as O;
        let rows = [
            (
                O::CreateInstance,
                K::InstanceLimitExceeded,
                State::QuotaExceeded(Quota::InstanceLimit),
            ),
            (
                O::CreateInstance,
                K::LifecycleAttemptLimitExceeded,
                State::QuotaExceeded(Quota::LifecycleAttemptLimit),
            ),
            (
                O::DeleteInstance,
                K::LifecycleAttemptLimitExceeded,
                State::QuotaExceeded(Quota::LifecycleAttemptLimit),
            ),
            (O::DescribeInstance, K::Throttled, State::Throttled),
            (O::ListInstances, K::AccessDenied, State::AccessDenied),
            (O::CreateInstance, K::InvalidRequest, State::InvalidSpec),
            (
                O::UpdateInstanceAttribute,
                K::InvalidRequest,
                State::InvalidSpec,
            ),
            (O::DescribeInstance, K::InvalidRequest, State::AwsError),
            (O::DeleteInstance, K::Transient, State::AwsError),
            (O::TagResource, K::Other, State::AwsError),
        ];
        for (operation, kind, want) in rows {
            assert_eq!(
                state_for_error(&err(operation, kind)),
                want,
                "{operation:?} {kind:?}"
            );
        }
    }

    #[test]
    fn retry_timing_by_state() {
        let p = RetryPolicy::default();
        assert_eq!(
            retry_after(&p, State::QuotaExceeded(Quota::InstanceLimit), 0),
            Duration::from_secs(7200)
        );
        assert_eq!(retry_after(&p, State::Throttled, 0), Duration::from_secs(2));
        assert_eq!(
            retry_after(&p, State::Throttled, 3),
            Duration::from_secs(16)
        );
        assert_eq!(
            retry_after(&p, State::AwsError, 30),
            Duration::from_secs(300)
        );
        assert_eq!(
            retry_after(&p, State::AccessDenied, 0),
            Duration::from_secs(300)
        );
        assert_eq!(
            retry_after(&p, State::CreationFailed, 5),
            Duration::from_secs(600)
        );
        let j = jitter(Duration::from_secs(100), 0.0);
        assert_eq!(j, Duration::from_secs(80));
        assert!(jitter(Duration::from_secs(100), 0.999) < Duration::from_secs(120));
    }

    #[test]
    fn creation_polls_share_the_describe_rate_among_creations_in_flight() {
        let initial = Duration::from_secs(5);
        // Few in flight: the initial interval, whatever the creation has taken so far.
        assert_eq!(creation_poll_interval(initial, 1, 1.0), initial);
        assert_eq!(creation_poll_interval(initial, 5, 1.0), initial);
        // Many: stretched so that all of them together make one call per second.
        assert_eq!(
            creation_poll_interval(initial, 12, 1.0),
            Duration::from_secs(12)
        );
        assert_eq!(
            creation_poll_interval(initial, 40, 2.0),
            Duration::from_secs(20)
        );
        // A nonsensical rate leaves the interval as configured.
        assert_eq!(creation_poll_interval(initial, 40, 0.0), initial);
    }
}
