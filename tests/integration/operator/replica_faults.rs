//! A replica under what can go wrong: the operator SIGKILLed while a replication is in
//! progress and while a replica is being deleted, both answers AWS may give to deleting a
//! source that still has a replica (refuse, or delete the replica with it), a replica
//! deletion that takes long, and a replication that AWS ends INSTANCE_REPLICATION_FAILED.
//! In every case: one replication that took effect per object, the replica deleted before
//! its source, no finalizer left behind, nothing left in either region, and the ledger of
//! each region equal to the simulator's count.

use std::collections::BTreeMap;

use test_kit::connect::{condition, create, manifest, status_str, wait_gone};
use test_kit::{DEADLINE, SimCall};

use super::Scenario;
use super::ledger::{ACCOUNT_ID, apply_account, ledger_counting_in};
use super::replica::{REPLICA, SOURCE, ok_calls, replicated_spec};

/// The instance id a call acted on (the request may name it by its ARN).
fn instance_of(call: &SimCall) -> String {
    let raw = call.instance_id.as_deref().unwrap_or_default();
    raw.rsplit('/').next().unwrap_or(raw).to_owned()
}

/// The calls of `operation` that took effect (applied and not a replay), by instance id.
fn effective_by_instance<'a>(
    calls: &'a [SimCall],
    operation: &str,
) -> BTreeMap<String, Vec<&'a SimCall>> {
    let mut by_instance: BTreeMap<String, Vec<&SimCall>> = BTreeMap::new();
    for call in calls
        .iter()
        .filter(|c| c.operation == operation && c.applied() && !c.replay)
    {
        by_instance.entry(instance_of(call)).or_default().push(call);
    }
    by_instance
}

/// Nothing left in either region, and the ledger of each region is the simulator's count.
async fn assert_nothing_left_and_ledgers_true(s: &Scenario, account: &str, attempts: u64) {
    for region in [SOURCE, REPLICA] {
        let left = s.sim.instances_in_region(ACCOUNT_ID, region).await;
        assert!(left.is_empty(), "{region}: instances left behind: {left:?}");
        let (counting, entries) = ledger_counting_in(&s.client, account, region).await;
        let simulated = s.sim.state_of(ACCOUNT_ID, region).await.lifecycle_attempts;
        assert_eq!(
            counting as u64, simulated,
            "{region}: the ledger and the simulator disagree: {entries:?}"
        );
        assert_eq!(simulated, attempts, "{region}: lifecycle attempts");
    }
}

/// Per instance, the replica's DeleteInstance took effect before the source's, and the
/// source's was never refused for a replica still there.
fn assert_replica_deleted_first(calls: &[SimCall], instances: usize) {
    let deletes = effective_by_instance(calls, "DeleteInstance");
    assert_eq!(deletes.len(), instances, "{deletes:?}");
    for (id, deletes) in &deletes {
        let regions: Vec<&str> = deletes.iter().map(|c| c.region.as_str()).collect();
        assert_eq!(regions, [REPLICA, SOURCE], "{id}: deletion order");
    }
    let refused: Vec<&SimCall> = calls
        .iter()
        .filter(|c| c.operation == "DeleteInstance" && c.region == SOURCE && !c.applied())
        .collect();
    assert!(
        refused.is_empty(),
        "the source was deleted while its replica was still there: {refused:?}"
    );
}

#[tokio::test]
async fn sigkills_during_replication_and_replica_deletion_replicate_once_and_leave_nothing() {
    let mut s = Scenario::start(
        "sigkills_during_replication_and_replica_deletion_replicate_once_and_leave_nothing",
        &[
            "--creation-delay",
            "300ms",
            "--deletion-delay",
            "300ms",
            // Long enough that the kill lands while the replication is IN_PROGRESS and
            // while the replica is INSTANCE_REPLICA_DELETING.
            "--replication-delay",
            "4s",
            "--replica-deletion-delay",
            "3s",
        ],
        &[],
    )
    .await;
    let account = "crashes";
    apply_account(&s, account, 10).await;
    let names = ["east-a", "east-b"];
    for name in names {
        create(
            &s.api,
            &manifest(name, replicated_spec(&format!("gr-{name}"), account)),
        )
        .await
        .expect("create");
    }

    // SIGKILL the moment the first ReplicateInstance was answered.
    s.wait_calls(0, 1, "a ReplicateInstance answer", |c| {
        c.operation == "ReplicateInstance" && c.succeeded()
    })
    .await;
    s.operator.kill();
    for name in names {
        let object = s.get(name).await;
        eprintln!(
            "{name} at the first SIGKILL: replica {:?}",
            object.data.pointer("/status/replica")
        );
    }
    s.operator.restart().await;
    for name in names {
        let ready = s.wait_ready(name).await;
        assert_eq!(
            status_str(&ready, "replica/status").as_deref(),
            Some("INSTANCE_REPLICATION_COMPLETE")
        );
    }
    let calls = s.connect_calls().await;
    let replications = effective_by_instance(&calls, "ReplicateInstance");
    assert_eq!(replications.len(), names.len(), "{replications:?}");
    for (id, calls) in &replications {
        assert_eq!(
            calls.len(),
            1,
            "{id}: replications that took effect: {calls:?}"
        );
    }
    // Every ReplicateInstance of one instance carried that instance's one token.
    let mut tokens: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for call in calls.iter().filter(|c| c.operation == "ReplicateInstance") {
        tokens
            .entry(instance_of(call))
            .or_default()
            .push(call.client_token.clone());
    }
    for (id, tokens) in &tokens {
        assert!(
            tokens.iter().all(|t| t.is_some() && *t == tokens[0]),
            "{id}: {tokens:?}"
        );
    }
    assert_eq!(
        s.sim.instances_in_region(ACCOUNT_ID, REPLICA).await.len(),
        names.len()
    );

    // Delete both; SIGKILL the moment a replica's DeleteInstance was answered.
    let from = s.connect_calls().await.len();
    for name in names {
        s.api
            .delete(name, &Default::default())
            .await
            .expect("delete");
    }
    s.wait_calls(from, 1, "a replica's DeleteInstance answer", |c| {
        c.operation == "DeleteInstance" && c.region == REPLICA && c.succeeded()
    })
    .await;
    s.operator.kill();
    s.operator.restart().await;
    for name in names {
        wait_gone(&s.api, name, DEADLINE).await;
    }
    assert_replica_deleted_first(&s.connect_calls().await, names.len());
    // Per region: two creations (or replications) and two deletions.
    assert_nothing_left_and_ledgers_true(&s, account, 4).await;
}

