//! Instances that already exist: `connect-operator import` prints a manifest that, applied
//! as is, adopts a live instance with no AWS write but the uid tag; adoption refuses an
//! instance that does not exist, does not match the spec, or belongs to another object;
//! `ObserveOnly` never writes, whatever someone changes behind the operator's back (its
//! attributes or its configuration), reports every difference in `Drifted`, converges once switched to `Manage` and stops writing at
//! once when switched back.

use aws_sdk_connect::types::InstanceAttributeType;
use connect_operator::api::UID_TAG;
use kube::api::DynamicObject;
use serde_json::{Value, json};

use test_kit::connect::{condition, describe, is_true, manifest, uid};
use test_kit::{SimCall, kubectl_with_input};

use super::{Scenario, aws_view, mutating, set_attribute_behind_the_back, tally};

const ORIGIN: &str = "https://crm.example.com";
const FUNCTION: &str = "arn:aws:lambda:us-east-1:111122223333:function:lookup";

async fn set_inbound(s: &Scenario, id: &str, value: bool) {
    set_attribute_behind_the_back(s, id, InstanceAttributeType::InboundCalls, value).await;
}

/// `connect-operator import` as a user runs it, against the scenario's simulator.
async fn import(s: &Scenario, instance_id: &str, name: &str) -> String {
    let binary = test_kit::paths::operator_binary();
    let output = tokio::process::Command::new(binary)
        .args(["import", "--instance-id", instance_id, "--name", name])
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &s.sim.url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_PROFILE")
        .output()
        .await
        .expect("running connect-operator import");
    assert!(
        output.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 manifest")
}

async fn apply_yaml(s: &Scenario, yaml: &str) {
    let output = kubectl_with_input(&["apply", "-n", &s.namespace, "-f", "-"], Some(yaml)).await;
    assert!(output.success, "kubectl apply failed: {output:?}\n{yaml}");
}

fn mutating_calls(calls: &[SimCall]) -> Vec<&SimCall> {
    calls
        .iter()
        .filter(|call| mutating(&call.operation))
        .collect()
}

fn ready_reason(object: &DynamicObject) -> Option<String> {
    condition(object, "Ready").map(|c| c.reason)
}

#[tokio::test]
async fn imported_manifest_adopts_a_live_instance_writing_only_the_uid_tag() {
    let s = Scenario::start(
        "imported_manifest_adopts_a_live_instance_writing_only_the_uid_tag",
        &[],
        &[],
    )
    .await;
    let live = s
        .sim
        .insert_instance(
            "brownfield-e2e",
            &[("team", "voice"), ("cost-center", "42")],
        )
        .await;
    // Its configuration, made outside the operator: import writes it all into the manifest.
    let other = super::someone_else(&s);
    other
        .associate_instance_storage_config()
        .instance_id(&live.id)
        .resource_type(aws_sdk_connect::types::InstanceStorageResourceType::MediaStreams)
        .storage_config(
            aws_sdk_connect::types::InstanceStorageConfig::builder()
                .storage_type(aws_sdk_connect::types::StorageType::KinesisVideoStream)
                .kinesis_video_stream_config(
                    aws_sdk_connect::types::KinesisVideoStreamConfig::builder()
                        .prefix("media")
                        .retention_period_hours(12)
                        .encryption_config(
                            aws_sdk_connect::types::EncryptionConfig::builder()
                                .encryption_type(aws_sdk_connect::types::EncryptionType::Kms)
                                .key_id("arn:aws:kms:us-east-1:111122223333:key/k")
                                .build()
                                .expect("encryption"),
                        )
                        .build()
                        .expect("video"),
                )
                .build()
                .expect("config"),
        )
        .send()
        .await
        .expect("a storage config");
    other
        .associate_approved_origin()
        .instance_id(&live.id)
        .origin("https://crm.example.com")
        .send()
        .await
        .expect("an origin");
    other
        .associate_lambda_function()
        .instance_id(&live.id)
        .function_arn("arn:aws:lambda:us-east-1:111122223333:function:lookup")
        .send()
        .await
        .expect("a function");
    other
        .associate_security_key()
        .instance_id(&live.id)
        .key(format!(
            "-----BEGIN PUBLIC KEY-----\r\n{}\r\n-----END PUBLIC KEY-----",
            "Q".repeat(80)
        ))
        .send()
        .await
        .expect("a key");
    let yaml = import(&s, &live.id, "brownfield").await;
    assert!(yaml.contains(&format!("instanceId: {}", live.id)), "{yaml}");
    assert!(yaml.contains("resourceType: MEDIA_STREAMS"), "{yaml}");
    assert!(yaml.contains("https://crm.example.com"), "{yaml}");
    assert!(yaml.contains("function:lookup"), "{yaml}");
    assert!(yaml.contains("BEGIN PUBLIC KEY"), "{yaml}");
    assert!(yaml.contains("lexBots: []"), "{yaml}");
    assert!(yaml.contains("deletionPolicy: Retain"), "{yaml}");
    assert!(yaml.contains("cost-center"), "{yaml}");
    s.sim.clear_calls().await;

    apply_yaml(&s, &yaml).await;
    let object = s.wait_ready("brownfield").await;
    assert_eq!(ready_reason(&object).as_deref(), Some("Available"));
    assert_eq!(
        object
            .data
            .pointer("/status/instanceId")
            .and_then(Value::as_str),
        Some(live.id.as_str())
    );
    let calls = s.connect_calls().await;
    let writes = mutating_calls(&calls);
    assert_eq!(writes.len(), 1, "only the uid tag: {:?}", tally(&calls));
    assert!(
        calls.iter().any(|c| c.operation == "ListSecurityKeys"),
        "the imported configuration is managed: {:?}",
        tally(&calls)
    );
    assert_eq!(writes[0].operation, "TagResource");
    let instance = s.sim.instance(&live.id).await.expect("still there");
    assert_eq!(instance.tags.get(UID_TAG), Some(&uid(&object)));
    assert_eq!(instance.tags.get("team").map(String::as_str), Some("voice"));
    let seen = aws_view(&s, &live.id).await.expect("the adopted instance");
    assert_eq!(
        seen.tags.get(UID_TAG),
        Some(&uid(&object)),
        "the uid tag, as the SDK reads it"
    );
    assert_eq!(seen.tags, instance.tags);
    assert_eq!(seen.status, "ACTIVE");
    assert_eq!(s.sim.instances().await.len(), 1, "nothing created");
    let events = s.event_summaries("brownfield").await;
    assert!(
        events.iter().any(|(_, reason, _)| reason == "Adopted"),
        "{events:?}"
    );
}

#[tokio::test]
async fn adoption_refuses_missing_mismatched_and_foreign_owned_instances() {
    let s = Scenario::start(
        "adoption_refuses_missing_mismatched_and_foreign_owned_instances",
        &[],
        &[],
    )
    .await;
    let other = s.sim.insert_instance("other-alias-e2e", &[]).await;
    let owned = s
        .sim
        .insert_instance(
            "owned-e2e",
            &[(UID_TAG, "0b5a6c1e-0000-4000-8000-00000000beef")],
        )
        .await;
    s.sim.clear_calls().await;
    let adopt = |name: &str, alias: &str, id: &str| {
        manifest(
            name,
            json!({
                "identityManagementType": "CONNECT_MANAGED",
                "instanceAlias": alias,
                "inboundCallsEnabled": true,
                "outboundCallsEnabled": true,
                "instanceId": id,
                "deletionPolicy": "Delete",
            }),
        )
    };
    s.kubectl_apply(&adopt(
        "missing",
        "missing-e2e",
        "00000000-0000-4000-8000-000000000000",
    ))
    .await;
    s.kubectl_apply(&adopt("mismatch", "not-its-alias", &other.id))
        .await;
    s.kubectl_apply(&adopt("foreign", "owned-e2e", &owned.id))
        .await;
    for (name, reason, says) in [
        ("missing", "InstanceNotFound", "does not exist"),
        (
            "mismatch",
            "AdoptionMismatch",
            r#"instanceAlias is "other-alias-e2e" in AWS, "not-its-alias" in the spec"#,
        ),
        (
            "foreign",
            "AlreadyManaged",
            "0b5a6c1e-0000-4000-8000-00000000beef",
        ),
    ] {
        let object = s
            .wait_for(name, &format!("Stalled=True/{reason}"), |o| {
                is_true(o, "Stalled", Some(reason))
            })
            .await;
        let message = condition(&object, "Ready")
            .map(|c| c.message)
            .unwrap_or_default();
        assert!(message.contains(says), "{name}: {message}");
    }
    // Nothing written, nothing created; deleting them (under Delete) deletes nothing.
    for name in ["missing", "mismatch", "foreign"] {
        let output = kubectl_with_input(
            &[
                "delete",
                "connectinstance",
                name,
                "-n",
                &s.namespace,
                "--wait=true",
                "--timeout=30s",
            ],
            None,
        )
        .await;
        assert!(output.success, "{output:?}");
    }
    let calls = s.connect_calls().await;
    assert!(mutating_calls(&calls).is_empty(), "{:?}", tally(&calls));
    assert_eq!(s.sim.instances().await.len(), 2, "both instances untouched");
}

#[tokio::test]
async fn observe_only_never_writes_reports_drift_and_switches_to_manage_and_back() {
    let s = Scenario::start(
        "observe_only_never_writes_reports_drift_and_switches_to_manage_and_back",
        &[],
        &[("drift-interval", "1s")],
    )
    .await;
    let live = s
        .sim
        .insert_instance("observed-e2e", &[("team", "voice")])
        .await;
    let yaml = import(&s, &live.id, "observed").await;
    let yaml = yaml.replacen("spec:\n", "spec:\n  managementPolicy: ObserveOnly\n", 1);
    s.sim.clear_calls().await;
    apply_yaml(&s, &yaml).await;
    let object = s.wait_ready("observed").await;
    assert_eq!(ready_reason(&object).as_deref(), Some("Observed"));
    assert!(!is_true(&object, "Drifted", None), "{}", describe(&object));

    // Someone changes the instance behind the operator's back: reported, never corrected.
    set_inbound(&s, &live.id, false).await;
    s.sim.clear_calls().await;
    let object = s
        .wait_for("observed", "Drifted=True", |o| {
            is_true(o, "Drifted", Some("DriftDetected"))
        })
        .await;
    let drift = condition(&object, "Drifted")
        .map(|c| c.message)
        .unwrap_or_default();
    assert_eq!(drift, "INBOUND_CALLS: AWS false, spec true");
    assert_eq!(ready_reason(&object).as_deref(), Some("Observed"));
    // Several drift checks later (proof that it is at work), still not a single write.
    let seen = s.connect_calls().await.len();
    s.wait_calls(seen, 3, "three more drift checks", |c| {
        c.operation == "DescribeInstance"
    })
    .await;
    let calls = s.connect_calls().await;
    assert!(
        mutating_calls(&calls).is_empty(),
        "ObserveOnly wrote: {:?}",
        tally(&calls)
    );
    assert!(
        calls
            .iter()
            .filter(|c| c.operation == "DescribeInstance")
            .count()
            >= 2,
        "it keeps looking: {:?}",
        tally(&calls)
    );
    let events = s.event_summaries("observed").await;
    assert!(
        events.iter().any(|(_, r, _)| r == "DriftDetected"),
        "{events:?}"
    );

    // The instance agrees again: Drifted clears by itself.
    set_inbound(&s, &live.id, true).await;
    s.wait_for("observed", "Drifted gone", |o| !is_true(o, "Drifted", None))
        .await;

    // Its configuration changed behind the operator's back (the imported manifest says no
    // origin and no function): reported item by item, never corrected.
    assert!(yaml.contains("approvedOrigins: []"), "{yaml}");
    let other = super::someone_else(&s);
    other
        .associate_approved_origin()
        .instance_id(&live.id)
        .origin(ORIGIN)
        .send()
        .await
        .expect("an origin added behind the operator's back");
    other
        .associate_lambda_function()
        .instance_id(&live.id)
        .function_arn(FUNCTION)
        .send()
        .await
        .expect("a function added behind the operator's back");
    s.sim.clear_calls().await;
    let object = s
        .wait_for("observed", "Drifted naming the configuration", |o| {
            condition(o, "Drifted")
                .is_some_and(|c| c.status == "True" && c.message.contains("approvedOrigins"))
                && condition(o, "Drifted").is_some_and(|c| c.message.contains("lambdaFunctions"))
        })
        .await;
    let drift = condition(&object, "Drifted")
        .map(|c| c.message)
        .unwrap_or_default();
    assert_eq!(
        drift,
        format!(
            "approvedOrigins {ORIGIN}: in AWS, not in the spec; lambdaFunctions {FUNCTION}: in AWS, not in the spec"
        )
    );
    assert_eq!(ready_reason(&object).as_deref(), Some("Observed"));
    let seen = s.connect_calls().await.len();
    s.wait_calls(seen, 2, "two more configuration checks", |c| {
        c.operation == "ListApprovedOrigins"
    })
    .await;
    let calls = s.connect_calls().await;
    assert!(
        mutating_calls(&calls).is_empty(),
        "ObserveOnly wrote: {:?}",
        tally(&calls)
    );
    let instance = s.sim.instance(&live.id).await.expect("instance");
    assert_eq!(instance.approved_origins, [ORIGIN]);
    assert_eq!(instance.lambda_functions, [FUNCTION]);

    // Switched to Manage: drift is corrected (the attribute, the origin and the function)
    // and the uid tag added.
    set_inbound(&s, &live.id, false).await;
    s.merge_patch(
        "observed",
        json!({ "spec": { "managementPolicy": "Manage" } }),
    )
    .await;
    let object = s.wait_ready("observed").await;
    assert_eq!(ready_reason(&object).as_deref(), Some("Available"));
    let instance = s.sim.instance(&live.id).await.expect("instance");
    assert_eq!(
        instance.attributes.get("INBOUND_CALLS").map(String::as_str),
        Some("true")
    );
    assert!(instance.approved_origins.is_empty(), "{instance:?}");
    assert!(instance.lambda_functions.is_empty(), "{instance:?}");
    assert_eq!(instance.tags.get(UID_TAG), Some(&uid(&object)));

    // Switched back: writes stop at once.
    s.merge_patch(
        "observed",
        json!({ "spec": { "managementPolicy": "ObserveOnly" } }),
    )
    .await;
    s.wait_for("observed", "Ready=True/Observed", |o| {
        is_true(o, "Ready", Some("Observed"))
    })
    .await;
    set_inbound(&s, &live.id, false).await;
    s.sim.clear_calls().await;
    // It sees the change (Drifted) and goes on checking, without correcting it.
    s.wait_for("observed", "Drifted=True again", |o| {
        is_true(o, "Drifted", Some("DriftDetected"))
    })
    .await;
    s.wait_calls(0, 3, "three drift checks", |c| {
        c.operation == "DescribeInstance"
    })
    .await;
    let calls = s.connect_calls().await;
    assert!(mutating_calls(&calls).is_empty(), "{:?}", tally(&calls));
    let instance = s.sim.instance(&live.id).await.expect("instance");
    assert_eq!(
        instance.attributes.get("INBOUND_CALLS").map(String::as_str),
        Some("false")
    );
}

#[tokio::test]
async fn an_imported_replicated_instance_is_adopted_with_its_replica_writing_only_the_uid_tag() {
    let s = Scenario::start(
        "an_imported_replicated_instance_is_adopted_with_its_replica_writing_only_the_uid_tag",
        &["--creation-delay", "300ms", "--replication-delay", "500ms"],
        &[],
    )
    .await;
    // A SAML instance and its replica, made with the SDK outside the operator.
    let other = super::someone_else(&s);
    let created = other
        .create_instance()
        .identity_management_type(aws_sdk_connect::types::DirectoryType::Saml)
        .instance_alias("brownfield-global-e2e")
        .inbound_calls_enabled(true)
        .outbound_calls_enabled(true)
        .send()
        .await
        .expect("CreateInstance");
    let id = created.id().expect("an id").to_owned();
    let describe_status = |what: &'static str| {
        let other = other.clone();
        let id = id.clone();
        async move {
            let out = other
                .describe_instance()
                .instance_id(&id)
                .send()
                .await
                .map_err(|e| format!("{what}: {e}"))?;
            Ok::<_, String>(out)
        }
    };
    test_kit::wait_until("the instance ACTIVE", test_kit::DEADLINE, || async {
        let out = describe_status("describe").await?;
        match out
            .instance()
            .and_then(|i| i.instance_status())
            .map(|s| s.as_str().to_owned())
        {
            Some(status) if status == "ACTIVE" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    other
        .replicate_instance()
        .instance_id(&id)
        .replica_region("us-west-2")
        .replica_alias("brownfield-global-west-e2e")
        .client_token("made-outside")
        .send()
        .await
        .expect("ReplicateInstance");
    test_kit::wait_until("the replica complete", test_kit::DEADLINE, || async {
        let out = describe_status("describe").await?;
        let complete = out.replication_configuration().is_some_and(|c| {
            c.replication_status_summary_list().iter().any(|r| {
                r.region() == Some("us-west-2")
                    && r.replication_status().map(|s| s.as_str())
                        == Some("INSTANCE_REPLICATION_COMPLETE")
            })
        });
        if complete {
            Ok(())
        } else {
            Err("replicating".to_owned())
        }
    })
    .await;

    let yaml = import(&s, &id, "brownfield-global").await;
    assert!(yaml.contains("replica:"), "{yaml}");
    assert!(yaml.contains("region: us-west-2"), "{yaml}");
    assert!(yaml.contains("alias: brownfield-global-west-e2e"), "{yaml}");
    s.sim.clear_calls().await;
    apply_yaml(&s, &yaml).await;
    let object = s.wait_ready("brownfield-global").await;
    assert_eq!(
        object
            .data
            .pointer("/status/replica/status")
            .and_then(Value::as_str),
        Some("INSTANCE_REPLICATION_COMPLETE")
    );
    let calls = s.connect_calls().await;
    let writes = mutating_calls(&calls);
    assert_eq!(writes.len(), 1, "only the uid tag: {:?}", tally(&calls));
    assert_eq!(writes[0].operation, "TagResource");
}
