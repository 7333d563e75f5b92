//! The background audit writer.
//!
//! [`AuditHandle::record`] never blocks and never touches the database: it pushes the record
//! onto a queue and returns. A single background task takes records off the queue and writes
//! them in batches of up to `batch_size` (or whatever arrived within `flush_interval` of the
//! first record of a batch), one transaction per batch, extending the hash chain. The task is
//! woken only for the first record of a batch and for the record that fills it, not for every
//! record (see `intake`).
//!
//! # Overflow policy: nothing is dropped
//!
//! The queue is unbounded. `channel_capacity` is a *soft* limit: when more than that many
//! records are waiting, every further record is still queued, but counted in
//! [`AuditStats::overflowed`] and the `moat_audit_overflow_total` metric, and a warning is
//! logged (rate-limited). The queue depth is exported as the `moat_audit_queue_depth` gauge.
//! So a slow disk costs memory, visibly, never audit records and never request latency; the
//! operator alerts on the metric. A single ordered queue also keeps the chain order equal to
//! the order in which the gateway recorded exchanges.
//!
//! # Batches are idempotent
//!
//! Every batch gets a random id, committed with its rows (table `audit_batches`); a batch whose
//! id is already there is skipped. A retry after an ambiguous failure (the commit went through
//! but its acknowledgement was lost to a timeout or a dropped connection) therefore never
//! writes the records twice.
//!
//! # Store failures without a spool (`spool_dir = None`)
//!
//! A failed batch is retried with exponential backoff (50 ms up to 5 s) until it succeeds; the
//! transaction is rolled back, so retries cannot fork or duplicate the chain. Meanwhile records
//! queue up in memory. The [`AuditWriterTask::shutdown`] call stops intake, drains every queued
//! record and flushes it (up to 5 attempts per batch while shutting down; records that still
//! cannot be written are logged and counted in [`AuditStats::lost`]).
//!
//! # Store failures with a spool (`spool_dir = Some(dir)`)
//!
//! A batch the store refuses (down, timed out, any error) is appended to the spool file in
//! `dir` and `fsync`ed (see `docs/store.md` for the format; bodies are encrypted when the store
//! has an active audit key). From then on every new batch goes to the spool too, behind the
//! ones already there, so the chain keeps the recording order; intake never stops. Every
//! `spool_retry` (doubling up to 16 × `spool_retry` while the store keeps failing) the writer
//! tries to move the spool into the store, oldest batch first, in transactions of up to about
//! 1,000 records; once the spool is empty the file is deleted and batches go straight to the
//! store again. A spool left by an earlier process (crash, shutdown while the store was down)
//! is flushed first. At shutdown, batches that cannot reach the store stay in the spool, for
//! the next start: nothing is counted lost unless the disk fails too.
//!
//! Guarantee: every record that reached the writer task is written to the chain exactly once,
//! as long as either the store or the spool disk accepts it; the batch ids make flushing
//! idempotent, so a crash at any point (between commit and spool truncation included) leads to
//! neither loss nor duplication of spooled records. Records still in the in-memory queue when
//! the process is killed are lost (they never reached disk); a line torn by a crash during its
//! own write is moved to `audit-spool.rejected.jsonl` and counted in
//! [`AuditStats::spool_rejected`].
//!
//! # One chain, several writers
//!
//! Each batch reads the chain head and appends under a lock: SQLite's database write lock
//! (`BEGIN IMMEDIATE`), or on PostgreSQL the row lock on `audit_head` (`SELECT … FOR UPDATE` in
//! the batch's transaction). Writers of several processes (gateway replicas sharing one
//! PostgreSQL database) therefore extend one linear chain, their batches interleaved in commit
//! order: sequence numbers stay gapless and every `prev_hash` links to the row before.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use sqlx::Row;
use tokio::sync::oneshot;

use super::intake::{Intake, Sender};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::chain::{decode_hash, AuditRow, ChainBodies, GENESIS};
use super::spool::{self, Spool};
use super::{AuditRecord, Pending};
use crate::error::DbContext;
use crate::time::{now, to_us};
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
    /// Directory of the spool that keeps batches on local disk while the store is unavailable
    /// (see the module docs). One writer process per directory. `None`: no spool, failed
    /// batches are retried in memory.
    pub spool_dir: Option<PathBuf>,
    /// First delay before the store is tried again for the spooled batches; doubles after each
    /// failure, up to 16 times this. Default 1 s.
    pub spool_retry: Duration,
}

