//! Scenario 5, realistic creation times: a fresh simulator and operator, a handful of
//! objects applied at once with Connect's creation time (`BENCH_REAL_CREATION_DELAY`,
//! 150 s by default) instead of the 2 s of the other scenarios, and the operator at its
//! production defaults for creation polls: `--creation-poll-interval 5s`, `--api-rate 2`
//! (so creation polls share 1 DescribeInstance/s), against the simulator's AWS-like
//! DescribeInstance limit of 2/s (burst 5). CreateInstance goes at `BENCH_REAL_CREATE_RATE`
//! (AWS: 0.1/s) on both sides: with 150 s of creation, all objects are in flight together
//! from the last create until the first ACTIVE.
//!
//! Figures: ACTIVE -> Ready (ACTIVE = the accepted CreateInstance + the creation delay, as
//! the simulator decides it) against 5 s; DescribeInstance calls per second while the
//! creations are in flight against the account's 2/s; the poll interval seen per instance;
//! 429 responses (must be 0) and one accepted CreateInstance per object.

use std::collections::HashMap;
use std::time::Duration;

use connect_operator::aws::token;
use kube::api::DynamicObject;
use test_kit::{TestNamespace, connect};

use crate::Clock;
use crate::calls::{Call, SimLog, print_calls_by_operation};
use crate::fixture::{
    Applied, apply_objects, describe_stuck, remaining_objects, start_operator, start_simulator,
};
use crate::params::{Params, fmt_dur};
use crate::report::{Report, Verdict, stats};
use crate::watch::Watch;

/// The operator's default `--creation-poll-interval`, and the goal for ACTIVE -> Ready.
const POLL_INTERVAL: Duration = Duration::from_secs(5);
/// The operator's default `--api-rate`: creation polls may use half of it together.
const API_RATE: f64 = 2.0;
/// Connect's DescribeInstance quota (and the simulator's default): 2/s, burst 5.
const DESCRIBE_RATE: f64 = 2.0;
const DESCRIBE_BURST: u32 = 5;

