//! How every watch of the operator is opened.
//!
//! - A server-side timeout ([`ClientSettings::watch_timeout`]): the API server ends each
//!   watch after it and the watcher opens the next, so an idle watch is re-established that
//!   often and a load balancer never sees a connection idle for longer. kube's watcher
//!   gives up on a watch that delivers nothing for slightly more than that and re-opens it,
//!   which is what gets a watch off a connection that died silently.
//! - Retries after a failed list or watch back off from half a second to at most five
//!   seconds (with jitter): an API server that comes back is used within seconds, and a
//!   handful of watches retrying every five seconds costs a struggling one nothing. The
//!   controllers use the same backoff for their trigger streams (kube's default there
//!   grows to 30 s and only starts over after two quiet minutes, which kept a watch down
//!   for minutes after the API server was back).
//! - A liveness probe per watch, fed by every event it delivers (and, through the client,
//!   by every re-establishment), dropped with the watch.

use std::time::Duration;

use futures::{Stream, TryStreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;

use super::ClientSettings;
use crate::liveness::Liveness;

/// Opens the operator's watches.
#[derive(Clone, Debug)]
pub struct Watches {
    timeout: Duration,
    liveness: Liveness,
}

impl Watches {
    /// Watches with the server-side timeout of `settings`, reporting to `liveness`.
    #[must_use]
    pub fn new(settings: &ClientSettings, liveness: Liveness) -> Self {
        Self {
            timeout: settings.watch_timeout,
            liveness,
        }
    }

    /// The liveness probes the watches report to.
    #[must_use]
    pub fn liveness(&self) -> &Liveness {
        &self.liveness
    }

    /// A watcher configuration with the server-side timeout; lists may be served from the
    /// API server's cache (what a reconcile acts on is re-read before any irreversible
    /// step, see the reconciler's freshness checks).
    #[must_use]
    pub fn config(&self) -> watcher::Config {
        let seconds = u32::try_from(self.timeout.as_secs())
            .unwrap_or(u32::MAX)
            .max(1);
        watcher::Config::default().any_semantic().timeout(seconds)
    }

    /// The watch of `api` with `config`, retried with this module's backoff, its events
    /// counted as the progress of a probe named `name`.
    pub fn open<K>(
        &self,
        api: Api<K>,
        config: watcher::Config,
        name: &str,
    ) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + use<K>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        let probe = self.liveness.watch(name, api.resource_url());
        watcher(api, config)
            .backoff(WatchBackoff::default())
            .inspect_ok(move |_| probe.progressed())
    }
}

/// Retry delays of a watch: doubling from [`WatchBackoff::FIRST`] to [`WatchBackoff::MAX`],
/// each with up to half of it again as jitter; back to the first after any success.
#[derive(Clone, Debug)]
pub struct WatchBackoff {
    next: Duration,
}

impl WatchBackoff {
    /// The first delay.
    pub const FIRST: Duration = Duration::from_millis(500);
    /// The longest delay (before jitter).
    pub const MAX: Duration = Duration::from_secs(5);
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        Some(delay + delay.mul_f64(fastrand::f64() / 2.0))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_retries_back_off_to_five_seconds_and_start_over_after_a_success() {
        let mut backoff = WatchBackoff::default();
        let delays: Vec<Duration> = (0..8).filter_map(|_| backoff.next()).collect();
        let bounds = [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0];
        for (delay, base) in delays.iter().zip(bounds) {
            let base = Duration::from_secs_f64(base);
            assert!(*delay >= base && *delay <= base.mul_f64(1.5), "{delays:?}");
        }
        backoff.reset();
        let first = backoff.next().expect("a delay");
        assert!(first <= WatchBackoff::FIRST.mul_f64(1.5), "{first:?}");
    }

    #[test]
    fn watches_ask_the_server_to_end_them_at_the_configured_timeout() {
        let watches = Watches::new(
            &ClientSettings {
                request_timeout: Duration::from_secs(10),
                watch_timeout: Duration::from_secs(25),
            },
            Liveness::new(Duration::from_secs(50), Duration::from_secs(30)),
        );
        assert_eq!(watches.config().timeout, Some(25));
    }
}