impl Default for AuditWriterConfig {
    fn default() -> Self {
        AuditWriterConfig {
            batch_size: 256,
            flush_interval: Duration::from_millis(200),
            channel_capacity: 10_000,
            spool_dir: None,
            spool_retry: Duration::from_secs(1),
        }
    }
}

/// Counters of the audit pipeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Records handed to [`AuditHandle::record`].
    pub recorded: u64,
    /// Records committed to the database (spooled ones included, also those left in the spool
    /// by an earlier process).
    pub written: u64,
    /// Records waiting in the in-memory queue now.
    pub queued: u64,
    /// Records queued while the queue was above `channel_capacity` (kept, not dropped).
    pub overflowed: u64,
    /// Failed batch writes (each retried or spooled).
    pub write_errors: u64,
    /// Records that could not be stored: refused after shutdown, or still failing at shutdown
    /// with no usable spool.
    pub lost: u64,
    /// Records written to the spool (in total).
    pub spooled: u64,
    /// Records in the spool now, waiting for the store.
    pub spooled_pending: u64,
    /// Records of batches found already in the chain when (re)tried: a commit whose
    /// acknowledgement was lost. Counted in `written` once, never written twice.
    pub deduplicated: u64,
    /// Spool lines that could not be read back (torn by a crash, or encrypted under a key that
    /// is no longer configured), kept in `audit-spool.rejected.jsonl`.
    pub spool_rejected: u64,
}

/// What `/healthz` needs to tell a healthy audit pipeline from a degraded one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditHealth {
    /// The last write to the store succeeded (`true` before the first write).
    pub store_ok: bool,
    /// Records in the spool waiting for the store.
    pub spooled_pending: u64,
    /// Records lost since start ([`AuditStats::lost`]).
    pub dropped: u64,
    /// Records in the in-memory queue.
    pub queued: u64,
    /// A spool is configured and this process holds it.
    pub spool_enabled: bool,
}

impl AuditHealth {
    /// The store takes writes and nothing waits in the spool.
    pub fn is_healthy(&self) -> bool {
        self.store_ok && self.spooled_pending == 0
    }
}

struct Counters {
    recorded: AtomicU64,
    written: AtomicU64,
    queued: AtomicU64,
    overflowed: AtomicU64,
    write_errors: AtomicU64,
    lost: AtomicU64,
    spooled: AtomicU64,
    spooled_pending: AtomicU64,
    deduplicated: AtomicU64,
    spool_rejected: AtomicU64,
    store_ok: AtomicBool,
    spool_enabled: AtomicBool,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            recorded: AtomicU64::new(0),
            written: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            overflowed: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            spooled: AtomicU64::new(0),
            spooled_pending: AtomicU64::new(0),
            deduplicated: AtomicU64::new(0),
            spool_rejected: AtomicU64::new(0),
            store_ok: AtomicBool::new(true),
            spool_enabled: AtomicBool::new(false),
        }
    }
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
            spooled: self.spooled.load(Ordering::Relaxed),
            spooled_pending: self.spooled_pending.load(Ordering::Relaxed),
            deduplicated: self.deduplicated.load(Ordering::Relaxed),
            spool_rejected: self.spool_rejected.load(Ordering::Relaxed),
        }
    }

    fn health(&self) -> AuditHealth {
        AuditHealth {
            store_ok: self.store_ok.load(Ordering::Relaxed),
            spooled_pending: self.spooled_pending.load(Ordering::Relaxed),
            dropped: self.lost.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            spool_enabled: self.spool_enabled.load(Ordering::Relaxed),
        }
    }

    fn dequeued(&self, n: usize) {
        let left = self
            .queued
            .fetch_sub(n as u64, Ordering::Relaxed)
            .saturating_sub(n as u64);
        metrics::gauge!("moat_audit_queue_depth").set(left as f64);
    }

    fn lose(&self, n: usize) {
        self.lost.fetch_add(n as u64, Ordering::Relaxed);
        metrics::counter!("moat_audit_lost_total").increment(n as u64);
    }

    fn store_ok(&self, ok: bool) {
        self.store_ok.store(ok, Ordering::Relaxed);
        metrics::gauge!("moat_audit_store_ok").set(if ok { 1.0 } else { 0.0 });
    }
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
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
            spool_retry: config.spool_retry.max(Duration::from_millis(10)),
            ..config
        };
        let intake = Intake::new(config.batch_size);
        let (stop_tx, stop_rx) = oneshot::channel();
        let counters = Arc::new(Counters::default());
        let handle = AuditHandle {
            tx: Arc::new(Sender(intake.clone())),
            counters: counters.clone(),
            capacity: config.channel_capacity as u64,
        };
        let join = tokio::spawn(run(store, config, intake, stop_rx, counters.clone()));
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
    tx: Arc<Sender>,
    counters: Arc<Counters>,
    capacity: u64,
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
        if !self.tx.0.push(rec) {
            c.dequeued(1);
            c.lose(1);
            tracing::error!("audit record refused: the audit writer has shut down");
        }
    }

    /// Current counters.
    pub fn stats(&self) -> AuditStats {
        self.counters.snapshot()
    }

    /// Health of the pipeline (for `/healthz`).
    pub fn health(&self) -> AuditHealth {
        self.counters.health()
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
    /// Stop intake, write every queued record (to the store, or to the spool when the store is
    /// unavailable), and wait for the task to end. Returns the final counters (`lost` is 0
    /// unless the database failed during shutdown and no spool could take the records;
    /// `spooled_pending` says how many records wait in the spool for the next start).
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

    /// Health of the pipeline.
    pub fn health(&self) -> AuditHealth {
        self.counters.health()
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

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending::<()>().await,
    }
}

