//! HTTP handlers of the instance-configuration operations: storage configurations, approved
//! origins, Lambda functions, Lex V2 bots and security keys, at the URIs and with the query
//! members botocore's Connect model gives them.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::Response;

use super::{Conn, QueryPairs, SimState, first, instance_id, parse_body, query_pairs};
use crate::auth::Auth;
use crate::config::Operation;
use crate::errors::ApiError;
use crate::model::associations::{AssociateRequest, BotRequest};
use crate::model::storage::StorageConfigRequest;
use crate::model::{Model, Reply};
use crate::service::Call;

/// `PUT /instance/{InstanceId}/storage-config`
pub(crate) async fn associate_storage_config(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Response {
    let id = instance_id(&raw_id);
    let request = parse_body::<StorageConfigRequest>(&body);
    let token = request.as_ref().ok().and_then(|r| r.client_token.clone());
    let call = Call::new(Operation::AssociateInstanceStorageConfig, auth)
        .token(token)
        .instance(Some(id.clone()));
    sim.connect(&conn, call, |model, settings, _| {
        model.associate_storage_config(settings, &id, request?)
    })
    .await
}

/// `GET /instance/{InstanceId}/storage-config/{AssociationId}?resourceType=`
pub(crate) async fn describe_storage_config(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    Path((raw_id, association_id)): Path<(String, String)>,
    query: QueryPairs,
) -> Response {
    let id = instance_id(&raw_id);
    let query = query_pairs(query);
    let call = Call::new(Operation::DescribeInstanceStorageConfig, auth).instance(Some(id.clone()));
    sim.connect(&conn, call, |model, _, _| {
        let query = query?;
        model.describe_storage_config(&id, &association_id, first(&query, "resourceType"))
    })
    .await
}

/// `GET /instance/{InstanceId}/storage-configs?resourceType=&maxResults=&nextToken=`
pub(crate) async fn list_storage_configs(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    Path(raw_id): Path<String>,
    query: QueryPairs,
) -> Response {
    let id = instance_id(&raw_id);
    let query = query_pairs(query);
    let call = Call::new(Operation::ListInstanceStorageConfigs, auth).instance(Some(id.clone()));
    sim.connect(&conn, call, |model, _, _| {
        let query = query?;
        model.list_storage_configs(
            &id,
            first(&query, "resourceType"),
            first(&query, "maxResults"),
            first(&query, "nextToken"),
        )
    })
    .await
}

/// `POST /instance/{InstanceId}/storage-config/{AssociationId}?resourceType=`
pub(crate) async fn update_storage_config(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    Path((raw_id, association_id)): Path<(String, String)>,
    query: QueryPairs,
    body: Bytes,
) -> Response {
    let id = instance_id(&raw_id);
    let query = query_pairs(query);
    let request = parse_body::<StorageConfigRequest>(&body);
    let token = request.as_ref().ok().and_then(|r| r.client_token.clone());
    let call = Call::new(Operation::UpdateInstanceStorageConfig, auth)
        .token(token)
        .instance(Some(id.clone()));
    sim.connect(&conn, call, |model, settings, _| {
        let query = query?;
        model.update_storage_config(
            settings,
            &id,
            &association_id,
            first(&query, "resourceType"),
            request?,
        )
    })
    .await
}

/// `DELETE /instance/{InstanceId}/storage-config/{AssociationId}?resourceType=&clientToken=`
pub(crate) async fn disassociate_storage_config(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    Path((raw_id, association_id)): Path<(String, String)>,
    query: QueryPairs,
) -> Response {
    let id = instance_id(&raw_id);
    let query = query_pairs(query);
    let token = token_of(&query);
    let call = Call::new(Operation::DisassociateInstanceStorageConfig, auth)
        .token(token.clone())
        .instance(Some(id.clone()));
    sim.connect(&conn, call, |model, _, _| {
        let query = query?;
        model.disassociate_storage_config(
            &id,
            &association_id,
            first(&query, "resourceType"),
            token.as_deref(),
        )
    })
    .await
}

/// The `clientToken` query member of a DELETE.
fn token_of(query: &Result<Vec<(String, String)>, ApiError>) -> Option<String> {
    query
        .as_ref()
        .ok()
        .and_then(|q| first(q, "clientToken"))
        .map(str::to_owned)
}

/// Which association a plain Associate / List / Disassociate call is about.
#[derive(Clone, Copy)]
enum Kind {
    Origin,
    Lambda,
    SecurityKey,
}

async fn associate(
    sim: SimState,
    conn: Conn,
    auth: Auth,
    raw_id: &str,
    body: &Bytes,
    kind: Kind,
) -> Response {
    let (State(sim), ConnectInfo(conn)) = (sim, conn);
    let id = instance_id(raw_id);
    let request = parse_body::<AssociateRequest>(body);
    let token = request.as_ref().ok().and_then(|r| r.client_token.clone());
    let operation = match kind {
        Kind::Origin => Operation::AssociateApprovedOrigin,
        Kind::Lambda => Operation::AssociateLambdaFunction,
        Kind::SecurityKey => Operation::AssociateSecurityKey,
    };
    let call = Call::new(operation, auth)
        .token(token)
        .instance(Some(id.clone()));
    sim.connect(&conn, call, |model, settings, _| {
        let request = request?;
        match kind {
            Kind::Origin => model.associate_approved_origin(settings, &id, request),
            Kind::Lambda => model.associate_lambda_function(settings, &id, request),
            Kind::SecurityKey => model.associate_security_key(&id, request),
        }
    })
    .await
}

async fn list(
    sim: SimState,
    conn: Conn,
    auth: Auth,
    raw_id: &str,
    query: QueryPairs,
    kind: Kind,
) -> Response {
    let (State(sim), ConnectInfo(conn)) = (sim, conn);
    let id = instance_id(raw_id);
    let query = query_pairs(query);
    let operation = match kind {
        Kind::Origin => Operation::ListApprovedOrigins,
        Kind::Lambda => Operation::ListLambdaFunctions,
        Kind::SecurityKey => Operation::ListSecurityKeys,
    };
    let call = Call::new(operation, auth).instance(Some(id.clone()));
    sim.connect(&conn, call, |model, _, _| {
        let query = query?;
        let (max, next) = (first(&query, "maxResults"), first(&query, "nextToken"));
        match kind {
            Kind::Origin => model.list_approved_origins(&id, max, next),
            Kind::Lambda => model.list_lambda_functions(&id, max, next),
            Kind::SecurityKey => model.list_security_keys(&id, max, next),
        }
    })
    .await
}

/// A model operation taking an instance id, a name and a ClientToken.
type ByName = fn(&mut Model, &str, Option<&str>, Option<&str>) -> Result<Reply, ApiError>;

/// DisassociateApprovedOrigin and DisassociateLambdaFunction: the name to remove is the query
/// member `member`.
struct DisassociateNamed {
    operation: Operation,
    member: &'static str,
    disassociate: ByName,
}

const DISASSOCIATE_ORIGIN: DisassociateNamed = DisassociateNamed {
    operation: Operation::DisassociateApprovedOrigin,
    member: "origin",
    disassociate: Model::disassociate_approved_origin,
};

const DISASSOCIATE_LAMBDA: DisassociateNamed = DisassociateNamed {
    operation: Operation::DisassociateLambdaFunction,
    member: "functionArn",
    disassociate: Model::disassociate_lambda_function,
};

async fn disassociate_named(
    sim: SimState,
    conn: Conn,
    auth: Auth,
    raw_id: &str,
    query: QueryPairs,
    named: &DisassociateNamed,
) -> Response {
    let (State(sim), ConnectInfo(conn)) = (sim, conn);
    let id = instance_id(raw_id);
    let query = query_pairs(query);
    let token = token_of(&query);
    let call = Call::new(named.operation, auth)
        .token(token.clone())
        .instance(Some(id.clone()));
    sim.connect(&conn, call, |model, _, _| {
        let query = query?;
        (named.disassociate)(model, &id, first(&query, named.member), token.as_deref())
    })
    .await
}

/// `PUT /instance/{InstanceId}/approved-origin`
pub(crate) async fn associate_approved_origin(
    sim: SimState,
    conn: Conn,
    auth: Auth,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Response {
    associate(sim, conn, auth, &raw_id, &body, Kind::Origin).await
}

/// `GET /instance/{InstanceId}/approved-origins?maxResults=&nextToken=`
pub(crate) async fn list_approved_origins(
    sim: SimState,
    conn: Conn,
    auth: Auth,
    Path(raw_id): Path<String>,
    query: QueryPairs,
) -> Response {
    list(sim, conn, auth, &raw_id, query, Kind::Origin).await
}

/// `DELETE /instance/{InstanceId}/approved-origin?origin=&clientToken=`
pub(crate) async fn disassociate_approved_origin(
    sim: SimState,
    conn: Conn,
    auth: Auth,
    Path(raw_id): Path<String>,
    query: QueryPairs,
) -> Response {
    disassociate_named(sim, conn, auth, &raw_id, query, &DISASSOCIATE_ORIGIN).await
}

/// `PUT /instance/{InstanceId}/lambda-function`
pub(crate) async fn associate_lambda_function(
    sim: SimState,
    conn: Conn,
    auth: Auth,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Response {
    associate(sim, conn, auth, &raw_id, &body, Kind::Lambda).await
}

/// `GET /instance/{InstanceId}/lambda-functions?maxResults=&nextToken=`
pub(crate) async fn list_lambda_functions(
    sim: SimState,
    conn: Conn,
    auth: Auth,
    Path(raw_id): Path<String>,
    query: QueryPairs,
) -> Response {
    list(sim, conn, auth, &raw_id, query, Kind::Lambda).await
}

/// `DELETE /instance/{InstanceId}/lambda-function?functionArn=&clientToken=`
pub(crate) async fn disassociate_lambda_function(
    sim: SimState,
    conn: Conn,
    auth: Auth,
    Path(raw_id): Path<String>,
    query: QueryPairs,
) -> Response {
    disassociate_named(sim, conn, auth, &raw_id, query, &DISASSOCIATE_LAMBDA).await
}

/// `PUT /instance/{InstanceId}/bot` (AssociateBot) and `POST` (DisassociateBot).
async fn bot(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    raw_id: &str,
    body: &Bytes,
    associate: bool,
) -> Response {
    let id = instance_id(raw_id);
    let request = parse_body::<BotRequest>(body);
    let token = request.as_ref().ok().and_then(|r| r.client_token.clone());
    let operation = if associate {
        Operation::AssociateBot
    } else {
        Operation::DisassociateBot
    };
    let call = Call::new(operation, auth)
        .token(token)
        .instance(Some(id.clone()));
    sim.connect(&conn, call, |model, settings, _| {
        let request = request?;
        if associate {
            model.associate_bot(settings, &id, request)
        } else {
            model.disassociate_bot(&id, request)
        }
    })
    .await
}

/// `PUT /instance/{InstanceId}/bot`
pub(crate) async fn associate_bot(
    sim: SimState,
    conn: Conn,
    auth: Auth,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Response {
    bot(sim, conn, auth, &raw_id, &body, true).await
}

/// `POST /instance/{InstanceId}/bot`
pub(crate) async fn disassociate_bot(
    sim: SimState,
    conn: Conn,
    auth: Auth,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Response {
    bot(sim, conn, auth, &raw_id, &body, false).await
}

/// `GET /instance/{InstanceId}/bots?lexVersion=&maxResults=&nextToken=`
pub(crate) async fn list_bots(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    Path(raw_id): Path<String>,
    query: QueryPairs,
) -> Response {
    let id = instance_id(&raw_id);
    let query = query_pairs(query);
    let call = Call::new(Operation::ListBots, auth).instance(Some(id.clone()));
    sim.connect(&conn, call, |model, _, _| {
        let query = query?;
        model.list_bots(
            &id,
            first(&query, "lexVersion"),
            first(&query, "maxResults"),
            first(&query, "nextToken"),
        )
    })
    .await
}

/// `PUT /instance/{InstanceId}/security-key`
pub(crate) async fn associate_security_key(
    sim: SimState,
    conn: Conn,
    auth: Auth,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Response {
    associate(sim, conn, auth, &raw_id, &body, Kind::SecurityKey).await
}

/// `GET /instance/{InstanceId}/security-keys?maxResults=&nextToken=`
pub(crate) async fn list_security_keys(
    sim: SimState,
    conn: Conn,
    auth: Auth,
    Path(raw_id): Path<String>,
    query: QueryPairs,
) -> Response {
    list(sim, conn, auth, &raw_id, query, Kind::SecurityKey).await
}

/// `DELETE /instance/{InstanceId}/security-key/{AssociationId}?clientToken=`
pub(crate) async fn disassociate_security_key(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    Path((raw_id, association_id)): Path<(String, String)>,
    query: QueryPairs,
) -> Response {
    let id = instance_id(&raw_id);
    let query = query_pairs(query);
    let token = token_of(&query);
    let call = Call::new(Operation::DisassociateSecurityKey, auth)
        .token(token.clone())
        .instance(Some(id.clone()));
    sim.connect(&conn, call, |model, _, _| {
        query?;
        model.disassociate_security_key(&id, &association_id, token.as_deref())
    })
    .await
}
