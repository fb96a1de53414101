//! Injected faults: server errors hit only the listed operations; a dropped connection gives
//! no response although the create happened; latency delays only the listed operations; an
//! alias matching the failure pattern ends CREATION_FAILED with a reason.

use std::time::{Duration, Instant};

use aws_sdk_connect::config::http::HttpResponse;
use aws_sdk_connect::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_connect::operation::create_instance::CreateInstanceError;
use aws_sdk_connect::types::InstanceStatus;
use connect_sim::SimConfig;
use serde_json::{Value, json};

use super::{
    TestResult, calls, calls_of, control_get, create, create_err, fast_config, http_status,
    lifecycle_attempts, put_config, sdk, start, status_of, wait_for_status,
};

#[tokio::test]
async fn injected_server_errors_hit_only_the_listed_operations() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    put_config(
        &sim,
        json!({ "faults": { "serverErrorRatio": 1.0, "operations": ["CreateInstance"] } }),
    )
    .await?;

    let err = create_err(&client, "faulty").await?;
    assert_eq!(err.code(), Some("InternalServiceException"));
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_internal_service_exception())
    );
    assert_eq!(http_status(&err), Some(500));
    assert_eq!(
        control_get(&sim, "/_sim/state").await?["instanceCount"],
        0,
        "a 5xx has no effect"
    );
    client.list_instances().send().await?;

    put_config(&sim, json!({ "faults": { "serverErrorRatio": 0.0, "accessDeniedRatio": 1.0, "operations": [] } })).await?;
    let err = client
        .list_instances()
        .send()
        .await
        .err()
        .ok_or("access denial not injected")?;
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert_eq!(http_status(&err), Some(403));

    put_config(&sim, json!({ "faults": { "accessDeniedRatio": 0.0 } })).await?;
    create(&client, "faulty", None).await?;
    let recorded = calls(&sim).await?;
    let outcomes: Vec<(&str, u64)> = recorded
        .iter()
        .map(|c| {
            (
                c["operation"].as_str().unwrap_or_default(),
                c["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("CreateInstance", 500),
            ("ListInstances", 200),
            ("ListInstances", 403),
            ("CreateInstance", 200)
        ]
    );
    assert_eq!(recorded[0]["errorType"], "InternalServiceException");
    Ok(())
}

#[tokio::test]
async fn dropped_connection_gives_no_response_but_the_create_happened() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    put_config(
        &sim,
        json!({ "faults": { "dropConnectionRatio": 1.0, "operations": ["CreateInstance"] } }),
    )
    .await?;

    let lost = create(&client, "lost-reply", Some("lost-token")).await;
    let err = lost
        .err()
        .ok_or("a dropped connection produced a response")?;
    let sdk_err = err
        .downcast_ref::<SdkError<CreateInstanceError, HttpResponse>>()
        .ok_or("not an SDK error")?;
    assert!(
        sdk_err.raw_response().is_none(),
        "no HTTP response at all: {sdk_err:?}"
    );
    assert!(
        matches!(
            sdk_err,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "{sdk_err:?}"
    );
    assert_eq!(
        control_get(&sim, "/_sim/state").await?["instanceCount"],
        1,
        "the call was applied"
    );

    put_config(&sim, json!({ "faults": { "dropConnectionRatio": 0.0 } })).await?;
    let (id, _) = create(&client, "lost-reply", Some("lost-token")).await?;
    assert_eq!(
        control_get(&sim, "/_sim/state").await?["instanceCount"],
        1,
        "the retry found it"
    );
    assert_eq!(lifecycle_attempts(&sim).await?, 1);

    let creates = calls_of(&sim, "CreateInstance").await?;
    assert_eq!(creates.len(), 2);
    // The log keeps what the operation did; `dropped` says the client never saw it.
    assert_eq!(creates[0]["status"], 200);
    assert_eq!(creates[0]["errorType"], serde_json::Value::Null);
    assert_eq!(creates[0]["dropped"], true);
    assert_eq!(creates[0]["instanceId"], id.as_str());
    assert_eq!(creates[1]["replay"], true);
    assert_eq!(creates[1]["dropped"], false);
    Ok(())
}

#[tokio::test]
async fn latency_fault_delays_only_the_listed_operations() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    let (id, _) = create(&client, "slow", None).await?;
    put_config(
        &sim,
        json!({ "faults": { "latencyMs": 1000, "operations": ["ListInstances"] } }),
    )
    .await?;

    let started = Instant::now();
    client.list_instances().send().await?;
    let slow = started.elapsed();
    client.describe_instance().instance_id(&id).send().await?;
    // A lower bound on the clock cannot flake; which call was delayed is the call log's.
    assert!(
        slow >= Duration::from_millis(1000),
        "ListInstances took {slow:?}"
    );
    let delays: Vec<(Value, Value)> = calls(&sim)
        .await?
        .iter()
        .filter(|c| c["operation"] != "CreateInstance")
        .map(|c| (c["operation"].clone(), c["injectedLatencyMs"].clone()))
        .collect();
    assert_eq!(
        delays,
        vec![
            (json!("ListInstances"), json!(1000)),
            (json!("DescribeInstance"), json!(0)),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn alias_matching_failure_pattern_ends_creation_failed_with_reason() -> TestResult {
    let sim = start(SimConfig {
        fail_creation_alias_pattern: Some("^doomed-".into()),
        ..fast_config()
    })
    .await?;
    let client = sdk(&sim);
    let (failing, _) = create(&client, "doomed-1", None).await?;
    let (fine, _) = create(&client, "fine-1", None).await?;
    assert_eq!(
        status_of(&client, &failing).await?,
        InstanceStatus::CreationInProgress
    );
    wait_for_status(&client, &failing, InstanceStatus::CreationFailed).await?;
    wait_for_status(&client, &fine, InstanceStatus::Active).await?;

    let out = client
        .describe_instance()
        .instance_id(&failing)
        .send()
        .await?;
    let reason = out
        .instance()
        .and_then(|i| i.status_reason())
        .and_then(|r| r.message())
        .ok_or("CREATION_FAILED without StatusReason.Message")?;
    assert!(reason.contains("doomed-1"), "{reason}");
    // A failed instance still exists: it holds its alias and counts against the quota.
    assert_eq!(control_get(&sim, "/_sim/state").await?["instanceCount"], 2);
    let instances = control_get(&sim, "/_sim/instances").await?;
    assert_eq!(instances[0]["status"], "CREATION_FAILED");
    assert_eq!(instances[0]["statusReason"], reason);

    put_config(&sim, json!({ "failCreationAliasPattern": null })).await?;
    let (later, _) = create(&client, "doomed-2", None).await?;
    wait_for_status(&client, &later, InstanceStatus::Active).await?;
    Ok(())
}
