//! The process: which controllers run, under which lease, with which fence and liveness.
//!
//! - One Kubernetes client whose every request has a deadline, one AWS client (its rate
//!   limiters live as long as the process), one directory of accounts and namespaces, the
//!   HTTP server with `/metrics`, `/livez` and `/readyz`.
//! - Without leader election the controllers run from start to shutdown behind an open
//!   fence. With it, each time this replica acquires the Lease a *term* begins: fresh
//!   controller contexts (nothing a previous term kept in memory carries over; the watches
//!   list everything anew) and the fence open until the renew deadline. A term ends when
//!   the fence closes for want of a renewal, or at shutdown; the controllers are stopped,
//!   and the replica follows again (or releases the Lease and exits).
//! - The instance controller and the account controller run side by side in each term;
//!   neither starts the other.

pub mod lease;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::watch;

use crate::accounts::{self, Directory};
use crate::aws::{AwsSettings, ConnectClient};
use crate::cluster::{self, ClientSettings, Reporter, Watches};
use crate::fence::Fence;
use crate::liveness::Liveness;
use crate::reconciler;
use crate::server::{self, Health, ServerState};
use crate::telemetry::Metrics;
pub use lease::LeaseSettings;

/// Everything the process is configured with.
#[derive(Clone, Debug)]
pub struct Options {
    /// Namespaces watched (none: all).
    pub namespaces: Vec<String>,
    /// The label selector of the accounts served (`None`: all).
    pub account_selector: Option<String>,
    /// How AWS is reached.
    pub aws: AwsSettings,
    /// The Kubernetes client's deadlines and watch timeout.
    pub kube: ClientSettings,
    /// The instance controller's settings.
    pub reconciler: reconciler::Settings,
    /// The account controller's settings.
    pub accounts: accounts::controller::Settings,
    /// Objects reconciled at once.
    pub concurrency: u16,
    /// Address of `/metrics`, `/livez`, `/readyz`.
    pub metrics_addr: SocketAddr,
    /// Leader election, if on.
    pub lease: Option<LeaseSettings>,
    /// This replica's identity (events, the Lease).
    pub identity: String,
}

