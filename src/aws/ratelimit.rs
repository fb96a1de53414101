//! Client-side rate limits per account, region and operation, so the operator never causes
//! throttling on its own and one account's traffic never slows another's. Defaults follow
//! the Connect API quotas: CreateInstance and DeleteInstance 0.1/s, everything else 2/s.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

use super::error::Operation;

/// The limiters' clock: tokio's, which is the monotonic clock in the operator and can be
/// paused and advanced in tests, so that what the limiter admits when is checked exactly,
/// not by wall-clock timings that flake on a busy machine.
#[derive(Clone, Debug)]
struct TokioClock {
    origin: Instant,
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.origin.elapsed())
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>;

/// Requests per second allowed for each class of operation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimitSettings {
    /// CreateInstance and DeleteInstance.
    pub lifecycle_per_second: f64,
    /// Every other operation.
    pub other_per_second: f64,
    /// The longest a reconcile waits in line for capacity for a non-lifecycle call; a
    /// longer wait becomes a requeue, so no reconcile holds a worker while it waits.
    /// CreateInstance and DeleteInstance wait in line only for the last
    /// [`LIFECYCLE_IN_LINE`] before their slot, and only one caller per bucket: their slots
    /// are seconds apart, and objects queued for one must not hold the workers that others
    /// need for a poll.
    pub max_wait: Duration,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            lifecycle_per_second: 0.1,
            other_per_second: 2.0,
            max_wait: Duration::from_secs(2),
        }
    }
}

/// Added to every period so that calls never arrive at AWS faster than its limit.
const PERIOD_MARGIN: Duration = Duration::from_millis(20);

/// How close to its slot one CreateInstance or DeleteInstance caller per bucket waits in
/// line, so that the slot is taken the moment it opens. Callers further away (or behind
/// that one) are sent away to come back within this window before their slot: a requeue
/// alone would take the slot late by the requeue's jitter and scheduling, and with a
/// burst of one every late start is throughput lost for good.
pub const LIFECYCLE_IN_LINE: Duration = Duration::from_millis(100);

/// How far before its slot a lifecycle caller sent away is asked to come back; the
/// requeue adds up to [`SLOT_JITTER`], so it comes back 25–75 ms before the slot, inside
/// the in-line window.
const COME_BACK_BEFORE: Duration = Duration::from_millis(75);

/// The most a requeue for a limiter slot adds at random (so that the objects sent away
/// for one slot do not all come back in the same millisecond).
pub const SLOT_JITTER: Duration = Duration::from_millis(50);

/// The shortest requeue the limiter asks for.
const MIN_RETRY: Duration = Duration::from_millis(100);

/// The outcome of asking for capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The call may go now; it waited this long.
    Admitted(Duration),
    /// No capacity within the maximum wait; ask again after this long.
    RetryAfter(Duration),
}

/// One (account, region, operation)'s limiter, and for CreateInstance and DeleteInstance
/// whether a caller is already waiting in line for its next slot.
struct Bucket {
    limiter: Limiter,
    clock: TokioClock,
    period: Duration,
    in_line: AtomicBool,
    /// When the last CreateInstance or DeleteInstance of this bucket was sent.
    last_sent: Mutex<Option<Instant>>,
}

/// The place in line of a bucket; given up when dropped (also when the waiting future is
/// cancelled).
struct Place<'a>(&'a AtomicBool);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Bucket {
    /// How long until a period has passed since the last call of this bucket was sent.
    fn until_period_after_last_send(&self) -> Duration {
        let last = *self
            .last_sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        last.map_or(Duration::ZERO, |sent| {
            (sent + self.period).saturating_duration_since(Instant::now())
        })
    }

    fn take_place(&self) -> Option<Place<'_>> {
        self.in_line
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            .then_some(Place(&self.in_line))
    }
}

/// A requeue that brings a lifecycle caller back within the in-line window before a slot
/// `wait` from now (the caller adds up to [`SLOT_JITTER`]).
fn just_before(wait: Duration) -> Duration {
    wait.saturating_sub(COME_BACK_BEFORE)
        .max(MIN_LIFECYCLE_RETRY)
}

