//! The Kubernetes client: every request has a deadline.
//!
//! kube's client sends requests over pooled HTTP/1.1 connections and, by default, waits for
//! an answer as long as it takes. A connection that a load balancer or a NAT dropped without
//! telling either end (no FIN, no RST) then holds whatever request uses it for ever: a
//! status write, a finalizer patch, a lease renewal, the list that restarts a watch. Here a
//! tower layer bounds each request by [`ClientSettings::request_timeout`]: from the moment
//! it is sent until its answer's headers, and then its body may not stall for longer
//! either (a large list that keeps arriving is not cut; a body that stops is). A watch is
//! bounded until the API server accepts it (its headers); its body is an open stream that
//! kube's watcher bounds by an idle timeout slightly above the watch's server-side timeout
//! ([`super::Watches`]).
//!
//! The same layer reports every watch the API server accepted to the liveness probe: a
//! watch that is re-established is alive even when nothing changed.
//!
//! Below the layer, the connections: connecting (TCP and TLS) is bounded by the request
//! timeout, a socket nothing was read from for longer than a watch may stay idle is
//! closed, and a connection idle in the pool for [`POOL_IDLE_TIMEOUT`] is closed rather
//! than handed to the next request. A connection that died silently while idle in the
//! pool looks exactly like a live one; kube's default pool keeps idle connections for 90 s,
//! so after a network fault one request after another would be handed a dead connection
//! and wait out its deadline. Here the pool is short-lived, so a fault costs each request
//! stream at most one deadline. (kube's own builder does not expose the pool, so the HTTP
//! stack is assembled here from kube's layers: base URI, authentication, extra headers,
//! retries of 429/503/504.)

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::Client;
use kube::client::{Body, ConfigExt};
use tower::{Layer, Service, ServiceBuilder};

use crate::liveness::Liveness;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a connection may sit idle in the pool before it is closed instead of reused.
/// Requests come often enough (lease renewals every two seconds, status writes) that live
/// connections are still reused; a dead one is given to at most the requests of these few
/// seconds.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How the operator's Kubernetes requests are bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientSettings {
    /// Every request, from sending it to its answer's headers, and the longest its body
    /// may stall (a watch's body is the watcher's to bound).
    pub request_timeout: Duration,
    /// The server-side timeout of every watch: the API server ends each watch after this
    /// long and the watcher opens the next one, so an idle watch is re-established this
    /// often. Keep it below the idle timeouts of load balancers between the operator and
    /// the API server.
    pub watch_timeout: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            watch_timeout: Duration::from_secs(25),
        }
    }
}

impl ClientSettings {
    /// How long a watch may deliver nothing before the watcher gives it up and re-opens
    /// it: kube's watcher adds 5 s to the server-side timeout.
    #[must_use]
    pub fn watch_idle_timeout(&self) -> Duration {
        self.watch_timeout + Duration::from_secs(5)
    }
}

/// A request got no (complete) answer within its deadline.
#[derive(Clone, Copy, Debug, thiserror::Error)]
#[error("the Kubernetes API did not answer within {timeout:?}{}", if *.watch { " (opening a watch)" } else { "" })]
pub struct DeadlineExceeded {
    /// The deadline.
    pub timeout: Duration,
    /// Whether the request opened a watch.
    pub watch: bool,
}

/// Whether `error`, or an error it wraps, is a missed deadline.
#[must_use]
pub fn is_deadline(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<DeadlineExceeded>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// The client, configured from the environment (in-cluster, or `KUBECONFIG`).
pub async fn connect(settings: ClientSettings, liveness: &Liveness) -> Result<Client, kube::Error> {
    let config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    from_config(config, settings, liveness)
}

/// The client for `config`, with the deadlines of `settings`.
pub fn from_config(
    config: kube::Config,
    settings: ClientSettings,
    liveness: &Liveness,
) -> Result<Client, kube::Error> {
    if let Some(proxy) = &config.proxy_url {
        return Err(kube::Error::ProxyProtocolUnsupported {
            proxy_url: Box::new(proxy.clone()),
        });
    }
    // Both TLS providers are linked (the AWS SDK brings its own); the Kubernetes client uses
    // aws-lc-rs, as kube's own builder does. Losing a race to install it is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let https = config.rustls_https_connector_with_connector(http)?;
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(Some(settings.request_timeout));
    connector.set_write_timeout(Some(settings.request_timeout));
    // Above the watch idle timeout, so a healthy idle watch is never cut here; counted from
    // the last write too, so a request on a connection that sat idle gets the whole of it.
    connector.set_read_timeout(Some(settings.watch_idle_timeout() + Duration::from_secs(5)));
    connector.set_reset_reader_on_write(true);
    let http: hyper_util::client::legacy::Client<_, Body> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector);
    let service = ServiceBuilder::new()
        .layer(DeadlineLayer {
            timeout: settings.request_timeout,
            liveness: liveness.clone(),
        })
        .layer(config.base_uri_layer())
        .option_layer(config.default_retry.then(|| {
            tower::retry::RetryLayer::new(kube::client::retry::RetryPolicy::server_retry())
        }))
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(http);
    Ok(Client::new(service, config.default_namespace))
}

