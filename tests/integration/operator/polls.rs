//! Reads at the physical limit, end to end: creations in flight in one account and region
//! share one ListInstances listing per poll and are described only when their status
//! changes (or while the listing does not show them yet); deletions queued behind the
//! DeleteInstance limit make no AWS call while they wait and each is sent once, in turn.

use std::collections::BTreeMap;

use connect_operator::aws::token::delete_token;
use test_kit::connect::{basic_spec, manifest, status_str, uid, wait_gone};
use test_kit::{SimCall, kubectl_ok};

use super::{Scenario, count};

/// DescribeInstance calls per instance id among `calls`.
fn describes_per_instance(calls: &[&SimCall]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for call in calls {
        if call.operation == "DescribeInstance"
            && let Some(id) = &call.instance_id
        {
            *out.entry(id.clone()).or_default() += 1;
        }
    }
    out
}

/// Applies one basic object per name and waits until each is Ready: its instance id →
/// (name, uid).
async fn apply_ready(s: &Scenario, names: &[String]) -> BTreeMap<String, (String, String)> {
    for name in names {
        s.kubectl_apply(&manifest(name, basic_spec(&format!("{name}-e2e"))))
            .await;
    }
    let mut ids = BTreeMap::new();
    for name in names {
        let object = s.wait_ready(name).await;
        ids.insert(
            status_str(&object, "instanceId").expect("instanceId"),
            (name.clone(), uid(&object)),
        );
    }
    ids
}

#[tokio::test]
async fn creations_in_flight_share_one_listing_and_are_described_when_they_change() {
    const N: usize = 6;
    let s = Scenario::start(
        "creations_in_flight_share_one_listing_and_are_described_when_they_change",
        // Long enough for several polls while in progress; and a new instance is not
        // listed (nor described) at first, as AWS's reads may lag a create.
        &[
            "--creation-delay",
            "8s",
            "--visibility-delay",
            "1500ms",
            "--instance-quota",
            "10",
        ],
        &[("creation-poll-interval", "1s")],
    )
    .await;
    let names: Vec<String> = (0..N).map(|i| format!("shared-{i}")).collect();
    let ids = apply_ready(&s, &names).await;
    let calls = s.connect_calls().await;
    assert_eq!(count(&calls, "CreateInstance"), N, "one create each");
    let first_create = calls
        .iter()
        .find(|c| c.operation == "CreateInstance")
        .map(|c| c.seq)
        .expect("a create");
    let after: Vec<&SimCall> = calls.iter().filter(|c| c.seq > first_create).collect();
    let listings = after
        .iter()
        .filter(|c| c.operation == "ListInstances")
        .count();
    let describes = describes_per_instance(&after);
    eprintln!(
        "ListInstances after the first create: {listings}; DescribeInstance per instance: {describes:?}"
    );
    // About eight polls of 1 s while in progress: one DescribeInstance each per poll would
    // be eight per instance. The listing shows the status of all of them instead; an
    // instance is described while the listing does not show it yet (at most two polls of
    // the visibility delay, which also answers its DescribeInstance NotFound), once when it
    // turns ACTIVE, and again by the convergence right after.
    assert!(listings >= 4, "the polls list the account: {listings}");
    for (id, (name, _)) in &ids {
        let n = describes.get(id).copied().unwrap_or(0);
        assert!(
            n <= 5,
            "{name} ({id}) was described {n} times during its creation: {describes:?}"
        );
    }
    // The listing serves every object of the poll: far fewer listings than objects × polls.
    assert!(
        listings <= 3 * 10 + N,
        "each poll lists once for all objects: {listings}"
    );
    assert!(
        after.iter().all(|c| c.status != 429),
        "no throttling: {after:?}"
    );
}

