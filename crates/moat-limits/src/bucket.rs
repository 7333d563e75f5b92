//! Per-minute "hold-then-settle" token bucket.
//!
//! State (all integers, so a Redis Lua script can hold it in a hash):
//! * `level`: *settled* usage in micro-units, `1 unit = 1/60_000` of a request
//!   or token; it drains continuously at `rate` units per millisecond, where
//!   `rate` is the per-minute limit, i.e. exactly `rate` per 60 s.
//! * `held`: estimates of in-flight reservations (whole units). Held capacity
//!   does **not** drain; it is converted into `level` only at settle time,
//!   with the *actual* amount, or dropped on release.
//!
//! Admission: `level + (held + cost) * 60_000 <= limit * 60_000`.

/// Bucket period in milliseconds.
pub(crate) const MINUTE_MS: u64 = 60_000;

/// Why a bucket or counter refused a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// Milliseconds until the same charge would fit.
    pub retry_ms: u64,
    /// Whole units still available now.
    pub remaining: u64,
    /// The cost alone exceeds the limit.
    pub exceeds_limit: bool,
}

/// One per-minute bucket (requests or tokens) of one account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Bucket {
    level: u64,
    held: u64,
    rate: u64,
    last_ms: i64,
}

impl Bucket {
    /// Let settled usage drain up to `now_ms` (time never runs backwards here).
    fn drain(&mut self, now_ms: i64) {
        if now_ms > self.last_ms {
            let elapsed = now_ms.abs_diff(self.last_ms);
            self.level = self.level.saturating_sub(elapsed.saturating_mul(self.rate));
            self.last_ms = now_ms;
        }
    }

    /// Check whether `cost` more fits under `limit` per minute; does not charge.
    pub(crate) fn check(&mut self, limit: u64, cost: u64, now_ms: i64) -> Result<(), Refusal> {
        self.drain(now_ms);
        self.rate = limit;
        let w = u128::from(MINUTE_MS);
        let cap = u128::from(limit) * w;
        let used = u128::from(self.level) + u128::from(self.held) * w;
        let need = used + u128::from(cost) * w;
        if need <= cap {
            return Ok(());
        }
        let remaining = (cap.saturating_sub(used) / w) as u64;
        if cost > limit || limit == 0 {
            return Err(Refusal {
                retry_ms: MINUTE_MS,
                remaining,
                exceeds_limit: true,
            });
        }
        let excess = need - cap;
        let retry = excess.div_ceil(u128::from(limit));
        Err(Refusal {
            retry_ms: u64::try_from(retry).unwrap_or(u64::MAX),
            remaining,
            exceeds_limit: false,
        })
    }

    /// Hold `cost` for an in-flight request (after a successful [`check`](Self::check)).
    pub(crate) fn hold(&mut self, cost: u64) {
        self.held = self.held.saturating_add(cost);
    }

    /// Drop the hold of `held_cost` and charge `actual` as settled usage at `now_ms`.
    pub(crate) fn settle(&mut self, held_cost: u64, actual: u64, now_ms: i64) {
        self.drain(now_ms);
        self.held = self.held.saturating_sub(held_cost);
        self.level = self.level.saturating_add(actual.saturating_mul(MINUTE_MS));
    }

    /// Drop the hold of `held_cost` without charging anything.
    pub(crate) fn release(&mut self, held_cost: u64) {
        self.held = self.held.saturating_sub(held_cost);
    }

    /// Equivalent to a fresh bucket at `now_ms` (nothing held, fully drained).
    pub(crate) fn is_idle(&self, now_ms: i64) -> bool {
        let mut b = *self;
        b.drain(now_ms);
        b.held == 0 && b.level == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_boundary_and_retry() {
        let mut b = Bucket::default();
        for _ in 0..10 {
            b.check(10, 1, 0).unwrap();
            b.hold(1);
            b.settle(1, 1, 0);
        }
        let r = b.check(10, 1, 0).unwrap_err();
        // one request drains every 6 s
        assert_eq!(r.retry_ms, 6_000);
        assert_eq!(r.remaining, 0);
        assert!(b.check(10, 1, 5_999).is_err());
        assert!(b.check(10, 1, 6_000).is_ok());
    }

    #[test]
    fn idle_after_full_drain() {
        let mut b = Bucket::default();
        b.check(100, 50, 0).unwrap();
        b.hold(50);
        assert!(!b.is_idle(1_000_000));
        b.settle(50, 30, 0);
        assert!(!b.is_idle(17_999));
        assert!(b.is_idle(18_000));
    }
}
