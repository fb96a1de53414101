//! The instance-configuration calls: storage configurations, approved origins, Lambda
//! functions, Lex V2 bots and security keys. Each List reads every page; each write carries
//! the ClientToken it is given (the SDK would otherwise invent a random one, and a retry
//! would not be a replay). Every call goes through the same limiter, fence, metrics and
//! error classification as the others, keyed by its own operation.

use aws_sdk_connect::types::{
    EncryptionConfig, EncryptionType, InstanceStorageConfig, InstanceStorageResourceType,
    KinesisFirehoseConfig, KinesisStreamConfig, KinesisVideoStreamConfig, LexV2Bot, LexVersion,
    S3Config, StorageType,
};

use std::future::Future;

use aws_sdk_connect::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::http::Response as HttpResponse;

use super::client::{ConnectClient, Target, malformed};
use super::error::{AwsError, Operation};
use crate::api::{
    KinesisFirehoseStorage, KinesisStreamStorage, KinesisVideoStreamStorage, S3Storage,
    StorageConfigSpec,
};

/// A storage configuration as AWS reports it: its association id and what it stores to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageAssociation {
    /// AWS's id of the association.
    pub association_id: String,
    /// The configuration, in the spec's terms (`resourceType` included).
    pub config: StorageConfigSpec,
}

/// A security key as AWS reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityKey {
    /// AWS's id of the association.
    pub association_id: String,
    /// The PEM, as AWS echoes it.
    pub key: String,
}

fn kms(key: &str) -> Result<EncryptionConfig, AwsError> {
    EncryptionConfig::builder()
        .encryption_type(EncryptionType::Kms)
        .key_id(key)
        .build()
        .map_err(|e| {
            malformed(
                Operation::AssociateInstanceStorageConfig,
                &format!("encryption config: {e}"),
            )
        })
}

/// The SDK's `InstanceStorageConfig` for a spec entry.
fn to_sdk(
    spec: &StorageConfigSpec,
    operation: Operation,
) -> Result<InstanceStorageConfig, AwsError> {
    let bad = |e: &dyn std::fmt::Display| malformed(operation, &format!("storage config: {e}"));
    let mut b = InstanceStorageConfig::builder();
    if let Some(s3) = &spec.s3 {
        let mut c = S3Config::builder()
            .bucket_name(&s3.bucket_name)
            .bucket_prefix(&s3.bucket_prefix);
        if let Some(key) = &s3.kms_key_arn {
            c = c.encryption_config(kms(key)?);
        }
        b = b
            .storage_type(StorageType::S3)
            .s3_config(c.build().map_err(|e| bad(&e))?);
    } else if let Some(video) = &spec.kinesis_video_stream {
        b = b
            .storage_type(StorageType::KinesisVideoStream)
            .kinesis_video_stream_config(
                KinesisVideoStreamConfig::builder()
                    .prefix(&video.prefix)
                    .retention_period_hours(video.retention_period_hours)
                    .encryption_config(kms(&video.kms_key_arn)?)
                    .build()
                    .map_err(|e| bad(&e))?,
            );
    } else if let Some(stream) = &spec.kinesis_stream {
        b = b
            .storage_type(StorageType::KinesisStream)
            .kinesis_stream_config(
                KinesisStreamConfig::builder()
                    .stream_arn(&stream.stream_arn)
                    .build()
                    .map_err(|e| bad(&e))?,
            );
    } else if let Some(firehose) = &spec.kinesis_firehose {
        b = b
            .storage_type(StorageType::KinesisFirehose)
            .kinesis_firehose_config(
                KinesisFirehoseConfig::builder()
                    .firehose_arn(&firehose.firehose_arn)
                    .build()
                    .map_err(|e| bad(&e))?,
            );
    }
    b.build().map_err(|e| bad(&e))
}