/// Runs scenario 5 with its own simulator, operator and namespace.
pub async fn run(params: &Params, clock: Clock, report: &mut Report) {
    let n = params.real_n;
    let delay = params.real_creation_delay.as_secs_f64();
    let rate = params.real_create_rate;
    let goal = POLL_INTERVAL.as_secs_f64();
    println!(
        "\n== scenario 5: realistic creation times, {n} objects applied at once, creation {}, CreateInstance {rate}/s, DescribeInstance {DESCRIBE_RATE}/s, operator defaults (poll {}, api-rate {API_RATE}) ==",
        fmt_dur(params.real_creation_delay),
        fmt_dur(POLL_INTERVAL),
    );
    let client = test_kit::client().await;
    let namespace = TestNamespace::create(&client, "bench-real").await;
    let dir = test_kit::simulator::log_dir("bench-scale-realistic");
    println!("  logs: {}", dir.display());
    let api = connect::api(&client, &namespace.name);
    let simulator = start_simulator(
        &dir,
        n + 10,
        (rate, 1),
        // Every other operation at Connect's quota, DescribeInstance included.
        Some((DESCRIBE_RATE, DESCRIBE_BURST)),
        params.real_creation_delay,
        params.deletion_delay,
    )
    .await;
    let sim = SimLog::new(&simulator, clock).await;
    let watch = Watch::start(&client, &namespace.name, clock);
    let operator = start_operator(
        &dir,
        &namespace.name,
        &simulator,
        &[
            ("create-delete-rate", rate.to_string()),
            ("api-rate", API_RATE.to_string()),
            ("creation-poll-interval", fmt_dur(POLL_INTERVAL)),
            // The production default: no drift check falls inside the scenario.
            ("drift-interval", "10m".to_owned()),
            ("concurrency", params.concurrency.to_string()),
        ],
        &params.operator_log,
    )
    .await;
    println!("  operator pid {:?}", operator.pid());
    tokio::time::sleep(params.warmup).await;

    let seq_before = sim.last_seq().await;
    let t0 = clock.now();
    let objects = apply_objects(&api, clock, "real", 0..n, 16, None).await;
    let names: Vec<String> = objects.iter().map(|a| a.name.clone()).collect();
    let ideal = n.saturating_sub(1) as f64 / rate + delay;
    let timeout = Duration::from_secs_f64(ideal * 2.0 + 120.0);
    println!(
        "  applied {n} objects; all ACTIVE after about (n-1)/R + delay = {ideal:.0} s, waiting up to {timeout:.0?}"
    );
    if let Err(missing) = watch.wait_ready(&names, timeout).await {
        let stuck: Vec<DynamicObject> = remaining_objects(&api)
            .await
            .into_iter()
            .filter(|o| missing.contains(o.metadata.name.as_ref().unwrap()))
            .collect();
        panic!(
            "{} of {n} objects not Ready after {timeout:?}:\n    {}\n{}",
            missing.len(),
            describe_stuck(&stuck),
            operator.log_tail(40)
        );
    }
    let all_ready = objects
        .iter()
        .filter_map(|a| watch.tracked(&a.name).ready_at)
        .fold(t0, f64::max);
    let calls = sim.calls().await;
    let window: Vec<&Call> = calls
        .iter()
        .filter(|call| call.seq > seq_before && sim.time(call) <= all_ready + 0.5)
        .collect();
    print_calls_by_operation(&window);

    // CreateInstance, by the objects' UID-derived tokens.
    let token_owner: HashMap<String, &Applied> = objects
        .iter()
        .map(|a| (token::create_token(&a.uid), a))
        .collect();
    let creates: Vec<&&Call> = window
        .iter()
        .filter(|call| call.operation == "CreateInstance")
        .filter(|call| {
            call.client_token
                .as_ref()
                .is_some_and(|t| token_owner.contains_key(t))
        })
        .collect();
    let accepted: Vec<&&&Call> = creates
        .iter()
        .filter(|c| c.succeeded() && !c.replay)
        .collect();
    let mut per_token: HashMap<&str, usize> = HashMap::new();
    for call in &accepted {
        *per_token
            .entry(call.client_token.as_deref().unwrap_or_default())
            .or_default() += 1;
    }
    let duplicated = per_token.values().filter(|count| **count > 1).count();
    let throttled = window.iter().filter(|c| c.status == 429).count();

    // ACTIVE -> Ready, and each instance's polls while it was being created.
    let mut active_to_ready = Vec::new();
    let mut poll_gaps = Vec::new();
    let mut first_create = f64::INFINITY;
    let mut last_active = f64::NEG_INFINITY;
    let mut rows = Vec::new();
    for call in &accepted {
        let owner = token_owner[call.client_token.as_deref().unwrap_or_default()];
        let tracked = watch.tracked(&owner.name);
        let created_at = sim.time(call);
        let active_at = created_at + delay;
        first_create = first_create.min(created_at);
        last_active = last_active.max(active_at);
        let polls: Vec<f64> = window
            .iter()
            .filter(|c| {
                c.operation == "DescribeInstance"
                    && tracked.instance_id.is_some()
                    && c.instance_id == tracked.instance_id
            })
            .map(|c| sim.time(c))
            .filter(|t| *t > created_at && *t <= active_at + goal * 3.0)
            .collect();
        let in_progress: Vec<f64> = polls.iter().copied().filter(|t| *t < active_at).collect();
        poll_gaps.extend(in_progress.windows(2).map(|pair| pair[1] - pair[0]));
        let last_before = in_progress.last().map(|t| t - active_at);
        let first_after = polls
            .iter()
            .find(|t| **t >= active_at)
            .map(|t| t - active_at);
        if let Some(ready_at) = tracked.ready_at {
            active_to_ready.push(ready_at - active_at);
            rows.push((
                owner.name.clone(),
                created_at - t0,
                ready_at - active_at,
                in_progress.len(),
                last_before,
                first_after,
            ));
        }
    }
    rows.sort_by(|a, b| a.1.total_cmp(&b.1));
    for (name, created, latency, count, before, after) in &rows {
        println!(
            "  {name}: CreateInstance at +{created:.1} s, {count} polls while in progress (last {} s, next {} s relative to ACTIVE), Ready {latency:.2} s after ACTIVE",
            before.map_or_else(|| "-".to_owned(), |t| format!("{t:+.2}")),
            after.map_or_else(|| "-".to_owned(), |t| format!("{t:+.2}")),
        );
    }

    // DescribeInstance while the creations are in flight: from the first accepted create to
    // the last ACTIVE; the mean rate and the busiest 1 s.
    let describes: Vec<f64> = window
        .iter()
        .filter(|c| c.operation == "DescribeInstance")
        .map(|c| sim.time(c))
        .filter(|t| (first_create..=last_active).contains(t))
        .collect();
    let span = (last_active - first_create).max(1e-9);
    let describe_rate = describes.len() as f64 / span;
    let busiest_second = describes
        .iter()
        .map(|start| {
            describes
                .iter()
                .filter(|t| (*start..*start + 1.0).contains(*t))
                .count()
        })
        .max()
        .unwrap_or(0);
    let gaps = stats(&poll_gaps);
    let ready = stats(&active_to_ready);
    // With k creations in flight the operator polls every max(poll, k / (api-rate / 2)).
    let stretched = (n as f64 / (API_RATE / 2.0)).max(goal);
    println!(
        "  CreateInstance: {} calls, {} accepted, {} throttled (429); first/last accepted at +{:.1}/+{:.1} s",
        creates.len(),
        accepted.len(),
        creates.iter().filter(|c| c.status == 429).count(),
        first_create - t0,
        accepted
            .iter()
            .map(|c| sim.time(c))
            .fold(f64::NEG_INFINITY, f64::max)
            - t0,
    );
    println!(
        "  DescribeInstance from the first create to the last ACTIVE ({span:.0} s): {} calls, {describe_rate:.3}/s; busiest second {busiest_second}",
        describes.len()
    );
    println!(
        "  poll interval while in progress, median/p95/max: {} (expected max(poll, in-flight / (api-rate/2)) = {stretched:.1} s with all {n} in flight)",
        gaps.text()
    );
    println!(
        "  ACTIVE -> Ready, median/p95/max: {} ({} objects)",
        ready.text(),
        ready.count
    );

    report.add(
        "5: ACTIVE -> Ready, realistic creation (p95)",
        format!("{:.3} s", ready.p95),
        format!("<= poll = {goal:.0} s"),
        Some(ready.p95 / goal),
        if ready.p95 <= goal {
            Verdict::Ok
        } else {
            Verdict::Miss
        },
    );
    report.add(
        "5: ACTIVE -> Ready, realistic creation (max)",
        format!("{:.3} s", ready.max),
        format!("<= poll = {goal:.0} s"),
        Some(ready.max / goal),
        Verdict::Info,
    );
    report.add(
        "5: DescribeInstance/s while creating",
        format!("{describe_rate:.3}/s"),
        format!(
            "account limit {DESCRIBE_RATE}/s (polls' share {}/s)",
            API_RATE / 2.0
        ),
        Some(describe_rate / DESCRIBE_RATE),
        if describe_rate <= DESCRIBE_RATE / 2.0 {
            Verdict::Ok
        } else {
            Verdict::Miss
        },
    );
    report.add(
        "5: poll interval while creating (max)",
        format!("{:.2} s", gaps.max),
        format!("max(poll, n/(api-rate/2)) = {stretched:.1} s"),
        Some(gaps.max / stretched),
        Verdict::Info,
    );
    report.zero("5: 429 responses (all operations)", throttled, true);
    report.exact("5: CreateInstance accepted", accepted.len(), n, true);
    report.zero("5: objects with >1 accepted create", duplicated, true);

    drop(watch);
    drop(operator);
    drop(simulator);
}
