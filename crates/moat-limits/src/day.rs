//! Fixed UTC-day token counter.
//!
//! Day number `d = floor(unix_ms / 86_400_000)`; the counter holds the day it
//! belongs to and resets lazily when a later day is observed. Reservations
//! charge their estimate immediately; settle/release adjust the counter of the
//! reservation's own day, and are dropped when that day is already closed.

use crate::bucket::Refusal;

/// Milliseconds per UTC day.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// UTC day number of a unix timestamp in milliseconds.
pub fn utc_day(now_ms: i64) -> i64 {
    now_ms.div_euclid(DAY_MS)
}

/// Token counter for one account and one UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DayCounter {
    day: i64,
    used: u64,
}

impl DayCounter {
    /// Move to the day of `now_ms` if it is later than the stored one.
    fn roll(&mut self, now_ms: i64) {
        let today = utc_day(now_ms);
        if today > self.day {
            self.day = today;
            self.used = 0;
        }
    }

    /// The day charges currently go to.
    pub(crate) fn current_day(&mut self, now_ms: i64) -> i64 {
        self.roll(now_ms);
        self.day
    }

    /// Check whether `cost` more fits under `limit` for the current day.
    pub(crate) fn check(&mut self, limit: u64, cost: u64, now_ms: i64) -> Result<(), Refusal> {
        self.roll(now_ms);
        if self.used.saturating_add(cost) <= limit {
            return Ok(());
        }
        let next_day_ms = (self.day + 1).saturating_mul(DAY_MS);
        Err(Refusal {
            retry_ms: next_day_ms.saturating_sub(now_ms).max(0) as u64,
            remaining: limit.saturating_sub(self.used),
            exceeds_limit: cost > limit,
        })
    }

    /// Charge `cost` to the current day (after a successful [`check`](Self::check)).
    pub(crate) fn charge(&mut self, cost: u64) {
        self.used = self.used.saturating_add(cost);
    }

    /// Replace a reserved amount by the actual one, if `day` is still open.
    pub(crate) fn settle(&mut self, day: i64, reserved: u64, actual: u64, now_ms: i64) {
        self.roll(now_ms);
        if day == self.day {
            self.used = self.used.saturating_sub(reserved).saturating_add(actual);
        }
    }

    /// Equivalent to a fresh counter at `now_ms`.
    pub(crate) fn is_idle(&self, now_ms: i64) -> bool {
        self.used == 0 || utc_day(now_ms) > self.day
    }
}
