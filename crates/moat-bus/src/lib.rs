//! moat-bus: how gateway replicas and detector workers talk, over NATS JetStream.
//!
//! ```text
//!  gateway replica ──► stream MOAT_EVENTS, subject moat.events.<partition>   (one event per exchange)
//!        ▲                         │
//!        │                         ▼
//!        │                 `moat detect` workers (partitioned by account)
//!        │                         │  ▲
//!        │   KV moat_verdicts ◄────┘  └──► KV moat_summaries (cross-account linking)
//!        └── (watched by every replica: account verdicts within a second)
//!  core subject moat.control: key revocations, account and override changes, between replicas
//! ```
//!
//! * [`ExchangeEvent`]: what a gateway publishes per exchange — the request's detection
//!   features (hashes and counts, never prompt text), the account's metadata and the outcome.
//!   The audit log keeps the full bodies; the bus carries only what the engine reads.
//! * [`EventPublisher`]: a bounded queue drained by a background task that publishes with
//!   pipelined acknowledgements and a per-event message id (JetStream de-duplicates retries).
//!   The request path only pushes onto the queue.
//! * [`EventFeed`]: a worker's ordered view of the stream, from its first retained event.
//! * [`Verdicts`] / [`Summaries`]: versioned key-value buckets (last value per account) that
//!   every replica (verdicts) or worker (summaries) watches.
//! * [`Control`]: fire-and-forget control messages (at most once; every cache they invalidate
//!   also expires on its own TTL, so a missed message costs staleness, not correctness).
//!
//! Why JetStream and not Redis Streams: events outlive a broker restart on disk (the Redis
//! here is configured without persistence, and it is the limiter's dependency: a limiter
//! outage should not also stop detection), subjects partition the stream so workers can be
//! added, message ids de-duplicate retried publishes, and the key-value buckets give the
//! versioned, watchable caches that verdicts need. See `docs/scale-out.md`.

mod config;
mod control;
mod event;
mod feed;
mod kv;
mod publisher;

pub use config::BusConfig;
pub use control::{Control, ControlMessage};
pub use event::{partition_of, EventMeta, EventOutcome, ExchangeEvent};
pub use feed::{Delivered, EventFeed};
pub use kv::{account_of_key, kv_key, Summaries, SummaryRecord, VerdictRecord, Verdicts};
pub use publisher::{EventPublisher, PublisherHealth};

use std::time::Duration;

use async_nats::jetstream;

/// Errors of the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The NATS server could not be reached or refused the connection.
    #[error("connecting to NATS at {url}: {source}")]
    Connect {
        /// The URL tried.
        url: String,
        /// Why.
        source: async_nats::ConnectError,
    },
    /// A JetStream or key-value operation failed.
    #[error("{what}: {source}")]
    JetStream {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A message could not be decoded.
    #[error("undecodable {what}: {source}")]
    Decode {
        /// What kind of message.
        what: &'static str,
        /// Why.
        source: serde_json::Error,
    },
}

impl BusError {
    pub(crate) fn js(
        what: &'static str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        BusError::JetStream {
            what,
            source: Box::new(e),
        }
    }
}

/// A connection to the bus. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    cfg: BusConfig,
}

impl Bus {
    /// Connects to NATS. With `wait = false` it returns at once even while the server is down
    /// and keeps trying in the background (gateways: start serving, detection degraded); with
    /// `wait = true` it fails after `cfg.connect_timeout` (workers, CLI).
    pub async fn connect(cfg: BusConfig, wait: bool) -> Result<Bus, BusError> {
        let mut opts = async_nats::ConnectOptions::new()
            .connection_timeout(cfg.connect_timeout)
            .request_timeout(Some(cfg.request_timeout))
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((50 * 2u64.saturating_pow(attempts.min(6) as u32)).min(2000))
            })
            .event_callback(|ev| async move {
                tracing::info!(event = %ev, "NATS connection event");
            });
        if !wait {
            opts = opts.retry_on_initial_connect();
        }
        let client = opts
            .connect(cfg.url.as_str())
            .await
            .map_err(|source| BusError::Connect {
                url: cfg.url.clone(),
                source,
            })?;
        let js = jetstream::new(client.clone());
        Ok(Bus { client, js, cfg })
    }

    /// The configuration in use.
    pub fn config(&self) -> &BusConfig {
        &self.cfg
    }

    /// Whether the connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Creates the events stream and the two buckets if they do not exist (idempotent).
    pub async fn ensure(&self) -> Result<(), BusError> {
        let c = &self.cfg;
        self.js
            .get_or_create_stream(jetstream::stream::Config {
                name: c.stream.clone(),
                subjects: vec![format!("{}.>", c.subject_prefix)],
                max_age: c.max_age,
                max_bytes: c.max_bytes,
                storage: jetstream::stream::StorageType::File,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| BusError::js("creating the events stream", e))?;
        for (bucket, what) in [
            (&c.verdict_bucket, "creating the verdict bucket"),
            (&c.summary_bucket, "creating the summary bucket"),
        ] {
            // The bucket's stream, as `create_key_value` would make it. That call first asks
            // for the account's limits, whose reply on a NATS 2.9 server lacks fields the
            // client requires; the stream itself is all a bucket is.
            self.js
                .get_or_create_stream(jetstream::stream::Config {
                    name: format!("KV_{bucket}"),
                    subjects: vec![format!("$KV.{bucket}.>")],
                    max_messages_per_subject: 1,
                    max_age: c.max_age,
                    storage: jetstream::stream::StorageType::File,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    discard: jetstream::stream::DiscardPolicy::New,
                    num_replicas: 1,
                    ..Default::default()
                })
                .await
                .map_err(|e| BusError::js(what, e))?;
        }
        Ok(())
    }

    /// The events stream's subject for `partition`.
    pub fn subject(&self, partition: u32) -> String {
        format!("{}.{partition}", self.cfg.subject_prefix)
    }

    pub(crate) fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    pub(crate) fn client(&self) -> &async_nats::Client {
        &self.client
    }
}
