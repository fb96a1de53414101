//! Fidelity tests of the Connect simulator: each test starts an in-process simulator and
//! drives it with the real `aws-sdk-connect` client (strict about shapes and types), checks
//! the `/_sim/` control endpoints with plain HTTP, and runs the independent boto3 check and
//! the `connect-sim` binary. No Kubernetes control plane is needed.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_connect::Client;
use aws_sdk_connect::config::http::HttpResponse;
use aws_sdk_connect::config::retry::RetryConfig;
use aws_sdk_connect::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_connect::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_connect::operation::create_instance::CreateInstanceError;
use aws_sdk_connect::types::{DirectoryType, InstanceAttributeType, InstanceStatus};
use connect_sim::{self as simulator, SimConfig, SimHandle};
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const LIFECYCLE_MESSAGE: &str =
    "Your account has been flagged for an excessive number of creation and deletion attempts";

/// Short delays, room for several instances, no rate limits: tests not about those knobs.
fn fast_config() -> SimConfig {
    SimConfig {
        creation_delay: Duration::from_millis(300),
        deletion_delay: Duration::from_millis(300),
        instance_quota: 10,
        seed: Some(42),
        ..SimConfig::default()
    }
    .without_rate_limits()
}

async fn start(config: SimConfig) -> Result<SimHandle, Box<dyn std::error::Error>> {
    let addr: SocketAddr = "127.0.0.1:0".parse()?;
    Ok(simulator::spawn(config, addr).await?)
}

