//! The worker side: the events stream in order, from its first retained event.

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use futures::StreamExt;

use crate::event::ExchangeEvent;
use crate::{Bus, BusError};

/// One event as a worker receives it.
#[derive(Debug)]
pub struct Delivered {
    /// Stream sequence (one total order over all partitions).
    pub stream_seq: u64,
    /// When JetStream stored it, µs since the epoch.
    pub published_us: i64,
    /// Messages still pending after this one (0: the worker has caught up).
    pub pending: u64,
    /// Partition (from the subject).
    pub partition: u32,
    /// The event, or why it could not be decoded (skipped, counted by the worker).
    pub event: Result<ExchangeEvent, BusError>,
}

/// An ordered consumer over the whole events stream. Partitions not in `owned` are skipped
/// before decoding (their payloads are not parsed).
///
/// The consumer is ephemeral: a NATS server that restarts forgets it. The feed then opens a
/// new one from the event after the last one it delivered (retrying with a backoff while the
/// server is away), so a restart neither ends the feed nor replays or skips events.
pub struct EventFeed {
    bus: Bus,
    messages: pull::Ordered,
    prefix_len: usize,
    owned: Option<Vec<bool>>,
    caught_up: bool,
    /// Stream sequence of the last message read (0: none yet).
    last_seq: u64,
}

/// An ordered consumer of the events stream from the message after `after` (0: from the first
/// retained one).
async fn open_messages(bus: &Bus, after: u64) -> Result<pull::Ordered, BusError> {
    bus.ensure().await?;
    let c = bus.config();
    let stream = bus
        .jetstream()
        .get_stream(c.stream.as_str())
        .await
        .map_err(|e| BusError::js("opening the events stream", e))?;
    let deliver_policy = match after {
        0 => DeliverPolicy::All,
        n => DeliverPolicy::ByStartSequence {
            start_sequence: n + 1,
        },
    };
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: format!("{}.>", c.subject_prefix),
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| BusError::js("creating the ordered consumer", e))?;
    consumer
        .messages()
        .await
        .map_err(|e| BusError::js("reading the events stream", e))
}

impl std::fmt::Debug for EventFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventFeed").finish_non_exhaustive()
    }
}

impl EventFeed {
    /// Opens the feed from the first retained event. `owned`: the partitions this worker
    /// decides on (`None`: all).
    pub async fn open(bus: &Bus, owned: Option<&[u32]>) -> Result<EventFeed, BusError> {
        let messages = open_messages(bus, 0).await?;
        let c = bus.config();
        let owned = owned.map(|parts| {
            let mut v = vec![false; c.partitions as usize];
            for &p in parts {
                if let Some(slot) = v.get_mut(p as usize) {
                    *slot = true;
                }
            }
            v
        });
        Ok(EventFeed {
            bus: bus.clone(),
            messages,
            prefix_len: c.subject_prefix.len() + 1,
            owned,
            caught_up: false,
            last_seq: 0,
        })
    }

    /// Replaces a consumer that failed (`why`) by a new one from the event after the last one
    /// delivered; retries until it succeeds (the caller's other work, shutdown included, goes
    /// on meanwhile: this future may be dropped at any await and called again).
    async fn reopen(&mut self, why: &str) {
        tracing::warn!(
            error = why,
            after = self.last_seq,
            "events feed interrupted (NATS restarted?); reopening it after the last event read"
        );
        let mut backoff = std::time::Duration::from_millis(100);
        loop {
            match open_messages(&self.bus, self.last_seq).await {
                Ok(m) => {
                    self.messages = m;
                    tracing::info!(after = self.last_seq, "events feed reopened");
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "reopening the events feed failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
                }
            }
        }
    }

    /// Whether the last message read (owned or skipped) was the last one in the stream at
    /// that moment.
    pub fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// The next event of an owned partition, in stream order. Messages of other partitions are
    /// consumed silently. A consumer that fails or ends (the server restarted) is replaced
    /// ([`EventFeed::reopen`]): the feed itself does not end.
    pub async fn next(&mut self) -> Option<Result<Delivered, BusError>> {
        loop {
            let msg = match self.messages.next().await {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    self.reopen(&e.to_string()).await;
                    continue;
                }
                None => {
                    self.reopen("the consumer ended").await;
                    continue;
                }
            };
            let partition = msg
                .subject
                .get(self.prefix_len..)
                .and_then(|p| p.parse::<u32>().ok())
                .unwrap_or(u32::MAX);
            let (stream_seq, published_us, pending) = match msg.info() {
                Ok(i) => (i.stream_sequence, i.published.timestamp_micros(), i.pending),
                Err(e) => {
                    return Some(Err(BusError::JetStream {
                        what: "reading message metadata",
                        source: e,
                    }))
                }
            };
            if stream_seq <= self.last_seq {
                continue; // already delivered (a reopened consumer never goes back; defensive)
            }
            self.last_seq = stream_seq;
            self.caught_up = pending == 0;
            if let Some(owned) = &self.owned {
                if !owned.get(partition as usize).copied().unwrap_or(false) {
                    continue;
                }
            }
            let event = serde_json::from_slice::<ExchangeEvent>(&msg.payload).map_err(|source| {
                BusError::Decode {
                    what: "exchange event",
                    source,
                }
            });
            return Some(Ok(Delivered {
                stream_seq,
                published_us,
                pending,
                partition,
                event,
            }));
        }
    }
}
