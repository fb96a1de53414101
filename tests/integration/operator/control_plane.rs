//! When the control plane fails: connections to the API server that die silently (a TCP
//! proxy that stops forwarding without FIN or RST), kube-apiserver and etcd SIGKILLed and
//! restarted under a running operator, and two replicas with leader election through
//! API-server outages of twice the lease duration.
//!
//! The restart scenarios need a control plane of their own (the shared one serves every
//! other test); the proxy scenario puts the proxy between the operator and the shared one.
//! Timings are printed for the record; what is asserted is behaviour: the same process
//! recovers, nothing is created twice or left behind, no replica writes to AWS once its
//! lease has expired, `/livez` fails while the operator is cut off.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject};
use serde_json::{Value, json};

use test_kit::connect::{self, basic_spec, describe, manifest};
use test_kit::proxy::{FaultyProxy, kubeconfig_via};
use test_kit::{OperatorProcess, control_plane, wait_until};

use super::{Scenario, ready_now};

/// One line of figures for `hack/soak-control-plane.sh` to collect.
fn print_figures(scenario: &str, figures: &Value) {
    eprintln!("control-plane figures {scenario} {figures}");
}

/// `GET /livez`: whether it answered 2xx, and its text (`None` when it did not answer).
async fn livez(operator: &OperatorProcess) -> (bool, Option<String>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("HTTP client");
    match http
        .get(format!("http://{}/livez", operator.metrics_addr))
        .send()
        .await
    {
        Ok(response) => {
            let ok = response.status().is_success();
            (ok, response.text().await.ok())
        }
        Err(_) => (false, None),
    }
}

/// Waits until every named object is Ready for its current generation; returns how long
/// that took.
async fn all_ready(api: &Api<DynamicObject>, names: &[String], timeout: Duration) -> Duration {
    let started = Instant::now();
    wait_until("every object Ready at its generation", timeout, || async {
        let mut waiting = vec![];
        for name in names {
            match api.get_opt(name).await {
                Ok(Some(object)) if ready_now(&object) => {}
                Ok(Some(object)) => waiting.push(describe(&object)),
                Ok(None) => waiting.push(format!("{name}: missing")),
                Err(e) => waiting.push(format!("{name}: {e}")),
            }
        }
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(waiting.join("\n"))
        }
    })
    .await;
    started.elapsed()
}

