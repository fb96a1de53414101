//! Latency probes, before the scenarios: single objects applied one at a time to an idle
//! operator, each waited for until Ready. Figures: apply -> first AWS call that belongs to
//! the object, and ACTIVE -> Ready (ACTIVE = the accepted CreateInstance + the simulator's
//! creation delay), both against 1 s + one poll interval.

use std::time::Duration;

use connect_operator::aws::token;

use crate::fixture::{Applied, apply_objects, describe_stuck, remaining_objects};
use crate::lifecycle::Lifecycle;
use crate::report::{Report, Verdict, stats};

/// Applies the probes and reports their figures; returns them for deletion.
pub async fn run(pair: &Lifecycle<'_>, report: &mut Report) -> Vec<Applied> {
    let Lifecycle {
        params,
        clock,
        api,
        sim,
        sync_seq,
        watch,
        operator,
        ..
    } = *pair;
    let delay = params.creation_delay.as_secs_f64();
    let latency_limit = params.latency_limit();

    println!("\n== latency probes: {} single objects ==", params.probes);
    let mut probes: Vec<Applied> = Vec::new();
    for i in 0..params.probes {
        let applied = apply_objects(api, clock, "probe", i..i + 1, 1, None).await;
        let names: Vec<String> = applied.iter().map(|a| a.name.clone()).collect();
        if let Err(missing) = watch
            .wait_ready(&names, params.creation_delay + Duration::from_secs(60))
            .await
        {
            let stuck = remaining_objects(api).await;
            panic!(
                "probe {missing:?} never became Ready:\n    {}\n{}",
                describe_stuck(&stuck),
                operator.log_tail(40)
            );
        }
        probes.extend(applied);
        // Let the CreateInstance bucket refill, so the next probe never waits for it.
        tokio::time::sleep(Duration::from_secs_f64(1.5 / params.create_rate)).await;
    }
    let calls = sim.calls().await;
    let mut first_call = Vec::new();
    let mut apply_to_create = Vec::new();
    let mut active_to_ready = Vec::new();
    for probe in &probes {
        let tracked = watch.tracked(&probe.name);
        let create_token = token::create_token(&probe.uid);
        let instance_id = tracked.instance_id.clone();
        // The object's first call: a ListInstances (only an object without an instance id
        // lists, and the earlier probes are Ready), or any call with its CreateInstance
        // token or its instance id. 2 ms of slack for the clock mapping.
        let first = calls
            .iter()
            .filter(|call| call.seq > sync_seq && sim.time(call) >= probe.applied_at - 0.002)
            .find(|call| {
                call.operation == "ListInstances"
                    || call.client_token.as_deref() == Some(create_token.as_str())
                    || (instance_id.is_some() && call.instance_id == instance_id)
            });
        let create = calls.iter().find(|call| {
            call.operation == "CreateInstance"
                && call.succeeded()
                && call.client_token.as_deref() == Some(create_token.as_str())
        });
        let mut line = format!("  {}:", probe.name);
        if let Some(first) = first {
            first_call.push(sim.time(first) - probe.applied_at);
            line += &format!(
                " first call {} after {:.3} s;",
                first.operation,
                sim.time(first) - probe.applied_at
            );
        }
        if let Some(create) = create {
            apply_to_create.push(sim.time(create) - probe.applied_at);
            line += &format!(
                " CreateInstance after {:.3} s;",
                sim.time(create) - probe.applied_at
            );
            if let Some(ready_at) = tracked.ready_at {
                active_to_ready.push(ready_at - (sim.time(create) + delay));
                line += &format!(
                    " Ready {:.3} s after ACTIVE",
                    ready_at - (sim.time(create) + delay)
                );
            }
        }
        println!("{line}");
    }
    let first_stats = stats(&first_call);
    println!(
        "  apply -> first AWS call, median/p95/max: {} ({} probes)",
        first_stats.text(),
        first_stats.count
    );
    println!(
        "  apply -> CreateInstance, median/p95/max: {}",
        stats(&apply_to_create).text()
    );
    let probe_ready = stats(&active_to_ready);
    println!(
        "  ACTIVE -> Ready seen, median/p95/max: {}",
        probe_ready.text()
    );
    if params.probes > 0 {
        report.add(
            "probe: apply -> first AWS call (p95)",
            format!("{:.3} s", first_stats.p95),
            format!("< 1 s + poll = {latency_limit:.1} s"),
            Some(first_stats.p95 / latency_limit),
            if first_stats.p95 < latency_limit {
                Verdict::Ok
            } else {
                Verdict::Miss
            },
        );
        report.add(
            "probe: ACTIVE -> Ready (p95)",
            format!("{:.3} s", probe_ready.p95),
            format!("< 1 s + poll = {latency_limit:.1} s"),
            Some(probe_ready.p95 / latency_limit),
            if probe_ready.p95 < latency_limit {
                Verdict::Ok
            } else {
                Verdict::Miss
            },
        );
    }

    probes
}
