//! Amazon Connect simulator: an HTTP server speaking Connect's REST-JSON wire protocol for
//! the instance lifecycle, attribute and tagging operations, with AWS's semantics
//! (asynchronous creation, ClientToken idempotency, quotas, rate limits) and injectable
//! faults; STS's AssumeRole and GetCallerIdentity on the same port; state per account (named
//! by the access key of the SigV4 credential scope) and region; and `/_sim/` endpoints to
//! inspect and steer it from tests.
//!
//! Used in-process by tests through [`spawn`] and as the `connect-sim` binary through
//! [`serve`]. See `docs/simulator.md`.

mod api;
mod auth;
mod config;
mod control;
mod errors;
mod limits;
mod model;
mod replication;
mod service;
mod sts;
mod validate;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use api::configuration;
use api::replication as global;
use axum::Router;
use axum::routing::{delete, get, post, put};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use auth::{ISSUED_KEY_PREFIX, issued_key_account};
pub use config::{
    AccountPatch, AccountSettings, AccountView, ConfigPatch, ConfigView, FaultConfig, FaultsPatch,
    FaultsView, Operation, RateLimit, SimConfig, SourceDeleteWithReplica,
};

/// The account of every access key the simulator did not issue, unless configured otherwise.
pub const DEFAULT_ACCOUNT_ID: &str = "123456789012";

use limits::{ConnectionHandle, DroppableListener};
use service::Sim;

/// How long open connections may take to finish after shutdown was requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Why the simulator could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// The configuration is not usable (e.g. an invalid alias regex or extra attribute type).
    #[error("invalid simulator configuration: {0}")]
    InvalidConfig(String),
    /// The server failed while running.
    #[error("simulator server failed: {0}")]
    Serve(#[from] io::Error),
    /// The server task ended abnormally.
    #[error("simulator task failed: {0}")]
    Task(String),
}

/// A simulator running on a tokio task. Dropping the handle stops it.
#[derive(Debug)]
pub struct SimHandle {
    /// The bound address (the real port when asked for port 0).
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), SimError>>>,
}

impl SimHandle {
    /// The base URL to use as the SDK's endpoint, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and waits (briefly) for open ones to finish.
    pub async fn shutdown(mut self) -> Result<(), SimError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(|e| SimError::Task(e.to_string()))?,
            None => Ok(()),
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Binds `addr` and runs a simulator with `config` on a new tokio task.
pub async fn spawn(config: SimConfig, addr: SocketAddr) -> Result<SimHandle, SimError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })?;
    let bound = listener.local_addr()?;
    // Validate before spawning so a bad configuration is reported here.
    let router = router(config)?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(run(router, listener, async move {
        let _ = rx.await;
    }));
    Ok(SimHandle {
        addr: bound,
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// Serves a simulator with `config` on `listener` until `shutdown` completes.
pub async fn serve<F>(config: SimConfig, listener: TcpListener, shutdown: F) -> Result<(), SimError>
where
    F: Future<Output = ()> + Send + 'static,
{
    run(router(config)?, listener, shutdown).await
}

async fn run<F>(router: Router, listener: TcpListener, shutdown: F) -> Result<(), SimError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let (stopping_tx, stopping_rx) = oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = stopping_tx.send(());
    };
    let server = axum::serve(
        DroppableListener::new(listener),
        router.into_make_service_with_connect_info::<ConnectionHandle>(),
    )
    .with_graceful_shutdown(signal);
    // Keep-alive connections of clients that never hang up must not hold the exit forever.
    let deadline = async move {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result.map_err(SimError::Serve),
        () = deadline => Ok(()),
    }
}

/// The full HTTP surface: Connect operations at the paths the SDK uses, STS at `/`, `/_sim/`
/// controls.
fn router(config: SimConfig) -> Result<Router, SimError> {
    config.validate().map_err(SimError::InvalidConfig)?;
    let fail_alias = config.fail_alias_regex().map_err(SimError::InvalidConfig)?;
    let sim = Arc::new(Sim::new(config, fail_alias));
    let router = Router::new()
        .route("/", post(sts::handle_post).get(sts::handle_get))
        .route(
            "/instance",
            put(api::create_instance).get(api::list_instances),
        )
        .route(
            "/instance/{instance_id}",
            get(api::describe_instance).delete(api::delete_instance),
        )
        .route(
            "/instance/{instance_id}/attribute/{attribute_type}",
            post(api::update_instance_attribute).get(api::describe_instance_attribute),
        )
        .route(
            "/instance/{instance_id}/attributes",
            get(api::list_instance_attributes),
        )
        .route(
            "/tags/{*resource_arn}",
            post(api::tag_resource)
                .delete(api::untag_resource)
                .get(api::list_tags_for_resource),
        )
        .route(
            "/instance/{instance_id}/storage-config",
            put(configuration::associate_storage_config),
        )
        .route(
            "/instance/{instance_id}/storage-config/{association_id}",
            get(configuration::describe_storage_config)
                .post(configuration::update_storage_config)
                .delete(configuration::disassociate_storage_config),
        )
        .route(
            "/instance/{instance_id}/storage-configs",
            get(configuration::list_storage_configs),
        )
        .route(
            "/instance/{instance_id}/approved-origin",
            put(configuration::associate_approved_origin)
                .delete(configuration::disassociate_approved_origin),
        )
        .route(
            "/instance/{instance_id}/approved-origins",
            get(configuration::list_approved_origins),
        )
        .route(
            "/instance/{instance_id}/lambda-function",
            put(configuration::associate_lambda_function)
                .delete(configuration::disassociate_lambda_function),
        )
        .route(
            "/instance/{instance_id}/lambda-functions",
            get(configuration::list_lambda_functions),
        )
        .route(
            "/instance/{instance_id}/bot",
            put(configuration::associate_bot).post(configuration::disassociate_bot),
        )
        .route(
            "/instance/{instance_id}/bots",
            get(configuration::list_bots),
        )
        .route(
            "/instance/{instance_id}/security-key",
            put(configuration::associate_security_key),
        )
        .route(
            "/instance/{instance_id}/security-key/{association_id}",
            delete(configuration::disassociate_security_key),
        )
        .route(
            "/instance/{instance_id}/security-keys",
            get(configuration::list_security_keys),
        )
        .route(
            "/instance/{instance_id}/replicate",
            post(global::replicate_instance),
        )
        .route(
            "/traffic-distribution-group",
            put(global::create_traffic_distribution_group),
        )
        .route(
            "/traffic-distribution-group/{*group_id}",
            get(global::describe_traffic_distribution_group)
                .delete(global::delete_traffic_distribution_group),
        )
        .route(
            "/traffic-distribution-groups",
            get(global::list_traffic_distribution_groups),
        )
        .route(
            "/traffic-distribution/{*group_id}",
            get(global::get_traffic_distribution).put(global::update_traffic_distribution),
        )
        .route(
            "/_sim/calls",
            get(control::list_calls).delete(control::clear_calls),
        )
        .route(
            "/_sim/instances",
            get(control::list_instances).post(control::insert_instance),
        )
        .route(
            "/_sim/config",
            get(control::get_config).put(control::put_config),
        )
        .route("/_sim/state", get(control::get_state))
        .route("/_sim/replication", get(control::get_replication))
        .route("/_sim/sessions", get(control::list_sessions))
        .fallback(api::unknown_operation)
        .with_state(sim);
    Ok(router)
}
