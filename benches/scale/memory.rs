//! Scenario 3, memory: for each M of `BENCH_M` (2,000 and 5,000 by default), a fresh
//! simulator (reads unlimited) and operator in a new namespace with M objects, and the
//! operator's resident memory once all are Ready and at rest: the memory per object above
//! the baseline against 15 KiB, which keeps 5,000 objects under 100 MiB with the baseline
//! of about 20 MiB.
//!
//! `BENCH_MEM_MODE=restart` (default) starts the operator over M objects whose instances
//! already exist and are recorded in their status, as after a restart or an upgrade; the
//! baseline comes from an operator on an empty namespace. `create` lets the operator create
//! the M instances itself; the baseline is the same operator before the first object.

use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::DynamicObject;
use serde_json::json;
use test_kit::{TestNamespace, connect};

use crate::Clock;
use crate::calls::{Call, SimLog, count_operation, min_list_pages, print_calls_by_operation};
use crate::fixture::{
    apply_objects, describe_stuck, remaining_objects, start_operator, start_simulator,
};
use crate::metrics::{memory_kib, mib};
use crate::params::{Params, fmt_dur};
use crate::report::{Report, Verdict, stats};
use crate::watch::Watch;

/// "Tens of MiB for thousands of objects": RSS per object above the baseline of at most
/// 15 KiB, i.e. 5,000 objects in 73 MiB over a baseline of about 20 MiB, under 100 MiB.
const PER_OBJECT_TARGET_KIB: f64 = 15.0;
/// The total RSS is printed against 100 MiB for information.
const MEMORY_LIMIT_MIB: f64 = 100.0;
/// Requests in flight while the restart mode's objects and instances are set up.
const SETUP_IN_FLIGHT: usize = 64;
/// Scrapes of `/metrics` timed at rest.
const SCRAPES: usize = 20;
/// The chart's ServiceMonitor `scrapeTimeout`.
const SCRAPE_TIMEOUT_SECONDS: f64 = 10.0;

/// What one M gave, for the table after the last M.
struct Measured {
    m: usize,
    baseline_kib: u64,
    rss_kib: u64,
    hwm_kib: u64,
    per_object_kib: f64,
    ready_seconds: f64,
}

/// Runs the memory scenario once for each M of `BENCH_M` (0 skipped), each with its own
/// simulator, operator and namespace, then prints the table of all M.
pub async fn run_all(params: &Params, clock: Clock, report: &mut Report) {
    let mut measured = Vec::new();
    for &m in params.m.iter().filter(|m| **m > 0) {
        measured.push(run(params, m, clock, report).await);
    }
    if measured.is_empty() {
        return;
    }
    let rows = measured
        .iter()
        .map(|r| {
            vec![
                r.m.to_string(),
                format!("{:.1}", mib(r.baseline_kib)),
                format!("{:.1}", mib(r.rss_kib)),
                format!("{:.1}", mib(r.hwm_kib)),
                format!("{:.1}", r.per_object_kib),
                format!("{:.2}", r.per_object_kib / PER_OBJECT_TARGET_KIB),
                format!("{:.1}", r.ready_seconds),
            ]
        })
        .collect();
    report.table(
        "scenario 3: memory per M (MiB; KiB per object above the baseline, target 15)",
        &[
            "M",
            "baseline",
            "RSS",
            "peak RSS",
            "KiB/object",
            "ratio",
            "all Ready (s)",
        ],
        rows,
    );
    if let Some(largest) = measured.iter().max_by_key(|r| r.m) {
        println!(
            "  at the largest M = {}: RSS {:.1} MiB (peak {:.1} MiB)",
            largest.m,
            mib(largest.rss_kib),
            mib(largest.hwm_kib)
        );
    }
}

