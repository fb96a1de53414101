//! `ConnectInstance` objects seen through the API server, as untyped JSON: the tests check
//! the wire format users and GitOps tools see, independent of the operator's Rust types.

use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::runtime::wait::{self, await_condition};
use serde_json::{Value, json};
use tokio::time::Instant;

pub const GROUP: &str = "connect.operators.dev";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "ConnectInstance";
pub const PLURAL: &str = "connectinstances";
pub const FINALIZER: &str = "connect.operators.dev/cleanup";
pub const UID_TAG: &str = "connect.operators.dev/uid";

pub fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), PLURAL)
}

/// The `connectinstances` of one namespace.
pub fn api(client: &Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &resource())
}

/// A manifest with the given name and spec.
pub fn manifest(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": KIND,
        "metadata": { "name": name },
        "spec": spec,
    })
}

/// A valid CONNECT_MANAGED spec with the given alias.
pub fn basic_spec(alias: &str) -> Value {
    json!({
        "identityManagementType": "CONNECT_MANAGED",
        "instanceAlias": alias,
        "inboundCallsEnabled": true,
        "outboundCallsEnabled": false,
        "attributes": { "contactflowLogs": true, "contactLens": false },
        "tags": { "team": "support", "cost-center": "42" },
    })
}

/// Creates the object through the API; returns it as stored.
pub async fn create(
    api: &Api<DynamicObject>,
    manifest: &Value,
) -> Result<DynamicObject, kube::Error> {
    let object: DynamicObject =
        serde_json::from_value(manifest.clone()).expect("a manifest is a DynamicObject");
    api.create(&PostParams::default(), &object).await
}

/// One condition of an object, as the API server returns it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Condition {
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub observed_generation: Option<i64>,
    pub last_transition_time: String,
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// `status.conditions`.
pub fn conditions(object: &DynamicObject) -> Vec<Condition> {
    object
        .data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|conditions| {
            conditions
                .iter()
                .map(|condition| Condition {
                    type_: text(condition, "type"),
                    status: text(condition, "status"),
                    reason: text(condition, "reason"),
                    message: text(condition, "message"),
                    observed_generation: condition
                        .get("observedGeneration")
                        .and_then(Value::as_i64),
                    last_transition_time: text(condition, "lastTransitionTime"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The condition of this type, if present.
pub fn condition(object: &DynamicObject, type_: &str) -> Option<Condition> {
    conditions(object)
        .into_iter()
        .find(|condition| condition.type_ == type_)
}

/// Whether the condition is present with status `True` (and this reason, if given).
pub fn is_true(object: &DynamicObject, type_: &str, reason: Option<&str>) -> bool {
    condition(object, type_).is_some_and(|condition| {
        condition.status == "True" && reason.is_none_or(|reason| condition.reason == reason)
    })
}

/// A string field of `status`.
pub fn status_str(object: &DynamicObject, field: &str) -> Option<String> {
    object
        .data
        .pointer(&format!("/status/{field}"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

pub fn uid(object: &DynamicObject) -> String {
    object
        .metadata
        .uid
        .clone()
        .expect("stored objects have a uid")
}

pub fn generation(object: &DynamicObject) -> i64 {
    object
        .metadata
        .generation
        .expect("stored objects have a generation")
}

pub fn has_finalizer(object: &DynamicObject) -> bool {
    object
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|finalizers| finalizers.iter().any(|finalizer| finalizer == FINALIZER))
}

/// Compact description for failure messages.
pub fn describe(object: &DynamicObject) -> String {
    format!(
        "generation={:?} finalizers={:?} deleting={} status={}",
        object.metadata.generation,
        object.metadata.finalizers,
        object.metadata.deletion_timestamp.is_some(),
        object.data.get("status").cloned().unwrap_or(Value::Null)
    )
}

/// Watches the object until `accept` holds; returns it as the watch delivered it.
pub async fn wait_for(
    api: &Api<DynamicObject>,
    name: &str,
    what: &str,
    timeout: Duration,
    accept: impl Fn(&DynamicObject) -> bool,
) -> DynamicObject {
    let accepted = await_object(
        api,
        name,
        &format!("{name}: {what}"),
        timeout,
        |object: Option<&DynamicObject>| object.is_some_and(&accept),
    )
    .await;
    accepted.expect("an accepted object exists")
}

/// Watches the object until it is gone (or replaced by a new object of the same name).
pub async fn wait_gone(api: &Api<DynamicObject>, name: &str, timeout: Duration) {
    let existing = match api.get_opt(name).await {
        Ok(Some(object)) => object,
        Ok(None) => return,
        Err(error) => panic!("reading {name}: {error}"),
    };
    let uid = uid(&existing);
    await_object(
        api,
        name,
        &format!("{name} to be gone"),
        timeout,
        wait::conditions::is_deleted(&uid),
    )
    .await;
}

/// [`await_condition`] with a deadline. A watch that fails (a dropped connection, say) is
/// started again; at the deadline the test fails with the object as it is then.
async fn await_object(
    api: &Api<DynamicObject>,
    name: &str,
    what: &str,
    timeout: Duration,
    condition: impl wait::Condition<DynamicObject>,
) -> Option<DynamicObject> {
    let deadline = Instant::now() + timeout;
    loop {
        let watched = tokio::time::timeout_at(
            deadline,
            await_condition(api.clone(), name, |object: Option<&DynamicObject>| {
                condition.matches_object(object)
            }),
        )
        .await;
        let last = match watched {
            Ok(Ok(object)) => return object,
            Ok(Err(error)) => error.to_string(),
            Err(_elapsed) => match api.get_opt(name).await {
                Ok(Some(object)) => describe(&object),
                Ok(None) => "object does not exist".to_owned(),
                Err(error) => error.to_string(),
            },
        };
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Events about the named object in its namespace (core/v1 view, which also shows
/// events.k8s.io events), oldest first.
pub async fn events(client: &Client, namespace: &str, name: &str) -> Vec<Event> {
    events_of(client, namespace, KIND, name).await
}

/// Events about a cluster-scoped object of `kind` (a `ConnectAccount`): they are recorded
/// in the `default` namespace. Oldest first.
pub async fn cluster_events(client: &Client, kind: &str, name: &str) -> Vec<Event> {
    events_of(client, "default", kind, name).await
}

async fn events_of(client: &Client, namespace: &str, kind: &str, name: &str) -> Vec<Event> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let mut list: Vec<Event> = events
        .list(&ListParams::default())
        .await
        .expect("listing events")
        .items
        .into_iter()
        .filter(|event| {
            event.involved_object.kind.as_deref() == Some(kind)
                && event.involved_object.name.as_deref() == Some(name)
        })
        .collect();
    list.sort_by_key(|event| event.metadata.creation_timestamp.clone());
    list
}

/// `(type, reason, message)` of each event, for assertions and failure messages.
pub fn event_summaries(events: &[Event]) -> Vec<(String, String, String)> {
    events
        .iter()
        .map(|event| {
            (
                event.type_.clone().unwrap_or_default(),
                event.reason.clone().unwrap_or_default(),
                event.message.clone().unwrap_or_default(),
            )
        })
        .collect()
}
