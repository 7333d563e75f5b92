//! Plain data types shared by every [`Limiter`](crate::Limiter) backend.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Per-account limits. `None` means unlimited for that dimension.
///
/// Limits are passed on every [`reserve`](crate::Limiter::reserve) call, so a
/// configuration reload takes effect on the next request without touching the
/// limiter state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Maximum requests per rolling minute (token bucket, capacity = limit).
    pub requests_per_minute: Option<u32>,
    /// Maximum tokens per rolling minute (token bucket, capacity = limit).
    pub tokens_per_minute: Option<u64>,
    /// Maximum tokens per fixed UTC calendar day.
    pub tokens_per_day: Option<u64>,
}

impl Limits {
    /// No limits at all.
    pub const UNLIMITED: Limits = Limits {
        requests_per_minute: None,
        tokens_per_minute: None,
        tokens_per_day: None,
    };
}

/// Upper-bound token estimate for one request, reserved before forwarding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    /// Estimated total tokens (prompt + completion).
    pub tokens: u64,
}

impl Estimate {
    /// Estimate from the request body size and the requested `max_tokens`
    /// (see [`estimate_prompt_tokens`](crate::estimate_prompt_tokens)).
    pub fn from_request(body_len_bytes: usize, max_tokens: u64) -> Self {
        Estimate {
            tokens: crate::estimate_prompt_tokens(body_len_bytes).saturating_add(max_tokens),
        }
    }
}

/// Which limit a request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// [`Limits::requests_per_minute`].
    RequestsPerMinute,
    /// [`Limits::tokens_per_minute`].
    TokensPerMinute,
    /// [`Limits::tokens_per_day`].
    TokensPerDay,
    /// Not a quota: the limiter's shared store could not be reached in time and
    /// the backend is configured to fail closed (see
    /// `RedisLimiter`'s `FailMode::Closed`, feature `redis`). Map to
    /// **503 Service Unavailable**, not 429; [`Denied::is_unavailable`].
    Unavailable,
}

impl LimitKind {
    /// Stable snake_case name, for metrics labels and error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::RequestsPerMinute => "requests_per_minute",
            LimitKind::TokensPerMinute => "tokens_per_minute",
            LimitKind::TokensPerDay => "tokens_per_day",
            LimitKind::Unavailable => "limiter_unavailable",
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused reservation.
///
/// When several limits refuse at once, the one with the longest
/// `retry_after` is reported (an unsatisfiable one wins over all others), so
/// `retry_after` is the earliest instant at which *all* limits would admit
/// the same request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limit {limit} exceeded (limit {limit_value}, remaining {remaining}); retry after {retry_after:?}")]
pub struct Denied {
    /// The limit that was hit.
    pub limit: LimitKind,
    /// Exact time (millisecond resolution) until the same request would be
    /// admitted, assuming no other activity on the account and that requests
    /// still in flight settle at their estimate. Callers round *up* to whole
    /// seconds for the `Retry-After` header.
    pub retry_after: Duration,
    /// The configured value of [`Self::limit`] (requests or tokens).
    pub limit_value: u64,
    /// Capacity currently left under [`Self::limit`] (requests or tokens).
    pub remaining: u64,
    /// `true` when the estimate alone exceeds the limit, so waiting never
    /// helps (the gateway should answer 400/413 instead of 429).
    /// `retry_after` is then 60 s for a per-minute limit, or the time to the
    /// next UTC midnight for the day limit.
    pub exceeds_limit: bool,
}

impl Denied {
    /// The fail-closed refusal of a backend whose store is unreachable:
    /// [`LimitKind::Unavailable`], `limit_value` and `remaining` 0, not
    /// `exceeds_limit`.
    pub fn unavailable(retry_after: Duration) -> Self {
        Denied {
            limit: LimitKind::Unavailable,
            retry_after,
            limit_value: 0,
            remaining: 0,
            exceeds_limit: false,
        }
    }

    /// `true` when the limiter could not decide (store down or slow, fail-closed
    /// mode) rather than a quota being exhausted: answer 503, not 429.
    pub fn is_unavailable(&self) -> bool {
        self.limit == LimitKind::Unavailable
    }

    /// `retry_after` rounded up to whole seconds, as sent in `Retry-After`.
    pub fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after;
        d.as_secs() + u64::from(d.subsec_nanos() > 0)
    }
}

/// Which dimensions a [`Reservation`] was charged against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Charged {
    /// A request was taken from the requests-per-minute bucket.
    pub requests_per_minute: bool,
    /// Tokens were taken from the tokens-per-minute bucket.
    pub tokens_per_minute: bool,
    /// Tokens were added to the day counter of [`Reservation::day`].
    pub tokens_per_day: bool,
}

/// Capacity held for one in-flight request.
///
/// Must be consumed by exactly one of [`settle`](crate::Limiter::settle) or
/// [`release`](crate::Limiter::release). Dropping it leaks the held capacity
/// (the per-minute hold and the day charge stay in place), hence `#[must_use]`.
#[must_use = "a Reservation must be settled or released"]
#[derive(Debug, PartialEq, Eq)]
pub struct Reservation {
    account: Arc<str>,
    tokens: u64,
    day: i64,
    charged: Charged,
    generation: u64,
}

impl Reservation {
    /// Build a reservation. Only limiter backends should call this.
    pub fn new(
        account: Arc<str>,
        tokens: u64,
        day: i64,
        charged: Charged,
        generation: u64,
    ) -> Self {
        Reservation {
            account,
            tokens,
            day,
            charged,
            generation,
        }
    }

    /// The account the capacity was reserved for.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// Tokens reserved (the estimate).
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// UTC day number (`floor(unix_ms / 86_400_000)`) whose counter was charged;
    /// settle/release adjust this day only.
    pub fn day(&self) -> i64 {
        self.day
    }

    /// Which limits were charged (those set at reserve time).
    pub fn charged(&self) -> Charged {
        self.charged
    }

    /// Backend-specific incarnation id of the account state; lets a backend
    /// ignore a settle for state that was evicted and re-created meanwhile.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}
