//! The command line: `connect-operator run`, `connect-operator crd` and
//! `connect-operator import`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::accounts;
use crate::aws::{AwsSettings, RateLimitSettings};
use crate::cluster::ClientSettings;
use crate::reconciler::{RetryPolicy, Settings};
use crate::runtime::{self, LeaseSettings, Options};
use crate::telemetry::{self, LogFormat};

/// Manages Amazon Connect instances from `ConnectInstance` resources.
#[derive(Parser, Debug)]
#[command(name = "connect-operator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
// Parsed once at start-up; boxing the flags would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the operator.
    Run(RunArgs),
    /// Print the CustomResourceDefinitions (ConnectInstance, ConnectAccount) as YAML.
    Crd(CrdArgs),
    /// Print a ConnectInstance manifest that adopts a live instance (reads AWS, writes
    /// nothing): apply it to bring the instance under management without re-creating it.
    Import(crate::import::ImportArgs),
}

/// Flags of `connect-operator crd`.
#[derive(Args, Debug, Clone)]
pub struct CrdArgs {
    /// Write each CRD to its own file in this directory (what `crds/` holds) instead of
    /// printing them all as one YAML stream.
    #[arg(long)]
    pub output_dir: Option<std::path::PathBuf>,
}

/// Flags of `connect-operator run`; each has an environment variable.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Watch only these namespaces (comma-separated; default: all namespaces).
    #[arg(long, env = "CONNECT_OPERATOR_WATCH_NAMESPACE", value_delimiter = ',')]
    pub namespace: Vec<String>,

    /// Serve only the ConnectAccounts matching this label selector (default: all). Objects
    /// naming any other account are refused (`AccountNotFound`), so several operators
    /// (with different AWS permissions) can share a cluster, one set of accounts each.
    #[arg(long, env = "CONNECT_OPERATOR_ACCOUNT_SELECTOR")]
    pub account_selector: Option<String>,

    /// AWS region for objects that name none.
    #[arg(long, env = "AWS_REGION")]
    pub region: String,

    /// Endpoint override for the Amazon Connect API (a VPC endpoint, the simulator).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,

    /// How often a Ready instance is checked for drift (jittered ±20%).
    #[arg(long, env = "CONNECT_OPERATOR_DRIFT_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub drift_interval: Duration,

    /// Interval of the shared poll of each account and region while instances are being
    /// created or deleted there: ACTIVE is seen within it, Ready follows in moments (longer
    /// only when one poll's reads, a ListInstances listing or a DescribeInstance per
    /// instance, would exceed half of --api-rate on average).
    #[arg(long, env = "CONNECT_OPERATOR_CREATION_POLL_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub creation_poll_interval: Duration,

    /// Retry interval after a quota error.
    #[arg(long, env = "CONNECT_OPERATOR_QUOTA_RETRY_INTERVAL", default_value = "2h", value_parser = humantime::parse_duration)]
    pub quota_retry_interval: Duration,

    /// Retry interval after AccessDenied.
    #[arg(long, env = "CONNECT_OPERATOR_ACCESS_DENIED_RETRY_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub access_denied_retry_interval: Duration,

    /// First backoff after a transient error (doubles per failure).
    #[arg(long, env = "CONNECT_OPERATOR_ERROR_BACKOFF", default_value = "2s", value_parser = humantime::parse_duration)]
    pub error_backoff: Duration,

    /// Backoff ceiling.
    #[arg(long, env = "CONNECT_OPERATOR_ERROR_BACKOFF_MAX", default_value = "5m", value_parser = humantime::parse_duration)]
    pub error_backoff_max: Duration,

    /// Objects reconciled at the same time.
    #[arg(long, env = "CONNECT_OPERATOR_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,

    /// Address of `/metrics`, `/livez` and `/readyz`.
    #[arg(
        long,
        env = "CONNECT_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_addr: SocketAddr,

    /// CreateInstance/DeleteInstance calls per second, per region (Connect's quota: 0.1).
    #[arg(long, env = "CONNECT_OPERATOR_CREATE_DELETE_RATE", default_value_t = 0.1, value_parser = positive_rate)]
    pub create_delete_rate: f64,

    /// Other Connect API calls per second, per region and operation (Connect's quota: 2).
    #[arg(long, env = "CONNECT_OPERATOR_API_RATE", default_value_t = 2.0, value_parser = positive_rate)]
    pub api_rate: f64,

    /// Timeout of each AWS call.
    #[arg(long, env = "CONNECT_OPERATOR_AWS_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub aws_timeout: Duration,

    /// Deadline of every Kubernetes request, from sending it to the last byte of the
    /// answer (for a watch: until the API server accepts it).
    #[arg(long, env = "CONNECT_OPERATOR_KUBE_REQUEST_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub kube_request_timeout: Duration,

    /// Server-side timeout of every watch: an idle watch is re-established this often, and
    /// one whose connection died silently is given up 5 s after it. Keep it below the idle
    /// timeout of any load balancer in front of the API server.
    #[arg(long, env = "CONNECT_OPERATOR_WATCH_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub watch_timeout: Duration,

    /// Log format; the level comes from RUST_LOG (default info).
    #[arg(long, env = "CONNECT_OPERATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Reconcile only while holding a Lease (for more than one replica).
    #[arg(
        long,
        env = "CONNECT_OPERATOR_LEADER_ELECTION",
        default_value_t = false
    )]
    pub leader_election: bool,

    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "CONNECT_OPERATOR_LEASE_NAME",
        default_value = "connect-operator"
    )]
    pub lease_name: String,

    /// Namespace of the leader-election Lease (in a pod: its own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,

    /// How long a lease is valid without renewal (seconds): other replicas take over this
    /// long after they last saw it renewed.
    #[arg(long, env = "CONNECT_OPERATOR_LEASE_DURATION", default_value_t = 15)]
    pub lease_duration_seconds: u64,

    /// How long before the lease would expire a holder that could not renew stops every
    /// write and its controllers (seconds; less than the duration): its renew deadline is
    /// the duration minus this grace.
    #[arg(long, env = "CONNECT_OPERATOR_LEASE_GRACE", default_value_t = 5)]
    pub lease_grace_seconds: u64,

    /// How often the holder renews the lease and followers look at it.
    #[arg(long, env = "CONNECT_OPERATOR_LEASE_RETRY_PERIOD", default_value = "2s", value_parser = humantime::parse_duration)]
    pub lease_retry_period: Duration,

    /// This replica's identity for leader election and events (in a pod: its name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
}

