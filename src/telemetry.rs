//! Prometheus metrics and structured logging.
//!
//! Metric labels are bounded sets (error categories, operations, outcomes): never object
//! names, which would grow without limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::aws::Operation;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CategoryLabels {
    category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AwsCallLabels {
    operation: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

/// An account (a ConnectAccount: a bounded, cluster-level set, not objects) and a region.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountRegionLabels {
    account: String,
    region: String,
}

/// The operator's metrics and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    failures: Family<CategoryLabels, Counter>,
    reconcile_duration: Histogram,
    aws_calls: Family<AwsCallLabels, Counter>,
    rate_limit_waits: Family<OperationLabels, Counter>,
    rate_limit_wait_seconds: Family<OperationLabels, Histogram>,
    status_patches: Counter,
    lifecycle_attempts: Family<AccountRegionLabels, Gauge>,
    lifecycle_attempt_budget: Family<AccountRegionLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("connect_operator");
        let reconciles = Counter::default();
        let failures = Family::<CategoryLabels, Counter>::default();
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let aws_calls = Family::<AwsCallLabels, Counter>::default();
        let rate_limit_waits = Family::<OperationLabels, Counter>::default();
        let rate_limit_wait_seconds =
            Family::<OperationLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 2.0, 12))
            });
        let status_patches = Counter::default();
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that ended in an error, by error category",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            reconcile_duration.clone(),
        );
        registry.register(
            "aws_calls",
            "Amazon Connect API calls, by operation and outcome",
            aws_calls.clone(),
        );
        registry.register(
            "rate_limiter_waits",
            "Calls that had to wait for (or were requeued by) the client-side rate limiter",
            rate_limit_waits.clone(),
        );
        registry.register(
            "rate_limiter_wait_seconds",
            "Time calls waited in line for the client-side rate limiter",
            rate_limit_wait_seconds.clone(),
        );
        registry.register(
            "status_patches",
            "Status writes to the Kubernetes API",
            status_patches.clone(),
        );
        let lifecycle_attempts = Family::<AccountRegionLabels, Gauge>::default();
        let lifecycle_attempt_budget = Family::<AccountRegionLabels, Gauge>::default();
        registry.register(
            "lifecycle_attempts",
            "Instance create and delete attempts in the last 30 days, from the attempt ledger",
            lifecycle_attempts.clone(),
        );
        registry.register(
            "lifecycle_attempt_budget",
            "The account's budget of create and delete attempts in 30 days",
            lifecycle_attempt_budget.clone(),
        );
        Self {
            lifecycle_attempts,
            lifecycle_attempt_budget,
            registry,
            reconciles,
            failures,
            reconcile_duration,
            aws_calls,
            rate_limit_waits,
            rate_limit_wait_seconds,
            status_patches,
        }
    }

    /// Counts a reconcile and returns a timer that records its duration when dropped.
    #[must_use]
    pub fn reconcile_started(self: &Arc<Self>) -> ReconcileTimer {
        self.reconciles.inc();
        ReconcileTimer {
            metrics: Arc::clone(self),
            start: Instant::now(),
        }
    }

    /// The attempt ledger's count and the budget of an account in a region.
    pub fn lifecycle_attempts(&self, account: &str, region: &str, used: u32, budget: u32) {
        let labels = AccountRegionLabels {
            account: account.to_owned(),
            region: region.to_owned(),
        };
        self.lifecycle_attempts
            .get_or_create(&labels)
            .set(i64::from(used));
        self.lifecycle_attempt_budget
            .get_or_create(&labels)
            .set(i64::from(budget));
    }

    /// Counts a reconcile failure of this category.
    pub fn reconcile_failed(&self, category: &str) {
        self.failures
            .get_or_create(&CategoryLabels {
                category: category.to_owned(),
            })
            .inc();
    }

    /// Counts one AWS call and its outcome (`success` or an error kind).
    pub fn aws_call(&self, operation: Operation, outcome: &str) {
        self.aws_calls
            .get_or_create(&AwsCallLabels {
                operation: operation.as_str().to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Records a wait (or a requeue) imposed by the client-side rate limiter.
    pub fn rate_limited(&self, operation: Operation, waited: Duration) {
        let labels = OperationLabels {
            operation: operation.as_str().to_owned(),
        };
        self.rate_limit_waits.get_or_create(&labels).inc();
        self.rate_limit_wait_seconds
            .get_or_create(&labels)
            .observe(waited.as_secs_f64());
    }

    /// Counts one status write.
    pub fn status_patched(&self) {
        self.status_patches.inc();
    }

    /// The metrics in the OpenMetrics text format.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Records the reconcile duration when dropped, whatever path the reconcile took.
pub struct ReconcileTimer {
    metrics: Arc<Metrics>,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.metrics
            .reconcile_duration
            .observe(self.start.elapsed().as_secs_f64());
    }
}

/// The log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global tracing subscriber; the level comes from `RUST_LOG` (default `info`).
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Whatever RUST_LOG asks for, the SDK's credential and signing internals stay at info:
    // at debug they log access key ids, and the canonical requests they sign carry the
    // session token of assumed-role credentials.
    for directive in [
        "aws_config::sts=info",
        "aws_config::imds=info",
        "aws_sigv4=info",
        "aws_smithy_http_client=info",
    ] {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // A second initialisation (tests) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exposed_with_bounded_labels() {
        let metrics = Arc::new(Metrics::new());
        drop(metrics.reconcile_started());
        metrics.reconcile_failed("throttled");
        metrics.aws_call(Operation::CreateInstance, "success");
        metrics.rate_limited(Operation::CreateInstance, Duration::from_millis(40));
        let text = metrics.encode();
        assert!(
            text.contains("connect_operator_reconciles_total 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"connect_operator_reconcile_failures_total{category="throttled"} 1"#)
        );
        assert!(text.contains(
            r#"connect_operator_aws_calls_total{operation="CreateInstance",outcome="success"} 1"#
        ));
        assert!(text.contains(
            r#"connect_operator_rate_limiter_waits_total{operation="CreateInstance"} 1"#
        ));
        assert!(text.contains("connect_operator_reconcile_duration_seconds_count 1"));
    }
}
