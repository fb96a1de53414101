//! Instance configuration through the real SDK: storage configurations (one per resource
//! type, the storage types AWS allows for each, the Kinesis Video prefix as AWS echoes it),
//! approved origins, Lambda functions, Lex V2 bots and security keys (pages, per-instance
//! limits, conflicts, a key echoed with other line breaks), ClientToken replays, and what is
//! refused before the instance is ACTIVE or when a referenced resource does not exist.

use aws_sdk_connect::error::ProvideErrorMetadata;
use aws_sdk_connect::types::{
    EncryptionConfig, EncryptionType, InstanceStorageConfig, InstanceStorageResourceType,
    KinesisFirehoseConfig, KinesisStreamConfig, KinesisVideoStreamConfig, LexBot, LexV2Bot,
    LexVersion, S3Config, StorageType,
};
use serde_json::json;

use super::{
    TestResult, calls_of, control_get, create, fast_config, put_config, sdk, start, wait_for_status,
};
use aws_sdk_connect::types::InstanceStatus;

const KMS: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn kms() -> Result<EncryptionConfig, Box<dyn std::error::Error>> {
    Ok(EncryptionConfig::builder()
        .encryption_type(EncryptionType::Kms)
        .key_id(KMS)
        .build()?)
}

fn s3(bucket: &str, prefix: &str) -> Result<InstanceStorageConfig, Box<dyn std::error::Error>> {
    Ok(InstanceStorageConfig::builder()
        .storage_type(StorageType::S3)
        .s3_config(
            S3Config::builder()
                .bucket_name(bucket)
                .bucket_prefix(prefix)
                .encryption_config(kms()?)
                .build()?,
        )
        .build()?)
}

fn stream(arn: &str) -> Result<InstanceStorageConfig, Box<dyn std::error::Error>> {
    Ok(InstanceStorageConfig::builder()
        .storage_type(StorageType::KinesisStream)
        .kinesis_stream_config(KinesisStreamConfig::builder().stream_arn(arn).build()?)
        .build()?)
}

/// A PEM public key whose base64 body is `body_len` characters, wrapped at `width` with
/// `newline`.
fn pem(seed: char, body_len: usize, width: usize, newline: &str) -> String {
    let body: String = std::iter::repeat_n(seed, body_len).collect();
    let lines: Vec<String> = body
        .as_bytes()
        .chunks(width)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----{newline}{}{newline}-----END PUBLIC KEY-----{newline}",
        lines.join(newline)
    )
}

async fn active_instance(
    client: &aws_sdk_connect::Client,
    alias: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let (id, _) = create(client, alias, None).await?;
    wait_for_status(client, &id, InstanceStatus::Active).await?;
    Ok(id)
}

