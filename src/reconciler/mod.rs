//! The reconciler: one finalizer around the Apply and Cleanup paths.
//!
//! Each path is a short loop of observe (AWS reads) → decide (pure: [`decide`], with the
//! diffs and timings of [`plan`] and the conditions of [`crate::conditions`]) → act (AWS
//! writes, then the status and events the next decision gives). See
//! `docs/architecture.md`.

mod apply;
mod cleanup;
pub mod decide;
pub mod memory;
pub mod plan;
pub mod polls;
pub(crate) mod status;
mod step;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::Api;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::utils::PredicateConfig;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Resource, ResourceExt};

use crate::accounts::{Directory, Wake};
use crate::api::{ConnectInstance, FINALIZER};
use crate::aws::ConnectClient;
use crate::cluster::{ReportError, Reporter, WatchBackoff, Watches};
use crate::telemetry::Metrics;
use memory::Memory;
pub use plan::RetryPolicy;

pub use crate::cluster::report::FIELD_MANAGER;

/// Reconciler settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Retry and drift-check timing.
    pub retry: RetryPolicy,
    /// The interval of the shared polls while instances are being created or deleted
    /// (stretched only to keep within `creation_polls_per_second`).
    pub creation_poll_interval: Duration,
    /// Reads per second (DescribeInstance and ListInstances) that the shared polls of one
    /// account and region may use together (a share of those operations' rate limits).
    pub creation_polls_per_second: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            creation_poll_interval: Duration::from_secs(2),
            creation_polls_per_second: 1.0,
        }
    }
}

/// What every reconcile of one leadership term shares (a new term starts from a new one:
/// nothing a previous term remembered in memory carries over).
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Amazon Connect client (shared by every term: its rate limiters carry over).
    pub connect: Arc<ConnectClient>,
    /// Status writes and events.
    pub reporter: Reporter,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Settings.
    pub settings: Settings,
    /// What the process remembers about objects: only what may be lost.
    pub memory: Memory,
    /// The shared polls of the instances being created or deleted, per account and region.
    pub polls: polls::Polls,
    /// The accounts and namespaces: which account an object uses, and whether it may.
    pub directory: Directory,
    /// The attempt ledgers.
    pub ledgers: crate::accounts::ledger::Ledgers,
}

impl Context {
    /// A context for one term of the instance controller.
    #[must_use]
    pub fn new(
        client: Client,
        connect: Arc<ConnectClient>,
        directory: Directory,
        reporter: Reporter,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Self {
        Self {
            ledgers: crate::accounts::ledger::Ledgers::new(client.clone()),
            reporter,
            client,
            connect,
            metrics,
            polls: polls::Polls::new(
                settings.creation_poll_interval,
                settings.creation_polls_per_second,
            ),
            settings,
            memory: Memory::default(),
            directory,
        }
    }
}

/// Applies the decision's kind of randomness to a wait.
fn jittered(d: Duration, jitter: decide::Jitter) -> Duration {
    match jitter {
        decide::Jitter::None => d,
        decide::Jitter::Spread => plan::jitter(d, fastrand::f64()),
        decide::Jitter::Slot => d + crate::aws::ratelimit::SLOT_JITTER.mul_f64(fastrand::f64()),
    }
}

/// Reconcile failures that reach the controller's error policy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed (or did not answer within its deadline).
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[source] kube::Error),
    /// The object changed since the version this reconcile decided from; it decides again
    /// from the current one.
    #[error("the object changed since it was read")]
    Stale,
    /// This replica no longer leads: nothing more is written.
    #[error(transparent)]
    NotLeader(#[from] crate::fence::NotLeader),
    /// The object lacks something the API server always sets.
    #[error("object has no {0}")]
    MissingObjectKey(&'static str),
    /// Deletion is under way or blocked; the finalizer stays and the object is looked at
    /// again later. Not a failure of the operator.
    #[error("deletion not finished: {reason}")]
    CleanupPending {
        /// Why.
        reason: String,
        /// When to look again.
        after: Duration,
    },
    /// The attempt ledger could not be read or written; the attempt was not made.
    #[error("{0}")]
    Ledger(#[source] crate::accounts::ledger::LedgerError),
    /// The finalizer helper failed (adding/removing the finalizer, or a wrapped error).
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

impl Error {
    /// A stable category for metrics and event reasons.
    #[must_use]
    pub fn category(&self) -> &'static str {
        match self {
            Self::Kube(e) if crate::cluster::client::is_deadline(e) => "kube_timeout",
            Self::Kube(_) => "kube_api",
            Self::Stale => "stale",
            Self::NotLeader(_) => "not_leader",
            Self::MissingObjectKey(_) => "invalid_object",
            Self::CleanupPending { .. } => "cleanup_pending",
            Self::Ledger(_) => "ledger",
            Self::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => {
                    e.category()
                }
                finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e)
                    if crate::cluster::client::is_deadline(e) =>
                {
                    "kube_timeout"
                }
                _ => "finalizer",
            },
        }
    }

    /// Whether the failure is the Kubernetes API's (unreachable, slow, refusing), not
    /// AWS's or the object's: retried on a short backoff, since nothing is spent by trying
    /// again and the API server may be back any moment.
    fn is_kube_api(&self) -> bool {
        matches!(
            self.category(),
            "kube_api" | "kube_timeout" | "finalizer" | "ledger"
        )
    }

    /// Whether the reconcile ended without a fault of its own: it must decide again from a
    /// newer version of the object, or this replica stopped leading.
    fn is_stale_or_not_leader(&self) -> bool {
        matches!(self.category(), "stale" | "not_leader")
    }

    /// The requeue asked for by a pending cleanup, through the finalizer wrapper.
    fn pending_after(&self) -> Option<Duration> {
        match self {
            Self::CleanupPending { after, .. } => Some(*after),
            Self::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => {
                    e.pending_after()
                }
                _ => None,
            },
            _ => None,
        }
    }
}

