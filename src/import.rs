//! `connect-operator import`: a ready-to-apply `ConnectInstance` manifest for a live
//! instance, so that existing instances come under GitOps without being re-created.
//!
//! The manifest describes the instance exactly as it is (identity type, alias, calls, all
//! 13 attributes, tags without AWS's own and without the operator's uid tag) and names it
//! with `spec.instanceId` and `deletionPolicy: Retain`. Applied as is, it adopts the
//! instance and the only AWS write is the uid tag. Reads only; never writes to AWS.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use kube::api::ObjectMeta;

use crate::api::{
    AttributeType, ConnectInstance, ConnectInstanceSpec, DeletionPolicy, IdentityManagementType,
    InstanceAttributes, UID_TAG,
};
use crate::aws::{
    Access, AwsError, AwsSettings, ConnectClient, ObservedInstance, RateLimitSettings, Target,
};
use crate::telemetry::Metrics;

/// Flags of `connect-operator import`.
#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    /// The id of the live instance (a UUID).
    #[arg(long)]
    pub instance_id: String,

    /// The AWS region of the instance (default: the environment's region). When given, it
    /// is written into the manifest's `spec.region`.
    #[arg(long)]
    pub region: Option<String>,

    /// The environment's region, used when `--region` is not given.
    #[arg(long = "default-region", env = "AWS_REGION", hide = true)]
    pub default_region: Option<String>,

    /// Endpoint override for the Amazon Connect API (a VPC endpoint, the simulator).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,

    /// `metadata.name` of the manifest (default: the instance alias, or `connect-<id>`).
    #[arg(long)]
    pub name: Option<String>,

    /// `metadata.namespace` of the manifest (default: none, `kubectl apply -n` decides).
    #[arg(long)]
    pub namespace: Option<String>,

    /// The directory id of an `EXISTING_DIRECTORY` instance (DescribeInstance does not
    /// return it, and the spec requires it).
    #[arg(long)]
    pub directory_id: Option<String>,

    /// Timeout of each AWS call.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub aws_timeout: Duration,

    /// The `ConnectAccount` the instance lives in: its role (if any) is assumed to read the
    /// instance (the account is read from the cluster of the current kubeconfig), and the
    /// manifest's `spec.accountRef` names it. Default: the environment's own credentials
    /// and no `accountRef` (the account named `default`).
    #[arg(long)]
    pub account: Option<String>,
}

