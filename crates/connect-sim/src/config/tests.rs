//! Tests of the settings: partial updates and what they refuse, the undocumented-behaviour
//! and role knobs, the per-account exceptions.

use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn patch(json: &str) -> Result<ConfigPatch, serde_json::Error> {
    serde_json::from_str(json)
}

#[test]
fn partial_update_changes_only_given_keys() -> TestResult {
    let mut config = SimConfig::default();
    let changed = config.apply(patch(
        r#"{"instanceQuota": 5, "rateLimits": {"CreateInstance": null}}"#,
    )?)?;
    assert_eq!(changed, vec![Operation::CreateInstance]);
    assert_eq!(config.instance_quota, 5);
    assert_eq!(config.lifecycle_attempt_limit, 100);
    assert_eq!(
        config.rate_limit(Operation::CreateInstance).per_second,
        None
    );
    assert_eq!(
        config.rate_limit(Operation::DeleteInstance).per_second,
        Some(0.1)
    );
    Ok(())
}

#[test]
fn invalid_update_changes_nothing() -> TestResult {
    let mut config = SimConfig::default();
    let before = config.clone();
    let bad_ratio = patch(r#"{"instanceQuota": 9, "faults": {"serverErrorRatio": 2.0}}"#)?;
    assert!(config.apply(bad_ratio).is_err());
    assert!(
        config
            .apply(patch(r#"{"failCreationAliasPattern": "("}"#)?)
            .is_err()
    );
    assert!(
        config
            .apply(patch(r#"{"rateLimits": {"Nope": 1}}"#)?)
            .is_err()
    );
    assert_eq!(config, before);
    assert!(patch(r#"{"instanceQuotas": 1}"#).is_err());
    Ok(())
}

#[test]
fn undocumented_behaviour_knobs_are_off_by_default_and_merge() -> TestResult {
    let mut config = SimConfig::default();
    let view = config.view();
    assert_eq!(view.visibility_delay_ms, 0);
    assert!(!view.refuse_delete_while_creating);
    assert_eq!(view.failed_instance_retention_ms, None);
    assert!(view.extra_attribute_types.is_empty());
    config.apply(patch(
        r#"{"visibilityDelayMs": 1500, "refuseDeleteWhileCreating": true,
            "failedInstanceRetentionMs": 86400000, "extraAttributeTypes": ["NEW_THING"]}"#,
    )?)?;
    assert_eq!(config.visibility_delay, Duration::from_millis(1500));
    assert!(config.refuse_delete_while_creating);
    assert_eq!(
        config.failed_instance_retention,
        Some(Duration::from_secs(86_400))
    );
    assert_eq!(config.extra_attribute_types, ["NEW_THING"]);
    config.apply(patch("{}")?)?;
    assert_eq!(
        config.failed_instance_retention,
        Some(Duration::from_secs(86_400)),
        "absent keeps"
    );
    config.apply(patch(
        r#"{"failedInstanceRetentionMs": null, "extraAttributeTypes": []}"#,
    )?)?;
    assert_eq!(config.failed_instance_retention, None, "null is forever");
    assert!(config.extra_attribute_types.is_empty());
    // The typed patch the test kit sends says the same.
    let typed = ConfigPatch {
        failed_instance_retention_ms: Some(None),
        ..ConfigPatch::default()
    };
    assert_eq!(
        serde_json::to_string(&typed)?,
        r#"{"failedInstanceRetentionMs":null}"#
    );
    Ok(())
}

#[test]
fn extra_attribute_types_must_be_new_well_formed_and_unique() -> TestResult {
    let mut config = SimConfig::default();
    let before = config.clone();
    for bad in [
        r#"{"extraAttributeTypes": ["lower"]}"#,
        r#"{"extraAttributeTypes": [""]}"#,
        r#"{"extraAttributeTypes": ["CONTACT_LENS"]}"#,
        r#"{"extraAttributeTypes": ["A_B", "A_B"]}"#,
    ] {
        assert!(config.apply(patch(bad)?).is_err(), "{bad} was accepted");
    }
    assert_eq!(config, before);
    let invalid = SimConfig {
        extra_attribute_types: vec!["EARLY_MEDIA".into()],
        ..SimConfig::default()
    };
    assert!(invalid.validate().is_err());
    Ok(())
}

#[test]
fn account_exceptions_merge_per_key_and_null_restores_the_default() -> TestResult {
    let mut config = SimConfig::default();
    config.apply(patch(
        r#"{"accounts": {"111111111111": {"instanceQuota": 5}}}"#,
    )?)?;
    assert_eq!(config.instance_quota_of("111111111111"), 5);
    assert_eq!(config.instance_quota_of("123456789012"), 2);
    config.apply(patch(
        r#"{"accounts": {"111111111111": {"lifecycleAttemptLimit": 3}}}"#,
    )?)?;
    assert_eq!(
        config.instance_quota_of("111111111111"),
        5,
        "merged per key"
    );
    assert_eq!(config.lifecycle_attempt_limit_of("111111111111"), 3);
    assert_eq!(
        config.view().accounts["111111111111"],
        AccountView {
            instance_quota: Some(5),
            lifecycle_attempt_limit: Some(3),
            replication_allowed: None,
        }
    );
    config.apply(patch(
        r#"{"accounts": {"111111111111": {"instanceQuota": null}}}"#,
    )?)?;
    assert_eq!(config.instance_quota_of("111111111111"), 2);
    config.apply(patch(r#"{"accounts": {"111111111111": null}}"#)?)?;
    assert!(config.accounts.is_empty());
    assert!(
        config
            .apply(patch(r#"{"accounts": {"1111": {"instanceQuota": 1}}}"#)?)
            .is_err()
    );
    assert!(patch(r#"{"accounts": {"111111111111": {"quota": 1}}}"#).is_err());
    Ok(())
}

#[test]
fn role_knobs_replace_and_reject_what_is_not_a_role_arn() -> TestResult {
    let mut config = SimConfig::default();
    let role = "arn:aws:iam::222222222222:role/connect";
    config.apply(patch(&format!(
        r#"{{"refuseAssumeRole": ["{role}"], "roleExternalIds": {{"{role}": "ext-1"}}}}"#
    ))?)?;
    assert_eq!(config.refuse_assume_role, [role]);
    assert_eq!(config.role_external_ids[role], "ext-1");
    let before = config.clone();
    for bad in [
        r#"{"refuseAssumeRole": ["arn:aws:iam::2222:role/x"]}"#,
        r#"{"refuseAssumeRole": ["arn:aws:iam::222222222222:user/x"]}"#,
        r#"{"roleExternalIds": {"arn:aws:iam::222222222222:role/x": "a"}}"#,
        r#"{"rateLimits": {"AssumeRole": 1}}"#,
    ] {
        assert!(config.apply(patch(bad)?).is_err(), "{bad} was accepted");
    }
    assert_eq!(config, before);
    config.apply(patch(r#"{"refuseAssumeRole": [], "roleExternalIds": {}}"#)?)?;
    assert!(config.refuse_assume_role.is_empty());
    assert!(config.role_external_ids.is_empty());
    // STS operations are faulted only when named.
    config.apply(patch(r#"{"faults": {"operations": []}}"#)?)?;
    assert!(!config.faults.applies_to(Operation::AssumeRole));
    assert!(config.faults.applies_to(Operation::CreateInstance));
    config.apply(patch(r#"{"faults": {"operations": ["AssumeRole"]}}"#)?)?;
    assert!(config.faults.applies_to(Operation::AssumeRole));
    assert!(!config.faults.applies_to(Operation::GetCallerIdentity));
    Ok(())
}

#[test]
fn null_pattern_clears_and_absent_pattern_keeps() -> TestResult {
    let mut config = SimConfig {
        fail_creation_alias_pattern: Some("^fail".into()),
        ..SimConfig::default()
    };
    config.apply(patch("{}")?)?;
    assert_eq!(config.fail_creation_alias_pattern.as_deref(), Some("^fail"));
    config.apply(patch(r#"{"failCreationAliasPattern": null}"#)?)?;
    assert_eq!(config.fail_creation_alias_pattern, None);
    Ok(())
}

#[test]
fn replication_knobs_apply_and_show() -> TestResult {
    let mut config = SimConfig::default();
    assert!(config.replication_allowed_of("111111111111"));
    assert_eq!(
        config.source_delete_with_replica,
        super::SourceDeleteWithReplica::Refuse
    );
    config.apply(patch(
        r#"{"replicationDelayMs": 50, "replicaDeletionDelayMs": 60,
            "sourceDeleteWithReplica": "cascade", "failReplicationAliasPattern": "^bad",
            "accounts": {"111111111111": {"replicationAllowed": false}}}"#,
    )?)?;
    assert!(!config.replication_allowed_of("111111111111"));
    assert!(config.replication_allowed_of("222222222222"));
    let view = config.view();
    assert_eq!(view.replication_delay_ms, 50);
    assert_eq!(view.replica_deletion_delay_ms, 60);
    assert_eq!(
        view.source_delete_with_replica,
        super::SourceDeleteWithReplica::Cascade
    );
    assert_eq!(
        view.accounts["111111111111"].replication_allowed,
        Some(false)
    );
    config.apply(patch(r#"{"replicationAllowed": false}"#)?)?;
    assert!(!config.replication_allowed_of("222222222222"));
    // Invalid values change nothing.
    assert!(patch(r#"{"sourceDeleteWithReplica": "maybe"}"#).is_err());
    assert!(
        config
            .apply(patch(r#"{"failReplicationAliasPattern": "("}"#)?)
            .is_err()
    );
    assert_eq!(
        config.fail_replication_alias_pattern.as_deref(),
        Some("^bad")
    );
    Ok(())
}