/// A fresh batch id (idempotency key): `b_` + 32 hex digits from the OS CSPRNG.
fn new_batch_id() -> String {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    format!("b_{}", hex::encode(b))
}

/// Spool lines read per step, and records per flush transaction (about).
const SPOOL_LINES_PER_READ: usize = 64;
const SPOOL_BYTES_PER_READ: usize = 8 << 20;
const SPOOL_RECORDS_PER_TX: usize = 1024;

/// What the writer knows of its spool after the last operation on it.
#[derive(Clone, Copy, Debug, Default)]
struct SpoolState {
    locked: bool,
    has_pending: bool,
    pending: u64,
}

fn state(s: &Spool) -> SpoolState {
    SpoolState {
        locked: s.locked(),
        has_pending: s.has_pending(),
        pending: s.pending(),
    }
}

struct Writer {
    store: Store,
    config: AuditWriterConfig,
    counters: Arc<Counters>,
    spool: Option<Arc<Mutex<Spool>>>,
    st: SpoolState,
    /// When the spool is due for its next attempt on the store (or on the lock).
    retry_at: Instant,
    backoff: Duration,
    lock_warned: bool,
}

impl Writer {
    async fn open(store: Store, config: AuditWriterConfig, counters: Arc<Counters>) -> Writer {
        let spool = match config.spool_dir.clone() {
            None => None,
            Some(dir) => {
                let shown = dir.display().to_string();
                match tokio::task::spawn_blocking(move || Spool::new(&dir)).await {
                    Ok(Ok(s)) => Some(Arc::new(Mutex::new(s))),
                    Ok(Err(e)) => {
                        tracing::error!(dir = %shown, error = %e, "audit spool directory unusable; failed batches are retried in memory");
                        None
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "audit spool setup failed");
                        None
                    }
                }
            }
        };
        let backoff = config.spool_retry;
        let mut w = Writer {
            store,
            config,
            counters,
            spool,
            st: SpoolState::default(),
            retry_at: Instant::now(),
            backoff,
            lock_warned: false,
        };
        w.ensure_lock().await;
        w
    }

    /// Run `f` on the spool off the async executor.
    async fn with_spool<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Spool) -> T + Send + 'static,
    ) -> Option<T> {
        let spool = self.spool.clone()?;
        let r = tokio::task::spawn_blocking(move || {
            let mut s = spool.lock();
            let out = f(&mut s);
            (out, state(&s))
        })
        .await;
        match r {
            Ok((out, st)) => {
                self.publish(st);
                Some(out)
            }
            Err(e) => {
                tracing::error!(error = %e, "audit spool operation failed");
                None
            }
        }
    }

    fn publish(&mut self, st: SpoolState) {
        self.st = st;
        self.counters
            .spooled_pending
            .store(st.pending, Ordering::Relaxed);
        self.counters
            .spool_enabled
            .store(st.locked, Ordering::Relaxed);
        metrics::gauge!("moat_audit_spooled_pending").set(st.pending as f64);
    }

    /// Take the spool directory's lock if not held yet (adopting a leftover spool file).
    async fn ensure_lock(&mut self) -> bool {
        if self.spool.is_none() {
            return false;
        }
        if self.st.locked {
            return true;
        }
        match self.with_spool(|s| s.try_lock()).await {
            Some(Ok(true)) => {
                if self.st.has_pending {
                    tracing::warn!(
                        records = self.st.pending,
                        "audit spool left by an earlier run; flushing it into the store first"
                    );
                }
                true
            }
            Some(Ok(false)) => {
                if !self.lock_warned {
                    self.lock_warned = true;
                    tracing::error!(
                        "audit spool directory is locked by another process (one writer per \
                         spool_dir); running without the spool until it is released"
                    );
                }
                false
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot lock the audit spool directory");
                false
            }
            None => false,
        }
    }

    /// When the loop must wake up for the spool even if no record arrives.
    fn next_wake(&self) -> Option<Instant> {
        self.spool.as_ref()?;
        (!self.st.locked || self.st.has_pending).then_some(self.retry_at)
    }

    fn retry_later(&mut self) {
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(self.config.spool_retry * 16);
    }

    /// Spool work that is due: take the lock, flush part of the spool.
    async fn tick(&mut self) {
        if self.spool.is_none() || Instant::now() < self.retry_at {
            return;
        }
        if !self.ensure_lock().await {
            self.retry_at = Instant::now() + self.config.spool_retry;
            return;
        }
        if self.st.has_pending {
            self.drain(Duration::from_millis(200)).await;
        }
    }

    /// Move spooled batches into the store, oldest first, for about `budget`. Returns whether
    /// the spool is empty; stops at the first store failure (and schedules a retry).
    async fn drain(&mut self, budget: Duration) -> bool {
        let start = Instant::now();
        let keys = self.store.audit_keys_arc();
        while self.st.has_pending {
            let before = self.st.pending;
            let lines = match self
                .with_spool(|s| s.read(SPOOL_LINES_PER_READ, SPOOL_BYTES_PER_READ))
                .await
            {
                Some(Ok(lines)) => lines,
                Some(Err(e)) => {
                    if !self.st.has_pending && before > 0 {
                        self.counters.lose(before as usize);
                    }
                    tracing::error!(error = %e, "cannot read the audit spool");
                    self.retry_later();
                    return !self.st.has_pending;
                }
                None => {
                    self.retry_later();
                    return false;
                }
            };
            // The leading run of readable lines, up to about SPOOL_RECORDS_PER_TX records.
            let mut good: Vec<(String, Vec<Pending>)> = Vec::new();
            let mut good_end = 0u64;
            let mut records = 0usize;
            let mut bad = None;
            for line in lines {
                let decoded = if line.torn {
                    Err("incomplete last line (write torn by a crash)".to_string())
                } else {
                    spool::decode_line(&line.bytes, keys.as_deref())
                };
                match decoded {
                    Ok((id, recs)) => {
                        if !good.is_empty() && records + recs.len() > SPOOL_RECORDS_PER_TX {
                            break;
                        }
                        records += recs.len();
                        good_end = line.end;
                        good.push((id, recs));
                    }
                    Err(reason) => {
                        if good.is_empty() {
                            bad = Some((line, reason));
                        }
                        break;
                    }
                }
            }
            if let Some((line, reason)) = bad {
                tracing::error!(
                    offset = line.end,
                    reason = %reason,
                    "unreadable audit spool line moved to {}",
                    spool::REJECTED_FILE
                );
                self.counters.spool_rejected.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("moat_audit_spool_rejected_total").increment(1);
                let n = spool::line_count(&line.bytes);
                let end = line.end;
                let raw = line.bytes;
                if let Some(Err(e)) = self
                    .with_spool(move |s| s.reject(&raw).and_then(|()| s.consumed(end, n)))
                    .await
                {
                    tracing::error!(error = %e, "cannot set the unreadable audit spool line aside");
                    self.retry_later();
                    return false;
                }
                continue;
            }
            if good.is_empty() {
                break;
            }
            let batches: Vec<(&str, &[Pending])> = good
                .iter()
                .map(|(id, r)| (id.as_str(), r.as_slice()))
                .collect();
            match self.store.append_audit_batches(&batches).await {
                Ok(out) => {
                    self.committed(&out);
                    let n = records as u64;
                    if let Some(Err(e)) = self.with_spool(move |s| s.consumed(good_end, n)).await {
                        // The batches are in the store; if the file cannot be cut, the next
                        // flush skips them by id.
                        tracing::error!(error = %e, "cannot truncate the audit spool");
                    }
                    self.backoff = self.config.spool_retry;
                }
                Err(e) => {
                    self.write_failed(&e, records);
                    self.retry_later();
                    return false;
                }
            }
            if start.elapsed() >= budget {
                // Come back right after the next intake step.
                self.retry_at = Instant::now();
                return !self.st.has_pending;
            }
        }
        if !self.st.has_pending {
            tracing::info!("audit spool flushed into the store");
        }
        true
    }

    fn committed(&self, out: &AppendOutcome) {
        let c = &self.counters;
        c.written
            .fetch_add(out.written + out.duplicate, Ordering::Relaxed);
        if out.duplicate > 0 {
            c.deduplicated.fetch_add(out.duplicate, Ordering::Relaxed);
            tracing::info!(
                records = out.duplicate,
                "audit batch already in the chain (its earlier commit was not acknowledged); skipped"
            );
        }
        c.store_ok(true);
    }

    fn write_failed(&self, e: &StoreError, records: usize) {
        self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("moat_audit_write_errors_total").increment(1);
        self.counters.store_ok(false);
        tracing::error!(error = %e, records, "audit batch write failed");
    }

    /// Append a batch to the spool; whether it is now durable there.
    async fn spool_batch(&mut self, id: &str, batch: &[Pending]) -> bool {
        let line = match spool::encode_line(id, batch, self.store.audit_keys()) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an audit batch for the spool");
                return false;
            }
        };
        let n = batch.len() as u64;
        match self.with_spool(move |s| s.append(&line, n)).await {
            Some(Ok(())) => {
                self.counters.spooled.fetch_add(n, Ordering::Relaxed);
                metrics::counter!("moat_audit_spooled_total").increment(n);
                self.counters.dequeued(batch.len());
                true
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot write the audit spool");
                false
            }
            None => false,
        }
    }

    /// Write one batch from the queue: to the store, or to the spool while batches wait there
    /// or when the store refuses it; without a usable spool, retry it in memory.
    async fn write(
        &mut self,
        batch: &mut Vec<AuditRecord>,
        stop: &mut Option<oneshot::Receiver<()>>,
        stopping: &mut bool,
    ) {
        if batch.is_empty() {
            return;
        }
        let pending: Vec<Pending> = batch.drain(..).map(Pending::from).collect();
        let id = new_batch_id();
        // Batches already in the spool go first: keep the order.
        if self.st.has_pending && self.spool_batch(&id, &pending).await {
            return;
        }
        match self.store.append_audit_batches(&[(&id, &pending)]).await {
            Ok(out) => {
                self.committed(&out);
                self.counters.dequeued(pending.len());
                return;
            }
            Err(e) => self.write_failed(&e, pending.len()),
        }
        if self.ensure_lock().await {
            let first = !self.st.has_pending;
            if self.spool_batch(&id, &pending).await {
                if first {
                    tracing::warn!("audit store unavailable; spooling batches to local disk");
                    self.backoff = self.config.spool_retry;
                    self.retry_later();
                }
                return;
            }
        }
        self.retry_in_memory(&id, &pending, stop, stopping).await;
    }

    /// No usable spool: retry the batch until it succeeds (at most 5 attempts while stopping).
    async fn retry_in_memory(
        &mut self,
        id: &str,
        batch: &[Pending],
        stop: &mut Option<oneshot::Receiver<()>>,
        stopping: &mut bool,
    ) {
        const FINAL_ATTEMPTS: u32 = 5;
        let mut delay = Duration::from_millis(50);
        let mut failures_while_stopping = 0;
        loop {
            if *stopping {
                failures_while_stopping += 1;
                if failures_while_stopping >= FINAL_ATTEMPTS {
                    tracing::error!(
                        records = batch.len(),
                        "audit records could not be written before shutdown and are lost"
                    );
                    self.counters.lose(batch.len());
                    self.counters.dequeued(batch.len());
                    return;
                }
                tokio::time::sleep(delay).await;
            } else {
                tokio::select! {
                    _ = stop_requested(stop) => *stopping = true,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            delay = (delay * 2).min(Duration::from_secs(5));
            match self.store.append_audit_batches(&[(id, batch)]).await {
                Ok(out) => {
                    self.committed(&out);
                    self.counters.dequeued(batch.len());
                    return;
                }
                Err(e) => self.write_failed(&e, batch.len()),
            }
            // The spool may have become usable (lock released, disk space freed).
            if self.ensure_lock().await && self.spool_batch(id, batch).await {
                self.retry_later();
                return;
            }
        }
    }

    /// At shutdown: one more attempt to empty the spool, without waiting for the backoff.
    async fn finish(&mut self) {
        if self.st.has_pending {
            self.retry_at = Instant::now();
            if !self.drain(Duration::from_secs(30)).await {
                let dir = self
                    .config
                    .spool_dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default();
                tracing::warn!(
                    records = self.st.pending,
                    dir = %dir,
                    "audit records left in the spool; they are written to the store at the next start"
                );
            }
        }
    }
}

async fn run(
    store: Store,
    config: AuditWriterConfig,
    intake: Arc<Intake>,
    stop_rx: oneshot::Receiver<()>,
    counters: Arc<Counters>,
) {
    let batch_size = config.batch_size;
    let flush_interval = config.flush_interval;
    let mut w = Writer::open(store, config, counters).await;
    let mut stop = Some(stop_rx);
    let mut stopping = false;
    let mut batch: Vec<AuditRecord> = Vec::with_capacity(batch_size);
    // A spool left by an earlier run goes first.
    w.tick().await;
    while !stopping {
        if intake.len() == 0 {
            if intake.is_closed() {
                break; // every handle is gone
            }
            let wake = w.next_wake();
            tokio::select! {
                biased;
                _ = stop_requested(&mut stop) => stopping = true,
                _ = intake.ready() => {}
                _ = sleep_until_opt(wake) => {}
            }
        }
        let queued = intake.len();
        if !stopping && queued > 0 && queued < batch_size && !intake.is_closed() {
            let deadline = tokio::time::sleep_until(Instant::now() + flush_interval);
            tokio::pin!(deadline);
            while intake.len() < batch_size && !intake.is_closed() {
                tokio::select! {
                    biased;
                    _ = stop_requested(&mut stop) => { stopping = true; break; }
                    _ = &mut deadline => break,
                    _ = intake.ready() => {}
                }
            }
        }
        intake.take(&mut batch, batch_size);
        w.tick().await;
        w.write(&mut batch, &mut stop, &mut stopping).await;
    }
    // Drain: refuse new records, write everything already queued.
    intake.close();
    while intake.take(&mut batch, batch_size) > 0 {
        w.write(&mut batch, &mut stop, &mut stopping).await;
    }
    w.finish().await;
    let stats = w.counters.snapshot();
    tracing::debug!(?stats, "audit writer stopped");
}

/// What [`Store::append_audit_batches`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AppendOutcome {
    /// Records newly appended.
    pub written: u64,
    /// Records of batches whose id was already committed (skipped).
    pub duplicate: u64,
}

