//! Inspection and control endpoints under `/_sim/` (JSON, camelCase). They are not Connect
//! operations: never rate limited, faulted or recorded in the call log.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::config::ConfigPatch;
use super::model::NewInstance;
use super::service::Sim;

type SimState = State<Arc<Sim>>;

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "message": message.into() })),
    )
        .into_response()
}

/// `GET /_sim/calls`: every Connect call so far, oldest first.
pub(crate) async fn list_calls(State(sim): SimState) -> Response {
    Json(sim.lock().calls().to_vec()).into_response()
}

/// `DELETE /_sim/calls`: forgets the recorded calls (sequence numbers keep counting).
pub(crate) async fn clear_calls(State(sim): SimState) -> Response {
    let cleared = sim.lock().clear_calls();
    Json(json!({ "cleared": cleared })).into_response()
}

/// `GET /_sim/instances`: the instances that exist now.
pub(crate) async fn list_instances(State(sim): SimState) -> Response {
    let mut inner = sim.lock();
    inner.advance(Instant::now());
    let instances: Vec<Value> = inner
        .model
        .instances()
        .iter()
        .map(|i| i.inspection_json())
        .collect();
    Json(instances).into_response()
}

/// Body of `POST /_sim/instances`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ForeignInstance {
    alias: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default = "connect_managed")]
    identity_management_type: String,
    #[serde(default = "enabled")]
    inbound_calls_enabled: bool,
    #[serde(default = "enabled")]
    outbound_calls_enabled: bool,
}

fn connect_managed() -> String {
    "CONNECT_MANAGED".to_owned()
}

fn enabled() -> bool {
    true
}

/// `POST /_sim/instances`: inserts an ACTIVE instance that nobody created through the API
/// (no quota check, no attempt counted, not in the call log).
pub(crate) async fn insert_instance(State(sim): SimState, body: Bytes) -> Response {
    let request: ForeignInstance = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return bad_request(format!("invalid body: {e}")),
    };
    let spec = NewInstance {
        alias: request.alias,
        identity_management_type: request.identity_management_type,
        inbound: request.inbound_calls_enabled,
        outbound: request.outbound_calls_enabled,
        tags: request.tags,
    };
    let now = Instant::now();
    let mut inner = sim.lock();
    inner.advance(now);
    let (model, settings) = inner.split();
    match model.insert_foreign(&settings, spec, now) {
        Ok(instance) => Json(instance.inspection_json()).into_response(),
        Err(message) => bad_request(message),
    }
}

/// `GET /_sim/config`
pub(crate) async fn get_config(State(sim): SimState) -> Response {
    Json(sim.lock().config.view()).into_response()
}

/// `PUT /_sim/config`: partial merge; answers the whole new configuration.
pub(crate) async fn put_config(State(sim): SimState, body: Bytes) -> Response {
    let patch: ConfigPatch = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(e) => return bad_request(format!("invalid configuration: {e}")),
    };
    let mut inner = sim.lock();
    let changed = match inner.config.apply(patch) {
        Ok(changed) => changed,
        Err(message) => return bad_request(message),
    };
    match inner.config.fail_alias_regex() {
        Ok(regex) => inner.fail_alias = regex,
        Err(message) => return bad_request(message),
    }
    inner.reset_buckets(&changed, Instant::now());
    let view = inner.config.view();
    let summary = serde_json::to_string(&view).unwrap_or_default();
    tracing::info!(config = %summary, "simulator configuration changed");
    Json(view).into_response()
}

/// `GET /_sim/state`: counters the quotas work on.
pub(crate) async fn get_state(State(sim): SimState) -> Response {
    let mut inner = sim.lock();
    inner.advance(Instant::now());
    Json(json!({
        "lifecycleAttempts": inner.model.lifecycle_attempts(),
        "instanceCount": inner.model.instance_count(),
    }))
    .into_response()
}