/// One reconcile: the finalizer helper dispatches to Apply or Cleanup.
#[tracing::instrument(skip_all, fields(object = %format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()), generation = obj.metadata.generation))]
pub async fn reconcile(obj: Arc<ConnectInstance>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_started();
    let namespace = obj
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let api: Api<ConnectInstance> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer::finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            FinalizerEvent::Apply(obj) => apply::apply(obj, &ctx).await,
            FinalizerEvent::Cleanup(obj) => cleanup::cleanup(obj, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

impl From<ReportError> for Error {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::Kube(e) => Self::Kube(e),
            ReportError::Stale => Self::Stale,
            ReportError::NotLeader(e) => Self::NotLeader(e),
        }
    }
}

/// How soon an object whose version was stale is looked at again: the watch delivers the
/// newer version in moments.
const STALE_RETRY: Duration = Duration::from_secs(1);

/// What happens after a reconcile error: a pending cleanup comes back when it asked to; a
/// stale version or a lost lease are not failures; a failure of the Kubernetes API is
/// retried on a backoff capped at `RetryPolicy::kube_backoff_max`, anything else with the
/// per-object exponential backoff and jitter.
pub fn error_policy(obj: Arc<ConnectInstance>, err: &Error, ctx: Arc<Context>) -> Action {
    if let Some(after) = err.pending_after() {
        return Action::requeue(after);
    }
    if err.is_stale_or_not_leader() {
        tracing::debug!(error = %err, "reconcile ended early; looking again");
        return Action::requeue(plan::jitter(STALE_RETRY, fastrand::f64()));
    }
    ctx.metrics.reconcile_failed(err.category());
    let key = object_key(&obj);
    let attempt = ctx.memory.count_failure(&key);
    let retry = &ctx.settings.retry;
    let mut delay = plan::backoff(retry, attempt);
    if err.is_kube_api() {
        delay = delay.min(retry.kube_backoff_max);
    }
    let delay = plan::jitter(delay, fastrand::f64());
    tracing::warn!(error = %err, category = err.category(), ?delay, "reconcile failed; retrying");
    Action::requeue(delay)
}

fn object_key(obj: &ConnectInstance) -> String {
    obj.uid()
        .unwrap_or_else(|| format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()))
}

/// What wakes a reconcile: a spec change (generation), the start of deletion, a change of
/// finalizers, or pausing and unpausing. Status-only writes, our own included, do not: they
/// would hot-loop.
fn trigger_hash(obj: &ConnectInstance) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    obj.meta().generation.hash(&mut hasher);
    obj.is_paused().hash(&mut hasher);
    obj.meta().deletion_timestamp.is_some().hash(&mut hasher);
    obj.finalizers().hash(&mut hasher);
    Some(hasher.finish())
}

