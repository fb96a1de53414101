//! Scenario 5, realistic creation times: a fresh simulator and operator, `BENCH_REAL_N`
//! objects (20 by default) applied at once in one account and region with Connect's
//! creation time (`BENCH_REAL_CREATION_DELAY`, 150 s by default) instead of the 2 s of the
//! other scenarios, and the operator at its production defaults for creation polls:
//! `--creation-poll-interval 2s`, `--api-rate 2` (so creation polls share 1 call/s),
//! against the simulator's AWS-like limit of 2/s (burst 5) for every read.
//!
//! Creation phase: CreateInstance goes at `BENCH_REAL_CREATE_RATE` (1/s, burst 1) on both
//! sides, not at Connect's 0.1/s: at 0.1/s a 150 s creation would never have more than 16
//! in flight; at 1/s all 20 are in flight together for over two minutes. Figures:
//! ACTIVE -> Ready (ACTIVE = the accepted CreateInstance + the creation delay, as the
//! simulator decides it) against 5 s; reads (DescribeInstance + ListInstances) per second
//! while the creations are in flight against the polls' share of 1/s; the interval between
//! looks that could have seen an instance (its own DescribeInstance calls, and every
//! listing of the account); 429 responses (must be 0) and one accepted CreateInstance per
//! object.
//!
//! Deletion phase: the operator is stopped, the simulator's CreateInstance and
//! DeleteInstance go down to Connect's 0.1/s (burst 1), a new operator with
//! `--create-delete-rate 0.1` starts over the Ready objects (it must create nothing), and
//! all objects are deleted at once, so that they queue behind the real DeleteInstance
//! limit. Figures: AWS calls per deleted object (target <= 3), the time until all are gone,
//! one accepted DeleteInstance with the UID-derived token per object, nothing left, nothing
//! stuck, no 429.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use connect_operator::aws::token;
use kube::api::DynamicObject;
use test_kit::{OperatorProcess, Simulator, TestNamespace, connect};

use crate::Clock;
use crate::calls::{Call, SimLog, count_operation, print_calls_by_operation};
use crate::deletion::{Deletes, delete_all, instances_left, wait_empty};
use crate::fixture::{
    Applied, apply_objects, describe_stuck, remaining_objects, set_lifecycle_rate, start_operator,
    start_simulator,
};
use crate::params::{Params, fmt_dur};
use crate::report::{Report, Verdict, stats};
use crate::watch::Watch;

/// The operator's default `--creation-poll-interval`.
const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// The goal for ACTIVE -> Ready.
const READY_GOAL: Duration = Duration::from_secs(5);
/// The operator's default `--api-rate`: creation polls may use half of it together.
const API_RATE: f64 = 2.0;
/// Connect's quota for the reads (and the simulator's default): 2/s, burst 5.
const READ_RATE: f64 = 2.0;
const READ_BURST: u32 = 5;
/// Connect's CreateInstance and DeleteInstance quota: the rate of the deletion phase.
const AWS_LIFECYCLE_RATE: f64 = 0.1;
/// The operator's ListInstances page size.
const LIST_PAGE: usize = 10;
/// AWS calls per deleted object: one DeleteInstance and a look or two until it is gone.
const CALLS_PER_DELETION_TARGET: f64 = 3.0;
/// The restarted operator is at rest once the simulator saw no call for this long.
const QUIET: Duration = Duration::from_secs(5);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(180);

fn operator_flags(params: &Params, create_delete_rate: f64) -> Vec<(&'static str, String)> {
    vec![
        ("create-delete-rate", create_delete_rate.to_string()),
        ("api-rate", API_RATE.to_string()),
        ("creation-poll-interval", fmt_dur(POLL_INTERVAL)),
        // The production default: no drift check falls inside the scenario.
        ("drift-interval", "10m".to_owned()),
        ("concurrency", params.concurrency.to_string()),
    ]
}

