//! The simulator's call log on the bench's clock, and the figures taken from it: calls per
//! operation, accepted calls and the rate they achieved, the spacing of one instance's
//! DescribeInstance calls, and the fewest ListInstances pages a number of creations needs.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use test_kit::SimCall;
use test_kit::Simulator;
use test_kit::simulator::SimInstance;

use crate::Clock;

pub type Call = SimCall;
pub type Instance = SimInstance;

/// Reads the simulator's log and maps its times onto the bench clock.
pub struct SimLog<'a> {
    sim: &'a Simulator,
    http: reqwest::Client,
    /// Bench time of the simulator's `elapsedMs = 0`.
    offset: f64,
}

impl<'a> SimLog<'a> {
    /// Synchronises the clocks with one unsigned ListInstances request (the simulator checks
    /// no signature): its `elapsedMs` against the middle of its round trip on our clock.
    pub async fn new(sim: &'a Simulator, clock: Clock) -> Self {
        let url = sim.url.as_str();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("HTTP client");
        let mut log = Self {
            sim,
            http,
            offset: 0.0,
        };
        let mut best: Option<(f64, f64)> = None;
        for _ in 0..3 {
            let sent = clock.now();
            let response = log
                .http
                .get(format!("{url}/instance?maxResults=1"))
                .send()
                .await
                .expect("clock-sync ListInstances");
            let received = clock.now();
            assert!(
                response.status().is_success(),
                "clock-sync ListInstances answered {}",
                response.status()
            );
            let calls = log.calls().await;
            let last = calls
                .iter()
                .rev()
                .find(|call| call.operation == "ListInstances")
                .expect("the clock-sync call is in the log");
            let rtt = received - sent;
            let offset = (sent + received) / 2.0 - last.elapsed_ms as f64 / 1000.0;
            if best.is_none_or(|(best_rtt, _)| rtt < best_rtt) {
                best = Some((rtt, offset));
            }
        }
        let (rtt, offset) = best.expect("three samples");
        log.offset = offset;
        println!(
            "  simulator clock synchronised (round trip {:.1} ms)",
            rtt * 1000.0
        );
        log
    }

    pub async fn calls(&self) -> Vec<Call> {
        self.sim.calls().await
    }

    /// The highest sequence number in the log so far: the calls after it are new.
    pub async fn last_seq(&self) -> u64 {
        self.calls().await.iter().map(|c| c.seq).max().unwrap_or(0)
    }

    pub async fn instances(&self) -> Vec<Instance> {
        self.sim.instances().await
    }

    pub fn time(&self, call: &Call) -> f64 {
        call.elapsed_ms as f64 / 1000.0 + self.offset
    }
}

/// Calls per operation, with throttled and failed ones, as one line per operation.
pub fn print_calls_by_operation(calls: &[&Call]) {
    let mut by_operation: BTreeMap<&str, (usize, usize, usize, usize)> = BTreeMap::new();
    for call in calls {
        let entry = by_operation.entry(&call.operation).or_default();
        entry.0 += 1;
        if call.status == 429 {
            entry.1 += 1;
        } else if !call.succeeded() {
            entry.2 += 1;
        }
        if call.replay {
            entry.3 += 1;
        }
    }
    println!("  calls by operation (total / 429 / other errors / token replays):");
    for (operation, (total, throttled, errors, replays)) in by_operation {
        println!("    {operation:<26} {total:>7} {throttled:>5} {errors:>5} {replays:>5}");
    }
}

/// Sustained rate of accepted calls whose times are `sorted_times`: (count − 1) / (last −
/// first), so that a full bucket's first call does not count; 0 with fewer than two calls.
pub fn achieved_rate(sorted_times: &[f64]) -> f64 {
    if sorted_times.len() >= 2 {
        (sorted_times.len() - 1) as f64
            / (sorted_times[sorted_times.len() - 1] - sorted_times[0]).max(1e-9)
    } else {
        0.0
    }
}

/// How many of `calls` are of `operation`.
pub fn count_operation(calls: &[&Call], operation: &str) -> usize {
    calls.iter().filter(|c| c.operation == operation).count()
}

/// The shortest gap between two DescribeInstance calls of one instance once its object was
/// Ready (`ready_since`: instance id → time Ready was seen); infinite without such a pair.
/// The operator jitters its drift interval, so this shows the floor of that jitter.
pub fn shortest_describe_gap(
    sim: &SimLog<'_>,
    calls: &[Call],
    ready_since: &HashMap<String, f64>,
) -> f64 {
    let mut by_instance: HashMap<&str, Vec<f64>> = HashMap::new();
    for call in calls.iter().filter(|c| c.operation == "DescribeInstance") {
        let Some(id) = call.instance_id.as_deref() else {
            continue;
        };
        if ready_since
            .get(id)
            .is_some_and(|ready| sim.time(call) > *ready)
        {
            by_instance.entry(id).or_default().push(sim.time(call));
        }
    }
    by_instance
        .values()
        .flat_map(|times| times.windows(2).map(|pair| pair[1] - pair[0]))
        .fold(f64::INFINITY, f64::min)
}

/// The fewest ListInstances pages the probes and N bulk creations need: one listing before
/// each create, of every instance existing then (pages of 10).
pub fn min_list_pages(existing: usize, n: usize) -> usize {
    (0..n).map(|k| (existing + k).div_ceil(10).max(1)).sum()
}
