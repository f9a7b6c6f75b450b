//! Per-object retry backoff of failing reconciles.
//!
//! kube's `Controller` requeues a failed object after whatever `error_policy` says and keeps
//! no failure count of its own, so a flat delay would hit the API server every few seconds
//! for as long as an object keeps failing (a refused child, a missing permission). Here each
//! object's consecutive failures are counted: the first retry comes after 5 s, each next one
//! after twice as long, up to 5 minutes, with jitter so objects that failed together do not
//! retry together; a success forgets the count.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The delays of consecutive failures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// Delay after the first failure.
    pub first: Duration,
    /// No delay is longer (before jitter).
    pub cap: Duration,
    /// Up to this fraction of the delay is added at random.
    pub jitter: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            first: Duration::from_secs(5),
            cap: Duration::from_secs(300),
            jitter: 0.1,
        }
    }
}

impl Policy {
    /// The delay after the `failures`-th consecutive failure (1 for the first), with `random`
    /// in `[0, 1)` choosing the jitter.
    pub fn delay(&self, failures: u32, random: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        let base = self
            .first
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.cap);
        base.mul_f64(1.0 + self.jitter * random.clamp(0.0, 1.0))
    }
}

/// Consecutive failures per object key, and when each object last failed.
#[derive(Debug, Default)]
pub struct Backoff {
    policy: Policy,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Backoff {
    pub fn new(policy: Policy) -> Self {
        Backoff {
            policy,
            failures: Mutex::default(),
        }
    }

    /// Records a failure of `key`; the delay before retrying it.
    pub fn failed(&self, key: &str) -> Duration {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap();
        // Objects deleted while failing are never reported as succeeded: forget counts older
        // than twice the longest delay.
        let stale = self.policy.cap * 2;
        if failures.len() > 64 {
            failures.retain(|_, (_, at)| now.duration_since(*at) < stale);
        }
        let entry = failures.entry(key.to_owned()).or_insert((0, now));
        if now.duration_since(entry.1) >= stale {
            entry.0 = 0;
        }
        entry.0 += 1;
        entry.1 = now;
        self.policy.delay(entry.0, random_fraction())
    }

    /// Forgets the failures of `key`.
    pub fn succeeded(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap();
        if !failures.is_empty() {
            failures.remove(key);
        }
    }

    /// Consecutive failures of `key` so far.
    pub fn failures(&self, key: &str) -> u32 {
        self.failures
            .lock()
            .unwrap()
            .get(key)
            .map_or(0, |(count, _)| *count)
    }
}

/// A number in `[0, 1)` that differs from call to call (std's per-instance random hash keys;
/// jitter needs no better randomness).
fn random_fraction() -> f64 {
    let bits = RandomState::new().hash_one(Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_five_seconds_to_five_minutes() {
        let policy = Policy::default();
        let delays: Vec<u64> = (1..=9).map(|n| policy.delay(n, 0.0).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(policy.delay(u32::MAX, 0.0), Duration::from_secs(300));
    }

    #[test]
    fn jitter_adds_at_most_a_tenth() {
        let policy = Policy::default();
        assert_eq!(policy.delay(1, 0.5), Duration::from_millis(5250));
        assert_eq!(
            policy.delay(7, 0.999_999),
            Duration::from_secs(300).mul_f64(1.0999999)
        );
        assert_eq!(policy.delay(1, 7.0), Duration::from_millis(5500));
        for _ in 0..100 {
            let fraction = random_fraction();
            assert!((0.0..1.0).contains(&fraction), "{fraction}");
        }
    }

    #[test]
    fn failures_count_per_object_and_reset_on_success() {
        let backoff = Backoff::new(Policy {
            jitter: 0.0,
            ..Policy::default()
        });
        assert_eq!(backoff.failed("a"), Duration::from_secs(5));
        assert_eq!(backoff.failed("a"), Duration::from_secs(10));
        assert_eq!(backoff.failed("b"), Duration::from_secs(5));
        assert_eq!(backoff.failed("a"), Duration::from_secs(20));
        assert_eq!(backoff.failures("a"), 3);
        backoff.succeeded("a");
        assert_eq!(backoff.failures("a"), 0);
        assert_eq!(backoff.failed("a"), Duration::from_secs(5));
        assert_eq!(backoff.failures("b"), 1);
    }
}