/// Runs the memory scenario for `m` objects with its own simulator, operator and namespace.
async fn run(params: &Params, m: usize, clock: Clock, report: &mut Report) -> Measured {
    println!(
        "\n== scenario 3: memory with {m} objects (fresh simulator and operator, mode {}) ==",
        params.mem_mode
    );
    let client = test_kit::client().await;
    let namespace = TestNamespace::create(&client, "bench-mem").await;
    let dir = test_kit::simulator::log_dir(&format!("bench-scale-memory-{m}"));
    println!("  logs: {}", dir.display());
    let api = connect::api(&client, &namespace.name);
    let create_burst = params.mem_create_rate.ceil().max(1.0) as u32;
    let simulator = start_simulator(
        &dir,
        m + 10,
        (params.mem_create_rate, create_burst),
        None,
        Duration::from_secs(1),
        params.deletion_delay,
    )
    .await;
    let sim = SimLog::new(&simulator, clock).await;
    let sync_seq = sim.last_seq().await;
    let watch = Watch::start(&client, &namespace.name, clock);
    let flags = [
        ("create-delete-rate", params.mem_create_rate.to_string()),
        ("api-rate", params.mem_api_rate.to_string()),
        // Quiet once Ready: the figure is memory at rest.
        ("drift-interval", "10m".to_owned()),
        ("creation-poll-interval", fmt_dur(params.poll)),
        ("concurrency", params.mem_concurrency.to_string()),
    ];
    let restart = match params.mem_mode.as_str() {
        "restart" => true,
        "create" => false,
        other => panic!("BENCH_MEM_MODE={other:?}: expected restart or create"),
    };

    let (operator, baseline, objects, t0) = if restart {
        // The state an operator finds when it restarts: every object carries the id of the
        // instance created for it, and the instance carries the object's uid tag. A first
        // operator on an empty namespace gives the baseline; then the one measured starts
        // over the M objects.
        let empty = TestNamespace::create(&client, "bench-mem-empty").await;
        let probe_dir = dir.join("baseline");
        std::fs::create_dir_all(&probe_dir).expect("baseline log directory");
        let idle = start_operator(
            &probe_dir,
            &empty.name,
            &simulator,
            &flags,
            &params.operator_log,
        )
        .await;
        tokio::time::sleep(params.warmup).await;
        let (baseline, _) = memory_kib(idle.pid().expect("operator running"));
        drop(idle);
        println!("  RSS with 0 objects: {:.1} MiB", mib(baseline));

        let t_setup = clock.now();
        let objects = apply_objects(&api, clock, "mem", 0..m, SETUP_IN_FLIGHT, None).await;
        let t_applied = clock.now();
        futures::stream::iter(objects.iter())
            .map(|object| {
                let api = api.clone();
                let simulator = &simulator;
                async move {
                    let instance = simulator
                        .insert_instance(
                            &object.name,
                            &[
                                ("team", "benchmark"),
                                ("cost-center", "42"),
                                (connect::UID_TAG, &object.uid),
                            ],
                        )
                        .await;
                    api.patch_status(
                        &object.name,
                        &kube::api::PatchParams::default(),
                        &kube::api::Patch::Merge(json!({
                            "status": {
                                "instanceId": instance.id,
                                "arn": instance.arn,
                                "region": "us-east-1",
                            }
                        })),
                    )
                    .await
                    .unwrap_or_else(|error| {
                        panic!("recording the instance of {}: {error}", object.name)
                    });
                }
            })
            .buffer_unordered(SETUP_IN_FLIGHT)
            .collect::<Vec<()>>()
            .await;
        let t_recorded = clock.now();
        println!(
            "  setup: {} objects created in {:.1} s, their instances inserted and recorded in {:.1} s ({:.1} s in all, {SETUP_IN_FLIGHT} requests in flight); starting the operator over them",
            objects.len(),
            t_applied - t_setup,
            t_recorded - t_applied,
            t_recorded - t_setup
        );
        let t0 = clock.now();
        let operator = start_operator(
            &dir,
            &namespace.name,
            &simulator,
            &flags,
            &params.operator_log,
        )
        .await;
        (operator, baseline, objects, t0)
    } else {
        let operator = start_operator(
            &dir,
            &namespace.name,
            &simulator,
            &flags,
            &params.operator_log,
        )
        .await;
        tokio::time::sleep(params.warmup).await;
        let (baseline, _) = memory_kib(operator.pid().expect("operator running"));
        println!("  RSS with 0 objects: {:.1} MiB", mib(baseline));
        let t0 = clock.now();
        let objects = apply_objects(&api, clock, "mem", 0..m, 32, None).await;
        println!(
            "  applied {} objects in {:.1} s",
            objects.len(),
            clock.now() - t0
        );
        (operator, baseline, objects, t0)
    };
    let pid = operator.pid().expect("operator running");
    let names: Vec<String> = objects.iter().map(|a| a.name.clone()).collect();
    let mut last_report = Instant::now();
    let deadline = Instant::now() + params.mem_timeout;
    loop {
        match watch.wait_ready(&names, Duration::from_secs(10)).await {
            Ok(()) => break,
            Err(missing) if Instant::now() < deadline => {
                if last_report.elapsed() > Duration::from_secs(30) {
                    let (rss, _) = memory_kib(pid);
                    println!(
                        "  ... {} of {} Ready after {:.0} s, RSS {:.1} MiB",
                        m - missing.len(),
                        m,
                        clock.now() - t0,
                        mib(rss)
                    );
                    last_report = Instant::now();
                }
            }
            Err(missing) => {
                let stuck: Vec<DynamicObject> = remaining_objects(&api)
                    .await
                    .into_iter()
                    .filter(|o| missing.contains(o.metadata.name.as_ref().unwrap()))
                    .collect();
                panic!(
                    "memory scenario: {} of {} objects not Ready after {:?} (raise BENCH_MEM_TIMEOUT or lower BENCH_M):\n    {}\n{}",
                    missing.len(),
                    m,
                    params.mem_timeout,
                    describe_stuck(&stuck),
                    operator.log_tail(40)
                );
            }
        }
    }
    let took = clock.now() - t0;
    println!("  all {m} Ready after {took:.1} s");
    // At rest: give the allocator a moment after the burst of work.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut rss = 0;
    let mut hwm = 0;
    for _ in 0..3 {
        let (now_rss, now_hwm) = memory_kib(pid);
        rss = rss.max(now_rss);
        hwm = hwm.max(now_hwm);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // `/metrics` over M objects: the state gauges are computed from the store at each
    // scrape, so the scrape's cost grows with M while its size must not.
    let mut scrape_seconds = Vec::new();
    let mut body = String::new();
    for _ in 0..SCRAPES {
        let started = Instant::now();
        body = operator.metrics().await;
        scrape_seconds.push(started.elapsed().as_secs_f64());
    }
    let scrape = stats(&scrape_seconds);
    let samples = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    let state_series = body
        .lines()
        .filter(|l| l.starts_with("connect_operator_instances{"))
        .count();
    println!(
        "  /metrics: {samples} samples, {} bytes; {state_series} connect_operator_instances series",
        body.len()
    );
    report.add(
        &format!("3: /metrics scrape with {m} objects (median/p95/max)"),
        scrape.text(),
        format!("< {SCRAPE_TIMEOUT_SECONDS:.0} s (the chart's scrapeTimeout)"),
        Some(scrape.max / SCRAPE_TIMEOUT_SECONDS),
        if scrape.max < SCRAPE_TIMEOUT_SECONDS {
            Verdict::Ok
        } else {
            Verdict::Miss
        },
    );
    report.add(
        &format!("3: /metrics samples with {m} objects"),
        format!("{samples} ({state_series} of connect_operator_instances)"),
        "independent of M (no label per object)",
        Some(state_series as f64 / m.max(1) as f64),
        if state_series <= 4 {
            Verdict::Ok
        } else {
            Verdict::Miss
        },
    );
    let calls: Vec<Call> = sim
        .calls()
        .await
        .into_iter()
        .filter(|c| c.seq > sync_seq)
        .collect();
    let all: Vec<&Call> = calls.iter().collect();
    print_calls_by_operation(&all);
    let creates = calls
        .iter()
        .filter(|c| c.operation == "CreateInstance" && c.succeeded() && !c.replay)
        .count();
    let lists = count_operation(&all, "ListInstances");
    let per_object_kib = rss.saturating_sub(baseline) as f64 / m.max(1) as f64;
    println!(
        "  RSS {:.1} MiB (peak {:.1} MiB), {per_object_kib:.1} KiB per object above the {:.1} MiB baseline",
        mib(rss),
        mib(hwm),
        mib(baseline)
    );
    report.add(
        &format!("3: RSS per object above baseline, {m} objects"),
        format!("{per_object_kib:.1} KiB"),
        format!("<= {PER_OBJECT_TARGET_KIB:.0} KiB (5,000 objects in 100 MiB)"),
        Some(per_object_kib / PER_OBJECT_TARGET_KIB),
        if per_object_kib <= PER_OBJECT_TARGET_KIB {
            Verdict::Ok
        } else {
            Verdict::Miss
        },
    );
    report.add(
        &format!("3: RSS with {m} objects"),
        format!("{:.1} MiB", mib(rss)),
        format!("info ({MEMORY_LIMIT_MIB:.0} MiB: \"tens of MiB\")"),
        Some(mib(rss) / MEMORY_LIMIT_MIB),
        Verdict::Info,
    );
    report.add(
        &format!("3: peak RSS (VmHWM), {m} objects"),
        format!("{:.1} MiB", mib(hwm)),
        format!("info ({MEMORY_LIMIT_MIB:.0} MiB)"),
        Some(mib(hwm) / MEMORY_LIMIT_MIB),
        Verdict::Info,
    );
    if restart {
        // Per object: one DescribeInstance, two ListInstanceAttributes pages and two
        // attribute writes, each operation behind its own limiter.
        let bound = 2.0 * m as f64 / params.mem_api_rate;
        report.add(
            &format!("3: restart over {m} objects: time to all Ready"),
            format!("{took:.1} s"),
            format!(">= 2M/api-rate = {bound:.1} s"),
            Some(took / bound.max(1e-9)),
            Verdict::Info,
        );
        report.zero(
            &format!("3: ListInstances calls after restart, {m} objects"),
            lists,
            false,
        );
        report.zero(
            &format!("3: CreateInstance accepted after restart, {m} objects"),
            creates,
            true,
        );
    } else {
        let bound = m as f64 / params.mem_create_rate;
        report.add(
            &format!("3: {m} objects: time to all Ready"),
            format!("{took:.1} s"),
            format!(">= M/rate = {bound:.1} s"),
            Some(took / bound.max(1e-9)),
            Verdict::Info,
        );
        report.add(
            &format!("3: ListInstances calls per object, {m} objects"),
            format!("{:.1}", lists as f64 / m.max(1) as f64),
            format!(
                "pages of 10: >= {:.1}",
                min_list_pages(0, m) as f64 / m.max(1) as f64
            ),
            Some(lists as f64 / min_list_pages(0, m).max(1) as f64),
            Verdict::Info,
        );
        report.exact(
            &format!("3: CreateInstance accepted, {m} objects"),
            creates,
            m,
            true,
        );
    }

    drop(watch);
    drop(operator);
    drop(simulator);
    Measured {
        m,
        baseline_kib: baseline,
        rss_kib: rss,
        hwm_kib: hwm,
        per_object_kib,
        ready_seconds: took,
    }
}