/// Runs scenario 5 with its own simulator, operator and namespace.
pub async fn run(params: &Params, clock: Clock, report: &mut Report) {
    let n = params.real_n;
    let rate = params.real_create_rate;
    println!(
        "\n== scenario 5: realistic creation times, {n} objects applied at once, creation {}, CreateInstance {rate}/s, reads {READ_RATE}/s, operator defaults (poll {}, api-rate {API_RATE}); then deletion at {AWS_LIFECYCLE_RATE}/s ==",
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
        // Every other operation at Connect's quota, DescribeInstance and ListInstances
        // included.
        Some((READ_RATE, READ_BURST)),
        params.real_creation_delay,
        params.deletion_delay,
    )
    .await;
    let sim = SimLog::new(&simulator, clock).await;
    let watch = Watch::start(&client, &namespace.name, clock);
    let mut operator = start_operator(
        &dir,
        &namespace.name,
        &simulator,
        &operator_flags(params, rate),
        &params.operator_log,
    )
    .await;
    println!("  operator pid {:?}", operator.pid());
    tokio::time::sleep(params.warmup).await;

    let objects = create_phase(params, clock, &api, &sim, &watch, &operator, report).await;
    delete_phase(
        params,
        clock,
        &api,
        &simulator,
        &sim,
        &watch,
        &mut operator,
        &objects,
        &namespace.name,
        &dir,
        report,
    )
    .await;

    drop(watch);
    drop(operator);
    drop(simulator);
}

/// The first page of each listing of the account, in time order: the looks of a shared
/// ListInstances that could have seen any instance existing then. The call log does not
/// record the page token, so listings are told apart by their length: a listing started
/// while `existing(t)` instances exist takes max(1, ⌈existing / 10⌉) pages; a failed page
/// ends it.
fn listing_starts(sim: &SimLog<'_>, lists: &[&Call], existing: impl Fn(f64) -> usize) -> Vec<f64> {
    let mut starts = Vec::new();
    let mut pages_left = 0usize;
    for call in lists {
        let at = sim.time(call);
        if pages_left == 0 {
            starts.push(at);
            pages_left = existing(at).div_ceil(LIST_PAGE).max(1);
        }
        pages_left -= 1;
        if !call.succeeded() {
            pages_left = 0;
        }
    }
    starts
}

