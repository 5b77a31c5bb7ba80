//! Token buckets: how often one caller may do one thing (start runs), refilled continuously.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One bucket per key (a token's name), `rate` per second, holding at most `rate` (one
/// second's worth of burst).
pub struct RateLimiter {
    rate: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `rate` <= 0: no limit.
    pub fn new(rate: f64) -> Self {
        RateLimiter {
            rate,
            buckets: Mutex::default(),
        }
    }

    /// Takes one unit for `key`; `Err(wait)` when its bucket is empty, with how long until it
    /// holds one again.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        self.take_at(key, Instant::now())
    }

    fn take_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = buckets.entry(key.to_owned()).or_insert((self.rate, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * self.rate;
        *tokens = (*tokens + refill).min(self.rate);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_says_how_long_to_wait_and_refills() {
        let limiter = RateLimiter::new(2.0);
        let t0 = Instant::now();
        assert!(limiter.take_at("a", t0).is_ok());
        assert!(limiter.take_at("a", t0).is_ok());
        let wait = limiter.take_at("a", t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        assert!(limiter.take_at("b", t0).is_ok(), "buckets are per key");
        assert!(
            limiter
                .take_at("a", t0 + Duration::from_millis(500))
                .is_ok()
        );
        assert!(RateLimiter::new(0.0).take("x").is_ok());
    }
}