/// The real SDK client, pointed at the simulator, without retries so every call is seen.
fn sdk(sim: &SimHandle) -> Client {
    let config = aws_sdk_connect::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(sim.url())
        .credentials_provider(Credentials::new("test", "test", None, None, "static-test"))
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

async fn create(
    client: &Client,
    alias: &str,
    token: Option<&str>,
) -> Result<(String, String), Box<dyn std::error::Error>> {
    let out = client
        .create_instance()
        .set_client_token(token.map(str::to_owned))
        .identity_management_type(DirectoryType::ConnectManaged)
        .instance_alias(alias)
        .inbound_calls_enabled(true)
        .outbound_calls_enabled(false)
        .send()
        .await?;
    let id = out.id().ok_or("CreateInstance returned no Id")?.to_owned();
    let arn = out
        .arn()
        .ok_or("CreateInstance returned no Arn")?
        .to_owned();
    Ok((id, arn))
}

async fn status_of(
    client: &Client,
    id: &str,
) -> Result<InstanceStatus, Box<dyn std::error::Error>> {
    let out = client.describe_instance().instance_id(id).send().await?;
    let instance = out
        .instance()
        .ok_or("DescribeInstance returned no Instance")?;
    Ok(instance
        .instance_status()
        .ok_or("no InstanceStatus")?
        .clone())
}

async fn wait_for_status(client: &Client, id: &str, wanted: InstanceStatus) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = status_of(client, id).await?;
        if status == wanted {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("instance {id} is {status:?}, never became {wanted:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn control_get(sim: &SimHandle, path: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let response = reqwest::get(format!("{}{path}", sim.url())).await?;
    if !response.status().is_success() {
        return Err(format!("GET {path}: {}", response.status()).into());
    }
    Ok(response.json().await?)
}

async fn control_send(
    sim: &SimHandle,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Result<(u16, Value), Box<dyn std::error::Error>> {
    let response = reqwest::Client::new()
        .request(method, format!("{}{path}", sim.url()))
        .json(&body)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

async fn put_config(sim: &SimHandle, patch: Value) -> TestResult {
    let (status, body) = control_send(sim, reqwest::Method::PUT, "/_sim/config", patch).await?;
    if status != 200 {
        return Err(format!("PUT /_sim/config answered {status}: {body}").into());
    }
    Ok(())
}

async fn calls(sim: &SimHandle) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    match control_get(sim, "/_sim/calls").await? {
        Value::Array(calls) => Ok(calls),
        other => Err(format!("/_sim/calls is not an array: {other}").into()),
    }
}

async fn calls_of(
    sim: &SimHandle,
    operation: &str,
) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    Ok(calls(sim)
        .await?
        .into_iter()
        .filter(|c| c["operation"] == operation)
        .collect())
}

async fn lifecycle_attempts(sim: &SimHandle) -> Result<u64, Box<dyn std::error::Error>> {
    control_get(sim, "/_sim/state").await?["lifecycleAttempts"]
        .as_u64()
        .ok_or_else(|| "lifecycleAttempts is not a number".into())
}

/// A call log entry as (seq, operation, clientToken, instanceId, status, errorType).
type CallSummary<'a> = (
    u64,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    u64,
    Option<&'a str>,
);

/// The HTTP status of the response behind an SDK error, if there was a response.
fn http_status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

#[tokio::test]
async fn create_then_describe_reports_in_progress_then_active_with_sdk_shapes() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    let before = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();

    let out = client
        .create_instance()
        .client_token("create-shapes")
        .identity_management_type(DirectoryType::ConnectManaged)
        .instance_alias("shapes")
        .inbound_calls_enabled(true)
        .outbound_calls_enabled(false)
        .tags("team", "support")
        .send()
        .await?;
    let id = out.id().ok_or("no Id")?;
    let arn = out.arn().ok_or("no Arn")?;
    assert_eq!(id.len(), 36, "instance ids are UUIDs: {id}");
    assert_eq!(
        arn,
        format!("arn:aws:connect:us-east-1:123456789012:instance/{id}")
    );

    let described = client.describe_instance().instance_id(id).send().await?;
    let instance = described.instance().ok_or("no Instance")?;
    assert_eq!(
        instance.instance_status(),
        Some(&InstanceStatus::CreationInProgress)
    );
    assert_eq!(instance.id(), Some(id));
    assert_eq!(instance.arn(), Some(arn));
    assert_eq!(instance.instance_alias(), Some("shapes"));
    assert_eq!(
        instance.identity_management_type(),
        Some(&DirectoryType::ConnectManaged)
    );
    assert_eq!(instance.inbound_calls_enabled(), Some(true));
    assert_eq!(instance.outbound_calls_enabled(), Some(false));
    assert_eq!(
        instance.instance_access_url(),
        Some("https://shapes.my.connect.aws")
    );
    assert!(
        instance.service_role().is_some_and(|r| r
            .starts_with("arn:aws:iam::123456789012:role/aws-service-role/connect.amazonaws.com/")),
        "service role: {:?}",
        instance.service_role()
    );
    let created = instance
        .created_time()
        .ok_or("no CreatedTime")?
        .as_secs_f64();
    assert!(
        (created - before).abs() < 60.0,
        "CreatedTime {created} is not now ({before})"
    );
    assert_eq!(
        instance
            .tags()
            .and_then(|t| t.get("team"))
            .map(String::as_str),
        Some("support")
    );
    assert!(instance.status_reason().is_none());

    wait_for_status(&client, id, InstanceStatus::Active).await?;
    // Connect accepts the instance ARN wherever an InstanceId goes.
    let by_arn = client.describe_instance().instance_id(arn).send().await?;
    assert_eq!(by_arn.instance().and_then(|i| i.id()), Some(id));
    Ok(())
}

#[tokio::test]
async fn list_instances_paginates_one_per_page_across_three_instances() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    let mut created = Vec::new();
    for alias in ["page-one", "page-two", "page-three"] {
        created.push(create(&client, alias, None).await?.0);
    }

    let mut seen = Vec::new();
    let mut next_token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = client
            .list_instances()
            .max_results(1)
            .set_next_token(next_token.clone())
            .send()
            .await?;
        pages += 1;
        assert_eq!(page.instance_summary_list().len(), 1, "page {pages}");
        for summary in page.instance_summary_list() {
            seen.push(summary.id().ok_or("summary without Id")?.to_owned());
            assert!(
                summary.created_time().is_some(),
                "summary CreatedTime parses"
            );
            assert!(summary.instance_status().is_some());
            assert!(summary.instance_access_url().is_some());
        }
        next_token = page.next_token().map(str::to_owned);
        if next_token.is_none() || pages > 10 {
            break;
        }
    }
    assert_eq!(pages, 3, "three pages of one");
    assert_eq!(seen, created, "every instance once, in creation order");

    let all = client.list_instances().send().await?;
    assert_eq!(all.instance_summary_list().len(), 3);
    assert!(all.next_token().is_none(), "no NextToken on the last page");

    let bad = client.list_instances().next_token("bogus").send().await;
    let err = bad.err().ok_or("a bogus NextToken was accepted")?;
    assert_eq!(err.code(), Some("InvalidRequestException"));
    Ok(())
}