/// Rows per multi-row `INSERT` (27 columns, 26 parameters each: well under either database's
/// parameter limit). Each statement is a round trip (to the server on PostgreSQL, to sqlx's
/// connection thread on SQLite), so fewer, larger ones win.
const ROWS_PER_INSERT: usize = 32;

const INSERT_COLUMNS: &str = "seq, ts_us, account_id, key_id, ip, user_agent, api, model, \
     stream, request_body, status, finish_reason, input_tokens, output_tokens, response_text, \
     latency_ms, error, decision, prev_hash, hash, hash_v, body_salt, request_digest, \
     response_digest, enc_key_id, enc_nonce, body_ct";

/// `INSERT INTO audit_log … VALUES (…), …` for `rows` rows (1..=ROWS_PER_INSERT), built once.
/// PostgreSQL numbers its parameters (`$1`, `$2`…). SQLite gets anonymous `?` ones: sqlx asks
/// SQLite for every parameter's name while binding, a linear scan of the named ones, which made
/// binding quadratic in the statement's size (15 % of the gateway's CPU at 32 rows of `$N`).
fn insert_sql(rows: usize, postgres: bool) -> &'static str {
    static PG: OnceLock<Vec<String>> = OnceLock::new();
    static LITE: OnceLock<Vec<String>> = OnceLock::new();
    let all = (if postgres { &PG } else { &LITE }).get_or_init(|| {
        (1..=ROWS_PER_INSERT)
            .map(|rows| {
                let mut sql = format!("INSERT INTO audit_log ({INSERT_COLUMNS}) VALUES ");
                let mut p = 0;
                for r in 0..rows {
                    if r > 0 {
                        sql.push_str(", ");
                    }
                    sql.push('(');
                    for c in 0..27 {
                        if c > 0 {
                            sql.push_str(", ");
                        }
                        if c == 20 {
                            // hash_v: every row written now is chain format 2.
                            sql.push('2');
                        } else {
                            p += 1;
                            if postgres {
                                sql.push('$');
                                sql.push_str(&p.to_string());
                            } else {
                                sql.push('?');
                            }
                        }
                    }
                    sql.push(')');
                }
                sql
            })
            .collect()
    });
    &all[rows.clamp(1, ROWS_PER_INSERT) - 1]
}