/// Deleting the object waits until the replica is gone before deleting the source, under
/// the given answer of AWS to deleting a source that still has a replica, with a replica
/// deletion slow enough for a premature source deletion to show.
async fn deletion_waits_for_the_slow_replica_deletion(test: &str, source_delete: &str) {
    // Longer than two of the operator's 5 s looks at a replica being deleted.
    const REPLICA_DELETION_MS: u64 = 12_000;
    let s = Scenario::start(
        test,
        &[
            "--creation-delay",
            "300ms",
            "--deletion-delay",
            "300ms",
            "--replication-delay",
            "500ms",
            "--replica-deletion-delay",
            "12s",
            "--source-delete-with-replica",
            source_delete,
        ],
        &[],
    )
    .await;
    // ConnectAccounts are cluster-wide: one per answer, as the two tests run at once.
    let account = format!("slow-replica-deletion-{source_delete}");
    let account = account.as_str();
    apply_account(&s, account, 10).await;
    create(&s.api, &manifest("gr", replicated_spec("gr-slow", account)))
        .await
        .expect("create");
    s.wait_ready("gr").await;
    s.api
        .delete("gr", &Default::default())
        .await
        .expect("delete");
    s.wait_for("gr", "the replica being deleted, shown", |o| {
        o.data
            .pointer("/status/replica/deleteRequestedTime")
            .is_some()
    })
    .await;
    wait_gone(&s.api, "gr", DEADLINE).await;

    let calls = s.connect_calls().await;
    assert_replica_deleted_first(&calls, 1);
    let deletes = ok_calls(&calls, "DeleteInstance");
    let (replica, source) = (deletes[0], deletes[1]);
    assert!(
        source.elapsed_ms >= replica.elapsed_ms + REPLICA_DELETION_MS,
        "the source was deleted {} ms after its replica, before the replica was gone",
        source.elapsed_ms - replica.elapsed_ms
    );
    assert_nothing_left_and_ledgers_true(&s, account, 2).await;
}

#[tokio::test]
async fn a_source_that_aws_would_delete_with_its_replica_still_waits_for_the_replica() {
    deletion_waits_for_the_slow_replica_deletion(
        "a_source_that_aws_would_delete_with_its_replica_still_waits_for_the_replica",
        "cascade",
    )
    .await;
}

#[tokio::test]
async fn a_source_that_aws_refuses_to_delete_with_its_replica_is_deleted_after_it() {
    deletion_waits_for_the_slow_replica_deletion(
        "a_source_that_aws_refuses_to_delete_with_its_replica_is_deleted_after_it",
        "refuse",
    )
    .await;
}

#[tokio::test]
async fn a_replication_that_aws_fails_is_stalled_sent_once_and_deleted_with_the_object() {
    let s = Scenario::start(
        "a_replication_that_aws_fails_is_stalled_sent_once_and_deleted_with_the_object",
        &[
            "--creation-delay",
            "300ms",
            "--deletion-delay",
            "300ms",
            "--replication-delay",
            "1s",
            "--replica-deletion-delay",
            "500ms",
            "--fail-replication-alias-pattern",
            "^gr-doomed-west$",
        ],
        &[],
    )
    .await;
    let account = "failed-replication";
    apply_account(&s, account, 10).await;
    create(
        &s.api,
        &manifest("doomed", replicated_spec("gr-doomed", account)),
    )
    .await
    .expect("create");
    let stalled = s
        .wait_for("doomed", "Stalled ReplicationFailed", |o| {
            condition(o, "Stalled").is_some_and(|c| c.reason == "ReplicationFailed")
        })
        .await;
    let message = condition(&stalled, "Stalled").expect("Stalled").message;
    assert!(
        message.contains("failReplicationAliasPattern"),
        "AWS's reason is not shown: {message}"
    );
    assert_eq!(
        status_str(&stalled, "replica/status").as_deref(),
        Some("INSTANCE_REPLICATION_FAILED")
    );
    // Several reconciles later, still the one replication.
    for n in 0..3 {
        s.merge_patch(
            "doomed",
            serde_json::json!({ "metadata": { "annotations": { "e2e/poke": n.to_string() } } }),
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let calls = s.connect_calls().await;
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.operation == "ReplicateInstance")
            .count(),
        1,
        "{calls:?}"
    );

    s.api
        .delete("doomed", &Default::default())
        .await
        .expect("delete");
    wait_gone(&s.api, "doomed", DEADLINE).await;
    assert_replica_deleted_first(&s.connect_calls().await, 1);
    assert_nothing_left_and_ledgers_true(&s, account, 2).await;
}