#[tokio::test]
async fn instance_attributes_default_like_aws_and_round_trip_through_update() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    let (id, _) = create(&client, "attrs", None).await?;

    let attributes = client
        .list_instance_attributes()
        .instance_id(&id)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await?;
    let by_type: HashMap<String, String> = attributes
        .iter()
        .filter_map(|a| {
            Some((
                a.attribute_type()?.as_str().to_owned(),
                a.value()?.to_owned(),
            ))
        })
        .collect();
    assert_eq!(
        by_type.len(),
        14,
        "every attribute type is listed: {by_type:?}"
    );
    assert_eq!(by_type["INBOUND_CALLS"], "true", "from the create request");
    assert_eq!(
        by_type["OUTBOUND_CALLS"], "false",
        "from the create request"
    );
    assert_eq!(by_type["CONTACTFLOW_LOGS"], "false");
    assert!(by_type.values().all(|v| v == "true" || v == "false"));

    let first_page = client
        .list_instance_attributes()
        .instance_id(&id)
        .send()
        .await?;
    assert_eq!(first_page.attributes().len(), 7, "AWS's default page size");
    assert!(first_page.next_token().is_some());

    client
        .update_instance_attribute()
        .instance_id(&id)
        .attribute_type(InstanceAttributeType::ContactflowLogs)
        .value("true")
        .client_token("attr-token-1")
        .send()
        .await?;
    client
        .update_instance_attribute()
        .instance_id(&id)
        .attribute_type(InstanceAttributeType::OutboundCalls)
        .value("true")
        .send()
        .await?;
    let described = client
        .describe_instance_attribute()
        .instance_id(&id)
        .attribute_type(InstanceAttributeType::ContactflowLogs)
        .send()
        .await?;
    let attribute = described.attribute().ok_or("no Attribute")?;
    assert_eq!(
        attribute.attribute_type(),
        Some(&InstanceAttributeType::ContactflowLogs)
    );
    assert_eq!(attribute.value(), Some("true"));
    let instance = client.describe_instance().instance_id(&id).send().await?;
    assert_eq!(
        instance.instance().and_then(|i| i.outbound_calls_enabled()),
        Some(true)
    );

    // The same ClientToken with other parameters is refused; with the same ones it replays.
    let mismatch = client
        .update_instance_attribute()
        .instance_id(&id)
        .attribute_type(InstanceAttributeType::ContactflowLogs)
        .value("false")
        .client_token("attr-token-1")
        .send()
        .await;
    assert_eq!(
        mismatch
            .err()
            .and_then(|e| e.code().map(str::to_owned))
            .as_deref(),
        Some("InvalidRequestException")
    );
    let bad_value = client
        .update_instance_attribute()
        .instance_id(&id)
        .attribute_type(InstanceAttributeType::EarlyMedia)
        .value("maybe")
        .send()
        .await;
    let err = bad_value.err().ok_or("a non-boolean value was accepted")?;
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_parameter_exception())
    );

    let instances = control_get(&sim, "/_sim/instances").await?;
    assert_eq!(instances[0]["attributes"]["CONTACTFLOW_LOGS"], "true");
    assert_eq!(instances[0]["outboundCallsEnabled"], true);
    Ok(())
}

