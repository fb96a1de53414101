//! Scenario 4, deletion: every object of the probes and scenario 1 deleted at once. The
//! finalizer must hold each object until its instance is gone: no instance may be left in
//! the simulator once the last object disappeared, no object may stay stuck, and every
//! DeleteInstance must carry one of the objects' UID-derived tokens. Also the time until
//! all are gone and the DeleteInstance rate achieved against R. The helpers (delete at
//! once, wait until the namespace is empty, the DeleteInstance calls and what is left) are
//! shared with scenario 5's deletion phase.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use connect_operator::aws::token;
use futures::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject};

use crate::calls::{Call, Instance, SimLog, achieved_rate, print_calls_by_operation};
use crate::fixture::{Applied, describe_stuck, remaining_objects};
use crate::lifecycle::Lifecycle;
use crate::report::{Report, Verdict};

/// Deletes every object named at once (16 requests in flight).
pub async fn delete_all<'a>(api: &Api<DynamicObject>, names: impl IntoIterator<Item = &'a str>) {
    futures::stream::iter(names)
        .map(|name| {
            let api = api.clone();
            async move {
                api.delete(name, &DeleteParams::default())
                    .await
                    .unwrap_or_else(|error| panic!("deleting {name}: {error}"));
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

/// Lists the namespace every 250 ms until it is empty or `timeout` has passed; the objects
/// still there (stuck with their finalizer when not empty).
pub async fn wait_empty(api: &Api<DynamicObject>, timeout: Duration) -> Vec<DynamicObject> {
    let deadline = Instant::now() + timeout;
    let mut stuck = remaining_objects(api).await;
    while !stuck.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        stuck = remaining_objects(api).await;
    }
    stuck
}

/// The DeleteInstance calls among `calls`, against the objects' UID-derived delete tokens.
pub struct Deletes {
    /// Every DeleteInstance call.
    pub calls: usize,
    /// Accepted (non-replayed) DeleteInstance calls.
    pub accepted: usize,
    /// DeleteInstance answered 429.
    pub throttled: usize,
    /// DeleteInstance calls without one of the objects' delete tokens.
    pub foreign_tokens: usize,
    /// Bench times of the accepted ones, sorted.
    pub accepted_times: Vec<f64>,
}

impl Deletes {
    pub fn of(sim: &SimLog<'_>, calls: &[&Call], objects: &[&Applied]) -> Self {
        let delete_owner: HashSet<String> = objects
            .iter()
            .map(|a| token::delete_token(&a.uid))
            .collect();
        let deletes: Vec<&&Call> = calls
            .iter()
            .filter(|c| c.operation == "DeleteInstance")
            .collect();
        let mut accepted_times: Vec<f64> = deletes
            .iter()
            .filter(|c| c.succeeded() && !c.replay)
            .map(|c| sim.time(c))
            .collect();
        accepted_times.sort_by(f64::total_cmp);
        Self {
            calls: deletes.len(),
            accepted: accepted_times.len(),
            throttled: deletes.iter().filter(|c| c.status == 429).count(),
            foreign_tokens: deletes
                .iter()
                .filter(|c| {
                    c.client_token
                        .as_ref()
                        .is_none_or(|t| !delete_owner.contains(t))
                })
                .count(),
            accepted_times,
        }
    }

    pub fn print(&self) {
        println!(
            "  DeleteInstance: {} calls, {} accepted, {} throttled; {} without a UID-derived token",
            self.calls, self.accepted, self.throttled, self.foreign_tokens
        );
    }
}

/// The instances still in the simulator, the first five of them printed.
pub async fn instances_left(sim: &SimLog<'_>) -> Vec<Instance> {
    let left = sim.instances().await;
    for instance in left.iter().take(5) {
        println!(
            "  left behind: {} {:?} {} deleting={} tags={:?}",
            instance.id, instance.alias, instance.status, instance.deleting, instance.tags
        );
    }
    left
}

/// Deletes `probes` and `bulk`, waits until the namespace is empty (or a deadline of four
/// times the ideal + 120 s) and reports.
pub async fn run(pair: &Lifecycle<'_>, probes: &[Applied], bulk: &[Applied], report: &mut Report) {
    let Lifecycle {
        params,
        clock,
        api,
        sim,
        watch,
        total,
        ..
    } = *pair;
    println!("\n== scenario 4: deletion of all {total} objects at once ==");
    let seq_before = sim.last_seq().await;
    let everything: Vec<&Applied> = probes.iter().chain(bulk.iter()).collect();
    let t_delete = clock.now();
    delete_all(api, everything.iter().map(|a| a.name.as_str())).await;
    let ideal_delete = (total.saturating_sub(params.create_burst.max(1) as usize)) as f64
        / params.create_rate
        + params.deletion_delay.as_secs_f64();
    let stuck = wait_empty(api, Duration::from_secs_f64(ideal_delete * 4.0 + 120.0)).await;
    let gone_at: Vec<f64> = everything
        .iter()
        .filter_map(|a| watch.tracked(&a.name).gone_at)
        .collect();
    let all_gone = gone_at.iter().copied().fold(t_delete, f64::max);
    let calls = sim.calls().await;
    let after: Vec<&Call> = calls.iter().filter(|c| c.seq > seq_before).collect();
    print_calls_by_operation(&after);
    let deletes = Deletes::of(sim, &after, &everything);
    let delete_rate = achieved_rate(&deletes.accepted_times);
    let throttled = after.iter().filter(|c| c.status == 429).count();
    deletes.print();
    let left = instances_left(sim).await;
    if stuck.is_empty() {
        report.add(
            "4: time until all objects gone",
            format!("{:.1} s", all_gone - t_delete),
            format!(">= (n-b)/R + delay = {ideal_delete:.1} s"),
            Some((all_gone - t_delete) / ideal_delete.max(1e-9)),
            Verdict::Info,
        );
    } else {
        println!("  stuck:\n    {}", describe_stuck(&stuck));
    }
    report.add(
        "4: DeleteInstance rate achieved",
        format!("{delete_rate:.3}/s"),
        format!("= R = {}/s", params.create_rate),
        Some(delete_rate / params.create_rate),
        if delete_rate >= 0.9 * params.create_rate {
            Verdict::Ok
        } else {
            Verdict::Miss
        },
    );
    report.exact("4: DeleteInstance accepted", deletes.accepted, total, true);
    report.zero("4: instances left in the simulator", left.len(), true);
    report.zero("4: objects stuck with the finalizer", stuck.len(), true);
    report.zero("4: 429 responses (all operations)", throttled, false);
    report.zero(
        "4: DeleteInstance without UID token",
        deletes.foreign_tokens,
        true,
    );
}
