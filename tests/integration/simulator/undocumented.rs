//! Knobs for behaviour AWS does not document (all off by default), driven with the real SDK:
//! eventual consistency after CreateInstance (`visibilityDelayMs`), DeleteInstance refused
//! while creating (`refuseDeleteWhileCreating`), CREATION_FAILED instances cleaned up by AWS
//! (`failedInstanceRetentionMs`), attribute types newer than the SDK
//! (`extraAttributeTypes`), and the call log keeping the real outcome of a dropped reply.
//! The same knobs as `connect-sim` flags, read back through the test kit's typed client.

use std::time::{Duration, Instant};

use aws_sdk_connect::error::ProvideErrorMetadata;
use aws_sdk_connect::types::{InstanceAttributeType, InstanceStatus};
use connect_sim::{ConfigPatch, FaultsPatch, SimConfig};
use serde_json::{Value, json};
use test_kit::simulator::SimClient;

use super::{
    TestResult, calls_of, control_get, create, fast_config, http_status, lifecycle_attempts,
    put_config, sdk, start, status_of, wait_for_status,
};

/// The ids ListInstances returns, all pages.
async fn listed_ids(
    client: &aws_sdk_connect::Client,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let summaries: Vec<_> = client
        .list_instances()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await?;
    Ok(summaries
        .iter()
        .filter_map(|s| s.id().map(str::to_owned))
        .collect())
}

#[tokio::test]
async fn visibility_delay_hides_a_new_instance_from_lookups_and_listings() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    put_config(&sim, json!({ "visibilityDelayMs": 1500 })).await?;
    let started = Instant::now();
    let (id, arn) = create(&client, "not-yet", Some("late-token")).await?;

    let err = client
        .describe_instance()
        .instance_id(&id)
        .send()
        .await
        .err()
        .ok_or("DescribeInstance saw the instance during the visibility delay")?;
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{err:?}"
    );
    assert_eq!(http_status(&err), Some(404));
    assert!(!listed_ids(&client).await?.contains(&id));
    let tags = client
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await;
    assert_eq!(
        tags.err()
            .and_then(|e| e.code().map(str::to_owned))
            .as_deref(),
        Some("ResourceNotFoundException"),
        "unknown by ARN too"
    );
    let delete = client
        .delete_instance()
        .instance_id(&id)
        .client_token("early-delete")
        .send()
        .await;
    assert_eq!(
        delete
            .err()
            .and_then(|e| e.code().map(str::to_owned))
            .as_deref(),
        Some("ResourceNotFoundException")
    );
    assert_eq!(
        lifecycle_attempts(&sim).await?,
        1,
        "a delete of an invisible instance is no attempt"
    );

    // A replay of the create answers with the instance although nobody can see it yet.
    let (again, _) = create(&client, "not-yet", Some("late-token")).await?;
    assert_eq!(again, id);
    let creates = calls_of(&sim, "CreateInstance").await?;
    assert_eq!(creates[1]["replay"], true);
    // It exists: the simulator's own view shows it, hidden.
    let instances = control_get(&sim, "/_sim/instances").await?;
    assert_eq!(instances[0]["id"], id.as_str());
    assert_eq!(instances[0]["visible"], false);

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match status_of(&client, &id).await {
            Ok(status) => break status,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => return Err(format!("never became visible: {error}").into()),
        }
    };
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "visible after {:?}",
        started.elapsed()
    );
    // The creation delay (300 ms) ran while it was invisible.
    assert_eq!(status, InstanceStatus::Active);
    assert!(listed_ids(&client).await?.contains(&id));
    assert_eq!(
        control_get(&sim, "/_sim/instances").await?[0]["visible"],
        true
    );
    Ok(())
}

#[tokio::test]
async fn refuse_delete_while_creating_answers_invalid_request_and_counts_no_attempt() -> TestResult
{
    let sim = start(SimConfig {
        creation_delay: Duration::from_millis(800),
        refuse_delete_while_creating: true,
        ..fast_config()
    })
    .await?;
    let client = sdk(&sim);
    let (id, _) = create(&client, "too-early", None).await?;
    let err = client
        .delete_instance()
        .instance_id(&id)
        .client_token("delete-early")
        .send()
        .await
        .err()
        .ok_or("DeleteInstance of a CREATION_IN_PROGRESS instance was accepted")?;
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_request_exception()),
        "{err:?}"
    );
    assert_eq!(http_status(&err), Some(400));
    let message = err.message().unwrap_or_default();
    assert!(message.contains("still being created"), "{message}");
    assert_eq!(
        lifecycle_attempts(&sim).await?,
        1,
        "only the create counted"
    );
    assert_eq!(
        status_of(&client, &id).await?,
        InstanceStatus::CreationInProgress
    );

    // Once ACTIVE, the same token deletes it: the refusal did not use it up.
    wait_for_status(&client, &id, InstanceStatus::Active).await?;
    client
        .delete_instance()
        .instance_id(&id)
        .client_token("delete-early")
        .send()
        .await?;
    assert_eq!(lifecycle_attempts(&sim).await?, 2);
    let deletes = calls_of(&sim, "DeleteInstance").await?;
    let outcomes: Vec<(&Value, &Value, &Value)> = deletes
        .iter()
        .map(|c| (&c["status"], &c["errorType"], &c["replay"]))
        .collect();
    assert_eq!(
        outcomes,
        [
            (
                &json!(400),
                &json!("InvalidRequestException"),
                &json!(false)
            ),
            (&json!(200), &Value::Null, &json!(false)),
        ]
    );

    // Off (the default): a delete while creating is accepted.
    put_config(&sim, json!({ "refuseDeleteWhileCreating": false })).await?;
    let (other, _) = create(&client, "deleted-early", None).await?;
    client.delete_instance().instance_id(&other).send().await?;
    Ok(())
}

