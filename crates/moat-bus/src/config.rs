//! Bus settings (`[bus]` in `moat.toml`).

use std::time::Duration;

/// Where the bus is and how its stream and buckets are named and sized.
#[derive(Debug, Clone, PartialEq)]
pub struct BusConfig {
    /// NATS server URL, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// JetStream stream holding the exchange events.
    pub stream: String,
    /// Subject prefix of the events (`<prefix>.<partition>`).
    pub subject_prefix: String,
    /// Number of account partitions (fixed for the life of a stream; workers own partitions).
    pub partitions: u32,
    /// How long events (and bucket entries) are kept: the window a restarted worker rebuilds
    /// its state from. Keep it at least a few times the engine's decay half-life.
    pub max_age: Duration,
    /// Size cap of the events stream in bytes (-1: none); the oldest events go first.
    pub max_bytes: i64,
    /// Key-value bucket of account verdicts (workers → replicas).
    pub verdict_bucket: String,
    /// Key-value bucket of account summaries (workers → workers, cross-account linking).
    pub summary_bucket: String,
    /// Core-NATS subject of control messages between replicas.
    pub control_subject: String,
    /// TCP connect bound.
    pub connect_timeout: Duration,
    /// Bound on one request to the server (stream/bucket admin, acks).
    pub request_timeout: Duration,
    /// Events the publisher queues in memory while the bus is slow or down; beyond that new
    /// events are dropped and counted (the audit log keeps every exchange regardless).
    pub publish_queue: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            url: "nats://127.0.0.1:4222".into(),
            stream: "MOAT_EVENTS".into(),
            subject_prefix: "moat.events".into(),
            partitions: 16,
            max_age: Duration::from_secs(7 * 86_400),
            max_bytes: -1,
            verdict_bucket: "moat_verdicts".into(),
            summary_bucket: "moat_summaries".into(),
            control_subject: "moat.control".into(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            publish_queue: 100_000,
        }
    }
}
