//! Storage configurations of an instance: Associate / Describe / List / Update /
//! DisassociateInstanceStorageConfig.
//!
//! What the model holds is what AWS would echo: a Kinesis Video Streams prefix comes back as
//! `<prefix>-connect-<alias>-contact-`, so a client that compares its request with the
//! answer literally sees a difference that is none.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Instance, Model, Reply, Settings, list_page};
use crate::errors::ApiError;
use crate::validate::{check_length, check_service_arn};

/// Page size of ListInstanceStorageConfigs (its `maxResults` allows at most 10).
pub(crate) const LIST_STORAGE_CONFIGS_MAX_RESULTS: usize = 10;

/// `InstanceStorageResourceType` as botocore's model has it today, each with the storage
/// types AWS documents for it.
pub(crate) const STORAGE_RESOURCE_TYPES: [(&str, &[&str]); 13] = [
    ("CHAT_TRANSCRIPTS", &["S3"]),
    ("CALL_RECORDINGS", &["S3"]),
    ("SCHEDULED_REPORTS", &["S3"]),
    ("MEDIA_STREAMS", &["KINESIS_VIDEO_STREAM"]),
    (
        "CONTACT_TRACE_RECORDS",
        &["KINESIS_STREAM", "KINESIS_FIREHOSE"],
    ),
    ("AGENT_EVENTS", &["KINESIS_STREAM"]),
    ("REAL_TIME_CONTACT_ANALYSIS_SEGMENTS", &["KINESIS_STREAM"]),
    ("ATTACHMENTS", &["S3"]),
    ("CONTACT_EVALUATIONS", &["S3"]),
    ("SCREEN_RECORDINGS", &["S3"]),
    (
        "REAL_TIME_CONTACT_ANALYSIS_CHAT_SEGMENTS",
        &["KINESIS_STREAM"],
    ),
    (
        "REAL_TIME_CONTACT_ANALYSIS_VOICE_SEGMENTS",
        &["KINESIS_STREAM"],
    ),
    ("EMAIL_MESSAGES", &["S3"]),
];

/// `EncryptionConfig`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct EncryptionConfig {
    #[serde(default)]
    pub(crate) encryption_type: String,
    #[serde(default)]
    pub(crate) key_id: String,
}

/// `S3Config`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct S3Config {
    #[serde(default)]
    pub(crate) bucket_name: String,
    #[serde(default)]
    pub(crate) bucket_prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) encryption_config: Option<EncryptionConfig>,
}

/// `KinesisVideoStreamConfig`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct KinesisVideoStreamConfig {
    #[serde(default)]
    pub(crate) prefix: String,
    #[serde(default)]
    pub(crate) retention_period_hours: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) encryption_config: Option<EncryptionConfig>,
}

/// `KinesisStreamConfig`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct KinesisStreamConfig {
    #[serde(default)]
    pub(crate) stream_arn: String,
}

/// `KinesisFirehoseConfig`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct KinesisFirehoseConfig {
    #[serde(default)]
    pub(crate) firehose_arn: String,
}

/// `InstanceStorageConfig`, as requests send it and as the model stores and answers it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StorageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) association_id: Option<String>,
    #[serde(default)]
    pub(crate) storage_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) s3_config: Option<S3Config>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kinesis_video_stream_config: Option<KinesisVideoStreamConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kinesis_stream_config: Option<KinesisStreamConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kinesis_firehose_config: Option<KinesisFirehoseConfig>,
}

/// Body of AssociateInstanceStorageConfig and UpdateInstanceStorageConfig.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StorageConfigRequest {
    pub(crate) resource_type: Option<String>,
    pub(crate) storage_config: Option<StorageConfig>,
    pub(crate) client_token: Option<String>,
}

/// One association of an instance.
#[derive(Clone, Debug)]
pub(crate) struct StorageAssociation {
    pub(crate) resource_type: String,
    /// As AWS echoes it, `AssociationId` included.
    pub(crate) config: StorageConfig,
}