impl Store {
    /// Append `records` to the chain in one transaction (tests and tools; the writer uses
    /// [`Store::append_audit_batches`]).
    #[cfg(test)]
    pub(crate) async fn append_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let pending: Vec<Pending> = records.iter().cloned().map(Pending::from).collect();
        self.append_audit_batches(&[(&new_batch_id(), &pending)])
            .await
            .map(|_| ())
    }

    /// Append the batches, in order, to the chain in one transaction, continuing from the
    /// stored head, under the chain lock (see the module docs). A batch whose id is already in
    /// `audit_batches` is skipped. The whole transaction runs under the store's query deadline.
    pub(crate) async fn append_audit_batches(
        &self,
        batches: &[(&str, &[Pending])],
    ) -> Result<AppendOutcome, StoreError> {
        let after = self.query_deadline();
        match tokio::time::timeout(after, self.append_audit_tx(batches)).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Timeout {
                op: "writing an audit batch",
                after,
            }),
        }
    }

    async fn append_audit_tx(
        &self,
        batches: &[(&str, &[Pending])],
    ) -> Result<AppendOutcome, StoreError> {
        let mut tx = self
            .pool()
            .begin_with(self.dialect().begin_write())
            .await
            .db("starting audit batch")?;
        let (mut seq, mut prev) = self.lock_head(&mut tx).await?;
        let keys = self.audit_keys();
        let mut outcome = AppendOutcome::default();
        for (id, records) in batches {
            if records.is_empty() {
                continue;
            }
            let n = records.len() as i64;
            let claimed = sqlx::query(
                "INSERT INTO audit_batches (batch_id, first_seq, last_seq, ts_us) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (batch_id) DO NOTHING",
            )
            .bind(*id)
            .bind(seq + 1)
            .bind(seq + n)
            .bind(to_us(now()))
            .execute(&mut *tx)
            .await
            .db("recording audit batch id")?
            .rows_affected()
                == 1;
            if !claimed {
                outcome.duplicate += n as u64;
                continue;
            }
            let mut rows = Vec::with_capacity(records.len());
            let postgres = self.dialect() == crate::db::Dialect::Postgres;
            for p in records.iter() {
                seq += 1;
                let rec = if postgres {
                    without_nul(&p.rec)
                } else {
                    Cow::Borrowed(&p.rec)
                };
                let row = AuditRow::from_parts(seq, &rec, p.decision_json.clone(), keys);
                let hash = row.hash(&prev);
                rows.push((row, hex::encode(prev), hex::encode(hash)));
                prev = hash;
            }
            for chunk in rows.chunks(ROWS_PER_INSERT) {
                insert_rows(&mut tx, chunk, postgres).await?;
            }
            outcome.written += n as u64;
        }
        if outcome.written > 0 {
            sqlx::query(
                "INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2) \
                 ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            )
            .bind(seq)
            .bind(hex::encode(prev))
            .execute(&mut *tx)
            .await
            .db("updating audit head")?;
        }
        tx.commit().await.db("committing audit batch")?;
        Ok(outcome)
    }

    /// The chain head, locked until the transaction ends: from `audit_head`, else the last row,
    /// else genesis (seq 0). On PostgreSQL the head row is locked (`FOR UPDATE`); should it be
    /// missing (deleted by hand), a transaction-scoped advisory lock serialises writers instead.
    async fn lock_head(&self, tx: &mut sqlx::AnyConnection) -> Result<(i64, [u8; 32]), StoreError> {
        let select = format!(
            "SELECT seq, hash FROM audit_head WHERE id = 1{}",
            self.dialect().for_update()
        );
        let mut row = sqlx::query(&select)
            .fetch_optional(&mut *tx)
            .await
            .db("locking audit head")?;
        if row.is_none() && self.dialect() == crate::db::Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7243519001)")
                .execute(&mut *tx)
                .await
                .db("locking audit chain")?;
            row = sqlx::query(&select)
                .fetch_optional(&mut *tx)
                .await
                .db("locking audit head")?;
        }
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
}

