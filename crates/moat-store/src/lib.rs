//! moat-store: persistence for the moat gateway.
//!
//! * accounts and API keys ([`Store::create_account`], [`Store::create_key`], ...),
//! * request authentication with a concurrent cache ([`KeyAuthenticator`]),
//! * a hash-chained audit log of every exchange, written in batches by a background task
//!   ([`AuditWriter`], [`AuditHandle`], [`Store::verify_audit`]),
//! * export of the audit log in the traffic log format of `DESIGN.md`
//!   ([`Store::export_traffic`], [`Store::export_accounts`]).
//!
//! The only backend today is SQLite (via sqlx, WAL mode, migrations embedded in the binary).
//! All SQL lives in this crate behind [`Store`] and sticks to portable types (TEXT, INTEGER),
//! so that a PostgreSQL backend can be added later without changing the public API.
//!
//! # API keys
//!
//! A token looks like `moat_<key id>_<secret>`, e.g. `moat_key_3kd9Q2mZ7xPa_Vb4...`. The key id
//! (`key_` + 12 base62 characters) is public: it appears in logs, the audit log and exports.
//! The secret is 43 base62 characters drawn from the operating system's CSPRNG (≈ 256 bits).
//! Only `SHA-256(key id || 0x00 || secret)` is stored. A fast unsalted hash is adequate here
//! because the secret is high-entropy random data, not a human password: brute force over
//! 2^256 is infeasible whatever the hash cost. The secret is returned once, at creation or
//! rotation, and never logged.
//!
//! # Wiring
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use moat_store::*;
//!
//! let store = Store::open("moat.db").await?;
//! let acct = store
//!     .create_account(NewAccount { name: "Example".into(), tier: "free".into(), ..Default::default() })
//!     .await?;
//! let (_key, token) = store.create_key(&acct.id, KeySpec::default()).await?;
//!
//! let auth = KeyAuthenticator::new(store.clone(), Duration::from_secs(30));
//! let authed = auth.authenticate(&token, None, chrono::Utc::now()).await?;
//!
//! let (audit, audit_task) = AuditWriter::spawn(store.clone(), AuditWriterConfig::default());
//! audit.record(AuditRecord {
//!     ts: chrono::Utc::now(),
//!     account: Some(authed.account.id.clone()),
//!     key_id: Some(authed.key.id.clone()),
//!     api: "openai.chat".into(),
//!     status: 200,
//!     ..Default::default()
//! });
//! // On graceful shutdown, after the server stopped accepting requests:
//! audit_task.shutdown().await;
//! assert!(store.verify_audit().await?.is_ok());
//! # Ok(()) }
//! ```

mod accounts;
mod audit;
mod auth;
mod enforcement;
mod error;
mod keys;
mod time;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

pub use accounts::{Account, AccountLimits, NewAccount};
pub use audit::chain::{body_digest, decode_hash, link, ChainBodies, ChainRow, GENESIS};
pub use audit::checkpoint::{Checkpoint, CheckpointSigner};
pub use audit::crypto::AuditKeyring;
pub use audit::evidence::{AuditEntry, ChainSpan, SpanLink};
pub use audit::export::ExportReport;
pub use audit::verify::{BreakReason, BrokenLink, VerifyReport};
pub use audit::writer::{AuditHandle, AuditStats, AuditWriter, AuditWriterConfig, AuditWriterTask};
pub use audit::AuditRecord;
pub use auth::{AuthError, AuthedKey, KeyAuthenticator};
pub use enforcement::{EnforcementOverride, OVERRIDE_ACTIONS};
pub use error::StoreError;
pub use keys::{KeyRecord, KeySpec};

/// Handle to the database. Cheap to clone (it wraps a connection pool); share it freely.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    audit_keys: Option<std::sync::Arc<AuditKeyring>>,
}

impl Store {
    /// Open (creating it if missing) the database at `path`, which is either a file path or a
    /// `sqlite:` URL (`sqlite::memory:` works for throwaway stores). Turns on WAL journaling,
    /// foreign keys and a busy timeout, then applies the embedded migrations.
    pub async fn open(path: &str) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            url: path.to_string(),
            source,
        };
        let memory = path == ":memory:" || path.starts_with("sqlite::memory:");
        let base = if path.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(path).map_err(open_err)?
        } else if memory {
            SqliteConnectOptions::from_str("sqlite::memory:").map_err(open_err)?
        } else {
            SqliteConnectOptions::new().filename(path)
        };
        let mut options = base
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        if !memory {
            options = options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
        }
        // An in-memory database exists per connection: keep exactly one, forever.
        let pool = if memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(8)
        }
        .connect_with(options)
        .await
        .map_err(open_err)?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store {
            pool,
            audit_keys: None,
        })
    }

    /// Use `keys` for the audit log: new bodies are encrypted under its active key (if any),
    /// and encrypted bodies are decrypted on read, export and verification.
    pub fn with_audit_keys(mut self, keys: AuditKeyring) -> Store {
        self.audit_keys = Some(std::sync::Arc::new(keys));
        self
    }

    pub(crate) fn audit_keys(&self) -> Option<&AuditKeyring> {
        self.audit_keys.as_deref()
    }

    /// Close the pool, waiting for connections to be returned (checkpoints the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Start a transaction that reads and then writes. SQLite's default deferred transaction
    /// would fail immediately with SQLITE_BUSY if another connection wrote between our read and
    /// our first write; `BEGIN IMMEDIATE` takes the write lock up front (waiting up to the busy
    /// timeout). A PostgreSQL backend would use a plain `BEGIN` plus row locks instead.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }
}
