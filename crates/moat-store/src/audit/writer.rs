//! The background audit writer.
//!
//! [`AuditHandle::record`] never blocks and never touches the database: it pushes the record
//! onto a channel and returns. A single background task takes records off the channel and
//! writes them in batches of up to `batch_size` (or whatever arrived within `flush_interval` of
//! the first record of a batch), one transaction per batch, extending the hash chain.
//!
//! # Overflow policy: nothing is dropped
//!
//! The channel is unbounded. `channel_capacity` is a *soft* limit: when more than that many
//! records are waiting, every further record is still queued, but counted in
//! [`AuditStats::overflowed`] and the `moat_audit_overflow_total` metric, and a warning is
//! logged (rate-limited). The queue depth is exported as the `moat_audit_queue_depth` gauge.
//! So a slow disk costs memory, visibly, never audit records and never request latency; the
//! operator alerts on the metric. A single ordered queue also keeps the chain order equal to
//! the order in which the gateway recorded exchanges.
//!
//! # Failures and shutdown
//!
//! A failed batch is retried with exponential backoff (50 ms up to 5 s) until it succeeds; the
//! transaction is rolled back, so retries cannot fork or duplicate the chain. The
//! [`AuditWriterTask::shutdown`] call stops intake, drains every queued record and flushes it
//! (up to 5 attempts per batch while shutting down; records that still cannot be written are
//! logged and counted in [`AuditStats::lost`]). Records recorded after shutdown began are
//! refused and counted in `lost` as well: stop serving requests before calling `shutdown`.
//! If the `AuditWriterTask` is dropped without `shutdown`, the writer keeps running until every
//! `AuditHandle` is dropped, then flushes and exits.
//!
//! Each batch reads the chain head and appends under SQLite's write lock (`BEGIN IMMEDIATE`),
//! so even two writers on one database (two processes) keep a single linear chain; its order
//! then interleaves both processes. One writer per database is the intended setup.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::chain::{decode_hash, AuditRow, ChainBodies, GENESIS};
use super::AuditRecord;
use crate::error::DbContext;
use crate::{Store, StoreError};

/// Tuning of the background writer.
#[derive(Clone, Debug)]
pub struct AuditWriterConfig {
    /// Records per transaction (at most).
    pub batch_size: usize,
    /// How long the first record of a batch may wait for more before the batch is written.
    pub flush_interval: Duration,
    /// Soft queue limit: above it records are still kept, but counted as overflow.
    pub channel_capacity: usize,
}

impl Default for AuditWriterConfig {
    fn default() -> Self {
        AuditWriterConfig {
            batch_size: 256,
            flush_interval: Duration::from_millis(200),
            channel_capacity: 10_000,
        }
    }
}

/// Counters of the audit pipeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Records handed to [`AuditHandle::record`].
    pub recorded: u64,
    /// Records committed to the database.
    pub written: u64,
    /// Records waiting in the queue now.
    pub queued: u64,
    /// Records queued while the queue was above `channel_capacity` (kept, not dropped).
    pub overflowed: u64,
    /// Failed batch writes (each retried).
    pub write_errors: u64,
    /// Records that could not be stored: refused after shutdown, or still failing at shutdown.
    pub lost: u64,
}

#[derive(Default)]
struct Counters {
    recorded: AtomicU64,
    written: AtomicU64,
    queued: AtomicU64,
    overflowed: AtomicU64,
    write_errors: AtomicU64,
    lost: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> AuditStats {
        AuditStats {
            recorded: self.recorded.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            overflowed: self.overflowed.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
        }
    }

    fn dequeued(&self, n: usize) {
        let left = self.queued.fetch_sub(n as u64, Ordering::Relaxed) - n as u64;
        metrics::gauge!("moat_audit_queue_depth").set(left as f64);
    }
}

/// Entry point: starts the background writer.
#[derive(Debug)]
pub struct AuditWriter;

