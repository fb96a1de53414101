//! The instance-configuration part of the decision table: which Associate, Update and
//! Disassociate calls bring an ACTIVE instance's storage configurations, approved origins,
//! Lambda functions, Lex V2 bots and security keys to the spec, and how they differ from
//! it, for `Drifted`.
//!
//! Only the parts the spec manages are compared (a field left unset is never read); values
//! are compared the way AWS echoes them (a Kinesis Video prefix with its
//! `-connect-<alias>-contact-` suffix, a PEM without its line breaks), so nothing differs at
//! rest. Disassociations come before associations, so that a rotation at a per-instance
//! limit (two security keys, fifty functions) frees its slot first.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{ConnectInstanceSpec, StorageConfigSpec, canonical_key, echoed_video_prefix};
use crate::aws::configuration::{SecurityKey, StorageAssociation};
use crate::aws::{AwsError, token};

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
        let index_of = |list: Option<&Vec<String>>, value: &str| {
            list.and_then(|l| l.iter().position(|v| v == value))
                .map_or_else(String::new, |i| format!("[{i}]"))
        };
        match self {
            Self::AssociateStorage { config, .. } | Self::UpdateStorage { config, .. } => {
                format!("storageConfigs[{}]", config.resource_type)
            }
            Self::DisassociateStorage { resource_type, .. } => {
                format!("storageConfigs[{resource_type}] (no longer listed)")
            }
            Self::AssociateOrigin { origin, .. } | Self::DisassociateOrigin { origin, .. } => {
                format!(
                    "approvedOrigins{} {origin}",
                    index_of(spec.approved_origins.as_ref(), origin)
                )
            }
            Self::AssociateLambda { function_arn, .. }
            | Self::DisassociateLambda { function_arn, .. } => format!(
                "lambdaFunctions{} {function_arn}",
                index_of(spec.lambda_functions.as_ref(), function_arn)
            ),
            Self::AssociateBot { alias_arn, .. } | Self::DisassociateBot { alias_arn, .. } => {
                let index = spec
                    .lex_bots
                    .as_ref()
                    .and_then(|l| l.iter().position(|b| &b.alias_arn == alias_arn))
                    .map_or_else(String::new, |i| format!("[{i}]"));
                format!("lexBots{index} {alias_arn}")
            }
            Self::AssociateKey { key, .. } => {
                let wanted = canonical_key(key);
                let index = spec
                    .security_keys
                    .as_ref()
                    .and_then(|l| l.iter().position(|k| canonical_key(k) == wanted))
                    .map_or_else(String::new, |i| format!("[{i}]"));
                format!("securityKeys{index}")
            }
            Self::DisassociateKey { association_id, .. } => {
                format!("securityKeys (association {association_id}, no longer listed)")
            }
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

/// What a configuration write that succeeded changed in what status records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A storage configuration of this type was associated under this id.
    StorageAssociated(String, String),
    /// The storage configuration of this type was disassociated.
    StorageDisassociated(String),
    /// A security key was associated under this id.
    KeyAssociated(String),
    /// The security key with this association id was disassociated.
    KeyDisassociated(String),
    /// Nothing status records.
    Other,
}

