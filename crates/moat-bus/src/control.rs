//! Control messages between replicas: what one replica changed that the others must drop
//! from their caches at once.

use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::{Bus, BusError};

/// A change made on one replica (admin API) or by the CLI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlMessage {
    /// A key was revoked, rotated or changed: drop it from the authentication caches.
    KeyChanged {
        /// Key id.
        key_id: String,
    },
    /// An account was disabled, enabled or changed (limits, metadata): drop its keys.
    AccountChanged {
        /// Account id.
        account: String,
    },
    /// An enforcement override (allow, block, challenge, unblock) changed: reload it.
    OverrideChanged {
        /// Account id.
        account: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: String,
    #[serde(flatten)]
    msg: ControlMessage,
}

/// Sends and receives [`ControlMessage`]s (core NATS: at most once, immediate).
#[derive(Clone, Debug)]
pub struct Control {
    bus: Bus,
}

impl Control {
    /// Control messages over `bus`.
    pub fn new(bus: Bus) -> Control {
        Control { bus }
    }

    /// Announces `msg`, sent by `origin` (a replica id, or `cli`), and flushes it out.
    pub async fn send(&self, origin: &str, msg: &ControlMessage) -> Result<(), BusError> {
        let payload = serde_json::to_vec(&Envelope {
            origin: origin.to_string(),
            msg: msg.clone(),
        })
        .map_err(|e| BusError::js("encoding a control message", e))?;
        let client = self.bus.client();
        client
            .publish(self.bus.config().control_subject.clone(), payload.into())
            .await
            .map_err(|e| BusError::js("sending a control message", e))?;
        client
            .flush()
            .await
            .map_err(|e| BusError::js("flushing a control message", e))
    }

    /// Every control message from now on, as `(origin, message)`; undecodable ones are
    /// skipped with a warning.
    pub async fn subscribe(
        &self,
    ) -> Result<impl Stream<Item = (String, ControlMessage)> + Send, BusError> {
        let sub = self
            .bus
            .client()
            .subscribe(self.bus.config().control_subject.clone())
            .await
            .map_err(|e| BusError::js("subscribing to control messages", e))?;
        Ok(sub.filter_map(|m| async move {
            match serde_json::from_slice::<Envelope>(&m.payload) {
                Ok(e) => Some((e.origin, e.msg)),
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring an undecodable control message");
                    None
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_is_tagged() {
        let s = serde_json::to_string(&Envelope {
            origin: "gw-a".into(),
            msg: ControlMessage::KeyChanged {
                key_id: "key_1".into(),
            },
        })
        .unwrap();
        assert_eq!(
            s,
            r#"{"origin":"gw-a","type":"key_changed","key_id":"key_1"}"#
        );
    }
}