/// Whether a request opens a watch (`?watch=true`).
fn is_watch(uri: &Uri) -> bool {
    uri.query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair == "watch=true" || pair == "watch=1")
    })
}

#[derive(Clone)]
struct DeadlineLayer {
    timeout: Duration,
    liveness: Liveness,
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            timeout: self.timeout,
            liveness: self.liveness.clone(),
        }
    }
}

/// The service that bounds each request.
#[derive(Clone)]
pub struct Deadline<S> {
    inner: S,
    timeout: Duration,
    liveness: Liveness,
}

impl<S, B> Service<Request<Body>> for Deadline<S>
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<DeadlineBody<B>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let watch = is_watch(request.uri());
        let path = request.uri().path().to_owned();
        let timeout = self.timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let answer = self.inner.call(request);
        let liveness = self.liveness.clone();
        Box::pin(async move {
            let response = match tokio::time::timeout_at(deadline, answer).await {
                Ok(response) => response.map_err(Into::into)?,
                Err(_elapsed) => return Err(Box::new(DeadlineExceeded { timeout, watch }) as _),
            };
            if watch {
                if response.status().is_success() {
                    liveness.watch_opened(&path);
                }
                return Ok(response.map(|inner| DeadlineBody {
                    inner,
                    deadline: None,
                    timeout,
                }));
            }
            Ok(response.map(|inner| DeadlineBody {
                inner,
                deadline: Some(Box::pin(tokio::time::sleep_until(deadline))),
                timeout,
            }))
        })
    }
}

/// An answer's body, failed when its deadline passes before its last byte.
pub struct DeadlineBody<B> {
    inner: B,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    timeout: Duration,
}

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                // Progress: the body may stall for another whole timeout from here.
                if let (Some(deadline), Some(Ok(_))) = (this.deadline.as_mut(), &frame) {
                    deadline
                        .as_mut()
                        .reset(tokio::time::Instant::now() + this.timeout);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let passed = this
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if passed {
                    Poll::Ready(Some(Err(Box::new(DeadlineExceeded {
                        timeout: this.timeout,
                        watch: false,
                    }))))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_watch_requests_are_watches() {
        let uri = |s: &str| s.parse::<Uri>().expect("uri");
        assert!(is_watch(&uri(
            "/apis/connect.operators.dev/v1alpha1/connectinstances?&watch=true&timeoutSeconds=25&allowWatchBookmarks=true&resourceVersion=12"
        )));
        assert!(is_watch(&uri("/api/v1/namespaces?watch=1")));
        assert!(!is_watch(&uri(
            "/apis/connect.operators.dev/v1alpha1/connectinstances?limit=500"
        )));
        assert!(!is_watch(&uri("/api/v1/namespaces/watch=true")));
        assert!(!is_watch(&uri("/api/v1/pods?watchx=true")));
    }

    #[test]
    fn a_missed_deadline_is_recognised_through_the_errors_that_wrap_it() {
        let deadline = DeadlineExceeded {
            timeout: Duration::from_secs(10),
            watch: false,
        };
        assert!(is_deadline(&deadline));
        let wrapped = kube::Error::Service(Box::new(deadline));
        assert!(is_deadline(&wrapped));
        let other = kube::Error::Service("connection refused".into());
        assert!(!is_deadline(&other));
    }
}
