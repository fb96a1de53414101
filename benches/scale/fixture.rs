//! What the scenarios set up: a simulator with the bench's rate limits and delays, an
//! operator process with production defaults, and ConnectInstance objects created through
//! the API (with the bench time just before each create request).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use connect_sim::ConfigPatch;
use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::{Value, json};
use test_kit::connect;
use test_kit::{OperatorOptions, OperatorProcess, Simulator};

use crate::Clock;

// ---------------------------------------------------------------------------------------
// One simulator + operator pair

/// The attempt ledgers of earlier scenarios go: a fresh simulator is an account with no
/// create or delete attempts in its last 30 days, and the operator's budget guard would
/// otherwise count the earlier scenarios' attempts against it.
async fn forget_attempts() {
    let ledgers: Api<connect_operator::api::ConnectAttemptLedger> =
        Api::all(test_kit::client().await);
    ledgers
        .delete_collection(&kube::api::DeleteParams::default(), &ListParams::default())
        .await
        .unwrap_or_else(|error| panic!("deleting the attempt ledgers: {error}"));
}

/// A simulator holding up to `quota` instances: CreateInstance and DeleteInstance limited to
/// `lifecycle` (rate, burst), every other operation to `others` (unlimited when `None`).
pub async fn start_simulator(
    dir: &Path,
    quota: usize,
    lifecycle: (f64, u32),
    others: Option<(f64, u32)>,
    creation_delay: Duration,
    deletion_delay: Duration,
) -> Simulator {
    forget_attempts().await;
    let simulator = Simulator::start(dir, &[]);
    let operations = [
        "DescribeInstance",
        "ListInstances",
        "UpdateInstanceAttribute",
        "DescribeInstanceAttribute",
        "ListInstanceAttributes",
        "TagResource",
        "UntagResource",
        "ListTagsForResource",
    ]
    .into_iter()
    .chain(CONFIGURATION_LISTS)
    .chain(CONFIGURATION_WRITES);
    let (mut rates, mut bursts) = lifecycle_limits(lifecycle);
    for operation in operations {
        match others {
            Some((rate, burst)) => {
                rates.insert(operation.to_owned(), Some(rate));
                bursts.insert(operation.to_owned(), burst);
            }
            None => {
                rates.insert(operation.to_owned(), None);
            }
        }
    }
    simulator
        .set_config(&ConfigPatch {
            creation_delay_ms: Some(creation_delay.as_millis() as u64),
            deletion_delay_ms: Some(deletion_delay.as_millis() as u64),
            instance_quota: Some(u32::try_from(quota).unwrap_or(u32::MAX)),
            lifecycle_attempt_limit: Some(1_000_000),
            rate_limits: Some(rates),
            rate_bursts: Some(bursts),
            ..ConfigPatch::default()
        })
        .await;
    simulator
}

/// CreateInstance's and DeleteInstance's rate and burst, as the simulator's config takes
/// them.
type Limits = (BTreeMap<String, Option<f64>>, BTreeMap<String, u32>);

fn lifecycle_limits(lifecycle: (f64, u32)) -> Limits {
    ["CreateInstance", "DeleteInstance"]
        .into_iter()
        .map(|op| {
            (
                (op.to_owned(), Some(lifecycle.0)),
                (op.to_owned(), lifecycle.1),
            )
        })
        .unzip()
}

/// Sets the simulator's CreateInstance and DeleteInstance limit to `lifecycle` (rate,
/// burst) in every account and region; their buckets start over full.
pub async fn set_lifecycle_rate(simulator: &Simulator, lifecycle: (f64, u32)) {
    let (rates, bursts) = lifecycle_limits(lifecycle);
    simulator
        .set_config(&ConfigPatch {
            rate_limits: Some(rates),
            rate_bursts: Some(bursts),
            ..ConfigPatch::default()
        })
        .await;
}

pub async fn start_operator(
    dir: &Path,
    namespace: &str,
    simulator: &Simulator,
    flags: &[(&str, String)],
    log_level: &str,
) -> OperatorProcess {
    let mut options = OperatorOptions::new(namespace, &simulator.url);
    // The production defaults, not the harness's fast test values, for everything the
    // scenario does not set itself.
    for (name, value) in [
        ("error-backoff", "2s"),
        ("error-backoff-max", "5m"),
        ("aws-timeout", "30s"),
        ("quota-retry-interval", "2h"),
        ("access-denied-retry-interval", "5m"),
    ] {
        options = options.flag(name, value);
    }
    for (name, value) in flags {
        options = options.flag(name, value);
    }
    // Later entries win over the harness's debug default.
    options
        .envs
        .push(("RUST_LOG".to_owned(), log_level.to_owned()));
    OperatorProcess::start(dir, options).await
}