/// What status records after a step: storage resource type → association id for each
/// listed type AWS has (and each recorded type not yet disassociated), and the association
/// ids of the keys that are the spec's.
#[must_use]
pub fn recorded_after(
    spec: &ConnectInstanceSpec,
    recorded_storage: &BTreeMap<String, String>,
    observed: &ObservedConfiguration,
    applied: &[Applied],
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut storage = recorded_storage.clone();
    if let (Some(listed), Some(present)) = (&spec.storage_configs, &observed.storage) {
        for wanted in listed {
            let associations = present.get(&wanted.resource_type);
            let recorded = storage.get(&wanted.resource_type).cloned();
            let kept = associations.and_then(|list| {
                list.iter()
                    .find(|a| Some(&a.association_id) == recorded.as_ref())
                    .or_else(|| list.first())
            });
            match kept {
                Some(kept) => {
                    storage.insert(wanted.resource_type.clone(), kept.association_id.clone());
                }
                None => {
                    storage.remove(&wanted.resource_type);
                }
            }
        }
        // A recorded type that is not listed any more and that AWS no longer has is done.
        storage.retain(|resource_type, id| {
            listed.iter().any(|c| &c.resource_type == resource_type)
                || present
                    .get(resource_type)
                    .is_some_and(|list| list.iter().any(|a| &a.association_id == id))
        });
    }
    let mut keys: Vec<String> = match (&spec.security_keys, &observed.security_keys) {
        (Some(wanted), Some(present)) => {
            let wanted: BTreeSet<String> = wanted.iter().map(|k| canonical_key(k)).collect();
            present
                .iter()
                .filter(|k| wanted.contains(&canonical_key(&k.key)))
                .map(|k| k.association_id.clone())
                .collect()
        }
        _ => Vec::new(),
    };
    for change in applied {
        match change {
            Applied::StorageAssociated(resource_type, id) => {
                storage.insert(resource_type.clone(), id.clone());
            }
            Applied::StorageDisassociated(resource_type) => {
                storage.remove(resource_type);
            }
            Applied::KeyAssociated(id) => {
                if !keys.contains(id) {
                    keys.push(id.clone());
                }
            }
            Applied::KeyDisassociated(id) => keys.retain(|k| k != id),
            Applied::Other => {}
        }
    }
    (storage, keys)
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
    let mut removals = Vec::new();
    let mut additions = Vec::new();
    if let (Some(listed), Some(storage)) = (&spec.storage_configs, &observed.storage) {
        let empty = Vec::new();
        for wanted in listed {
            let present = storage.get(&wanted.resource_type).unwrap_or(&empty);
            let echo = echoed(wanted, alias);
            let keep = recorded_storage
                .get(&wanted.resource_type)
                .and_then(|id| present.iter().find(|a| &a.association_id == id))
                .or_else(|| present.first());
            match keep {
                None => additions.push(ConfigWrite::AssociateStorage {
                    config: wanted.clone(),
                    client_token: intent
                        .token("AssociateInstanceStorageConfig", &canonical_storage(wanted)),
                }),
                Some(kept) if kept.config != echo => additions.push(ConfigWrite::UpdateStorage {
                    association_id: kept.association_id.clone(),
                    config: wanted.clone(),
                    client_token: intent.token(
                        "UpdateInstanceStorageConfig",
                        &format!("{} {}", kept.association_id, canonical_storage(wanted)),
                    ),
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
                    removals.push(disassociate_storage(&wanted.resource_type, extra, intent));
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
                removals.push(disassociate_storage(resource_type, association, intent));
            }
        }
    }
    set_writes(
        spec.approved_origins.as_deref(),
        observed.approved_origins.as_deref(),
        &mut removals,
        &mut additions,
        |origin, add| {
            let client_token = intent.token(
                if add {
                    "AssociateApprovedOrigin"
                } else {
                    "DisassociateApprovedOrigin"
                },
                origin,
            );
            let origin = origin.to_owned();
            if add {
                ConfigWrite::AssociateOrigin {
                    origin,
                    client_token,
                }
            } else {
                ConfigWrite::DisassociateOrigin {
                    origin,
                    client_token,
                }
            }
        },
    );
    set_writes(
        spec.lambda_functions.as_deref(),
        observed.lambda_functions.as_deref(),
        &mut removals,
        &mut additions,
        |arn, add| {
            let client_token = intent.token(
                if add {
                    "AssociateLambdaFunction"
                } else {
                    "DisassociateLambdaFunction"
                },
                arn,
            );
            let function_arn = arn.to_owned();
            if add {
                ConfigWrite::AssociateLambda {
                    function_arn,
                    client_token,
                }
            } else {
                ConfigWrite::DisassociateLambda {
                    function_arn,
                    client_token,
                }
            }
        },
    );
    let bots: Option<Vec<String>> = spec
        .lex_bots
        .as_ref()
        .map(|bots| bots.iter().map(|b| b.alias_arn.clone()).collect());
    set_writes(
        bots.as_deref(),
        observed.lex_bots.as_deref(),
        &mut removals,
        &mut additions,
        |arn, add| {
            let client_token = intent.token(
                if add {
                    "AssociateBot"
                } else {
                    "DisassociateBot"
                },
                arn,
            );
            let alias_arn = arn.to_owned();
            if add {
                ConfigWrite::AssociateBot {
                    alias_arn,
                    client_token,
                }
            } else {
                ConfigWrite::DisassociateBot {
                    alias_arn,
                    client_token,
                }
            }
        },
    );
    if let (Some(wanted), Some(present)) = (&spec.security_keys, &observed.security_keys) {
        let wanted_canonical: BTreeSet<String> = wanted.iter().map(|k| canonical_key(k)).collect();
        let present_canonical: BTreeSet<String> =
            present.iter().map(|k| canonical_key(&k.key)).collect();
        for key in present {
            if !wanted_canonical.contains(&canonical_key(&key.key)) {
                removals.push(ConfigWrite::DisassociateKey {
                    association_id: key.association_id.clone(),
                    client_token: intent.token("DisassociateSecurityKey", &key.association_id),
                });
            }
        }
        let mut seen = BTreeSet::new();
        for key in wanted {
            let canonical = canonical_key(key);
            if !present_canonical.contains(&canonical) && seen.insert(canonical.clone()) {
                additions.push(ConfigWrite::AssociateKey {
                    key: key.clone(),
                    client_token: intent.token("AssociateSecurityKey", &canonical),
                });
            }
        }
    }
    removals.extend(additions);
    removals
}

fn disassociate_storage(
    resource_type: &str,
    association: &StorageAssociation,
    intent: Intent<'_>,
) -> ConfigWrite {
    ConfigWrite::DisassociateStorage {
        resource_type: resource_type.to_owned(),
        association_id: association.association_id.clone(),
        client_token: intent.token(
            "DisassociateInstanceStorageConfig",
            &format!("{resource_type} {}", association.association_id),
        ),
    }
}

/// Set semantics for a list of strings: what AWS has and the spec does not is removed,
/// what the spec has and AWS does not is added (each once, in the spec's order).
fn set_writes(
    wanted: Option<&[String]>,
    present: Option<&[String]>,
    removals: &mut Vec<ConfigWrite>,
    additions: &mut Vec<ConfigWrite>,
    write: impl Fn(&str, bool) -> ConfigWrite,
) {
    let (Some(wanted), Some(present)) = (wanted, present) else {
        return;
    };
    let wanted_set: BTreeSet<&str> = wanted.iter().map(String::as_str).collect();
    let present_set: BTreeSet<&str> = present.iter().map(String::as_str).collect();
    for item in present {
        if !wanted_set.contains(item.as_str()) {
            removals.push(write(item, false));
        }
    }
    let mut seen = BTreeSet::new();
    for item in wanted {
        if !present_set.contains(item.as_str()) && seen.insert(item.as_str()) {
            additions.push(write(item, true));
        }
    }
}

/// How the managed configuration differs from the spec, for people (the `Drifted`
/// message): one entry per difference.
#[must_use]
pub fn configuration_drift(
    spec: &ConnectInstanceSpec,
    alias: &str,
    recorded_storage: &BTreeMap<String, String>,
    observed: &ObservedConfiguration,
) -> Vec<String> {
    let intent = Intent {
        uid: "",
        generation: 0,
        epoch: 0,
    };
    configuration_writes(spec, alias, recorded_storage, observed, intent)
        .iter()
        .map(|write| {
            let what = match write {
                ConfigWrite::AssociateStorage { .. }
                | ConfigWrite::AssociateOrigin { .. }
                | ConfigWrite::AssociateLambda { .. }
                | ConfigWrite::AssociateBot { .. }
                | ConfigWrite::AssociateKey { .. } => "missing in AWS",
                ConfigWrite::UpdateStorage { .. } => "differs in AWS",
                _ => "in AWS, not in the spec",
            };
            format!("{}: {what}", write.item(spec))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{KinesisVideoStreamStorage, LexBotSpec, S3Storage};

    const ALIAS: &str = "team";
    const INTENT: Intent<'static> = Intent {
        uid: "0b5a6c1e-0000-4000-8000-000000000001",
        generation: 3,
        epoch: 7,
    };

    fn spec() -> ConnectInstanceSpec {
        serde_json::from_value(serde_json::json!({
            "identityManagementType": "CONNECT_MANAGED",
            "instanceAlias": ALIAS,
            "inboundCallsEnabled": true,
            "outboundCallsEnabled": false,
        }))
        .expect("a spec")
    }

    fn s3(resource_type: &str, bucket: &str) -> StorageConfigSpec {
        StorageConfigSpec {
            resource_type: resource_type.into(),
            s3: Some(S3Storage {
                bucket_name: bucket.into(),
                bucket_prefix: "p".into(),
                kms_key_arn: None,
            }),
            kinesis_video_stream: None,
            kinesis_stream: None,
            kinesis_firehose: None,
        }
    }

    fn media(prefix: &str) -> StorageConfigSpec {
        StorageConfigSpec {
            resource_type: "MEDIA_STREAMS".into(),
            s3: None,
            kinesis_video_stream: Some(KinesisVideoStreamStorage {
                prefix: prefix.into(),
                retention_period_hours: 24,
                kms_key_arn: "k".into(),
            }),
            kinesis_stream: None,
            kinesis_firehose: None,
        }
    }

    fn associated(id: &str, config: StorageConfigSpec) -> StorageAssociation {
        StorageAssociation {
            association_id: id.into(),
            config,
        }
    }

    #[test]
    fn unmanaged_parts_are_neither_read_nor_written() {
        let spec = spec();
        assert!(storage_types_to_read(&spec, &BTreeMap::new()).is_none());
        let observed = ObservedConfiguration {
            approved_origins: Some(vec!["https://a.example.com".into()]),
            ..ObservedConfiguration::default()
        };
        assert!(configuration_writes(&spec, ALIAS, &BTreeMap::new(), &observed, INTENT).is_empty());
    }

    #[test]
    fn echoed_values_are_no_difference() {
        let mut spec = spec();
        spec.storage_configs = Some(vec![media("media")]);
        let key = "-----BEGIN PUBLIC KEY-----\r\nAAAA\r\nBBBB\r\n-----END PUBLIC KEY-----";
        spec.security_keys = Some(vec![key.into()]);
        let observed = ObservedConfiguration {
            storage: Some(
                [(
                    "MEDIA_STREAMS".to_owned(),
                    vec![associated("m1", media("media-connect-team-contact-"))],
                )]
                .into(),
            ),
            security_keys: Some(vec![SecurityKey {
                association_id: "k1".into(),
                key: "-----BEGIN PUBLIC KEY-----\nAAAABBBB\n-----END PUBLIC KEY-----".into(),
            }]),
            ..ObservedConfiguration::default()
        };
        assert_eq!(
            configuration_writes(&spec, ALIAS, &BTreeMap::new(), &observed, INTENT),
            vec![]
        );
        assert!(configuration_drift(&spec, ALIAS, &BTreeMap::new(), &observed).is_empty());
    }

    #[test]
    fn storage_is_associated_updated_and_disassociated_only_when_recorded() {
        let mut spec = spec();
        spec.storage_configs = Some(vec![
            s3("CALL_RECORDINGS", "new"),
            s3("CHAT_TRANSCRIPTS", "c"),
        ]);
        let recorded: BTreeMap<String, String> = [
            ("CALL_RECORDINGS".to_owned(), "r1".to_owned()),
            ("ATTACHMENTS".to_owned(), "a1".to_owned()),
        ]
        .into();
        assert_eq!(
            storage_types_to_read(&spec, &recorded),
            Some(
                ["ATTACHMENTS", "CALL_RECORDINGS", "CHAT_TRANSCRIPTS"]
                    .map(str::to_owned)
                    .into()
            )
        );
        let observed = ObservedConfiguration {
            storage: Some(
                [
                    (
                        "CALL_RECORDINGS".to_owned(),
                        vec![associated("r1", s3("CALL_RECORDINGS", "old"))],
                    ),
                    ("CHAT_TRANSCRIPTS".to_owned(), vec![]),
                    (
                        "ATTACHMENTS".to_owned(),
                        vec![associated("a1", s3("ATTACHMENTS", "x"))],
                    ),
                    // Never listed and not recorded: not read in practice, and never touched.
                    (
                        "SCHEDULED_REPORTS".to_owned(),
                        vec![associated("s1", s3("SCHEDULED_REPORTS", "y"))],
                    ),
                ]
                .into(),
            ),
            ..ObservedConfiguration::default()
        };
        let writes = configuration_writes(&spec, ALIAS, &recorded, &observed, INTENT);
        let shapes: Vec<(&str, String)> = writes
            .iter()
            .map(|w| match w {
                ConfigWrite::DisassociateStorage {
                    resource_type,
                    association_id,
                    ..
                } => ("disassociate", format!("{resource_type} {association_id}")),
                ConfigWrite::UpdateStorage {
                    association_id,
                    config,
                    ..
                } => (
                    "update",
                    format!("{} {association_id}", config.resource_type),
                ),
                ConfigWrite::AssociateStorage { config, .. } => {
                    ("associate", config.resource_type.clone())
                }
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            shapes,
            [
                ("disassociate", "ATTACHMENTS a1".to_owned()),
                ("update", "CALL_RECORDINGS r1".to_owned()),
                ("associate", "CHAT_TRANSCRIPTS".to_owned()),
            ]
        );
    }

    #[test]
    fn sets_remove_first_then_add_and_tokens_follow_the_intent() {
        let mut spec = spec();
        spec.lambda_functions = Some(vec!["arn:f2".into(), "arn:f3".into()]);
        spec.lex_bots = Some(vec![LexBotSpec {
            alias_arn: "arn:b1".into(),
        }]);
        spec.approved_origins = Some(vec![]);
        let observed = ObservedConfiguration {
            lambda_functions: Some(vec!["arn:f1".into(), "arn:f2".into()]),
            lex_bots: Some(vec![]),
            approved_origins: Some(vec!["https://old.example.com".into()]),
            ..ObservedConfiguration::default()
        };
        let writes = configuration_writes(&spec, ALIAS, &BTreeMap::new(), &observed, INTENT);
        let removals = writes.iter().take_while(|w| w.is_removal()).count();
        assert_eq!(removals, 2, "{writes:?}");
        assert!(
            writes[removals..].iter().all(|w| !w.is_removal()),
            "{writes:?}"
        );
        assert!(writes.contains(&ConfigWrite::DisassociateLambda {
            function_arn: "arn:f1".into(),
            client_token: token::configuration_token(
                INTENT.uid,
                "DisassociateLambdaFunction",
                "arn:f1",
                3,
                7
            ),
        }));
        let items: Vec<String> = writes.iter().map(|w| w.item(&spec)).collect();
        assert!(
            items.contains(&"lambdaFunctions[1] arn:f3".to_owned()),
            "{items:?}"
        );
        assert!(items.contains(&"lexBots[0] arn:b1".to_owned()), "{items:?}");
        // The same intent gives the same tokens; a new generation or epoch new ones.
        let again = configuration_writes(&spec, ALIAS, &BTreeMap::new(), &observed, INTENT);
        assert_eq!(writes, again);
        let later = Intent { epoch: 8, ..INTENT };
        assert_ne!(
            writes,
            configuration_writes(&spec, ALIAS, &BTreeMap::new(), &observed, later)
        );
        let drift = configuration_drift(&spec, ALIAS, &BTreeMap::new(), &observed);
        assert_eq!(drift.len(), writes.len(), "{drift:?}");
    }
}