#[tokio::test]
async fn failed_instance_retention_makes_a_failed_instance_vanish_after_it_failed() -> TestResult {
    let sim = start(SimConfig {
        fail_creation_alias_pattern: Some("^doomed-".into()),
        ..fast_config()
    })
    .await?;
    let client = sdk(&sim);
    put_config(&sim, json!({ "failedInstanceRetentionMs": 1000 })).await?;
    let (failing, _) = create(&client, "doomed-1", None).await?;
    wait_for_status(&client, &failing, InstanceStatus::CreationFailed).await?;
    let failed_seen = Instant::now();

    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        match client
            .describe_instance()
            .instance_id(&failing)
            .send()
            .await
        {
            Err(error) => break error,
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(_) => return Err("the failed instance never vanished".into()),
        }
    };
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{err:?}"
    );
    // It failed at most 50 ms before it was seen failed, and stayed about a second.
    assert!(
        failed_seen.elapsed() >= Duration::from_millis(900),
        "vanished {:?} after it was seen failed",
        failed_seen.elapsed()
    );
    assert!(!listed_ids(&client).await?.contains(&failing));
    let state = control_get(&sim, "/_sim/state").await?;
    assert_eq!(state["instanceCount"], 0, "its quota slot is free");
    assert_eq!(
        state["lifecycleAttempts"], 1,
        "AWS's clean-up is no attempt"
    );
    // Its alias is free again.
    put_config(&sim, json!({ "failCreationAliasPattern": null })).await?;
    let (again, _) = create(&client, "doomed-1", None).await?;
    wait_for_status(&client, &again, InstanceStatus::Active).await?;

    // `null` keeps failed instances forever (the default).
    put_config(
        &sim,
        json!({ "failedInstanceRetentionMs": null, "failCreationAliasPattern": "^doomed-" }),
    )
    .await?;
    assert_eq!(
        control_get(&sim, "/_sim/config").await?["failedInstanceRetentionMs"],
        Value::Null
    );
    let (kept, _) = create(&client, "doomed-2", None).await?;
    wait_for_status(&client, &kept, InstanceStatus::CreationFailed).await?;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        status_of(&client, &kept).await?,
        InstanceStatus::CreationFailed
    );
    Ok(())
}

#[tokio::test]
async fn extra_attribute_types_parse_as_unknown_variants_in_the_sdk() -> TestResult {
    let sim = start(SimConfig {
        extra_attribute_types: vec!["FUTURE_FEATURE_X".into(), "FUTURE_FEATURE_Y".into()],
        ..fast_config()
    })
    .await?;
    let client = sdk(&sim);
    let (id, _) = create(&client, "newer-than-sdk", None).await?;
    let attributes: Vec<_> = client
        .list_instance_attributes()
        .instance_id(&id)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await?;
    assert_eq!(attributes.len(), 16, "{attributes:?}");
    let known = InstanceAttributeType::values();
    let unknown: Vec<(&InstanceAttributeType, Option<&str>)> = attributes
        .iter()
        .filter_map(|a| a.attribute_type().map(|t| (t, a.value())))
        .filter(|(t, _)| !known.contains(&t.as_str()))
        .collect();
    assert_eq!(unknown.len(), 2, "{unknown:?}");
    for ((kind, value), name) in unknown.iter().zip(["FUTURE_FEATURE_X", "FUTURE_FEATURE_Y"]) {
        // The SDK keeps the raw name in its `Unknown` variant.
        assert_eq!(kind.as_str(), name);
        assert_eq!(**kind, InstanceAttributeType::from(name));
        assert!(format!("{kind:?}").starts_with("Unknown"), "{kind:?}");
        assert_eq!(*value, Some("false"));
    }
    // The known ones are still all there and parsed as their variants.
    let parsed_known = attributes
        .iter()
        .filter(|a| {
            a.attribute_type().is_some_and(|t| {
                known.contains(&t.as_str()) && !format!("{t:?}").starts_with("Unknown")
            })
        })
        .count();
    assert_eq!(parsed_known, known.len());

    let out = client
        .describe_instance_attribute()
        .instance_id(&id)
        .attribute_type(InstanceAttributeType::from("FUTURE_FEATURE_X"))
        .send()
        .await?;
    assert_eq!(out.attribute().and_then(|a| a.value()), Some("false"));

    // Switched off at run time: the SDK's 14 again.
    put_config(&sim, json!({ "extraAttributeTypes": [] })).await?;
    let attributes: Vec<_> = client
        .list_instance_attributes()
        .instance_id(&id)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await?;
    assert_eq!(attributes.len(), known.len());
    Ok(())
}

