//! Retry delays of failed deletes: exponential, jittered, capped.

use std::time::Duration;

use rand::Rng;

/// The delay before the next attempt of a row that has failed `attempts`
/// times: `base × 2^(attempts-1)`, capped at `max`, then "equal jitter"
/// (a uniform pick in the upper half of that).
///
/// Jitter spreads the retries of rows that failed together (an S3 outage fails
/// whole batches) so they do not all come back in the same second; keeping
/// the lower half out means each attempt still waits at least as long as the
/// previous one could have, so delays grow.
pub fn delay(attempts: u32, base: Duration, max: Duration) -> Duration {
    let exponent = attempts.saturating_sub(1).min(32);
    let full = base
        .checked_mul(1u32 << exponent.min(31))
        .unwrap_or(max)
        .min(max);
    let half = full / 2;
    let jitter = rand::rng().random_range(0.0..=1.0);
    half + half.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(30);
    const MAX: Duration = Duration::from_secs(3600);

    #[test]
    fn delays_double_within_their_jitter_band() {
        for attempts in 1..=6 {
            let full = BASE * (1 << (attempts - 1));
            for _ in 0..100 {
                let d = delay(attempts, BASE, MAX);
                assert!(d >= full / 2 && d <= full, "attempt {attempts}: {d:?}");
            }
        }
    }

    #[test]
    fn delays_are_capped() {
        for attempts in [8, 12, 40, u32::MAX] {
            let d = delay(attempts, BASE, MAX);
            assert!(d <= MAX && d >= MAX / 2, "attempt {attempts}: {d:?}");
        }
    }

    #[test]
    fn first_attempt_waits_about_the_base() {
        let d = delay(1, BASE, MAX);
        assert!(d >= BASE / 2 && d <= BASE);
        assert_eq!(delay(0, Duration::ZERO, MAX), Duration::ZERO);
    }
}