/// The creation phase: `n` objects applied at once, waited for until Ready, and its figures.
async fn create_phase(
    params: &Params,
    clock: Clock,
    api: &kube::Api<DynamicObject>,
    sim: &SimLog<'_>,
    watch: &Watch,
    operator: &OperatorProcess,
    report: &mut Report,
) -> Vec<Applied> {
    let n = params.real_n;
    let delay = params.real_creation_delay.as_secs_f64();
    let rate = params.real_create_rate;
    let goal = READY_GOAL.as_secs_f64();
    let poll = POLL_INTERVAL.as_secs_f64();
    let seq_before = sim.last_seq().await;
    let t0 = clock.now();
    let objects = apply_objects(api, clock, "real", 0..n, 16, None).await;
    let names: Vec<String> = objects.iter().map(|a| a.name.clone()).collect();
    let ideal = n.saturating_sub(1) as f64 / rate + delay;
    let timeout = Duration::from_secs_f64(ideal * 2.0 + 120.0);
    println!(
        "  applied {n} objects; all ACTIVE after about (n-1)/R + delay = {ideal:.0} s, waiting up to {timeout:.0?}"
    );
    if let Err(missing) = watch.wait_ready(&names, timeout).await {
        let stuck: Vec<DynamicObject> = remaining_objects(api)
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
    let mut created_times: Vec<f64> = accepted.iter().map(|c| sim.time(c)).collect();
    created_times.sort_by(f64::total_cmp);
    // Every instance of the (fresh) simulator comes from one of these creates.
    let existing = |t: f64| created_times.iter().filter(|c| **c <= t).count();
    let lists: Vec<&Call> = window
        .iter()
        .copied()
        .filter(|c| c.operation == "ListInstances")
        .collect();
    let listings = listing_starts(sim, &lists, existing);

    // ACTIVE -> Ready, and each instance's looks while it was being created: its own
    // DescribeInstance calls and every listing of the account after its create.
    let mut active_to_ready = Vec::new();
    let mut look_gaps = Vec::new();
    let mut rows = Vec::new();
    for call in &accepted {
        let owner = token_owner[call.client_token.as_deref().unwrap_or_default()];
        let tracked = watch.tracked(&owner.name);
        let created_at = sim.time(call);
        let active_at = created_at + delay;
        let describes: Vec<f64> = window
            .iter()
            .filter(|c| {
                c.operation == "DescribeInstance"
                    && tracked.instance_id.is_some()
                    && c.instance_id == tracked.instance_id
            })
            .map(|c| sim.time(c))
            .filter(|t| *t > created_at)
            .collect();
        let own_lists: Vec<f64> = listings
            .iter()
            .copied()
            .filter(|t| *t > created_at)
            .collect();
        let mut looks: Vec<f64> = describes.iter().chain(own_lists.iter()).copied().collect();
        looks.sort_by(f64::total_cmp);
        let in_progress: Vec<f64> = looks.iter().copied().filter(|t| *t < active_at).collect();
        look_gaps.extend(in_progress.windows(2).map(|pair| pair[1] - pair[0]));
        let last_before = in_progress.last().map(|t| t - active_at);
        let first_after = looks
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
                describes.iter().filter(|t| **t < active_at).count(),
                own_lists.iter().filter(|t| **t < active_at).count(),
                last_before,
                first_after,
            ));
        }
    }
    rows.sort_by(|a, b| a.1.total_cmp(&b.1));
    for (name, created, latency, count, describes, lists, before, after) in &rows {
        println!(
            "  {name}: CreateInstance at +{created:.1} s, {count} polls while in progress ({describes} DescribeInstance, {lists} listings; last {} s, next {} s relative to ACTIVE), Ready {latency:.2} s after ACTIVE",
            before.map_or_else(|| "-".to_owned(), |t| format!("{t:+.2}")),
            after.map_or_else(|| "-".to_owned(), |t| format!("{t:+.2}")),
        );
    }

    // Reads while the creations are in flight: from the first accepted create to the last
    // ACTIVE; the mean rates and the busiest 1 s.
    let first_create = created_times.first().copied().unwrap_or(t0);
    let last_create = created_times.last().copied().unwrap_or(t0);
    let last_active = last_create + delay;
    let span = (last_active - first_create).max(1e-9);
    let in_flight = |operation: &str| -> Vec<f64> {
        window
            .iter()
            .filter(|c| c.operation == operation)
            .map(|c| sim.time(c))
            .filter(|t| (first_create..=last_active).contains(t))
            .collect()
    };
    let describes = in_flight("DescribeInstance");
    let list_calls = in_flight("ListInstances");
    let mut reads: Vec<f64> = describes.iter().chain(list_calls.iter()).copied().collect();
    reads.sort_by(f64::total_cmp);
    let busiest_second = reads
        .iter()
        .enumerate()
        .map(|(i, start)| reads[i..].iter().take_while(|t| **t < start + 1.0).count())
        .max()
        .unwrap_or(0);
    let read_rate = reads.len() as f64 / span;
    let describe_rate = describes.len() as f64 / span;
    let list_rate = list_calls.len() as f64 / span;
    let share = API_RATE / 2.0;
    let gaps = stats(&look_gaps);
    let ready = stats(&active_to_ready);
    // Describing each instance, the operator polls every max(poll, k / (api-rate / 2)) with
    // k creations in flight; one shared listing per poll interval looks at all of them.
    let stretched = (n as f64 / share).max(poll);
    println!(
        "  CreateInstance: {} calls, {} accepted, {} throttled (429); first/last accepted at +{:.1}/+{:.1} s; all {n} in flight together for {:.0} s (last create to first ACTIVE)",
        creates.len(),
        accepted.len(),
        creates.iter().filter(|c| c.status == 429).count(),
        first_create - t0,
        last_create - t0,
        (first_create + delay - last_create).max(0.0),
    );
    println!(
        "  reads from the first create to the last ACTIVE ({span:.0} s): {} DescribeInstance ({describe_rate:.3}/s) + {} ListInstances ({list_rate:.3}/s, {} listings) = {read_rate:.3}/s; busiest second {busiest_second}",
        describes.len(),
        list_calls.len(),
        listings
            .iter()
            .filter(|t| (first_create..=last_active).contains(*t))
            .count(),
    );
    println!(
        "  interval between looks while in progress, median/p95/max: {} (poll {poll:.0} s; describing each instance: max(poll, n/(api-rate/2)) = {stretched:.0} s)",
        gaps.text()
    );
    println!(
        "  ACTIVE -> Ready, median/p95/max: {} ({} objects)",
        ready.text(),
        ready.count
    );

    for (label, value) in [
        ("p50", ready.median),
        ("p95", ready.p95),
        ("max", ready.max),
    ] {
        report.add(
            &format!("5: ACTIVE -> Ready, realistic creation ({label})"),
            format!("{value:.3} s"),
            format!("<= {goal:.0} s"),
            Some(value / goal),
            if value <= goal {
                Verdict::Ok
            } else {
                Verdict::Miss
            },
        );
    }
    report.add(
        "5: Describe + List calls/s while creating",
        format!("{read_rate:.3}/s"),
        format!("<= polls' share {share}/s (api-rate {API_RATE}/s)"),
        Some(read_rate / share),
        if read_rate <= share {
            Verdict::Ok
        } else {
            Verdict::Miss
        },
    );
    report.add(
        "5: DescribeInstance/s while creating",
        format!("{describe_rate:.3}/s"),
        format!("info (share {share}/s)"),
        Some(describe_rate / share),
        Verdict::Info,
    );
    report.add(
        "5: ListInstances/s while creating",
        format!("{list_rate:.3}/s"),
        format!("info (share {share}/s)"),
        Some(list_rate / share),
        Verdict::Info,
    );
    report.add(
        "5: interval between looks while creating (max)",
        format!("{:.2} s", gaps.max),
        format!("info: poll = {poll:.0} s (Describe each: {stretched:.0} s)"),
        Some(gaps.max / poll),
        Verdict::Info,
    );
    report.zero("5: 429 responses while creating", throttled, true);
    report.exact("5: CreateInstance accepted", accepted.len(), n, true);
    report.zero("5: objects with >1 accepted create", duplicated, true);
    objects
}

