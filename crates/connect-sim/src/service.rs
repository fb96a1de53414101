//! The simulator's shared state and the pipeline every Connect and STS call goes through:
//! caller (from the SigV4 credential scope) → latency → rate limit of the caller's account
//! and region → injected 5xx / 403 → the operation → dropped connection, with every call
//! recorded in the call log whatever its outcome.
//!
//! State is kept per account and region (a [`Tenant`]): instances, ClientToken records,
//! attempt counters and rate-limit buckets. Only instance aliases are global, as on AWS.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use regex::Regex;
use serde::Serialize;
use serde_json::Value;

use super::auth::{Auth, Caller};
use super::config::{Operation, SimConfig};
use super::errors::{ApiError, Protocol};
use super::limits::{ConnectionHandle, TokenBucket};
use super::model::{Model, Reply, Settings, random_uuid};
use super::replication::ReplicationState;
use super::sts::{RoleArn, Session, xml_escape};

/// One Connect or STS request as the call log records it (`GET /_sim/calls`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CallRecord {
    /// 1, 2, 3, ... in arrival order of the decision; never reused, also after a clear.
    pub(crate) seq: u64,
    pub(crate) operation: &'static str,
    /// The account the call acted in: the caller's; for AssumeRole the role's.
    pub(crate) account_id: String,
    /// The region of the caller's credential scope.
    pub(crate) region: String,
    /// The access key id the request was signed with (an identifier, not a secret): it
    /// tells apart two clients of the same account.
    pub(crate) access_key_id: Option<String>,
    pub(crate) client_token: Option<String>,
    pub(crate) instance_id: Option<String>,
    /// AssumeRole: the role asked for.
    pub(crate) role_arn: Option<String>,
    /// HTTP status of the outcome; for a dropped reply the status the operation produced
    /// (the client saw none).
    pub(crate) status: u16,
    /// The AWS error code of the outcome (also when the reply was dropped).
    pub(crate) error_type: Option<&'static str>,
    /// True when the connection was closed instead of sending this outcome.
    pub(crate) dropped: bool,
    /// True when a ClientToken replay answered without a new effect.
    pub(crate) replay: bool,
    /// Milliseconds since the simulator started.
    pub(crate) elapsed_ms: u64,
    /// When the request arrived (before any injected latency), in milliseconds since the
    /// Unix epoch: comparable with times other processes on the machine write.
    pub(crate) unix_ms: u64,
    /// The latency the faults added before the call was decided (0 when none applied).
    pub(crate) injected_latency_ms: u64,
}

/// What a handler knows about a call before it runs.
pub(crate) struct Call {
    pub(crate) operation: Operation,
    /// The request's SigV4 credential, which names the caller.
    pub(crate) auth: Auth,
    pub(crate) client_token: Option<String>,
    /// The instance named by the request path, if any.
    pub(crate) instance_id: Option<String>,
    /// AssumeRole: the role asked for (its account is the call's account).
    pub(crate) role_arn: Option<String>,
}

impl Call {
    pub(crate) fn new(operation: Operation, auth: Auth) -> Self {
        Self {
            operation,
            auth,
            client_token: None,
            instance_id: None,
            role_arn: None,
        }
    }

    pub(crate) fn token(mut self, client_token: Option<String>) -> Self {
        self.client_token = client_token;
        self
    }

    pub(crate) fn instance(mut self, instance_id: Option<String>) -> Self {
        self.instance_id = instance_id;
        self
    }

    pub(crate) fn role(mut self, role_arn: Option<String>) -> Self {
        self.role_arn = role_arn;
        self
    }
}

/// What an accepted call answers.
pub(crate) struct Answer {
    pub(crate) body: Body,
    /// The instance the call concerned, when known.
    pub(crate) instance_id: Option<String>,
    /// True when a ClientToken replay answered without doing anything new.
    pub(crate) replay: bool,
}

/// A success body in the call's protocol.
pub(crate) enum Body {
    /// REST-JSON; `None` for operations with an empty output.
    Json(Option<Value>),
    /// Query protocol (STS): the inner XML of `<{action}Result>`; the pipeline wraps it in
    /// `<{action}Response>` with the `ResponseMetadata`.
    Query {
        action: &'static str,
        result: String,
    },
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Self {
        Self {
            body: Body::Json(reply.body),
            instance_id: reply.instance_id,
            replay: reply.replay,
        }
    }
}

/// The state of one account in one region.
pub(crate) struct Tenant {
    pub(crate) model: Model,
    buckets: BTreeMap<Operation, TokenBucket>,
}