/// Why no manifest could be printed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// No region from the flag or the environment.
    #[error("no region: pass --region or set AWS_REGION")]
    NoRegion,
    /// The instance does not exist (or the credentials cannot see it).
    #[error(
        "instance {id} was not found in {region} (check the id and the region, and that these credentials belong to its account)"
    )]
    NotFound {
        /// The instance id.
        id: String,
        /// The region asked.
        region: String,
    },
    /// An AWS call failed (credentials, permissions, network).
    #[error("reading instance {id} failed: {source}")]
    Aws {
        /// The instance id.
        id: String,
        /// The failure, classified.
        #[source]
        source: AwsError,
    },
    /// The instance needs something DescribeInstance does not tell.
    #[error("{0}")]
    Incomplete(String),
    /// The account could not be read from the cluster.
    #[error("cannot read ConnectAccount {name}: {source}")]
    Account {
        /// The account's name.
        name: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// The manifest could not be rendered.
    #[error("cannot render the manifest: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

/// Reads the instance and prints its manifest on stdout.
pub async fn run(args: ImportArgs) -> Result<(), ImportError> {
    let region = args
        .region
        .clone()
        .or_else(|| args.default_region.clone())
        .filter(|r| !r.is_empty())
        .ok_or(ImportError::NoRegion)?;
    let settings = AwsSettings {
        default_region: region.clone(),
        endpoint_url: args.aws_endpoint_url.clone(),
        call_timeout: args.aws_timeout,
        connect_timeout: args.aws_timeout.min(std::time::Duration::from_secs(10)),
        rate_limits: RateLimitSettings::default(),
    };
    let connect = ConnectClient::from_env(&settings, Arc::new(Metrics::new())).await;
    let access = match &args.account {
        Some(name) => account_access(name).await?,
        None => Access::default(),
    };
    let target = Target {
        access,
        account_id: args.account.clone().unwrap_or_default(),
        region: region.clone(),
    };
    let aws = |source| ImportError::Aws {
        id: args.instance_id.clone(),
        source,
    };
    let instance = connect
        .describe_instance(&target, &args.instance_id)
        .await
        .map_err(aws)?
        .ok_or_else(|| ImportError::NotFound {
            id: args.instance_id.clone(),
            region: region.clone(),
        })?;
    let attributes = connect
        .list_attributes(&target, &instance.id)
        .await
        .map_err(aws)?;
    let tags = match &instance.tags {
        Some(tags) => tags.clone(),
        None => connect
            .list_tags(&target, &instance.arn)
            .await
            .map_err(aws)?,
    };
    let configuration = read_configuration(&connect, &target, &instance.id)
        .await
        .map_err(aws)?;
    let replica = read_replica(&connect, &target, &instance)
        .await
        .map_err(aws)?;
    let mut object = manifest(&args, &instance, &attributes, &tags)?;
    configuration.apply_to(&mut object.spec);
    object.spec.replica = replica;
    print!("{}", serde_yaml::to_string(&object)?);
    Ok(())
}

/// The instance's replica, if AWS lists one in the region paired with the instance's: its
/// region, and its alias from DescribeInstance in that region. The traffic split is left
/// unset (not managed), so applying the manifest as it is changes nothing.
async fn read_replica(
    connect: &ConnectClient,
    target: &Target,
    instance: &ObservedInstance,
) -> Result<Option<crate::api::ReplicaSpec>, crate::aws::AwsError> {
    let Some(replication) = &instance.replication else {
        return Ok(None);
    };
    let Some(region) = replication
        .regions
        .keys()
        .find(|r| crate::api::is_replica_pair(&target.region, r))
    else {
        return Ok(None);
    };
    let there = Target {
        region: region.clone(),
        ..target.clone()
    };
    Ok(connect
        .describe_instance(&there, &instance.id)
        .await?
        .and_then(|replica| replica.alias)
        .map(|alias| crate::api::ReplicaSpec {
            region: region.clone(),
            alias,
        }))
}

/// An instance's whole configuration, as the manifest writes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportedConfiguration {
    /// Every storage configuration, of every resource type.
    pub storage_configs: Vec<crate::api::StorageConfigSpec>,
    /// Approved origins.
    pub approved_origins: Vec<String>,
    /// Lambda functions.
    pub lambda_functions: Vec<String>,
    /// Lex V2 bot alias ARNs.
    pub lex_bots: Vec<String>,
    /// Security keys (PEM, as AWS echoes them).
    pub security_keys: Vec<String>,
}

impl ImportedConfiguration {
    /// Sets every configuration field of `spec`, so that applying the manifest as it is
    /// manages the configuration without changing it (an empty list: there is none).
    pub fn apply_to(self, spec: &mut crate::api::ConnectInstanceSpec) {
        spec.storage_configs = Some(self.storage_configs);
        spec.approved_origins = Some(self.approved_origins);
        spec.lambda_functions = Some(self.lambda_functions);
        spec.lex_bots = Some(
            self.lex_bots
                .into_iter()
                .map(|alias_arn| crate::api::LexBotSpec { alias_arn })
                .collect(),
        );
        spec.security_keys = Some(self.security_keys);
    }
}

/// Reads the whole configuration: every storage resource type the operator knows (one
/// ListInstanceStorageConfigs each), origins, Lambda functions, Lex V2 bots, keys.
async fn read_configuration(
    connect: &ConnectClient,
    target: &Target,
    id: &str,
) -> Result<ImportedConfiguration, crate::aws::AwsError> {
    let mut storage_configs = Vec::new();
    for resource_type in crate::api::STORAGE_RESOURCE_TYPES {
        for association in connect
            .list_storage_configs(target, id, resource_type)
            .await?
        {
            storage_configs.push(association.config);
        }
    }
    Ok(ImportedConfiguration {
        storage_configs,
        approved_origins: connect.list_approved_origins(target, id).await?,
        lambda_functions: connect.list_lambda_functions(target, id).await?,
        lex_bots: connect.list_lex_v2_bots(target, id).await?,
        security_keys: connect
            .list_security_keys(target, id)
            .await?
            .into_iter()
            .map(|k| k.key)
            .collect(),
    })
}

