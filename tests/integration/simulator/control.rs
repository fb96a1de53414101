//! The `/_sim/` control endpoints: the call log records every Connect call with client
//! tokens and outcomes; an inserted foreign ACTIVE instance is visible to the SDK; the config
//! merges partial updates and rejects invalid values; unknown paths answer like AWS and are
//! not recorded.

use aws_sdk_connect::error::ProvideErrorMetadata;
use aws_sdk_connect::types::{InstanceAttributeType, InstanceStatus};
use connect_sim::SimConfig;
use serde_json::{Value, json};

use super::{
    TestResult, calls, control_get, control_send, create, create_err, fast_config,
    lifecycle_attempts, sdk, start, status_of,
};

/// A call log entry as (seq, operation, clientToken, instanceId, status, errorType).
type CallSummary<'a> = (
    u64,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    u64,
    Option<&'a str>,
);

#[tokio::test]
async fn control_endpoint_records_every_call_with_client_tokens_and_outcomes() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    let (id, arn) = create(&client, "logged", Some("log-create")).await?;
    client.describe_instance().instance_id(&id).send().await?;
    client.list_instances().send().await?;
    client
        .update_instance_attribute()
        .instance_id(&id)
        .attribute_type(InstanceAttributeType::EarlyMedia)
        .value("true")
        .client_token("log-update")
        .send()
        .await?;
    client
        .describe_instance_attribute()
        .instance_id(&id)
        .attribute_type(InstanceAttributeType::EarlyMedia)
        .send()
        .await?;
    client
        .list_instance_attributes()
        .instance_id(&id)
        .send()
        .await?;
    client
        .tag_resource()
        .resource_arn(&arn)
        .tags("a", "b")
        .send()
        .await?;
    client
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("a")
        .send()
        .await?;
    client
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await?;
    let missing = "00000000-0000-4000-8000-000000000000";
    assert!(
        client
            .describe_instance()
            .instance_id(missing)
            .send()
            .await
            .is_err()
    );
    client
        .delete_instance()
        .instance_id(&id)
        .client_token("log-delete")
        .send()
        .await?;

    let recorded = calls(&sim).await?;
    let summary: Vec<CallSummary<'_>> = recorded
        .iter()
        .map(|c| {
            (
                c["seq"].as_u64().unwrap_or_default(),
                c["operation"].as_str().unwrap_or_default(),
                c["clientToken"].as_str(),
                c["instanceId"].as_str(),
                c["status"].as_u64().unwrap_or_default(),
                c["errorType"].as_str(),
            )
        })
        .collect();
    let id = id.as_str();
    assert_eq!(
        summary,
        [
            (1, "CreateInstance", Some("log-create"), Some(id), 200, None),
            (2, "DescribeInstance", None, Some(id), 200, None),
            (3, "ListInstances", None, None, 200, None),
            (
                4,
                "UpdateInstanceAttribute",
                Some("log-update"),
                Some(id),
                200,
                None
            ),
            (5, "DescribeInstanceAttribute", None, Some(id), 200, None),
            (6, "ListInstanceAttributes", None, Some(id), 200, None),
            (7, "TagResource", None, Some(id), 200, None),
            (8, "UntagResource", None, Some(id), 200, None),
            (9, "ListTagsForResource", None, Some(id), 200, None),
            (
                10,
                "DescribeInstance",
                None,
                Some(missing),
                404,
                Some("ResourceNotFoundException")
            ),
            (
                11,
                "DeleteInstance",
                Some("log-delete"),
                Some(id),
                200,
                None
            ),
        ]
    );

    let (status, cleared) =
        control_send(&sim, reqwest::Method::DELETE, "/_sim/calls", json!({})).await?;
    assert_eq!((status, cleared["cleared"].as_u64()), (200, Some(11)));
    assert!(calls(&sim).await?.is_empty());
    client.list_instances().send().await?;
    assert_eq!(
        calls(&sim).await?[0]["seq"],
        12,
        "sequence numbers are never reused"
    );
    Ok(())
}

#[tokio::test]
async fn control_endpoint_inserts_a_foreign_active_instance_visible_to_the_sdk() -> TestResult {
    let sim = start(SimConfig {
        instance_quota: 1,
        ..fast_config()
    })
    .await?;
    let client = sdk(&sim);
    let (status, inserted) = control_send(
        &sim,
        reqwest::Method::POST,
        "/_sim/instances",
        json!({ "alias": "someone-elses", "tags": { "owner": "finance" } }),
    )
    .await?;
    assert_eq!(status, 200, "{inserted}");
    assert_eq!(inserted["status"], "ACTIVE");
    assert_eq!(inserted["alias"], "someone-elses");
    assert_eq!(inserted["identityManagementType"], "CONNECT_MANAGED");
    assert_eq!(inserted["tags"]["owner"], "finance");
    assert_eq!(
        inserted["attributes"].as_object().map(|a| a.len()),
        Some(14)
    );
    let id = inserted["id"].as_str().ok_or("no id")?;

    let listed = client.list_instances().send().await?;
    assert_eq!(listed.instance_summary_list().len(), 1);
    assert_eq!(
        listed.instance_summary_list()[0].instance_alias(),
        Some("someone-elses")
    );
    assert_eq!(status_of(&client, id).await?, InstanceStatus::Active);
    assert!(
        calls(&sim)
            .await?
            .iter()
            .all(|c| c["operation"] != "CreateInstance"),
        "not an API call"
    );
    assert_eq!(lifecycle_attempts(&sim).await?, 0);
    // It exists, so it counts against the instance quota.
    let err = create_err(&client, "mine").await?;
    assert_eq!(err.code(), Some("ServiceQuotaExceededException"));

    let (status, _) = control_send(
        &sim,
        reqwest::Method::POST,
        "/_sim/instances",
        json!({ "alias": "someone-elses" }),
    )
    .await?;
    assert_eq!(status, 400, "aliases stay unique");
    let (status, _) = control_send(
        &sim,
        reqwest::Method::POST,
        "/_sim/instances",
        json!({ "alias": "-bad" }),
    )
    .await?;
    assert_eq!(status, 400, "aliases are validated");
    Ok(())
}