impl Tenant {
    fn new(config: &SimConfig, account_id: &str, region: &str, seed: u64, now: Instant) -> Self {
        let seed = seed ^ fnv1a(format!("{account_id}/{region}").as_bytes());
        Self {
            model: Model::new(account_id, region, fastrand::Rng::with_seed(seed)),
            buckets: Operation::ALL
                .into_iter()
                .map(|op| (op, TokenBucket::new(config.rate_limit(op), now)))
                .collect(),
        }
    }
}

/// Which accounts and regions a `/_sim/` view covers (`?accountId=&region=`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Scope {
    pub(crate) account_id: Option<String>,
    pub(crate) region: Option<String>,
}

impl Scope {
    pub(crate) fn covers(&self, account_id: &str, region: &str) -> bool {
        self.account_id.as_deref().is_none_or(|a| a == account_id)
            && self.region.as_deref().is_none_or(|r| r == region)
    }
}

pub(crate) struct Inner {
    pub(crate) config: SimConfig,
    pub(crate) fail_alias: Option<Regex>,
    /// `missingResourcePattern`, compiled.
    pub(crate) missing_resource: Option<Regex>,
    /// (account id, region) → its state.
    tenants: BTreeMap<(String, String), Tenant>,
    /// Replications across regions and traffic distribution groups, of every account.
    pub(crate) replication: ReplicationState,
    /// Access keys AssumeRole issued in this run → what they were issued for.
    pub(crate) sessions: HashMap<String, Session>,
    calls: Vec<CallRecord>,
    next_call_seq: u64,
    fault_rng: fastrand::Rng,
    /// Request ids and issued credentials.
    pub(crate) rng: fastrand::Rng,
    seed: u64,
}

impl Inner {
    /// The state of `account_id` in `region`, created empty on first use.
    pub(crate) fn tenant(&mut self, account_id: &str, region: &str, now: Instant) -> &mut Tenant {
        let Self {
            tenants,
            config,
            seed,
            ..
        } = self;
        tenants
            .entry((account_id.to_owned(), region.to_owned()))
            .or_insert_with(|| Tenant::new(config, account_id, region, *seed, now))
    }

    /// The model of `account_id` in `region` (created empty on first use) together with the
    /// settings its operations read.
    pub(crate) fn split(
        &mut self,
        account_id: &str,
        region: &str,
        now: Instant,
    ) -> (&mut Model, Settings<'_>) {
        let key = (account_id.to_owned(), region.to_owned());
        // Aliases are global: an alias held in another account or region is taken too.
        let aliases_elsewhere: HashSet<String> = self
            .tenants
            .iter()
            .filter(|(k, _)| **k != key)
            .flat_map(|(_, t)| t.model.instances().iter())
            .map(|i| i.alias.to_ascii_lowercase())
            .collect();
        let Self {
            tenants,
            config,
            fail_alias,
            missing_resource,
            seed,
            ..
        } = self;
        let tenant = tenants
            .entry(key)
            .or_insert_with(|| Tenant::new(config, account_id, region, *seed, now));
        let settings = Settings {
            config,
            fail_alias: fail_alias.as_ref(),
            missing_resource: missing_resource.as_ref(),
            instance_quota: config.instance_quota_of(account_id),
            lifecycle_attempt_limit: config.lifecycle_attempt_limit_of(account_id),
            aliases_elsewhere,
        };
        (&mut tenant.model, settings)
    }

    /// The tenants `scope` covers, by (account id, region).
    pub(crate) fn tenants<'a>(
        &'a self,
        scope: &'a Scope,
    ) -> impl Iterator<Item = (&'a str, &'a str, &'a Model)> + 'a {
        self.tenants
            .iter()
            .filter(|((account, region), _)| scope.covers(account, region))
            .map(|((account, region), t)| (account.as_str(), region.as_str(), &t.model))
    }

    /// Advances every model's lifecycle to `now` under the current configuration, and
    /// forgets the replications whose replica vanished.
    pub(crate) fn advance(&mut self, now: Instant) {
        for tenant in self.tenants.values_mut() {
            tenant.model.advance(&self.config, now);
        }
        self.advance_replications();
    }

    /// The model of `account_id` in `region`, if that pair has been used.
    pub(crate) fn model(&self, account_id: &str, region: &str) -> Option<&Model> {
        self.tenants
            .get(&(account_id.to_owned(), region.to_owned()))
            .map(|t| &t.model)
    }

    /// Restarts the buckets of `operations` in every account and region with their (new)
    /// limits.
    pub(crate) fn reset_buckets(&mut self, operations: &[Operation], now: Instant) {
        for tenant in self.tenants.values_mut() {
            for op in operations {
                tenant
                    .buckets
                    .insert(*op, TokenBucket::new(self.config.rate_limit(*op), now));
            }
        }
    }

    pub(crate) fn calls(&self) -> &[CallRecord] {
        &self.calls
    }

    pub(crate) fn clear_calls(&mut self) -> usize {
        let cleared = self.calls.len();
        self.calls.clear();
        cleared
    }

    /// A request id for the `x-amzn-RequestId` header.
    pub(crate) fn request_id(&mut self) -> String {
        random_uuid(&mut self.rng)
    }
}

