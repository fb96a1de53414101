//! Leader election: two operator processes with the chart's identity and Lease; only the
//! leader calls AWS; after a SIGKILL of the leader the other takes the Lease and carries on
//! without creating anything twice.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use connect_operator::aws::token::create_token;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::runtime::wait::await_condition;
use serde_json::json;

use test_kit::connect::{
    self, basic_spec, condition, create, describe, generation, manifest, status_str, uid, wait_for,
};
use test_kit::simulator::log_dir;
use test_kit::{
    DEADLINE, OperatorProcess, TestNamespace, client, heavy_slot, random_suffix, wait_until,
};

use super::helm::{render, rendered_env};
use super::identity::{assert_can_i, can, install_identity, options_from_deployment};
use super::{merged, release_name, scenario_simulator, scenario_values};

/// The sum of `connect_operator_aws_calls_total` over all label sets (0 when absent).
fn aws_calls_total(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with("connect_operator_aws_calls_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn lease_holder(client: &Client, namespace: &str, name: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    leases
        .get_opt(name)
        .await
        .expect("reading the Lease")
        .and_then(|lease| lease.spec)
        .and_then(|spec| spec.holder_identity)
}

fn holder_of(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref()
}

/// Watches the Lease until its holder is one `accept` takes; returns that holder.
async fn wait_for_holder(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    timeout: Duration,
    accept: impl Fn(&str) -> bool,
) -> String {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let held = await_condition(leases, name, |lease: Option<&Lease>| {
        lease.and_then(holder_of).is_some_and(&accept)
    });
    match tokio::time::timeout(timeout, held).await {
        Ok(Ok(lease)) => lease
            .as_ref()
            .and_then(holder_of)
            .expect("an accepted Lease has a holder")
            .to_owned(),
        Ok(Err(error)) => panic!("watching the Lease for {what}: {error}"),
        Err(_elapsed) => panic!(
            "timed out after {timeout:?} waiting for {what}; holder {:?}",
            lease_holder(client, namespace, name).await
        ),
    }
}

fn is_ready_now(object: &DynamicObject) -> bool {
    condition(object, "Ready").is_some_and(|ready| {
        ready.status == "True" && ready.observed_generation == Some(generation(object))
    })
}

#[tokio::test]
async fn chart_leader_election_hands_over_after_leader_crash_without_duplicate_create() {
    const TEST: &str =
        "chart_leader_election_hands_over_after_leader_crash_without_duplicate_create";
    const LEASE_DURATION: u64 = 6;
    const MARGIN: Duration = Duration::from_secs(30);
    let _slot = heavy_slot().await;
    let started = Instant::now();
    let client = client().await;
    let namespace = TestNamespace::create(&client, "chart-leader").await.name;
    let logs = log_dir(TEST);
    let sim = scenario_simulator(&logs).await;

    // Two replicas: the chart turns leader election on and grants the Lease.
    let release = release_name("leader");
    let rendered = render(
        &release,
        &namespace,
        &merged(scenario_values(&sim.url), json!({ "replicaCount": 2 })),
        &[],
    )
    .await;
    let deployment = rendered.one("Deployment");
    let env = rendered_env(deployment);
    assert_eq!(env["CONNECT_OPERATOR_LEADER_ELECTION"], "true");
    let lease_name = env["CONNECT_OPERATOR_LEASE_NAME"].clone();
    let identity = install_identity(&rendered, &logs).await;
    assert_can_i(
        &identity,
        &[
            can(
                "get",
                &format!("leases.coordination.k8s.io/{lease_name}"),
                Some(&namespace),
                true,
            ),
            can(
                "patch",
                &format!("leases.coordination.k8s.io/{lease_name}"),
                Some(&namespace),
                true,
            ),
            can(
                "create",
                "leases.coordination.k8s.io",
                Some(&namespace),
                true,
            ),
            can(
                "get",
                "leases.coordination.k8s.io/someone-else",
                Some(&namespace),
                false,
            ),
            can(
                "patch",
                "leases.coordination.k8s.io/someone-else",
                Some(&namespace),
                false,
            ),
            can(
                "delete",
                &format!("leases.coordination.k8s.io/{lease_name}"),
                Some(&namespace),
                false,
            ),
            can(
                "list",
                "leases.coordination.k8s.io",
                Some(&namespace),
                false,
            ),
            can(
                "create",
                "leases.coordination.k8s.io",
                Some("kube-system"),
                false,
            ),
        ],
    )
    .await;

    let replica = |id: &str| {
        let dir = logs.join(id);
        std::fs::create_dir_all(&dir).expect("log directory");
        let options =
            options_from_deployment(deployment, &namespace, &sim.url, &identity.kubeconfig, id)
                .flag("identity", id)
                .flag("lease-namespace", &namespace)
                .flag("lease-name", &lease_name)
                .flag("lease-duration-seconds", &LEASE_DURATION.to_string())
                .flag("lease-grace-seconds", "2");
        (dir, options)
    };
    let (dir_a, options_a) = replica("a");
    let (dir_b, options_b) = replica("b");
    // Started together: the follower never turns ready, so the harness waits its grace
    // period for it; meanwhile the other takes the Lease.
    let (operator_a, operator_b) = tokio::join!(
        OperatorProcess::start(&dir_a, options_a),
        OperatorProcess::start(&dir_b, options_b),
    );
    let leader_id = wait_for_holder(
        &client,
        &namespace,
        &lease_name,
        "a Lease holder",
        DEADLINE,
        |holder| holder == "a" || holder == "b",
    )
    .await;
    let (mut leader, follower, follower_id) = if leader_id == "a" {
        (operator_a, operator_b, "b")
    } else {
        (operator_b, operator_a, "a")
    };
    wait_until("the leader's /readyz", DEADLINE, || async {
        if leader.endpoint_ok("/readyz").await {
            Ok(())
        } else {
            Err("not ready".to_owned())
        }
    })
    .await;
    let follower_ready = follower.endpoint_ok("/readyz").await;

    // The leader reconciles; the follower makes no AWS call.
    let api = connect::api(&client, &namespace);
    let first = create(
        &api,
        &manifest(
            "first",
            basic_spec(&format!("le-first-{}", random_suffix(6))),
        ),
    )
    .await
    .expect("creating first");
    let first_ready = wait_for(&api, "first", "Ready", DEADLINE, is_ready_now).await;
    let first_instance = status_str(&first_ready, "instanceId").expect("instanceId");
    let sim_calls = wait_until(
        "the leader's metrics to count every simulator call",
        Duration::from_secs(10),
        || async {
            let leader_calls = aws_calls_total(&leader.metrics().await);
            let sim_calls = sim.calls().await.len() as f64;
            if leader_calls == sim_calls {
                Ok(sim_calls)
            } else {
                Err(format!(
                    "leader counted {leader_calls}, the simulator saw {sim_calls}"
                ))
            }
        },
    )
    .await;
    let follower_metrics = follower.metrics().await;
    assert_eq!(
        aws_calls_total(&follower_metrics),
        0.0,
        "the follower called AWS:\n{follower_metrics}"
    );
    assert_eq!(
        lease_holder(&client, &namespace, &lease_name)
            .await
            .as_deref(),
        Some(leader_id.as_str()),
        "the Lease changed hands without a failure"
    );

    // Crash the leader; a new object arrives while nobody leads.
    leader.kill();
    let killed = Instant::now();
    let second = create(
        &api,
        &manifest(
            "second",
            basic_spec(&format!("le-second-{}", random_suffix(6))),
        ),
    )
    .await
    .expect("creating second");
    wait_for_holder(
        &client,
        &namespace,
        &lease_name,
        "the follower to take the Lease",
        Duration::from_secs(LEASE_DURATION) + MARGIN,
        |holder| holder == follower_id,
    )
    .await;
    let takeover = killed.elapsed();
    let second_ready = wait_for(&api, "second", "Ready", DEADLINE, is_ready_now).await;
    let second_ready_after = killed.elapsed();

    // Nothing created twice: one accepted CreateInstance per object, with its UID token;
    // the first object's CreateInstance was never sent again by the new leader.
    let calls = sim.calls().await;
    let mut creates: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for call in calls
        .iter()
        .filter(|call| call.operation == "CreateInstance")
    {
        let entry = creates
            .entry(call.client_token.clone().unwrap_or_default())
            .or_default();
        entry.0 += 1;
        if call.succeeded() {
            entry.1 += 1;
        }
    }
    let first_token = create_token(&uid(&first));
    let second_token = create_token(&uid(&second));
    assert_eq!(
        creates.keys().collect::<BTreeSet<_>>(),
        [&first_token, &second_token].into_iter().collect(),
        "CreateInstance (sent, accepted) by ClientToken: {creates:?}"
    );
    assert_eq!(
        creates[&first_token],
        (1, 1),
        "the first object's CreateInstance (sent, accepted): {creates:?}"
    );
    assert_eq!(
        creates[&second_token].1, 1,
        "the second object's CreateInstance (sent, accepted): {creates:?}"
    );
    assert_eq!(sim.instances().await.len(), 2);
    let first_after = api.get("first").await.expect("first");
    assert!(is_ready_now(&first_after), "{}", describe(&first_after));
    assert_eq!(
        status_str(&first_after, "instanceId").as_deref(),
        Some(first_instance.as_str()),
        "the new leader kept the first instance"
    );
    assert_ne!(
        status_str(&second_ready, "instanceId"),
        Some(first_instance.clone())
    );
    assert!(
        aws_calls_total(&follower.metrics().await) > 0.0,
        "the new leader calls AWS"
    );
    assert!(
        takeover <= Duration::from_secs(LEASE_DURATION) + MARGIN,
        "takeover took {takeover:.1?}"
    );
    eprintln!(
        "{TEST}: leader {leader_id} (follower /readyz {}), SIGKILLed; {follower_id} held the \
         Lease {takeover:.1?} later (lease duration {LEASE_DURATION}s) and had a new object \
         Ready {second_ready_after:.1?} after the kill; CreateInstance (sent, accepted) by \
         token: {creates:?}; {sim_calls:.0} Connect calls before the kill, all counted by the \
         leader, none by the follower; test took {:.1?}",
        if follower_ready { "200" } else { "503" },
        started.elapsed()
    );
    for dir in [&dir_a, &dir_b] {
        let log = std::fs::read_to_string(dir.join("operator.log")).expect("operator log");
        let forbidden: Vec<&str> = log
            .lines()
            .filter(|line| line.to_ascii_lowercase().contains("forbidden"))
            .collect();
        assert!(
            forbidden.is_empty(),
            "RBAC denials in {}:\n{}",
            dir.display(),
            forbidden.join("\n")
        );
    }
    drop(follower);
}
