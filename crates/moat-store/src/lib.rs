//! moat-store: persistence for the moat gateway.
//!
//! * accounts and API keys ([`Store::create_account`], [`Store::create_key`], ...),
//! * request authentication with a concurrent cache and a policy for store faults
//!   ([`KeyAuthenticator`], [`StoreFaultPolicy`]),
//! * a hash-chained audit log of every exchange, written in batches by a background task that
//!   spools to local disk while the store is unavailable ([`AuditWriter`], [`AuditHandle`],
//!   [`AuditHandle::health`], [`Store::verify_audit`]),
//! * export of the audit log in the traffic log format of `DESIGN.md`
//!   ([`Store::export_traffic`], [`Store::export_accounts`]).
//!
//! Two backends, chosen by the URL given to [`Store::open`] / [`Store::open_with`]: SQLite (a
//! file, WAL mode) for a single gateway, and PostgreSQL for several replicas sharing one
//! database (one audit chain for all of them). Both go through sqlx's `Any` driver with the
//! same portable SQL; migrations are embedded per backend. Backends, the chain across replicas,
//! timeouts, fault behaviour and the audit spool are described in `docs/store.md`.
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
mod db;
mod enforcement;
mod error;
mod keys;
mod time;

use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;

pub use accounts::{Account, AccountLimits, NewAccount};
pub use audit::chain::{body_digest, decode_hash, link, ChainBodies, ChainRow, GENESIS};
pub use audit::checkpoint::{Checkpoint, CheckpointSigner};
pub use audit::crypto::AuditKeyring;
pub use audit::evidence::{AuditEntry, ChainSpan, SpanLink};
pub use audit::export::ExportReport;
pub use audit::verify::{BreakReason, BrokenLink, VerifyReport};
pub use audit::writer::{
    AuditHandle, AuditHealth, AuditStats, AuditWriter, AuditWriterConfig, AuditWriterTask,
};
pub use audit::AuditRecord;
pub use auth::{AuthError, AuthedKey, KeyAuthenticator, StoreFaultPolicy};
pub use db::{redact_url, StoreOptions};
pub use enforcement::{EnforcementOverride, OVERRIDE_ACTIONS};
pub use error::StoreError;
pub use keys::{KeyRecord, KeySpec};

use db::Dialect;

/// Handle to the database. Cheap to clone (it wraps a connection pool); share it freely.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    options: Arc<StoreOptions>,
    audit_keys: Option<Arc<AuditKeyring>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("Store")
            .field("backend", &self.dialect.name())
            .field("connections", &self.pool.size())
            .field("options", &self.options)
            .field("audit_keys", &self.audit_keys)
            .finish()
    }
}

impl Store {
    /// Open the database named by `url` with [`StoreOptions::default`]; see [`Store::open_with`].
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, StoreOptions::default()).await
    }

    /// Open the database named by `url`, then apply the embedded migrations:
    ///
    /// * `postgres://…` or `postgresql://…`: PostgreSQL (any URL that sqlx's PostgreSQL driver
    ///   takes: `postgres://user:password@host:5432/db?sslmode=require`, …). Several gateway
    ///   replicas may share the database; they append to one audit chain (see `docs/store.md`).
    /// * anything else: SQLite, given as a file path (created if missing) or a `sqlite:` URL;
    ///   `sqlite::memory:` gives a throwaway store. Files use WAL journaling, foreign keys and a
    ///   busy timeout (`options.statement_timeout`).
    ///
    /// Fails with [`StoreError::Open`] (the URL in the message has its password masked) when the
    /// database cannot be reached within `options.acquire_timeout`.
    pub async fn open_with(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
        let (pool, dialect) = db::connect(url, &options).await?;
        Ok(Store {
            pool,
            dialect,
            options: Arc::new(options),
            audit_keys: None,
        })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        self.dialect.name()
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// Use `keys` for the audit log: new bodies are encrypted under its active key (if any),
    /// and encrypted bodies are decrypted on read, export and verification. The audit writer's
    /// spool encrypts spooled records under the same key.
    pub fn with_audit_keys(mut self, keys: AuditKeyring) -> Store {
        self.audit_keys = Some(Arc::new(keys));
        self
    }

    pub(crate) fn audit_keys(&self) -> Option<&AuditKeyring> {
        self.audit_keys.as_deref()
    }

    pub(crate) fn audit_keys_arc(&self) -> Option<Arc<AuditKeyring>> {
        self.audit_keys.clone()
    }

    /// Close the pool, waiting for connections to be returned (checkpoints a SQLite WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Client-side deadline of one query (see [`StoreOptions`]).
    pub(crate) fn query_deadline(&self) -> Duration {
        self.options.query_deadline()
    }

    /// Start a transaction that reads and then writes ([`Dialect::begin_write`]).
    pub(crate) async fn begin_write(
        &self,
        op: &'static str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        use db::Timed;
        self.pool
            .begin_with(self.dialect.begin_write())
            .timed(self, op)
            .await
    }

    /// Start a read-only transaction with one snapshot ([`Dialect::begin_snapshot`]).
    pub(crate) async fn begin_snapshot(
        &self,
        op: &'static str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        use db::Timed;
        self.pool
            .begin_with(self.dialect.begin_snapshot())
            .timed(self, op)
            .await
    }
}
