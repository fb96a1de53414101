//! Per-operation rate limits (token buckets, as AWS API quotas work) and the connection
//! plumbing that lets an injected fault close a connection without answering.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::config::RateLimit;

/// A token bucket: `burst` tokens, refilled at `per_second`; each call takes one.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket (an empty one when the rate is zero: such an operation always throttles).
    pub(crate) fn new(limit: RateLimit, now: Instant) -> Self {
        let tokens = match limit.per_second {
            Some(rate) if rate <= 0.0 => 0.0,
            _ => f64::from(limit.burst),
        };
        Self {
            limit,
            tokens,
            last: now,
        }
    }

    /// Takes a token if one is available.
    pub(crate) fn try_acquire(&mut self, now: Instant) -> bool {
        let Some(rate) = self.limit.per_second else {
            return true;
        };
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(self.limit.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A TCP listener whose connections can be cut from inside a request handler.
pub(crate) struct DroppableListener {
    inner: TcpListener,
}

impl DroppableListener {
    pub(crate) fn new(inner: TcpListener) -> Self {
        Self { inner }
    }
}

impl Listener for DroppableListener {
    type Io = DroppableStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.inner).await;
        let _ = stream.set_nodelay(true);
        let stream = DroppableStream {
            inner: stream,
            dropped: Arc::new(AtomicBool::new(false)),
        };
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection that stops reading and writing once dropped: the response the server then
/// tries to write fails, and the server closes the socket without having sent anything.
pub(crate) struct DroppableStream {
    inner: TcpStream,
    dropped: Arc<AtomicBool>,
}

impl DroppableStream {
    fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }
}

fn dropped_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection dropped by fault injection",
    )
}

impl AsyncRead for DroppableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.is_dropped() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for DroppableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.is_dropped() {
            return Poll::Ready(Err(dropped_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.is_dropped() {
            return Poll::Ready(Err(dropped_error()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Per-connection handle given to handlers (as `ConnectInfo`) to cut their connection.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionHandle {
    dropped: Arc<AtomicBool>,
}

impl ConnectionHandle {
    /// Makes the connection close without a response to the current request.
    pub(crate) fn drop_connection(&self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, DroppableListener>> for ConnectionHandle {
    fn connect_info(stream: IncomingStream<'_, DroppableListener>) -> Self {
        Self {
            dropped: Arc::clone(&stream.io().dropped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(
            RateLimit {
                per_second: Some(2.0),
                burst: 3,
            },
            t0,
        );
        assert!((0..3).all(|_| bucket.try_acquire(t0)));
        assert!(!bucket.try_acquire(t0));
        assert!(!bucket.try_acquire(t0 + Duration::from_millis(400)));
        assert!(bucket.try_acquire(t0 + Duration::from_millis(500)));
    }

    #[test]
    fn zero_rate_always_throttles_and_none_never_does() {
        let t0 = Instant::now();
        let mut zero = TokenBucket::new(
            RateLimit {
                per_second: Some(0.0),
                burst: 5,
            },
            t0,
        );
        assert!(!zero.try_acquire(t0 + Duration::from_secs(60)));
        let mut unlimited = TokenBucket::new(
            RateLimit {
                per_second: None,
                burst: 1,
            },
            t0,
        );
        assert!((0..1000).all(|_| unlimited.try_acquire(t0)));
    }
}
