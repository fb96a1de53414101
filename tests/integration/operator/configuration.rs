//! Instance configuration through the operator: every field converges from empty and reads
//! back identical through the SDK, nothing is written at rest, changes made outside the
//! operator are repaired while a storage type never listed is left alone, a type removed
//! from the list is disassociated, one failing item does not block the others, and deleting
//! the instance makes no Disassociate call.

use std::collections::BTreeMap;

use aws_sdk_connect::types::{
    InstanceStorageConfig, InstanceStorageResourceType, KinesisFirehoseConfig, S3Config,
    StorageType,
};
use connect_sim::ConfigPatch;
use serde_json::{Value, json};

use kube::api::DynamicObject;
use test_kit::DEADLINE;
use test_kit::connect::{basic_spec, condition, is_true, manifest, status_str, wait_gone};

use super::{Scenario, assert_steady, mutating, someone_else};

const KMS: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const CTR_FIREHOSE: &str = "arn:aws:firehose:us-east-1:111122223333:deliverystream/ctr";
const AGENT_STREAM: &str = "arn:aws:kinesis:us-east-1:111122223333:stream/agent-events";
pub(super) const ORIGIN: &str = "https://crm.example.com";
pub(super) const BOT: &str = "arn:aws:lex:us-east-1:111122223333:bot-alias/BOT1/ALIAS1";

fn function(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:111122223333:function:{name}")
}

fn key(fill: char) -> String {
    let body: String = std::iter::repeat_n(fill, 128).collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n{}\n-----END PUBLIC KEY-----\n",
        &body[..64],
        &body[64..]
    )
}

/// A spec with every kind of configuration.
pub(super) fn configured_spec(alias: &str) -> Value {
    let mut spec = basic_spec(alias);
    spec["storageConfigs"] = json!([
        { "resourceType": "CALL_RECORDINGS",
          "s3": { "bucketName": "team-recordings", "bucketPrefix": "calls", "kmsKeyArn": KMS } },
        { "resourceType": "CHAT_TRANSCRIPTS",
          "s3": { "bucketName": "team-recordings", "bucketPrefix": "chats", "kmsKeyArn": KMS } },
        { "resourceType": "CONTACT_TRACE_RECORDS", "kinesisFirehose": { "firehoseArn": CTR_FIREHOSE } },
        { "resourceType": "AGENT_EVENTS", "kinesisStream": { "streamArn": AGENT_STREAM } },
        { "resourceType": "MEDIA_STREAMS",
          "kinesisVideoStream": { "prefix": "media", "retentionPeriodHours": 24, "kmsKeyArn": KMS } },
    ]);
    spec["approvedOrigins"] = json!([ORIGIN]);
    spec["lambdaFunctions"] = json!([function("lookup"), function("route")]);
    spec["lexBots"] = json!([{ "aliasArn": BOT }]);
    spec["securityKeys"] = json!([key('A')]);
    spec
}

/// Every part of an instance's configuration, as the SDK reads it.
#[derive(Debug, PartialEq, Eq)]
struct ConfigView {
    /// Resource type → (association id, storage type).
    storage: BTreeMap<String, (String, String)>,
    origins: Vec<String>,
    functions: Vec<String>,
    bots: Vec<String>,
    keys: Vec<String>,
}

async fn config_view(s: &Scenario, id: &str) -> ConfigView {
    let client = someone_else(s);
    let mut storage = BTreeMap::new();
    for resource_type in [
        "CALL_RECORDINGS",
        "CHAT_TRANSCRIPTS",
        "CONTACT_TRACE_RECORDS",
        "AGENT_EVENTS",
        "MEDIA_STREAMS",
        "SCHEDULED_REPORTS",
    ] {
        let listed = client
            .list_instance_storage_configs()
            .instance_id(id)
            .resource_type(InstanceStorageResourceType::from(resource_type))
            .send()
            .await
            .expect("ListInstanceStorageConfigs");
        for config in listed.storage_configs() {
            storage.insert(
                resource_type.to_owned(),
                (
                    config.association_id().unwrap_or_default().to_owned(),
                    config.storage_type().as_str().to_owned(),
                ),
            );
        }
    }
    let origins = client
        .list_approved_origins()
        .instance_id(id)
        .send()
        .await
        .expect("ListApprovedOrigins")
        .origins()
        .to_vec();
    let mut functions = client
        .list_lambda_functions()
        .instance_id(id)
        .send()
        .await
        .expect("ListLambdaFunctions")
        .lambda_functions()
        .to_vec();
    functions.sort();
    let bots = client
        .list_bots()
        .instance_id(id)
        .lex_version(aws_sdk_connect::types::LexVersion::V2)
        .send()
        .await
        .expect("ListBots")
        .lex_bots()
        .iter()
        .filter_map(|b| {
            b.lex_v2_bot()
                .and_then(|b| b.alias_arn())
                .map(str::to_owned)
        })
        .collect();
    let keys = client
        .list_security_keys()
        .instance_id(id)
        .send()
        .await
        .expect("ListSecurityKeys")
        .security_keys()
        .iter()
        .filter_map(|k| k.key().map(|k| k.split_whitespace().collect::<String>()))
        .collect();
    ConfigView {
        storage,
        origins,
        functions,
        bots,
        keys,
    }
}