/// The credentials a `ConnectAccount` in the cluster names.
async fn account_access(name: &str) -> Result<Access, ImportError> {
    let failed = |source| ImportError::Account {
        name: name.to_owned(),
        source,
    };
    let client = kube::Client::try_default().await.map_err(failed)?;
    let api: kube::Api<crate::api::ConnectAccount> = kube::Api::all(client);
    let account = api.get(name).await.map_err(failed)?;
    Ok(crate::accounts::access_of(&account))
}

/// The manifest for an instance as it is.
///
/// # Errors
/// An identity type the API does not know, or an `EXISTING_DIRECTORY` instance without
/// `--directory-id`.
pub fn manifest(
    args: &ImportArgs,
    instance: &ObservedInstance,
    attributes: &BTreeMap<AttributeType, bool>,
    tags: &BTreeMap<String, String>,
) -> Result<ConnectInstance, ImportError> {
    let identity = match instance.identity_management_type.as_deref() {
        Some("CONNECT_MANAGED") => IdentityManagementType::ConnectManaged,
        Some("SAML") => IdentityManagementType::Saml,
        Some("EXISTING_DIRECTORY") => IdentityManagementType::ExistingDirectory,
        other => {
            return Err(ImportError::Incomplete(format!(
                "instance {} has identity management type {other:?}, which this operator does not know",
                instance.id
            )));
        }
    };
    if identity == IdentityManagementType::ExistingDirectory && args.directory_id.is_none() {
        return Err(ImportError::Incomplete(format!(
            "instance {} uses an existing directory; DescribeInstance does not return its id: pass --directory-id d-…",
            instance.id
        )));
    }
    let attribute = |t: AttributeType| attributes.get(&t).copied();
    let name = args.name.clone().unwrap_or_else(|| default_name(instance));
    let spec = ConnectInstanceSpec {
        identity_management_type: identity,
        instance_alias: instance.alias.clone(),
        directory_id: args
            .directory_id
            .clone()
            .filter(|_| identity == IdentityManagementType::ExistingDirectory),
        inbound_calls_enabled: attribute(AttributeType::InboundCalls).unwrap_or(false),
        outbound_calls_enabled: attribute(AttributeType::OutboundCalls).unwrap_or(false),
        attributes: Some(InstanceAttributes {
            contactflow_logs: attribute(AttributeType::ContactflowLogs),
            contact_lens: attribute(AttributeType::ContactLens),
            auto_resolve_best_voices: attribute(AttributeType::AutoResolveBestVoices),
            use_custom_tts_voices: attribute(AttributeType::UseCustomTtsVoices),
            early_media: attribute(AttributeType::EarlyMedia),
            multi_party_conference: attribute(AttributeType::MultiPartyConference),
            high_volume_outbound: attribute(AttributeType::HighVolumeOutbound),
            enhanced_contact_monitoring: attribute(AttributeType::EnhancedContactMonitoring),
            enhanced_chat_monitoring: attribute(AttributeType::EnhancedChatMonitoring),
            multi_party_chat_conference: attribute(AttributeType::MultiPartyChatConference),
            message_streaming: attribute(AttributeType::MessageStreaming),
        }),
        tags: tags
            .iter()
            .filter(|(k, _)| !k.starts_with("aws:") && k.as_str() != UID_TAG)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        storage_configs: None,
        approved_origins: None,
        lambda_functions: None,
        lex_bots: None,
        security_keys: None,
        region: args.region.clone(),
        deletion_policy: Some(DeletionPolicy::Retain),
        deletion_protection: false,
        instance_id: Some(instance.id.clone()),
        management_policy: None,
        // Set by `run` from the replica region's DescribeInstance.
        replica: None,
        traffic_distribution: None,
        account_ref: args
            .account
            .clone()
            .map(|name| crate::api::AccountRef { name }),
    };
    let mut object = ConnectInstance::new(&name, spec);
    object.metadata = ObjectMeta {
        name: Some(name),
        namespace: args.namespace.clone(),
        ..ObjectMeta::default()
    };
    Ok(object)
}