#[tokio::test]
async fn tags_from_create_are_listed_and_changed_by_tag_and_untag() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    let out = client
        .create_instance()
        .identity_management_type(DirectoryType::Saml)
        .instance_alias("tagged")
        .inbound_calls_enabled(true)
        .outbound_calls_enabled(true)
        .tags("owner", "platform")
        .tags("cost-centre", "42")
        .send()
        .await?;
    let arn = out.arn().ok_or("no Arn")?;

    let tags_of = |arn: String| {
        let client = client.clone();
        async move {
            let out = client
                .list_tags_for_resource()
                .resource_arn(arn)
                .send()
                .await?;
            let tags: HashMap<String, String> = out.tags().cloned().unwrap_or_default();
            Ok::<_, Box<dyn std::error::Error>>(tags)
        }
    };
    let tags = tags_of(arn.to_owned()).await?;
    assert_eq!(tags.len(), 2);
    assert_eq!(tags["owner"], "platform");

    client
        .tag_resource()
        .resource_arn(arn)
        .tags("env", "dev")
        .tags("owner", "sre")
        .send()
        .await?;
    let tags = tags_of(arn.to_owned()).await?;
    assert_eq!(tags.len(), 3);
    assert_eq!(tags["owner"], "sre", "TagResource overwrites values");

    client
        .untag_resource()
        .resource_arn(arn)
        .tag_keys("owner")
        .tag_keys("cost-centre")
        .send()
        .await?;
    let tags = tags_of(arn.to_owned()).await?;
    assert_eq!(tags, HashMap::from([("env".to_owned(), "dev".to_owned())]));

    let reserved = client
        .tag_resource()
        .resource_arn(arn)
        .tags("aws:owner", "x")
        .send()
        .await;
    let err = reserved.err().ok_or("an aws: tag key was accepted")?;
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_parameter_exception())
    );
    let unknown = client
        .list_tags_for_resource()
        .resource_arn(
            "arn:aws:connect:us-east-1:123456789012:instance/00000000-0000-4000-8000-000000000000",
        )
        .send()
        .await;
    let err = unknown
        .err()
        .ok_or("tags of an unknown instance were listed")?;
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())
    );
    Ok(())
}

#[tokio::test]
async fn delete_with_client_token_keeps_instance_until_deletion_delay_then_not_found() -> TestResult
{
    let sim = start(SimConfig {
        deletion_delay: Duration::from_millis(800),
        ..fast_config()
    })
    .await?;
    let client = sdk(&sim);
    let (id, _) = create(&client, "doomed", None).await?;
    wait_for_status(&client, &id, InstanceStatus::Active).await?;
    assert_eq!(lifecycle_attempts(&sim).await?, 1);

    client
        .delete_instance()
        .instance_id(&id)
        .client_token("delete-doomed")
        .send()
        .await?;
    // Repeating the same token succeeds and is not a second attempt.
    client
        .delete_instance()
        .instance_id(&id)
        .client_token("delete-doomed")
        .send()
        .await?;
    assert_eq!(lifecycle_attempts(&sim).await?, 2, "create + one delete");
    assert_eq!(
        status_of(&client, &id).await?,
        InstanceStatus::Active,
        "still visible while deleting"
    );
    assert_eq!(
        control_get(&sim, "/_sim/instances").await?[0]["deleting"],
        true
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        match client.describe_instance().instance_id(&id).send().await {
            Err(err) => break err,
            Ok(_) if Instant::now() > deadline => return Err("instance never vanished".into()),
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())
    );
    assert_eq!(http_status(&err), Some(404));
    // The token still answers success after the instance is gone (a retry after a lost reply).
    client
        .delete_instance()
        .instance_id(&id)
        .client_token("delete-doomed")
        .send()
        .await?;
    let other = client
        .delete_instance()
        .instance_id(&id)
        .client_token("another-token")
        .send()
        .await;
    assert!(
        other
            .err()
            .and_then(|e| e
                .into_service_error()
                .is_resource_not_found_exception()
                .then_some(()))
            .is_some()
    );
    assert_eq!(lifecycle_attempts(&sim).await?, 2);

    let deletes = calls_of(&sim, "DeleteInstance").await?;
    assert_eq!(deletes.len(), 4);
    assert!(
        deletes[..3]
            .iter()
            .all(|c| c["clientToken"] == "delete-doomed" && c["status"] == 200)
    );
    assert_eq!(deletes[1]["replay"], true);
    assert_eq!(deletes[3]["status"], 404);
    Ok(())
}