impl AuditWriter {
    /// Spawn the writer task on the current Tokio runtime. Returns the handle used on the
    /// request path and the task, whose [`AuditWriterTask::shutdown`] must be awaited on
    /// graceful shutdown.
    pub fn spawn(store: Store, config: AuditWriterConfig) -> (AuditHandle, AuditWriterTask) {
        let config = AuditWriterConfig {
            batch_size: config.batch_size.max(1),
            ..config
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let counters = Arc::new(Counters::default());
        let handle = AuditHandle {
            tx,
            counters: counters.clone(),
            capacity: config.channel_capacity as u64,
        };
        let join = tokio::spawn(run(store, config, rx, stop_rx, counters.clone()));
        let task = AuditWriterTask {
            join,
            stop: stop_tx,
            counters,
        };
        (handle, task)
    }
}

/// The request path's side of the audit log. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditHandle {
    tx: mpsc::UnboundedSender<AuditRecord>,
    counters: Arc<Counters>,
    capacity: u64,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

impl AuditHandle {
    /// Queue one record. Never blocks, never awaits, never drops (see the module docs).
    pub fn record(&self, rec: AuditRecord) {
        let c = &self.counters;
        c.recorded.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("moat_audit_records_total").increment(1);
        let depth = c.queued.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!("moat_audit_queue_depth").set(depth as f64);
        if depth > self.capacity {
            let n = c.overflowed.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("moat_audit_overflow_total").increment(1);
            if n % 10_000 == 0 {
                tracing::warn!(
                    queued = depth,
                    capacity = self.capacity,
                    "audit queue above capacity; records are kept in memory until the database catches up"
                );
            }
        }
        if self.tx.send(rec).is_err() {
            c.dequeued(1);
            c.lost.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("moat_audit_lost_total").increment(1);
            tracing::error!("audit record refused: the audit writer has shut down");
        }
    }

    /// Current counters.
    pub fn stats(&self) -> AuditStats {
        self.counters.snapshot()
    }
}

/// The running writer task.
#[derive(Debug)]
pub struct AuditWriterTask {
    join: JoinHandle<()>,
    stop: oneshot::Sender<()>,
    counters: Arc<Counters>,
}

impl AuditWriterTask {
    /// Stop intake, write every queued record, and wait for the task to end. Returns the final
    /// counters (`lost` is 0 unless the database failed during shutdown).
    pub async fn shutdown(self) -> AuditStats {
        let _ = self.stop.send(());
        if let Err(e) = self.join.await {
            tracing::error!(error = %e, "audit writer task failed");
        }
        self.counters.snapshot()
    }

