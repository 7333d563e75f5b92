//! The gateway side: a bounded queue of events drained by one background publishing task.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::header::{HeaderMap, NATS_MESSAGE_ID};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::event::{partition_of, ExchangeEvent};
use crate::{Bus, BusError};

/// Events published per batch (acknowledgements of a batch are awaited together).
const BATCH: usize = 256;

#[derive(Debug, Default)]
struct Counters {
    /// Accepted and not yet acknowledged (queued or in the batch being published).
    pending: AtomicU64,
    published: AtomicU64,
    dropped: AtomicU64,
    failing: AtomicBool,
    last_error: Mutex<Option<String>>,
}

/// What `/healthz` and the metrics report about the publisher.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PublisherHealth {
    /// The NATS connection is up.
    pub connected: bool,
    /// The last publish attempt failed (events are being retried).
    pub failing: bool,
    /// Events accepted and not yet acknowledged by JetStream.
    pub queued: u64,
    /// Events acknowledged by JetStream since start.
    pub published: u64,
    /// Events dropped because the queue was full.
    pub dropped: u64,
    /// The last error, if the publisher is failing.
    pub last_error: Option<String>,
}

/// Publishes [`ExchangeEvent`]s without ever blocking the caller. See the crate docs.
#[derive(Debug)]
pub struct EventPublisher {
    tx: mpsc::Sender<ExchangeEvent>,
    seq: AtomicU64,
    counters: Arc<Counters>,
    bus: Bus,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl EventPublisher {
    /// Starts the publishing task (needs a tokio runtime). Sequence numbers start from the
    /// current time in µs, so a restarted replica never reuses a message id.
    pub fn spawn(bus: Bus) -> EventPublisher {
        let capacity = bus.config().publish_queue.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(run(bus.clone(), rx, counters.clone()));
        let start = chrono::Utc::now().timestamp_micros().max(0) as u64;
        EventPublisher {
            tx,
            seq: AtomicU64::new(start),
            counters,
            bus,
            task: Mutex::new(Some(task)),
        }
    }

    /// The next sequence number of this replica (unique, increasing).
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues `ev`; when the queue is full the event is dropped and counted.
    pub fn publish(&self, ev: ExchangeEvent) {
        // counted before the send, so the task's decrement can never come first
        self.counters.pending.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send(ev).is_err() {
            self.counters.pending.fetch_sub(1, Ordering::Relaxed);
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("moat_bus_events_dropped_total").increment(1);
        }
    }

    /// Current state.
    pub fn health(&self) -> PublisherHealth {
        let c = &self.counters;
        let failing = c.failing.load(Ordering::Relaxed);
        PublisherHealth {
            connected: self.bus.is_connected(),
            failing,
            queued: c.pending.load(Ordering::Relaxed),
            published: c.published.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            last_error: if failing {
                c.last_error.lock().clone()
            } else {
                None
            },
        }
    }

    /// Waits (at most `timeout`) until every queued event is acknowledged. Returns whether
    /// the queue drained.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.counters.pending.load(Ordering::Relaxed) == 0 {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops accepting events and waits (at most `timeout`) for the queue to be published.
    pub async fn close(self, timeout: Duration) {
        let EventPublisher { tx, task, .. } = self;
        drop(tx);
        let task = task.lock().take();
        if let Some(t) = task {
            if tokio::time::timeout(timeout, t).await.is_err() {
                tracing::warn!("event publisher did not drain within {timeout:?}; events dropped");
            }
        }
    }
}

async fn run(bus: Bus, mut rx: mpsc::Receiver<ExchangeEvent>, counters: Arc<Counters>) {
    let mut ensured = false;
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut backoff = Duration::from_millis(50);
        loop {
            let attempt = async {
                if !ensured {
                    bus.ensure().await?;
                    ensured = true;
                }
                publish_batch(&bus, &batch).await
            };
            match attempt.await {
                Ok(()) => {
                    counters
                        .published
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    counters
                        .pending
                        .fetch_sub(batch.len() as u64, Ordering::Relaxed);
                    metrics::counter!("moat_bus_events_published_total")
                        .increment(batch.len() as u64);
                    if counters.failing.swap(false, Ordering::Relaxed) {
                        tracing::info!("event bus is back; publishing again");
                    }
                    break;
                }
                Err(e) => {
                    if !counters.failing.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "publishing exchange events failed; retrying");
                    }
                    *counters.last_error.lock() = Some(e.to_string());
                    metrics::counter!("moat_bus_publish_errors_total").increment(1);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        batch.clear();
    }
}

/// Publishes every event of `batch` (pipelined), then awaits all acknowledgements. A retried
/// batch republishes all of it; JetStream drops the duplicates by message id.
async fn publish_batch(bus: &Bus, batch: &[ExchangeEvent]) -> Result<(), BusError> {
    let parts = bus.config().partitions;
    let mut acks = Vec::with_capacity(batch.len());
    for ev in batch {
        let payload = serde_json::to_vec(ev).map_err(|e| BusError::js("encoding an event", e))?;
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, ev.message_id().as_str());
        let subject = bus.subject(partition_of(&ev.account, parts));
        let ack = bus
            .jetstream()
            .publish_with_headers(subject, headers, payload.into())
            .await
            .map_err(|e| BusError::js("publishing an event", e))?;
        acks.push(ack);
    }
    for ack in acks {
        ack.await
            .map_err(|e| BusError::js("awaiting an event acknowledgement", e))?;
    }
    Ok(())
}
