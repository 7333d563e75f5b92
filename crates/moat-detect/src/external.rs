//! Assessments made outside an engine, and what an engine tells others about an account.
//!
//! When detection is split over several processes (gateway replicas that each see part of an
//! account's traffic, detector workers that each own part of the accounts), one engine learns
//! what another concluded through an [`ExternalView`]: the account-level log-odds of the engine
//! that saw more, with its reasons. [`crate::Engine::set_external`] installs one; the engine then
//! decides each request on the higher of its own assessment and the external one, with the
//! request's own features (so a conversation follow-up is still only throttled, exactly as for
//! the engine's own assessment). An engine that never receives one (`moat replay`, a single
//! gateway) behaves exactly as before.

use serde::{Deserialize, Serialize};

use crate::cluster;

/// An account's assessment as another engine sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalView {
    /// Log-odds for requests outside the account's extraction sub-stream (cluster included).
    pub z: f64,
    /// Log-odds for requests in the extraction sub-stream (strongly extraction-like
    /// single-turn prompts); never below `z`.
    pub sub_z: f64,
    /// Human-readable reasons of the higher of the two, most important first.
    pub reasons: Vec<String>,
    /// Cross-account cluster label, if the account is in one.
    pub cluster: Option<String>,
    /// Event time (ms) of the newest request the assessment covers.
    pub as_of_ms: i64,
}

impl ExternalView {
    /// The log-odds that apply to a request (`sub`: it belongs to the extraction sub-stream).
    pub fn z_for(&self, sub: bool) -> f64 {
        if sub {
            self.sub_z.max(self.z)
        } else {
            self.z
        }
    }

    /// Risk in [0, 1] of a request in the extraction sub-stream (the account's highest).
    pub fn risk(&self) -> f64 {
        crate::policy::sigmoid(self.z_for(true))
    }

    /// Whether `other` differs enough from `self` to be worth telling others: a change of
    /// cluster, a move of at least `dz` in either log-odds, or a threshold of `cfg` crossed.
    pub fn differs(&self, other: &ExternalView, dz: f64, cfg: &crate::DetectConfig) -> bool {
        let band = |z: f64| {
            let r = crate::policy::sigmoid(z);
            [
                cfg.throttle_at,
                cfg.degrade_at,
                cfg.challenge_at,
                cfg.block_at,
            ]
            .iter()
            .filter(|t| r >= **t)
            .count()
        };
        self.cluster != other.cluster
            || (self.z - other.z).abs() >= dz
            || (self.sub_z - other.sub_z).abs() >= dz
            || band(self.z) != band(other.z)
            || band(self.sub_z) != band(other.sub_z)
    }
}

/// One shared key an account registered with the cross-account index (see
/// [`crate::cluster`]): its kind (`INFRA`, `FAMILY`, `TEMPLATE`, `FAMILY | SUSPECT`) and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LinkKey {
    /// Kind bits ([`cluster::INFRA`], [`cluster::FAMILY`], ...).
    pub kind: u8,
    /// Hash of the shared value (subnet, system prompt, tool set, skeleton).
    pub key: u64,
}

/// Most distinct shared keys an account remembers for its summary (the first ones seen).
pub const MAX_LINK_KEYS: usize = 16;

/// The distinct shared keys an account registered, first ones first, bounded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkKeys {
    keys: Vec<LinkKey>,
}

impl LinkKeys {
    /// Remembers `key` of `kind` (ignored when zero, already known, or the table is full).
    pub fn add(&mut self, kind: u8, key: u64) {
        let k = LinkKey { kind, key };
        if key != 0 && self.keys.len() < MAX_LINK_KEYS && !self.keys.contains(&k) {
            self.keys.push(k);
        }
    }

    /// The keys, in first-seen order.
    pub fn as_slice(&self) -> &[LinkKey] {
        &self.keys
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.keys.capacity() * std::mem::size_of::<LinkKey>()
    }
}

/// What a detector worker tells the cross-account linker about one of its accounts: compact
/// (one evidence block and at most [`MAX_LINK_KEYS`] keys, about 1 KB as JSON), enough to link
/// it with accounts other workers own and to score the cluster on its members' pooled evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountSummary {
    /// Account id.
    pub account: String,
    /// Creation time (ms), if known.
    pub created_ms: Option<i64>,
    /// Whether the account was new (younger than `new_account_days`) at its first request:
    /// it then takes part in creation-burst links ([`cluster::CREATED`]).
    pub new_at_first_request: bool,
    /// The shared keys it registered.
    pub keys: Vec<LinkKey>,
    /// Its whole evidence.
    pub evidence: crate::evidence::Evidence,
}

impl AccountSummary {
    /// Whether any key of this summary could ever link accounts on its own kind.
    pub fn has_links(&self) -> bool {
        self.new_at_first_request
            || self
                .keys
                .iter()
                .any(|k| k.kind & (cluster::INFRA | cluster::FAMILY | cluster::TEMPLATE) != 0)
    }
}
