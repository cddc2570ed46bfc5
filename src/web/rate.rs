//! Web ← rate: requests a minute per link and per client address, counted in fixed one-minute
//! windows; over the limit a request is answered 429 with the seconds until the next window.

use std::collections::HashMap;
use std::sync::Mutex;

/// Counts per key in the current minute.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

/// Keys kept before the old windows are swept.
const SWEEP_AT: usize = 100_000;

impl RateLimiter {
    /// Counts one request for `key` at `now` (Unix seconds); `Err(seconds)` to wait when
    /// `limit` is already reached this minute.
    pub fn check(&self, key: &str, limit: u32, now: i64) -> Result<(), i64> {
        let minute = now.div_euclid(60);
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, (m, _)| *m == minute);
        }
        let entry = windows.entry(key.to_string()).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        if entry.1 >= limit {
            return Err((minute + 1) * 60 - now);
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_limit_waits_for_the_next_minute() {
        let rate = RateLimiter::default();
        assert_eq!(rate.check("t", 2, 120), Ok(()));
        assert_eq!(rate.check("t", 2, 130), Ok(()));
        assert_eq!(rate.check("t", 2, 135), Err(45));
        assert_eq!(rate.check("u", 2, 135), Ok(()), "another key has its own count");
        assert_eq!(rate.check("t", 2, 180), Ok(()), "a new minute");
    }
}
