//! The `ConnectAccount` controller: verifies the account's credentials (assume the role if
//! any, then STS GetCallerIdentity) into `status.accountId` and `Ready`, re-verifies them
//! every drift interval, and keeps a finalizer while any `ConnectInstance` refers to the
//! account, so that deleting it waits (and says why) instead of stranding instances.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::utils::PredicateConfig;
use kube::runtime::{WatchStreamExt, reflector};
use kube::{Client, Resource, ResourceExt};

use super::ledger::{LedgerError, Ledgers, rules};
use super::{Directory, access_of};
use crate::api::{
    ACCOUNT_FINALIZER, ConnectAccount, ConnectAccountStatus, ConnectAttemptLedger, ConnectInstance,
    RegionAttempts,
};
use crate::aws::{ConnectClient, CredentialsFailure, ErrorKind};
use crate::cluster::{ReportError, Reporter, WatchBackoff, Watches};
use crate::conditions::{self, types};

/// The account controller's timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// How often credentials that were verified are verified again (jittered).
    pub verify_interval: Duration,
    /// How soon credentials that failed verification are tried again.
    pub retry_failed: Duration,
    /// How often an account being deleted looks whether objects still use it.
    pub in_use_poll: Duration,
}

/// What every account reconcile of one leadership term shares.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// The AWS client (STS, to verify credentials).
    pub connect: Arc<ConnectClient>,
    /// The accounts and namespaces, and the wakes of objects waiting on an account.
    pub directory: Directory,
    /// The attempt ledgers, whose summary the account's status shows.
    pub ledgers: Ledgers,
    /// Status writes and events.
    pub reporter: Reporter,
    /// Timing.
    pub settings: Settings,
}

