//! A replica in the paired region through the operator: Ready only once the replica is
//! complete, a split towards a replica that is not complete is not sent, a change of the
//! split is one UpdateTrafficDistribution in the region that takes the traffic, nothing is
//! written at rest, removing the replica waits for the traffic to be back, deleting the
//! object deletes the replica first and the ledger of each region matches the simulator's
//! count; and a replication AWS refuses is sent once.

use std::time::Duration;

use serde_json::{Value, json};

use test_kit::connect::{condition, create, manifest, status_str, wait_gone};
use test_kit::{DEADLINE, SimCall};

use super::ledger::{ACCOUNT_ID, apply_account, ledger_counting_in, spec_in};
use super::observability::{REPLICA_METRICS, samples, uncovered};
use super::{Scenario, count_ok};

pub(super) const SOURCE: &str = "us-east-1";
pub(super) const REPLICA: &str = "us-west-2";

pub(super) fn replicated_spec(alias: &str, account: &str) -> Value {
    let mut spec = spec_in(alias, account);
    spec["identityManagementType"] = json!("SAML");
    spec["region"] = json!(SOURCE);
    spec["replica"] = json!({ "region": REPLICA, "alias": format!("{alias}-west") });
    spec
}

pub(super) fn ok_calls<'a>(calls: &'a [SimCall], operation: &str) -> Vec<&'a SimCall> {
    calls
        .iter()
        .filter(|c| c.operation == operation && c.status < 300)
        .collect()
}

async fn scenario(test: &str, sim_args: &[&str]) -> Scenario {
    let mut args = vec![
        "--creation-delay",
        "300ms",
        "--deletion-delay",
        "300ms",
        "--replica-deletion-delay",
        "500ms",
    ];
    args.extend_from_slice(sim_args);
    Scenario::start(test, &args, &[]).await
}