#[tokio::test]
async fn storage_configs_one_per_type_with_the_storage_aws_allows_and_the_prefix_it_echoes()
-> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    let id = active_instance(&client, "storage").await?;

    let recordings = client
        .associate_instance_storage_config()
        .instance_id(&id)
        .resource_type(InstanceStorageResourceType::CallRecordings)
        .storage_config(s3("team-recordings", "connect/calls")?)
        .client_token("assoc-recordings-1")
        .send()
        .await?;
    let association = recordings
        .association_id()
        .ok_or("no AssociationId")?
        .to_owned();
    assert_eq!(association.len(), 64, "{association}");
    // A replay answers the same association and is marked as one.
    let replay = client
        .associate_instance_storage_config()
        .instance_id(&id)
        .resource_type(InstanceStorageResourceType::CallRecordings)
        .storage_config(s3("team-recordings", "connect/calls")?)
        .client_token("assoc-recordings-1")
        .send()
        .await?;
    assert_eq!(replay.association_id(), Some(association.as_str()));
    let logged = calls_of(&sim, "AssociateInstanceStorageConfig").await?;
    assert_eq!(logged.len(), 2);
    assert_eq!(logged[1]["clientToken"], "assoc-recordings-1");
    assert_eq!(logged[1]["replay"], true);
    // The same token for something else is refused.
    let err = client
        .associate_instance_storage_config()
        .instance_id(&id)
        .resource_type(InstanceStorageResourceType::CallRecordings)
        .storage_config(s3("other-bucket", "connect/calls")?)
        .client_token("assoc-recordings-1")
        .send()
        .await
        .expect_err("a token reused for other parameters");
    assert_eq!(err.code(), Some("InvalidRequestException"));
    // One association per type.
    let err = client
        .associate_instance_storage_config()
        .instance_id(&id)
        .resource_type(InstanceStorageResourceType::CallRecordings)
        .storage_config(s3("second", "p")?)
        .send()
        .await
        .expect_err("a second association of one type");
    assert_eq!(err.code(), Some("ResourceConflictException"));
    // Storage types AWS does not allow for the type.
    let err = client
        .associate_instance_storage_config()
        .instance_id(&id)
        .resource_type(InstanceStorageResourceType::ChatTranscripts)
        .storage_config(stream("arn:aws:kinesis:us-east-1:111122223333:stream/s")?)
        .send()
        .await
        .expect_err("chat transcripts on a stream");
    assert_eq!(err.code(), Some("InvalidRequestException"));
    assert!(
        err.message()
            .unwrap_or_default()
            .contains("CHAT_TRANSCRIPTS"),
        "{err:?}"
    );
    let err = client
        .associate_instance_storage_config()
        .instance_id(&id)
        .resource_type(InstanceStorageResourceType::from("FUTURE_TYPE"))
        .storage_config(s3("b", "p")?)
        .send()
        .await
        .expect_err("a type the simulator does not know");
    assert_eq!(err.code(), Some("InvalidParameterException"));

    let listed = client
        .list_instance_storage_configs()
        .instance_id(&id)
        .resource_type(InstanceStorageResourceType::CallRecordings)
        .send()
        .await?;
    let configs = listed.storage_configs();
    assert_eq!(configs.len(), 1);
    assert_eq!(configs[0].association_id(), Some(association.as_str()));
    let bucket = configs[0].s3_config().ok_or("no S3Config")?;
    assert_eq!(bucket.bucket_name(), "team-recordings");
    assert_eq!(bucket.bucket_prefix(), "connect/calls");
    assert_eq!(
        bucket.encryption_config().map(EncryptionConfig::key_id),
        Some(KMS)
    );
    let other_type = client
        .list_instance_storage_configs()
        .instance_id(&id)
        .resource_type(InstanceStorageResourceType::ChatTranscripts)
        .send()
        .await?;
    assert!(other_type.storage_configs().is_empty());

    // Media streams: Kinesis Video, its prefix echoed for the instance's alias.
    let media = client
        .associate_instance_storage_config()
        .instance_id(&id)
        .resource_type(InstanceStorageResourceType::MediaStreams)
        .storage_config(
            InstanceStorageConfig::builder()
                .storage_type(StorageType::KinesisVideoStream)
                .kinesis_video_stream_config(
                    KinesisVideoStreamConfig::builder()
                        .prefix("media")
                        .retention_period_hours(24)
                        .encryption_config(kms()?)
                        .build()?,
                )
                .build()?,
        )
        .send()
        .await?;
    let media_id = media.association_id().ok_or("no AssociationId")?.to_owned();
    let described = client
        .describe_instance_storage_config()
        .instance_id(&id)
        .association_id(&media_id)
        .resource_type(InstanceStorageResourceType::MediaStreams)
        .send()
        .await?;
    let video = described
        .storage_config()
        .and_then(InstanceStorageConfig::kinesis_video_stream_config)
        .ok_or("no KinesisVideoStreamConfig")?;
    assert_eq!(video.prefix(), "media-connect-storage-contact-");
    assert_eq!(video.retention_period_hours(), 24);

    // Contact trace records: a stream, then Firehose, under the same association.
    let ctr = client
        .associate_instance_storage_config()
        .instance_id(&id)
        .resource_type(InstanceStorageResourceType::ContactTraceRecords)
        .storage_config(stream("arn:aws:kinesis:us-east-1:111122223333:stream/ctr")?)
        .send()
        .await?;
    let ctr_id = ctr.association_id().ok_or("no AssociationId")?.to_owned();
    client
        .update_instance_storage_config()
        .instance_id(&id)
        .association_id(&ctr_id)
        .resource_type(InstanceStorageResourceType::ContactTraceRecords)
        .storage_config(
            InstanceStorageConfig::builder()
                .storage_type(StorageType::KinesisFirehose)
                .kinesis_firehose_config(
                    KinesisFirehoseConfig::builder()
                        .firehose_arn("arn:aws:firehose:us-east-1:111122223333:deliverystream/ctr")
                        .build()?,
                )
                .build()?,
        )
        .client_token("update-ctr-1")
        .send()
        .await?;
    let ctrs = client
        .list_instance_storage_configs()
        .instance_id(&id)
        .resource_type(InstanceStorageResourceType::ContactTraceRecords)
        .send()
        .await?;
    assert_eq!(ctrs.storage_configs().len(), 1);
    assert_eq!(
        ctrs.storage_configs()[0].association_id(),
        Some(ctr_id.as_str())
    );
    assert_eq!(
        ctrs.storage_configs()[0].storage_type(),
        &StorageType::KinesisFirehose
    );

    // Disassociated, and then unknown.
    client
        .disassociate_instance_storage_config()
        .instance_id(&id)
        .association_id(&ctr_id)
        .resource_type(InstanceStorageResourceType::ContactTraceRecords)
        .client_token("disassociate-ctr-1")
        .send()
        .await?;
    let err = client
        .describe_instance_storage_config()
        .instance_id(&id)
        .association_id(&ctr_id)
        .resource_type(InstanceStorageResourceType::ContactTraceRecords)
        .send()
        .await
        .expect_err("gone");
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    let disassociations = calls_of(&sim, "DisassociateInstanceStorageConfig").await?;
    assert_eq!(disassociations[0]["clientToken"], "disassociate-ctr-1");

    let view = control_get(&sim, "/_sim/instances").await?;
    let types: Vec<&str> = view[0]["storageConfigs"]
        .as_array()
        .ok_or("storageConfigs in /_sim/instances")?
        .iter()
        .filter_map(|c| c["resourceType"].as_str())
        .collect();
    assert_eq!(types, ["CALL_RECORDINGS", "MEDIA_STREAMS"]);
    Ok(())
}