/// FNV-1a, for seeds derived from names (stable across runs, unlike `DefaultHasher`).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The simulator: one lock around every account, held only for synchronous work.
pub(crate) struct Sim {
    inner: Mutex<Inner>,
    started: Instant,
}

impl Sim {
    pub(crate) fn new(config: SimConfig, fail_alias: Option<Regex>) -> Self {
        let seed = config.seed.unwrap_or_else(|| fastrand::u64(..));
        let now = Instant::now();
        let missing_resource = config.missing_resource_regex().ok().flatten();
        let mut inner = Inner {
            config,
            fail_alias,
            missing_resource,
            tenants: BTreeMap::new(),
            replication: ReplicationState::default(),
            sessions: HashMap::new(),
            calls: Vec::new(),
            next_call_seq: 1,
            fault_rng: fastrand::Rng::with_seed(seed.wrapping_add(1)),
            rng: fastrand::Rng::with_seed(seed.wrapping_add(2)),
            seed,
        };
        // The default account in the default region exists from the start.
        let (account, region) = (inner.config.account_id.clone(), inner.config.region.clone());
        inner.tenant(&account, &region, now);
        Self {
            inner: Mutex::new(inner),
            started: now,
        }
    }

    /// The state, also after a panic elsewhere poisoned the lock (the data stays usable:
    /// every mutation is completed before the lock is released).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs one Connect call in the caller's account and region.
    pub(crate) async fn connect<F>(
        &self,
        conn: &ConnectionHandle,
        call: Call,
        action: F,
    ) -> Response
    where
        F: FnOnce(&mut Model, &Settings<'_>, Instant) -> Result<Reply, ApiError>,
    {
        self.execute(conn, call, |inner, caller, now| {
            let (model, settings) = inner.split(&caller.account_id, &caller.region, now);
            action(model, &settings, now).map(Answer::from)
        })
        .await
    }

    /// Runs one Connect call that needs more than the caller's own model (replication
    /// spans regions).
    pub(crate) async fn connect_global<F>(
        &self,
        conn: &ConnectionHandle,
        call: Call,
        action: F,
    ) -> Response
    where
        F: FnOnce(&mut Inner, &Caller, Instant) -> Result<Reply, ApiError>,
    {
        self.execute(conn, call, |inner, caller, now| {
            action(inner, caller, now).map(Answer::from)
        })
        .await
    }

    /// Runs one call: identifies the caller (a request without usable authentication is
    /// answered at once and not recorded), then latency, rate limiting (Connect only) and
    /// faults, applies it with `action` and records it.
    pub(crate) async fn execute<F>(
        &self,
        conn: &ConnectionHandle,
        call: Call,
        action: F,
    ) -> Response
    where
        F: FnOnce(&mut Inner, &Caller, Instant) -> Result<Answer, ApiError>,
    {
        let received_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let protocol = if call.operation.is_sts() {
            Protocol::Query
        } else {
            Protocol::RestJson
        };
        let (caller, latency) = {
            let mut inner = self.lock();
            match call.auth.caller(&inner.config, protocol) {
                Ok(caller) => {
                    let faults = &inner.config.faults;
                    let latency = if faults.applies_to(call.operation) {
                        faults.latency
                    } else {
                        Default::default()
                    };
                    (caller, latency)
                }
                Err(error) => {
                    let request_id = inner.request_id();
                    return render_error(protocol, &error, &request_id);
                }
            }
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }

        let now = Instant::now();
        let mut inner = self.lock();
        let faulty = inner.config.faults.applies_to(call.operation);
        let server_error_ratio = inner.config.faults.server_error_ratio;
        let drop_ratio = inner.config.faults.drop_connection_ratio;
        let access_denied_ratio = inner.config.faults.access_denied_ratio;
        let request_id = inner.request_id();

        let admitted = call.operation.is_sts()
            || inner
                .tenant(&caller.account_id, &caller.region, now)
                .buckets
                .get_mut(&call.operation)
                .is_none_or(|bucket| bucket.try_acquire(now));
        let outcome = if !admitted {
            Err(ApiError::throttled())
        } else if faulty && server_error_ratio > 0.0 && inner.fault_rng.f64() < server_error_ratio {
            Err(ApiError::internal())
        } else if faulty && access_denied_ratio > 0.0 && inner.fault_rng.f64() < access_denied_ratio
        {
            Err(ApiError::access_denied())
        } else {
            inner.advance(now);
            action(&mut inner, &caller, now)
        };
        let dropped = faulty && drop_ratio > 0.0 && inner.fault_rng.f64() < drop_ratio;

        let (status, error_type, instance_id, replay) = match &outcome {
            Ok(answer) => (
                200,
                None,
                answer
                    .instance_id
                    .clone()
                    .or_else(|| call.instance_id.clone()),
                answer.replay,
            ),
            Err(error) => {
                let (status, code) = error.kind.wire(protocol);
                (status, Some(code), call.instance_id.clone(), false)
            }
        };
        let account_id = call
            .role_arn
            .as_deref()
            .and_then(RoleArn::parse)
            .map_or_else(|| caller.account_id.clone(), |role| role.account_id);
        let access_key_id = call
            .auth
            .0
            .as_ref()
            .ok()
            .and_then(|credential| credential.as_ref())
            .map(|credential| credential.access_key_id.clone());
        let record = CallRecord {
            seq: inner.next_call_seq,
            operation: call.operation.name(),
            account_id,
            region: caller.region.clone(),
            access_key_id,
            client_token: call.client_token,
            instance_id,
            role_arn: call.role_arn,
            status,
            error_type,
            dropped,
            replay,
            elapsed_ms: u64::try_from(now.duration_since(self.started).as_millis())
                .unwrap_or(u64::MAX),
            unix_ms: received_unix_ms,
            injected_latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
        };
        inner.next_call_seq += 1;
        tracing::debug!(
            seq = record.seq,
            operation = record.operation,
            account = record.account_id,
            region = record.region,
            status = record.status,
            error = record.error_type,
            dropped = record.dropped,
            "api call"
        );
        inner.calls.push(record);
        drop(inner);

        if dropped {
            conn.drop_connection();
        }
        match outcome {
            Ok(Answer {
                body: Body::Json(body),
                ..
            }) => success_response(body, &request_id),
            Ok(Answer {
                body: Body::Query { action, result },
                ..
            }) => {
                let xml = format!(
                    "<{action}Response xmlns=\"{STS_NAMESPACE}\">\n  <{action}Result>{result}</{action}Result>\n  \
                     <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n\
                     </{action}Response>\n"
                );
                xml_response(StatusCode::OK, xml, &request_id)
            }
            Err(error) => render_error(protocol, &error, &request_id),
        }
    }
}

/// The XML namespace of STS documents.
const STS_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// An error in the protocol of the request.
pub(crate) fn render_error(protocol: Protocol, error: &ApiError, request_id: &str) -> Response {
    match protocol {
        Protocol::RestJson => error_response(error, request_id),
        Protocol::Query => sts_error_response(error, request_id),
    }
}

fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-RequestId", value);
    }
    response
}

