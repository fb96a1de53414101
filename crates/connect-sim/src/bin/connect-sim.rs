//! `connect-sim`: the Amazon Connect simulator as a process (see `docs/simulator.md`).

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use connect_sim::{self as simulator, Operation, SimConfig, SourceDeleteWithReplica};
use tracing_subscriber::EnvFilter;

/// Amazon Connect simulator speaking Connect's REST-JSON API, with `/_sim/` control endpoints.
#[derive(Debug, Parser)]
#[command(name = "connect-sim", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Default region: of requests whose SigV4 credential scope names none.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Default account: of every access key the simulator's AssumeRole did not issue.
    #[arg(long, default_value = connect_sim::DEFAULT_ACCOUNT_ID)]
    account_id: String,
    /// How long new instances stay CREATION_IN_PROGRESS (e.g. `2s`, `500ms`).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    creation_delay: Duration,
    /// How long deleted instances stay visible (e.g. `1s`).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    deletion_delay: Duration,
    /// Instances per account.
    #[arg(long, default_value_t = 2)]
    instance_quota: u32,
    /// Create and delete attempts allowed in the 30-day window.
    #[arg(long, default_value_t = 100)]
    lifecycle_attempt_limit: u32,
    /// Aliases matching this regex end CREATION_FAILED.
    #[arg(long)]
    fail_creation_alias_pattern: Option<String>,
    /// Referenced resources (buckets, KMS keys, streams, Lambda functions, Lex bot aliases)
    /// matching this regex do not exist: Associate and Update calls naming one answer
    /// ResourceNotFoundException.
    #[arg(long)]
    missing_resource_pattern: Option<String>,
    /// Eventual consistency: for this long after CreateInstance, lookups of the new instance
    /// answer ResourceNotFoundException and ListInstances omits it (`0s` = off).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    visibility_delay: Duration,
    /// DeleteInstance of a CREATION_IN_PROGRESS instance answers InvalidRequestException.
    #[arg(long)]
    refuse_delete_while_creating: bool,
    /// CREATION_FAILED instances vanish this long after they failed (AWS: about `24h`);
    /// unset = they stay.
    #[arg(long, value_parser = humantime::parse_duration)]
    failed_instance_retention: Option<Duration>,
    /// An attribute type the SDK does not know, listed by ListInstanceAttributes with the
    /// value "false". Repeatable.
    #[arg(long = "extra-attribute-type", value_name = "NAME")]
    extra_attribute_types: Vec<String>,
    /// Answer unsigned requests 403 MissingAuthenticationToken… as AWS does (by default
    /// they are served as the default account).
    #[arg(long)]
    require_authentication: bool,
    /// A role ARN AssumeRole refuses with AccessDenied. Repeatable.
    #[arg(long = "refuse-assume-role", value_name = "ROLE_ARN")]
    refuse_assume_role: Vec<String>,
    /// `ROLE_ARN=EXTERNAL_ID`: AssumeRole of that role requires that ExternalId. Repeatable.
    #[arg(long = "role-external-id", value_name = "ROLE_ARN=EXTERNAL_ID")]
    role_external_ids: Vec<String>,
    /// How long a replica made by ReplicateInstance stays CREATION_IN_PROGRESS.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    replication_delay: Duration,
    /// How long a deleted replica stays visible (INSTANCE_REPLICA_DELETING).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    replica_deletion_delay: Duration,
    /// No account is allow-listed for Global Resiliency: ReplicateInstance answers
    /// AccessDeniedException (per account: `accounts` in `/_sim/config`).
    #[arg(long)]
    deny_replication: bool,
    /// Replica aliases matching this regex end INSTANCE_REPLICATION_FAILED.
    #[arg(long)]
    fail_replication_alias_pattern: Option<String>,
    /// DeleteInstance of a source instance that has a replica: `refuse` or `cascade`.
    #[arg(long, default_value = "refuse", value_parser = parse_source_delete)]
    source_delete_with_replica: SourceDeleteWithReplica,
    /// Rate limit override `Operation=RATE[/BURST]` (requests/second; `none` = unlimited).
    /// Repeatable.
    #[arg(long = "rate-limit", value_name = "OP=RATE[/BURST]")]
    rate_limits: Vec<String>,
    /// Seed for ids and fault decisions (random when unset).
    #[arg(long)]
    seed: Option<u64>,
}

