//! The instance-configuration part of the decision table: which Associate, Update and
//! Disassociate calls bring an ACTIVE instance's storage configurations, approved origins,
//! Lambda functions, Lex V2 bots and security keys to the spec, how they differ from it,
//! for `Drifted`, what status records of them, and what the step after the writes reports
//! (`ConfigurationFailed` naming each item AWS refused, with its answer).
//!
//! Only the parts the spec manages are compared (a field left unset is never read); values
//! are compared the way AWS echoes them (a Kinesis Video prefix with its
//! `-connect-<alias>-contact-` suffix, a PEM without its line breaks), so nothing differs at
//! rest. Disassociations come before associations, so that a rotation at a per-instance
//! limit (two security keys, fifty functions) frees its slot first. The differences are
//! found once, without tokens; the writes key each with its ClientToken, the `Drifted`
//! report names each.

use std::collections::{BTreeMap, BTreeSet};

use super::{Described, Inputs, drift_epoch};
use crate::api::{ConnectInstanceSpec, StorageConfigSpec, canonical_key, echoed_video_prefix};
use crate::aws::configuration::{SecurityKey, StorageAssociation};
use crate::aws::{AwsError, token};

mod record;

pub use record::{Applied, recorded_after};
pub(super) use record::{configured, record_configuration};

/// The configuration parts the spec manages, as AWS reports them; `None` for a part that
/// is not managed (and so was not read).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedConfiguration {
    /// Each storage resource type the spec lists or status records → its associations.
    pub storage: Option<BTreeMap<String, Vec<StorageAssociation>>>,
    /// ListApprovedOrigins.
    pub approved_origins: Option<Vec<String>>,
    /// ListLambdaFunctions.
    pub lambda_functions: Option<Vec<String>>,
    /// ListBots (V2): alias ARNs.
    pub lex_bots: Option<Vec<String>>,
    /// ListSecurityKeys.
    pub security_keys: Option<Vec<SecurityKey>>,
    /// Storage resource types AWS refused to list (a type it does not know): each with the
    /// spec's item and AWS's answer. They are reported, and block nothing else.
    pub refused: Vec<(String, AwsError)>,
}

/// One configuration write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigWrite {
    /// AssociateInstanceStorageConfig.
    AssociateStorage {
        /// The spec's entry.
        config: StorageConfigSpec,
        /// ClientToken.
        client_token: String,
    },
    /// UpdateInstanceStorageConfig of the association that differs.
    UpdateStorage {
        /// The association.
        association_id: String,
        /// The spec's entry.
        config: StorageConfigSpec,
        /// ClientToken.
        client_token: String,
    },
    /// DisassociateInstanceStorageConfig.
    DisassociateStorage {
        /// The resource type.
        resource_type: String,
        /// The association.
        association_id: String,
        /// ClientToken.
        client_token: String,
    },
    /// AssociateApprovedOrigin.
    AssociateOrigin {
        origin: String,
        client_token: String,
    },
    /// DisassociateApprovedOrigin.
    DisassociateOrigin {
        origin: String,
        client_token: String,
    },
    /// AssociateLambdaFunction.
    AssociateLambda {
        function_arn: String,
        client_token: String,
    },
    /// DisassociateLambdaFunction.
    DisassociateLambda {
        function_arn: String,
        client_token: String,
    },
    /// AssociateBot (Lex V2).
    AssociateBot {
        alias_arn: String,
        client_token: String,
    },
    /// DisassociateBot (Lex V2).
    DisassociateBot {
        alias_arn: String,
        client_token: String,
    },
    /// AssociateSecurityKey.
    AssociateKey { key: String, client_token: String },
    /// DisassociateSecurityKey.
    DisassociateKey {
        association_id: String,
        client_token: String,
    },
}

impl ConfigWrite {
    /// The spec field and item the write is about, for messages and events
    /// (`lambdaFunctions[1] arn:…`, `storageConfigs[CALL_RECORDINGS]`).
    #[must_use]
    pub fn item(&self, spec: &ConnectInstanceSpec) -> String {
        self.change().item(spec)
    }