#[tokio::test]
async fn origins_functions_bots_and_keys_page_conflict_and_stop_at_their_limits() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    let id = active_instance(&client, "associations").await?;

    for origin in ["https://crm.example.com", "https://crm.example.com:8443"] {
        client
            .associate_approved_origin()
            .instance_id(&id)
            .origin(origin)
            .send()
            .await?;
    }
    let err = client
        .associate_approved_origin()
        .instance_id(&id)
        .origin("https://crm.example.com")
        .send()
        .await
        .expect_err("an origin twice");
    assert_eq!(err.code(), Some("ResourceConflictException"));
    let err = client
        .associate_approved_origin()
        .instance_id(&id)
        .origin("crm.example.com/path")
        .send()
        .await
        .expect_err("not an origin");
    assert_eq!(err.code(), Some("InvalidParameterException"));
    client
        .disassociate_approved_origin()
        .instance_id(&id)
        .origin("https://crm.example.com:8443")
        .client_token("origin-off")
        .send()
        .await?;
    let origins: Vec<String> = client
        .list_approved_origins()
        .instance_id(&id)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await?;
    assert_eq!(origins, ["https://crm.example.com"]);

    // Fifty Lambda functions over two pages of 25, and no fifty-first.
    let function = |n: usize| format!("arn:aws:lambda:us-east-1:111122223333:function:f{n}");
    for n in 0..50 {
        client
            .associate_lambda_function()
            .instance_id(&id)
            .function_arn(function(n))
            .client_token(format!("fn-{n}"))
            .send()
            .await?;
    }
    let err = client
        .associate_lambda_function()
        .instance_id(&id)
        .function_arn(function(50))
        .send()
        .await
        .expect_err("a fifty-first function");
    assert_eq!(err.code(), Some("ServiceQuotaExceededException"));
    let first_page = client
        .list_lambda_functions()
        .instance_id(&id)
        .send()
        .await?;
    assert_eq!(first_page.lambda_functions().len(), 25);
    assert!(first_page.next_token().is_some());
    let functions: Vec<String> = client
        .list_lambda_functions()
        .instance_id(&id)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await?;
    assert_eq!(functions, (0..50).map(function).collect::<Vec<_>>());
    client
        .disassociate_lambda_function()
        .instance_id(&id)
        .function_arn(function(7))
        .send()
        .await?;
    let err = client
        .disassociate_lambda_function()
        .instance_id(&id)
        .function_arn(function(7))
        .send()
        .await
        .expect_err("already gone");
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    // Lex V2 bots; V1 is refused.
    let alias = |n: usize| format!("arn:aws:lex:us-east-1:111122223333:bot-alias/BOT{n}/ALIAS{n}");
    for n in 0..2 {
        client
            .associate_bot()
            .instance_id(&id)
            .lex_v2_bot(LexV2Bot::builder().alias_arn(alias(n)).build())
            .send()
            .await?;
    }
    let err = client
        .associate_bot()
        .instance_id(&id)
        .lex_bot(
            LexBot::builder()
                .name("old")
                .lex_region("us-east-1")
                .build()?,
        )
        .send()
        .await
        .expect_err("a Lex V1 bot");
    assert_eq!(err.code(), Some("InvalidRequestException"));
    client
        .disassociate_bot()
        .instance_id(&id)
        .lex_v2_bot(LexV2Bot::builder().alias_arn(alias(0)).build())
        .send()
        .await?;
    let bots = client
        .list_bots()
        .instance_id(&id)
        .lex_version(LexVersion::V2)
        .send()
        .await?;
    let listed: Vec<&str> = bots
        .lex_bots()
        .iter()
        .filter_map(|b| b.lex_v2_bot().and_then(LexV2Bot::alias_arn))
        .collect();
    assert_eq!(listed, [alias(1).as_str()]);
    let v1 = client
        .list_bots()
        .instance_id(&id)
        .lex_version(LexVersion::V1)
        .send()
        .await?;
    assert!(v1.lex_bots().is_empty());

    // Two security keys; a key is echoed at 64 characters a line; no third.
    let sent = pem('A', 300, 76, "\r\n");
    let key = client
        .associate_security_key()
        .instance_id(&id)
        .key(&sent)
        .send()
        .await?;
    let key_id = key.association_id().ok_or("no AssociationId")?.to_owned();
    let err = client
        .associate_security_key()
        .instance_id(&id)
        .key(pem('A', 300, 64, "\n"))
        .send()
        .await
        .expect_err("the same key with other line breaks");
    assert_eq!(err.code(), Some("ResourceConflictException"));
    client
        .associate_security_key()
        .instance_id(&id)
        .key(pem('B', 300, 64, "\n"))
        .send()
        .await?;
    let err = client
        .associate_security_key()
        .instance_id(&id)
        .key(pem('C', 300, 64, "\n"))
        .send()
        .await
        .expect_err("a third key");
    assert_eq!(err.code(), Some("ServiceQuotaExceededException"));
    let keys = client.list_security_keys().instance_id(&id).send().await?;
    assert_eq!(keys.security_keys().len(), 2);
    let first = &keys.security_keys()[0];
    assert_eq!(first.association_id(), Some(key_id.as_str()));
    assert!(first.creation_time().is_some());
    let echoed = first.key().ok_or("no Key")?;
    assert_ne!(echoed, sent, "echoed with other line breaks");
    assert!(echoed.lines().all(|l| l.len() <= 64), "{echoed}");
    assert_eq!(echoed, pem('A', 300, 64, "\n").trim_end());
    client
        .disassociate_security_key()
        .instance_id(&id)
        .association_id(&key_id)
        .client_token("key-off")
        .send()
        .await?;
    assert_eq!(
        client
            .list_security_keys()
            .instance_id(&id)
            .send()
            .await?
            .security_keys()
            .len(),
        1
    );

    let view = &control_get(&sim, "/_sim/instances").await?[0];
    assert_eq!(view["approvedOrigins"], json!(["https://crm.example.com"]));
    assert_eq!(view["lambdaFunctions"].as_array().map(Vec::len), Some(49));
    assert_eq!(view["lexV2Bots"], json!([alias(1)]));
    assert_eq!(view["securityKeys"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[tokio::test]
async fn configuration_waits_for_active_and_refuses_resources_that_do_not_exist() -> TestResult {
    let mut config = fast_config();
    config.creation_delay = std::time::Duration::from_secs(3);
    let sim = start(config).await?;
    let client = sdk(&sim);
    let (id, _) = create(&client, "early", None).await?;
    let err = client
        .list_approved_origins()
        .instance_id(&id)
        .send()
        .await
        .expect_err("not ACTIVE yet");
    assert_eq!(err.code(), Some("InvalidRequestException"));
    let err = client
        .list_lambda_functions()
        .instance_id("00000000-0000-4000-8000-000000000000")
        .send()
        .await
        .expect_err("no such instance");
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    wait_for_status(&client, &id, InstanceStatus::Active).await?;

    put_config(&sim, json!({ "missingResourcePattern": "missing" })).await?;
    let err = client
        .associate_lambda_function()
        .instance_id(&id)
        .function_arn("arn:aws:lambda:us-east-1:111122223333:function:missing-fn")
        .send()
        .await
        .expect_err("a function that does not exist");
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    let err = client
        .associate_instance_storage_config()
        .instance_id(&id)
        .resource_type(InstanceStorageResourceType::CallRecordings)
        .storage_config(s3("missing-bucket", "p")?)
        .send()
        .await
        .expect_err("a bucket that does not exist");
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    client
        .associate_lambda_function()
        .instance_id(&id)
        .function_arn("arn:aws:lambda:us-east-1:111122223333:function:present")
        .send()
        .await?;
    let err = put_config(&sim, json!({ "missingResourcePattern": "(" })).await;
    assert!(err.is_err(), "an invalid regex is refused");
    Ok(())
}