fn parse_source_delete(value: &str) -> Result<SourceDeleteWithReplica, String> {
    match value {
        "refuse" => Ok(SourceDeleteWithReplica::Refuse),
        "cascade" => Ok(SourceDeleteWithReplica::Cascade),
        other => Err(format!("'{other}': expected refuse or cascade")),
    }
}

fn apply_rate_limit(config: &mut SimConfig, spec: &str) -> Result<(), String> {
    let (name, limit) = spec
        .split_once('=')
        .ok_or_else(|| format!("--rate-limit {spec}: expected OP=RATE[/BURST]"))?;
    let op = Operation::from_name(name)
        .filter(|op| !op.is_sts())
        .ok_or_else(|| format!("--rate-limit {spec}: unknown Connect operation {name}"))?;
    let (rate, burst) = match limit.split_once('/') {
        Some((rate, burst)) => (rate, Some(burst)),
        None => (limit, None),
    };
    let mut current = config.rate_limit(op);
    current.per_second = if rate == "none" {
        None
    } else {
        let rate: f64 = rate
            .parse()
            .map_err(|e| format!("--rate-limit {spec}: {e}"))?;
        if !rate.is_finite() || rate < 0.0 {
            return Err(format!("--rate-limit {spec}: rate must be >= 0"));
        }
        Some(rate)
    };
    if let Some(burst) = burst {
        current.burst = burst
            .parse::<u32>()
            .ok()
            .filter(|b| *b > 0)
            .ok_or_else(|| format!("--rate-limit {spec}: burst must be a positive integer"))?;
    }
    config.rate_limits.insert(op, current);
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
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

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let mut config = SimConfig {
        region: args.region,
        account_id: args.account_id,
        creation_delay: args.creation_delay,
        deletion_delay: args.deletion_delay,
        instance_quota: args.instance_quota,
        lifecycle_attempt_limit: args.lifecycle_attempt_limit,
        fail_creation_alias_pattern: args.fail_creation_alias_pattern,
        missing_resource_pattern: args.missing_resource_pattern,
        visibility_delay: args.visibility_delay,
        refuse_delete_while_creating: args.refuse_delete_while_creating,
        failed_instance_retention: args.failed_instance_retention,
        extra_attribute_types: args.extra_attribute_types,
        require_authentication: args.require_authentication,
        refuse_assume_role: args.refuse_assume_role,
        replication_delay: args.replication_delay,
        replica_deletion_delay: args.replica_deletion_delay,
        replication_allowed: !args.deny_replication,
        fail_replication_alias_pattern: args.fail_replication_alias_pattern,
        source_delete_with_replica: args.source_delete_with_replica,
        seed: args.seed,
        ..SimConfig::default()
    };
    for spec in &args.role_external_ids {
        // The ARN contains no '=', so the first one separates it from the id.
        match spec.split_once('=') {
            Some((arn, external_id)) => {
                config
                    .role_external_ids
                    .insert(arn.to_owned(), external_id.to_owned());
            }
            None => {
                eprintln!("connect-sim: --role-external-id {spec}: expected ROLE_ARN=EXTERNAL_ID");
                return ExitCode::from(2);
            }
        }
    }
    for spec in &args.rate_limits {
        if let Err(message) = apply_rate_limit(&mut config, spec) {
            eprintln!("connect-sim: {message}");
            return ExitCode::from(2);
        }
    }

    // Before binding: a bad configuration must not announce an address first.
    if let Err(message) = config.validate() {
        eprintln!("connect-sim: invalid configuration: {message}");
        return ExitCode::from(2);
    }

    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("connect-sim: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("connect-sim: cannot read the bound address: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "connect-sim listening on http://{addr}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        eprintln!("connect-sim: cannot write to stdout");
    }
    drop(stdout);

    match simulator::serve(config, listener, shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("connect-sim stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("connect-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
