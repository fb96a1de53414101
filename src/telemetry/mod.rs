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

pub mod replicas;
pub mod state;

pub use state::{Snapshot, Sources, StateGauges};

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
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
    ready: Gauge,
    leader: Gauge,
    state: Arc<StateGauges>,
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
        let ready = Gauge::default();
        let leader = Gauge::default();
        registry.register(
            "ready",
            "1 when this replica is ready (its watch has synced, or it waits for the lease)",
            ready.clone(),
        );
        registry.register(
            "leader",
            "1 when this replica leads: its controllers run and it may write (it holds the lease within its renew deadline, or runs alone)",
            leader.clone(),
        );
        // A gauge rather than OpenMetrics' info type, which the classic text format (and
        // tools that read only it, such as `promtool check metrics`) does not know.
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register("build_info", "The operator's version; always 1", build);
        let state = Arc::new(StateGauges::default());
        registry.register_collector(Box::new(Arc::clone(&state)));
        Self {
            registry,
            ready,
            leader,
            state,
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

    /// Whether this replica leads (runs the controllers and may write); only a leader
    /// exports the gauges computed from the stores.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
        self.state.set_exported(leader);
    }

    /// Starts exporting the gauges computed from the controllers' stores (once they have
    /// listed what they watch).
    pub fn serve_state(&self, sources: Sources) {
        self.state.set_sources(Some(sources));
    }

    /// Stops exporting them: the controllers have stopped.
    pub fn stop_serving_state(&self) {
        self.state.set_sources(None);
    }

    /// Whether this replica reports ready.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
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
        self.encode_as(Format::OpenMetrics)
    }

    /// The metrics in the given text format.
    #[must_use]
    pub fn encode_as(&self, format: Format) -> String {
        let mut out = String::new();
        let encoded = match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)
            }
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            }
        };
        if encoded.is_err() {
            out.clear();
        }
        out
    }
}

/// The text formats `/metrics` speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0, what Prometheus asks for.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4, for clients that do not ask for OpenMetrics.
    Prometheus,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names it, else the
    /// classic text format (as Prometheus' own client libraries negotiate).
    #[must_use]
    pub fn negotiate(accept: Option<&str>) -> Self {
        if accept.is_some_and(|accept| accept.contains("application/openmetrics-text")) {
            Self::OpenMetrics
        } else {
            Self::Prometheus
        }
    }

    /// The `Content-Type` of the format.
    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
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
        metrics.reconcile_failed("kube_api");
        metrics.aws_call(Operation::CreateInstance, "success");
        metrics.rate_limited(Operation::CreateInstance, Duration::from_millis(40));
        let text = metrics.encode();
        assert!(
            text.contains("connect_operator_reconciles_total 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"connect_operator_reconcile_failures_total{category="kube_api"} 1"#)
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
