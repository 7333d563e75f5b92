//! The complete limiter state of one account, and the three steps applied to it.
//!
//! Every function here is a pure state transition over integers, which is what
//! a shared-store backend runs as one atomic script per step.

use std::sync::Arc;
use std::time::Duration;

use crate::bucket::{Bucket, Refusal};
use crate::day::DayCounter;
use crate::types::{Charged, Denied, Estimate, LimitKind, Limits, Reservation};

/// Limiter state of one account.
#[derive(Debug)]
pub(crate) struct AccountState {
    pub(crate) key: Arc<str>,
    pub(crate) generation: u64,
    pub(crate) last_seen_ms: i64,
    pub(crate) in_flight: u64,
    requests: Bucket,
    tokens: Bucket,
    day: DayCounter,
}

/// Keep the refusal with the highest priority: unsatisfiable first, then the
/// longest wait.
fn worse(a: Option<Denied>, b: Denied) -> Denied {
    match a {
        Some(a) if (a.exceeds_limit, a.retry_after) >= (b.exceeds_limit, b.retry_after) => a,
        _ => b,
    }
}

fn denied(limit: LimitKind, limit_value: u64, r: Refusal) -> Denied {
    Denied {
        limit,
        retry_after: Duration::from_millis(r.retry_ms),
        limit_value,
        remaining: r.remaining,
        exceeds_limit: r.exceeds_limit,
    }
}

impl AccountState {
    /// A fresh state, equivalent to "never seen".
    pub(crate) fn new(key: Arc<str>, generation: u64, now_ms: i64) -> Self {
        AccountState {
            key,
            generation,
            last_seen_ms: now_ms,
            in_flight: 0,
            requests: Bucket::default(),
            tokens: Bucket::default(),
            day: DayCounter::default(),
        }
    }

    /// Check every configured limit; charge all of them or none.
    pub(crate) fn reserve(
        &mut self,
        limits: &Limits,
        estimate: Estimate,
        now_ms: i64,
    ) -> Result<Reservation, Denied> {
        self.last_seen_ms = self.last_seen_ms.max(now_ms);
        let cost = estimate.tokens;
        let mut refused: Option<Denied> = None;
        if let Some(l) = limits.requests_per_minute {
            if let Err(r) = self.requests.check(u64::from(l), 1, now_ms) {
                refused = Some(worse(
                    refused,
                    denied(LimitKind::RequestsPerMinute, l.into(), r),
                ));
            }
        }
        if let Some(l) = limits.tokens_per_minute {
            if let Err(r) = self.tokens.check(l, cost, now_ms) {
                refused = Some(worse(refused, denied(LimitKind::TokensPerMinute, l, r)));
            }
        }
        if let Some(l) = limits.tokens_per_day {
            if let Err(r) = self.day.check(l, cost, now_ms) {
                refused = Some(worse(refused, denied(LimitKind::TokensPerDay, l, r)));
            }
        }
        if let Some(d) = refused {
            return Err(d);
        }
        let charged = Charged {
            requests_per_minute: limits.requests_per_minute.is_some(),
            tokens_per_minute: limits.tokens_per_minute.is_some(),
            tokens_per_day: limits.tokens_per_day.is_some(),
        };
        if charged.requests_per_minute {
            self.requests.hold(1);
        }
        if charged.tokens_per_minute {
            self.tokens.hold(cost);
        }
        if charged.tokens_per_day {
            self.day.charge(cost);
        }
        self.in_flight += 1;
        let day = self.day.current_day(now_ms);
        Ok(Reservation::new(
            self.key.clone(),
            cost,
            day,
            charged,
            self.generation,
        ))
    }

    /// Replace the reservation's estimate by the real usage.
    pub(crate) fn settle(&mut self, r: &Reservation, actual_tokens: u64, now_ms: i64) {
        self.last_seen_ms = self.last_seen_ms.max(now_ms);
        let c = r.charged();
        if c.requests_per_minute {
            self.requests.settle(1, 1, now_ms);
        }
        if c.tokens_per_minute {
            self.tokens.settle(r.tokens(), actual_tokens, now_ms);
        }
        if c.tokens_per_day {
            self.day.settle(r.day(), r.tokens(), actual_tokens, now_ms);
        }
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Undo the reservation entirely (the request slot is returned too).
    pub(crate) fn release(&mut self, r: &Reservation, now_ms: i64) {
        self.last_seen_ms = self.last_seen_ms.max(now_ms);
        let c = r.charged();
        if c.requests_per_minute {
            self.requests.release(1);
        }
        if c.tokens_per_minute {
            self.tokens.release(r.tokens());
        }
        if c.tokens_per_day {
            self.day.settle(r.day(), r.tokens(), 0, now_ms);
        }
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Dropping this state now would lose nothing: it behaves like a fresh one.
    pub(crate) fn is_idle(&self, now_ms: i64) -> bool {
        self.in_flight == 0
            && self.requests.is_idle(now_ms)
            && self.tokens.is_idle(now_ms)
            && self.day.is_idle(now_ms)
    }
}