#[tokio::test]
async fn silently_dead_api_connections_are_left_within_a_minute_and_livez_tells_while_cut_off() {
    const TEST: &str = "silently_dead_api_connections_are_left_within_a_minute";
    let shared = tokio::task::spawn_blocking(control_plane)
        .await
        .expect("control plane");
    let target = shared
        .server
        .trim_start_matches("https://")
        .parse()
        .expect("the API server's address");
    let proxy = FaultyProxy::start(target).expect("starting the proxy");
    // Not the scenario's own log directory, which the scenario empties when it starts.
    let kubeconfig = test_kit::simulator::log_dir(&format!("{TEST}-proxy")).join("kubeconfig");
    kubeconfig_via(&shared.kubeconfig, proxy.addr(), &kubeconfig).expect("kubeconfig");
    // The production defaults for the Kubernetes client: the bound proven is theirs.
    let s = Scenario::start_with(
        TEST,
        &["--instance-quota", "10"],
        &[],
        &[],
        |mut options| {
            options.kubeconfig = Some(kubeconfig.clone());
            options
        },
    )
    .await;
    let pid = s.operator.pid();
    let first = format!("first-{}", test_kit::random_suffix(5));
    s.kubectl_apply(&manifest("first", basic_spec(&first)))
        .await;
    s.wait_ready("first").await;
    let mut figures = vec![];
    let mut picked_up_s = vec![];
    let mut converged_s = vec![];

    // Twice in a row: every connection open now goes silent, new ones work.
    for round in 1..=2 {
        let frozen = proxy.freeze_open();
        assert!(
            frozen > 0,
            "round {round}: the operator had no open connection"
        );
        let frozen_at = Instant::now();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let name = format!("new-{round}");
        let alias = format!("{name}-{}", test_kit::random_suffix(5));
        s.kubectl_apply(&manifest(&name, basic_spec(&alias))).await;
        s.merge_patch(
            "first",
            json!({ "spec": { "tags": { "round": round.to_string() } } }),
        )
        .await;
        let applied = Instant::now();
        // Sampled meanwhile: whether /livez ever said "not live" while it recovered.
        let mut livez_failures = 0;
        let names = vec![name.clone(), "first".to_owned()];
        let picked_up = loop {
            if let Ok(Some(object)) = s.api.get_opt(&name).await
                && object.data.pointer("/status/conditions").is_some()
            {
                break applied.elapsed();
            }
            if !livez(&s.operator).await.0 {
                livez_failures += 1;
            }
            assert!(
                applied.elapsed() < Duration::from_secs(60),
                "round {round}: the new object was not acted on within 60 s (proxy {:?})\n{}",
                proxy.stats(),
                s.operator.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let converged = all_ready(&s.api, &names, Duration::from_secs(60)).await;
        let first_now = s.get("first").await;
        assert_eq!(
            first_now
                .data
                .pointer("/spec/tags/round")
                .and_then(Value::as_str),
            Some(round.to_string().as_str())
        );
        let instance = connect::status_str(&first_now, "instanceId").expect("instanceId");
        let tags = s.sim.instance(&instance).await.expect("the instance").tags;
        assert_eq!(
            tags.get("round").map(String::as_str),
            Some(round.to_string().as_str()),
            "round {round}: the spec change reached AWS"
        );
        assert_eq!(s.operator.pid(), pid, "the same process recovered");
        assert_eq!(
            livez_failures, 0,
            "round {round}: /livez failed while the operator recovered by itself"
        );
        picked_up_s.push(picked_up.as_secs_f64());
        converged_s.push(applied.elapsed().as_secs_f64());
        figures.push(format!(
            "round {round}: {frozen} connections frozen; new object acted on {:.1} s and \
             everything converged {:.1} s after the apply ({:.1} s after the freeze); /livez \
             failed on {livez_failures} samples meanwhile",
            picked_up.as_secs_f64(),
            converged.as_secs_f64(),
            frozen_at.elapsed().as_secs_f64()
        ));
    }

    // Cut off: every connection, new ones too, goes silent. /livez must say so.
    let held = proxy.blackhole();
    let cut_at = Instant::now();
    let (problem, failed_after) = wait_until(
        "/livez to fail while the operator is cut off",
        Duration::from_secs(120),
        || async {
            match livez(&s.operator).await {
                (false, Some(problem)) => Ok((problem, cut_at.elapsed())),
                (ok, text) => Err(format!("/livez ok={ok}: {text:?}")),
            }
        },
    )
    .await;
    assert!(
        problem.contains("has delivered nothing and not been re-established"),
        "/livez names the silent watch: {problem}"
    );
    // Back: the same process is live again and acts.
    proxy.restore();
    let restored_at = Instant::now();
    // Each watch is back within a request deadline (10 s) and its longest backoff (7.5 s),
    // twice over for luck: not the minutes a controller's own default backoff can add.
    wait_until("/livez to pass again", Duration::from_secs(45), || async {
        match livez(&s.operator).await {
            (true, _) => Ok(()),
            (false, text) => Err(format!("{text:?}")),
        }
    })
    .await;
    let live_again = restored_at.elapsed();
    let alias = format!("after-{}", test_kit::random_suffix(5));
    s.kubectl_apply(&manifest("after", basic_spec(&alias)))
        .await;
    let after = all_ready(&s.api, &["after".to_owned()], Duration::from_secs(60)).await;
    assert_eq!(s.operator.pid(), pid, "never restarted");
    let creates: BTreeMap<String, usize> = s
        .connect_calls()
        .await
        .iter()
        .filter(|c| c.operation == "CreateInstance" && c.applied() && !c.replay)
        .fold(BTreeMap::new(), |mut acc, c| {
            *acc.entry(c.client_token.clone().unwrap_or_default())
                .or_default() += 1;
            acc
        });
    assert_eq!(
        creates.len(),
        4,
        "four objects, four instances: {creates:?}"
    );
    assert!(creates.values().all(|n| *n == 1), "{creates:?}");
    eprintln!(
        "{TEST}: {}; cut off ({held} held): /livez failed after {:.1} s ({problem}); \
         restored: live again after {:.1} s, a new object Ready {:.1} s after its apply",
        figures.join("; "),
        failed_after.as_secs_f64(),
        live_again.as_secs_f64(),
        after.as_secs_f64()
    );
    print_figures(
        "connection_loss",
        &json!({
            "picked_up_s": picked_up_s,
            "converged_s": converged_s,
            "livez_failed_after_cut_off_s": failed_after.as_secs_f64(),
            "live_again_after_restore_s": live_again.as_secs_f64(),
        }),
    );
    drop(s);
    drop(proxy);
}

/// What a scenario on a private control plane starts with: the control plane, an admin
/// client of it, a fresh namespace, the scenario's log directory and a simulator.
struct Private {
    cp: test_kit::control_plane::PrivateControlPlane,
    client: kube::Client,
    namespace: String,
    logs: std::path::PathBuf,
    sim: test_kit::Simulator,
}

impl Private {
    async fn start(test: &str, namespace_prefix: &str) -> Self {
        let cp = test_kit::control_plane::start_private()
            .await
            .expect("a private control plane");
        let client = test_kit::client_for(cp.kubeconfig())
            .await
            .expect("a client of the private control plane");
        let namespace = test_kit::TestNamespace::create(&client, namespace_prefix)
            .await
            .name;
        let logs = test_kit::simulator::log_dir(test);
        let sim = private_simulator(&logs);
        Self {
            cp,
            client,
            namespace,
            logs,
            sim,
        }
    }

    /// Options for an operator watching the namespace through the private control plane.
    fn operator_options(&self) -> test_kit::OperatorOptions {
        let mut options = test_kit::OperatorOptions::new(&self.namespace, &self.sim.url);
        options.kubeconfig = Some(self.cp.kubeconfig().to_owned());
        options
    }
}

/// A simulator for a private control plane's scenario: AWS-like delays, room for every
/// object, no rate limits of its own (the operator's limiter is what is exercised).
fn private_simulator(logs: &std::path::Path) -> test_kit::Simulator {
    let unlimited: Vec<String> = super::OPERATIONS
        .iter()
        .map(|op| format!("{op}=none"))
        .collect();
    let mut args: Vec<&str> = vec![
        "--creation-delay",
        "1s",
        "--deletion-delay",
        "1s",
        "--instance-quota",
        "50",
    ];
    for limit in &unlimited {
        args.extend(["--rate-limit", limit.as_str()]);
    }
    test_kit::Simulator::start(logs, &args)
}

/// Retries a Kubernetes call through outages: each try is bounded (a request to an API
/// server whose etcd is down waits rather than fails), and it gives up after two minutes.
async fn through_outages<T, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), call()).await {
            Ok(Ok(value)) => return value,
            Ok(Err(e)) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) if Instant::now() > deadline => panic!("{what}: no answer"),
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// The counted entries of the default account's ledger in us-east-1.
async fn default_ledger_counted(client: &kube::Client) -> usize {
    let resource = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk(
            "connect.operators.dev",
            "v1alpha1",
            "ConnectAttemptLedger",
        ),
        "connectattemptledgers",
    );
    let ledgers: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let ledger = ledgers
        .get("default.us-east-1")
        .await
        .expect("the default account's ledger");
    ledger
        .data
        .pointer("/spec/entries")
        .and_then(Value::as_array)
        .map_or(0, |entries| {
            entries
                .iter()
                .filter(|e| e.get("outcome").and_then(Value::as_str) != Some("NotAccepted"))
                .count()
        })
}

