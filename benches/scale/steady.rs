//! Scenario 2, steady state: with every object Ready, a window of about two drift intervals
//! in which the operator should write nothing to Kubernetes (no object write, no Event, no
//! status patch) and describe each instance once per drift interval, never closer than the
//! jitter floor of 0.8 intervals; and, for the objects that manage an instance
//! configuration, read each managed part with at most one List call per drift interval
//! (and the others none at all).

use std::collections::HashSet;
use std::time::Duration;

use crate::calls::{Call, count_operation, print_calls_by_operation, shortest_describe_gap};
use crate::fixture::{CONFIGURATION_LISTS, CONFIGURED_PARTS, is_configured, remaining_objects};
use crate::lifecycle::Lifecycle;
use crate::metrics::metric_delta;
use crate::params::fmt_dur;
use crate::report::{Report, Verdict};

/// Observes the window on the objects the probes and scenario 1 left Ready.
pub async fn run(pair: &Lifecycle<'_>, report: &mut Report) {
    let Lifecycle {
        params,
        clock,
        sim,
        watch,
        operator,
        total,
        api,
        ..
    } = *pair;
    println!(
        "\n== scenario 2: steady state, {} Ready objects, drift interval {}, window {} ==",
        total,
        fmt_dur(params.drift),
        fmt_dur(params.steady_window)
    );
    // The last Ready writes must be in before the window opens.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metrics_before = operator.metrics().await;
    let seq_before = sim.last_seq().await;
    let window_start = clock.now();
    tokio::time::sleep(params.steady_window).await;
    let window_end = clock.now();
    let metrics_after = operator.metrics().await;
    let calls = sim.calls().await;
    let (object_writes, event_writes) = watch.writes_between(window_start, window_end);
    let status_patches = metric_delta(
        &metrics_before,
        &metrics_after,
        "connect_operator_status_patches_total",
    );
    let reconciles = metric_delta(
        &metrics_before,
        &metrics_after,
        "connect_operator_reconciles_total",
    );
    let in_window: Vec<&Call> = calls
        .iter()
        .filter(|c| c.seq > seq_before && sim.time(c) < window_end)
        .collect();
    print_calls_by_operation(&in_window);
    let window_secs = window_end - window_start;
    let drift = params.drift.as_secs_f64();
    let intervals = window_secs / drift;
    let describes = count_operation(&in_window, "DescribeInstance");
    let per_instance_per_interval = describes as f64 / total.max(1) as f64 / intervals;
    let all_per_instance_per_interval = in_window.len() as f64 / total.max(1) as f64 / intervals;
    // The shortest gap between two DescribeInstance calls of one instance once it was Ready.
    let min_gap = shortest_describe_gap(sim, &calls, &watch.ready_since_by_instance());
    println!(
        "  reconciles {reconciles}, status patches {status_patches}, object writes seen {}, Event writes seen {event_writes}",
        object_writes.len()
    );
    if !object_writes.is_empty() {
        let distinct: HashSet<&String> = object_writes.iter().collect();
        println!(
            "  objects written during the window: {} distinct, e.g. {:?}",
            distinct.len(),
            distinct.iter().take(5).collect::<Vec<_>>()
        );
    }
    println!(
        "  DescribeInstance: {describes} in {window_secs:.1} s = {per_instance_per_interval:.2} per instance per drift interval; shortest gap for one instance {:.1} s ({:.2} D)",
        min_gap,
        min_gap / drift
    );
    report.zero(
        "2: Kubernetes writes (objects + Events)",
        object_writes.len() + event_writes,
        false,
    );
    report.zero(
        "2: status patches (/metrics)",
        status_patches as usize,
        false,
    );
    report.add(
        "2: DescribeInstance / instance / drift interval",
        format!("{per_instance_per_interval:.2}"),
        "<= 1",
        Some(per_instance_per_interval),
        // ±20% jitter makes the mean 1.0 with sampling noise; 1.1 allows for that noise.
        if per_instance_per_interval <= 1.1 {
            Verdict::Ok
        } else {
            Verdict::Miss
        },
    );
    if min_gap.is_finite() {
        report.add(
            "2: shortest DescribeInstance gap / drift interval",
            format!("{:.2}", min_gap / drift),
            ">= 0.8 (jitter floor)",
            Some(min_gap / drift / 0.8),
            if min_gap / drift >= 0.79 {
                Verdict::Ok
            } else {
                Verdict::Miss
            },
        );
    }
    // The instance configuration: each managed part (a storage type, the origins, ...) is
    // one List call per drift interval; objects without configuration make none.
    let mut configured = HashSet::new();
    let mut unconfigured = HashSet::new();
    for object in remaining_objects(api).await {
        let Some(id) = object
            .data
            .pointer("/status/instanceId")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
        else {
            continue;
        };
        if is_configured(&object) {
            configured.insert(id);
        } else {
            unconfigured.insert(id);
        }
    }
    let lists_of = |ids: &HashSet<String>| {
        in_window
            .iter()
            .filter(|c| CONFIGURATION_LISTS.contains(&c.operation.as_str()))
            .filter(|c| c.instance_id.as_ref().is_some_and(|id| ids.contains(id)))
            .count()
    };
    let configured_lists = lists_of(&configured);
    let stray_lists = lists_of(&unconfigured);
    let parts = configured.len() * CONFIGURED_PARTS;
    let per_part_per_interval = configured_lists as f64 / parts.max(1) as f64 / intervals;
    println!(
        "  configuration List calls: {configured_lists} for {} configured instances x {CONFIGURED_PARTS} managed parts = {per_part_per_interval:.2} per part per drift interval; {stray_lists} for the {} instances without configuration",
        configured.len(),
        unconfigured.len()
    );
    if !configured.is_empty() {
        report.add(
            "2: configuration List calls / managed part / instance / drift interval",
            format!("{per_part_per_interval:.2}"),
            "<= 1",
            Some(per_part_per_interval),
            // The same jitter noise as DescribeInstance: they are read in the same pass.
            if per_part_per_interval <= 1.1 {
                Verdict::Ok
            } else {
                Verdict::Miss
            },
        );
    }
    report.zero(
        "2: configuration List calls of instances without configuration",
        stray_lists,
        false,
    );
    report.add(
        "2: all AWS calls / instance / drift interval",
        format!("{all_per_instance_per_interval:.2}"),
        "info (Describe + attribute pages)",
        None,
        Verdict::Info,
    );
}