#[tokio::test]
async fn create_with_same_client_token_returns_same_instance_and_counts_one_attempt() -> TestResult
{
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    let first = create(&client, "idem", Some("token-idem")).await?;
    let second = create(&client, "idem", Some("token-idem")).await?;
    assert_eq!(first, second, "same Id and Arn");
    assert_eq!(
        control_get(&sim, "/_sim/instances")
            .await?
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(lifecycle_attempts(&sim).await?, 1);

    let creates = calls_of(&sim, "CreateInstance").await?;
    assert_eq!(creates.len(), 2);
    assert!(
        creates
            .iter()
            .all(|c| c["clientToken"] == "token-idem" && c["instanceId"] == first.0.as_str())
    );
    assert_eq!(creates[0]["replay"], false);
    assert_eq!(creates[1]["replay"], true);

    // Reusing the token for a different instance is an error, not a second instance.
    let reused = create(&client, "other-alias", Some("token-idem")).await;
    assert!(reused.is_err());
    assert_eq!(lifecycle_attempts(&sim).await?, 1);
    Ok(())
}

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

async fn create_err(
    client: &Client,
    alias: &str,
) -> Result<SdkError<CreateInstanceError, HttpResponse>, Box<dyn std::error::Error>> {
    let result = client
        .create_instance()
        .identity_management_type(DirectoryType::ConnectManaged)
        .instance_alias(alias)
        .inbound_calls_enabled(true)
        .outbound_calls_enabled(true)
        .send()
        .await;
    result
        .err()
        .ok_or_else(|| format!("CreateInstance of {alias} succeeded").into())
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
    assert_eq!(creates[0]["status"], 0);
    assert_eq!(creates[0]["errorType"], "ConnectionDropped");
    assert_eq!(creates[0]["instanceId"], id.as_str());
    assert_eq!(creates[1]["replay"], true);
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
    let started = Instant::now();
    client.describe_instance().instance_id(&id).send().await?;
    let fast = started.elapsed();
    assert!(
        slow >= Duration::from_millis(1000),
        "ListInstances took {slow:?}"
    );
    assert!(
        fast < Duration::from_millis(1000),
        "DescribeInstance took {fast:?}"
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

#[tokio::test]
async fn duplicate_alias_is_rejected_with_invalid_request_naming_the_alias() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    create(&client, "taken", None).await?;
    let err = create_err(&client, "TAKEN").await?;
    assert_eq!(err.code(), Some("InvalidRequestException"));
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_request_exception())
    );
    assert_eq!(http_status(&err), Some(400));
    assert!(
        err.message().unwrap_or_default().contains("TAKEN"),
        "{:?}",
        err.message()
    );

    // Also against instances the operator did not create.
    let (status, _) = control_send(
        &sim,
        reqwest::Method::POST,
        "/_sim/instances",
        json!({ "alias": "foreign" }),
    )
    .await?;
    assert_eq!(status, 200);
    let err = create_err(&client, "foreign").await?;
    assert!(err.message().unwrap_or_default().contains("foreign"));
    assert_eq!(lifecycle_attempts(&sim).await?, 1);
    Ok(())
}

