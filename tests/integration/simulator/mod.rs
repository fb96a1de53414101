//! Fidelity tests of the Connect simulator: each test starts an in-process simulator and
//! drives it with the real `aws-sdk-connect` client (strict about shapes and types), checks
//! the `/_sim/` control endpoints with plain HTTP, and runs the independent boto3 check and
//! the `connect-sim` binary. No Kubernetes control plane is needed.
//!
//! This file holds what the tests share: starting a simulator, the SDK client and the
//! control-endpoint calls. The tests, by area: `lifecycle.rs`, `attributes_and_tags.rs`,
//! `configuration.rs` (storage configurations and the other associations), `quotas.rs`
//! (instance quota, lifecycle attempt limit, rate limits), `replication.rs` (Global
//! Resiliency: replicas and traffic distribution groups), `faults.rs`,
//! `validation.rs` (requests Connect refuses), `control.rs` (the `/_sim/` endpoints),
//! `undocumented.rs` (knobs for behaviour AWS does not document), `sts_and_accounts.rs`
//! (STS with `aws-sdk-sts` and `aws-config`'s AssumeRoleProvider; state per account and
//! region) and `boto3_and_binary.rs`.

mod attributes_and_tags;
mod boto3_and_binary;
mod configuration;
mod control;
mod faults;
mod lifecycle;
mod quotas;
mod replication;
mod sts_and_accounts;
mod undocumented;
mod validation;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aws_sdk_connect::Client;
use aws_sdk_connect::config::http::HttpResponse;
use aws_sdk_connect::config::retry::RetryConfig;
use aws_sdk_connect::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_connect::error::SdkError;
use aws_sdk_connect::operation::create_instance::CreateInstanceError;
use aws_sdk_connect::types::{DirectoryType, InstanceStatus};
use connect_sim::{self as simulator, SimConfig, SimHandle};
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

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

/// The HTTP status of the response behind an SDK error, if there was a response.
fn http_status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
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