/// A valid object name: the alias, lowercased, or `connect-` and the instance id.
fn default_name(instance: &ObservedInstance) -> String {
    instance
        .alias
        .as_deref()
        .map(str::to_ascii_lowercase)
        .filter(|alias| {
            !alias.is_empty()
                && alias.len() <= 63
                && alias
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !alias.starts_with('-')
                && !alias.ends_with('-')
        })
        .unwrap_or_else(|| format!("connect-{}", instance.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::InstanceState;

    fn args() -> ImportArgs {
        ImportArgs {
            account: None,
            instance_id: "11111111-2222-4333-8444-555555555555".into(),
            region: None,
            default_region: Some("eu-west-2".into()),
            aws_endpoint_url: None,
            name: None,
            namespace: Some("voice".into()),
            directory_id: None,
            aws_timeout: Duration::from_secs(5),
        }
    }

    fn instance(identity: &str) -> ObservedInstance {
        ObservedInstance {
            id: "11111111-2222-4333-8444-555555555555".into(),
            arn: "arn:aws:connect:eu-west-2:123456789012:instance/11111111-2222-4333-8444-555555555555".into(),
            alias: Some("Support-Center".into()),
            identity_management_type: Some(identity.into()),
            state: InstanceState::Active,
            status_reason: None,
            access_url: None,
            service_role: None,
            created_time: None,
            created_epoch_seconds: None,
            tags: None,
            inbound_calls_enabled: None,
            outbound_calls_enabled: None,
            replication: None,
        }
    }

    #[test]
    fn manifest_mirrors_the_instance_and_adopts_it_retained() {
        let attributes: BTreeMap<AttributeType, bool> = AttributeType::ALL
            .iter()
            .enumerate()
            .map(|(i, t)| (*t, i % 2 == 0))
            .collect();
        let tags: BTreeMap<String, String> = [
            ("team", "voice"),
            ("aws:cloudformation:stack-name", "cc"),
            (UID_TAG, "an-old-owner"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let object = manifest(&args(), &instance("SAML"), &attributes, &tags)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(object.metadata.name.as_deref(), Some("support-center"));
        assert_eq!(object.metadata.namespace.as_deref(), Some("voice"));
        let spec = &object.spec;
        assert_eq!(spec.identity_management_type, IdentityManagementType::Saml);
        assert_eq!(spec.instance_alias.as_deref(), Some("Support-Center"));
        assert_eq!(
            spec.instance_id.as_deref(),
            Some("11111111-2222-4333-8444-555555555555")
        );
        assert_eq!(spec.deletion_policy, Some(DeletionPolicy::Retain));
        assert_eq!(spec.region, None, "only an explicit --region is written");
        // Every attribute as it is: the manifest's desired state equals the observation.
        assert_eq!(spec.desired_attributes(), attributes);
        assert_eq!(
            spec.tags,
            [("team".to_owned(), "voice".to_owned())].into(),
            "no aws: tags, no uid tag"
        );
        let yaml = serde_yaml::to_string(&object).unwrap_or_default();
        assert!(yaml.contains("kind: ConnectInstance"), "{yaml}");
        assert!(!yaml.contains("status"), "{yaml}");
    }

    #[test]
    fn a_directory_instance_needs_its_directory_id() {
        let none = BTreeMap::new();
        let no_tags = BTreeMap::new();
        let err = manifest(&args(), &instance("EXISTING_DIRECTORY"), &none, &no_tags)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("--directory-id"), "{err}");
        let with_directory = ImportArgs {
            directory_id: Some("d-0123456789".into()),
            ..args()
        };
        let object = manifest(
            &with_directory,
            &instance("EXISTING_DIRECTORY"),
            &none,
            &no_tags,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(object.spec.directory_id.as_deref(), Some("d-0123456789"));
    }
}