#[tokio::test]
async fn control_config_merges_partially_and_rejects_invalid_values() -> TestResult {
    let sim = start(SimConfig::default()).await?;
    let config = control_get(&sim, "/_sim/config").await?;
    assert_eq!(config["creationDelayMs"], 2000);
    assert_eq!(config["deletionDelayMs"], 1000);
    assert_eq!(config["instanceQuota"], 2);
    assert_eq!(config["lifecycleAttemptLimit"], 100);
    assert_eq!(config["failCreationAliasPattern"], Value::Null);
    assert_eq!(config["rateLimits"]["CreateInstance"], 0.1);
    assert_eq!(config["rateLimits"]["DeleteInstance"], 0.1);
    assert_eq!(config["rateLimits"]["DescribeInstance"], 2.0);
    assert_eq!(config["rateBursts"]["CreateInstance"], 1);
    assert_eq!(config["faults"]["serverErrorRatio"], 0.0);
    assert_eq!(config["faults"]["operations"], json!([]));

    let (status, updated) = control_send(
        &sim,
        reqwest::Method::PUT,
        "/_sim/config",
        json!({ "instanceQuota": 7, "faults": { "latencyMs": 5, "operations": ["DeleteInstance"] } }),
    )
    .await?;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["instanceQuota"], 7);
    assert_eq!(
        updated["lifecycleAttemptLimit"], 100,
        "untouched keys keep their value"
    );
    assert_eq!(updated["faults"]["latencyMs"], 5);
    assert_eq!(updated["faults"]["operations"], json!(["DeleteInstance"]));
    assert_eq!(control_get(&sim, "/_sim/config").await?, updated);

    for bad in [
        json!({ "instanceQuotaa": 1 }),
        json!({ "failCreationAliasPattern": "(" }),
        json!({ "rateLimits": { "CreateInstances": 1 } }),
        json!({ "faults": { "serverErrorRatio": 1.5 } }),
        json!({ "faults": { "operations": ["Nope"] } }),
        json!({ "region": "eu-west-1" }),
    ] {
        let (status, body) =
            control_send(&sim, reqwest::Method::PUT, "/_sim/config", bad.clone()).await?;
        assert_eq!(status, 400, "{bad} was accepted");
        assert!(body["message"].is_string());
    }
    assert_eq!(
        control_get(&sim, "/_sim/config").await?,
        updated,
        "rejected updates change nothing"
    );
    let state = control_get(&sim, "/_sim/state").await?;
    assert_eq!(
        state,
        json!({
            "lifecycleAttempts": 0,
            "instanceCount": 0,
            "replicaCount": 0,
            "accounts": [{
                "accountId": "123456789012",
                "region": "us-east-1",
                "lifecycleAttempts": 0,
                "instanceCount": 0,
                "replicaCount": 0,
            }],
        }),
        "the default account and region exist from the start"
    );
    Ok(())
}

#[tokio::test]
async fn unknown_paths_answer_like_aws_and_are_not_recorded() -> TestResult {
    let sim = start(fast_config()).await?;
    let response = reqwest::get(format!("{}/contact-flows/x", sim.url())).await?;
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(
        response
            .headers()
            .get("x-amzn-ErrorType")
            .and_then(|v| v.to_str().ok()),
        Some("UnknownOperationException")
    );
    let missing = reqwest::get(format!("{}/instance/nope", sim.url())).await?;
    assert_eq!(missing.status().as_u16(), 404);
    assert!(missing.headers().contains_key("x-amzn-RequestId"));
    let body: Value = missing.json().await?;
    assert!(body["Message"].as_str().is_some_and(|m| m.contains("nope")));
    assert_eq!(
        calls(&sim).await?.len(),
        1,
        "only the Connect call is recorded"
    );
    Ok(())
}

#[tokio::test]
async fn the_call_log_names_the_access_key_each_call_was_signed_with() -> TestResult {
    let sim = start(fast_config()).await?;
    let signed_as = |key: &str| {
        let config = aws_sdk_connect::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(sim.url())
            .credentials_provider(aws_credential_types::Credentials::new(
                key,
                "secret-of-the-key",
                None,
                None,
                "static-test",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_connect::Client::from_conf(config)
    };
    signed_as("AKIDREPLICAA").list_instances().send().await?;
    signed_as("AKIDREPLICAB").list_instances().send().await?;
    signed_as("AKIDREPLICAA").list_instances().send().await?;
    let keys: Vec<(Value, Value)> = calls(&sim)
        .await?
        .iter()
        .map(|c| (c["accessKeyId"].clone(), c["accountId"].clone()))
        .collect();
    assert_eq!(
        keys,
        vec![
            (json!("AKIDREPLICAA"), json!("123456789012")),
            (json!("AKIDREPLICAB"), json!("123456789012")),
            (json!("AKIDREPLICAA"), json!("123456789012")),
        ],
        "static keys of one account, told apart by key id"
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    for call in calls(&sim).await? {
        let at = call["unixMs"].as_u64().ok_or("unixMs")?;
        assert!(
            at <= now_ms && now_ms - at < 60_000,
            "unixMs {at} is the machine's clock (now {now_ms})"
        );
    }
    let log = control_get(&sim, "/_sim/calls").await?.to_string();
    assert!(
        !log.contains("secret-of-the-key"),
        "the log never holds a secret: {log}"
    );
    Ok(())
}
