//! Instance configuration under SIGKILLs, 5xx answers and replies dropped after AWS acted:
//! each item is associated once, status knows every association, nothing is left behind.

use std::collections::BTreeMap;

use connect_sim::{ConfigPatch, FaultsPatch};
use serde_json::json;

use test_kit::connect::{manifest, status_str, wait_gone};
use test_kit::{DEADLINE, SimCall};

use super::configuration::{BOT, ORIGIN, configured_spec, recorded_storage};
use super::{Scenario, assert_steady, tally};

/// The configuration writes: the faults below apply to these only, so that the instance
/// comes up and the configuration is read as usual.
const CONFIGURATION_WRITES: [&str; 11] = [
    "AssociateInstanceStorageConfig",
    "UpdateInstanceStorageConfig",
    "DisassociateInstanceStorageConfig",
    "AssociateApprovedOrigin",
    "DisassociateApprovedOrigin",
    "AssociateLambdaFunction",
    "DisassociateLambdaFunction",
    "AssociateBot",
    "DisassociateBot",
    "AssociateSecurityKey",
    "DisassociateSecurityKey",
];

/// The items of [`configured_spec`]: five storage types, an origin, two functions, a bot
/// and a key.
const CONFIGURED_ITEMS: usize = 10;

/// An Associate call that took effect in AWS for the first time (not a replay of an earlier
/// answer for its ClientToken), whether or not its reply reached the operator.
fn new_association(call: &SimCall) -> bool {
    call.operation.starts_with("Associate") && call.applied() && !call.replay
}

#[tokio::test]
async fn configuration_under_crashes_and_faults_is_associated_once_and_leaves_nothing() {
    let mut s = Scenario::start(
        "configuration_under_crashes_and_faults_is_associated_once_and_leaves_nothing",
        &["--creation-delay", "1s"],
        &[("drift-interval", "5s")],
    )
    .await;
    // Every configuration write: 20 % answered 5xx, and of the rest 60 % acted on by AWS with
    // the reply dropped, so that the operator cannot tell whether it happened; each after
    // 200 ms, so that the SIGKILLs below land between associations.
    s.sim
        .set_config(&ConfigPatch {
            faults: Some(FaultsPatch {
                latency_ms: Some(200),
                server_error_ratio: Some(0.2),
                drop_connection_ratio: Some(0.6),
                operations: Some(CONFIGURATION_WRITES.map(str::to_owned).to_vec()),
                ..FaultsPatch::default()
            }),
            ..ConfigPatch::default()
        })
        .await;
    let name = "crashed";
    s.kubectl_apply(&manifest(name, configured_spec("crashed-e2e")))
        .await;

    // SIGKILL the operator each time a new association has just been made (before it could
    // record it), three times, and restart it.
    let mut kills = 0;
    let mut made = 0;
    while kills < 3 {
        let now = test_kit::wait_until("a new association", DEADLINE, || async {
            let n = s
                .sim
                .calls()
                .await
                .iter()
                .filter(|c| new_association(c))
                .count();
            if n > made {
                Ok(n)
            } else {
                Err(format!("{n} so far"))
            }
        })
        .await;
        if now >= CONFIGURED_ITEMS {
            break;
        }
        made = now;
        if s.operator.kill() {
            kills += 1;
        }
        s.operator.restart().await;
    }
    eprintln!("{kills} SIGKILLs, each right after a new association ({made} made by then)");
    assert!(
        kills >= 2,
        "too few kills landed mid-configuration: {kills}"
    );

    // Under these faults it converges all the same; then they stop.
    s.wait_ready(name).await;
    let calls = s.connect_calls().await;
    let faulted = |c: &&SimCall| CONFIGURATION_WRITES.contains(&c.operation.as_str());
    let dropped = calls.iter().filter(faulted).filter(|c| c.dropped).count();
    let server_errors = calls
        .iter()
        .filter(faulted)
        .filter(|c| c.status >= 500)
        .count();
    assert!(
        dropped > 0,
        "no reply was dropped after AWS acted: {:?}",
        tally(&calls)
    );
    s.sim
        .set_config(&ConfigPatch {
            faults: Some(FaultsPatch {
                latency_ms: Some(0),
                server_error_ratio: Some(0.0),
                drop_connection_ratio: Some(0.0),
                ..FaultsPatch::default()
            }),
            ..ConfigPatch::default()
        })
        .await;
    let object = s.wait_ready(name).await;
    let id = status_str(&object, "instanceId").expect("an instance id");
    assert_steady(&s, name, 2).await;

    // Exactly the spec, each item associated once: no association undone and made again,
    // none refused as already there.
    let calls = s.connect_calls().await;
    eprintln!(
        "configuration under faults: {dropped} dropped replies, {server_errors} 5xx, calls {:?}",
        tally(&calls)
    );
    let associations = calls.iter().filter(|c| new_association(c)).count();
    assert_eq!(associations, CONFIGURED_ITEMS, "{:?}", tally(&calls));
    let undone: Vec<_> = calls
        .iter()
        .filter(|c| c.operation.starts_with("Disassociate") && c.applied())
        .collect();
    assert!(undone.is_empty(), "{undone:?}");
    let conflicts: Vec<_> = calls
        .iter()
        .filter(|c| c.error_type.as_deref() == Some("ResourceConflictException"))
        .collect();
    assert!(conflicts.is_empty(), "{conflicts:?}");
    let instance = s.sim.instance(&id).await.expect("the instance");
    let mut types: Vec<&str> = instance
        .storage_configs
        .iter()
        .map(|c| c.resource_type.as_str())
        .collect();
    types.sort_unstable();
    assert_eq!(
        types,
        [
            "AGENT_EVENTS",
            "CALL_RECORDINGS",
            "CHAT_TRANSCRIPTS",
            "CONTACT_TRACE_RECORDS",
            "MEDIA_STREAMS"
        ]
    );
    assert_eq!(instance.approved_origins, [ORIGIN]);
    assert_eq!(instance.lambda_functions.len(), 2, "{instance:?}");
    assert_eq!(instance.lex_v2_bots, [BOT]);
    assert_eq!(instance.security_keys.len(), 1, "{instance:?}");
    // Status knows every association by AWS's id, also those made just before a SIGKILL.
    let recorded = recorded_storage(&object);
    let listed: BTreeMap<String, String> = instance
        .storage_configs
        .iter()
        .map(|c| {
            let id = c.storage_config["AssociationId"]
                .as_str()
                .unwrap_or_default();
            (c.resource_type.clone(), id.to_owned())
        })
        .collect();
    assert_eq!(recorded, listed);
    let key_id = instance.security_keys[0]["AssociationId"].clone();
    assert_eq!(
        object.data.pointer("/status/securityKeys"),
        Some(&json!([key_id]))
    );

    // Deleting: the instance goes, and its configuration with it.
    let before = s.connect_calls().await.len();
    let output = test_kit::kubectl(&["delete", "connectinstance", name, "-n", &s.namespace]).await;
    assert!(output.success, "{output:?}");
    wait_gone(&s.api, name, DEADLINE).await;
    assert!(s.sim.instances().await.is_empty(), "left behind");
    let calls = s.connect_calls().await;
    assert!(
        calls[before..]
            .iter()
            .all(|c| !c.operation.starts_with("Disassociate")),
        "{:?}",
        tally(&calls[before..])
    );
}
