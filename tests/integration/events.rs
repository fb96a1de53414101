//! The operator's event recorder against the real API server: an event is an
//! `events.k8s.io/v1` Event in the regarded object's namespace, naming the operator and
//! its replica, and a repeat within the series window is counted in the first one's series
//! rather than written as another Event.

use connect_operator::cluster::events::Recorder;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube::runtime::events::EventType;
use test_kit::{TestNamespace, client};

fn regarding(namespace: &str, name: &str, uid: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("connect.operators.dev/v1alpha1".into()),
        kind: Some("ConnectInstance".into()),
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        uid: Some(uid.into()),
        ..ObjectReference::default()
    }
}

#[tokio::test]
async fn a_repeated_event_is_one_event_with_a_series_and_others_are_their_own() {
    let client = client().await;
    let namespace = TestNamespace::create(&client, "events").await;
    let recorder = Recorder::new(
        client.clone(),
        "connect-operator".into(),
        Some("replica-a".into()),
    );
    let one = regarding(
        &namespace.name,
        "one",
        "00000000-0000-4000-8000-000000000001",
    );
    let two = regarding(
        &namespace.name,
        "two",
        "00000000-0000-4000-8000-000000000002",
    );
    let publish = |type_, reason: &'static str, action: &'static str, regarding| {
        let recorder = &recorder;
        async move {
            recorder
                .publish(type_, reason, reason.to_lowercase(), action, regarding)
                .await
                .expect("published");
        }
    };
    for _ in 0..3 {
        publish(EventType::Normal, "Created", "Create", &one).await;
    }
    publish(EventType::Warning, "AwsError", "Reconcile", &one).await;
    publish(EventType::Normal, "Created", "Create", &two).await;

    let events = Api::<Event>::namespaced(client.clone(), &namespace.name)
        .list(&ListParams::default())
        .await
        .expect("events listed")
        .items;
    let mut seen: Vec<(String, String, String, i32)> = events
        .iter()
        .map(|e| {
            (
                e.regarding
                    .as_ref()
                    .and_then(|r| r.name.clone())
                    .unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                e.type_.clone().unwrap_or_default(),
                e.series.as_ref().map_or(1, |s| s.count),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("one".into(), "AwsError".into(), "Warning".into(), 1),
            ("one".into(), "Created".into(), "Normal".into(), 3),
            ("two".into(), "Created".into(), "Normal".into(), 1),
        ],
        "{events:#?}"
    );
    for event in &events {
        assert_eq!(
            event.reporting_controller.as_deref(),
            Some("connect-operator")
        );
        assert_eq!(event.reporting_instance.as_deref(), Some("replica-a"));
        assert!(event.event_time.is_some(), "{event:?}");
    }
}
