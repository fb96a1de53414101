//! Scenario 6, several accounts: for each K of `BENCH_ACCOUNTS` (1, 2, 4), a fresh
//! simulator and operator, K ConnectAccounts by assumed roles of K different account ids
//! and `BENCH_ACCOUNT_OBJECTS` objects naming each account, all applied at once. The
//! simulator limits CreateInstance to R per account (its buckets are per account) and the
//! operator's `--create-delete-rate` is R too (its limiter is keyed by account, region and
//! operation), so K accounts should create K times as fast as one, none slowing another.
//!
//! Figures from the simulator's call log, restricted to the objects' CreateInstance tokens:
//! each account's creation rate against R, all accounts' together against K × R, and the
//! 429 responses in each account (target 0). Correctness: exactly one accepted
//! CreateInstance per object, in its own account; every object Ready; after deleting
//! everything no instance left in any account, no object or account stuck.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use connect_operator::aws::token;
use futures::StreamExt;
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use serde_json::{Value, json};
use test_kit::control_plane::ACCOUNT_SCOPE_LABEL;
use test_kit::{TestNamespace, connect};

use crate::Clock;
use crate::calls::{Call, SimLog, achieved_rate, print_calls_by_operation};
use crate::fixture::{describe_stuck, remaining_objects, start_operator, start_simulator};
use crate::metrics::{metric_delta, metric_delta_labeled};
use crate::params::{Params, fmt_dur};
use crate::report::{Report, Verdict, stats};
use crate::watch::Watch;

/// How long the accounts may take to become Ready, and their deletion once unused.
const ACCOUNT_DEADLINE: Duration = Duration::from_secs(60);

/// The k-th account id (k from 1): `100000000001`, `100000000002`, ...
fn account_id(k: usize) -> String {
    format!("{:012}", 100_000_000_000_u64 + k as u64)
}

fn role_arn(account_id: &str) -> String {
    format!("arn:aws:iam::{account_id}:role/connect-operator")
}

fn accounts_api(client: &Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("connect.operators.dev", "v1alpha1", "ConnectAccount"),
        "connectaccounts",
    );
    Api::all_with(client.clone(), &resource)
}

struct Account {
    name: String,
    id: String,
}

struct Object {
    name: String,
    uid: String,
    /// Index into the run's accounts.
    account: usize,
}

/// The same spec as the other scenarios' objects (`fixture::apply_objects`), in an account.
fn manifest(name: &str, account: &str) -> Value {
    connect::manifest(
        name,
        json!({
            "identityManagementType": "CONNECT_MANAGED",
            "instanceAlias": name,
            "inboundCallsEnabled": true,
            "outboundCallsEnabled": true,
            "attributes": { "contactflowLogs": true, "contactLens": true },
            "tags": { "team": "benchmark", "cost-center": "42" },
            "accountRef": { "name": account },
        }),
    )
}

/// What one K measured.
struct Measured {
    k: usize,
    objects: usize,
    /// All accounts together: (accepted − K) / (last − first accepted), each account's
    /// first create taking its full bucket.
    overall: f64,
    /// Per account: (accepted − 1) / (last − first accepted).
    per_account: Vec<f64>,
    /// Per account: 429 responses, every operation, from the apply until all is deleted.
    throttled: Vec<usize>,
    accepted: usize,
    duplicated: usize,
    /// Accepted creates in an account other than the object's.
    misplaced: usize,
    not_ready: usize,
    left: usize,
    stuck_objects: usize,
    stuck_accounts: usize,
}