/// A spec entry for what AWS reports (`None` for a storage type the operator does not
/// know: it is reported as a difference, never silently taken as equal).
fn from_sdk(resource_type: &str, config: &InstanceStorageConfig) -> Option<StorageConfigSpec> {
    let mut spec = StorageConfigSpec {
        resource_type: resource_type.to_owned(),
        s3: None,
        kinesis_video_stream: None,
        kinesis_stream: None,
        kinesis_firehose: None,
    };
    match config.storage_type() {
        StorageType::S3 => {
            let s3 = config.s3_config()?;
            spec.s3 = Some(S3Storage {
                bucket_name: s3.bucket_name().to_owned(),
                bucket_prefix: s3.bucket_prefix().to_owned(),
                kms_key_arn: s3.encryption_config().map(|e| e.key_id().to_owned()),
            });
        }
        StorageType::KinesisVideoStream => {
            let video = config.kinesis_video_stream_config()?;
            spec.kinesis_video_stream = Some(KinesisVideoStreamStorage {
                prefix: video.prefix().to_owned(),
                retention_period_hours: video.retention_period_hours(),
                kms_key_arn: video
                    .encryption_config()
                    .map(|e| e.key_id().to_owned())
                    .unwrap_or_default(),
            });
        }
        StorageType::KinesisStream => {
            spec.kinesis_stream = Some(KinesisStreamStorage {
                stream_arn: config.kinesis_stream_config()?.stream_arn().to_owned(),
            });
        }
        StorageType::KinesisFirehose => {
            spec.kinesis_firehose = Some(KinesisFirehoseStorage {
                firehose_arn: config.kinesis_firehose_config()?.firehose_arn().to_owned(),
            });
        }
        _ => return None,
    }
    Some(spec)
}

