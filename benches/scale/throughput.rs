//! Scenario 1, creation throughput: N objects applied at once against a CreateInstance rate
//! limit R. Figures from the simulator's call log, restricted to the objects' CreateInstance
//! tokens: the rate achieved against R, every object created exactly once, no 429, the
//! ListInstances calls per object against the minimum, the queueing behind the rate limit,
//! and ACTIVE -> Ready under load. Every third object also manages an instance
//! configuration (storage, origins, Lambda, Lex, keys), so that scenario 2 can count its
//! List calls at rest.

use std::collections::HashMap;
use std::time::Duration;

use connect_operator::aws::token;
use kube::api::DynamicObject;

use crate::calls::{
    Call, achieved_rate, count_operation, min_list_pages, print_calls_by_operation,
};
use crate::fixture::{Applied, apply_objects, describe_stuck, remaining_objects};
use crate::lifecycle::Lifecycle;
use crate::metrics::{metric_delta, metric_delta_labeled};
use crate::report::{Report, Verdict, stats};

/// Every this many objects of the scenario, one manages an instance configuration.
const CONFIGURE_EVERY: usize = 3;

/// Applies the N objects, waits until all are Ready and reports; returns them for deletion.
pub async fn run(pair: &Lifecycle<'_>, report: &mut Report) -> Vec<Applied> {
    let Lifecycle {
        params,
        clock,
        api,
        sim,
        watch,
        operator,
        total,
        ..
    } = *pair;
    let delay = params.creation_delay.as_secs_f64();
    let latency_limit = params.latency_limit();

    println!(
        "\n== scenario 1: creation throughput, {} objects applied at once, CreateInstance {}/s ==",
        params.n, params.create_rate
    );
    let metrics_before = operator.metrics().await;
    let seq_before = sim.last_seq().await;
    let t0 = clock.now();
    let bulk = apply_objects(api, clock, "bulk", 0..params.n, 16, Some(CONFIGURE_EVERY)).await;
    let applied_in = clock.now() - t0;
    println!("  applied {} objects in {applied_in:.2} s", bulk.len());
    let names: Vec<String> = bulk.iter().map(|a| a.name.clone()).collect();
    // A full bucket lets `burst` creates go at once; the rest come 1/R apart.
    let burst = params.create_burst.max(1) as usize;
    let ideal = (params.n.saturating_sub(burst)) as f64 / params.create_rate + delay;
    let timeout = Duration::from_secs_f64(ideal * 4.0 + 120.0);
    if let Err(missing) = watch.wait_ready(&names, timeout).await {
        let stuck: Vec<DynamicObject> = remaining_objects(api)
            .await
            .into_iter()
            .filter(|o| missing.contains(o.metadata.name.as_ref().unwrap()))
            .collect();
        panic!(
            "{} of {} objects not Ready after {timeout:?}:\n    {}\n{}",
            missing.len(),
            params.n,
            describe_stuck(&stuck),
            operator.log_tail(40)
        );
    }
    let all_ready = bulk
        .iter()
        .filter_map(|a| watch.tracked(&a.name).ready_at)
        .fold(t0, f64::max);
    let metrics_after = operator.metrics().await;
    let calls = sim.calls().await;
    let window: Vec<&Call> = calls
        .iter()
        .filter(|call| call.seq > seq_before && sim.time(call) <= all_ready + 0.5)
        .collect();
    print_calls_by_operation(&window);

    let token_owner: HashMap<String, &Applied> = bulk
        .iter()
        .map(|a| (token::create_token(&a.uid), a))
        .collect();
    let creates: Vec<&Call> = calls
        .iter()
        .filter(|call| call.operation == "CreateInstance")
        .filter(|call| {
            call.client_token
                .as_ref()
                .is_some_and(|t| token_owner.contains_key(t))
        })
        .collect();
    let accepted: Vec<&&Call> = creates
        .iter()
        .filter(|c| c.succeeded() && !c.replay)
        .collect();
    let replays = creates.iter().filter(|c| c.succeeded() && c.replay).count();
    let throttled_creates = creates.iter().filter(|c| c.status == 429).count();
    let mut per_token: HashMap<&str, usize> = HashMap::new();
    for call in &accepted {
        *per_token
            .entry(call.client_token.as_deref().unwrap_or_default())
            .or_default() += 1;
    }
    let duplicated = per_token.values().filter(|count| **count > 1).count();
    let mut create_times: Vec<f64> = accepted.iter().map(|c| sim.time(c)).collect();
    create_times.sort_by(f64::total_cmp);
    let achieved = achieved_rate(&create_times);
    let throttled_all = window.iter().filter(|c| c.status == 429).count();
    let lists = count_operation(&window, "ListInstances");
    println!(
        "  CreateInstance: {} calls, {} accepted, {} token replays, {} throttled (429)",
        creates.len(),
        accepted.len(),
        replays,
        throttled_creates
    );
    println!(
        "  first/last accepted CreateInstance at +{:.2}/+{:.2} s after the apply",
        create_times.first().map_or(0.0, |t| t - t0),
        create_times.last().map_or(0.0, |t| t - t0)
    );
    println!(
        "  client-side rate-limiter waits (operator /metrics): CreateInstance {}, ListInstances {}, all {}",
        metric_delta_labeled(
            &metrics_before,
            &metrics_after,
            "connect_operator_rate_limiter_waits_total",
            "CreateInstance"
        ),
        metric_delta_labeled(
            &metrics_before,
            &metrics_after,
            "connect_operator_rate_limiter_waits_total",
            "ListInstances"
        ),
        metric_delta(
            &metrics_before,
            &metrics_after,
            "connect_operator_rate_limiter_waits_total"
        ),
    );
    let status_patches = metric_delta(
        &metrics_before,
        &metrics_after,
        "connect_operator_status_patches_total",
    );
    println!(
        "  status patches during creation: {status_patches} ({:.1} per object)",
        status_patches / params.n.max(1) as f64
    );

    let mut bulk_apply_to_create = Vec::new();
    let mut bulk_active_to_ready = Vec::new();
    let mut slowest: Option<(f64, &Applied, f64)> = None;
    for call in &accepted {
        let owner = token_owner[call.client_token.as_deref().unwrap_or_default()];
        bulk_apply_to_create.push(sim.time(call) - owner.applied_at);
        if let Some(ready_at) = watch.tracked(&owner.name).ready_at {
            let active_at = sim.time(call) + delay;
            bulk_active_to_ready.push(ready_at - active_at);
            if slowest.is_none_or(|(worst, _, _)| ready_at - active_at > worst) {
                slowest = Some((ready_at - active_at, owner, active_at));
            }
        }
    }
    if let Some((latency, owner, active_at)) = slowest {
        // Where the time went: this object's calls around ACTIVE.
        let id = watch.tracked(&owner.name).instance_id;
        let polls: Vec<String> = calls
            .iter()
            .filter(|c| c.operation == "DescribeInstance" && id.is_some() && c.instance_id == id)
            .map(|c| format!("{:+.2}", sim.time(c) - active_at))
            .take(8)
            .collect();
        println!(
            "  slowest ACTIVE -> Ready: {} {latency:.2} s; its DescribeInstance calls at [{}] s relative to ACTIVE",
            owner.name,
            polls.join(", ")
        );
    }
    let bulk_create_stats = stats(&bulk_apply_to_create);
    let bulk_ready_stats = stats(&bulk_active_to_ready);
    println!(
        "  apply -> CreateInstance, median/p95/max: {} (queued behind the rate limit: the k-th create cannot come before k/R)",
        bulk_create_stats.text()
    );
    println!(
        "  ACTIVE -> Ready seen, median/p95/max: {}",
        bulk_ready_stats.text()
    );

    report.add(
        "1: CreateInstance rate achieved",
        format!("{achieved:.3}/s"),
        format!("= R = {}/s", params.create_rate),
        Some(achieved / params.create_rate),
        if achieved >= 0.9 * params.create_rate {
            Verdict::Ok
        } else {
            Verdict::Miss
        },
    );
    let took = all_ready - t0;
    report.add(
        "1: time to all Ready",
        format!("{took:.1} s"),
        format!(">= (N-b)/R + delay = {ideal:.1} s"),
        Some(took / ideal.max(1e-9)),
        Verdict::Info,
    );
    report.exact("1: CreateInstance accepted", accepted.len(), params.n, true);
    report.zero("1: objects with >1 accepted create", duplicated, true);
    report.add(
        "1: CreateInstance token replays",
        replays.to_string(),
        "0 expected",
        None,
        if replays == 0 {
            Verdict::Ok
        } else {
            Verdict::Miss
        },
    );
    report.zero("1: 429 responses (all operations)", throttled_all, false);
    report.add(
        "1: ListInstances calls per object",
        format!("{:.1}", lists as f64 / params.n.max(1) as f64),
        format!(
            "pages of 10: >= {:.1}",
            min_list_pages(params.probes, params.n) as f64 / params.n.max(1) as f64
        ),
        Some(lists as f64 / min_list_pages(params.probes, params.n).max(1) as f64),
        Verdict::Info,
    );
    report.add(
        "1: apply -> CreateInstance, queued (p95)",
        format!("{:.3} s", bulk_create_stats.p95),
        format!("queue bound (N-b)/R = {:.1} s", ideal - delay),
        Some(bulk_create_stats.p95 / (ideal - delay).max(1e-9)),
        Verdict::Info,
    );
    report.add(
        "1: ACTIVE -> Ready under load (p95)",
        format!("{:.3} s", bulk_ready_stats.p95),
        format!("< 1 s + poll = {latency_limit:.1} s"),
        Some(bulk_ready_stats.p95 / latency_limit),
        if bulk_ready_stats.p95 < latency_limit {
            Verdict::Ok
        } else {
            Verdict::Miss
        },
    );
    let sim_instances = sim.instances().await;
    let ours = sim_instances.len();
    if ours != total {
        report.fail(format!(
            "the simulator holds {ours} instances for {total} objects"
        ));
    }

    bulk
}
