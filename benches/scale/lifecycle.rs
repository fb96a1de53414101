//! The simulator + operator pair that the latency probes and scenarios 1 (throughput),
//! 2 (steady state) and 4 (deletion) share, and the order they run in: the steady state is
//! observed on the objects the probes and scenario 1 made Ready, and scenario 4 deletes
//! them all.

use kube::api::{Api, DynamicObject};
use test_kit::{OperatorProcess, TestNamespace, connect};

use crate::Clock;
use crate::calls::SimLog;
use crate::fixture::{start_operator, start_simulator};
use crate::params::{Params, fmt_dur};
use crate::report::Report;
use crate::watch::Watch;
use crate::{deletion, probes, steady, throughput};

/// What the scenarios of one pair see: its namespace's objects, the simulator's call log,
/// the watch on the namespace and the operator process.
pub struct Lifecycle<'a> {
    pub params: &'a Params,
    pub clock: Clock,
    pub api: &'a Api<DynamicObject>,
    pub sim: &'a SimLog<'a>,
    /// The last call of the clock synchronisation: later calls are the operator's.
    pub sync_seq: u64,
    pub watch: &'a Watch,
    pub operator: &'a OperatorProcess,
    /// Objects of the probes and of scenario 1 together.
    pub total: usize,
}

/// Runs the probes and scenarios 1, 2 and 4 against one simulator and operator.
pub async fn run(params: &Params, clock: Clock, report: &mut Report) {
    let client = test_kit::client().await;
    let namespace = TestNamespace::create(&client, "bench").await;
    let dir = test_kit::simulator::log_dir("bench-scale-lifecycle");
    println!("  logs: {}", dir.display());
    let api = connect::api(&client, &namespace.name);
    let total = params.n + params.probes;
    let simulator = start_simulator(
        &dir,
        total + 10,
        (params.create_rate, params.create_burst),
        Some((params.api_rate, params.api_burst)),
        params.creation_delay,
        params.deletion_delay,
    )
    .await;
    let sim = SimLog::new(&simulator, clock).await;
    let sync_seq = sim.last_seq().await;
    let watch = Watch::start(&client, &namespace.name, clock);
    let operator = start_operator(
        &dir,
        &namespace.name,
        &simulator,
        &[
            ("create-delete-rate", params.create_rate.to_string()),
            ("api-rate", params.api_rate.to_string()),
            ("drift-interval", fmt_dur(params.drift)),
            ("creation-poll-interval", fmt_dur(params.poll)),
            ("concurrency", params.concurrency.to_string()),
        ],
        &params.operator_log,
    )
    .await;
    println!("  operator pid {:?}", operator.pid());
    // The first watch event after the operator's initial list comes late (see
    // docs/benchmarks.md); the probes measure an operator that is up and running.
    tokio::time::sleep(params.warmup).await;

    let pair = Lifecycle {
        params,
        clock,
        api: &api,
        sim: &sim,
        sync_seq,
        watch: &watch,
        operator: &operator,
        total,
    };
    let probes = probes::run(&pair, report).await;
    let bulk = throughput::run(&pair, report).await;
    steady::run(&pair, report).await;
    deletion::run(&pair, &probes, &bulk, report).await;

    drop(watch);
    drop(operator);
    drop(simulator);
}
