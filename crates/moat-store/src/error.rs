//! The crate's single error type.

use std::path::PathBuf;

/// Everything that can go wrong in the store. Each variant says what failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("cannot open database {url}: {source}")]
    Open {
        /// The path or URL that was given to [`crate::Store::open`], its password masked.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the embedded schema migrations failed.
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed; `op` names the operation.
    #[error("database error while {op}: {source}")]
    Db {
        /// What the store was doing, e.g. "inserting account".
        op: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A query did not finish within the store's client-side deadline (the database host does
    /// not answer, or is overloaded); see [`crate::StoreOptions`].
    #[error("database timed out while {op} (after {after:?})")]
    Timeout {
        /// What the store was doing.
        op: &'static str,
        /// The deadline that passed.
        after: std::time::Duration,
    },
    /// No account has this id.
    #[error("account {0:?} not found")]
    AccountNotFound(String),
    /// An account with this id already exists.
    #[error("account {0:?} already exists")]
    AccountExists(String),
    /// No API key has this id.
    #[error("API key {0:?} not found")]
    KeyNotFound(String),
    /// The key exists but is in a state that forbids the operation (e.g. rotating a revoked key).
    #[error("API key {id:?} cannot be {action}: {reason}")]
    KeyState {
        /// Key id.
        id: String,
        /// The refused operation ("rotated", "revoked").
        action: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A caller-supplied value is not acceptable.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which input.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A row read back from the database could not be decoded.
    #[error("corrupt row in table {table}: {reason}")]
    Corrupt {
        /// Table name.
        table: &'static str,
        /// What could not be decoded.
        reason: String,
    },
    /// Reading or writing a file (export) failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An encrypted audit body cannot be read: its key is missing or wrong.
    #[error("audit record seq {seq}, key {key_id:?}: {reason}")]
    AuditKey {
        /// The record.
        seq: i64,
        /// The key id stored on the record.
        key_id: String,
        /// What went wrong.
        reason: String,
    },
    /// Encoding a value as JSON failed.
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl StoreError {
    /// Whether the error means "the database is unreachable, down or too slow" (a fault of the
    /// dependency, worth a retry or a fail-open policy) rather than a bad request, a bad URL or
    /// bad data.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Timeout { .. } => true,
            StoreError::Open { source, .. } | StoreError::Db { source, .. } => {
                sqlx_unavailable(source)
            }
            _ => false,
        }
    }
}

fn sqlx_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // PostgreSQL: query cancelled (statement_timeout), admin shutdown, crash shutdown,
        // cannot connect now, too many connections. SQLite: busy (and its extended codes),
        // locked.
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            matches!(
                &*c,
                "57014" | "57P01" | "57P02" | "57P03" | "53300" | "5" | "261" | "517" | "6"
            )
        }),
        _ => false,
    }
}

/// Attach an operation name to a driver error.
pub(crate) trait DbContext<T> {
    fn db(self, op: &'static str) -> Result<T, StoreError>;
}

impl<T> DbContext<T> for Result<T, sqlx::Error> {
    fn db(self, op: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Db { op, source })
    }
}
