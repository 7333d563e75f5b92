//! Fixtures shared by the limiter test files (in-memory and Redis).
#![allow(dead_code)]

use moat_limits::{Estimate, Limits};

/// One UTC day in milliseconds.
pub const DAY: i64 = 86_400_000;
/// 2026-11-23T00:00:00Z
pub const T0: i64 = 1_795_392_000_000;

/// Only a requests-per-minute limit.
pub fn rpm(n: u32) -> Limits {
    Limits {
        requests_per_minute: Some(n),
        ..Limits::UNLIMITED
    }
}

/// Only a tokens-per-minute limit.
pub fn tpm(n: u64) -> Limits {
    Limits {
        tokens_per_minute: Some(n),
        ..Limits::UNLIMITED
    }
}

/// Only a tokens-per-day limit.
pub fn tpd(n: u64) -> Limits {
    Limits {
        tokens_per_day: Some(n),
        ..Limits::UNLIMITED
    }
}

/// An estimate of `tokens`.
pub fn est(tokens: u64) -> Estimate {
    Estimate { tokens }
}