impl ConnectClient {
    /// Every page of a List call: `send` asks for the page after a token, `items` takes a
    /// page's items and its next token.
    async fn all_pages<P, T, E, Fut>(
        &self,
        target: &Target,
        operation: Operation,
        send: impl Fn(aws_sdk_connect::Client, Option<String>) -> Fut,
        items: impl Fn(P) -> Result<(Vec<T>, Option<String>), AwsError>,
    ) -> Result<Vec<T>, AwsError>
    where
        Fut: Future<Output = Result<P, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .call(target, operation, |c| send(c, next.clone()))
                .await?;
            let (page_items, token) = items(page)?;
            out.extend(page_items);
            match token {
                Some(token) if !token.is_empty() => next = Some(token),
                _ => return Ok(out),
            }
        }
    }

    /// ListInstanceStorageConfigs of one resource type, every page.
    pub async fn list_storage_configs(
        &self,
        target: &Target,
        instance_id: &str,
        resource_type: &str,
    ) -> Result<Vec<StorageAssociation>, AwsError> {
        self.all_pages(
            target,
            Operation::ListInstanceStorageConfigs,
            |c, next| {
                c.list_instance_storage_configs()
                    .instance_id(instance_id)
                    .resource_type(InstanceStorageResourceType::from(resource_type))
                    .set_next_token(next)
                    .send()
            },
            |page| {
                let associations = page
                    .storage_configs()
                    .iter()
                    .map(|config| match (config.association_id(), from_sdk(resource_type, config)) {
                        (Some(id), Some(spec)) => Ok(StorageAssociation {
                            association_id: id.to_owned(),
                            config: spec,
                        }),
                        _ => Err(malformed(
                            Operation::ListInstanceStorageConfigs,
                            &format!("a {resource_type} storage config without an association id or of an unknown storage type"),
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((associations, page.next_token().map(str::to_owned)))
            },
        )
        .await
    }

    /// AssociateInstanceStorageConfig; returns the new association's id.
    pub async fn associate_storage_config(
        &self,
        target: &Target,
        instance_id: &str,
        spec: &StorageConfigSpec,
        client_token: &str,
    ) -> Result<String, AwsError> {
        let operation = Operation::AssociateInstanceStorageConfig;
        let config = to_sdk(spec, operation)?;
        let out = self
            .call(target, operation, |c| {
                c.associate_instance_storage_config()
                    .instance_id(instance_id)
                    .resource_type(InstanceStorageResourceType::from(
                        spec.resource_type.as_str(),
                    ))
                    .storage_config(config)
                    .client_token(client_token)
                    .send()
            })
            .await?;
        out.association_id()
            .map(str::to_owned)
            .ok_or_else(|| malformed(operation, "no AssociationId in the answer"))
    }

    /// UpdateInstanceStorageConfig of an association.
    pub async fn update_storage_config(
        &self,
        target: &Target,
        instance_id: &str,
        association_id: &str,
        spec: &StorageConfigSpec,
        client_token: &str,
    ) -> Result<(), AwsError> {
        let operation = Operation::UpdateInstanceStorageConfig;
        let config = to_sdk(spec, operation)?;
        self.call(target, operation, |c| {
            c.update_instance_storage_config()
                .instance_id(instance_id)
                .association_id(association_id)
                .resource_type(InstanceStorageResourceType::from(
                    spec.resource_type.as_str(),
                ))
                .storage_config(config)
                .client_token(client_token)
                .send()
        })
        .await
        .map(|_| ())
    }

    /// DisassociateInstanceStorageConfig.
    pub async fn disassociate_storage_config(
        &self,
        target: &Target,
        instance_id: &str,
        resource_type: &str,
        association_id: &str,
        client_token: &str,
    ) -> Result<(), AwsError> {
        self.call(target, Operation::DisassociateInstanceStorageConfig, |c| {
            c.disassociate_instance_storage_config()
                .instance_id(instance_id)
                .association_id(association_id)
                .resource_type(InstanceStorageResourceType::from(resource_type))
                .client_token(client_token)
                .send()
        })
        .await
        .map(|_| ())
    }

    /// ListApprovedOrigins, every page.
    pub async fn list_approved_origins(
        &self,
        target: &Target,
        instance_id: &str,
    ) -> Result<Vec<String>, AwsError> {
        self.all_pages(
            target,
            Operation::ListApprovedOrigins,
            |c, next| {
                c.list_approved_origins()
                    .instance_id(instance_id)
                    .set_next_token(next)
                    .send()
            },
            |page| {
                Ok((
                    page.origins().to_vec(),
                    page.next_token().map(str::to_owned),
                ))
            },
        )
        .await
    }

    /// AssociateApprovedOrigin.
    pub async fn associate_approved_origin(
        &self,
        target: &Target,
        instance_id: &str,
        origin: &str,
        client_token: &str,
    ) -> Result<(), AwsError> {
        self.call(target, Operation::AssociateApprovedOrigin, |c| {
            c.associate_approved_origin()
                .instance_id(instance_id)
                .origin(origin)
                .client_token(client_token)
                .send()
        })
        .await
        .map(|_| ())
    }

    /// DisassociateApprovedOrigin.
    pub async fn disassociate_approved_origin(
        &self,
        target: &Target,
        instance_id: &str,
        origin: &str,
        client_token: &str,
    ) -> Result<(), AwsError> {
        self.call(target, Operation::DisassociateApprovedOrigin, |c| {
            c.disassociate_approved_origin()
                .instance_id(instance_id)
                .origin(origin)
                .client_token(client_token)
                .send()
        })
        .await
        .map(|_| ())
    }

    /// ListLambdaFunctions, every page.
    pub async fn list_lambda_functions(
        &self,
        target: &Target,
        instance_id: &str,
    ) -> Result<Vec<String>, AwsError> {
        self.all_pages(
            target,
            Operation::ListLambdaFunctions,
            |c, next| {
                c.list_lambda_functions()
                    .instance_id(instance_id)
                    .set_next_token(next)
                    .send()
            },
            |page| {
                Ok((
                    page.lambda_functions().to_vec(),
                    page.next_token().map(str::to_owned),
                ))
            },
        )
        .await
    }

    /// AssociateLambdaFunction.
    pub async fn associate_lambda_function(
        &self,
        target: &Target,
        instance_id: &str,
        function_arn: &str,
        client_token: &str,
    ) -> Result<(), AwsError> {
        self.call(target, Operation::AssociateLambdaFunction, |c| {
            c.associate_lambda_function()
                .instance_id(instance_id)
                .function_arn(function_arn)
                .client_token(client_token)
                .send()
        })
        .await
        .map(|_| ())
    }

    /// DisassociateLambdaFunction.
    pub async fn disassociate_lambda_function(
        &self,
        target: &Target,
        instance_id: &str,
        function_arn: &str,
        client_token: &str,
    ) -> Result<(), AwsError> {
        self.call(target, Operation::DisassociateLambdaFunction, |c| {
            c.disassociate_lambda_function()
                .instance_id(instance_id)
                .function_arn(function_arn)
                .client_token(client_token)
                .send()
        })
        .await
        .map(|_| ())
    }

    /// ListBots of Lex V2, every page: the bot alias ARNs.
    pub async fn list_lex_v2_bots(
        &self,
        target: &Target,
        instance_id: &str,
    ) -> Result<Vec<String>, AwsError> {
        self.all_pages(
            target,
            Operation::ListBots,
            |c, next| {
                c.list_bots()
                    .instance_id(instance_id)
                    .lex_version(LexVersion::V2)
                    .set_next_token(next)
                    .send()
            },
            |page| {
                let bots = page
                    .lex_bots()
                    .iter()
                    .filter_map(|b| b.lex_v2_bot().and_then(LexV2Bot::alias_arn))
                    .map(str::to_owned)
                    .collect();
                Ok((bots, page.next_token().map(str::to_owned)))
            },
        )
        .await
    }

    /// AssociateBot of a Lex V2 bot alias.
    pub async fn associate_lex_v2_bot(
        &self,
        target: &Target,
        instance_id: &str,
        alias_arn: &str,
        client_token: &str,
    ) -> Result<(), AwsError> {
        self.call(target, Operation::AssociateBot, |c| {
            c.associate_bot()
                .instance_id(instance_id)
                .lex_v2_bot(LexV2Bot::builder().alias_arn(alias_arn).build())
                .client_token(client_token)
                .send()
        })
        .await
        .map(|_| ())
    }

    /// DisassociateBot of a Lex V2 bot alias.
    pub async fn disassociate_lex_v2_bot(
        &self,
        target: &Target,
        instance_id: &str,
        alias_arn: &str,
        client_token: &str,
    ) -> Result<(), AwsError> {
        self.call(target, Operation::DisassociateBot, |c| {
            c.disassociate_bot()
                .instance_id(instance_id)
                .lex_v2_bot(LexV2Bot::builder().alias_arn(alias_arn).build())
                .client_token(client_token)
                .send()
        })
        .await
        .map(|_| ())
    }

    /// ListSecurityKeys, every page.
    pub async fn list_security_keys(
        &self,
        target: &Target,
        instance_id: &str,
    ) -> Result<Vec<SecurityKey>, AwsError> {
        self.all_pages(
            target,
            Operation::ListSecurityKeys,
            |c, next| {
                c.list_security_keys()
                    .instance_id(instance_id)
                    .set_next_token(next)
                    .send()
            },
            |page| {
                let keys = page
                    .security_keys()
                    .iter()
                    .filter_map(|key| {
                        Some(SecurityKey {
                            association_id: key.association_id()?.to_owned(),
                            key: key.key()?.to_owned(),
                        })
                    })
                    .collect();
                Ok((keys, page.next_token().map(str::to_owned)))
            },
        )
        .await
    }

    /// AssociateSecurityKey; returns the association's id.
    pub async fn associate_security_key(
        &self,
        target: &Target,
        instance_id: &str,
        key: &str,
        client_token: &str,
    ) -> Result<String, AwsError> {
        let out = self
            .call(target, Operation::AssociateSecurityKey, |c| {
                c.associate_security_key()
                    .instance_id(instance_id)
                    .key(key)
                    .client_token(client_token)
                    .send()
            })
            .await?;
        out.association_id().map(str::to_owned).ok_or_else(|| {
            malformed(
                Operation::AssociateSecurityKey,
                "no AssociationId in the answer",
            )
        })
    }

    /// DisassociateSecurityKey.
    pub async fn disassociate_security_key(
        &self,
        target: &Target,
        instance_id: &str,
        association_id: &str,
        client_token: &str,
    ) -> Result<(), AwsError> {
        self.call(target, Operation::DisassociateSecurityKey, |c| {
            c.disassociate_security_key()
                .instance_id(instance_id)
                .association_id(association_id)
                .client_token(client_token)
                .send()
        })
        .await
        .map(|_| ())
    }
}