/// Why the process stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The Kubernetes client could not be configured.
    #[error("cannot configure the Kubernetes client: {0}")]
    Kube(#[from] kube::Error),
    /// The accounts or namespaces could not be watched.
    #[error("cannot watch accounts and namespaces: {0}")]
    Directory(#[from] accounts::DirectoryError),
    /// The HTTP server could not start.
    #[error("metrics/health server: {0}")]
    Server(#[from] std::io::Error),
    /// The controllers ended although nobody asked them to.
    #[error("the controllers stopped by themselves")]
    ControllersEnded,
}

/// How long a lost term's controllers get to finish what they were doing (every write is
/// refused by then) before they are dropped.
fn stop_grace(options: &Options) -> Duration {
    options.kube.request_timeout + options.aws.call_timeout
}

/// What every term shares.
struct Shared {
    options: Options,
    client: kube::Client,
    connect: Arc<ConnectClient>,
    directory: Directory,
    reporter: Reporter,
    metrics: Arc<Metrics>,
    watches: Watches,
    ready: Arc<AtomicBool>,
    leading: Arc<AtomicBool>,
    liveness: Liveness,
}

/// Runs the operator until `shutdown` resolves.
pub async fn run(
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let liveness = Liveness::new(
        watch_bound(&options.kube),
        options
            .lease
            .as_ref()
            .map_or(Duration::from_secs(60), |lease| {
                (lease.duration * 2).max(Duration::from_secs(30))
            }),
    );
    let client = cluster::client::connect(options.kube, &liveness).await?;
    let metrics = Arc::new(Metrics::new());
    let fence = Arc::new(if options.lease.is_some() {
        Fence::closed()
    } else {
        Fence::open()
    });
    let connect = Arc::new(
        ConnectClient::from_env(&options.aws, Arc::clone(&metrics))
            .await
            .with_fence(Arc::clone(&fence)),
    );
    let watches = Watches::new(&options.kube, liveness.clone());
    let reporter = Reporter::new(
        client.clone(),
        Arc::clone(&metrics),
        Arc::clone(&fence),
        Some(options.identity.clone()),
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested");
        let _ = stop_tx.send(true);
    });

    // Served before anything waits on the API server, so that /livez answers (and tells)
    // while it is unreachable at start-up.
    let ready = Arc::new(AtomicBool::new(false));
    let leading = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(options.metrics_addr).await?;
    let server = tokio::spawn(server::serve_on(
        listener,
        ServerState {
            metrics: Arc::clone(&metrics),
            ready: Arc::clone(&ready),
            health: Health {
                liveness: liveness.clone(),
                fence: Arc::clone(&fence),
                leading: Arc::clone(&leading),
                failing: Arc::default(),
            },
        },
        wait_true(stop_rx.clone()),
    ));
    let directory = tokio::select! {
        directory = Directory::start(
            client.clone(),
            &watches,
            &options.namespaces,
            options.account_selector.clone(),
        ) => directory?,
        () = wait_true(stop_rx.clone()) => {
            server.abort();
            return Ok(());
        }
    };

    tracing::info!(
        namespaces = %if options.namespaces.is_empty() { "<all>".to_owned() } else { options.namespaces.join(",") },
        region = %options.aws.default_region,
        endpoint = options.aws.endpoint_url.as_deref().unwrap_or("<aws>"),
        identity = %options.identity,
        leader_election = options.lease.is_some(),
        request_timeout = ?options.kube.request_timeout,
        watch_timeout = ?options.kube.watch_timeout,
        "starting connect-operator"
    );
    let lease = options.lease.clone();
    let shared = Shared {
        options,
        client,
        connect,
        directory,
        reporter,
        metrics,
        watches,
        ready,
        leading,
        liveness,
    };
    let result = match lease {
        None => run_alone(&shared, stop_rx).await,
        Some(lease) => run_elected(&shared, lease, fence, stop_rx).await,
    };
    server.abort();
    result
}

/// How long a watch may deliver nothing and not be re-established before the process is
/// not live: twice the idle timeout after which the watcher re-opens it, plus one request
/// deadline for re-opening it on a connection that turns out dead.
#[must_use]
pub fn watch_bound(kube: &ClientSettings) -> Duration {
    kube.watch_idle_timeout() * 2 + kube.request_timeout
}

/// No leader election: one term, from start to shutdown.
async fn run_alone(shared: &Shared, stop: watch::Receiver<bool>) -> Result<(), RunError> {
    let stopping = stop.clone();
    term(shared, wait_true(stop)).await;
    if *stopping.borrow() {
        Ok(())
    } else {
        shared
            .liveness
            .controllers_stopped("the controllers ended by themselves");
        Err(RunError::ControllersEnded)
    }
}

/// Leader election: follow, lead while the fence is open, follow again when it closes.
async fn run_elected(
    shared: &Shared,
    settings: LeaseSettings,
    fence: Arc<Fence>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), RunError> {
    let mut elector = lease::Elector::new(
        shared.client.clone(),
        settings.clone(),
        Arc::clone(&fence),
        shared.liveness.clone(),
    );
    // A follower is healthy and doing its job (waiting): it reports ready, or a rolling
    // update and a PodDisruptionBudget would wait forever for a replica that never leads.
    shared.ready.store(true, Ordering::SeqCst);
    tracing::info!(lease = %settings.name, namespace = %settings.namespace, "waiting for the lease");
    loop {
        if !elector.acquire(&mut stop).await {
            elector.release().await;
            return Ok(());
        }
        tracing::info!(lease = %settings.name, "acquired the lease; reconciling");
        let (end_tx, end_rx) = watch::channel(false);
        let controllers = term(shared, wait_true(end_rx)).fuse();
        tokio::pin!(controllers);
        let ended = tokio::select! {
            ended = elector.hold(&mut stop) => ended,
            () = &mut controllers => {
                fence.close();
                shared.liveness.controllers_stopped("the controllers ended by themselves");
                elector.release().await;
                return Err(RunError::ControllersEnded);
            }
        };
        // Writes are refused from the moment the fence closed (by its deadline, or here);
        // the controllers now stop taking work and finish what they had.
        fence.close();
        let _ = end_tx.send(true);
        let stopped = async {
            // The lease loop waits here: still turning, as far as /livez is concerned.
            let mut tick = tokio::time::interval(settings.retry_period);
            loop {
                tokio::select! {
                    () = &mut controllers => return,
                    _ = tick.tick() => shared.liveness.lease_round(),
                }
            }
        };
        if tokio::time::timeout(stop_grace(&shared.options), stopped)
            .await
            .is_err()
        {
            tracing::warn!("the controllers did not stop in time; dropping them");
        }
        match ended {
            lease::Ended::Stopped => {
                elector.release().await;
                return Ok(());
            }
            lease::Ended::Lost(why) => {
                tracing::warn!(reason = %why, "lost the lease: stopped writing and reconciling; following again");
            }
        }
    }
}

/// One term: both controllers, from fresh contexts, until `end` resolves.
async fn term(shared: &Shared, end: impl Future<Output = ()> + Send + 'static) {
    let end = end.boxed().shared();
    let options = &shared.options;
    let instances = Arc::new(reconciler::Context::new(
        shared.client.clone(),
        Arc::clone(&shared.connect),
        shared.directory.clone(),
        shared.reporter.clone(),
        Arc::clone(&shared.metrics),
        options.reconciler.clone(),
    ));
    let accounts = Arc::new(accounts::controller::Context {
        client: shared.client.clone(),
        connect: Arc::clone(&shared.connect),
        directory: shared.directory.clone(),
        ledgers: accounts::ledger::Ledgers::new(shared.client.clone()),
        reporter: shared.reporter.clone(),
        settings: options.accounts,
    });
    shared.liveness.controllers_started();
    let _leading = Leading::new(&shared.leading);
    futures::join!(
        reconciler::run(
            instances,
            &shared.watches,
            options.namespaces.clone(),
            options.concurrency,
            Arc::clone(&shared.ready),
            end.clone(),
        ),
        accounts::controller::run(accounts, &shared.watches, end),
    );
}

/// Marks a term as under way while it lives, also when the term is dropped unfinished.
struct Leading<'a>(&'a AtomicBool);

impl<'a> Leading<'a> {
    fn new(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::SeqCst);
        Self(flag)
    }
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Resolves once `rx` holds true (never, if its sender goes away first).
pub async fn wait_true(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            // The sender is gone: nobody can ask for a stop any more; wait forever.
            std::future::pending::<()>().await;
        }
    }
}
