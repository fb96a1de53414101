//! HTTP handlers of Global Resiliency: ReplicateInstance and the traffic distribution group
//! operations. The semantics live in `replication.rs`.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::Response;

use super::{Conn, QueryPairs, SimState, first, instance_id, parse_body, query_pairs};
use crate::auth::Auth;
use crate::config::Operation;
use crate::replication::{
    CreateGroupRequest, ReplicateRequest, UpdateDistributionRequest, group_id,
};
use crate::service::Call;

/// `POST /instance/{InstanceId}/replicate`
pub(crate) async fn replicate_instance(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Response {
    let id = instance_id(&raw_id);
    let request = parse_body::<ReplicateRequest>(&body);
    let client_token = request.as_ref().ok().and_then(|r| r.client_token.clone());
    let call = Call::new(Operation::ReplicateInstance, auth)
        .token(client_token)
        .instance(Some(id.clone()));
    sim.connect_global(&conn, call, |inner, caller, now| {
        inner.replicate_instance(caller, &id, request?, now)
    })
    .await
}

/// `PUT /traffic-distribution-group`
pub(crate) async fn create_traffic_distribution_group(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    body: Bytes,
) -> Response {
    let request = parse_body::<CreateGroupRequest>(&body);
    let (client_token, instance) = request.as_ref().map_or((None, None), |r| {
        (
            r.client_token.clone(),
            r.instance_id.as_deref().map(instance_id),
        )
    });
    let call = Call::new(Operation::CreateTrafficDistributionGroup, auth)
        .token(client_token)
        .instance(instance);
    sim.connect_global(&conn, call, |inner, caller, now| {
        inner.create_traffic_distribution_group(caller, request?, now)
    })
    .await
}

/// `GET /traffic-distribution-group/{TrafficDistributionGroupId}`
pub(crate) async fn describe_traffic_distribution_group(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    Path(raw): Path<String>,
) -> Response {
    let call = Call::new(Operation::DescribeTrafficDistributionGroup, auth);
    sim.connect_global(&conn, call, |inner, caller, _| {
        inner.describe_traffic_distribution_group(caller, &group_id(&raw))
    })
    .await
}

/// `DELETE /traffic-distribution-group/{TrafficDistributionGroupId}`
pub(crate) async fn delete_traffic_distribution_group(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    Path(raw): Path<String>,
) -> Response {
    let call = Call::new(Operation::DeleteTrafficDistributionGroup, auth);
    sim.connect_global(&conn, call, |inner, caller, _| {
        inner.delete_traffic_distribution_group(caller, &group_id(&raw))
    })
    .await
}

/// `GET /traffic-distribution-groups?maxResults=&nextToken=&instanceId=`
pub(crate) async fn list_traffic_distribution_groups(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    query: QueryPairs,
) -> Response {
    let query = query_pairs(query);
    let call = Call::new(Operation::ListTrafficDistributionGroups, auth);
    sim.connect_global(&conn, call, |inner, caller, _| {
        let query = query?;
        inner.list_traffic_distribution_groups(
            caller,
            first(&query, "instanceId"),
            first(&query, "maxResults"),
            first(&query, "nextToken"),
        )
    })
    .await
}

/// `GET /traffic-distribution/{Id}`
pub(crate) async fn get_traffic_distribution(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    Path(raw): Path<String>,
) -> Response {
    let call = Call::new(Operation::GetTrafficDistribution, auth);
    sim.connect_global(&conn, call, |inner, caller, _| {
        inner.get_traffic_distribution(caller, &group_id(&raw))
    })
    .await
}

/// `PUT /traffic-distribution/{Id}`
pub(crate) async fn update_traffic_distribution(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    let request = parse_body::<UpdateDistributionRequest>(&body);
    let call = Call::new(Operation::UpdateTrafficDistribution, auth);
    sim.connect_global(&conn, call, |inner, caller, _| {
        inner.update_traffic_distribution(caller, &group_id(&raw), request?)
    })
    .await
}
