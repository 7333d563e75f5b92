//! Per-account rate limiting for the moat gateway.
//!
//! Three limits per account, each optional ([`Limits`]): requests per minute,
//! tokens per minute and tokens per UTC day.
//!
//! # Protocol: estimate, then settle
//!
//! ```text
//! reserve(account, limits, Estimate { prompt estimate + max_tokens }, now)
//!     ├─ Err(Denied { limit, retry_after, .. })  -> 429 (or 400 if exceeds_limit)
//!     └─ Ok(reservation) -> forward upstream
//!           ├─ response done  -> settle(reservation, real_usage, now)
//!           └─ nothing generated (upstream error / disconnect) -> release(reservation, now)
//! ```
//!
//! Wrap the reservation in a [`ReservationGuard`] so that a dropped handler
//! or body stream (client disconnect) still settles/releases it.
//!
//! The gateway holds an `Arc<dyn Limiter>`; [`InMemoryLimiter`] is the
//! single-replica backend; `RedisLimiter` (feature `redis`, see below) is the
//! shared one and implements the same three steps as one atomic Lua script
//! each over the integer state described below.
//!
//! # Algorithm
//!
//! **Per-minute limits** (requests and tokens) are *hold-then-settle token
//! buckets* with continuous refill, capacity = the per-minute limit and refill
//! = limit per 60 s (a burst of the full limit is allowed from an idle
//! account). Each bucket keeps
//! * `level`: settled usage in units of 1/60 000 (so refill is exactly `limit`
//!   units per millisecond, integer arithmetic only), draining continuously;
//! * `held`: the estimates of in-flight reservations, which do **not** drain.
//!
//! A charge of `c` is admitted iff `level + (held + c)·60 000 ≤ limit·60 000`.
//! `reserve` adds `c` to `held`; `settle` removes `c` from `held` and adds the
//! *actual* usage to `level` at settle time; `release` only removes `c` from
//! `held`. The request bucket works the same with `c = 1`.
//!
//! **Tokens per day** is a fixed UTC-day window: a counter tagged with day
//! number `floor(unix_ms / 86 400 000)`, reset lazily when a later day is seen.
//! `reserve` adds the estimate; `settle` replaces it with the actual usage and
//! `release` removes it — in the reservation's own day only (see
//! [`Reservation::day`]); adjustments for a day that has already closed are
//! dropped.
//!
//! # Exactness
//!
//! * **No overshoot under any concurrency**: check-and-charge of all limits is
//!   one critical section per account (all or nothing), and every admitted
//!   reservation counts in full until it is settled, so the sum of in-flight
//!   estimates plus settled usage never exceeds a limit at admission time.
//!   Usage can exceed a limit only by what requests actually consumed beyond
//!   their own estimate (charged at settle, which then delays later requests).
//! * **Accounting equals real usage after settle**: holds are plain sums that
//!   are removed exactly; the minute buckets then contain exactly the actual
//!   usage (charged at settle time, which is conservative for long streams),
//!   and the day counter contains exactly the actual usage of that day.
//! * **Retry-After**: for a bucket, `ceil(excess / limit)` ms where `excess`
//!   is how far `level + (held + c)·60 000` is above capacity; for the day,
//!   the time to the next UTC midnight. When several limits refuse, the
//!   largest wait is reported, so it is the earliest time at which all limits
//!   admit the same request if nothing else happens and in-flight requests
//!   settle at their estimate. It is exact to the millisecond; callers round
//!   up to whole seconds ([`Denied::retry_after_secs`]).
//! * Arithmetic is integer only (`u128` for intermediate products). For a
//!   Lua/Redis port, all stored values stay below 2^53 as long as limits stay
//!   below 1.5·10^11 per minute.
//!
//! # Redis backend (feature `redis`)
//!
//! [`RedisLimiter`] implements the same [`Limiter`] over Redis so that
//! several gateway replicas share exact quotas. It is a port, not an
//! approximation: same state, same integer arithmetic, same admission rule,
//! same `Retry-After` and day-window rules, so a replica on Redis decides
//! exactly like a single [`InMemoryLimiter`] (a test replays random
//! operation sequences against both and compares every answer).
//!
//! * **Layout**: one hash per account, key `key_prefix + account` (default
//!   prefix `moat:lim:`), fields `rq_level, rq_held, rq_rate, rq_last,
//!   tk_level, tk_held, tk_rate, tk_last, day, day_used, in_flight, gen`.
//!   Every value is an integer below 2^53 (exact in Lua's doubles); per-minute
//!   limits, estimates and usage are clamped to [`MAX_MINUTE_VALUE`]
//!   (1.5·10^11), day limits to [`MAX_DAY_LIMIT`].
//! * **Scripts**: reserve, settle and release are one Lua script each (the
//!   transitions of the private `bucket`, `day` and `account` modules), run
//!   with `EVALSHA`: **one round trip per call**, atomic per account, so
//!   concurrent replicas never overshoot. A request with no limit configured
//!   makes no round trip at all.
//! * **Generation**: `gen` is set when the hash is created; a settle or
//!   release whose [`Reservation::generation`] differs (the state expired or
//!   was re-created meanwhile) is ignored, as in the in-memory backend.
//! * **Expiry**: every write sets a TTL = the time until the state equals a
//!   fresh one (buckets drained, day over) plus `ttl_slack` (60 s), and at
//!   least `in_flight_ttl` (1 h) while reservations are in flight; capped at
//!   [`MAX_TTL`]. This replaces the in-process eviction.
//! * **Clock**: `now_ms` comes from each replica. A `now_ms` older than the
//!   stored one never refills (drain only moves forward and the stored time
//!   keeps the newest value) and never moves the day back (the counter only
//!   rolls to a later day); a settle for a day that is no longer current is
//!   dropped. Skew can only make decisions stricter by the skew. Nothing in
//!   the scripts can fail on odd input; a malformed reply is a fault.
//! * **Faults**: every call has a deadline ([`RedisLimiterConfig::timeout`],
//!   50 ms). On a Redis error or timeout, `reserve` follows [`FailMode`]:
//!   `Open` (default) admits without counting; `Closed` refuses with
//!   [`Denied::unavailable`] ([`LimitKind::Unavailable`], which the gateway
//!   maps to 503, not 429). Each fault increments the `metrics` counter
//!   [`ERRORS_METRIC`] (`moat_limiter_redis_errors_total{op, cause}`) and
//!   [`RedisLimiter::error_count`]. A command that misses the deadline still
//!   completes in the background; a reservation granted that late is released
//!   again, so timeouts do not leak capacity. Settle/release failures are
//!   counted and dropped. The connection is made lazily and re-made after
//!   failures; [`RedisLimiter::connect`] checks Redis and preloads the scripts.
//!
//! `docs/limits.md` has the scripts' arguments, replies and measured latency.

#![warn(missing_docs)]
// The crate docs link to the Redis items, which exist with the feature only.
#![cfg_attr(not(feature = "redis"), allow(rustdoc::broken_intra_doc_links))]

mod account;
mod bucket;
mod day;
mod estimate;
mod guard;
mod limiter;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod types;

pub use day::utc_day;
pub use estimate::estimate_prompt_tokens;
pub use guard::{unix_now_ms, ReservationGuard};
pub use limiter::Limiter;
pub use memory::{EvictionStats, InMemoryConfig, InMemoryLimiter};
#[cfg(feature = "redis")]
pub use redis::{
    FailMode, RedisLimiter, RedisLimiterConfig, RedisLimiterError, ERRORS_METRIC, MAX_DAY_LIMIT,
    MAX_MINUTE_VALUE, MAX_TTL,
};
pub use types::{Charged, Denied, Estimate, LimitKind, Limits, Reservation};