/// The namespaces to watch; none means all.
fn watched(namespaces: &[String]) -> Vec<String> {
    namespaces
        .iter()
        .map(|ns| ns.trim().to_owned())
        .filter(|ns| !ns.is_empty())
        .collect()
}

/// The lowest rate limit accepted.
const MIN_RATE: f64 = 0.001;

fn positive_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a number: {e}"))?;
    // At least one call in about 17 minutes: below that a period no longer fits the clock.
    if v.is_finite() && v >= MIN_RATE {
        Ok(v)
    } else {
        Err(format!(
            "{s:?} must be a number of calls per second of at least {MIN_RATE}"
        ))
    }
}

/// Errors that stop the process.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Bad flag combination.
    #[error("invalid flags: {0}")]
    Flags(String),
    /// The operator stopped with an error.
    #[error(transparent)]
    Run(#[from] runtime::RunError),
    /// A CRD could not be rendered.
    #[error("cannot render the CRDs: {0}")]
    Crd(#[from] serde_yaml::Error),
    /// A CRD file could not be written.
    #[error("cannot write {0}: {1}")]
    CrdWrite(String, #[source] std::io::Error),
    /// `import` could not read the instance.
    #[error("import: {0}")]
    Import(#[from] crate::import::ImportError),
}

/// Prints the CRDs as one YAML stream, or writes one file per CRD.
pub fn print_crds(args: &CrdArgs) -> Result<(), StartupError> {
    let crds = crate::api::crds();
    match &args.output_dir {
        Some(dir) => {
            for (file, crd) in &crds {
                let path = dir.join(file);
                std::fs::write(&path, serde_yaml::to_string(crd)?)
                    .map_err(|e| StartupError::CrdWrite(path.display().to_string(), e))?;
            }
        }
        None => {
            let documents = crds
                .iter()
                .map(|(_, crd)| serde_yaml::to_string(crd))
                .collect::<Result<Vec<_>, _>>()?;
            print!("{}", documents.join("---\n"));
        }
    }
    Ok(())
}

/// The process's options from the flags.
pub fn options(args: &RunArgs) -> Result<Options, StartupError> {
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let lease = if args.leader_election {
        if args.lease_grace_seconds == 0 || args.lease_grace_seconds >= args.lease_duration_seconds
        {
            return Err(StartupError::Flags(
                "--lease-grace-seconds must be greater than zero and less than --lease-duration-seconds".into(),
            ));
        }
        let lease = LeaseSettings {
            name: args.lease_name.clone(),
            namespace: args.lease_namespace.clone(),
            identity: identity.clone(),
            duration: Duration::from_secs(args.lease_duration_seconds),
            renew_deadline: Duration::from_secs(
                args.lease_duration_seconds - args.lease_grace_seconds,
            ),
            retry_period: args.lease_retry_period,
        };
        lease.validate().map_err(StartupError::Flags)?;
        Some(lease)
    } else {
        None
    };
    if args.kube_request_timeout.is_zero() || args.watch_timeout < Duration::from_secs(1) {
        return Err(StartupError::Flags(
            "--kube-request-timeout must be greater than zero and --watch-timeout at least 1s"
                .into(),
        ));
    }
    let retry = RetryPolicy {
        backoff_base: args.error_backoff,
        backoff_max: args.error_backoff_max,
        access_denied_retry: args.access_denied_retry_interval,
        quota_retry: args.quota_retry_interval,
        drift_interval: args.drift_interval,
        ..RetryPolicy::default()
    };
    Ok(Options {
        namespaces: watched(&args.namespace),
        account_selector: args
            .account_selector
            .clone()
            .filter(|s| !s.trim().is_empty()),
        aws: AwsSettings {
            default_region: args.region.clone(),
            endpoint_url: args.aws_endpoint_url.clone(),
            call_timeout: args.aws_timeout,
            connect_timeout: aws_connect_timeout(args.aws_timeout, lease.as_ref()),
            rate_limits: RateLimitSettings {
                lifecycle_per_second: args.create_delete_rate,
                other_per_second: args.api_rate,
                ..RateLimitSettings::default()
            },
        },
        kube: ClientSettings {
            request_timeout: args.kube_request_timeout,
            watch_timeout: args.watch_timeout,
        },
        reconciler: Settings {
            retry,
            creation_poll_interval: args.creation_poll_interval,
            // Half of DescribeInstance's rate for creation polls; the rest for drift checks,
            // lookups and deletions.
            creation_polls_per_second: args.api_rate / 2.0,
        },
        accounts: accounts::controller::Settings {
            verify_interval: args.drift_interval,
            retry_failed: args.access_denied_retry_interval,
            in_use_poll: args.creation_poll_interval,
        },
        concurrency: args.concurrency,
        metrics_addr: args.metrics_addr,
        lease,
        identity,
    })
}

/// How long connecting to AWS may take: at most 10 s and the call timeout; under leader
/// election at most half the grace, so that a write the fence let through leaves the
/// process well before another replica may lead.
fn aws_connect_timeout(call_timeout: Duration, lease: Option<&LeaseSettings>) -> Duration {
    let mut timeout = call_timeout.min(Duration::from_secs(10));
    if let Some(lease) = lease {
        timeout = timeout.min((lease.duration - lease.renew_deadline) / 2);
    }
    timeout
}

/// Runs the operator until SIGTERM or Ctrl-C.
pub async fn run(args: RunArgs) -> Result<(), StartupError> {
    telemetry::init_logging(args.log_format);
    let options = options(&args)?;
    runtime::run(options, wait_for_signal()).await?;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn default_identity() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("connect-operator-{}", std::process::id()))
}

/// Entry point of the binary.
pub async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd(args) => print_crds(&args),
        Command::Run(args) => run(args).await,
        Command::Import(args) => crate::import::run(args).await.map_err(StartupError::from),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "connect-operator stopped");
            eprintln!("connect-operator: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