#[tokio::test]
async fn deletions_waiting_for_their_slot_make_no_call_and_are_sent_once_in_turn() {
    const N: usize = 5;
    let s = Scenario::start(
        "deletions_waiting_for_their_slot_make_no_call_and_are_sent_once_in_turn",
        &[
            "--creation-delay",
            "300ms",
            "--deletion-delay",
            "300ms",
            "--rate-limit",
            "DeleteInstance=0.5/1",
            "--instance-quota",
            "10",
        ],
        &[
            ("create-delete-rate", "0.5"),
            ("creation-poll-interval", "1s"),
        ],
    )
    .await;
    let names: Vec<String> = (0..N).map(|i| format!("queued-{i}")).collect();
    let ids = apply_ready(&s, &names).await;
    let before = s
        .connect_calls()
        .await
        .last()
        .map(|c| c.seq)
        .unwrap_or_default();
    let mut args = vec![
        "delete",
        "-n",
        &s.namespace,
        "--wait=false",
        "connectinstance",
    ];
    args.extend(names.iter().map(String::as_str));
    kubectl_ok(&args).await;
    for name in &names {
        wait_gone(&s.api, name, test_kit::DEADLINE).await;
    }
    assert!(s.sim.instances().await.is_empty(), "nothing left in AWS");
    let calls = s.connect_calls().await;
    let window: Vec<&SimCall> = calls.iter().filter(|c| c.seq > before).collect();
    let deletes: Vec<&&SimCall> = window
        .iter()
        .filter(|c| c.operation == "DeleteInstance")
        .collect();
    assert_eq!(deletes.len(), N, "one DeleteInstance each: {deletes:?}");
    for call in &deletes {
        let id = call.instance_id.as_deref().unwrap_or_default();
        assert!(call.succeeded(), "{call:?}");
        assert_eq!(
            call.client_token.as_deref(),
            ids.get(id).map(|(_, u)| delete_token(u)).as_deref(),
            "the UID-derived token: {call:?}"
        );
    }
    let describes = describes_per_instance(&window);
    eprintln!(
        "deletion: {} calls for {N} objects; DescribeInstance per instance: {describes:?}",
        window.len()
    );
    // One look before the wait for the slot (all at once, the slots 2 s apart: up to 8 s
    // of waiting) and one after DeleteInstance was accepted that finds it gone; nothing in
    // between.
    for id in ids.keys() {
        let n = describes.get(id).copied().unwrap_or(0);
        assert!(
            n <= 2,
            "{id} was described {n} times while its deletion waited: {describes:?}"
        );
    }
    assert!(
        window.len() <= 3 * N,
        "at most three calls per deleted object: {} ({window:?})",
        window.len()
    );
    assert!(window.iter().all(|c| c.status != 429), "no throttling");
}

#[tokio::test]
async fn objects_applied_together_look_for_their_instance_in_one_listing() {
    const N: usize = 6;
    let s = Scenario::start(
        "objects_applied_together_look_for_their_instance_in_one_listing",
        &["--creation-delay", "1s", "--instance-quota", "10"],
        // No poll lists the account before the creates: only the lookups do.
        &[("creation-poll-interval", "5s")],
    )
    .await;
    let names: Vec<String> = (0..N).map(|i| format!("together-{i}")).collect();
    // One apply, as a GitOps sync or a new environment brings them.
    let items: Vec<_> = names
        .iter()
        .map(|name| manifest(name, basic_spec(&format!("{name}-e2e"))))
        .collect();
    s.kubectl_apply(&serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}))
        .await;
    for name in &names {
        s.wait_ready(name).await;
    }
    let calls = s.connect_calls().await;
    assert_eq!(count(&calls, "CreateInstance"), N, "one create each");
    let last_create = calls
        .iter()
        .rfind(|c| c.operation == "CreateInstance")
        .map(|c| c.seq)
        .expect("a create");
    let lookups = calls
        .iter()
        .filter(|c| c.seq < last_create && c.operation == "ListInstances")
        .count();
    eprintln!("ListInstances before the last of {N} creates: {lookups}");
    // Each object looks for an instance of its own before it creates one; none has ever
    // sent a create, so they share one listing a few seconds old instead of one each.
    assert!(
        lookups <= 2,
        "the objects' lookups share a listing: {lookups} ListInstances for {N} objects"
    );
    assert!(calls.iter().all(|c| c.status != 429), "no throttling");
}