/// PostgreSQL `TEXT` cannot hold U+0000, which a client can put in a request body (or, JSON-
/// escaped, in a model name): such a record would fail its batch forever. Its NULs are stored as
/// U+FFFD instead, before hashing, so the chain covers exactly what is stored. SQLite keeps them.
fn without_nul(rec: &AuditRecord) -> Cow<'_, AuditRecord> {
    fn has(s: &str) -> bool {
        s.contains('\0')
    }
    fn has_opt(s: &Option<String>) -> bool {
        s.as_deref().is_some_and(has)
    }
    let dirty = has(&rec.ip)
        || has(&rec.user_agent)
        || has(&rec.api)
        || has(&rec.request_body)
        || has_opt(&rec.account)
        || has_opt(&rec.key_id)
        || has_opt(&rec.model)
        || has_opt(&rec.finish_reason)
        || has_opt(&rec.response_text)
        || has_opt(&rec.error);
    if !dirty {
        return Cow::Borrowed(rec);
    }
    let fix = |s: &String| s.replace('\0', "\u{FFFD}");
    let fix_opt = |s: &Option<String>| s.as_ref().map(fix);
    Cow::Owned(AuditRecord {
        ip: fix(&rec.ip),
        user_agent: fix(&rec.user_agent),
        api: fix(&rec.api),
        request_body: fix(&rec.request_body),
        account: fix_opt(&rec.account),
        key_id: fix_opt(&rec.key_id),
        model: fix_opt(&rec.model),
        finish_reason: fix_opt(&rec.finish_reason),
        response_text: fix_opt(&rec.response_text),
        error: fix_opt(&rec.error),
        ..rec.clone()
    })
}