    /// The change the write makes, without its token.
    fn change(&self) -> Change<'_> {
        match self {
            Self::AssociateStorage { config, .. } => Change::AssociateStorage(config),
            Self::UpdateStorage {
                association_id,
                config,
                ..
            } => Change::UpdateStorage {
                association_id,
                config,
            },
            Self::DisassociateStorage {
                resource_type,
                association_id,
                ..
            } => Change::DisassociateStorage {
                resource_type,
                association_id,
            },
            Self::AssociateOrigin { origin, .. } => Change::AssociateOrigin(origin),
            Self::DisassociateOrigin { origin, .. } => Change::DisassociateOrigin(origin),
            Self::AssociateLambda { function_arn, .. } => Change::AssociateLambda(function_arn),
            Self::DisassociateLambda { function_arn, .. } => {
                Change::DisassociateLambda(function_arn)
            }
            Self::AssociateBot { alias_arn, .. } => Change::AssociateBot(alias_arn),
            Self::DisassociateBot { alias_arn, .. } => Change::DisassociateBot(alias_arn),
            Self::AssociateKey { key, .. } => Change::AssociateKey(key),
            Self::DisassociateKey { association_id, .. } => Change::DisassociateKey(association_id),
        }
    }

    /// Whether the write removes something.
    #[must_use]
    pub fn is_removal(&self) -> bool {
        matches!(
            self,
            Self::DisassociateStorage { .. }
                | Self::DisassociateOrigin { .. }
                | Self::DisassociateLambda { .. }
                | Self::DisassociateBot { .. }
                | Self::DisassociateKey { .. }
        )
    }
}