#[tokio::test]
async fn invalid_create_requests_are_rejected_before_anything_is_created() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    let base = || {
        client
            .create_instance()
            .inbound_calls_enabled(true)
            .outbound_calls_enabled(true)
    };
    let attempts = [
        (
            "alias missing",
            base().identity_management_type(DirectoryType::ConnectManaged),
        ),
        (
            "alias pattern",
            base()
                .identity_management_type(DirectoryType::ConnectManaged)
                .instance_alias("-bad"),
        ),
        (
            "alias d- prefix",
            base()
                .identity_management_type(DirectoryType::ConnectManaged)
                .instance_alias("d-abc"),
        ),
        (
            "alias too long",
            base()
                .identity_management_type(DirectoryType::ConnectManaged)
                .instance_alias("a".repeat(46)),
        ),
        (
            "directory missing",
            base()
                .identity_management_type(DirectoryType::ExistingDirectory)
                .instance_alias("dir"),
        ),
        (
            "directory malformed",
            base()
                .identity_management_type(DirectoryType::ExistingDirectory)
                .directory_id("d-xyz"),
        ),
        (
            "directory with saml",
            base()
                .identity_management_type(DirectoryType::Saml)
                .instance_alias("s")
                .directory_id("d-0123456789"),
        ),
        (
            "aws: tag",
            base()
                .identity_management_type(DirectoryType::ConnectManaged)
                .instance_alias("t")
                .tags("aws:x", "y"),
        ),
        ("no identity type", base().instance_alias("no-type")),
    ];
    for (what, request) in attempts {
        let err = request
            .send()
            .await
            .err()
            .ok_or(format!("{what}: accepted"))?;
        assert_eq!(err.code(), Some("InvalidRequestException"), "{what}");
        assert_eq!(http_status(&err), Some(400), "{what}");
    }
    let missing_flags = client
        .create_instance()
        .identity_management_type(DirectoryType::ConnectManaged)
        .instance_alias("flags")
        .send()
        .await;
    assert_eq!(
        missing_flags
            .err()
            .and_then(|e| e.code().map(str::to_owned))
            .as_deref(),
        Some("InvalidRequestException")
    );
    assert_eq!(lifecycle_attempts(&sim).await?, 0);
    assert_eq!(control_get(&sim, "/_sim/state").await?["instanceCount"], 0);

    let directory = client
        .create_instance()
        .identity_management_type(DirectoryType::ExistingDirectory)
        .directory_id("d-0123456789")
        .inbound_calls_enabled(true)
        .outbound_calls_enabled(true)
        .send()
        .await?;
    assert!(
        directory.id().is_some(),
        "EXISTING_DIRECTORY needs no alias"
    );
    Ok(())
}

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
    assert_eq!(state, json!({ "lifecycleAttempts": 0, "instanceCount": 0 }));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_check_script_passes_against_the_simulator() -> TestResult {
    let required = std::env::var("CONNECT_SIM_REQUIRE_BOTO3").is_ok_and(|v| v == "1");
    let has_boto3 = Command::new("python3")
        .args(["-c", "import boto3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_boto3 {
        if required {
            return Err(
                "CONNECT_SIM_REQUIRE_BOTO3=1 but `python3 -c 'import boto3'` fails; \
                        pip install -r tests/requirements.txt"
                    .into(),
            );
        }
        eprintln!(
            "skipping: boto3 is not installed (set CONNECT_SIM_REQUIRE_BOTO3=1 to make this fail)"
        );
        return Ok(());
    }
    let sim = start(SimConfig::default()).await?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sim_boto3_check.py");
    let url = sim.url();
    let output =
        tokio::task::spawn_blocking(move || Command::new("python3").arg(script).arg(url).output())
            .await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "boto3 check failed:\n{stdout}\n{stderr}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    let passed: u32 = last
        .strip_suffix(" passed, 0 failed")
        .and_then(|n| n.parse().ok())
        .ok_or(format!("unexpected summary line {last:?}"))?;
    assert!(passed >= 80, "the script checked too little: {last}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_sim_binary_prints_its_address_applies_flags_and_exits_on_sigterm() -> TestResult {
    let mut child = Command::new(test_kit::paths::simulator_binary())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--creation-delay",
            "150ms",
            "--instance-quota",
            "3",
        ])
        .args([
            "--rate-limit",
            "CreateInstance=none",
            "--fail-creation-alias-pattern",
            "^x",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await??;
    let url = line
        .trim()
        .strip_prefix("connect-sim listening on ")
        .ok_or(format!("unexpected first line {line:?}"))?
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let config: Value = reqwest::get(format!("{url}/_sim/config"))
        .await?
        .json()
        .await?;
    assert_eq!(config["creationDelayMs"], 150);
    assert_eq!(config["instanceQuota"], 3);
    assert_eq!(config["rateLimits"]["CreateInstance"], Value::Null);
    assert_eq!(config["failCreationAliasPattern"], "^x");

    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status()?;
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            child.kill()?;
            return Err("connect-sim did not exit on SIGTERM".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
    Ok(())
}

#[tokio::test]
async fn every_attribute_type_the_sdk_knows_is_served() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    let (id, _) = create(&client, "all-attrs", None).await?;
    let served: BTreeSet<String> = client
        .list_instance_attributes()
        .instance_id(&id)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await?
        .iter()
        .filter_map(|a| a.attribute_type().map(|t| t.as_str().to_owned()))
        .collect();
    let known: BTreeSet<String> = InstanceAttributeType::values()
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(
        served, known,
        "the simulator serves exactly the SDK's attribute types"
    );
    for name in &known {
        let out = client
            .describe_instance_attribute()
            .instance_id(&id)
            .attribute_type(InstanceAttributeType::from(name.as_str()))
            .send()
            .await?;
        let attribute = out.attribute().ok_or(format!("{name}: no Attribute"))?;
        assert_eq!(
            attribute
                .attribute_type()
                .map(InstanceAttributeType::as_str),
            Some(name.as_str())
        );
        let expected = if name == "INBOUND_CALLS" {
            "true"
        } else {
            "false"
        };
        assert_eq!(attribute.value(), Some(expected), "{name}");
    }
    Ok(())
}
