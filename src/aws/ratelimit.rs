//! Client-side rate limits per account, region and operation, so the operator never causes
//! throttling on its own and one account's traffic never slows another's. Defaults follow
//! the Connect API quotas: CreateInstance and DeleteInstance 0.1/s, everything else 2/s.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

use super::client::lock;
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
    /// [`LIFECYCLE_IN_LINE`] before their slot: their slots are seconds apart, and objects
    /// queued for one must not hold the workers that others need for a poll.
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

/// How close to its slot a CreateInstance or DeleteInstance caller waits in line, so that
/// the slot is taken the moment it opens. A caller further from its slot is given a place
/// in line (a reservation) and sent away, to come back within this window before it: a
/// requeue alone would take the slot late by the requeue's jitter and scheduling, and with
/// a burst of one every late start is throughput lost for good.
pub const LIFECYCLE_IN_LINE: Duration = Duration::from_millis(100);

/// How far before its slot a lifecycle caller sent away is asked to come back; the
/// requeue adds up to [`SLOT_JITTER`], so it comes back 25–75 ms before the slot, inside
/// the in-line window.
const COME_BACK_BEFORE: Duration = Duration::from_millis(75);

/// The most a requeue for a limiter slot adds at random.
pub const SLOT_JITTER: Duration = Duration::from_millis(50);

/// The shortest requeue the limiter asks for.
const MIN_RETRY: Duration = Duration::from_millis(100);

/// How long after its slot a reservation nobody came for is given up (its holder was
/// deleted, changed its mind, or came too late: it then queues again at the end).
const NO_SHOW: Duration = Duration::from_secs(2);

/// The outcome of asking for capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The call may go now; it waited this long.
    Admitted(Duration),
    /// No capacity within the maximum wait; ask again after this long.
    RetryAfter(Duration),
}

/// One (account, region, operation)'s limiter. Reads use a token bucket; CreateInstance
/// and DeleteInstance use a line of reservations instead ([`Line`]).
struct Bucket {
    limiter: Limiter,
    clock: TokioClock,
    period: Duration,
    line: Mutex<Line>,
}

/// The line for one bucket's CreateInstance or DeleteInstance slots, one period apart.
/// Every caller that cannot go now gets the next free slot, in the order they asked, and
/// keeps it when it comes back: a caller waiting for its slot is requeued once, for that
/// slot, and is not woken for (nor competes for) the slots before it.
#[derive(Debug, Default)]
struct Line {
    /// When the last call was sent (or will be, by the caller sleeping in `pace`).
    last_sent: Option<Instant>,
    /// The last slot handed to a caller that was admitted.
    last_slot: Option<Instant>,
    /// Slots promised to callers sent away, in order: (holder, slot).
    reserved: std::collections::VecDeque<(String, Instant)>,
}

impl Line {
    /// The earliest a call could leave now: a period after the last slot handed out, and
    /// no more than [`pace_absorbs`] before a period after the last send. The time between
    /// a slot and its send (the ledger write) is then not lost on every call: the next slot
    /// comes a period after the previous one, and `pace` holds its caller the few
    /// milliseconds until a period after the previous send. A send far later than its
    /// slot still moves the next slot, so its caller is sent away rather than held.
    fn earliest(&self, now: Instant, period: Duration) -> Instant {
        let after_slot = self.last_slot.map(|at| at + period);
        let after_send = self.last_sent.map(|at| {
            (at + period)
                .checked_sub(pace_absorbs(period))
                .unwrap_or(at)
        });
        [after_slot, after_send]
            .into_iter()
            .flatten()
            .fold(now, Instant::max)
    }

    /// The slot for `holder`: the one it holds (moved later if the previous call left
    /// late), or a new one after every reservation. `Ok` when it is within the in-line
    /// window (the reservation is used up), `Err` with the slot otherwise (reserved).
    fn slot_for(
        &mut self,
        holder: &str,
        now: Instant,
        period: Duration,
    ) -> Result<Instant, Instant> {
        self.reserved.retain(|(_, at)| *at + NO_SHOW > now);
        let earliest = self.earliest(now, period);
        if let Some(place) = self.reserved.iter().position(|(h, _)| h == holder) {
            let at = self.reserved[place].1.max(earliest);
            if at > now + LIFECYCLE_IN_LINE {
                self.reserved[place].1 = at;
                return Err(at);
            }
            self.reserved.remove(place);
            self.last_slot = Some(at);
            return Ok(at);
        }
        let at = self
            .reserved
            .back()
            .map_or(earliest, |(_, last)| earliest.max(*last + period));
        if at > now + LIFECYCLE_IN_LINE {
            self.reserved.push_back((holder.to_owned(), at));
            return Err(at);
        }
        self.last_slot = Some(at);
        Ok(at)
    }
}