fn check_resource_type(resource_type: Option<&str>) -> Result<&'static [&'static str], ApiError> {
    let Some(resource_type) = resource_type else {
        return Err(ApiError::invalid_parameter(
            "1 validation error detected: Value null at 'resourceType' failed to satisfy constraint: Member must not be null",
        ));
    };
    STORAGE_RESOURCE_TYPES
        .iter()
        .find(|(name, _)| *name == resource_type)
        .map(|(_, storage)| *storage)
        .ok_or_else(|| {
            ApiError::invalid_parameter(format!(
                "1 validation error detected: Value '{resource_type}' at 'resourceType' failed to satisfy constraint: \
                 Member must satisfy enum value set: [{}]",
                STORAGE_RESOURCE_TYPES
                    .iter()
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

fn check_encryption(field: &str, encryption: &EncryptionConfig) -> Result<(), ApiError> {
    if encryption.encryption_type != "KMS" {
        return Err(ApiError::invalid_parameter(format!(
            "1 validation error detected: Value '{}' at '{field}.encryptionType' failed to satisfy constraint: \
             Member must satisfy enum value set: [KMS]",
            encryption.encryption_type
        )));
    }
    check_length(&format!("{field}.keyId"), &encryption.key_id, 128)
}

/// Checks a storage configuration for `resource_type` and returns it as AWS would store it
/// (the Kinesis Video prefix expanded for the instance's alias).
fn validated(
    resource_type: Option<&str>,
    config: Option<StorageConfig>,
    alias: &str,
) -> Result<(String, StorageConfig), ApiError> {
    let allowed = check_resource_type(resource_type)?;
    let resource_type = resource_type.unwrap_or_default().to_owned();
    let Some(mut config) = config else {
        return Err(ApiError::invalid_parameter(
            "1 validation error detected: Value null at 'storageConfig' failed to satisfy constraint: Member must not be null",
        ));
    };
    config.association_id = None;
    let given = [
        ("S3", config.s3_config.is_some()),
        (
            "KINESIS_VIDEO_STREAM",
            config.kinesis_video_stream_config.is_some(),
        ),
        ("KINESIS_STREAM", config.kinesis_stream_config.is_some()),
        ("KINESIS_FIREHOSE", config.kinesis_firehose_config.is_some()),
    ];
    if !given.iter().any(|(name, _)| *name == config.storage_type) {
        return Err(ApiError::invalid_parameter(format!(
            "1 validation error detected: Value '{}' at 'storageConfig.storageType' failed to satisfy constraint: \
             Member must satisfy enum value set: [S3, KINESIS_VIDEO_STREAM, KINESIS_STREAM, KINESIS_FIREHOSE]",
            config.storage_type
        )));
    }
    for (name, present) in given {
        if present != (name == config.storage_type) {
            return Err(ApiError::invalid_parameter(format!(
                "StorageType {} requires its own configuration and no other one.",
                config.storage_type
            )));
        }
    }
    if !allowed.contains(&config.storage_type.as_str()) {
        return Err(ApiError::invalid_request(format!(
            "StorageType {} is not supported for resource type {resource_type}; supported: {}.",
            config.storage_type,
            allowed.join(", ")
        )));
    }
    if let Some(s3) = &config.s3_config {
        check_length("storageConfig.s3Config.bucketName", &s3.bucket_name, 128)?;
        check_length(
            "storageConfig.s3Config.bucketPrefix",
            &s3.bucket_prefix,
            128,
        )?;
        if let Some(encryption) = &s3.encryption_config {
            check_encryption("storageConfig.s3Config.encryptionConfig", encryption)?;
        }
    }
    if let Some(video) = &mut config.kinesis_video_stream_config {
        check_length(
            "storageConfig.kinesisVideoStreamConfig.prefix",
            &video.prefix,
            128,
        )?;
        match video.retention_period_hours {
            Some(hours) if (0..=87_600).contains(&hours) => {}
            _ => {
                return Err(ApiError::invalid_parameter(
                    "1 validation error detected: Value at 'storageConfig.kinesisVideoStreamConfig.retentionPeriodHours' \
                     failed to satisfy constraint: Member must have value between 0 and 87600",
                ));
            }
        }
        match &video.encryption_config {
            Some(encryption) => check_encryption(
                "storageConfig.kinesisVideoStreamConfig.encryptionConfig",
                encryption,
            )?,
            None => {
                return Err(ApiError::invalid_parameter(
                    "1 validation error detected: Value null at 'storageConfig.kinesisVideoStreamConfig.encryptionConfig' \
                     failed to satisfy constraint: Member must not be null",
                ));
            }
        }
        video.prefix = format!("{}-connect-{alias}-contact-", video.prefix);
    }
    if let Some(stream) = &config.kinesis_stream_config {
        check_service_arn("StreamArn", &stream.stream_arn, "kinesis")?;
    }
    if let Some(firehose) = &config.kinesis_firehose_config {
        check_service_arn("FirehoseArn", &firehose.firehose_arn, "firehose")?;
    }
    Ok((resource_type, config))
}

/// The ARNs a storage configuration refers to (for `missingResourcePattern`).
fn referenced(config: &StorageConfig) -> Vec<&str> {
    let mut names = Vec::new();
    if let Some(s3) = &config.s3_config {
        names.push(s3.bucket_name.as_str());
        names.extend(s3.encryption_config.as_ref().map(|e| e.key_id.as_str()));
    }
    if let Some(video) = &config.kinesis_video_stream_config {
        names.extend(video.encryption_config.as_ref().map(|e| e.key_id.as_str()));
    }
    names.extend(
        config
            .kinesis_stream_config
            .as_ref()
            .map(|s| s.stream_arn.as_str()),
    );
    names.extend(
        config
            .kinesis_firehose_config
            .as_ref()
            .map(|f| f.firehose_arn.as_str()),
    );
    names
}

impl Instance {
    fn storage_of(&self, resource_type: &str, association_id: &str) -> Option<usize> {
        self.storage.iter().position(|a| {
            a.resource_type == resource_type
                && a.config.association_id.as_deref() == Some(association_id)
        })
    }
}

impl Model {
    /// AssociateInstanceStorageConfig: one association per resource type.
    pub(crate) fn associate_storage_config(
        &mut self,
        settings: &Settings<'_>,
        id: &str,
        request: StorageConfigRequest,
    ) -> Result<Reply, ApiError> {
        let alias = self.configurable(id)?.alias.clone();
        let (resource_type, config) = validated(
            request.resource_type.as_deref(),
            request.storage_config,
            &alias,
        )?;
        let fingerprint = json!([resource_type, config]).to_string();
        let token = request.client_token.as_deref();
        if let Some(reply) =
            self.replayed(token, "AssociateInstanceStorageConfig", id, &fingerprint)?
        {
            return Ok(reply);
        }
        settings.check_referenced(&referenced(&config))?;
        let instance = self.configurable_mut(id)?;
        if instance
            .storage
            .iter()
            .any(|a| a.resource_type == resource_type)
        {
            return Err(ApiError::resource_conflict(format!(
                "A storage configuration for resource type {resource_type} is already associated with instance {id}."
            )));
        }
        let association_id = self.association_id();
        let mut stored = config;
        stored.association_id = Some(association_id.clone());
        self.configurable_mut(id)?.storage.push(StorageAssociation {
            resource_type,
            config: stored,
        });
        let body = json!({ "AssociationId": association_id });
        self.remember(
            token,
            "AssociateInstanceStorageConfig",
            id,
            fingerprint,
            Some(body.clone()),
        );
        Ok(Reply::new(Some(body), Some(id.to_owned())))
    }

    /// DescribeInstanceStorageConfig.
    pub(crate) fn describe_storage_config(
        &self,
        id: &str,
        association_id: &str,
        resource_type: Option<&str>,
    ) -> Result<Reply, ApiError> {
        check_resource_type(resource_type)?;
        let instance = self.configurable(id)?;
        let index = instance
            .storage_of(resource_type.unwrap_or_default(), association_id)
            .ok_or_else(|| association_not_found(id, association_id))?;
        Ok(Reply::new(
            Some(json!({ "StorageConfig": instance.storage[index].config })),
            Some(id.to_owned()),
        ))
    }

    /// ListInstanceStorageConfigs: the associations of one resource type.
    pub(crate) fn list_storage_configs(
        &self,
        id: &str,
        resource_type: Option<&str>,
        max_results: Option<&str>,
        next_token: Option<&str>,
    ) -> Result<Reply, ApiError> {
        check_resource_type(resource_type)?;
        let instance = self.configurable(id)?;
        let configs: Vec<&StorageConfig> = instance
            .storage
            .iter()
            .filter(|a| Some(a.resource_type.as_str()) == resource_type)
            .map(|a| &a.config)
            .collect();
        let body = list_page(
            "StorageConfigs",
            &configs,
            max_results,
            next_token,
            LIST_STORAGE_CONFIGS_MAX_RESULTS,
            "storage",
        )?;
        Ok(Reply::new(Some(body), Some(id.to_owned())))
    }

    /// UpdateInstanceStorageConfig: the association keeps its id.
    pub(crate) fn update_storage_config(
        &mut self,
        settings: &Settings<'_>,
        id: &str,
        association_id: &str,
        resource_type: Option<&str>,
        request: StorageConfigRequest,
    ) -> Result<Reply, ApiError> {
        let alias = self.configurable(id)?.alias.clone();
        let (resource_type, mut config) = validated(resource_type, request.storage_config, &alias)?;
        let fingerprint = json!([resource_type, association_id, config]).to_string();
        let token = request.client_token.as_deref();
        if let Some(reply) =
            self.replayed(token, "UpdateInstanceStorageConfig", id, &fingerprint)?
        {
            return Ok(reply);
        }
        settings.check_referenced(&referenced(&config))?;
        let instance = self.configurable_mut(id)?;
        let index = instance
            .storage_of(&resource_type, association_id)
            .ok_or_else(|| association_not_found(id, association_id))?;
        config.association_id = Some(association_id.to_owned());
        instance.storage[index].config = config;
        self.remember(token, "UpdateInstanceStorageConfig", id, fingerprint, None);
        Ok(Reply::new(None, Some(id.to_owned())))
    }

    /// DisassociateInstanceStorageConfig.
    pub(crate) fn disassociate_storage_config(
        &mut self,
        id: &str,
        association_id: &str,
        resource_type: Option<&str>,
        client_token: Option<&str>,
    ) -> Result<Reply, ApiError> {
        check_resource_type(resource_type)?;
        let resource_type = resource_type.unwrap_or_default();
        let fingerprint = json!([resource_type, association_id]).to_string();
        if let Some(reply) = self.replayed(
            client_token,
            "DisassociateInstanceStorageConfig",
            id,
            &fingerprint,
        )? {
            return Ok(reply);
        }
        let instance = self.configurable_mut(id)?;
        let index = instance
            .storage_of(resource_type, association_id)
            .ok_or_else(|| association_not_found(id, association_id))?;
        instance.storage.remove(index);
        self.remember(
            client_token,
            "DisassociateInstanceStorageConfig",
            id,
            fingerprint,
            None,
        );
        Ok(Reply::new(None, Some(id.to_owned())))
    }
}

fn association_not_found(id: &str, association_id: &str) -> ApiError {
    ApiError::resource_not_found(format!(
        "Association {association_id} was not found for instance {id}."
    ))
}