#[tokio::test]
async fn an_active_instance_s_attributes_are_read_with_the_fewest_calls() {
    let s = Scenario::start(
        "an_active_instance_s_attributes_are_read_with_the_fewest_calls",
        &["--creation-delay", "1s", "--instance-quota", "10"],
        &[],
    )
    .await;
    // Managed attributes beyond inbound and outbound calls, against the two pages of a
    // ListInstanceAttributes listing of AWS's thirteen types.
    let mut calls_only = basic_spec("calls-only-e2e");
    calls_only
        .as_object_mut()
        .expect("a spec")
        .remove("attributes");
    let mut one = basic_spec("one-e2e");
    one["attributes"] = serde_json::json!({ "earlyMedia": true });
    let mut three = basic_spec("three-e2e");
    three["attributes"] =
        serde_json::json!({ "contactflowLogs": true, "contactLens": false, "earlyMedia": true });
    let specs = [
        ("calls-only", calls_only),
        ("one", one),
        ("three", three),
        ("tied-a", basic_spec("tied-a-e2e")),
        ("tied-b", basic_spec("tied-b-e2e")),
    ];
    let mut ids = BTreeMap::new();
    for (name, spec) in specs {
        s.kubectl_apply(&manifest(name, spec)).await;
        let object = s.wait_ready(name).await;
        ids.insert(name, status_str(&object, "instanceId").expect("instanceId"));
    }
    let calls = s.connect_calls().await;
    let reads = |name: &str, operation: &str| {
        calls
            .iter()
            .filter(|c| c.operation == operation && c.instance_id.as_ref() == Some(&ids[name]))
            .count()
    };
    let table: Vec<_> = ids
        .keys()
        .map(|name| {
            (
                *name,
                reads(name, "DescribeInstanceAttribute"),
                reads(name, "ListInstanceAttributes"),
            )
        })
        .collect();
    eprintln!("(object, DescribeInstanceAttribute, ListInstanceAttributes): {table:?}");
    // Inbound and outbound calls are in DescribeInstance: no attribute read at all.
    assert_eq!(
        reads("calls-only", "DescribeInstanceAttribute"),
        0,
        "{table:?}"
    );
    assert_eq!(
        reads("calls-only", "ListInstanceAttributes"),
        0,
        "{table:?}"
    );
    // One managed attribute: one DescribeInstanceAttribute per look, never a listing.
    assert!(reads("one", "DescribeInstanceAttribute") >= 1, "{table:?}");
    assert_eq!(reads("one", "ListInstanceAttributes"), 0, "{table:?}");
    // More than the listing's pages: listed.
    assert!(reads("three", "ListInstanceAttributes") >= 2, "{table:?}");
    assert_eq!(reads("three", "DescribeInstanceAttribute"), 0, "{table:?}");
    // As many as the pages: the tied reads alternate between the two operations.
    let tied = |operation| reads("tied-a", operation) + reads("tied-b", operation);
    assert!(
        tied("DescribeInstanceAttribute") >= 2 && tied("ListInstanceAttributes") >= 2,
        "{table:?}"
    );
    // Read right, then written: each object converged to its spec (AWS's default is false).
    for name in ["one", "three"] {
        let instance = s.sim.instance(&ids[name]).await.expect("instance");
        assert_eq!(
            instance.attributes.get("EARLY_MEDIA").map(String::as_str),
            Some("true"),
            "{name}"
        );
    }
    assert!(calls.iter().all(|c| c.status != 429), "no throttling");
}