/// The deletion phase: a new operator at Connect's 0.1/s over the Ready objects, then all
/// of them deleted at once, and its figures.
#[allow(clippy::too_many_arguments)]
async fn delete_phase(
    params: &Params,
    clock: Clock,
    api: &kube::Api<DynamicObject>,
    simulator: &Simulator,
    sim: &SimLog<'_>,
    watch: &Watch,
    operator: &mut OperatorProcess,
    objects: &[Applied],
    namespace: &str,
    dir: &std::path::Path,
    report: &mut Report,
) {
    let n = objects.len();
    println!(
        "\n  -- deletion of {n} objects at Connect's {AWS_LIFECYCLE_RATE}/s: operator restarted with --create-delete-rate {AWS_LIFECYCLE_RATE} --"
    );
    operator.stop();
    set_lifecycle_rate(simulator, (AWS_LIFECYCLE_RATE, 1)).await;
    let seq_restart = sim.last_seq().await;
    let t_restart = clock.now();
    *operator = start_operator(
        dir,
        namespace,
        simulator,
        &operator_flags(params, AWS_LIFECYCLE_RATE),
        &params.operator_log,
    )
    .await;
    println!("  operator pid {:?}", operator.pid());
    // The restart reconciles every object once; the deletion is measured from rest.
    let settle_deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut last_seq = sim.last_seq().await;
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < QUIET && Instant::now() < settle_deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let seq = sim.last_seq().await;
        if seq != last_seq {
            last_seq = seq;
            quiet_since = Instant::now();
        }
    }
    let calls = sim.calls().await;
    let restart_calls: Vec<&Call> = calls.iter().filter(|c| c.seq > seq_restart).collect();
    println!(
        "  restart over {n} Ready objects: {} AWS calls, at rest {:.1} s after the start (no call for {QUIET:?})",
        restart_calls.len(),
        clock.now() - t_restart - QUIET.as_secs_f64()
    );
    print_calls_by_operation(&restart_calls);

    let seq_delete = sim.last_seq().await;
    let everything: Vec<&Applied> = objects.iter().collect();
    let t_delete = clock.now();
    delete_all(api, everything.iter().map(|a| a.name.as_str())).await;
    let ideal =
        n.saturating_sub(1) as f64 / AWS_LIFECYCLE_RATE + params.deletion_delay.as_secs_f64();
    let timeout =
        Duration::from_secs_f64(2.0 * n.saturating_sub(1) as f64 / AWS_LIFECYCLE_RATE + 120.0);
    println!(
        "  deleted {n} objects; all gone after about (n-1)/0.1 + delay = {ideal:.0} s, waiting up to {timeout:.0?}"
    );
    let stuck = wait_empty(api, timeout).await;
    let all_gone = if stuck.is_empty() {
        objects
            .iter()
            .filter_map(|a| watch.tracked(&a.name).gone_at)
            .fold(t_delete, f64::max)
    } else {
        println!("  stuck:\n    {}", describe_stuck(&stuck));
        clock.now()
    };
    let left = instances_left(sim).await;
    let calls = sim.calls().await;
    let deletion: Vec<&Call> = calls
        .iter()
        .filter(|c| c.seq > seq_delete && sim.time(c) <= all_gone)
        .collect();
    println!(
        "  calls from the first delete request to the last object gone ({:.0} s):",
        all_gone - t_delete
    );
    print_calls_by_operation(&deletion);
    let deletes = Deletes::of(sim, &deletion, &everything);
    deletes.print();
    let throttled = deletion.iter().filter(|c| c.status == 429).count();
    let creates_after_restart = count_operation(
        &calls
            .iter()
            .filter(|c| c.seq > seq_restart)
            .collect::<Vec<_>>(),
        "CreateInstance",
    );
    let per_object = deletion.len() as f64 / n.max(1) as f64;
    let mut by_operation: Vec<(&str, usize)> = Vec::new();
    for call in &deletion {
        match by_operation
            .iter_mut()
            .find(|(op, _)| *op == call.operation)
        {
            Some((_, count)) => *count += 1,
            None => by_operation.push((&call.operation, 1)),
        }
    }
    by_operation.sort_by_key(|b| std::cmp::Reverse(b.1));
    println!(
        "  AWS calls per deleted object: {per_object:.2} ({})",
        by_operation
            .iter()
            .map(|(op, count)| format!("{op} {:.2}", *count as f64 / n.max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    );

    report.zero(
        "5: CreateInstance after the restart",
        creates_after_restart,
        true,
    );
    report.add(
        "5: AWS calls per deleted object (0.1/s)",
        format!("{per_object:.2}"),
        format!("<= {CALLS_PER_DELETION_TARGET:.0}"),
        Some(per_object / CALLS_PER_DELETION_TARGET),
        if per_object <= CALLS_PER_DELETION_TARGET {
            Verdict::Ok
        } else {
            Verdict::Miss
        },
    );
    if stuck.is_empty() {
        report.add(
            "5: time until all objects gone (0.1/s)",
            format!("{:.1} s", all_gone - t_delete),
            format!(">= (n-1)/0.1 + delay = {ideal:.1} s"),
            Some((all_gone - t_delete) / ideal.max(1e-9)),
            Verdict::Info,
        );
    }
    report.exact("5: DeleteInstance accepted", deletes.accepted, n, true);
    report.zero(
        "5: DeleteInstance without UID token",
        deletes.foreign_tokens,
        true,
    );
    report.zero("5: instances left in the simulator", left.len(), true);
    report.zero("5: objects stuck with the finalizer", stuck.len(), true);
    report.zero("5: 429 responses while deleting", throttled, false);
}
