//! The configuration rows of the behaviour table (an ACTIVE instance whose approved
//! origins the spec manages: missing, matching, unmanaged, the writes succeeded, one failed,
//! and nothing disassociated on Cleanup), then the checks of the configuration planner itself: which
//! parts are read and written, values compared as AWS echoes them, the order of the writes,
//! their tokens, and the `Drifted` entries they agree with.

use super::*;
use crate::api::{KinesisVideoStreamStorage, LexBotSpec, S3Storage, StorageConfigSpec};
use crate::aws::configuration::{SecurityKey, StorageAssociation};
use crate::reconciler::decide::configuration::{
    ConfigWrite, Intent, ObservedConfiguration, configuration_drift, configuration_writes,
    storage_types_to_read,
};

pub(super) fn rows() -> Vec<Row> {
    let drift = minutes(10);
    vec![
        // ---- Apply: the configuration the spec manages
        with(
            row(
                "an approved origin missing in AWS: one configuration write",
                Path::Apply,
                configured_in_sync(&[]),
                Some("Updating"),
                &["Configure"],
                Then::ObserveAgain,
                Failures::Keep,
            ),
            with_origin,
        ),
        with(
            row(
                "the configuration as the spec says: Available",
                Path::Apply,
                configured_in_sync(&[ORIGIN]),
                Some("Available"),
                &[],
                spread(drift),
                Failures::Reset,
            ),
            with_origin,
        ),
        with(
            row(
                "configuration unmanaged: an origin AWS has is left alone",
                Path::Apply,
                configured_in_sync(&["https://other.example.com"]),
                Some("Available"),
                &[],
                spread(drift),
                Failures::Reset,
            ),
            |_| {},
        ),
        with(
            row(
                "configuration writes all succeeded: look again",
                Path::Apply,
                configured(vec![]),
                Some("Updating"),
                &[],
                Then::ObserveAgain,
                Failures::Keep,
            ),
            with_origin,
        ),
        with(
            row(
                "a configuration write failed: ConfigurationFailed, backoff, counted",
                Path::Apply,
                configured(vec![(
                    ConfigWrite::AssociateOrigin {
                        origin: ORIGIN.into(),
                        client_token: "t".into(),
                    },
                    AwsError {
                        operation: Operation::AssociateApprovedOrigin,
                        kind: ErrorKind::NotFound,
                        code: Some("ResourceNotFoundException".into()),
                        message: "no such thing".into(),
                        request_id: Some("req-9".into()),
                        retry_after: None,
                    },
                )]),
                Some("ConfigurationFailed"),
                &[],
                // The first backoff.
                spread(secs(2)),
                Failures::Count,
            ),
            with_origin,
        ),
        // Cleanup never disassociates: AWS removes the configuration with the instance.
        with(
            row(
                "deleting an instance with configuration: DeleteInstance only",
                Path::Cleanup,
                configured_in_sync(&[]),
                None,
                &["DeleteInstance"],
                Then::ObserveAgain,
                Failures::Keep,
            ),
            with_origin,
        ),
    ]
}

const ORIGIN: &str = "https://crm.example.com";

fn with_origin(spec: &mut ConnectInstanceSpec) {
    spec.approved_origins = Some(vec![ORIGIN.into()]);
}

/// In sync but for the approved origins, which AWS reports as `origins`.
fn configured_in_sync(origins: &[&str]) -> Observation {
    let Observation::Instance(mut described) = in_sync() else {
        unreachable!("in_sync describes an instance")
    };
    described.configuration = Some(ObservedConfiguration {
        approved_origins: Some(origins.iter().map(|o| (*o).to_owned()).collect()),
        ..ObservedConfiguration::default()
    });
    Observation::Instance(described)
}

/// Configuration writes answered: `failed` failed, nothing else was written.
fn configured(failed: Vec<(ConfigWrite, AwsError)>) -> Observation {
    let Observation::Instance(described) = configured_in_sync(&[]) else {
        unreachable!("an instance")
    };
    Observation::Configured {
        described,
        applied: vec![],
        failed,
    }
}

// ---- The planner

const ALIAS: &str = "team";
const INTENT: Intent<'static> = Intent {
    uid: UID,
    generation: 3,
    epoch: 7,
};

/// A spec for the planner's checks: alias [`ALIAS`], no configuration managed.
fn planner_spec() -> ConnectInstanceSpec {
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
    let spec = planner_spec();
    assert!(storage_types_to_read(&spec, &BTreeMap::new()).is_none());
    let observed = ObservedConfiguration {
        approved_origins: Some(vec!["https://a.example.com".into()]),
        ..ObservedConfiguration::default()
    };
    assert!(configuration_writes(&spec, ALIAS, &BTreeMap::new(), &observed, INTENT).is_empty());
}

#[test]
fn echoed_values_are_no_difference() {
    let mut spec = planner_spec();
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
    let mut spec = planner_spec();
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
    let mut spec = planner_spec();
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