/// 200 with a JSON body, or an empty body for operations without output.
fn success_response(body: Option<Value>, request_id: &str) -> Response {
    let response = match body {
        Some(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response(),
        None => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")]).into_response(),
    };
    with_request_id(response, request_id)
}

/// An AWS REST-JSON error: status from the model, code in `x-amzn-ErrorType`, message in
/// the body.
pub(crate) fn error_response(error: &ApiError, request_id: &str) -> Response {
    let status =
        StatusCode::from_u16(error.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({ "Message": error.message }).to_string();
    let response = (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::HeaderName::from_static("x-amzn-errortype"),
                error.kind.code(),
            ),
        ],
        body,
    )
        .into_response();
    with_request_id(response, request_id)
}

fn xml_response(status: StatusCode, xml: String, request_id: &str) -> Response {
    let response = (status, [(header::CONTENT_TYPE, "text/xml")], xml).into_response();
    with_request_id(response, request_id)
}

/// An STS (query protocol) error: `<ErrorResponse><Error><Type/><Code/><Message/></Error>
/// <RequestId/></ErrorResponse>` with the status from the STS model.
pub(crate) fn sts_error_response(error: &ApiError, request_id: &str) -> Response {
    let (status, code) = error.kind.wire(Protocol::Query);
    let fault = if status >= 500 { "Receiver" } else { "Sender" };
    let xml = format!(
        "<ErrorResponse xmlns=\"{STS_NAMESPACE}\">\n  <Error>\n    \
         <Type>{fault}</Type>\n    <Code>{code}</Code>\n    <Message>{}</Message>\n  </Error>\n  \
         <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
        xml_escape(&error.message)
    );
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    xml_response(status, xml, request_id)
}
