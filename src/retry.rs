//! Retry timing that both controllers use.

use std::time::Duration;

/// Spreads `d` over [0.8 d, 1.2 d) so that objects created together do not call AWS
/// together forever after.
#[must_use]
pub fn jitter(d: Duration, unit_random: f64) -> Duration {
    d.mul_f64(0.8 + 0.4 * unit_random.clamp(0.0, 1.0))
}
