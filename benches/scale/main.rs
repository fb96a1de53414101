//! `cargo bench --bench scale`: the operator at scale against a real kube-apiserver + etcd,
//! the Connect simulator (`connect-sim`) and the operator binary. Every figure is printed
//! next to the limit it is bounded by: creation rate against the CreateInstance quota,
//! latency from apply to the first AWS call and from ACTIVE to Ready, Kubernetes writes and
//! AWS reads at rest, deletion, and memory per object. Method and results:
//! `docs/benchmarks.md`.
//!
//! Nothing here is a timed assertion. The run exits non-zero only when it breaks (an object
//! never becomes Ready, a process dies) or a correctness target is violated: a duplicate
//! CreateInstance, an instance left behind, an object stuck with its finalizer.
//!
//! Scenarios, in the order they run:
//! - latency probes: single objects applied to an idle operator (`probes`);
//! - creation throughput: N objects applied at once against a CreateInstance rate limit R
//!   (`throughput`);
//! - steady state: a window of about two drift intervals after everything is Ready
//!   (`steady`);
//! - deletion: every object of the scenarios above deleted at once (`deletion`);
//! - memory: for each M of `BENCH_M` (2,000 and 5,000), a fresh simulator and operator,
//!   M objects, RSS at rest (by default the operator restarts over M objects whose
//!   instances exist; `BENCH_MEM_MODE=create` lets it create them) (`memory`);
//! - realistic creation times: a fresh simulator and operator, 20 objects in one account
//!   and region that take Connect's minutes to be created, all in flight together, the
//!   operator at its default creation poll interval and API rate: ACTIVE -> Ready and
//!   reads per second; then, after a restart at Connect's 0.1/s DeleteInstance limit, all
//!   of them deleted at once: AWS calls per deleted object (`realistic`);
//! - several accounts: for each K of `BENCH_ACCOUNTS` (1, 2, 4), a fresh simulator and
//!   operator, K ConnectAccounts by assumed roles of K account ids and
//!   `BENCH_ACCOUNT_OBJECTS` objects in each, applied at once: the creation rate of each
//!   account against R and of all together against K × R (`accounts`).
//!
//! The first four share one simulator + operator pair (`lifecycle`). `BENCH_SCENARIOS`
//! selects among `lifecycle`, `memory`, `realistic` and `accounts` (default all). All parameters come
//! from `BENCH_*` environment variables (see [`params::Params::from_env`]). Without
//! `--bench` it runs a small smoke version.

// A bench is a test program: a broken run ends in a panic with its reason.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod accounts;
mod calls;
mod deletion;
mod fixture;
mod lifecycle;
mod memory;
mod metrics;
mod params;
mod probes;
mod realistic;
mod report;
mod steady;
mod throughput;
mod watch;

use std::process::ExitCode;
use std::time::Instant;

use params::Params;
use report::Report;

/// Seconds since the bench started: the one clock of the bench, the watch and the
/// simulator's call log (whose `elapsedMs` is mapped onto it, see [`calls::SimLog`]).
#[derive(Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this target without it.
    let full = std::env::args().any(|arg| arg == "--bench");
    let params = Params::from_env(full);
    println!("connect-operator scale benchmark");
    if !full {
        println!(
            "smoke run (no --bench: `cargo test`); `cargo bench --bench scale` gives the figures"
        );
    }
    params.print();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let report = runtime.block_on(async {
        let clock = Clock {
            start: Instant::now(),
        };
        let mut report = Report::default();
        println!("\nstarting the local control plane ...");
        let control_plane = tokio::task::spawn_blocking(test_kit::control_plane)
            .await
            .expect("control plane");
        println!(
            "  kube-apiserver {} ready in {:.1?}",
            control_plane.server, control_plane.startup
        );
        if params.runs("lifecycle") {
            lifecycle::run(&params, clock, &mut report).await;
        }
        if params.runs("memory") {
            memory::run_all(&params, clock, &mut report).await;
        }
        if params.runs("realistic") && params.real_n > 0 {
            realistic::run(&params, clock, &mut report).await;
        }
        if params.runs("accounts") && params.account_n > 0 {
            accounts::run(&params, clock, &mut report).await;
        }
        report
    });
    report.print_summary();
    if !full {
        println!(
            "(smoke run in the test profile: the checks count, the figures do not; run `cargo bench --bench scale`)"
        );
    }
    println!("bench finished in {:.0} s", started.elapsed().as_secs_f64());
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
