//! Engine thresholds (`[detect]` table of `moat.toml`).

use serde::{Deserialize, Serialize};

use crate::weights::Weights;

/// Tunable thresholds of the detection engine. Every field has a default; a `[detect]`
/// table may override any subset. Unknown keys are rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    /// Risk at or above which requests are throttled (not restrictive).
    pub throttle_at: f64,
    /// Risk at or above which extraction-like requests are degraded.
    pub degrade_at: f64,
    /// Risk at or above which extraction-like requests are challenged.
    pub challenge_at: f64,
    /// Risk at or above which extraction-like requests are blocked.
    pub block_at: f64,
    /// Accounts younger than this many days count as new.
    pub new_account_days: f64,
    /// Half-life (hours) of the sliding harvest-rate estimate.
    pub rate_half_life_hours: f64,
    /// Harvested answer tokens (untemplated single-turn output beyond the prompt length, decayed with
    /// `rate_half_life_hours`) above which volume starts to count as harvesting.
    pub harvest_tokens_floor: f64,
    /// Minimum cluster size (accounts) before cluster-level scoring applies.
    pub min_cluster_size: u32,
    /// Maximum number of accounts tracked per shared key (IP subnet, prompt family).
    pub max_accounts_per_key: usize,
    /// Maximum number of shared keys (subnets + prompt families) tracked globally.
    pub max_shared_keys: usize,
    /// Disable cross-account clustering entirely.
    pub disable_clustering: bool,
    /// Whether the gateway runs the engine at all (`false`: no request is scored, so the
    /// enforcement ladder only applies operator overrides). The engine itself and
    /// `moat replay` ignore it.
    pub enabled: bool,
    /// Whether the intent model's scores count as evidence (`false`: requests are read by
    /// the phrase lists and parameters alone).
    pub intent: bool,
    /// Log-odds weights of the scoring model (`[detect.weights]`; names left out keep the
    /// embedded, fitted defaults; see [`crate::weights`]).
    pub weights: Weights,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            throttle_at: 0.35,
            degrade_at: 0.6,
            challenge_at: 0.8,
            block_at: 0.93,
            new_account_days: 14.0,
            rate_half_life_hours: 6.0,
            harvest_tokens_floor: 12_000.0,
            min_cluster_size: 3,
            max_accounts_per_key: 48,
            max_shared_keys: 1 << 18,
            disable_clustering: false,
            enabled: true,
            intent: true,
            weights: Weights::default(),
        }
    }
}