/// One way the managed configuration differs from the spec, borrowed from the spec and
/// from what AWS reported: a write before it is keyed by a token. The writes and the
/// `Drifted` report are both made from these, so they always agree.
#[derive(Clone, Copy, Debug)]
enum Change<'a> {
    /// A listed storage resource type AWS has no association for.
    AssociateStorage(&'a StorageConfigSpec),
    /// The association kept for a listed type differs from the spec's entry.
    UpdateStorage {
        association_id: &'a str,
        config: &'a StorageConfigSpec,
    },
    /// An association to remove: an extra one of a listed type, or a recorded type no
    /// longer listed.
    DisassociateStorage {
        resource_type: &'a str,
        association_id: &'a str,
    },
    /// An approved origin the spec has and AWS does not.
    AssociateOrigin(&'a str),
    /// An approved origin AWS has and the spec does not.
    DisassociateOrigin(&'a str),
    /// A Lambda function the spec has and AWS does not.
    AssociateLambda(&'a str),
    /// A Lambda function AWS has and the spec does not.
    DisassociateLambda(&'a str),
    /// A Lex V2 bot alias the spec has and AWS does not.
    AssociateBot(&'a str),
    /// A Lex V2 bot alias AWS has and the spec does not.
    DisassociateBot(&'a str),
    /// A security key (as the spec writes it) that AWS does not have.
    AssociateKey(&'a str),
    /// The association id of a security key AWS has and the spec does not.
    DisassociateKey(&'a str),
}

impl Change<'_> {
    /// The spec field and item the change is about (see [`ConfigWrite::item`]).
    fn item(&self, spec: &ConnectInstanceSpec) -> String {
        let index_of = |list: Option<&Vec<String>>, value: &str| {
            list.and_then(|l| l.iter().position(|v| v == value))
                .map_or_else(String::new, |i| format!("[{i}]"))
        };
        match *self {
            Self::AssociateStorage(config) | Self::UpdateStorage { config, .. } => {
                format!("storageConfigs[{}]", config.resource_type)
            }
            Self::DisassociateStorage { resource_type, .. } => {
                format!("storageConfigs[{resource_type}] (no longer listed)")
            }
            Self::AssociateOrigin(origin) | Self::DisassociateOrigin(origin) => {
                format!(
                    "approvedOrigins{} {origin}",
                    index_of(spec.approved_origins.as_ref(), origin)
                )
            }
            Self::AssociateLambda(function_arn) | Self::DisassociateLambda(function_arn) => {
                format!(
                    "lambdaFunctions{} {function_arn}",
                    index_of(spec.lambda_functions.as_ref(), function_arn)
                )
            }
            Self::AssociateBot(alias_arn) | Self::DisassociateBot(alias_arn) => {
                let index = spec
                    .lex_bots
                    .as_ref()
                    .and_then(|l| l.iter().position(|b| b.alias_arn == alias_arn))
                    .map_or_else(String::new, |i| format!("[{i}]"));
                format!("lexBots{index} {alias_arn}")
            }
            Self::AssociateKey(key) => {
                let wanted = canonical_key(key);
                let index = spec
                    .security_keys
                    .as_ref()
                    .and_then(|l| l.iter().position(|k| canonical_key(k) == wanted))
                    .map_or_else(String::new, |i| format!("[{i}]"));
                format!("securityKeys{index}")
            }
            Self::DisassociateKey(association_id) => {
                format!("securityKeys (association {association_id}, no longer listed)")
            }
        }
    }

    /// How AWS differs, for the `Drifted` report.
    fn difference(&self) -> &'static str {
        match self {
            Self::AssociateStorage(_)
            | Self::AssociateOrigin(_)
            | Self::AssociateLambda(_)
            | Self::AssociateBot(_)
            | Self::AssociateKey(_) => "missing in AWS",
            Self::UpdateStorage { .. } => "differs in AWS",
            Self::DisassociateStorage { .. }
            | Self::DisassociateOrigin(_)
            | Self::DisassociateLambda(_)
            | Self::DisassociateBot(_)
            | Self::DisassociateKey(_) => "in AWS, not in the spec",
        }
    }

    /// The write that makes the change, keyed by the intent: the same change of the same
    /// intent always gets the same token.
    fn write(self, intent: Intent<'_>) -> ConfigWrite {
        match self {
            Self::AssociateStorage(config) => ConfigWrite::AssociateStorage {
                config: config.clone(),
                client_token: intent
                    .token("AssociateInstanceStorageConfig", &canonical_storage(config)),
            },
            Self::UpdateStorage {
                association_id,
                config,
            } => ConfigWrite::UpdateStorage {
                association_id: association_id.to_owned(),
                config: config.clone(),
                client_token: intent.token(
                    "UpdateInstanceStorageConfig",
                    &format!("{association_id} {}", canonical_storage(config)),
                ),
            },
            Self::DisassociateStorage {
                resource_type,
                association_id,
            } => ConfigWrite::DisassociateStorage {
                resource_type: resource_type.to_owned(),
                association_id: association_id.to_owned(),
                client_token: intent.token(
                    "DisassociateInstanceStorageConfig",
                    &format!("{resource_type} {association_id}"),
                ),
            },
            Self::AssociateOrigin(origin) => ConfigWrite::AssociateOrigin {
                origin: origin.to_owned(),
                client_token: intent.token("AssociateApprovedOrigin", origin),
            },
            Self::DisassociateOrigin(origin) => ConfigWrite::DisassociateOrigin {
                origin: origin.to_owned(),
                client_token: intent.token("DisassociateApprovedOrigin", origin),
            },
            Self::AssociateLambda(function_arn) => ConfigWrite::AssociateLambda {
                function_arn: function_arn.to_owned(),
                client_token: intent.token("AssociateLambdaFunction", function_arn),
            },
            Self::DisassociateLambda(function_arn) => ConfigWrite::DisassociateLambda {
                function_arn: function_arn.to_owned(),
                client_token: intent.token("DisassociateLambdaFunction", function_arn),
            },
            Self::AssociateBot(alias_arn) => ConfigWrite::AssociateBot {
                alias_arn: alias_arn.to_owned(),
                client_token: intent.token("AssociateBot", alias_arn),
            },
            Self::DisassociateBot(alias_arn) => ConfigWrite::DisassociateBot {
                alias_arn: alias_arn.to_owned(),
                client_token: intent.token("DisassociateBot", alias_arn),
            },
            Self::AssociateKey(key) => ConfigWrite::AssociateKey {
                key: key.to_owned(),
                client_token: intent.token("AssociateSecurityKey", &canonical_key(key)),
            },
            Self::DisassociateKey(association_id) => ConfigWrite::DisassociateKey {
                association_id: association_id.to_owned(),
                client_token: intent.token("DisassociateSecurityKey", association_id),
            },
        }
    }
}

/// A storage entry as AWS would echo it for an instance with this alias.
fn echoed(config: &StorageConfigSpec, alias: &str) -> StorageConfigSpec {
    let mut out = config.clone();
    if let Some(video) = &mut out.kinesis_video_stream {
        video.prefix = echoed_video_prefix(&video.prefix, alias);
    }
    out
}

/// The resource types whose storage is read: those the spec lists and those status says
/// the operator manages (to disassociate the ones no longer listed). `None` when
/// `storageConfigs` is not managed and nothing is recorded.
#[must_use]
pub fn storage_types_to_read(
    spec: &ConnectInstanceSpec,
    recorded: &BTreeMap<String, String>,
) -> Option<BTreeSet<String>> {
    let listed = spec.storage_configs.as_ref()?;
    let mut types: BTreeSet<String> = listed.iter().map(|c| c.resource_type.clone()).collect();
    types.extend(recorded.keys().cloned());
    Some(types)
}

/// What the writes are keyed by: the object, its generation and the drift epoch.
#[derive(Clone, Copy, Debug)]
pub struct Intent<'a> {
    /// The object's UID.
    pub uid: &'a str,
    /// Its generation.
    pub generation: i64,
    /// The drift epoch.
    pub epoch: u64,
}

impl Intent<'_> {
    fn token(&self, operation: &str, item: &str) -> String {
        token::configuration_token(self.uid, operation, item, self.generation, self.epoch)
    }
}

fn canonical_storage(config: &StorageConfigSpec) -> String {
    serde_json::to_string(config).unwrap_or_default()
}

/// The writes that bring the managed configuration to the spec: removals first.
#[must_use]
pub fn configuration_writes(
    spec: &ConnectInstanceSpec,
    alias: &str,
    recorded_storage: &BTreeMap<String, String>,
    observed: &ObservedConfiguration,
    intent: Intent<'_>,
) -> Vec<ConfigWrite> {
    changes(spec, alias, recorded_storage, observed)
        .into_iter()
        .map(|change| change.write(intent))
        .collect()
}

/// How the managed configuration differs from the spec, for people (the `Drifted`
/// message): one entry per difference, the same differences the writes would make.
#[must_use]
pub fn configuration_drift(
    spec: &ConnectInstanceSpec,
    alias: &str,
    recorded_storage: &BTreeMap<String, String>,
    observed: &ObservedConfiguration,
) -> Vec<String> {
    changes(spec, alias, recorded_storage, observed)
        .iter()
        .map(|change| format!("{}: {}", change.item(spec), change.difference()))
        .collect()
}

/// The changes that bring the managed configuration to the spec, in the order they are
/// written: removals first, then associations and updates.
fn changes<'a>(
    spec: &'a ConnectInstanceSpec,
    alias: &str,
    recorded_storage: &'a BTreeMap<String, String>,
    observed: &'a ObservedConfiguration,
) -> Vec<Change<'a>> {
    let mut removals = Vec::new();
    let mut additions = Vec::new();
    if let (Some(listed), Some(storage)) = (&spec.storage_configs, &observed.storage) {
        for wanted in listed {
            let present = storage
                .get(&wanted.resource_type)
                .map_or(&[][..], Vec::as_slice);
            let echo = echoed(wanted, alias);
            let keep = recorded_storage
                .get(&wanted.resource_type)
                .and_then(|id| present.iter().find(|a| &a.association_id == id))
                .or_else(|| present.first());
            match keep {
                None => additions.push(Change::AssociateStorage(wanted)),
                Some(kept) if kept.config != echo => additions.push(Change::UpdateStorage {
                    association_id: &kept.association_id,
                    config: wanted,
                }),
                Some(_) => {}
            }
            // AWS keeps one association per type; should there be more, the listed type is
            // the whole truth.
            if let Some(kept) = keep {
                for extra in present
                    .iter()
                    .filter(|a| a.association_id != kept.association_id)
                {
                    removals.push(Change::DisassociateStorage {
                        resource_type: &wanted.resource_type,
                        association_id: &extra.association_id,
                    });
                }
            }
        }
        for (resource_type, association_id) in recorded_storage {
            if listed.iter().any(|c| &c.resource_type == resource_type) {
                continue;
            }
            if let Some(association) = storage
                .get(resource_type)
                .and_then(|p| p.iter().find(|a| &a.association_id == association_id))
            {
                removals.push(Change::DisassociateStorage {
                    resource_type,
                    association_id: &association.association_id,
                });
            }
        }
    }
    let strings = |list: &'a [String]| list.iter().map(String::as_str).collect::<Vec<_>>();
    set_changes(
        spec.approved_origins.as_deref().map(strings),
        observed.approved_origins.as_deref(),
        &mut removals,
        &mut additions,
        Change::DisassociateOrigin,
        Change::AssociateOrigin,
    );
    set_changes(
        spec.lambda_functions.as_deref().map(strings),
        observed.lambda_functions.as_deref(),
        &mut removals,
        &mut additions,
        Change::DisassociateLambda,
        Change::AssociateLambda,
    );
    set_changes(
        spec.lex_bots
            .as_ref()
            .map(|bots| bots.iter().map(|b| b.alias_arn.as_str()).collect()),
        observed.lex_bots.as_deref(),
        &mut removals,
        &mut additions,
        Change::DisassociateBot,
        Change::AssociateBot,
    );
    if let (Some(wanted), Some(present)) = (&spec.security_keys, &observed.security_keys) {
        let wanted_canonical: BTreeSet<String> = wanted.iter().map(|k| canonical_key(k)).collect();
        let present_canonical: BTreeSet<String> =
            present.iter().map(|k| canonical_key(&k.key)).collect();
        for key in present {
            if !wanted_canonical.contains(&canonical_key(&key.key)) {
                removals.push(Change::DisassociateKey(&key.association_id));
            }
        }
        let mut seen = BTreeSet::new();
        for key in wanted {
            let canonical = canonical_key(key);
            if !present_canonical.contains(&canonical) && seen.insert(canonical) {
                additions.push(Change::AssociateKey(key));
            }
        }
    }
    removals.extend(additions);
    removals
}

/// Set semantics for a list of strings: what AWS has and the spec does not is removed,
/// what the spec has and AWS does not is added (each once, in the spec's order).
fn set_changes<'a>(
    wanted: Option<Vec<&'a str>>,
    present: Option<&'a [String]>,
    removals: &mut Vec<Change<'a>>,
    additions: &mut Vec<Change<'a>>,
    remove: fn(&'a str) -> Change<'a>,
    add: fn(&'a str) -> Change<'a>,
) {
    let (Some(wanted), Some(present)) = (wanted, present) else {
        return;
    };
    let wanted_set: BTreeSet<&str> = wanted.iter().copied().collect();
    let present_set: BTreeSet<&str> = present.iter().map(String::as_str).collect();
    for item in present {
        if !wanted_set.contains(item.as_str()) {
            removals.push(remove(item));
        }
    }
    let mut seen = BTreeSet::new();
    for item in wanted {
        if !present_set.contains(item) && seen.insert(item) {
            additions.push(add(item));
        }
    }
}

/// The configuration writes for an ACTIVE instance under `Manage`.
pub(super) fn configuration_changes(
    inputs: &Inputs<'_>,
    described: &Described,
) -> Vec<ConfigWrite> {
    let Some(observed) = &described.configuration else {
        return Vec::new();
    };
    let alias = described.instance.alias.as_deref().unwrap_or_default();
    configuration_writes(
        inputs.spec,
        alias,
        &inputs.status.storage_configs,
        observed,
        Intent {
            uid: inputs.uid,
            generation: inputs.generation,
            epoch: drift_epoch(inputs.now_epoch_seconds, inputs.retry.drift_interval),
        },
    )
}
