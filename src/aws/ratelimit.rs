//! Client-side rate limits per account, region and operation, so the operator never causes
//! throttling on its own and one account's traffic never slows another's. Defaults follow
//! the Connect API quotas: CreateInstance and DeleteInstance 0.1/s, everything else 2/s.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::error::Operation;

/// Requests per second allowed for each class of operation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimitSettings {
    /// CreateInstance and DeleteInstance.
    pub lifecycle_per_second: f64,
    /// Every other operation.
    pub other_per_second: f64,
    /// The longest a reconcile waits in line for capacity for a non-lifecycle call; a
    /// longer wait becomes a requeue, so no reconcile holds a worker while it waits.
    /// CreateInstance and DeleteInstance never wait in line: their slots are seconds apart,
    /// and objects queued for one must not hold the workers that others need for a poll.
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

/// The outcome of asking for capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The call may go now; it waited this long.
    Admitted(Duration),
    /// No capacity within the maximum wait; ask again after this long.
    RetryAfter(Duration),
}

/// The set of limiters, created on first use of each (account, region, operation).
pub struct RateLimits {
    settings: RateLimitSettings,
    limiters: Mutex<HashMap<(String, String, Operation), Arc<DefaultDirectRateLimiter>>>,
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

    fn quota_for(&self, operation: Operation) -> Quota {
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
        Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst)
    }

    fn limiter(
        &self,
        account: &str,
        region: &str,
        operation: Operation,
    ) -> Arc<DefaultDirectRateLimiter> {
        let mut map = self
            .limiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry((account.to_owned(), region.to_owned(), operation))
            .or_insert_with(|| Arc::new(RateLimiter::direct(self.quota_for(operation))))
            .clone()
    }

    /// Waits for capacity for one call, up to the maximum wait.
    pub async fn acquire(&self, account: &str, region: &str, operation: Operation) -> Admission {
        let limiter = self.limiter(account, region, operation);
        let clock = DefaultClock::default();
        let mut waited = Duration::ZERO;
        loop {
            match limiter.check() {
                Ok(()) => return Admission::Admitted(waited),
                Err(not_until) => {
                    let wait = not_until.wait_time_from(clock.now());
                    let max_wait = if operation.is_lifecycle() {
                        Duration::ZERO
                    } else {
                        self.settings.max_wait
                    };
                    if waited + wait > max_wait {
                        return Admission::RetryAfter(wait.max(Duration::from_millis(100)));
                    }
                    tokio::time::sleep(wait).await;
                    waited += wait;
                }
            }
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

    #[tokio::test]
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

    #[tokio::test]
    async fn short_waits_are_absorbed_in_line() {
        let limits = RateLimits::new(settings(0.1, 10.0));
        // Period 100 ms + 10 ms margin (capped at a tenth): a burst of 10, then 110 ms apart.
        let mut admitted_after_wait = 0;
        for _ in 0..12 {
            match limits
                .acquire("111111111111", "us-east-1", Operation::DescribeInstance)
                .await
            {
                Admission::Admitted(w) if w > Duration::ZERO => admitted_after_wait += 1,
                Admission::Admitted(_) => {}
                Admission::RetryAfter(d) => panic!("a 110 ms wait became a requeue of {d:?}"),
            }
        }
        // A burst of 10 goes at once, the rest wait in line.
        assert_eq!(admitted_after_wait, 2);
    }

    #[tokio::test]
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
        // margin apart, and the caller is sent away instead of waiting in line.
        match limits
            .acquire("111111111111", "us-east-1", Operation::DeleteInstance)
            .await
        {
            Admission::RetryAfter(w) => assert!(w >= Duration::from_millis(520), "{w:?}"),
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