/// The objects a wake concerns: those using a changed account, those in a namespace whose
/// labels changed, those waiting on the instance quota where capacity freed.
fn woken(
    store: &reflector::Store<ConnectInstance>,
    wake: &Wake,
) -> Vec<reflector::ObjectRef<ConnectInstance>> {
    use crate::conditions::{Quota, types};
    store
        .state()
        .into_iter()
        .filter(|obj| match wake {
            Wake::Account(name) => obj.spec.account_name() == name,
            Wake::Namespace(ns) => obj.namespace().as_deref() == Some(ns.as_str()),
            Wake::CapacityFreed {
                account,
                account_id,
                region,
            } => {
                // The same AWS account, whether reached through the same ConnectAccount
                // or another one that resolves to it.
                let status = obj.status.as_ref();
                let same_account = obj.spec.account_name() == account
                    || status.and_then(|s| s.account_id.as_deref()) == Some(account_id.as_str());
                same_account
                    && status.and_then(|s| s.region.as_deref()) == Some(region.as_str())
                    && obj
                        .condition(types::QUOTA_EXCEEDED)
                        .is_some_and(|c| c.reason == Quota::InstanceLimit.reason())
            }
        })
        .map(|obj| reflector::ObjectRef::from_obj(obj.as_ref()))
        .collect()
}

/// Runs the instance controller until `shutdown` resolves. `ready` flips to true once the
/// watch has listed every object (the store is synced).
pub async fn run(
    ctx: Arc<Context>,
    watches: &Watches,
    namespaces: Vec<String>,
    concurrency: u16,
    ready: Arc<AtomicBool>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    // No namespace: all of them. One: a namespaced watch (a namespaced Role suffices).
    // Several: one watch of all namespaces, filtered here before anything else sees it (one
    // watch, so the store's relists stay whole; it needs cluster-wide list/watch).
    let api: Api<ConnectInstance> = match namespaces.as_slice() {
        [one] => Api::namespaced(ctx.client.clone(), one),
        _ => Api::all(ctx.client.clone()),
    };
    let wanted: Option<std::collections::BTreeSet<String>> =
        (namespaces.len() > 1).then(|| namespaces.iter().cloned().collect());
    let (reader, writer) = reflector::store();
    // Ready once the first full list has been received. (The store's own
    // `wait_until_ready` wakes only one waiter, and the controller is already that one.)
    // The state gauges are exported from then on: before, the store is empty and they would
    // say "no objects".
    let forget = ctx.clone();
    let sources = crate::telemetry::Sources {
        instances: reader.clone(),
        accounts: ctx.directory.accounts().clone(),
        default_region: ctx.connect.default_region().to_owned(),
    };
    let mut serving = false;
    let state_metrics = Arc::clone(&ctx.metrics);
    let stream = watches
        .open(api, watches.config(), "ConnectInstance")
        .try_filter(move |event| {
            let keep = match (&wanted, event) {
                (
                    Some(wanted),
                    watcher::Event::Apply(obj)
                    | watcher::Event::InitApply(obj)
                    | watcher::Event::Delete(obj),
                ) => obj.namespace().is_some_and(|ns| wanted.contains(&ns)),
                _ => true,
            };
            futures::future::ready(keep)
        })
        .inspect_ok(move |event| match event {
            watcher::Event::InitDone if !ready.swap(true, Ordering::SeqCst) => {
                tracing::info!("watch synced; ready");
            }
            // Whatever the process remembered about an object goes with it.
            watcher::Event::Delete(obj) => {
                forget.memory.forget(&object_key(obj));
                forget.polls.unfollow(&object_key(obj));
            }
            _ => {}
        })
        // managedFields are a third of each object and the operator never reads them.
        .modify(|obj: &mut ConnectInstance| obj.managed_fields_mut().clear())
        .reflect(writer)
        // After the reflector, which fills the store on the first InitDone.
        .inspect_ok(move |event| {
            if matches!(event, watcher::Event::InitDone) && !serving {
                serving = true;
                state_metrics.serve_state(sources.clone());
            }
        })
        .applied_objects()
        .predicate_filter(trigger_hash, PredicateConfig::default());
    let wakes = {
        let store = reader.clone();
        let receiver = ctx.directory.subscribe_wakes();
        futures::stream::unfold(receiver, |mut receiver| async move {
            let wake = receiver.recv().await?;
            Some((wake, receiver))
        })
        .flat_map(move |wake| {
            let refs = woken(&store, &wake);
            if !refs.is_empty() {
                tracing::debug!(?wake, objects = refs.len(), "waking objects");
            }
            futures::stream::iter(refs)
        })
    };
    let metrics = Arc::clone(&ctx.metrics);
    Controller::for_stream(stream, reader)
        .reconcile_on(wakes)
        // The controller backs off its trigger streams again on any watch error, by default
        // up to 30 s: the watches' own backoff instead, so a returning API server is used
        // within seconds.
        .trigger_backoff(WatchBackoff::default())
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, action)) => tracing::debug!(object = %obj, ?action, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile ended in error"),
            }
        })
        .await;
    metrics.stop_serving_state();
}
