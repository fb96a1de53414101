//! Inspection and control endpoints under `/_sim/` (JSON, camelCase). They are not Connect
//! operations: never rate limited, faulted, authenticated or recorded in the call log. The
//! views take `?accountId=&region=` filters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::config::ConfigPatch;
use super::model::NewInstance;
use super::service::{Scope, Sim};
use super::validate::{is_account_id, is_region};

type SimState = State<Arc<Sim>>;

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "message": message.into() })),
    )
        .into_response()
}

/// The `?accountId=&region=` filter of a view; any other parameter is a mistake.
fn scope(query: Option<&str>) -> Result<Scope, Box<Response>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|e| Box::new(bad_request(format!("invalid query string: {e}"))))?;
    let mut scope = Scope::default();
    for (name, value) in pairs {
        match name.as_str() {
            "accountId" => scope.account_id = Some(value),
            "region" => scope.region = Some(value),
            other => {
                return Err(Box::new(bad_request(format!(
                    "unknown query parameter '{other}'; the views filter by accountId and region"
                ))));
            }
        }
    }
    Ok(scope)
}

/// `GET /_sim/calls[?accountId=&region=]`: every Connect and STS call so far, oldest first.
pub(crate) async fn list_calls(State(sim): SimState, RawQuery(query): RawQuery) -> Response {
    let scope = match scope(query.as_deref()) {
        Ok(scope) => scope,
        Err(response) => return *response,
    };
    let inner = sim.lock();
    let calls: Vec<_> = inner
        .calls()
        .iter()
        .filter(|call| scope.covers(&call.account_id, &call.region))
        .cloned()
        .collect();
    Json(calls).into_response()
}

/// `GET /_sim/replication[?accountId=&region=]`: replications (with their status) and
/// traffic distribution groups (with their distributions) touching the filtered regions.
pub(crate) async fn get_replication(State(sim): SimState, RawQuery(query): RawQuery) -> Response {
    let scope = match scope(query.as_deref()) {
        Ok(scope) => scope,
        Err(response) => return *response,
    };
    let mut inner = sim.lock();
    inner.advance(Instant::now());
    Json(inner.replication_view(&scope)).into_response()
}

/// `DELETE /_sim/calls`: forgets the recorded calls (sequence numbers keep counting).
pub(crate) async fn clear_calls(State(sim): SimState) -> Response {
    let cleared = sim.lock().clear_calls();
    Json(json!({ "cleared": cleared })).into_response()
}

/// `GET /_sim/instances[?accountId=&region=]`: the instances that exist now, by account,
/// region and creation.
pub(crate) async fn list_instances(State(sim): SimState, RawQuery(query): RawQuery) -> Response {
    let scope = match scope(query.as_deref()) {
        Ok(scope) => scope,
        Err(response) => return *response,
    };
    let mut inner = sim.lock();
    inner.advance(Instant::now());
    let instances: Vec<Value> = inner
        .tenants(&scope)
        .flat_map(|(_, _, model)| model.instances().iter())
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
    /// Default: the default account.
    account_id: Option<String>,
    /// Default: the default region.
    region: Option<String>,
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
    if let Some(account_id) = &request.account_id
        && !is_account_id(account_id)
    {
        return bad_request(format!(
            "accountId '{account_id}' is not a 12-digit account id"
        ));
    }
    if let Some(region) = &request.region
        && !is_region(region)
    {
        return bad_request(format!("region '{region}' is not a region name"));
    }
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
    let account_id = request
        .account_id
        .unwrap_or_else(|| inner.config.account_id.clone());
    let region = request
        .region
        .unwrap_or_else(|| inner.config.region.clone());
    let (model, settings) = inner.split(&account_id, &region, now);
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
    match inner.config.missing_resource_regex() {
        Ok(regex) => inner.missing_resource = regex,
        Err(message) => return bad_request(message),
    }
    inner.reset_buckets(&changed, Instant::now());
    let view = inner.config.view();
    let summary = serde_json::to_string(&view).unwrap_or_default();
    tracing::info!(config = %summary, "simulator configuration changed");
    Json(view).into_response()
}

/// `GET /_sim/state[?accountId=&region=]`: the counters the quotas work on (and how many of
/// the instances are replicas), in total and per account and region (every account and region a call or an insert has used, and the
/// default one).
pub(crate) async fn get_state(State(sim): SimState, RawQuery(query): RawQuery) -> Response {
    let scope = match scope(query.as_deref()) {
        Ok(scope) => scope,
        Err(response) => return *response,
    };
    let mut inner = sim.lock();
    inner.advance(Instant::now());
    let accounts: Vec<Value> = inner
        .tenants(&scope)
        .map(|(account_id, region, model)| {
            json!({
                "accountId": account_id,
                "region": region,
                "lifecycleAttempts": model.lifecycle_attempts(),
                "instanceCount": model.instance_count(),
                "replicaCount": model.replica_count(),
            })
        })
        .collect();
    let (attempts, count, replicas) =
        inner
            .tenants(&scope)
            .fold((0, 0, 0), |(attempts, count, replicas), (_, _, model)| {
                (
                    attempts + model.lifecycle_attempts(),
                    count + model.instance_count(),
                    replicas + model.replica_count(),
                )
            });
    Json(json!({
        "lifecycleAttempts": attempts,
        "instanceCount": count,
        "replicaCount": replicas,
        "accounts": accounts,
    }))
    .into_response()
}

/// `GET /_sim/sessions`: every set of credentials AssumeRole issued, secrets included, so
/// that tests can search logs and objects for them. (A test double's inspection endpoint:
/// AWS has nothing like it.)
pub(crate) async fn list_sessions(State(sim): SimState) -> Response {
    let inner = sim.lock();
    let sessions: Vec<Value> = inner
        .sessions
        .iter()
        .map(|(access_key_id, session)| {
            json!({
                "accessKeyId": access_key_id,
                "secretAccessKey": session.secret_access_key,
                "sessionToken": session.session_token,
                "roleArn": session.role_arn,
            })
        })
        .collect();
    Json(sessions).into_response()
}