/// `status.storageConfigs`: resource type → association id.
pub(super) fn recorded_storage(object: &DynamicObject) -> BTreeMap<String, String> {
    serde_json::from_value(
        object
            .data
            .pointer("/status/storageConfigs")
            .cloned()
            .unwrap_or(Value::Null),
    )
    .expect("status.storageConfigs")
}

#[tokio::test]
async fn configuration_converges_stays_still_is_repaired_and_fails_one_item_at_a_time() {
    let s = Scenario::start(
        "configuration_converges_stays_still_is_repaired_and_fails_one_item_at_a_time",
        &["--creation-delay", "1s"],
        &[("drift-interval", "2s")],
    )
    .await;
    let name = "configured";
    s.kubectl_apply(&manifest(name, configured_spec("configured-e2e")))
        .await;
    let object = s.wait_ready(name).await;
    let id = status_str(&object, "instanceId").expect("an instance id");

    // Read back through the SDK: every part as the spec says.
    let view = config_view(&s, &id).await;
    let types: Vec<(&str, &str)> = view
        .storage
        .iter()
        .map(|(t, (_, storage))| (t.as_str(), storage.as_str()))
        .collect();
    assert_eq!(
        types,
        [
            ("AGENT_EVENTS", "KINESIS_STREAM"),
            ("CALL_RECORDINGS", "S3"),
            ("CHAT_TRANSCRIPTS", "S3"),
            ("CONTACT_TRACE_RECORDS", "KINESIS_FIREHOSE"),
            ("MEDIA_STREAMS", "KINESIS_VIDEO_STREAM"),
        ]
    );
    assert_eq!(view.origins, [ORIGIN]);
    assert_eq!(view.functions, [function("lookup"), function("route")]);
    assert_eq!(view.bots, [BOT]);
    assert_eq!(view.keys, [key('A').split_whitespace().collect::<String>()]);
    // Status records the storage associations and the key by AWS's ids.
    let recorded = recorded_storage(&object);
    let listed: BTreeMap<String, String> = view
        .storage
        .iter()
        .map(|(t, (id, _))| (t.clone(), id.clone()))
        .collect();
    assert_eq!(recorded, listed);
    assert_eq!(
        object
            .data
            .pointer("/status/securityKeys")
            .and_then(Value::as_array)
            .map(Vec::len),
        Some(1)
    );
    // Every write carried a ClientToken of its own.
    let calls = s.connect_calls().await;
    let writes: Vec<_> = calls.iter().filter(|c| mutating(&c.operation)).collect();
    assert!(
        writes
            .iter()
            .all(|c| c.operation == "TagResource" || c.client_token.is_some()),
        "{writes:?}"
    );
    // At rest: drift checks and no writes.
    assert_steady(&s, name, 3).await;

    // Outside the operator: an origin removed, a function added, the CTR stream changed, a
    // type the spec never lists associated.
    let other = someone_else(&s);
    other
        .disassociate_approved_origin()
        .instance_id(&id)
        .origin(ORIGIN)
        .send()
        .await
        .expect("origin removed behind the operator's back");
    other
        .associate_lambda_function()
        .instance_id(&id)
        .function_arn(function("extra"))
        .send()
        .await
        .expect("function added behind the operator's back");
    other
        .update_instance_storage_config()
        .instance_id(&id)
        .association_id(&listed["CONTACT_TRACE_RECORDS"])
        .resource_type(InstanceStorageResourceType::ContactTraceRecords)
        .storage_config(
            InstanceStorageConfig::builder()
                .storage_type(StorageType::KinesisFirehose)
                .kinesis_firehose_config(
                    KinesisFirehoseConfig::builder()
                        .firehose_arn(
                            "arn:aws:firehose:us-east-1:111122223333:deliverystream/other",
                        )
                        .build()
                        .expect("firehose"),
                )
                .build()
                .expect("config"),
        )
        .send()
        .await
        .expect("CTR changed behind the operator's back");
    other
        .associate_instance_storage_config()
        .instance_id(&id)
        .resource_type(InstanceStorageResourceType::ScheduledReports)
        .storage_config(
            InstanceStorageConfig::builder()
                .storage_type(StorageType::S3)
                .s3_config(
                    S3Config::builder()
                        .bucket_name("reports")
                        .bucket_prefix("r")
                        .build()
                        .expect("s3"),
                )
                .build()
                .expect("config"),
        )
        .send()
        .await
        .expect("a type the spec never lists");
    test_kit::wait_until("the drift repaired", DEADLINE, || async {
        let now = config_view(&s, &id).await;
        let ok = now.origins == [ORIGIN]
            && now.functions == [function("lookup"), function("route")]
            && now.storage.contains_key("SCHEDULED_REPORTS");
        if ok { Ok(now) } else { Err(format!("{now:?}")) }
    })
    .await;
    test_kit::wait_until("the CTR stream restored", DEADLINE, || async {
        let ctr = other
            .list_instance_storage_configs()
            .instance_id(&id)
            .resource_type(InstanceStorageResourceType::ContactTraceRecords)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let arn = ctr.storage_configs()[0]
            .kinesis_firehose_config()
            .map(|f| f.firehose_arn().to_owned());
        if arn.as_deref() == Some(CTR_FIREHOSE) {
            Ok(())
        } else {
            Err(format!("{arn:?}"))
        }
    })
    .await;

    // A type removed from the list is disassociated; status forgets it.
    let mut spec = configured_spec("configured-e2e");
    spec["storageConfigs"]
        .as_array_mut()
        .expect("a list")
        .retain(|c| c["resourceType"] != "CHAT_TRANSCRIPTS");
    s.merge_patch(
        name,
        json!({ "spec": { "storageConfigs": spec["storageConfigs"] } }),
    )
    .await;
    let object = s
        .wait_for(name, "CHAT_TRANSCRIPTS forgotten", |o| {
            o.data
                .pointer("/status/storageConfigs/CHAT_TRANSCRIPTS")
                .is_none()
                && super::ready_now(o)
        })
        .await;
    assert!(
        object
            .data
            .pointer("/status/storageConfigs/CALL_RECORDINGS")
            .is_some()
    );
    let view = config_view(&s, &id).await;
    assert!(!view.storage.contains_key("CHAT_TRANSCRIPTS"), "{view:?}");
    assert!(
        view.storage.contains_key("SCHEDULED_REPORTS"),
        "never listed: left alone"
    );

    // One item fails (a function that does not exist): the others converge.
    s.sim
        .set_config(&ConfigPatch {
            missing_resource_pattern: Some(Some("missing".into())),
            ..ConfigPatch::default()
        })
        .await;
    s.merge_patch(
        name,
        json!({ "spec": {
            "lambdaFunctions": [function("lookup"), function("route"), function("missing-fn")],
            "approvedOrigins": [ORIGIN, "https://second.example.com"],
        } }),
    )
    .await;
    let failed = s
        .wait_for(name, "Ready=False/ConfigurationFailed", |o| {
            condition(o, "Ready").is_some_and(|c| c.reason == "ConfigurationFailed")
        })
        .await;
    let message = condition(&failed, "Ready")
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(message.contains("lambdaFunctions[2]"), "{message}");
    assert!(message.contains("ResourceNotFoundException"), "{message}");
    assert!(is_true(&failed, "Reconciling", Some("RetryingAfterError")));
    test_kit::wait_until("the other item applied", DEADLINE, || async {
        let now = config_view(&s, &id).await;
        if now.origins.len() == 2 {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    })
    .await;
    // The function appears: Ready again.
    s.sim
        .set_config(&ConfigPatch {
            missing_resource_pattern: Some(None),
            ..ConfigPatch::default()
        })
        .await;
    s.wait_ready(name).await;

    // A resource type AWS may add later is admitted; AWS's refusal shows, naming the item.
    let mut spec = configured_spec("configured-e2e");
    let future = json!({ "resourceType": "FUTURE_TYPE",
        "s3": { "bucketName": "future", "bucketPrefix": "f" } });
    spec["storageConfigs"]
        .as_array_mut()
        .expect("a list")
        .push(future);
    s.merge_patch(
        name,
        json!({ "spec": { "storageConfigs": spec["storageConfigs"] } }),
    )
    .await;
    let refused = s
        .wait_for(name, "the future type refused by AWS", |o| {
            condition(o, "Ready").is_some_and(|c| {
                c.reason == "ConfigurationFailed"
                    && c.message.contains("storageConfigs[FUTURE_TYPE]")
            })
        })
        .await;
    let message = condition(&refused, "Ready")
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(message.contains("InvalidParameterException"), "{message}");
    let mut spec = configured_spec("configured-e2e");
    spec["storageConfigs"]
        .as_array_mut()
        .expect("a list")
        .retain(|c| c["resourceType"] != "CHAT_TRANSCRIPTS");
    s.merge_patch(
        name,
        json!({ "spec": { "storageConfigs": spec["storageConfigs"] } }),
    )
    .await;
    s.wait_ready(name).await;

    // Deleting the instance makes no Disassociate call.
    let before = s.connect_calls().await.len();
    let output = test_kit::kubectl(&["delete", "connectinstance", name, "-n", &s.namespace]).await;
    assert!(output.success, "{output:?}");
    wait_gone(&s.api, name, DEADLINE).await;
    let calls = s.connect_calls().await;
    let disassociations: Vec<_> = calls[before..]
        .iter()
        .filter(|c| c.operation.starts_with("Disassociate"))
        .collect();
    assert!(disassociations.is_empty(), "{disassociations:?}");
}