#[tokio::test]
async fn a_dropped_reply_is_logged_with_the_outcome_the_operation_produced() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    let typed = SimClient::new(&sim.url());
    typed
        .set_config(&ConfigPatch {
            faults: Some(FaultsPatch {
                drop_connection_ratio: Some(1.0),
                operations: Some(vec!["CreateInstance".into(), "DescribeInstance".into()]),
                ..FaultsPatch::default()
            }),
            ..ConfigPatch::default()
        })
        .await;
    assert!(create(&client, "lost", Some("lost-create")).await.is_err());
    let missing = "00000000-0000-4000-8000-000000000000";
    assert!(
        client
            .describe_instance()
            .instance_id(missing)
            .send()
            .await
            .is_err()
    );
    client.list_instances().send().await?;

    let calls = typed.calls().await;
    let summary: Vec<(&str, u16, Option<&str>, bool)> = calls
        .iter()
        .map(|c| {
            (
                c.operation.as_str(),
                c.status,
                c.error_type.as_deref(),
                c.dropped,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("CreateInstance", 200, None, true),
            (
                "DescribeInstance",
                404,
                Some("ResourceNotFoundException"),
                true
            ),
            ("ListInstances", 200, None, false),
        ]
    );
    let created = &calls[0];
    assert!(created.applied() && !created.succeeded(), "{created:?}");
    assert!(
        created.instance_id.is_some(),
        "the created instance is named"
    );
    assert!(calls[2].succeeded());
    assert_eq!(
        typed.state().await.instance_count,
        1,
        "the create took effect"
    );
    Ok(())
}

#[tokio::test]
async fn connect_sim_binary_takes_the_undocumented_behaviour_flags() -> TestResult {
    let defaults_dir = test_kit::simulator::log_dir("sim-undocumented-flags-off");
    let off = test_kit::Simulator::start(&defaults_dir, &[])
        .config()
        .await;
    assert_eq!(
        (
            off.visibility_delay_ms,
            off.refuse_delete_while_creating,
            off.failed_instance_retention_ms,
            off.extra_attribute_types.len()
        ),
        (0, false, None, 0),
        "all off by default"
    );

    let log_dir = test_kit::simulator::log_dir("sim-undocumented-flags");
    let sim = test_kit::Simulator::start(
        &log_dir,
        &[
            "--visibility-delay",
            "2s",
            "--refuse-delete-while-creating",
            "--failed-instance-retention",
            "24h",
            "--extra-attribute-type",
            "FUTURE_ONE",
            "--extra-attribute-type",
            "FUTURE_TWO",
        ],
    );
    let config = sim.config().await;
    assert_eq!(config.visibility_delay_ms, 2000);
    assert!(config.refuse_delete_while_creating);
    assert_eq!(config.failed_instance_retention_ms, Some(86_400_000));
    assert_eq!(config.extra_attribute_types, ["FUTURE_ONE", "FUTURE_TWO"]);

    // A bad name is refused before the simulator announces an address.
    let refused = std::process::Command::new(test_kit::paths::simulator_binary())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--extra-attribute-type",
            "lower_case",
        ])
        .output()?;
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(refused.stdout.is_empty(), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("extraAttributeTypes"),
        "{refused:?}"
    );

    // The typed patch the test kit sends: `Some(None)` is JSON null, back to forever.
    let config = sim
        .set_config(&ConfigPatch {
            visibility_delay_ms: Some(0),
            refuse_delete_while_creating: Some(false),
            failed_instance_retention_ms: Some(None),
            extra_attribute_types: Some(vec![]),
            ..ConfigPatch::default()
        })
        .await;
    assert_eq!(
        (
            config.visibility_delay_ms,
            config.refuse_delete_while_creating,
            config.failed_instance_retention_ms,
            config.extra_attribute_types.len()
        ),
        (0, false, None, 0)
    );
    Ok(())
}