#[tokio::test]
async fn a_replica_is_ready_when_complete_takes_the_split_and_goes_before_the_source() {
    // Replication slow enough to see the object wait for it.
    let s = scenario(
        "a_replica_is_ready_when_complete_takes_the_split_and_goes_before_the_source",
        &["--replication-delay", "6s"],
    )
    .await;
    let account = "replicas";
    apply_account(&s, account, 10).await;
    let mut spec = replicated_spec("gr-support", account);
    // Half of everything to a replica that does not exist yet: held back until complete.
    spec["trafficDistribution"] = json!({ "telephony": { SOURCE: 50, REPLICA: 50 } });
    create(&s.api, &manifest("gr", spec)).await.expect("create");

    let replicating = s
        .wait_for("gr", "Replicating, with the split held back", |o| {
            condition(o, "Ready").is_some_and(|c| {
                c.reason == "Replicating" && c.message.contains("not sent until it is")
            }) && condition(o, "Reconciling").is_some_and(|c| c.reason == "Replicating")
        })
        .await;
    assert_eq!(
        status_str(&replicating, "replica/region").as_deref(),
        Some(REPLICA)
    );
    assert_eq!(
        count_ok(&s.connect_calls().await, "UpdateTrafficDistribution"),
        0,
        "a split was sent towards a replica that is not complete"
    );

    // While replicating, the replica is counted as incomplete, and named as the oldest.
    let object = format!("{}/gr", s.namespace);
    let incomplete = format!(
        "connect_operator_oldest_incomplete_replica_age_seconds{{account=\"{account}\",region=\"{REPLICA}\",object=\"{object}\",status=\""
    );
    let replicating_metrics = test_kit::wait_until(
        "the incomplete replica in the metrics",
        DEADLINE,
        || async {
            let text = s.operator.metrics().await;
            if text.lines().any(|l| l.starts_with(&incomplete)) {
                Ok(text)
            } else {
                Err(text)
            }
        },
    )
    .await;

    let ready = s.wait_ready("gr").await;
    assert_eq!(
        status_str(&ready, "replica/status").as_deref(),
        Some("INSTANCE_REPLICATION_COMPLETE")
    );
    // Complete: counted so, no longer the oldest incomplete, and the split is shown.
    let ready_metrics = s
        .metrics_with(&[
            format!(
                "connect_operator_replicas{{account=\"{account}\",region=\"{REPLICA}\",status=\"INSTANCE_REPLICATION_COMPLETE\"}} 1"
            ),
            format!(
                "connect_operator_traffic_percent{{account=\"{account}\",object=\"{object}\",region=\"{REPLICA}\",channel=\"telephony\"}} 50"
            ),
            format!(
                "connect_operator_traffic_percent{{account=\"{account}\",object=\"{object}\",region=\"{SOURCE}\",channel=\"telephony\"}} 50"
            ),
        ])
        .await;
    assert!(
        !ready_metrics.lines().any(|l| l.starts_with(&incomplete)),
        "a complete replica is still the oldest incomplete:\n{ready_metrics}"
    );
    // What the alert rules and the dashboard name of the replicas' gauges is exported, with
    // their labels, across the two moments.
    let mut scraped = samples(&replicating_metrics);
    for (name, series) in samples(&ready_metrics) {
        scraped.entry(name).or_default().extend(series);
    }
    let problems = uncovered(&scraped, |metric| REPLICA_METRICS.contains(&metric)).await;
    assert!(problems.is_empty(), "{problems:#?}");
    let group = status_str(&ready, "trafficDistributionGroupArn").expect("the group's ARN");
    assert!(status_str(&ready, "globalSignInEndpoint").is_some());
    let id = status_str(&ready, "instanceId").expect("instance id");
    let calls = s.connect_calls().await;
    let replicates = ok_calls(&calls, "ReplicateInstance");
    assert_eq!(replicates.len(), 1, "{replicates:?}");
    assert_eq!(replicates[0].region, SOURCE);
    let updates = ok_calls(&calls, "UpdateTrafficDistribution");
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(
        updates[0].region, REPLICA,
        "the split was not sent in the region that takes the traffic"
    );
    assert_eq!(
        ready.data.pointer("/status/trafficDistribution/telephony"),
        Some(&json!({ SOURCE: 50, REPLICA: 50 }))
    );
    // The replica is an instance of the paired region, with the same id, as the SDK sees it.
    let west = s.sim.instances_in_region(ACCOUNT_ID, REPLICA).await;
    assert_eq!(west.len(), 1, "{west:?}");
    assert_eq!(west[0].id, id);

    // At rest: no write, however many looks.
    let before = s.connect_calls().await.len();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let rest: Vec<SimCall> = s.connect_calls().await.into_iter().skip(before).collect();
    assert!(
        rest.iter().all(|c| !super::mutating(&c.operation)),
        "writes at rest: {rest:?}"
    );

    // Everything back on the source: one update, called in the source's region.
    s.merge_patch(
        "gr",
        json!({ "spec": { "trafficDistribution": { "telephony": { SOURCE: 100, REPLICA: 0 } } } }),
    )
    .await;
    let back = s
        .wait_for("gr", "the split applied back", |o| {
            o.data.pointer("/status/trafficDistribution/telephony")
                == Some(&json!({ SOURCE: 100, REPLICA: 0 }))
                && super::ready_now(o)
        })
        .await;
    assert_eq!(
        status_str(&back, "trafficDistributionGroupArn"),
        Some(group)
    );
    let updates = ok_calls(&s.connect_calls().await, "UpdateTrafficDistribution")
        .into_iter()
        .map(|c| c.region.clone())
        .collect::<Vec<_>>();
    assert_eq!(updates, [REPLICA, SOURCE]);

    // Deleting the object: the replica first, then the source; nothing left anywhere.
    s.api
        .delete("gr", &Default::default())
        .await
        .expect("delete");
    wait_gone(&s.api, "gr", DEADLINE).await;
    let deletes: Vec<String> = ok_calls(&s.connect_calls().await, "DeleteInstance")
        .into_iter()
        .map(|c| c.region.clone())
        .collect();
    assert_eq!(deletes, [REPLICA, SOURCE], "deletion order");
    assert!(
        s.sim
            .instances_in_region(ACCOUNT_ID, SOURCE)
            .await
            .is_empty()
    );
    assert!(
        s.sim
            .instances_in_region(ACCOUNT_ID, REPLICA)
            .await
            .is_empty()
    );
    for region in [SOURCE, REPLICA] {
        let (counting, entries) = ledger_counting_in(&s.client, account, region).await;
        let attempts = s.sim.state_of(ACCOUNT_ID, region).await.lifecycle_attempts;
        assert_eq!(
            counting as u64, attempts,
            "{region}: the ledger and the simulator disagree: {entries:?}"
        );
        assert_eq!(attempts, 2, "{region}: one creation and one deletion");
    }
}