    /// Current counters.
    pub fn stats(&self) -> AuditStats {
        self.counters.snapshot()
    }
}

/// Resolves when shutdown is requested. If the `AuditWriterTask` was dropped instead, never
/// resolves (the writer then ends when all handles are gone).
async fn stop_requested(stop: &mut Option<oneshot::Receiver<()>>) {
    match stop.as_mut() {
        Some(rx) => {
            let requested = rx.await.is_ok();
            *stop = None;
            if !requested {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

async fn run(
    store: Store,
    config: AuditWriterConfig,
    mut rx: mpsc::UnboundedReceiver<AuditRecord>,
    stop_rx: oneshot::Receiver<()>,
    counters: Arc<Counters>,
) {
    let mut stop = Some(stop_rx);
    let mut stopping = false;
    let mut batch: Vec<AuditRecord> = Vec::with_capacity(config.batch_size);
    while !stopping {
        tokio::select! {
            biased;
            _ = stop_requested(&mut stop) => stopping = true,
            n = rx.recv_many(&mut batch, config.batch_size) => stopping = n == 0,
        }
        if !stopping && batch.len() < config.batch_size {
            let deadline = tokio::time::sleep_until(Instant::now() + config.flush_interval);
            tokio::pin!(deadline);
            while batch.len() < config.batch_size {
                let room = config.batch_size - batch.len();
                tokio::select! {
                    biased;
                    _ = stop_requested(&mut stop) => { stopping = true; break; }
                    _ = &mut deadline => break,
                    n = rx.recv_many(&mut batch, room) => if n == 0 { stopping = true; break; },
                }
            }
        }
        flush(&store, &mut batch, &counters, &mut stop, &mut stopping).await;
    }
    // Drain: refuse new records, write everything already queued.
    rx.close();
    while rx.recv_many(&mut batch, config.batch_size).await > 0 {
        flush(&store, &mut batch, &counters, &mut stop, &mut stopping).await;
    }
    let stats = counters.snapshot();
    tracing::debug!(?stats, "audit writer stopped");
}

/// Write `batch` (retrying) and clear it.
async fn flush(
    store: &Store,
    batch: &mut Vec<AuditRecord>,
    counters: &Counters,
    stop: &mut Option<oneshot::Receiver<()>>,
    stopping: &mut bool,
) {
    if batch.is_empty() {
        return;
    }
    const FINAL_ATTEMPTS: u32 = 5;
    let mut delay = Duration::from_millis(50);
    let mut failures_while_stopping = 0;
    loop {
        match store.append_audit(batch).await {
            Ok(()) => {
                counters
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                counters.dequeued(batch.len());
                batch.clear();
                return;
            }
            Err(e) => {
                counters.write_errors.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("moat_audit_write_errors_total").increment(1);
                tracing::error!(error = %e, records = batch.len(), "audit batch write failed; retrying");
                if *stopping {
                    failures_while_stopping += 1;
                    if failures_while_stopping >= FINAL_ATTEMPTS {
                        tracing::error!(
                            records = batch.len(),
                            "audit records could not be written before shutdown and are lost"
                        );
                        counters
                            .lost
                            .fetch_add(batch.len() as u64, Ordering::Relaxed);
                        metrics::counter!("moat_audit_lost_total").increment(batch.len() as u64);
                        counters.dequeued(batch.len());
                        batch.clear();
                        return;
                    }
                }
                if *stopping {
                    tokio::time::sleep(delay).await;
                } else {
                    tokio::select! {
                        _ = stop_requested(stop) => *stopping = true,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

impl Store {
    /// Append `records` to the chain in one transaction, continuing from the stored head.
    pub(crate) async fn append_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await.db("starting audit batch")?;
        let (mut seq, mut prev) = head(&mut tx).await?;
        let keys = self.audit_keys();
        for rec in records {
            seq += 1;
            let row = AuditRow::from_record(seq, rec, keys);
            let hash = row.hash(&prev);
            insert_row(&mut tx, &row, &prev, &hash).await?;
            prev = hash;
        }
        sqlx::query(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )
        .bind(seq)
        .bind(hex::encode(prev))
        .execute(&mut *tx)
        .await
        .db("updating audit head")?;
        tx.commit().await.db("committing audit batch")?;
        Ok(())
    }
}

/// The chain head: from `audit_head`, else the last row, else genesis (seq 0).
pub(crate) async fn head(tx: &mut sqlx::SqliteConnection) -> Result<(i64, [u8; 32]), StoreError> {
    let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_optional(&mut *tx)
        .await
        .db("reading audit head")?;
    let row = match row {
        Some(r) => Some(r),
        None => sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await
            .db("reading last audit record")?,
    };
    match row {
        None => Ok((0, GENESIS)),
        Some(r) => {
            let seq: i64 = r.try_get("seq").db("reading audit head")?;
            let hash: String = r.try_get("hash").db("reading audit head")?;
            let hash = decode_hash(&hash).ok_or_else(|| StoreError::Corrupt {
                table: "audit_head",
                reason: format!("bad hash {hash:?}"),
            })?;
            Ok((seq, hash))
        }
    }
}

/// Insert one chained row (chain format 2).
async fn insert_row(
    tx: &mut sqlx::SqliteConnection,
    row: &AuditRow,
    prev: &[u8; 32],
    hash: &[u8; 32],
) -> Result<(), StoreError> {
    let c = &row.chain;
    let (request_digest, response_digest) = match &c.bodies {
        ChainBodies::Digests {
            request_digest,
            response_digest,
        } => (Some(request_digest), response_digest.as_ref()),
        ChainBodies::Plain { .. } => (None, None),
    };
    let sealed = row.sealed.as_ref();
    sqlx::query(
        "INSERT INTO audit_log (seq, ts_us, account_id, key_id, ip, user_agent, api, \
         model, stream, request_body, status, finish_reason, input_tokens, \
         output_tokens, response_text, latency_ms, error, decision, prev_hash, hash, \
         hash_v, body_salt, request_digest, response_digest, enc_key_id, enc_nonce, body_ct) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, \
         2, ?, ?, ?, ?, ?, ?)",
    )
    .bind(c.seq)
    .bind(c.ts_us)
    .bind(&c.account)
    .bind(&c.key_id)
    .bind(&c.ip)
    .bind(&c.user_agent)
    .bind(&c.api)
    .bind(&c.model)
    .bind(c.stream)
    .bind(&row.request_body)
    .bind(c.status)
    .bind(&c.finish_reason)
    .bind(c.input_tokens)
    .bind(c.output_tokens)
    .bind(&row.response_text)
    .bind(c.latency_ms)
    .bind(&c.error)
    .bind(&c.decision)
    .bind(hex::encode(prev))
    .bind(hex::encode(hash))
    .bind(row.salt.as_ref().map(hex::encode))
    .bind(request_digest)
    .bind(response_digest)
    .bind(sealed.map(|s| &s.key_id))
    .bind(sealed.map(|s| &s.nonce))
    .bind(sealed.map(|s| &s.ct))
    .execute(&mut *tx)
    .await
    .db("inserting audit record")?;
    Ok(())
}
