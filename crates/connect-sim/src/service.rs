//! The simulator's shared state and the pipeline every Connect call goes through:
//! latency → rate limit → injected 5xx / 403 → the operation → dropped connection, with every
//! call recorded in the call log whatever its outcome.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use regex::Regex;
use serde::Serialize;
use serde_json::Value;

use super::config::{Operation, SimConfig};
use super::errors::ApiError;
use super::limits::{ConnectionHandle, TokenBucket};
use super::model::{Model, Reply, Settings};

/// One Connect API request as the call log records it (`GET /_sim/calls`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CallRecord {
    /// 1, 2, 3, ... in arrival order of the decision; never reused, also after a clear.
    pub(crate) seq: u64,
    pub(crate) operation: &'static str,
    pub(crate) client_token: Option<String>,
    pub(crate) instance_id: Option<String>,
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
}

/// What a handler knows about a call before it runs.
pub(crate) struct Call {
    pub(crate) operation: Operation,
    pub(crate) client_token: Option<String>,
    /// The instance named by the request path, if any.
    pub(crate) instance_id: Option<String>,
}

pub(crate) struct Inner {
    pub(crate) config: SimConfig,
    pub(crate) fail_alias: Option<Regex>,
    pub(crate) model: Model,
    buckets: BTreeMap<Operation, TokenBucket>,
    calls: Vec<CallRecord>,
    next_call_seq: u64,
    fault_rng: fastrand::Rng,
}

impl Inner {
    /// The model together with the settings its operations read.
    pub(crate) fn split(&mut self) -> (&mut Model, Settings<'_>) {
        let settings = Settings {
            config: &self.config,
            fail_alias: self.fail_alias.as_ref(),
        };
        (&mut self.model, settings)
    }

    /// Advances the model's lifecycle to `now` under the current configuration.
    pub(crate) fn advance(&mut self, now: Instant) {
        self.model.advance(&self.config, now);
    }

    /// Restarts the buckets of `operations` with their (new) limits.
    pub(crate) fn reset_buckets(&mut self, operations: &[Operation], now: Instant) {
        for op in operations {
            self.buckets
                .insert(*op, TokenBucket::new(self.config.rate_limit(*op), now));
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
}

/// The simulator: one lock around the whole account, held only for synchronous work.
pub(crate) struct Sim {
    inner: Mutex<Inner>,
    started: Instant,
}

impl Sim {
    pub(crate) fn new(config: SimConfig, fail_alias: Option<Regex>) -> Self {
        let seed = config.seed.unwrap_or_else(|| fastrand::u64(..));
        let now = Instant::now();
        let buckets = Operation::ALL
            .into_iter()
            .map(|op| (op, TokenBucket::new(config.rate_limit(op), now)))
            .collect();
        Self {
            inner: Mutex::new(Inner {
                config,
                fail_alias,
                model: Model::new(fastrand::Rng::with_seed(seed)),
                buckets,
                calls: Vec::new(),
                next_call_seq: 1,
                fault_rng: fastrand::Rng::with_seed(seed.wrapping_add(1)),
            }),
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

    /// Runs one Connect call through latency, rate limiting and faults, applies it with
    /// `action` and records it.
    pub(crate) async fn execute<F>(
        &self,
        conn: &ConnectionHandle,
        call: Call,
        action: F,
    ) -> Response
    where
        F: FnOnce(&mut Inner, Instant) -> Result<Reply, ApiError>,
    {
        let latency = {
            let inner = self.lock();
            let faults = &inner.config.faults;
            if faults.applies_to(call.operation) {
                faults.latency
            } else {
                Default::default()
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
        let request_id = inner.model.request_id();

        let admitted = match inner.buckets.get_mut(&call.operation) {
            Some(bucket) => bucket.try_acquire(now),
            None => true,
        };
        let outcome = if !admitted {
            Err(ApiError::throttled())
        } else if faulty && server_error_ratio > 0.0 && inner.fault_rng.f64() < server_error_ratio {
            Err(ApiError::internal())
        } else if faulty && access_denied_ratio > 0.0 && inner.fault_rng.f64() < access_denied_ratio
        {
            Err(ApiError::access_denied())
        } else {
            inner.advance(now);
            action(&mut inner, now)
        };
        let dropped = faulty && drop_ratio > 0.0 && inner.fault_rng.f64() < drop_ratio;

        let (status, error_type, instance_id, replay) = match &outcome {
            Ok(reply) => (
                200,
                None,
                reply
                    .instance_id
                    .clone()
                    .or_else(|| call.instance_id.clone()),
                reply.replay,
            ),
            Err(error) => (
                error.kind.status(),
                Some(error.kind.code()),
                call.instance_id.clone(),
                false,
            ),
        };
        let record = CallRecord {
            seq: inner.next_call_seq,
            operation: call.operation.name(),
            client_token: call.client_token,
            instance_id,
            status,
            error_type,
            dropped,
            replay,
            elapsed_ms: u64::try_from(now.duration_since(self.started).as_millis())
                .unwrap_or(u64::MAX),
        };
        inner.next_call_seq += 1;
        tracing::debug!(
            seq = record.seq,
            operation = record.operation,
            status = record.status,
            error = record.error_type,
            dropped = record.dropped,
            "connect call"
        );
        inner.calls.push(record);
        drop(inner);

        if dropped {
            conn.drop_connection();
        }
        match outcome {
            Ok(reply) => success_response(reply.body, &request_id),
            Err(error) => error_response(&error, &request_id),
        }
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
