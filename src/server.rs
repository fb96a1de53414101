//! The HTTP server: `/metrics`, `/livez`, `/readyz`.
//!
//! `/readyz` says whether the replica does its job: the leader once its watch has listed
//! every object, a follower as soon as it waits for the lease. `/livez` says whether the
//! process still makes progress (see [`crate::liveness`]): it fails when a watch has been
//! silent and not re-established for too long, or the controllers stopped, so that the
//! kubelet restarts a wedged replica; the text names what is wrong.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::fence::Fence;
use crate::liveness::Liveness;
use crate::telemetry::{Format, Metrics};

/// What the process's health is read from.
#[derive(Clone, Debug)]
pub struct Health {
    /// The liveness probes.
    pub liveness: Liveness,
    /// Whether this replica may write.
    pub fence: Arc<Fence>,
    /// Whether this replica's controllers run (a term is under way).
    pub leading: Arc<AtomicBool>,
    /// Whether `/livez` failed last time (so that a failure is logged when it starts and
    /// when it ends, not at every probe).
    pub failing: Arc<AtomicBool>,
}

impl Health {
    /// Whether this replica leads right now: its controllers run and its fence permits
    /// writes. Computed at each scrape, so a fence that closed by its deadline shows at
    /// once, before the controllers have even noticed.
    #[must_use]
    pub fn leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst) && self.fence.permits()
    }
}

/// What the handlers read.
#[derive(Clone)]
pub struct ServerState {
    /// Metrics to expose.
    pub metrics: Arc<Metrics>,
    /// True once the controller's watch has synced (or the replica waits for the lease).
    pub ready: Arc<AtomicBool>,
    /// Liveness and leadership.
    pub health: Health,
}

/// The router, separate from binding so tests can serve it on any listener.
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// `/metrics`, in OpenMetrics when the scraper asks for it (Prometheus does), else in the
/// classic text format.
async fn metrics(State(state): State<ServerState>, headers: HeaderMap) -> impl IntoResponse {
    state.metrics.set_ready(state.ready.load(Ordering::SeqCst));
    state.metrics.set_leader(state.health.leading());
    let format = Format::negotiate(
        headers
            .get(header::ACCEPT)
            .and_then(|value| value.to_str().ok()),
    );
    (
        [(header::CONTENT_TYPE, format.content_type())],
        state.metrics.encode_as(format),
    )
}

async fn livez(State(state): State<ServerState>) -> impl IntoResponse {
    match state.health.liveness.check(Instant::now()) {
        Ok(summary) => {
            if state.health.failing.swap(false, Ordering::SeqCst) {
                tracing::info!(%summary, "/livez: live again");
            }
            (StatusCode::OK, summary)
        }
        Err(problem) => {
            if !state.health.failing.swap(true, Ordering::SeqCst) {
                tracing::warn!(%problem, "/livez: not live");
            }
            (StatusCode::SERVICE_UNAVAILABLE, problem)
        }
    }
}

async fn readyz(State(state): State<ServerState>) -> impl IntoResponse {
    if state.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "watch not synced yet")
    }
}

/// Serves on `listener` until `shutdown` resolves.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: ServerState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /livez, /readyz");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
