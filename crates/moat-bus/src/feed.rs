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
pub struct EventFeed {
    messages: pull::Ordered,
    prefix_len: usize,
    owned: Option<Vec<bool>>,
    caught_up: bool,
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
        bus.ensure().await?;
        let c = bus.config();
        let stream = bus
            .jetstream()
            .get_stream(c.stream.as_str())
            .await
            .map_err(|e| BusError::js("opening the events stream", e))?;
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: format!("{}.>", c.subject_prefix),
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| BusError::js("creating the ordered consumer", e))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| BusError::js("reading the events stream", e))?;
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
            messages,
            prefix_len: c.subject_prefix.len() + 1,
            owned,
            caught_up: false,
        })
    }

    /// Whether the last message read (owned or skipped) was the last one in the stream at
    /// that moment.
    pub fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// The next event of an owned partition, in stream order; `None` when the feed ended.
    /// Messages of other partitions are consumed silently.
    pub async fn next(&mut self) -> Option<Result<Delivered, BusError>> {
        loop {
            let msg = match self.messages.next().await? {
                Ok(m) => m,
                Err(e) => return Some(Err(BusError::js("reading the events stream", e))),
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