#[tokio::test]
async fn api_server_and_etcd_killed_and_restarted_under_churn_the_same_process_converges() {
    const TEST: &str = "api_server_and_etcd_killed_and_restarted_under_churn";
    let _slot = test_kit::heavy_slot().await;
    let p = Private::start(TEST, "cp-restarts").await;
    let mut operator = OperatorProcess::start(&p.logs, p.operator_options()).await;
    let Private {
        mut cp,
        client,
        namespace,
        logs: _,
        sim,
    } = p;
    let pid = operator.pid();
    let api = connect::api(&client, &namespace);

    // Churn: objects created, changed and deleted one after another while the control
    // plane is killed under it; every call retried until the API server takes it.
    let churn = {
        let api = api.clone();
        tokio::spawn(async move {
            let mut kept: BTreeMap<String, String> = BTreeMap::new();
            let mut deleted: Vec<(String, String)> = vec![];
            for i in 0..14 {
                let name = format!("churn-{i}");
                let alias = format!("cpr-{i}-{}", test_kit::random_suffix(5));
                let created = through_outages(&format!("creating {name}"), || async {
                    match connect::create(&api, &manifest(&name, basic_spec(&alias))).await {
                        Err(kube::Error::Api(status)) if status.code == 409 => api.get(&name).await,
                        other => other,
                    }
                })
                .await;
                let uid = connect::uid(&created);
                tokio::time::sleep(Duration::from_millis(1500)).await;
                if i % 3 == 1 {
                    let patch = kube::api::Patch::Merge(
                        json!({ "spec": { "tags": { "round": format!("changed-{i}") } } }),
                    );
                    let params = kube::api::PatchParams::default();
                    through_outages(&format!("changing {name}"), || {
                        api.patch(&name, &params, &patch)
                    })
                    .await;
                }
                if i % 4 == 2 {
                    through_outages(&format!("deleting {name}"), || async {
                        match api.delete(&name, &kube::api::DeleteParams::default()).await {
                            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                            other => other.map(|_| ()),
                        }
                    })
                    .await;
                    deleted.push((name, uid));
                } else {
                    kept.insert(name, uid);
                }
            }
            (kept, deleted)
        })
    };

    // The faults: kube-apiserver SIGKILLed and restarted with the same flags and data, and
    // etcd likewise, while the churn goes on.
    let faults = [
        "kube-apiserver",
        "etcd",
        "kube-apiserver",
        "kube-apiserver",
        "etcd",
        "kube-apiserver",
        "etcd",
        "kube-apiserver",
    ];
    let mut outages = vec![];
    for (n, process) in faults.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(1500..3500))).await;
        let down = Instant::now();
        if *process == "etcd" {
            cp.kill_etcd();
        } else {
            cp.kill_apiserver();
        }
        tokio::time::sleep(Duration::from_millis(fastrand::u64(1000..3000))).await;
        if *process == "etcd" {
            cp.start_etcd().expect("restarting etcd");
        } else {
            cp.start_apiserver().expect("restarting kube-apiserver");
        }
        cp.wait_ready(Duration::from_secs(90))
            .await
            .unwrap_or_else(|e| panic!("fault {n} ({process}): {e}"));
        outages.push(format!("{process} {:.1} s", down.elapsed().as_secs_f64()));
        assert!(operator.is_running(), "the operator died with {process}");
    }
    let recovered = Instant::now();
    let (kept, deleted) = churn.await.expect("the churn");

    // Once the API server answers: a new object is acted on, and every pending change
    // converges, by the same process.
    let alias = format!("cpr-fresh-{}", test_kit::random_suffix(5));
    connect::create(&api, &manifest("fresh", basic_spec(&alias)))
        .await
        .expect("creating fresh");
    let fresh_created = Instant::now();
    wait_until(
        "the fresh object acted on",
        Duration::from_secs(60),
        || async {
            match api.get_opt("fresh").await {
                Ok(Some(o)) if o.data.pointer("/status/conditions").is_some() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let fresh_acted = fresh_created.elapsed();
    let mut names: Vec<String> = kept.keys().cloned().collect();
    names.push("fresh".to_owned());
    all_ready(&api, &names, Duration::from_secs(90)).await;
    let converged = recovered.elapsed();
    for (name, _) in &deleted {
        connect::wait_gone(&api, name, Duration::from_secs(90)).await;
    }
    let all_gone = recovered.elapsed();

    assert_eq!(operator.pid(), pid, "the operator was never restarted");
    assert!(operator.is_running());
    let log = std::fs::read_to_string(operator.log_path()).expect("the operator's log");
    assert_eq!(
        log.matches("=== test harness: start #").count(),
        1,
        "one start of the operator"
    );

    // Exactly one CreateInstance that took effect per object; nothing left behind. (A
    // CreateInstance sent again with the object's token is the same attempt, answered
    // with the same instance: counted apart, as replays.)
    let calls = sim.calls().await;
    let replays = calls
        .iter()
        .filter(|c| c.operation == "CreateInstance" && c.replay)
        .count();
    let mut creates: BTreeMap<String, usize> = BTreeMap::new();
    for call in calls
        .iter()
        .filter(|c| c.operation == "CreateInstance" && c.applied() && !c.replay)
    {
        *creates
            .entry(call.client_token.clone().unwrap_or_default())
            .or_default() += 1;
    }
    let fresh_uid = connect::uid(&api.get("fresh").await.expect("fresh"));
    let mut uids: Vec<&String> = kept.values().collect();
    uids.push(&fresh_uid);
    for uid in &uids {
        let token = connect_operator::aws::token::create_token(uid);
        assert_eq!(
            creates.get(&token).copied(),
            Some(1),
            "one CreateInstance per kept object: {creates:?}"
        );
    }
    // An object deleted before its instance was asked for has none.
    let mut deleted_with_instance = 0;
    for (name, uid) in &deleted {
        let token = connect_operator::aws::token::create_token(uid);
        let n = creates.get(&token).copied().unwrap_or(0);
        assert!(n <= 1, "{name}: {n} CreateInstance: {creates:?}");
        deleted_with_instance += n;
    }
    assert_eq!(
        creates.len(),
        uids.len() + deleted_with_instance,
        "no other instance: {creates:?}"
    );
    let mut expected: Vec<String> = vec![];
    for name in &names {
        let object = api.get(name).await.expect("a kept object");
        expected.push(connect::status_str(&object, "instanceId").expect("instanceId"));
    }
    expected.sort();
    let mut live: Vec<String> = sim
        .instances()
        .await
        .into_iter()
        .filter(|i| !i.deleting)
        .map(|i| i.id)
        .collect();
    live.sort();
    assert_eq!(live, expected, "exactly the kept objects' instances remain");
    // Spec changes reached AWS.
    for name in kept.keys() {
        let object = api.get(name).await.expect("kept");
        if let Some(round) = object
            .data
            .pointer("/spec/tags/round")
            .and_then(Value::as_str)
        {
            let id = connect::status_str(&object, "instanceId").expect("instanceId");
            let tags = sim.instance(&id).await.expect("its instance").tags;
            assert_eq!(tags.get("round").map(String::as_str), Some(round), "{name}");
        }
    }
    // The ledger holds what AWS counted.
    let attempts = sim
        .state_of("123456789012", "us-east-1")
        .await
        .lifecycle_attempts;
    assert_eq!(
        default_ledger_counted(&client).await as u64,
        attempts,
        "the ledger equals the simulator's count of attempts"
    );
    eprintln!(
        "{TEST}: outages {}; {} objects kept, {} deleted; after the last restart a new \
         object was acted on in {:.1} s, everything converged in {:.1} s and the deleted \
         ones were gone in {:.1} s; {} CreateInstance ({replays} replays), {attempts} \
         lifecycle attempts, ledger equal",
        outages.join(", "),
        kept.len(),
        deleted.len(),
        fresh_acted.as_secs_f64(),
        converged.as_secs_f64(),
        all_gone.as_secs_f64(),
        creates.len(),
    );
    print_figures(
        "restarts",
        &json!({
            "restarts": faults.len(),
            "new_object_acted_on_s": fresh_acted.as_secs_f64(),
            "converged_s": converged.as_secs_f64(),
            "deletions_done_s": all_gone.as_secs_f64(),
            "creates": creates.len(),
            "lifecycle_attempts": attempts,
        }),
    );
    operator.stop();
}

/// `connect_operator_leader` as a replica exports it (`None` when it does not answer).
async fn leader_gauge(http: &reqwest::Client, operator: &OperatorProcess) -> Option<bool> {
    let text = http
        .get(format!("http://{}/metrics", operator.metrics_addr))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("connect_operator_leader "))
        .map(|value| value.trim() == "1")
}

fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// All of an object's boolean settings (`inboundCallsEnabled`, `outboundCallsEnabled` and
/// every attribute) set to `value`: one UpdateInstanceAttribute each to converge.
fn every_setting(value: bool) -> Value {
    json!({
        "spec": {
            "inboundCallsEnabled": value,
            "outboundCallsEnabled": value,
            "attributes": {
                "contactflowLogs": value, "contactLens": value, "autoResolveBestVoices": value,
                "useCustomTtsVoices": value, "earlyMedia": value, "multiPartyConference": value,
                "highVolumeOutbound": value, "enhancedContactMonitoring": value,
                "enhancedChatMonitoring": value, "multiPartyChatConference": value,
                "messageStreaming": value,
            },
        }
    })
}

/// How the leader loses the API server in one outage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outage {
    /// Only the leader's connections go silent (its own proxy swallows everything): the
    /// follower still reaches the API server and takes over.
    LeaderCutOff,
    /// kube-apiserver is SIGKILLed: both replicas are cut off.
    ApiServerDown,
}

