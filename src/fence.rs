//! The fence: whether this replica may write now, decided by its own monotonic clock.
//!
//! A replica that leads through a Lease may write (to AWS, and to status) only until the
//! moment its last successful renewal stops covering it: the renewal's send time plus the
//! renew deadline, which is earlier than the moment any other replica may take the Lease
//! over (that one waits the whole lease duration from when it saw the renewal). The fence
//! is a deadline, not a flag some task must remember to flip: once the moment passes,
//! every check answers "no" at once, whatever the lease loop is doing (blocked on a dead
//! connection, starved of CPU). A replica without leader election holds an open fence.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Whether this replica may send writes.
#[derive(Debug)]
pub struct Fence {
    state: Mutex<State>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No leader election: the only replica, always allowed.
    Open,
    /// Leading through a Lease: allowed until this moment.
    Until(Instant),
    /// Not leading (or no longer): nothing is allowed until a new term grants it.
    Closed,
}

/// The fence refused a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "this replica does not hold the leader lease (or could not renew it in time); the write was not sent"
)]
pub struct NotLeader;

impl Fence {
    /// A fence that never closes: the process runs without leader election.
    #[must_use]
    pub fn open() -> Self {
        Self {
            state: Mutex::new(State::Open),
        }
    }

    /// A closed fence: a replica that waits for the Lease.
    #[must_use]
    pub fn closed() -> Self {
        Self {
            state: Mutex::new(State::Closed),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a write may be sent now.
    #[must_use]
    pub fn permits(&self) -> bool {
        self.permits_at(Instant::now())
    }

    /// Whether a write may be sent at `now`.
    #[must_use]
    pub fn permits_at(&self, now: Instant) -> bool {
        match *self.state() {
            State::Open => true,
            State::Until(until) => now < until,
            State::Closed => false,
        }
    }

    /// [`Self::permits`] as a result, for the places that refuse a write.
    pub fn check(&self) -> Result<(), NotLeader> {
        if self.permits() {
            Ok(())
        } else {
            Err(NotLeader)
        }
    }

    /// Whether a write may start now that may take up to `margin` to leave the process
    /// (connecting to AWS first): the fence must stay open that long.
    pub fn check_for(&self, margin: Duration) -> Result<(), NotLeader> {
        if self.permits_at(Instant::now() + margin) {
            Ok(())
        } else {
            Err(NotLeader)
        }
    }

    /// A new term: writes are allowed until `until`.
    pub fn grant(&self, until: Instant) {
        let mut state = self.state();
        if *state != State::Open {
            *state = State::Until(until);
        }
    }

    /// A renewal within the current term moves the deadline on. A term that has ended
    /// (closed, or its deadline passed) is not revived: a late answer to a renewal sent
    /// in time must not reopen a fence that other replicas may already rely on.
    pub fn extend(&self, until: Instant, now: Instant) {
        let mut state = self.state();
        if let State::Until(current) = *state
            && now < current
            && until > current
        {
            *state = State::Until(until);
        }
    }

    /// The term is over: nothing is allowed until the next grant.
    pub fn close(&self) {
        let mut state = self.state();
        if *state != State::Open {
            *state = State::Closed;
        }
    }

    /// How long writes stay allowed: `None` without a deadline (open), zero once closed.
    #[must_use]
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        match *self.state() {
            State::Open => None,
            State::Until(until) => Some(until.saturating_duration_since(now)),
            State::Closed => Some(Duration::ZERO),
        }
    }

    /// Whether this fence ever closes (leader election is on).
    #[must_use]
    pub fn is_elected(&self) -> bool {
        *self.state() != State::Open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_fence_always_permits_and_ignores_terms() {
        let fence = Fence::open();
        let now = Instant::now();
        assert!(fence.permits_at(now + Duration::from_secs(3600)));
        fence.close();
        assert!(fence.permits_at(now));
        assert_eq!(fence.remaining(now), None);
        assert!(!fence.is_elected());
    }

    #[test]
    fn a_granted_term_permits_until_its_deadline_and_not_a_moment_after() {
        let fence = Fence::closed();
        let now = Instant::now();
        assert!(!fence.permits_at(now));
        fence.grant(now + Duration::from_secs(10));
        assert!(fence.permits_at(now + Duration::from_secs(9)));
        assert!(!fence.permits_at(now + Duration::from_secs(10)));
        assert_eq!(
            fence.remaining(now + Duration::from_secs(4)),
            Some(Duration::from_secs(6))
        );
    }

    #[test]
    fn a_write_that_may_take_a_while_to_leave_needs_the_fence_open_that_long() {
        let fence = Fence::closed();
        fence.grant(Instant::now() + Duration::from_secs(3));
        assert!(fence.check_for(Duration::from_secs(1)).is_ok());
        assert!(fence.check_for(Duration::from_secs(5)).is_err());
        assert!(Fence::open().check_for(Duration::from_secs(3600)).is_ok());
    }

    #[test]
    fn renewals_extend_a_live_term_but_never_revive_an_ended_one() {
        let fence = Fence::closed();
        let start = Instant::now();
        fence.grant(start + Duration::from_secs(10));
        fence.extend(
            start + Duration::from_secs(12),
            start + Duration::from_secs(2),
        );
        assert!(fence.permits_at(start + Duration::from_secs(11)));
        // An older renewal's answer arriving late never shortens the term.
        fence.extend(
            start + Duration::from_secs(11),
            start + Duration::from_secs(3),
        );
        assert!(fence.permits_at(start + Duration::from_secs(11)));
        // The deadline passed: a late answer does not reopen it.
        fence.extend(
            start + Duration::from_secs(30),
            start + Duration::from_secs(13),
        );
        assert!(!fence.permits_at(start + Duration::from_secs(14)));
        // Closed explicitly: neither does a renewal, only a new grant.
        let fence = Fence::closed();
        fence.grant(start + Duration::from_secs(10));
        fence.close();
        fence.extend(start + Duration::from_secs(20), start);
        assert!(!fence.permits_at(start));
        fence.grant(start + Duration::from_secs(20));
        assert!(fence.permits_at(start));
    }
}
