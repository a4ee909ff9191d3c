//! A fixed-window rate limit per source address, for answers sent to whatever address a
//! datagram claims.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// At most `per_source` events per source address and `total` in all in each `window` (fixed
/// windows: the budgets refill at once, so a sliding window can see up to twice as many).
#[derive(Debug)]
pub(crate) struct RateLimit {
    window: Duration,
    per_source: u32,
    total: u32,
    started: Option<Instant>,
    used: HashMap<IpAddr, u32>,
    used_total: u32,
}

impl RateLimit {
    pub(crate) fn new(per_source: u32, total: u32, window: Duration) -> Self {
        Self { window, per_source, total, started: None, used: HashMap::new(), used_total: 0 }
    }

    /// Whether one more event from `source` is allowed at `now` (and counts it if so).
    pub(crate) fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        let fresh = self.started.is_none_or(|s| now.saturating_duration_since(s) >= self.window);
        if fresh {
            self.started = Some(now);
            self.used.clear();
            self.used_total = 0;
        }
        if self.used_total >= self.total {
            return false;
        }
        let used = self.used.entry(source).or_insert(0);
        if *used >= self.per_source {
            return false;
        }
        *used += 1;
        self.used_total += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_allows_its_budgets_per_window_then_refills() {
        let t0 = Instant::now();
        let (a, b, c): (IpAddr, IpAddr, IpAddr) =
            ([10, 0, 0, 1].into(), [10, 0, 0, 2].into(), [10, 0, 0, 3].into());
        let mut limit = RateLimit::new(3, 5, Duration::from_secs(1));
        assert_eq!((0..10).filter(|_| limit.allow(a, t0)).count(), 3, "per source");
        assert_eq!((0..10).filter(|_| limit.allow(b, t0)).count(), 2, "the total caps it");
        assert!(!limit.allow(c, t0 + Duration::from_millis(999)));
        let t1 = t0 + Duration::from_secs(1);
        assert!(limit.allow(a, t1), "a new window refills");
        assert_eq!((0..10).filter(|_| limit.allow(a, t1)).count(), 2);
        assert_eq!((0..10).filter(|_| limit.allow(c, t1)).count(), 2);
    }
}
