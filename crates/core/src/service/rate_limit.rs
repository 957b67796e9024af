//! Fixed-window request counting per key (a client IP), in memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    limit: u32,
    window: Duration,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        RateLimiter { limit, window, windows: Mutex::new(HashMap::new()) }
    }

    /// Counts one hit; `Err(seconds until the window resets)` once the limit is passed.
    pub fn hit(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        // One IPv6 /64 is one client: a single host can hold the whole block.
        let key = match key.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            _ => key.to_owned(),
        };
        let Ok(mut windows) = self.windows.lock() else { return Ok(()) };
        if windows.len() >= 100_000 {
            // Bounded memory without a scan per request; windows restart, which errs lenient.
            windows.clear();
        }
        let entry = windows.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > self.limit {
            let left = self.window.saturating_sub(now.duration_since(entry.0));
            Err(left.as_secs().max(1))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn limits_per_key() {
        let l = RateLimiter::new(2, Duration::from_secs(60));
        assert!(l.hit("a").is_ok());
        assert!(l.hit("a").is_ok());
        assert!(l.hit("a").is_err());
        assert!(l.hit("b").is_ok());
        assert!(l.hit("2001:db8:1:2::1").is_ok());
        assert!(l.hit("2001:db8:1:2::ffff").is_ok());
        assert!(l.hit("2001:db8:1:2:abcd::9").is_err(), "one /64 is one client");
    }
}
