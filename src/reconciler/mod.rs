//! The reconciler: one finalizer around the Apply and Cleanup paths of DESIGN.md §2.
//!
//! The decisions live in [`plan`] and [`crate::conditions`] (pure); this module and its
//! children do the I/O: Kubernetes status writes and events, and AWS calls through
//! [`crate::aws::ConnectClient`].

mod apply;
mod cleanup;
pub mod plan;
mod status;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::api::Api;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::utils::PredicateConfig;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Resource, ResourceExt};

use crate::api::{ConnectInstance, FINALIZER};
use crate::aws::ConnectClient;
use crate::telemetry::Metrics;
pub use plan::RetryPolicy;

/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "connect-operator";

/// Reconciler settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Retry and drift-check timing.
    pub retry: RetryPolicy,
    /// The first poll interval while an instance is being created or deleted.
    pub creation_poll_interval: Duration,
    /// How long a status write may take.
    pub kube_write_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            creation_poll_interval: Duration::from_secs(5),
            kube_write_timeout: Duration::from_secs(15),
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Amazon Connect client.
    pub connect: ConnectClient,
    /// Events recorder (one for the process).
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Settings.
    pub settings: Settings,
    /// Consecutive failures per object, for exponential backoff; reset on success.
    failures: Mutex<HashMap<String, u32>>,
    /// When DeleteInstance was last accepted per object, so that polling does not resend it.
    deletes_accepted: Mutex<HashMap<String, Instant>>,
    /// When a lookup last found no instance of the object's, so that a creation waiting for
    /// its CreateInstance slot does not list the whole account on every attempt.
    lookups_empty: Mutex<HashMap<String, Instant>>,
}

impl Context {
    /// A context for one controller.
    #[must_use]
    pub fn new(
        client: Client,
        connect: ConnectClient,
        metrics: Arc<Metrics>,
        settings: Settings,
        reporter_instance: Option<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_owned(),
            instance: reporter_instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            connect,
            metrics,
            settings,
            failures: Mutex::new(HashMap::new()),
            deletes_accepted: Mutex::new(HashMap::new()),
            lookups_empty: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one more consecutive failure for the object and returns the count before it.
    fn next_attempt(&self, key: &str) -> u32 {
        let mut map = lock(&self.failures);
        let counter = map.entry(key.to_owned()).or_insert(0);
        let attempt = *counter;
        *counter = counter.saturating_add(1);
        attempt
    }

    /// Forgets the object's failures after a success.
    fn reset_attempts(&self, key: &str) {
        lock(&self.failures).remove(key);
    }

    fn record_delete_accepted(&self, key: &str) {
        lock(&self.deletes_accepted).insert(key.to_owned(), Instant::now());
    }

    fn delete_accepted_at(&self, key: &str) -> Option<Instant> {
        lock(&self.deletes_accepted).get(key).copied()
    }

    fn forget_delete(&self, key: &str) {
        lock(&self.deletes_accepted).remove(key);
    }

    fn record_lookup_empty(&self, key: &str) {
        lock(&self.lookups_empty).insert(key.to_owned(), Instant::now());
    }

    /// Whether a lookup found nothing for the object within `window`.
    fn lookup_empty_within(&self, key: &str, window: Duration) -> bool {
        lock(&self.lookups_empty)
            .get(key)
            .is_some_and(|at| at.elapsed() < window)
    }

    fn forget_lookup(&self, key: &str) {
        lock(&self.lookups_empty).remove(key);
    }

    fn jittered(d: Duration) -> Duration {
        plan::jitter(d, fastrand::f64())
    }
}

/// Reconcile failures that reach the controller's error policy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[source] kube::Error),
    /// A status write took longer than its timeout.
    #[error("status write timed out after {0:?}")]
    KubeTimeout(Duration),
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
    /// The finalizer helper failed (adding/removing the finalizer, or a wrapped error).
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

impl Error {
    /// A stable category for metrics and event reasons.
    #[must_use]
    pub fn category(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube_api",
            Self::KubeTimeout(_) => "kube_timeout",
            Self::MissingObjectKey(_) => "invalid_object",
            Self::CleanupPending { .. } => "cleanup_pending",
            Self::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => {
                    e.category()
                }
                _ => "finalizer",
            },
        }
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

/// What happens after a reconcile error: a pending cleanup comes back when it asked to;
/// anything else is retried with per-object exponential backoff and jitter.
pub fn error_policy(obj: Arc<ConnectInstance>, err: &Error, ctx: Arc<Context>) -> Action {
    if let Some(after) = err.pending_after() {
        return Action::requeue(after);
    }
    ctx.metrics.reconcile_failed(err.category());
    let key = object_key(&obj);
    let attempt = ctx.next_attempt(&key);
    let delay = Context::jittered(plan::backoff(&ctx.settings.retry, attempt));
    tracing::warn!(error = %err, category = err.category(), ?delay, "reconcile failed; retrying");
    Action::requeue(delay)
}

/// A poisoned lock only means another reconcile panicked mid-update of a counter map;
/// the map is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn object_key(obj: &ConnectInstance) -> String {
    obj.uid()
        .unwrap_or_else(|| format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()))
}

/// What wakes a reconcile: a spec change (generation), the start of deletion, or a change
/// of finalizers. Status-only writes, our own included, do not: they would hot-loop.
fn trigger_hash(obj: &ConnectInstance) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    obj.meta().generation.hash(&mut hasher);
    obj.meta().deletion_timestamp.is_some().hash(&mut hasher);
    obj.finalizers().hash(&mut hasher);
    Some(hasher.finish())
}

/// Runs the controller until `shutdown` resolves. `ready` flips to true once the watch has
/// listed every object (the store is synced).
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    concurrency: u16,
    ready: Arc<AtomicBool>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<ConnectInstance> = match &namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let (reader, writer) = reflector::store();
    // Ready once the first full list has been received. (The store's own
    // `wait_until_ready` wakes only one waiter, and the controller is already that one.)
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .inspect_ok(move |event| {
            if matches!(event, watcher::Event::InitDone) && !ready.swap(true, Ordering::SeqCst) {
                tracing::info!("watch synced; ready");
            }
        })
        // managedFields are a third of each object and the operator never reads them.
        .modify(|obj: &mut ConnectInstance| obj.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects()
        .predicate_filter(trigger_hash, PredicateConfig::default());
    Controller::for_stream(stream, reader)
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
}