// ---------------------------------------------------------------------------------------
// Objects

pub struct Applied {
    pub name: String,
    pub uid: String,
    /// Bench time just before the create request was sent.
    pub applied_at: f64,
}

/// The List calls of the instance configuration, one per managed part (storage: one per
/// resource type).
pub const CONFIGURATION_LISTS: [&str; 5] = [
    "ListInstanceStorageConfigs",
    "ListApprovedOrigins",
    "ListLambdaFunctions",
    "ListBots",
    "ListSecurityKeys",
];

const CONFIGURATION_WRITES: [&str; 5] = [
    "AssociateInstanceStorageConfig",
    "AssociateApprovedOrigin",
    "AssociateLambdaFunction",
    "AssociateBot",
    "AssociateSecurityKey",
];

/// The managed parts of a configured object's spec: two storage types, origins, Lambda
/// functions, Lex bots, security keys; at rest each is one List call per drift interval.
pub const CONFIGURED_PARTS: usize = 6;

fn manifest(name: &str, alias: &str, configured: bool) -> Value {
    let mut spec = json!({
        "identityManagementType": "CONNECT_MANAGED",
        "instanceAlias": alias,
        "inboundCallsEnabled": true,
        "outboundCallsEnabled": true,
        // Both differ from a new instance's defaults: converging writes two attributes.
        "attributes": { "contactflowLogs": true, "contactLens": true },
        "tags": { "team": "benchmark", "cost-center": "42" },
    });
    if configured {
        let account = "111122223333";
        spec["storageConfigs"] = json!([
            { "resourceType": "CALL_RECORDINGS",
              "s3": { "bucketName": "bench-recordings", "bucketPrefix": alias } },
            { "resourceType": "CONTACT_TRACE_RECORDS",
              "kinesisFirehose": { "firehoseArn": format!("arn:aws:firehose:us-east-1:{account}:deliverystream/ctr") } },
        ]);
        spec["approvedOrigins"] = json!(["https://crm.example.com"]);
        spec["lambdaFunctions"] = json!([format!(
            "arn:aws:lambda:us-east-1:{account}:function:lookup"
        )]);
        spec["lexBots"] = json!([{ "aliasArn": format!("arn:aws:lex:us-east-1:{account}:bot-alias/BOT1/ALIAS1") }]);
        let body = "B".repeat(128);
        spec["securityKeys"] = json!([format!(
            "-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"
        )]);
    }
    connect::manifest(name, spec)
}

/// Whether an object's spec manages any instance configuration.
pub fn is_configured(object: &DynamicObject) -> bool {
    object.data.pointer("/spec/storageConfigs").is_some()
}

/// Creates the objects `prefix-0000 ...` through the API, `parallel` requests at a time;
/// with `configure_every: Some(k)`, every k-th of them (0, k, 2k, ...) also manages an
/// instance configuration of [`CONFIGURED_PARTS`] parts.
pub async fn apply_objects(
    api: &Api<DynamicObject>,
    clock: Clock,
    prefix: &str,
    range: std::ops::Range<usize>,
    parallel: usize,
    configure_every: Option<usize>,
) -> Vec<Applied> {
    futures::stream::iter(range)
        .map(|i| async move {
            let name = format!("{prefix}-{i:04}");
            let alias = format!("{prefix}-{i:04}");
            let configured = configure_every.is_some_and(|k| i % k.max(1) == 0);
            let applied_at = clock.now();
            let object = connect::create(api, &manifest(&name, &alias, configured))
                .await
                .unwrap_or_else(|error| panic!("creating {name}: {error}"));
            Applied {
                uid: connect::uid(&object),
                name,
                applied_at,
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await
}

pub async fn remaining_objects(api: &Api<DynamicObject>) -> Vec<DynamicObject> {
    api.list(&ListParams::default())
        .await
        .expect("listing objects")
        .items
}

pub fn describe_stuck(objects: &[DynamicObject]) -> String {
    objects
        .iter()
        .take(5)
        .map(|object| {
            format!(
                "{}: {}",
                object.metadata.name.as_deref().unwrap_or("?"),
                connect::describe(object)
            )
        })
        .collect::<Vec<_>>()
        .join("\n    ")
}
