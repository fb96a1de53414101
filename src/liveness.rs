//! What `/livez` answers: whether this process still makes progress, so that the kubelet
//! restarts a replica that is wedged rather than one that merely waits.
//!
//! Three things can wedge an operator while its HTTP server keeps answering: a watch that
//! neither delivers events nor gets re-opened (its connection died silently and nothing
//! noticed), controllers that stopped by themselves, and a leader-election loop that no
//! longer runs. Each has a probe here. A watch proves it is alive by delivering an event or
//! by being re-established (the Kubernetes client reports every watch request the API server
//! accepted, see `cluster::client`); a healthy idle watch is re-established at every
//! server-side timeout, so a watch silent for twice that is not healthy.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The process's liveness probes. Cheap to clone; every clone is the same registry.
#[derive(Clone, Debug)]
pub struct Liveness {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// How long a watch may go without an event or a re-establishment.
    watch_bound: Duration,
    /// How long the leader-election loop may go without finishing a round.
    lease_bound: Duration,
    next_id: AtomicU64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    watches: BTreeMap<u64, Watch>,
    /// When the leader-election loop last finished a round (`None`: no leader election).
    lease_round: Option<Instant>,
    /// Why the controllers stopped although nobody asked them to.
    stopped: Option<String>,
    /// Something that runs for the process's whole life ended: not live again.
    broken: Option<String>,
}

#[derive(Debug)]
struct Watch {
    name: String,
    path: String,
    progress: Instant,
}

/// One watch's probe; the watch is forgotten when its probe is dropped (with its stream).
#[derive(Debug)]
pub struct WatchProbe {
    liveness: Liveness,
    id: u64,
}

impl WatchProbe {
    /// The watch delivered something.
    pub fn progressed(&self) {
        let now = Instant::now();
        if let Some(watch) = self.liveness.state().watches.get_mut(&self.id) {
            watch.progress = now;
        }
    }
}

impl Drop for WatchProbe {
    fn drop(&mut self) {
        self.liveness.state().watches.remove(&self.id);
    }
}

impl Liveness {
    /// Probes with these bounds: a watch must show progress within `watch_bound`, the
    /// leader-election loop must finish a round within `lease_bound`.
    #[must_use]
    pub fn new(watch_bound: Duration, lease_bound: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                watch_bound,
                lease_bound,
                next_id: AtomicU64::new(0),
                state: Mutex::new(State::default()),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long a watch may be silent before the process is not live.
    #[must_use]
    pub fn watch_bound(&self) -> Duration {
        self.inner.watch_bound
    }

    /// Registers a watch of the resource at `path` (the request path of its list and
    /// watch calls, `Api::resource_url`). Its clock starts now.
    #[must_use]
    pub fn watch(&self, name: &str, path: &str) -> WatchProbe {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.state().watches.insert(
            id,
            Watch {
                name: name.to_owned(),
                path: path.to_owned(),
                progress: Instant::now(),
            },
        );
        WatchProbe {
            liveness: self.clone(),
            id,
        }
    }

    /// The API server accepted a watch request for `path`: the watches of that resource
    /// are re-established.
    pub fn watch_opened(&self, path: &str) {
        let now = Instant::now();
        for watch in self.state().watches.values_mut() {
            if watch.path == path {
                watch.progress = now;
            }
        }
    }

    /// The leader-election loop finished a round (whatever its outcome).
    pub fn lease_round(&self) {
        self.state().lease_round = Some(Instant::now());
    }

    /// The controllers ended although no shutdown was asked for.
    pub fn controllers_stopped(&self, why: &str) {
        self.state().stopped = Some(why.to_owned());
    }

    /// A task that runs for the process's whole life ended (a watch of the account
    /// directory): the process is not live any more.
    pub fn broken(&self, why: &str) {
        self.state().broken = Some(why.to_owned());
    }

    /// The controllers run (again).
    pub fn controllers_started(&self) {
        self.state().stopped = None;
    }

    /// `Ok` with a summary when every probe is within its bound, `Err` naming each one that
    /// is not.
    pub fn check(&self, now: Instant) -> Result<String, String> {
        let state = self.state();
        let mut problems = vec![];
        if let Some(why) = &state.stopped {
            problems.push(format!("the controllers stopped: {why}"));
        }
        if let Some(why) = &state.broken {
            problems.push(why.clone());
        }
        if let Some(round) = state.lease_round {
            let age = now.saturating_duration_since(round);
            if age > self.inner.lease_bound {
                problems.push(format!(
                    "the leader-election loop has not finished a round for {:.0} s (bound {:.0} s)",
                    age.as_secs_f64(),
                    self.inner.lease_bound.as_secs_f64()
                ));
            }
        }
        for watch in state.watches.values() {
            let age = now.saturating_duration_since(watch.progress);
            if age > self.inner.watch_bound {
                problems.push(format!(
                    "the {} watch ({}) has delivered nothing and not been re-established for {:.0} s (bound {:.0} s)",
                    watch.name,
                    watch.path,
                    age.as_secs_f64(),
                    self.inner.watch_bound.as_secs_f64()
                ));
            }
        }
        if problems.is_empty() {
            Ok(format!("ok: {} watches live", state.watches.len()))
        } else {
            Err(problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: Duration = Duration::from_secs(50);

    #[test]
    fn a_watch_is_live_while_it_delivers_or_is_reopened_and_not_after() {
        let liveness = Liveness::new(BOUND, BOUND);
        let probe = liveness.watch("ConnectInstance", "/apis/x/v1/things");
        let start = Instant::now();
        assert!(liveness.check(start).is_ok());
        let late = start + BOUND + Duration::from_secs(1);
        let problem = liveness.check(late).expect_err("silent past its bound");
        assert!(problem.contains("ConnectInstance"), "{problem}");
        probe.progressed();
        assert!(liveness.check(Instant::now()).is_ok());
        // A re-establishment of another resource does not count; its own does.
        let later = Instant::now() + BOUND + Duration::from_secs(1);
        liveness.watch_opened("/apis/x/v1/other");
        assert!(liveness.check(later).is_err());
        liveness.watch_opened("/apis/x/v1/things");
        assert!(liveness.check(Instant::now()).is_ok());
        // A watch that is gone (its stream dropped) no longer counts.
        drop(probe);
        assert!(liveness.check(later).is_ok());
    }

    #[test]
    fn stopped_controllers_and_a_stuck_lease_loop_fail_the_probe() {
        let liveness = Liveness::new(BOUND, Duration::from_secs(30));
        let now = Instant::now();
        assert!(
            liveness.check(now).is_ok(),
            "no leader election: no lease probe"
        );
        liveness.lease_round();
        assert!(liveness.check(Instant::now()).is_ok());
        let problem = liveness
            .check(Instant::now() + Duration::from_secs(31))
            .expect_err("lease loop stuck");
        assert!(problem.contains("leader-election"), "{problem}");
        liveness.controllers_stopped("the watch stream ended");
        let problem = liveness.check(Instant::now()).expect_err("stopped");
        assert!(problem.contains("the watch stream ended"), "{problem}");
        liveness.controllers_started();
        assert!(liveness.check(Instant::now()).is_ok());
        // What runs for the process's life does not come back.
        liveness.broken("the namespace watch ended");
        liveness.controllers_started();
        let problem = liveness.check(Instant::now()).expect_err("broken");
        assert!(problem.contains("namespace watch"), "{problem}");
    }
}
