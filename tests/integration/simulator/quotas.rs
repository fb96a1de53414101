//! Connect's limits: the instance quota rejects CreateInstance with
//! ServiceQuotaExceededException; the lifecycle attempt limit rejects CreateInstance and
//! DeleteInstance with AWS's "flagged" message; rate limits answer 429 ThrottlingException and
//! are recorded in the call log.

use aws_sdk_connect::error::ProvideErrorMetadata;
use aws_sdk_connect::types::DirectoryType;
use connect_sim::SimConfig;
use serde_json::json;

use super::{
    TestResult, calls_of, control_get, create, create_err, fast_config, http_status,
    lifecycle_attempts, put_config, sdk, start,
};

const LIFECYCLE_MESSAGE: &str =
    "Your account has been flagged for an excessive number of creation and deletion attempts";

#[tokio::test]
async fn instance_quota_rejects_create_with_service_quota_exceeded() -> TestResult {
    let sim = start(SimConfig {
        instance_quota: 2,
        ..fast_config()
    })
    .await?;
    let client = sdk(&sim);
    create(&client, "quota-one", None).await?;
    create(&client, "quota-two", None).await?;

    let err = create_err(&client, "quota-three").await?;
    assert_eq!(err.code(), Some("ServiceQuotaExceededException"));
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_service_quota_exceeded_exception())
    );
    assert_eq!(http_status(&err), Some(402));
    let message = err.message().unwrap_or_default();
    assert!(
        message.contains("instances"),
        "message names the instance quota: {message}"
    );
    assert!(
        !message.contains("excessive"),
        "not the lifecycle limit: {message}"
    );
    assert_eq!(
        lifecycle_attempts(&sim).await?,
        2,
        "a rejected create is not an attempt"
    );

    put_config(&sim, json!({ "instanceQuota": 3 })).await?;
    create(&client, "quota-three", None).await?;
    Ok(())
}

#[tokio::test]
async fn lifecycle_attempt_limit_rejects_create_and_delete_with_flagged_message() -> TestResult {
    let sim = start(SimConfig {
        lifecycle_attempt_limit: 2,
        ..fast_config()
    })
    .await?;
    let client = sdk(&sim);
    let (first, _) = create(&client, "life-one", None).await?;
    let (second, _) = create(&client, "life-two", None).await?;

    let err = create_err(&client, "life-three").await?;
    assert_eq!(err.code(), Some("ServiceQuotaExceededException"));
    assert_eq!(http_status(&err), Some(402));
    assert!(
        err.message()
            .unwrap_or_default()
            .starts_with(LIFECYCLE_MESSAGE),
        "{:?}",
        err.message()
    );

    let delete = client
        .delete_instance()
        .instance_id(&first)
        .client_token("life-del")
        .send()
        .await;
    let err = delete.err().ok_or("delete over the limit succeeded")?;
    assert_eq!(err.code(), Some("ServiceQuotaExceededException"));
    assert_eq!(http_status(&err), Some(402));
    assert!(
        err.message()
            .unwrap_or_default()
            .starts_with(LIFECYCLE_MESSAGE)
    );
    assert_eq!(lifecycle_attempts(&sim).await?, 2);

    put_config(&sim, json!({ "lifecycleAttemptLimit": 3 })).await?;
    client
        .delete_instance()
        .instance_id(&first)
        .client_token("life-del")
        .send()
        .await?;
    let third = client.delete_instance().instance_id(&second).send().await;
    assert_eq!(
        third
            .err()
            .and_then(|e| e.code().map(str::to_owned))
            .as_deref(),
        Some("ServiceQuotaExceededException")
    );
    assert_eq!(lifecycle_attempts(&sim).await?, 3);
    Ok(())
}

#[tokio::test]
async fn rate_limits_answer_429_throttling_exception_and_are_recorded() -> TestResult {
    // Connect's defaults: CreateInstance 0.1/s with a burst of 1.
    let sim = start(SimConfig {
        rate_limits: SimConfig::default().rate_limits,
        ..fast_config()
    })
    .await?;
    let client = sdk(&sim);
    create(&client, "rate-one", Some("rate-token-1")).await?;
    let err = client
        .create_instance()
        .client_token("rate-token-2")
        .identity_management_type(DirectoryType::ConnectManaged)
        .instance_alias("rate-two")
        .inbound_calls_enabled(true)
        .outbound_calls_enabled(true)
        .send()
        .await
        .err()
        .ok_or("the second CreateInstance within 10s was not throttled")?;
    assert_eq!(err.code(), Some("ThrottlingException"));
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_throttling_exception())
    );
    assert_eq!(http_status(&err), Some(429));

    // Other operations: burst 5 at 2/s; a zero rate throttles everything.
    for _ in 0..5 {
        client.list_instances().send().await?;
    }
    put_config(&sim, json!({ "rateLimits": { "ListInstances": 0 } })).await?;
    let err = client
        .list_instances()
        .send()
        .await
        .err()
        .ok_or("rate 0 did not throttle")?;
    assert_eq!(err.code(), Some("ThrottlingException"));
    put_config(&sim, json!({ "rateLimits": { "ListInstances": null } })).await?;
    client.list_instances().send().await?;

    let creates = calls_of(&sim, "CreateInstance").await?;
    assert_eq!(creates.len(), 2);
    assert_eq!(creates[1]["status"], 429);
    assert_eq!(creates[1]["errorType"], "ThrottlingException");
    assert_eq!(
        creates[1]["clientToken"], "rate-token-2",
        "throttled calls keep their token"
    );
    assert_eq!(control_get(&sim, "/_sim/state").await?["instanceCount"], 1);
    Ok(())
}