#[tokio::test]
async fn two_replicas_through_api_server_outages_never_both_lead_nor_write_after_the_lease_expired()
{
    const TEST: &str = "two_replicas_through_api_server_outages";
    const LEASE_SECONDS: u64 = 6;
    const GRACE_SECONDS: u64 = 2;
    const RETRY_MS: u64 = 1000;
    const OUTAGES: [Outage; 4] = [
        Outage::LeaderCutOff,
        Outage::ApiServerDown,
        Outage::LeaderCutOff,
        Outage::ApiServerDown,
    ];
    let renew_deadline_ms = (LEASE_SECONDS - GRACE_SECONDS) * 1000;
    let _slot = test_kit::heavy_slot().await;
    let p = Private::start(TEST, "cp-leaders").await;
    let base_options = p.operator_options();
    let Private {
        mut cp,
        client,
        namespace,
        logs,
        sim,
    } = p;
    // Each attribute write takes 700 ms, so that a change of every setting of four objects
    // keeps the leader writing (13 writes in a row per object) well into an outage.
    sim.set_config(&connect_sim::ConfigPatch {
        faults: Some(connect_sim::FaultsPatch {
            latency_ms: Some(700),
            operations: Some(vec!["UpdateInstanceAttribute".to_owned()]),
            ..connect_sim::FaultsPatch::default()
        }),
        ..connect_sim::ConfigPatch::default()
    })
    .await;
    // Each replica reaches the API server through a proxy of its own (to cut off one of
    // them) and signs with AWS keys of its own (so the call log tells whose a write was).
    let api_server: std::net::SocketAddr = cp
        .server()
        .trim_start_matches("https://")
        .parse()
        .expect("the API server's address");
    let ids = ["a", "b"];
    let mut proxies = vec![];
    let mut dirs = vec![];
    let mut options = vec![];
    for id in ids {
        let proxy = FaultyProxy::start(api_server).expect("a proxy");
        let dir = logs.join(id);
        std::fs::create_dir_all(&dir).expect("log dir");
        let kubeconfig = dir.join("kubeconfig");
        kubeconfig_via(cp.kubeconfig(), proxy.addr(), &kubeconfig).expect("kubeconfig");
        let mut replica = base_options.clone();
        replica.kubeconfig = Some(kubeconfig);
        replica
            .envs
            .push(("CONNECT_OPERATOR_LEADER_ELECTION".into(), "true".into()));
        replica.envs.push((
            "AWS_ACCESS_KEY_ID".into(),
            format!("AKIDREPLICA{}", id.to_ascii_uppercase()),
        ));
        let replica = replica
            .flag("identity", id)
            .flag("lease-name", "connect-operator-test")
            .flag("lease-namespace", &namespace)
            .flag("lease-duration-seconds", &LEASE_SECONDS.to_string())
            .flag("lease-grace-seconds", &GRACE_SECONDS.to_string())
            .flag("lease-retry-period", &format!("{RETRY_MS}ms"));
        proxies.push(proxy);
        dirs.push(dir);
        options.push(replica);
    }
    let (a, b) = tokio::join!(
        OperatorProcess::start(&dirs[0], options[0].clone()),
        OperatorProcess::start(&dirs[1], options[1].clone()),
    );
    let replicas = std::sync::Arc::new([a, b]);
    let api = connect::api(&client, &namespace);
    let names: Vec<String> = (0..4).map(|i| format!("voice-{i}")).collect();
    for name in &names {
        let alias = format!("cpl-{name}-{}", test_kit::random_suffix(5));
        connect::create(&api, &manifest(name, basic_spec(&alias)))
            .await
            .expect("creating an object");
    }
    all_ready(&api, &names, Duration::from_secs(120)).await;

    // Sampled every 250 ms throughout: each replica's leader gauge.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let replicas = replicas.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(1))
                .build()
                .expect("HTTP client");
            let mut gauges = vec![];
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let (ga, gb) = tokio::join!(
                    leader_gauge(&http, &replicas[0]),
                    leader_gauge(&http, &replicas[1]),
                );
                gauges.push((unix_ms_now(), ga, gb));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            gauges
        })
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .expect("HTTP client");

    // Per outage: who led, when its API server went away, and until when it could not
    // have led again (the API server or its connections back).
    let mut windows: Vec<(Outage, usize, u64, u64)> = vec![];
    for (n, outage) in OUTAGES.iter().enumerate() {
        let leader = wait_until("exactly one leader", Duration::from_secs(60), || async {
            match tokio::join!(
                leader_gauge(&http, &replicas[0]),
                leader_gauge(&http, &replicas[1])
            ) {
                (Some(true), Some(false)) => Ok(0),
                (Some(false), Some(true)) => Ok(1),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        // A change of every setting of every object: the leader writes for many seconds.
        let calls_before = sim.calls().await.len();
        for name in &names {
            api.patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(every_setting(n % 2 == 0)),
            )
            .await
            .expect("changing every setting");
        }
        wait_until("the leader writing", Duration::from_secs(30), || async {
            let calls = sim.calls().await;
            if calls[calls_before..]
                .iter()
                .any(|c| c.operation == "UpdateInstanceAttribute")
            {
                Ok(())
            } else {
                Err("no UpdateInstanceAttribute yet".to_owned())
            }
        })
        .await;
        // The API server goes away (for the leader, or for both) for twice the lease.
        let down_ms = unix_ms_now();
        match outage {
            Outage::LeaderCutOff => {
                proxies[leader].blackhole();
            }
            Outage::ApiServerDown => cp.kill_apiserver(),
        }
        tokio::time::sleep(Duration::from_secs(2 * LEASE_SECONDS)).await;
        let back_ms = unix_ms_now();
        match outage {
            Outage::LeaderCutOff => proxies[leader].restore(),
            Outage::ApiServerDown => {
                cp.start_apiserver().expect("restarting kube-apiserver");
                cp.wait_ready(Duration::from_secs(90))
                    .await
                    .expect("kube-apiserver back");
            }
        }
        windows.push((*outage, leader, down_ms, back_ms));
        all_ready(&api, &names, Duration::from_secs(120)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let gauges = sampler.await.expect("the sampler");

    // Never two leaders at once, in any sample.
    let both: Vec<&(u64, Option<bool>, Option<bool>)> = gauges
        .iter()
        .filter(|(_, a, b)| *a == Some(true) && *b == Some(true))
        .collect();
    assert!(
        both.is_empty(),
        "{} of {} samples had both replicas leading: {both:?}",
        both.len(),
        gauges.len()
    );

    // The AWS writes of each outage, by whose keys signed them.
    let writes: Vec<test_kit::SimCall> = sim
        .calls()
        .await
        .into_iter()
        .filter(|c| super::mutating(&c.operation))
        .collect();
    let replica_of = |c: &test_kit::SimCall| match c.access_key_id.as_deref() {
        Some("AKIDREPLICAA") => Some(0),
        Some("AKIDREPLICAB") => Some(1),
        _ => None,
    };
    assert!(
        writes.iter().all(|c| replica_of(c).is_some()),
        "every write signed by a replica"
    );
    let mut report = vec![];
    let mut old_leader_writes = 0;
    let mut last_after_down_ms = vec![];
    let mut takeover_after_down_ms = vec![];
    for (n, (outage, leader, down_ms, back_ms)) in windows.iter().enumerate() {
        let until = windows.get(n + 1).map_or(u64::MAX, |w| w.2);
        // The leader's last renewal came before its API server went away, so its fence
        // closed at the latest the renew deadline after that: none of its writes may
        // arrive later, until it could lead again (its API server back).
        let old: Vec<&test_kit::SimCall> = writes
            .iter()
            .filter(|c| replica_of(c) == Some(*leader) && c.unix_ms > *down_ms)
            .filter(|c| c.unix_ms < *back_ms)
            .collect();
        let late: Vec<&&test_kit::SimCall> = old
            .iter()
            .filter(|c| c.unix_ms > down_ms + renew_deadline_ms)
            .collect();
        assert!(
            late.is_empty(),
            "outage {n} ({outage:?}): {} wrote more than the renew deadline after it was cut \
             off: {late:?}",
            ids[*leader]
        );
        old_leader_writes += old.len();
        let last_old = old.iter().map(|c| c.unix_ms).max();
        if let Some(last) = last_old {
            last_after_down_ms.push(last - down_ms);
        }
        let mut line = format!(
            "outage {n} ({outage:?}): {} led, wrote {} times after it was cut off, the last \
             {} ms after (renew deadline {renew_deadline_ms} ms)",
            ids[*leader],
            old.len(),
            last_old.map_or_else(|| "-".to_owned(), |l| (l - down_ms).to_string())
        );
        if *outage == Outage::LeaderCutOff {
            // The follower took over, only after the lease expired by its own observation
            // (the leader's last renewal was at most one retry period before the cut), and
            // only after the old leader's last write.
            let other = 1 - leader;
            let first_new = writes
                .iter()
                .filter(|c| replica_of(c) == Some(other))
                .map(|c| c.unix_ms)
                .filter(|t| t > down_ms && *t < until)
                .min()
                .unwrap_or_else(|| panic!("outage {n}: the follower {} never wrote", ids[other]));
            assert!(
                first_new >= down_ms + LEASE_SECONDS * 1000 - RETRY_MS,
                "outage {n}: {} wrote {} ms after the cut, before the lease could have \
                 expired",
                ids[other],
                first_new - down_ms
            );
            assert!(
                last_old.is_none_or(|last| last < first_new),
                "outage {n}: the old leader's last write is not before the new one's first"
            );
            takeover_after_down_ms.push(first_new - down_ms);
            line.push_str(&format!(
                "; {} took over and first wrote {} ms after the cut",
                ids[other],
                first_new - down_ms
            ));
        }
        report.push(line);
    }
    assert!(
        old_leader_writes > 0,
        "no write was in flight at any outage: the scenario did not test the fence"
    );
    // Nothing created twice.
    let creates = sim.calls_of("CreateInstance").await;
    assert_eq!(creates.len(), names.len(), "{creates:?}");
    eprintln!(
        "{TEST}: {} samples, 0 with two leaders; {}",
        gauges.len(),
        report.join("; ")
    );
    print_figures(
        "two_leaders",
        &json!({
            "samples": gauges.len(),
            "two_leader_samples": both.len(),
            "outages": OUTAGES.len(),
            "renew_deadline_ms": renew_deadline_ms,
            "lease_duration_ms": LEASE_SECONDS * 1000,
            "old_leader_last_write_after_cut_ms": last_after_down_ms,
            "takeover_first_write_after_cut_ms": takeover_after_down_ms,
            "writes_after_cut": old_leader_writes,
        }),
    );
    drop(replicas);
    drop(proxies);
}