/// Why an account reconcile ended early.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[source] kube::Error),
    /// The status write failed or timed out.
    #[error("status write: {0}")]
    Status(#[source] ReportError),
    /// The attempt ledgers could not be read.
    #[error("{0}")]
    Ledger(#[source] LedgerError),
    /// Objects still refer to the account; the finalizer stays.
    #[error("still in use by {0}")]
    InUse(String),
    /// The finalizer helper failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<AccountError>>),
}

/// The outcome of verifying credentials, as the `Ready` condition shows it.
struct Verdict {
    account_id: Option<String>,
    ready: bool,
    reason: &'static str,
    message: String,
}

fn verdict(result: Result<String, CredentialsFailure>, role: Option<&str>) -> Verdict {
    match result {
        Ok(id) => Verdict {
            message: match role {
                Some(role) => format!("Assumed {role}; the credentials reach account {id}"),
                None => format!("The operator's own credentials reach account {id}"),
            },
            account_id: Some(id),
            ready: true,
            reason: "CredentialsVerified",
        },
        Err(CredentialsFailure::AssumeRoleFailed(why)) => Verdict {
            account_id: None,
            ready: false,
            reason: "AssumeRoleFailed",
            message: format!(
                "STS AssumeRole of {} failed: {why}. Check the role's trust policy (principal, sts:ExternalId) and the operator's sts:AssumeRole permission",
                role.unwrap_or("the role")
            ),
        },
        Err(CredentialsFailure::NoCredentials(why)) => Verdict {
            account_id: None,
            ready: false,
            reason: "AccessDenied",
            message: format!("The operator has no usable AWS credentials: {why}"),
        },
        Err(CredentialsFailure::Call(e)) => Verdict {
            account_id: None,
            ready: false,
            reason: if e.kind == ErrorKind::AccessDenied {
                "AccessDenied"
            } else {
                "AwsError"
            },
            message: e.to_string(),
        },
    }
}

/// The ledger's summary per region (the operator's default region always among them, for
/// the ATTEMPTS column), from the account's ledger objects.
async fn attempts(
    ctx: &Context,
    account: &ConnectAccount,
) -> Result<Vec<RegionAttempts>, AccountError> {
    let name = account.name_any();
    let budget = account.budget();
    let now = jiff::Timestamp::now();
    let ledgers = ctx
        .ledgers
        .of_account(&name)
        .await
        .map_err(AccountError::Ledger)?;
    let mut out: Vec<RegionAttempts> = ledgers
        .iter()
        .map(|ledger| {
            let summary = rules::summarize(&ledger.spec.entries, now);
            RegionAttempts {
                region: ledger.spec.region.clone(),
                used: summary.used,
                budget,
                oldest_expires_at: summary.oldest_expires_at.map(|t| t.to_string()),
                malformed_entries: summary.malformed,
                aws_limit_reached_at: ledger.spec.aws_limit_reached_at.clone(),
            }
        })
        .collect();
    let default_region = ctx.connect.default_region();
    if !out.iter().any(|r| r.region == default_region) {
        out.push(RegionAttempts {
            region: default_region.to_owned(),
            budget,
            ..RegionAttempts::default()
        });
    }
    out.sort_by(|a, b| a.region.cmp(&b.region));
    Ok(out)
}

/// Events for what changed in the ledger's summary: 80% and 100% of the budget reached, AWS's
/// own limit answered, unreadable entries found.
fn ledger_events(
    previous: &[RegionAttempts],
    next: &[RegionAttempts],
) -> Vec<(&'static str, String)> {
    let mut out = vec![];
    for region in next {
        let before = previous.iter().find(|p| p.region == region.region);
        let used_before = before.map_or(0, |b| b.used);
        let (used, budget) = (region.used, region.budget.max(1));
        let crossed =
            |percent: u32| used * 100 >= budget * percent && used_before * 100 < budget * percent;
        let expiry = region
            .oldest_expires_at
            .as_deref()
            .map_or_else(String::new, |t| format!("; the oldest expires at {t}"));
        if crossed(100) {
            out.push((
                "AttemptBudgetExhausted",
                format!("{used}/{budget} create and delete attempts in {} in the last 30 days: new instances are refused until an attempt expires or the budget is raised (deletes go on){expiry}", region.region),
            ));
        } else if crossed(80) {
            out.push((
                "AttemptBudgetNearlySpent",
                format!("{used}/{budget} create and delete attempts in {} in the last 30 days (80% of the budget){expiry}", region.region),
            ));
        }
        if region.malformed_entries > before.map_or(0, |b| b.malformed_entries) {
            out.push((
                "LedgerDamaged",
                format!("The attempt ledger of {} has {} entries that cannot be read (edited by hand?); each counts as an attempt until removed", region.region, region.malformed_entries),
            ));
        }
        if region.aws_limit_reached_at.is_some()
            && region.aws_limit_reached_at != before.and_then(|b| b.aws_limit_reached_at.clone())
        {
            out.push((
                "LifecycleAttemptLimitExceeded",
                format!("AWS answered that this account has reached its own 30-day create/delete attempt limit in {}: neither creates nor deletes succeed until attempts expire", region.region),
            ));
        }
    }
    out
}

async fn apply(account: Arc<ConnectAccount>, ctx: &Context) -> Result<Action, AccountError> {
    let name = account.name_any();
    let previous = account.status.clone().unwrap_or_default();
    let generation = account.metadata.generation;
    let now = Time(jiff::Timestamp::now());
    let settings = &ctx.settings;
    let current_ready = account
        .condition(types::READY)
        .filter(|c| c.observed_generation == generation)
        .cloned();
    // Credentials are verified after a spec change and every drift interval; a wake by the
    // ledger only refreshes the attempts.
    let due = ctx
        .directory
        .verification_due(&name, generation, settings.verify_interval);
    // A failed verification is tried again at every retry.
    let (ready, verdict) = match current_ready.filter(|c| c.status == "True" && !due) {
        Some(ready) => (ready, None),
        None => {
            let access = access_of(&account);
            let verdict = verdict(
                ctx.connect.verify(&access).await,
                access.role_arn.as_deref(),
            );
            ctx.directory.verified(&name, generation);
            let ready = conditions::condition(
                types::READY,
                if verdict.ready { "True" } else { "False" },
                verdict.reason,
                &verdict.message,
                generation,
                &previous.conditions,
                &now,
            );
            (ready, Some(verdict))
        }
    };
    let lifecycle_attempts = attempts(ctx, &account).await?;
    let attempts_column = lifecycle_attempts
        .iter()
        .find(|r| r.region == ctx.connect.default_region())
        .map(|r| format!("{}/{}", r.used, r.budget));
    let next = ConnectAccountStatus {
        observed_generation: generation,
        // A failed verification keeps the id last verified: the account is still that
        // account, and its rate limits stay keyed by it.
        account_id: verdict
            .as_ref()
            .and_then(|v| v.account_id.clone())
            .or(previous.account_id.clone()),
        attempts: attempts_column,
        lifecycle_attempts,
        conditions: vec![ready.clone()],
    };
    let events = ledger_events(&previous.lifecycle_attempts, &next.lifecycle_attempts);
    let reason_changed = account
        .condition(types::READY)
        .is_none_or(|c| c.reason != ready.reason);
    if next != previous {
        // The directory's watch wakes the account's objects if this concerns them.
        write_status(ctx, &account, &next).await?;
    }
    if reason_changed {
        let type_ = if ready.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        publish(ctx, &account, type_, &ready.reason, &ready.message).await;
    }
    for (reason, note) in events {
        publish(ctx, &account, EventType::Warning, reason, &note).await;
    }
    let after = if ready.status == "True" {
        crate::retry::jitter(settings.verify_interval, fastrand::f64())
    } else {
        tracing::warn!(account = %name, reason = %ready.reason, message = %ready.message, "account credentials not verified");
        settings.retry_failed
    };
    Ok(Action::requeue(after))
}

async fn cleanup(account: Arc<ConnectAccount>, ctx: &Context) -> Result<Action, AccountError> {
    let name = account.name_any();
    // Every namespace, not only the watched one: another namespace's objects may use it.
    let instances: Api<ConnectInstance> = Api::all(ctx.client.clone());
    let users: Vec<String> = instances
        .list(&ListParams::default())
        .await
        .map_err(AccountError::Kube)?
        .into_iter()
        .filter(|i| i.spec.account_name() == name)
        .map(|i| format!("{}/{}", i.namespace().unwrap_or_default(), i.name_any()))
        .collect();
    if users.is_empty() {
        ctx.connect.forget(&access_of(&account));
        tracing::info!(account = %name, "no ConnectInstance uses the account; releasing it");
        return Ok(Action::await_change());
    }
    let shown: Vec<&str> = users.iter().take(10).map(String::as_str).collect();
    let more = users.len().saturating_sub(shown.len());
    let mut list = shown.join(", ");
    if more > 0 {
        list.push_str(&format!(" and {more} more"));
    }
    let message = format!(
        "Deletion waits: {} ConnectInstance object(s) still use this account: {list}. Delete them first (their instances need this account's credentials to be deleted)",
        users.len()
    );
    if ctx.directory.note_users(&name, &list) {
        publish(ctx, &account, EventType::Warning, "AccountInUse", &message).await;
    }
    Err(AccountError::InUse(message))
}

async fn reconcile(
    account: Arc<ConnectAccount>,
    ctx: Arc<Context>,
) -> Result<Action, AccountError> {
    let api: Api<ConnectAccount> = Api::all(ctx.client.clone());
    finalizer::finalizer(&api, ACCOUNT_FINALIZER, account, |event| async {
        match event {
            FinalizerEvent::Apply(a) => apply(a, &ctx).await,
            FinalizerEvent::Cleanup(a) => cleanup(a, &ctx).await,
        }
    })
    .await
    .map_err(|e| AccountError::Finalizer(Box::new(e)))
}

fn error_policy(account: Arc<ConnectAccount>, err: &AccountError, ctx: Arc<Context>) -> Action {
    let in_use = matches!(err, AccountError::Finalizer(inner)
        if matches!(inner.as_ref(), finalizer::Error::CleanupFailed(AccountError::InUse(_))));
    if in_use {
        return Action::requeue(ctx.settings.in_use_poll);
    }
    tracing::warn!(account = %account.name_any(), error = %err, "account reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

async fn write_status(
    ctx: &Context,
    account: &ConnectAccount,
    status: &ConnectAccountStatus,
) -> Result<(), AccountError> {
    let api: Api<ConnectAccount> = Api::all(ctx.client.clone());
    ctx.reporter
        .apply_status(&api, &account.name_any(), status, None)
        .await
        .map(|_: ConnectAccount| ())
        .map_err(AccountError::Status)
}

async fn publish(
    ctx: &Context,
    account: &ConnectAccount,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let reference = account.object_ref(&());
    ctx.reporter
        .publish(&reference, type_, reason, note, "VerifyCredentials")
        .await;
}

/// What wakes an account: a spec change, the start of deletion, a change of finalizers.
fn trigger_hash(account: &ConnectAccount) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    account.meta().generation.hash(&mut hasher);
    account
        .meta()
        .deletion_timestamp
        .is_some()
        .hash(&mut hasher);
    account.finalizers().hash(&mut hasher);
    Some(hasher.finish())
}

/// Runs the account controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    watches: &Watches,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<ConnectAccount> = Api::all(ctx.client.clone());
    let mut config = watches.config();
    if let Some(selector) = ctx.directory.account_selector() {
        config = config.labels(selector);
    }
    let (reader, writer) = reflector::store();
    let stream = watches
        .open(api, config, "ConnectAccount")
        .modify(|a: &mut ConnectAccount| a.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects()
        .predicate_filter(trigger_hash, PredicateConfig::default());
    // A change of a ledger refreshes its account's summary.
    let ledgers: Api<ConnectAttemptLedger> = Api::all(ctx.client.clone());
    let ledger_changes = watches
        .open(ledgers, watches.config(), "ConnectAttemptLedger")
        .touched_objects();
    Controller::for_stream(stream, reader)
        .watches_stream(ledger_changes, |ledger: ConnectAttemptLedger| {
            Some(reflector::ObjectRef::<ConnectAccount>::new(
                &ledger.spec.account,
            ))
        })
        // Not kube's default of up to 30 s on top of the watches' own backoff.
        .trigger_backoff(WatchBackoff::default())
        .with_config(ControllerConfig::default().concurrency(2))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "account reconcile ended in error");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::{AwsError, Operation};

    #[test]
    fn each_verification_outcome_has_its_reason() {
        let ok = verdict(
            Ok("111122223333".into()),
            Some("arn:aws:iam::111122223333:role/r"),
        );
        assert!(ok.ready && ok.reason == "CredentialsVerified");
        assert_eq!(ok.account_id.as_deref(), Some("111122223333"));
        let refused = verdict(
            Err(CredentialsFailure::AssumeRoleFailed(
                "AccessDenied: not authorized".into(),
            )),
            Some("arn:aws:iam::111122223333:role/r"),
        );
        assert_eq!((refused.ready, refused.reason), (false, "AssumeRoleFailed"));
        assert!(refused.message.contains("arn:aws:iam::111122223333:role/r"));
        assert!(refused.message.contains("not authorized"));
        let call = |kind| AwsError {
            operation: Operation::GetCallerIdentity,
            kind,
            code: None,
            message: "m".into(),
            request_id: None,
            retry_after: None,
        };
        let denied = verdict(
            Err(CredentialsFailure::Call(call(ErrorKind::AccessDenied))),
            None,
        );
        assert_eq!(denied.reason, "AccessDenied");
        let other = verdict(
            Err(CredentialsFailure::Call(call(ErrorKind::Transient))),
            None,
        );
        assert_eq!(other.reason, "AwsError");
        let none = verdict(Err(CredentialsFailure::NoCredentials("none".into())), None);
        assert_eq!(none.reason, "AccessDenied");
    }
}