#[tokio::test]
async fn removing_the_replica_waits_for_the_traffic_then_deletes_only_the_replica() {
    let s = scenario(
        "removing_the_replica_waits_for_the_traffic_then_deletes_only_the_replica",
        &["--replication-delay", "1s"],
    )
    .await;
    let account = "removal";
    apply_account(&s, account, 10).await;
    let mut spec = replicated_spec("gr-remove", account);
    spec["trafficDistribution"] = json!({ "telephony": { SOURCE: 70, REPLICA: 30 } });
    create(&s.api, &manifest("gr", spec)).await.expect("create");
    s.wait_for("gr", "the split applied", |o| {
        o.data.pointer("/status/trafficDistribution/telephony")
            == Some(&json!({ SOURCE: 70, REPLICA: 30 }))
            && super::ready_now(o)
    })
    .await;

    // Removed while 30 % of the calls still go there: refused, with the reason.
    s.merge_patch(
        "gr",
        json!({ "spec": { "replica": null, "trafficDistribution": null } }),
    )
    .await;
    s.wait_for("gr", "Stalled ReplicationFailed naming the traffic", |o| {
        condition(o, "Stalled").is_some_and(|c| {
            c.reason == "ReplicationFailed" && c.message.contains("30% of telephony")
        })
    })
    .await;
    assert_eq!(count_ok(&s.connect_calls().await, "DeleteInstance"), 0);

    // The traffic back first, then the removal: the replica alone is deleted.
    let mut spec = replicated_spec("gr-remove", account);
    spec["trafficDistribution"] = json!({ "telephony": { SOURCE: 100 } });
    s.merge_patch("gr", json!({ "spec": spec })).await;
    s.wait_for("gr", "everything back on the source", |o| {
        o.data.pointer("/status/trafficDistribution/telephony")
            == Some(&json!({ SOURCE: 100, REPLICA: 0 }))
            && super::ready_now(o)
    })
    .await;
    s.merge_patch(
        "gr",
        json!({ "spec": { "replica": null, "trafficDistribution": null } }),
    )
    .await;
    let removed = s
        .wait_for("gr", "the replica removed, the instance Ready", |o| {
            o.data.pointer("/status/replica").is_none() && super::ready_now(o)
        })
        .await;
    assert!(status_str(&removed, "trafficDistributionGroupArn").is_none());
    let deletes: Vec<String> = ok_calls(&s.connect_calls().await, "DeleteInstance")
        .into_iter()
        .map(|c| c.region.clone())
        .collect();
    assert_eq!(deletes, [REPLICA]);
    assert_eq!(s.sim.instances_in_region(ACCOUNT_ID, SOURCE).await.len(), 1);
    assert!(
        s.sim
            .instances_in_region(ACCOUNT_ID, REPLICA)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_replication_aws_refuses_is_shown_and_sent_once() {
    let s = scenario(
        "a_replication_aws_refuses_is_shown_and_sent_once",
        &["--deny-replication"],
    )
    .await;
    let account = "not-allow-listed";
    apply_account(&s, account, 10).await;
    create(
        &s.api,
        &manifest("refused", replicated_spec("gr-refused", account)),
    )
    .await
    .expect("create");
    let stalled = s
        .wait_for("refused", "Stalled ReplicationFailed", |o| {
            condition(o, "Stalled").is_some_and(|c| c.reason == "ReplicationFailed")
        })
        .await;
    let message = condition(&stalled, "Ready").expect("Ready").message;
    assert!(message.contains("allow-listed"), "{message}");
    // Several reconciles later (a spec-unrelated annotation wakes it), still one call.
    for n in 0..3 {
        s.merge_patch(
            "refused",
            json!({ "metadata": { "annotations": { "e2e/poke": n.to_string() } } }),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let calls = s.connect_calls().await;
    let replicates: Vec<&SimCall> = calls
        .iter()
        .filter(|c| c.operation == "ReplicateInstance")
        .collect();
    assert_eq!(replicates.len(), 1, "{replicates:?}");
    let (counting, entries) = ledger_counting_in(&s.client, account, REPLICA).await;
    assert_eq!(
        counting, 0,
        "a refused replication counts as an attempt: {entries:?}"
    );
    // The instance itself is deleted as usual.
    s.api
        .delete("refused", &Default::default())
        .await
        .expect("delete");
    wait_gone(&s.api, "refused", DEADLINE).await;
    assert!(
        s.sim
            .instances_in_region(ACCOUNT_ID, SOURCE)
            .await
            .is_empty()
    );
}