/// How much of the wait for a period after the previous send `pace` may absorb: a quarter
/// of the period, at most the in-line window.
fn pace_absorbs(period: Duration) -> Duration {
    (period / 4).min(LIFECYCLE_IN_LINE)
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
                    line: Mutex::new(Line::default()),
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
            let mut line = lock(&bucket.line);
            let now = Instant::now();
            let at = line
                .last_sent
                .map_or(now, |sent| (sent + bucket.period).max(now));
            line.last_sent = Some(at);
            at - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Waits for capacity for one call of `holder` (an object's uid), up to the maximum
    /// wait. CreateInstance and DeleteInstance wait only within the in-line window before
    /// their slot; a caller further away keeps a place in line and is told when to come
    /// back for it.
    pub async fn acquire(
        &self,
        account: &str,
        region: &str,
        operation: Operation,
        holder: &str,
    ) -> Admission {
        let bucket = self.bucket(account, region, operation);
        if operation.is_lifecycle() {
            let now = Instant::now();
            let slot = lock(&bucket.line).slot_for(holder, now, bucket.period);
            return match slot {
                Ok(at) => {
                    tokio::time::sleep_until(at).await;
                    Admission::Admitted(at.saturating_duration_since(now))
                }
                Err(at) => Admission::RetryAfter(just_before(at - now)),
            };
        }
        let mut waited = Duration::ZERO;
        loop {
            let wait = match bucket.limiter.check() {
                Ok(()) => return Admission::Admitted(waited),
                Err(not_until) => not_until.wait_time_from(bucket.clock.now()),
            };
            if waited + wait > self.settings.max_wait {
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

    const ACCOUNT: &str = "111111111111";
    const REGION: &str = "us-east-1";

    fn settings(lifecycle: f64, other: f64) -> RateLimitSettings {
        RateLimitSettings {
            lifecycle_per_second: lifecycle,
            other_per_second: other,
            max_wait: Duration::from_millis(300),
        }
    }

    async fn ask(limits: &RateLimits, operation: Operation, holder: &str) -> Admission {
        limits.acquire(ACCOUNT, REGION, operation, holder).await
    }

    fn retry_after(admission: Admission) -> Duration {
        match admission {
            Admission::RetryAfter(d) => d,
            other => panic!("expected to be sent away, was {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn lifecycle_calls_get_one_slot_then_a_retry_after() {
        let limits = RateLimits::new(settings(0.1, 2.0));
        let op = Operation::CreateInstance;
        assert_eq!(
            ask(&limits, op, "a").await,
            Admission::Admitted(Duration::ZERO)
        );
        let d = retry_after(ask(&limits, op, "b").await);
        assert!(d > Duration::from_secs(9), "{d:?}");
        // Another account, another region and another operation have their own buckets.
        for (account, region, op) in [
            ("222222222222", REGION, op),
            (ACCOUNT, "eu-west-2", op),
            (ACCOUNT, REGION, Operation::DeleteInstance),
        ] {
            assert!(matches!(
                limits.acquire(account, region, op, "b").await,
                Admission::Admitted(_)
            ));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_callers_keep_their_place_and_are_told_their_own_slot() {
        // Period 10 s + 2% + 20 ms = 10.22 s.
        let limits = RateLimits::new(settings(0.1, 2.0));
        let op = Operation::DeleteInstance;
        let period = Duration::from_millis(10_220);
        assert_eq!(
            ask(&limits, op, "a").await,
            Admission::Admitted(Duration::ZERO)
        );
        // Three more callers, each given the next slot in the order they asked: come back
        // just before slot k, k periods from now, and not for the slots before it.
        let waits: Vec<Duration> = [
            retry_after(ask(&limits, op, "b").await),
            retry_after(ask(&limits, op, "c").await),
            retry_after(ask(&limits, op, "d").await),
        ]
        .to_vec();
        for (k, wait) in waits.iter().enumerate() {
            let slot = period * (k as u32 + 1);
            assert!(
                *wait < slot && *wait >= slot - Duration::from_millis(100),
                "caller {k}: {wait:?} for a slot at {slot:?}"
            );
        }
        // Asking again early does not lose (or move) the place.
        tokio::time::advance(Duration::from_secs(1)).await;
        let again = retry_after(ask(&limits, op, "c").await);
        assert_eq!(again, waits[1] - Duration::from_secs(1));
        // Each comes back when told and is admitted, in order, a period apart.
        let start = Instant::now() - Duration::from_secs(1);
        for (holder, wait) in ["b", "c", "d"].into_iter().zip(&waits) {
            let until = (start + *wait).saturating_duration_since(Instant::now());
            tokio::time::advance(until).await;
            match ask(&limits, op, holder).await {
                Admission::Admitted(w) => assert!(w <= LIFECYCLE_IN_LINE, "{holder}: {w:?}"),
                other => panic!("{holder} was sent away at its slot: {other:?}"),
            }
            limits.pace(ACCOUNT, REGION, op).await;
        }
        assert_eq!(Instant::now() - start, period * 3);
        // A newcomer queues behind them.
        let d = retry_after(ask(&limits, op, "e").await);
        assert!(d > period - Duration::from_millis(100), "{d:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_nobody_comes_for_is_given_up() {
        let limits = RateLimits::new(settings(1.0, 2.0));
        let op = Operation::CreateInstance;
        assert!(matches!(
            ask(&limits, op, "a").await,
            Admission::Admitted(_)
        ));
        let _ = retry_after(ask(&limits, op, "gone").await);
        // The holder never comes back; well after its slot, the next caller is admitted
        // at once instead of queueing behind it.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            ask(&limits, op, "b").await,
            Admission::Admitted(Duration::ZERO)
        );
        // The one that came too late queues again at the end.
        let d = retry_after(ask(&limits, op, "gone").await);
        assert!(d > Duration::from_millis(800), "{d:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_in_the_window_before_its_slot_waits_for_it() {
        // Period 50 ms + 5 ms margin: the next slot is within the in-line window.
        let limits = RateLimits::new(settings(20.0, 2.0));
        let op = Operation::CreateInstance;
        assert_eq!(
            ask(&limits, op, "a").await,
            Admission::Admitted(Duration::ZERO)
        );
        limits.pace(ACCOUNT, REGION, op).await;
        let start = Instant::now();
        match ask(&limits, op, "b").await {
            // It waited in line for the slot and took it, rather than being requeued.
            Admission::Admitted(waited) => assert_eq!(waited, Duration::from_millis(55)),
            other => panic!("the caller in line was sent away: {other:?}"),
        }
        assert_eq!(start.elapsed(), Duration::from_millis(55));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lifecycle_caller_behind_a_late_send_is_sent_away_not_held() {
        let limits = RateLimits::new(settings(10.0, 2.0));
        let op = Operation::DeleteInstance;
        let bucket = limits.bucket(ACCOUNT, REGION, op);
        // The previous delete left late: the next may not leave for another 2 s.
        bucket.line.lock().unwrap().last_sent = Some(Instant::now() + Duration::from_secs(2));
        let w = retry_after(ask(&limits, op, "a").await);
        assert!(w > Duration::from_secs(1), "{w:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_time_between_a_slot_and_its_send_is_not_lost_on_every_call() {
        // 2/s: 500 ms + 30 ms margin. Each caller writes its ledger entry for 40 ms between
        // its slot and its send; sends stay a period apart, not a period plus 40 ms.
        let limits = RateLimits::new(settings(2.0, 2.0));
        let op = Operation::DeleteInstance;
        let start = Instant::now();
        let mut sends = Vec::new();
        for holder in ["a", "b", "c", "d"] {
            loop {
                match ask(&limits, op, holder).await {
                    Admission::Admitted(_) => break,
                    Admission::RetryAfter(w) => tokio::time::sleep(w).await,
                }
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
            limits.pace(ACCOUNT, REGION, op).await;
            sends.push(start.elapsed());
        }
        let gaps: Vec<_> = sends.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(
            gaps,
            vec![Duration::from_millis(530); 3],
            "sends at {sends:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn lifecycle_calls_leave_a_period_apart_however_late_the_previous_one_left() {
        let limits = RateLimits::new(settings(10.0, 2.0));
        let op = Operation::CreateInstance;
        let first = Instant::now();
        limits.pace(ACCOUNT, REGION, op).await;
        assert_eq!(first.elapsed(), Duration::ZERO, "the first leaves at once");
        // The next slot's holder was quick with its ledger write: it still leaves a period
        // (100 ms + 10 ms margin) after the previous call, and not later.
        limits.pace(ACCOUNT, REGION, op).await;
        assert_eq!(first.elapsed(), Duration::from_millis(110));
        // Another bucket is not held back.
        let other = Instant::now();
        limits.pace("222222222222", REGION, op).await;
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
        let (_, period) = limits.quota_and_period(Operation::CreateInstance);
        assert_eq!(period, Duration::from_millis(10_220));
    }

    #[tokio::test(start_paused = true)]
    async fn short_waits_are_absorbed_in_line() {
        let limits = RateLimits::new(settings(0.1, 10.0));
        // Period 100 ms + 10 ms margin (capped at a tenth): a burst of 10, then 110 ms apart.
        let start = Instant::now();
        let mut waits = vec![];
        for _ in 0..12 {
            match ask(&limits, Operation::DescribeInstance, "a").await {
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
        let op = Operation::DeleteInstance;
        assert_eq!(
            ask(&limits, op, "a").await,
            Admission::Admitted(Duration::ZERO)
        );
        // At 2/s a burst of 2 would be allowed for reads; deletes are a full period plus the
        // margin (530 ms) apart, and a caller that far from the slot is sent away, to come
        // back within the in-line window before it.
        let w = retry_after(ask(&limits, op, "b").await);
        assert!(
            w >= Duration::from_millis(300) && w < Duration::from_millis(530),
            "{w:?}"
        );
        let read = ask(&limits, Operation::DescribeInstance, "a").await;
        let second_read = ask(&limits, Operation::DescribeInstance, "b").await;
        assert_eq!(
            (read, second_read),
            (
                Admission::Admitted(Duration::ZERO),
                Admission::Admitted(Duration::ZERO)
            )
        );
    }
}
