//! Time encoding shared by all tables: INTEGER microseconds since the Unix epoch, UTC.

use chrono::{DateTime, Utc};

use crate::StoreError;

/// Encode a timestamp as microseconds since the epoch.
pub(crate) fn to_us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Decode microseconds since the epoch.
pub(crate) fn from_us(us: i64, table: &'static str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::<Utc>::from_timestamp_micros(us).ok_or_else(|| StoreError::Corrupt {
        table,
        reason: format!("timestamp {us} out of range"),
    })
}

/// Decode an optional timestamp.
pub(crate) fn from_us_opt(
    us: Option<i64>,
    table: &'static str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    us.map(|us| from_us(us, table)).transpose()
}

/// The current time truncated to microseconds (the stored precision), so values read back
/// compare equal to the ones returned at creation.
pub(crate) fn now() -> DateTime<Utc> {
    let now = Utc::now();
    from_us(to_us(now), "-").unwrap_or(now)
}
