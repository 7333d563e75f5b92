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
//! single-replica backend. A shared-store backend implements the same three
//! steps as one atomic script each over the integer state described below.
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
//! # Shared-store port
//!
//! Per account, one hash with `rq_level, rq_held, rq_rate, rq_last,
//! tk_level, tk_held, tk_rate, tk_last, day, day_used, in_flight`; each of
//! reserve / settle / release is one Lua script (`EVALSHA` on that key) doing
//! exactly the transitions of the private `bucket`, `day` and `account`
//! modules, with `now_ms` passed as an argument, and a TTL of about
//! 1 day + 1 minute replacing the in-process eviction. The in-process
//! `generation` check maps to a hash field set on creation.

#![warn(missing_docs)]

mod account;
mod bucket;
mod day;
mod estimate;
mod guard;
mod limiter;
mod memory;
mod types;

pub use day::utc_day;
pub use estimate::estimate_prompt_tokens;
pub use guard::{unix_now_ms, ReservationGuard};
pub use limiter::Limiter;
pub use memory::{EvictionStats, InMemoryConfig, InMemoryLimiter};
pub use types::{Charged, Denied, Estimate, LimitKind, Limits, Reservation};
