//! Tests of the instance lifecycle: delays, visibility, refused and accepted deletions,
//! the retention of failed instances.

use std::time::{Duration, Instant};

use regex::Regex;

use super::super::testing::{error_code, new_model, request, settings};
use super::super::{InstanceStatus, Model, Settings};
use crate::config::SimConfig;

fn listed_ids(model: &Model) -> Vec<String> {
    let reply = model.list_instances(None, None).unwrap();
    let body = reply.body.unwrap();
    body["InstanceSummaryList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn creation_settles_after_delay_and_deletion_vanishes_after_delay() {
    let config = SimConfig {
        creation_delay: Duration::from_secs(2),
        deletion_delay: Duration::from_secs(1),
        ..SimConfig::default()
    };
    let mut model = new_model(1);
    let t0 = Instant::now();
    let reply = model.create_instance(&settings(&config), request("one", None), t0);
    let id = reply.ok().and_then(|r| r.instance_id).unwrap_or_default();
    assert_eq!(
        model.instances()[0].status,
        InstanceStatus::CreationInProgress
    );
    model.advance(&config, t0 + Duration::from_secs(2));
    assert_eq!(model.instances()[0].status, InstanceStatus::Active);
    let t1 = t0 + Duration::from_secs(3);
    assert!(
        model
            .delete_instance(&settings(&config), &id, Some("d"), t1)
            .is_ok()
    );
    model.advance(&config, t1 + Duration::from_millis(999));
    assert_eq!(model.instance_count(), 1);
    model.advance(&config, t1 + Duration::from_secs(1));
    assert_eq!(model.instance_count(), 0);
    assert_eq!(model.lifecycle_attempts(), 2);
}

#[test]
fn a_new_instance_is_invisible_for_the_visibility_delay_but_exists() {
    let config = SimConfig {
        creation_delay: Duration::from_secs(1),
        visibility_delay: Duration::from_secs(5),
        ..SimConfig::default()
    };
    let settings = settings(&config);
    let mut model = new_model(3);
    let t0 = Instant::now();
    let id = model
        .create_instance(&settings, request("late", Some("tok")), t0)
        .unwrap()
        .instance_id
        .unwrap();
    let t1 = t0 + Duration::from_secs(2);
    model.advance(&config, t1);
    // Unknown to every lookup, as an id that does not exist...
    assert_eq!(
        error_code(model.describe_instance(&id)),
        Some("ResourceNotFoundException")
    );
    assert!(listed_ids(&model).is_empty());
    assert_eq!(
        error_code(model.delete_instance(&settings, &id, Some("del"), t1)),
        Some("ResourceNotFoundException")
    );
    assert_eq!(
        error_code(model.list_instance_attributes(&settings, &id, None, None)),
        Some("ResourceNotFoundException")
    );
    let arn = model.instances()[0].arn.clone();
    assert_eq!(
        error_code(model.list_tags_for_resource(&arn)),
        Some("ResourceNotFoundException")
    );
    // ...but it exists: a replay answers with it, it holds its alias and its quota slot,
    // and its lifecycle goes on.
    let replay = model
        .create_instance(&settings, request("late", Some("tok")), t1)
        .unwrap();
    assert!(replay.replay);
    assert_eq!(replay.instance_id.as_deref(), Some(id.as_str()));
    assert_eq!(
        error_code(model.create_instance(&settings, request("LATE", None), t1)),
        Some("InvalidRequestException")
    );
    assert_eq!(model.instance_count(), 1);
    assert_eq!(
        model.lifecycle_attempts(),
        1,
        "the refused delete did not count"
    );
    assert_eq!(model.instances()[0].status, InstanceStatus::Active);

    model.advance(&config, t0 + Duration::from_secs(5));
    assert!(model.describe_instance(&id).is_ok());
    assert_eq!(listed_ids(&model), std::slice::from_ref(&id));
    assert!(
        model
            .delete_instance(&settings, &id, Some("del"), t0 + Duration::from_secs(5))
            .is_ok()
    );
}

#[test]
fn the_visibility_delay_applies_to_instances_created_while_it_is_set() {
    let mut config = SimConfig::default();
    let mut model = new_model(4);
    let t0 = Instant::now();
    let old = model
        .create_instance(&settings(&config), request("before", None), t0)
        .unwrap()
        .instance_id
        .unwrap();
    config.visibility_delay = Duration::from_secs(10);
    let new = model
        .create_instance(&settings(&config), request("after", None), t0)
        .unwrap()
        .instance_id
        .unwrap();
    model.advance(&config, t0 + Duration::from_secs(1));
    assert!(model.describe_instance(&old).is_ok());
    assert!(model.describe_instance(&new).is_err());
    // Turning the knob off later does not reveal it early: the delay was fixed at creation.
    config.visibility_delay = Duration::ZERO;
    model.advance(&config, t0 + Duration::from_secs(9));
    assert!(model.describe_instance(&new).is_err());
    model.advance(&config, t0 + Duration::from_secs(10));
    assert!(model.describe_instance(&new).is_ok());
}

#[test]
fn deleting_while_creating_is_refused_when_configured_and_not_counted() {
    let config = SimConfig {
        creation_delay: Duration::from_secs(2),
        refuse_delete_while_creating: true,
        ..SimConfig::default()
    };
    let settings = settings(&config);
    let mut model = new_model(5);
    let t0 = Instant::now();
    let id = model
        .create_instance(&settings, request("busy", None), t0)
        .unwrap()
        .instance_id
        .unwrap();
    let refused = model
        .delete_instance(&settings, &id, Some("d1"), t0 + Duration::from_secs(1))
        .err()
        .unwrap();
    assert_eq!(refused.kind.code(), "InvalidRequestException");
    assert_eq!(refused.kind.status(), 400);
    assert!(
        refused.message.contains("still being created"),
        "{}",
        refused.message
    );
    assert_eq!(model.lifecycle_attempts(), 1, "only the create counted");
    assert!(model.instances()[0].vanishes_at.is_none());

    // The same token is not burnt: once ACTIVE it deletes.
    let t2 = t0 + Duration::from_secs(2);
    model.advance(&config, t2);
    let accepted = model
        .delete_instance(&settings, &id, Some("d1"), t2)
        .unwrap();
    assert!(!accepted.replay);
    assert_eq!(model.lifecycle_attempts(), 2);
}

#[test]
fn deleting_while_creating_is_accepted_by_default() {
    let config = SimConfig::default();
    let mut model = new_model(6);
    let t0 = Instant::now();
    let id = model
        .create_instance(&settings(&config), request("busy", None), t0)
        .unwrap()
        .instance_id
        .unwrap();
    assert_eq!(
        model.instances()[0].status,
        InstanceStatus::CreationInProgress
    );
    assert!(
        model
            .delete_instance(&settings(&config), &id, None, t0)
            .is_ok()
    );
    assert_eq!(model.lifecycle_attempts(), 2);
}

#[test]
fn a_failed_instance_vanishes_after_the_retention_counted_from_its_failure() {
    let mut config = SimConfig {
        creation_delay: Duration::from_secs(2),
        failed_instance_retention: Some(Duration::from_secs(10)),
        ..SimConfig::default()
    };
    let fail = Regex::new("^doomed").unwrap();
    let mut model = new_model(7);
    let t0 = Instant::now();
    let failing = {
        let settings = Settings::new(&config, Some(&fail));
        model
            .create_instance(&settings, request("doomed-1", None), t0)
            .unwrap()
            .instance_id
            .unwrap()
    };
    let fine = model
        .create_instance(&settings(&config), request("fine-1", None), t0)
        .unwrap()
        .instance_id
        .unwrap();
    // Failed at t0 + 2 s, observed only at t0 + 5 s: the retention runs from the failure.
    model.advance(&config, t0 + Duration::from_secs(5));
    assert_eq!(
        model.find(&failing).unwrap().status,
        InstanceStatus::CreationFailed
    );
    model.advance(&config, t0 + Duration::from_millis(11_999));
    assert!(model.describe_instance(&failing).is_ok());
    model.advance(&config, t0 + Duration::from_secs(12));
    assert_eq!(
        error_code(model.describe_instance(&failing)),
        Some("ResourceNotFoundException")
    );
    assert!(
        model.describe_instance(&fine).is_ok(),
        "ACTIVE instances stay"
    );
    assert_eq!(model.instance_count(), 1, "the quota slot is free again");
    assert_eq!(
        model.lifecycle_attempts(),
        2,
        "AWS's clean-up is no attempt"
    );
    // Its alias is free again.
    assert!(
        model
            .create_instance(
                &settings(&config),
                request("doomed-1", None),
                t0 + Duration::from_secs(12)
            )
            .is_ok()
    );

    // Without retention (the default) a failed instance stays.
    config.failed_instance_retention = None;
    let mut model = new_model(8);
    let settings = Settings::new(&config, Some(&fail));
    let kept = model
        .create_instance(&settings, request("doomed-2", None), t0)
        .unwrap()
        .instance_id
        .unwrap();
    model.advance(&config, t0 + Duration::from_secs(86_400 * 30));
    assert!(model.describe_instance(&kept).is_ok());
}

#[test]
fn a_replica_keeps_the_id_counts_an_attempt_and_uses_the_replication_delays() {
    let config = SimConfig {
        creation_delay: Duration::ZERO,
        replication_delay: Duration::from_secs(5),
        replica_deletion_delay: Duration::from_secs(3),
        deletion_delay: Duration::from_secs(1),
        ..SimConfig::default()
    };
    let t0 = Instant::now();
    let mut source_model = new_model(1);
    source_model
        .create_instance(&settings(&config), request("source", None), t0)
        .unwrap();
    let source = source_model.instances()[0].clone();
    let mut replica_model = Model::new("123456789012", "us-west-2", fastrand::Rng::with_seed(2));
    let replica =
        replica_model.insert_replica(&settings(&config), &source, "replica".into(), false, t0);
    assert_eq!(replica.id, source.id);
    assert_eq!(
        replica.arn,
        format!(
            "arn:aws:connect:us-west-2:123456789012:instance/{}",
            source.id
        )
    );
    assert_eq!(replica.replica_of.as_deref(), Some("us-east-1"));
    assert_eq!(replica_model.lifecycle_attempts(), 1);
    replica_model.advance(&config, t0 + Duration::from_secs(4));
    assert_eq!(
        replica_model.instances()[0].status,
        InstanceStatus::CreationInProgress
    );
    replica_model.advance(&config, t0 + Duration::from_secs(5));
    assert_eq!(replica_model.instances()[0].status, InstanceStatus::Active);

    let t1 = t0 + Duration::from_secs(6);
    replica_model
        .delete_instance(&settings(&config), &source.id, None, t1)
        .unwrap();
    assert_eq!(replica_model.lifecycle_attempts(), 2);
    // The replica deletion delay, not the deletion delay.
    replica_model.advance(&config, t1 + Duration::from_secs(2));
    assert_eq!(replica_model.instance_count(), 1);
    replica_model.advance(&config, t1 + Duration::from_secs(3));
    assert_eq!(replica_model.instance_count(), 0);
}

#[test]
fn a_replica_refused_at_the_attempt_limit_or_quota() {
    let config = SimConfig {
        lifecycle_attempt_limit: 1,
        ..SimConfig::default()
    };
    let mut model = new_model(1);
    model.check_room(&settings(&config)).unwrap();
    model
        .create_instance(&settings(&config), request("one", None), Instant::now())
        .unwrap();
    let err = model.check_room(&settings(&config)).unwrap_err();
    assert_eq!(err.kind.code(), "ServiceQuotaExceededException");
    assert!(err.message.starts_with("Your account has been flagged"));
}