/// The shortest requeue for a lifecycle slot: short, so that a slot 100–175 ms away is
/// not missed by coming back after it.
const MIN_LIFECYCLE_RETRY: Duration = Duration::from_millis(10);

/// The set of limiters, created on first use of each (account, region, operation).
pub struct RateLimits {
    settings: RateLimitSettings,
    limiters: Mutex<HashMap<(String, String, Operation), Arc<Bucket>>>,
}

impl RateLimits {
    /// Limits with these settings.
    #[must_use]
    pub fn new(settings: RateLimitSettings) -> Self {
        Self {
            settings,
            limiters: Mutex::new(HashMap::new()),
        }
    }

    #[cfg(test)]
    fn quota_for(&self, operation: Operation) -> Quota {
        self.quota_and_period(operation).0
    }

    fn quota_and_period(&self, operation: Operation) -> (Quota, Duration) {
        let rate = if operation.is_lifecycle() {
            self.settings.lifecycle_per_second
        } else {
            self.settings.other_per_second
        };
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0
        };
        // A small margin over the nominal period: the call's arrival at AWS jitters by some
        // milliseconds, and arriving a hair early against AWS's own bucket is a 429. The
        // margin is at most a tenth of the period, so it never caps a high configured rate.
        let nominal = Duration::from_secs_f64(1.0 / rate);
        let period = nominal + (nominal.mul_f64(0.02) + PERIOD_MARGIN).min(nominal / 10);
        // CreateInstance/DeleteInstance never burst (AWS allows none); other operations may
        // send up to one second's worth at once.
        let burst = if operation.is_lifecycle() {
            1
        } else {
            u32::try_from(rate.ceil() as u64).unwrap_or(u32::MAX).max(1)
        };
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        (quota, period)
    }

    fn bucket(&self, account: &str, region: &str, operation: Operation) -> Arc<Bucket> {
        let mut map = self
            .limiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry((account.to_owned(), region.to_owned(), operation))
            .or_insert_with(|| {
                let (quota, period) = self.quota_and_period(operation);
                let clock = TokioClock {
                    origin: Instant::now(),
                };
                Arc::new(Bucket {
                    limiter: RateLimiter::direct_with_clock(quota, clock.clone()),
                    clock,
                    period,
                    in_line: AtomicBool::new(false),
                    last_sent: Mutex::new(None),
                })
            })
            .clone()
    }

    /// Right before a CreateInstance or DeleteInstance whose slot was taken is sent: waits
    /// until a period has passed since the previous one was sent. The slot is taken before
    /// the attempt is written to the ledger, and that write's time varies; without this, a
    /// quick write after a slow one would bring two calls closer than AWS's period.
    pub async fn pace(&self, account: &str, region: &str, operation: Operation) {
        let bucket = self.bucket(account, region, operation);
        let wait = {
            let mut last = bucket
                .last_sent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            let at = last.map_or(now, |sent| (sent + bucket.period).max(now));
            *last = Some(at);
            at - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Waits for capacity for one call, up to the maximum wait (for CreateInstance and
    /// DeleteInstance: the in-line window, one caller at a time).
    pub async fn acquire(&self, account: &str, region: &str, operation: Operation) -> Admission {
        let bucket = self.bucket(account, region, operation);
        let mut waited = Duration::ZERO;
        let mut place = None;
        loop {
            if operation.is_lifecycle() {
                // The previous call left late (a slow ledger write between its slot and its
                // send): this one could not leave before a period after it, so it is not
                // admitted to sleep in `pace` holding a worker; it comes back then.
                let behind = bucket.until_period_after_last_send();
                if behind > LIFECYCLE_IN_LINE {
                    return Admission::RetryAfter(just_before(behind));
                }
            }
            let wait = match bucket.limiter.check() {
                Ok(()) => return Admission::Admitted(waited),
                Err(not_until) => not_until.wait_time_from(bucket.clock.now()),
            };
            if operation.is_lifecycle() {
                if wait > LIFECYCLE_IN_LINE {
                    return Admission::RetryAfter(just_before(wait));
                }
                if place.is_none() {
                    place = bucket.take_place();
                }
                if place.is_none() {
                    // Someone is first in line for this slot: come back for the next.
                    return Admission::RetryAfter(just_before(wait + bucket.period));
                }
            } else if waited + wait > self.settings.max_wait {
                return Admission::RetryAfter(wait.max(MIN_RETRY));
            }
            tokio::time::sleep(wait).await;
            waited += wait;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(lifecycle: f64, other: f64) -> RateLimitSettings {
        RateLimitSettings {
            lifecycle_per_second: lifecycle,
            other_per_second: other,
            max_wait: Duration::from_millis(300),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn lifecycle_calls_get_one_slot_then_a_retry_after() {
        let limits = RateLimits::new(settings(0.1, 2.0));
        assert_eq!(
            limits
                .acquire("111111111111", "us-east-1", Operation::CreateInstance)
                .await,
            Admission::Admitted(Duration::ZERO)
        );
        match limits
            .acquire("111111111111", "us-east-1", Operation::CreateInstance)
            .await
        {
            Admission::RetryAfter(d) => assert!(d > Duration::from_secs(9), "{d:?}"),
            other => panic!("second create was admitted: {other:?}"),
        }
        // Another account, another region and another operation have their own buckets.
        assert!(matches!(
            limits
                .acquire("222222222222", "us-east-1", Operation::CreateInstance)
                .await,
            Admission::Admitted(_)
        ));
        assert!(matches!(
            limits
                .acquire("111111111111", "eu-west-2", Operation::CreateInstance)
                .await,
            Admission::Admitted(_)
        ));
        assert!(matches!(
            limits
                .acquire("111111111111", "us-east-1", Operation::DeleteInstance)
                .await,
            Admission::Admitted(_)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn one_lifecycle_caller_waits_in_line_for_a_near_slot_and_takes_it_on_time() {
        // Period 50 ms + 5 ms margin: the next slot is within the in-line window.
        let limits = Arc::new(RateLimits::new(settings(20.0, 2.0)));
        let create = |limits: Arc<RateLimits>| async move {
            limits
                .acquire("111111111111", "us-east-1", Operation::CreateInstance)
                .await
        };
        assert_eq!(
            create(Arc::clone(&limits)).await,
            Admission::Admitted(Duration::ZERO)
        );
        let first = tokio::spawn(create(Arc::clone(&limits)));
        // Let it run until it waits in line (no timer: nothing else can take its turn).
        tokio::task::yield_now().await;
        // A second caller for the same slot is sent away to the one after it, to come back
        // shortly before it.
        match create(Arc::clone(&limits)).await {
            Admission::RetryAfter(w) => {
                assert!(w < Duration::from_millis(200), "{w:?}");
            }
            other => panic!("a second caller got the same slot: {other:?}"),
        }
        match first.await.expect("the waiting caller") {
            // It waited in line for the slot and took it, rather than being requeued.
            Admission::Admitted(waited) => {
                assert!(waited >= Duration::from_millis(30), "{waited:?}");
            }
            other => panic!("the caller in line was sent away: {other:?}"),
        }
        // The place in line is free again: the next caller is admitted (at once or after
        // waiting in line), not sent away.
        assert!(matches!(
            create(Arc::clone(&limits)).await,
            Admission::Admitted(_)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lifecycle_caller_behind_a_late_send_is_sent_away_not_held() {
        let limits = RateLimits::new(settings(10.0, 2.0));
        let op = Operation::DeleteInstance;
        let bucket = limits.bucket("111111111111", "us-east-1", op);
        // The previous delete left late: the next may not leave for another 2 s.
        *bucket.last_sent.lock().unwrap() = Some(Instant::now() + Duration::from_secs(2));
        match limits.acquire("111111111111", "us-east-1", op).await {
            Admission::RetryAfter(w) => assert!(w > Duration::from_secs(1), "{w:?}"),
            other => panic!("admitted to wait in pace: {other:?}"),
        }
        // Its slot was not spent.
        *bucket.last_sent.lock().unwrap() = None;
        assert_eq!(
            limits.acquire("111111111111", "us-east-1", op).await,
            Admission::Admitted(Duration::ZERO)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn lifecycle_calls_leave_a_period_apart_however_late_the_previous_one_left() {
        let limits = RateLimits::new(settings(10.0, 2.0));
        let op = Operation::CreateInstance;
        let first = Instant::now();
        limits.pace("111111111111", "us-east-1", op).await;
        assert_eq!(first.elapsed(), Duration::ZERO, "the first leaves at once");
        // The next slot's holder was quick with its ledger write: it still leaves a period
        // (100 ms + 10 ms margin) after the previous call, and not later.
        limits.pace("111111111111", "us-east-1", op).await;
        assert_eq!(first.elapsed(), Duration::from_millis(110));
        // Another bucket is not held back.
        let other = Instant::now();
        limits.pace("222222222222", "us-east-1", op).await;
        assert_eq!(other.elapsed(), Duration::ZERO);
    }

    #[test]
    fn the_margin_never_caps_a_high_rate() {
        let limits = RateLimits::new(settings(0.1, 2000.0));
        let quota = limits.quota_for(Operation::DescribeInstance);
        // 0.5 ms nominal: the margin is at most a tenth of it.
        assert!(
            quota.replenish_interval() <= Duration::from_micros(550),
            "{quota:?}"
        );
        let quota = limits.quota_for(Operation::CreateInstance);
        assert_eq!(quota.burst_size().get(), 1);
        assert!(
            quota.replenish_interval() >= Duration::from_millis(10_220),
            "{quota:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn short_waits_are_absorbed_in_line() {
        let limits = RateLimits::new(settings(0.1, 10.0));
        // Period 100 ms + 10 ms margin (capped at a tenth): a burst of 10, then 110 ms apart.
        let start = Instant::now();
        let mut waits = vec![];
        for _ in 0..12 {
            match limits
                .acquire("111111111111", "us-east-1", Operation::DescribeInstance)
                .await
            {
                Admission::Admitted(w) => waits.push(w),
                Admission::RetryAfter(d) => panic!("a 110 ms wait became a requeue of {d:?}"),
            }
        }
        // A burst of 10 goes at once, the other two wait in line, a period each.
        assert!(waits[..10].iter().all(Duration::is_zero), "{waits:?}");
        assert!(waits[10..].iter().all(|w| !w.is_zero()), "{waits:?}");
        assert_eq!(start.elapsed(), Duration::from_millis(220), "{waits:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn lifecycle_calls_never_burst_and_keep_a_margin_over_the_period() {
        let limits = RateLimits::new(RateLimitSettings {
            lifecycle_per_second: 2.0,
            other_per_second: 2.0,
            max_wait: Duration::from_secs(2),
        });
        let first = limits
            .acquire("111111111111", "us-east-1", Operation::DeleteInstance)
            .await;
        assert_eq!(first, Admission::Admitted(Duration::ZERO));
        // At 2/s a burst of 2 would be allowed for reads; deletes are a full period plus the
        // margin (530 ms) apart, and a caller that far from the slot is sent away, to come
        // back within the in-line window before it.
        match limits
            .acquire("111111111111", "us-east-1", Operation::DeleteInstance)
            .await
        {
            Admission::RetryAfter(w) => assert!(
                w >= Duration::from_millis(300) && w < Duration::from_millis(530),
                "{w:?}"
            ),
            other => panic!("{other:?}"),
        }
        let read = limits
            .acquire("111111111111", "us-east-1", Operation::DescribeInstance)
            .await;
        let second_read = limits
            .acquire("111111111111", "us-east-1", Operation::DescribeInstance)
            .await;
        assert_eq!(
            (read, second_read),
            (
                Admission::Admitted(Duration::ZERO),
                Admission::Admitted(Duration::ZERO)
            )
        );
    }
}