/// Runs scenario 6: one fresh simulator, operator and namespace per K.
pub async fn run(params: &Params, clock: Clock, report: &mut Report) {
    let r = params.create_rate;
    println!(
        "\n== scenario 6: several accounts, K = {:?} accounts x {} objects applied at once, CreateInstance {r}/s per account ==",
        params.account_counts, params.account_n
    );
    let client = test_kit::client().await;
    let mut runs = Vec::new();
    for &k in &params.account_counts {
        runs.push(run_k(params, clock, &client, k, report).await);
    }

    let mut rows = Vec::new();
    for m in &runs {
        let limit = m.k as f64 * r;
        let min_rate = m.per_account.iter().copied().fold(f64::INFINITY, f64::min);
        let min_rate = if min_rate.is_finite() { min_rate } else { 0.0 };
        report.add(
            &format!("6: K={} overall CreateInstance rate", m.k),
            format!("{:.3}/s", m.overall),
            format!("= K x R = {limit}/s"),
            Some(m.overall / limit),
            if m.overall >= 0.9 * limit {
                Verdict::Ok
            } else {
                Verdict::Miss
            },
        );
        report.add(
            &format!("6: K={} per-account rate (min)", m.k),
            format!("{min_rate:.3}/s"),
            format!("= R = {r}/s"),
            Some(min_rate / r),
            if min_rate >= 0.9 * r {
                Verdict::Ok
            } else {
                Verdict::Miss
            },
        );
        rows.push(vec![
            m.k.to_string(),
            m.objects.to_string(),
            format!("{:.3}", m.overall),
            format!("{limit}"),
            format!("{:.2}", m.overall / limit),
            format!("{:.2}", min_rate / r),
            m.throttled
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" "),
        ]);
    }
    let sum = |f: fn(&Measured) -> usize| runs.iter().map(f).sum::<usize>();
    report.zero(
        "6: 429 responses (all accounts, all K)",
        runs.iter().map(|m| m.throttled.iter().sum::<usize>()).sum(),
        false,
    );
    report.exact(
        "6: CreateInstance accepted (all K)",
        sum(|m| m.accepted),
        sum(|m| m.objects),
        true,
    );
    report.zero(
        "6: objects with >1 accepted create",
        sum(|m| m.duplicated),
        true,
    );
    report.zero("6: creates in another account", sum(|m| m.misplaced), true);
    report.zero("6: objects never Ready", sum(|m| m.not_ready), true);
    report.zero("6: instances left after deletion", sum(|m| m.left), true);
    report.zero(
        "6: objects stuck with the finalizer",
        sum(|m| m.stuck_objects),
        true,
    );
    report.zero("6: accounts not deleted", sum(|m| m.stuck_accounts), true);
    report.table(
        &format!(
            "scenario 6, several accounts: CreateInstance R = {r}/s per account, {} objects per account (429s: per account)",
            params.account_n
        ),
        &[
            "K",
            "objects",
            "overall creates/s",
            "K×R",
            "ratio",
            "per-account min ratio",
            "429s",
        ],
        rows,
    );
}