/// Insert chained rows (chain format 2) with one multi-row statement.
async fn insert_rows(
    tx: &mut sqlx::AnyConnection,
    rows: &[(AuditRow, String, String)],
    postgres: bool,
) -> Result<(), StoreError> {
    let mut q = sqlx::query(insert_sql(rows.len(), postgres));
    for (row, prev, hash) in rows {
        let c = &row.chain;
        let (request_digest, response_digest) = match &c.bodies {
            ChainBodies::Digests {
                request_digest,
                response_digest,
            } => (Some(request_digest), response_digest.as_ref()),
            ChainBodies::Plain { .. } => (None, None),
        };
        let sealed = row.sealed.as_ref();
        q = q
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
            .bind(prev)
            .bind(hash)
            .bind(row.salt.as_ref().map(hex::encode))
            .bind(request_digest)
            .bind(response_digest)
            .bind(sealed.map(|s| &s.key_id))
            .bind(sealed.map(|s| s.nonce.as_slice()))
            .bind(sealed.map(|s| s.ct.as_slice()));
    }
    q.execute(&mut *tx).await.db("inserting audit records")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_sql_numbers_parameters() {
        let one = insert_sql(1, true);
        assert!(one.ends_with("($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, 2, $21, $22, $23, $24, $25, $26)"), "{one}");
        assert!(insert_sql(ROWS_PER_INSERT, true).contains(&format!("${}", 26 * ROWS_PER_INSERT)));
        assert!(!insert_sql(2, true).contains("$53"));
        let lite = insert_sql(2, false);
        assert_eq!(lite.matches('?').count(), 52, "{lite}");
        assert!(!lite.contains('$'), "{lite}");
    }

    #[tokio::test]
    async fn a_batch_id_is_written_once() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let recs: Vec<Pending> = (0..3)
            .map(|i| {
                Pending::from(AuditRecord {
                    api: "openai.chat".into(),
                    request_body: format!("{{\"i\":{i}}}"),
                    ..Default::default()
                })
            })
            .collect();
        let out = store
            .append_audit_batches(&[("b_x", &recs), ("b_y", &recs[..1])])
            .await
            .unwrap();
        assert_eq!(
            out,
            AppendOutcome {
                written: 4,
                duplicate: 0
            }
        );
        let out = store
            .append_audit_batches(&[("b_y", &recs[..1]), ("b_z", &recs[..2])])
            .await
            .unwrap();
        assert_eq!(
            out,
            AppendOutcome {
                written: 2,
                duplicate: 1
            }
        );
        assert_eq!(store.audit_count().await.unwrap(), 6);
        assert!(store.verify_audit().await.unwrap().is_ok());
    }
}
