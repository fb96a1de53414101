//! HTTP handlers for the Connect REST-JSON operations. They only translate the wire format
//! (paths, query strings, bodies) into model calls; the semantics live in `model`. The
//! instance-configuration operations are in [`configuration`].

pub(crate) mod configuration;
pub(crate) mod replication;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::response::Response;
use serde::de::DeserializeOwned;

use super::auth::Auth;
use super::config::Operation;
use super::errors::{ApiError, ErrorKind};
use super::limits::ConnectionHandle;
use super::model::{CreateInstanceRequest, Model};
use super::service::{Call, Sim, error_response};

pub(crate) type SimState = State<Arc<Sim>>;
pub(crate) type Conn = ConnectInfo<ConnectionHandle>;
pub(crate) type QueryPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Parses a JSON request body; an empty body is an empty object.
pub(crate) fn parse_body<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorKind::Serialization,
            format!("The request body is not valid: {e}"),
        )
    })
}

/// The query string as name/value pairs (names may repeat, as `tagKeys` does).
pub(crate) fn query_pairs(query: QueryPairs) -> Result<Vec<(String, String)>, ApiError> {
    query.map(|Query(pairs)| pairs).map_err(|e| {
        ApiError::new(
            ErrorKind::Serialization,
            format!("The query string is not valid: {e}"),
        )
    })
}

pub(crate) fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `InstanceId` accepts the instance id or its ARN, as Connect does.
pub(crate) fn instance_id(raw: &str) -> String {
    if raw.starts_with("arn:") {
        Model::instance_id_of_arn(raw).unwrap_or_else(|| raw.to_owned())
    } else {
        raw.to_owned()
    }
}

/// `PUT /instance`
pub(crate) async fn create_instance(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    body: Bytes,
) -> Response {
    let request = parse_body::<CreateInstanceRequest>(&body);
    let client_token = request.as_ref().ok().and_then(|r| r.client_token.clone());
    let call = Call::new(Operation::CreateInstance, auth).token(client_token);
    sim.connect(&conn, call, |model, settings, now| {
        model.create_instance(settings, request?, now)
    })
    .await
}

/// `GET /instance/{InstanceId}`
pub(crate) async fn describe_instance(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    Path(raw_id): Path<String>,
) -> Response {
    let id = instance_id(&raw_id);
    let call = Call::new(Operation::DescribeInstance, auth).instance(Some(id.clone()));
    sim.connect_global(&conn, call, |inner, caller, now| {
        inner.describe_instance(caller, &id, now)
    })
    .await
}

/// `GET /instance?maxResults=&nextToken=`
pub(crate) async fn list_instances(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    query: QueryPairs,
) -> Response {
    let query = query_pairs(query);
    let call = Call::new(Operation::ListInstances, auth);
    sim.connect(&conn, call, |model, _, _| {
        let query = query?;
        model.list_instances(first(&query, "maxResults"), first(&query, "nextToken"))
    })
    .await
}

/// `DELETE /instance/{InstanceId}?clientToken=`
pub(crate) async fn delete_instance(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    Path(raw_id): Path<String>,
    query: QueryPairs,
) -> Response {
    let id = instance_id(&raw_id);
    let query = query_pairs(query);
    let client_token = query
        .as_ref()
        .ok()
        .and_then(|q| first(q, "clientToken"))
        .map(str::to_owned);
    let call = Call::new(Operation::DeleteInstance, auth)
        .token(client_token.clone())
        .instance(Some(id.clone()));
    sim.connect_global(&conn, call, |inner, caller, now| {
        query?;
        inner.delete_instance(caller, &id, client_token.as_deref(), now)
    })
    .await
}

/// Body of UpdateInstanceAttribute.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateAttributeBody {
    value: Option<String>,
    client_token: Option<String>,
}

/// `POST /instance/{InstanceId}/attribute/{AttributeType}`
pub(crate) async fn update_instance_attribute(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    Path((raw_id, attribute_type)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let id = instance_id(&raw_id);
    let body = parse_body::<UpdateAttributeBody>(&body);
    let client_token = body.as_ref().ok().and_then(|b| b.client_token.clone());
    let call = Call::new(Operation::UpdateInstanceAttribute, auth)
        .token(client_token)
        .instance(Some(id.clone()));
    sim.connect(&conn, call, |model, settings, _| {
        let body = body?;
        model.update_instance_attribute(
            settings,
            &id,
            &attribute_type,
            body.value.as_deref(),
            body.client_token.as_deref(),
        )
    })
    .await
}

/// `GET /instance/{InstanceId}/attribute/{AttributeType}`
pub(crate) async fn describe_instance_attribute(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    Path((raw_id, attribute_type)): Path<(String, String)>,
) -> Response {
    let id = instance_id(&raw_id);
    let call = Call::new(Operation::DescribeInstanceAttribute, auth).instance(Some(id.clone()));
    sim.connect(&conn, call, |model, settings, _| {
        model.describe_instance_attribute(settings, &id, &attribute_type)
    })
    .await
}

/// `GET /instance/{InstanceId}/attributes?maxResults=&nextToken=`
pub(crate) async fn list_instance_attributes(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    Path(raw_id): Path<String>,
    query: QueryPairs,
) -> Response {
    let id = instance_id(&raw_id);
    let query = query_pairs(query);
    let call = Call::new(Operation::ListInstanceAttributes, auth).instance(Some(id.clone()));
    sim.connect(&conn, call, |model, settings, _| {
        let query = query?;
        model.list_instance_attributes(
            settings,
            &id,
            first(&query, "maxResults"),
            first(&query, "nextToken"),
        )
    })
    .await
}

/// Body of TagResource.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct TagBody {
    tags: Option<BTreeMap<String, String>>,
}

/// `POST /tags/{resourceArn}`
pub(crate) async fn tag_resource(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    Path(arn): Path<String>,
    body: Bytes,
) -> Response {
    let body = parse_body::<TagBody>(&body);
    let call = Call::new(Operation::TagResource, auth).instance(Model::instance_id_of_arn(&arn));
    sim.connect(&conn, call, |model, _, _| {
        model.tag_resource(&arn, body?.tags)
    })
    .await
}

/// `DELETE /tags/{resourceArn}?tagKeys=..&tagKeys=..`
pub(crate) async fn untag_resource(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    Path(arn): Path<String>,
    query: QueryPairs,
) -> Response {
    let query = query_pairs(query);
    let call = Call::new(Operation::UntagResource, auth).instance(Model::instance_id_of_arn(&arn));
    sim.connect(&conn, call, |model, _, _| {
        let keys: Vec<String> = query?
            .into_iter()
            .filter(|(k, _)| k == "tagKeys")
            .map(|(_, v)| v)
            .collect();
        model.untag_resource(&arn, &keys)
    })
    .await
}

/// `GET /tags/{resourceArn}`
pub(crate) async fn list_tags_for_resource(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    Path(arn): Path<String>,
) -> Response {
    let call =
        Call::new(Operation::ListTagsForResource, auth).instance(Model::instance_id_of_arn(&arn));
    sim.connect(&conn, call, |model, _, _| {
        model.list_tags_for_resource(&arn)
    })
    .await
}

/// Anything else: not a Connect operation the simulator serves (not recorded).
pub(crate) async fn unknown_operation(State(sim): SimState) -> Response {
    let request_id = sim.lock().request_id();
    error_response(
        &ApiError::new(
            ErrorKind::UnknownOperation,
            "The Amazon Connect simulator does not serve this method and path.",
        ),
        &request_id,
    )
}
