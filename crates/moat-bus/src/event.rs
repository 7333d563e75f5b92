//! The exchange event: what the detector workers need of one exchange.

use moat_detect::RequestFeatures;
use serde::{Deserialize, Serialize};

/// Account metadata the engine reads (the same fields `moat audit export` writes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventMeta {
    /// Account creation time, ms since the epoch.
    pub created_ms: Option<i64>,
    /// Verification status.
    pub verified: Option<bool>,
}

/// How the exchange ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventOutcome {
    /// HTTP status returned to the client.
    pub status: u16,
    /// Finish reason, if any.
    pub finish_reason: Option<String>,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
}

/// One exchange, published by the gateway that served it once it is complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangeEvent {
    /// The publishing replica.
    pub replica: String,
    /// The replica's own sequence number (order among its events, de-duplication id).
    pub seq: u64,
    /// Arrival time, µs since the epoch (the engine's clock is `ts_us / 1000`).
    pub ts_us: i64,
    /// Account id.
    pub account: String,
    /// Account metadata.
    pub meta: EventMeta,
    /// Detection features of the request (a pure function of the request, computed once by
    /// the gateway: `RequestFeatures::from_view(..).with_client(key, user_agent)`).
    pub features: RequestFeatures,
    /// Outcome.
    pub outcome: EventOutcome,
}

impl ExchangeEvent {
    /// Arrival time in ms (what the engine and the traffic log use).
    pub fn ts_ms(&self) -> i64 {
        self.ts_us.div_euclid(1000)
    }

    /// JetStream message id: `<replica>:<seq>`.
    pub fn message_id(&self) -> String {
        format!("{}:{}", self.replica, self.seq)
    }
}

/// The partition of `account` among `partitions` (stable: xxh3 of the id).
pub fn partition_of(account: &str, partitions: u32) -> u32 {
    (xxhash_rust::xxh3::xxh3_64(account.as_bytes()) % u64::from(partitions.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_in_range() {
        assert_eq!(partition_of("acct_1", 16), partition_of("acct_1", 16));
        for i in 0..1000 {
            assert!(partition_of(&format!("a{i}"), 7) < 7);
        }
        assert_eq!(partition_of("x", 0), 0);
        // roughly uniform
        let mut counts = [0u32; 4];
        for i in 0..4000 {
            counts[partition_of(&format!("acct_{i}"), 4) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn event_round_trips_as_json() {
        let ev = ExchangeEvent {
            replica: "gw-a".into(),
            seq: 7,
            ts_us: 1_770_000_000_123_456,
            account: "acct_1".into(),
            meta: EventMeta {
                created_ms: Some(1),
                verified: Some(false),
            },
            features: RequestFeatures {
                reasoning: 0.5,
                max_tokens: 512,
                ..Default::default()
            },
            outcome: EventOutcome {
                status: 200,
                finish_reason: Some("stop".into()),
                input_tokens: 10,
                output_tokens: 20,
            },
        };
        let s = serde_json::to_string(&ev).unwrap();
        assert_eq!(serde_json::from_str::<ExchangeEvent>(&s).unwrap(), ev);
        assert_eq!(ev.ts_ms(), 1_770_000_000_123);
        assert_eq!(ev.message_id(), "gw-a:7");
    }
}