/// K accounts with their own simulator, operator and namespace.
async fn run_k(
    params: &Params,
    clock: Clock,
    client: &Client,
    k: usize,
    report: &mut Report,
) -> Measured {
    let n = params.account_n;
    let r = params.create_rate;
    let total = k * n;
    println!("\n-- K = {k}: {k} accounts x {n} objects --");
    let namespace = TestNamespace::create(client, &format!("bench-acct{k}")).await;
    let dir = test_kit::simulator::log_dir(&format!("bench-scale-accounts-{k}"));
    println!("  logs: {}", dir.display());
    let api = connect::api(client, &namespace.name);
    // Rates, bursts and the instance quota apply to each account.
    let simulator = start_simulator(
        &dir,
        n + 10,
        (r, params.create_burst),
        Some((params.api_rate, params.api_burst)),
        params.creation_delay,
        params.deletion_delay,
    )
    .await;
    let sim = SimLog::new(&simulator, clock).await;
    let watch = Watch::start(client, &namespace.name, clock);
    let operator = start_operator(
        &dir,
        &namespace.name,
        &simulator,
        &[
            ("create-delete-rate", r.to_string()),
            ("api-rate", params.api_rate.to_string()),
            ("drift-interval", fmt_dur(params.drift)),
            ("creation-poll-interval", fmt_dur(params.poll)),
            ("concurrency", params.concurrency.to_string()),
        ],
        &params.operator_log,
    )
    .await;
    println!("  operator pid {:?}", operator.pid());

    // The accounts, labelled for this operator (`--account-selector`), every namespace.
    let accounts_api = accounts_api(client);
    let accounts: Vec<Account> = (1..=k)
        .map(|i| Account {
            name: format!("{}-{i}", namespace.name),
            id: account_id(i),
        })
        .collect();
    for account in &accounts {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "connect.operators.dev/v1alpha1",
            "kind": "ConnectAccount",
            "metadata": {
                "name": account.name,
                "labels": {ACCOUNT_SCOPE_LABEL: namespace.name},
            },
            "spec": {
                "roleArn": role_arn(&account.id),
                "namespaceSelector": {},
                // The most the CRD allows: room for N creates and N deletes per account.
                "lifecycleAttemptBudget": 100,
            },
        }))
        .expect("a ConnectAccount");
        accounts_api
            .patch(
                &account.name,
                &PatchParams::apply("connect-bench").force(),
                &Patch::Apply(&object),
            )
            .await
            .unwrap_or_else(|error| panic!("applying ConnectAccount {}: {error}", account.name));
    }
    let t_accounts = Instant::now();
    let deadline = t_accounts + ACCOUNT_DEADLINE;
    let mut pending: Vec<&Account> = accounts.iter().collect();
    while !pending.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut still = Vec::new();
        for account in pending {
            let object = accounts_api.get_opt(&account.name).await.ok().flatten();
            let ready = object
                .as_ref()
                .is_some_and(|o| connect::is_true(o, "Ready", None));
            if !ready {
                still.push(account);
                continue;
            }
            let seen = object
                .as_ref()
                .and_then(|o| connect::status_str(o, "accountId"));
            if seen.as_deref() != Some(account.id.as_str()) {
                report.fail(format!(
                    "K={k}: ConnectAccount {} reports account {seen:?}, its role is in {}",
                    account.name, account.id
                ));
            }
        }
        pending = still;
    }
    if pending.is_empty() {
        println!(
            "  {k} accounts Ready in {:.2} s",
            t_accounts.elapsed().as_secs_f64()
        );
    } else {
        for account in &pending {
            let object = accounts_api.get_opt(&account.name).await.ok().flatten();
            println!(
                "  account {} not Ready: {}",
                account.name,
                object
                    .as_ref()
                    .map_or_else(|| "missing".to_owned(), connect::describe)
            );
        }
        report.fail(format!(
            "K={k}: {} of {k} ConnectAccounts not Ready after {ACCOUNT_DEADLINE:?}",
            pending.len()
        ));
    }
    tokio::time::sleep(params.warmup).await;

    // All objects at once, the accounts interleaved.
    let metrics_before = operator.metrics().await;
    let seq_before = sim.last_seq().await;
    let t0 = clock.now();
    let accounts_ref = &accounts;
    let api_ref = &api;
    let objects: Vec<Object> =
        futures::stream::iter((0..n).flat_map(|i| (0..k).map(move |a| (a, i))))
            .map(|(a, i)| async move {
                let name = format!("acct{}-{i:04}", a + 1);
                let created = connect::create(api_ref, &manifest(&name, &accounts_ref[a].name))
                    .await
                    .unwrap_or_else(|error| panic!("creating {name}: {error}"));
                Object {
                    uid: connect::uid(&created),
                    name,
                    account: a,
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
    println!(
        "  applied {} objects in {:.2} s",
        objects.len(),
        clock.now() - t0
    );
    let names: Vec<String> = objects.iter().map(|o| o.name.clone()).collect();
    let burst = params.create_burst.max(1) as usize;
    let ideal = n.saturating_sub(burst) as f64 / r + params.creation_delay.as_secs_f64();
    let timeout = Duration::from_secs_f64(ideal * 4.0 + 120.0);
    let not_ready = match watch.wait_ready(&names, timeout).await {
        Ok(()) => 0,
        Err(missing) => {
            let stuck: Vec<DynamicObject> = remaining_objects(&api)
                .await
                .into_iter()
                .filter(|o| missing.contains(o.metadata.name.as_ref().unwrap()))
                .collect();
            println!("{}", operator.log_tail(40));
            report.fail(format!(
                "K={k}: {} of {total} objects not Ready after {timeout:?}:\n    {}",
                missing.len(),
                describe_stuck(&stuck)
            ));
            missing.len()
        }
    };
    let all_ready = objects
        .iter()
        .filter_map(|o| watch.tracked(&o.name).ready_at)
        .fold(t0, f64::max);
    println!("  all Ready {:.1} s after the apply", all_ready - t0);
    let metrics_after = operator.metrics().await;
    let delta = |name: &str| metric_delta(&metrics_before, &metrics_after, name);
    println!(
        "  operator /metrics during creation: {} reconciles, {} CreateInstance refused by the client-side limiter (requeued for the next slot), {} status patches",
        delta("connect_operator_reconciles_total"),
        metric_delta_labeled(
            &metrics_before,
            &metrics_after,
            "connect_operator_rate_limiter_waits_total",
            "CreateInstance"
        ),
        delta("connect_operator_status_patches_total"),
    );
    let calls = sim.calls().await;
    let window: Vec<&Call> = calls
        .iter()
        .filter(|call| call.seq > seq_before && sim.time(call) <= all_ready + 0.5)
        .collect();
    print_calls_by_operation(&window);

    // CreateInstance, by the objects' UID-derived tokens.
    let owner: HashMap<String, &Object> = objects
        .iter()
        .map(|o| (token::create_token(&o.uid), o))
        .collect();
    let accepted: Vec<(&Call, &Object)> = calls
        .iter()
        .filter(|c| c.operation == "CreateInstance" && c.succeeded() && !c.replay)
        .filter_map(|c| Some((c, *owner.get(c.client_token.as_deref()?)?)))
        .collect();
    let mut per_token: HashMap<&str, usize> = HashMap::new();
    for (call, _) in &accepted {
        *per_token
            .entry(call.client_token.as_deref().unwrap_or_default())
            .or_default() += 1;
    }
    let duplicated = per_token.values().filter(|count| **count > 1).count();
    let misplaced = accepted
        .iter()
        .filter(|(call, object)| call.account_id != accounts[object.account].id)
        .count();
    let mut all_times: Vec<f64> = accepted.iter().map(|(c, _)| sim.time(c)).collect();
    all_times.sort_by(f64::total_cmp);
    let overall = if all_times.len() > k {
        (all_times.len() - k) as f64 / (all_times[all_times.len() - 1] - all_times[0]).max(1e-9)
    } else {
        0.0
    };
    let mut per_account = Vec::new();
    for account in &accounts {
        let mut times: Vec<f64> = accepted
            .iter()
            .filter(|(c, _)| c.account_id == account.id)
            .map(|(c, _)| sim.time(c))
            .collect();
        times.sort_by(f64::total_cmp);
        let rate = achieved_rate(&times);
        let gaps: Vec<f64> = times.windows(2).map(|pair| pair[1] - pair[0]).collect();
        println!(
            "  account {}: {} accepted CreateInstance, first/last at +{:.2}/+{:.2} s, {rate:.3}/s (ratio {:.2} to R); gaps min/median/max {:.3}/{:.3}/{:.3} s (1/R = {:.3} s)",
            account.id,
            times.len(),
            times.first().map_or(0.0, |t| t - t0),
            times.last().map_or(0.0, |t| t - t0),
            rate / r,
            gaps.iter().copied().fold(f64::INFINITY, f64::min),
            stats(&gaps).median,
            stats(&gaps).max,
            1.0 / r
        );
        per_account.push(rate);
    }
    println!(
        "  all accounts: {} accepted CreateInstance, {overall:.3}/s (ratio {:.2} to K x R = {}/s)",
        all_times.len(),
        overall / (k as f64 * r),
        k as f64 * r
    );

    // Deletion of everything at once; then the accounts.
    let t_delete = clock.now();
    crate::deletion::delete_all(&api, objects.iter().map(|o| o.name.as_str())).await;
    let ideal_delete = n.saturating_sub(burst) as f64 / r + params.deletion_delay.as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs_f64(ideal_delete * 4.0 + 120.0);
    let mut stuck = remaining_objects(&api).await;
    while !stuck.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        stuck = remaining_objects(&api).await;
    }
    if stuck.is_empty() {
        println!(
            "  all objects gone {:.1} s after the delete",
            clock.now() - t_delete
        );
    } else {
        println!("  stuck:\n    {}", describe_stuck(&stuck));
    }
    let left = sim.instances().await;
    for instance in left.iter().take(5) {
        println!(
            "  left behind: {} in {} {:?} {} deleting={}",
            instance.id, instance.account_id, instance.alias, instance.status, instance.deleting
        );
    }
    for account in &accounts {
        if let Err(error) = accounts_api
            .delete(&account.name, &DeleteParams::default())
            .await
        {
            println!("  deleting account {}: {error}", account.name);
        }
    }
    let deadline = Instant::now() + ACCOUNT_DEADLINE;
    let mut stuck_accounts = accounts.len();
    while stuck_accounts > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        stuck_accounts = 0;
        for account in &accounts {
            if accounts_api
                .get_opt(&account.name)
                .await
                .ok()
                .flatten()
                .is_some()
            {
                stuck_accounts += 1;
            }
        }
    }

    // 429s per account over the whole run, creation and deletion.
    let calls = sim.calls().await;
    let throttled: Vec<usize> = accounts
        .iter()
        .map(|account| {
            calls
                .iter()
                .filter(|c| c.seq > seq_before && c.account_id == account.id && c.status == 429)
                .count()
        })
        .collect();
    println!("  429 responses per account (apply to all deleted): {throttled:?}");

    drop(watch);
    drop(operator);
    drop(simulator);
    Measured {
        k,
        objects: total,
        overall,
        per_account,
        throttled,
        accepted: accepted.len(),
        duplicated,
        misplaced,
        not_ready,
        left: left.len(),
        stuck_objects: stuck.len(),
        stuck_accounts,
    }
}
