//! `[enforce]`: the graduated response ladder's policy (raw file shape and validated form).
//! Documented key by key in `docs/config.md`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use moat_detect::Action;
use serde::Deserialize;

use super::degrade::{DegradeConfig, FeaturePolicy};
use crate::config::raw::S;

/// `[enforce]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnforce {
    pub shadow: Option<bool>,
    pub throttle_at: Option<f64>,
    pub degrade_at: Option<f64>,
    pub challenge_at: Option<f64>,
    pub block_at: Option<f64>,
    pub throttle_for: Option<S>,
    pub throttle_rpm: Option<u32>,
    pub degrade_for: Option<S>,
    pub persist_challenge: Option<bool>,
    pub persist_block: Option<bool>,
    pub allow: Option<Vec<String>>,
    pub force: Option<BTreeMap<String, Action>>,
    pub degrade: Option<RawDegrade>,
    pub reasoning: Option<RawReasoning>,
    pub webhook: Option<RawWebhook>,
}

/// `[enforce.degrade]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDegrade {
    pub strip_reasoning: Option<bool>,
    pub max_tokens: Option<u64>,
    pub logprobs: Option<FeaturePolicy>,
    pub n: Option<FeaturePolicy>,
    pub disable_thinking: Option<bool>,
}

/// `[enforce.reasoning]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReasoning {
    pub hide_all: Option<bool>,
    pub hide_for_tiers: Option<Vec<String>>,
    pub hide_for_accounts: Option<Vec<String>>,
}

/// `[enforce.webhook]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub url: S,
    pub min_action: Option<Action>,
    pub timeout: Option<S>,
    pub retries: Option<u32>,
    pub queue: Option<usize>,
}

/// Risk thresholds that replace the engine's own action choice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Risk at or above which a request is throttled.
    pub throttle_at: f64,
    /// ... degraded.
    pub degrade_at: f64,
    /// ... challenged.
    pub challenge_at: f64,
    /// ... blocked.
    pub block_at: f64,
}

impl Thresholds {
    /// The action for `risk`.
    pub fn action(&self, risk: f64) -> Action {
        if risk >= self.block_at {
            Action::Block
        } else if risk >= self.challenge_at {
            Action::Challenge
        } else if risk >= self.degrade_at {
            Action::Degrade
        } else if risk >= self.throttle_at {
            Action::Throttle
        } else {
            Action::Allow
        }
    }
}

/// Who sees no reasoning even when allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HideReasoning {
    /// Everyone.
    pub all: bool,
    /// Accounts of these tiers.
    pub tiers: HashSet<String>,
    /// These accounts.
    pub accounts: HashSet<String>,
}

/// `[enforce.webhook]`: where action changes are posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// URL receiving `POST` with a JSON body (Slack-compatible `text` field).
    pub url: String,
    /// Changes are sent when the old or the new action is at least this one.
    pub min_action: Action,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
    /// Events waiting to be sent; more are dropped (and counted).
    pub queue: usize,
}

/// The validated `[enforce]` section.
#[derive(Debug, Clone)]
pub struct EnforceConfig {
    /// Score and log, restrict nothing on the engine's word (operator overrides still apply).
    pub shadow: bool,
    /// Own thresholds; `None` uses the engine's action.
    pub thresholds: Option<Thresholds>,
    /// How long a throttle lasts after the last throttle decision.
    pub throttle_for: Duration,
    /// Requests per minute a throttled account may send.
    pub throttle_rpm: u32,
    /// How long an account stays degraded after a degrade decision (0: per request).
    pub degrade_for: Duration,
    /// An engine `challenge` is persisted until an operator lifts it.
    pub persist_challenge: bool,
    /// An engine `block` is persisted until an operator lifts it.
    pub persist_block: bool,
    /// Accounts never restricted by the engine.
    pub allow: HashSet<String>,
    /// Accounts whose action is fixed.
    pub force: BTreeMap<String, Action>,
    /// Degradations.
    pub degrade: DegradeConfig,
    /// Reasoning hidden from everyone / tiers / accounts.
    pub hide_reasoning: HideReasoning,
    /// Optional webhook for action changes.
    pub webhook: Option<WebhookConfig>,
}

impl Default for EnforceConfig {
    fn default() -> Self {
        Self {
            shadow: true,
            thresholds: None,
            throttle_for: Duration::from_secs(600),
            throttle_rpm: 6,
            degrade_for: Duration::ZERO,
            persist_challenge: true,
            persist_block: true,
            allow: HashSet::new(),
            force: BTreeMap::new(),
            degrade: DegradeConfig::default(),
            hide_reasoning: HideReasoning::default(),
            webhook: None,
        }
    }
}

/// Builds the degrade measures from the raw section.
pub fn degrade_config(raw: Option<RawDegrade>) -> DegradeConfig {
    let d = DegradeConfig::default();
    let Some(r) = raw else { return d };
    DegradeConfig {
        strip_reasoning: r.strip_reasoning.unwrap_or(d.strip_reasoning),
        max_tokens: match r.max_tokens {
            Some(0) => None,
            Some(n) => Some(n),
            None => d.max_tokens,
        },
        logprobs: r.logprobs.unwrap_or(d.logprobs),
        n: r.n.unwrap_or(d.n),
        disable_thinking: r.disable_thinking.unwrap_or(d.disable_thinking),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::validated::NoEnv;
    use crate::Config;

    fn parse(extra: &str) -> Result<Config, String> {
        let src = format!("[upstream]\nbase_url = \"demo\"\n{extra}");
        Config::parse(&src, "moat.toml", Path::new("."), &NoEnv).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_to_shadow_mode() {
        let c = parse("").unwrap().enforce;
        assert!(c.shadow && c.thresholds.is_none() && c.persist_block);
        assert_eq!(c.degrade.max_tokens, Some(512));
    }

    #[test]
    fn parses_every_key() {
        let c = parse(
            r#"
[enforce]
shadow = false
throttle_at = 0.3
block_at = 0.9
throttle_for = "1m"
throttle_rpm = 2
degrade_for = "30s"
allow = ["acct_a"]
[enforce.force]
acct_b = "block"
[enforce.degrade]
max_tokens = 0
logprobs = "refuse"
n = "keep"
[enforce.reasoning]
hide_for_tiers = ["free"]
[enforce.webhook]
url = "https://example.com/hook"
min_action = "block"
"#,
        )
        .unwrap()
        .enforce;
        assert!(!c.shadow);
        let t = c.thresholds.unwrap();
        assert_eq!((t.throttle_at, t.block_at), (0.3, 0.9));
        assert!(t.degrade_at.is_infinite());
        assert_eq!(c.degrade.max_tokens, None);
        assert_eq!(c.force["acct_b"], moat_detect::Action::Block);
        assert!(c.hide_reasoning.tiers.contains("free"));
        assert_eq!(c.webhook.unwrap().min_action, moat_detect::Action::Block);
    }

    #[test]
    fn rejects_mistakes() {
        let e = parse("[enforce]\nshadoww = true\n").unwrap_err();
        assert!(e.contains("moat.toml:4"), "{e}");
        assert!(parse("[enforce]\ndegrade_at = 0.9\nthrottle_at = 0.95\n").is_err());
        assert!(parse("[enforce]\nblock_at = 1.5\n").is_err());
        assert!(parse("[enforce.force]\na = \"nuke\"\n").is_err());
        assert!(parse("[enforce.degrade]\nlogprobs = \"maybe\"\n").is_err());
        assert!(parse("[enforce.webhook]\nurl = \"ftp://x\"\n").is_err());
        assert!(parse("[enforce]\nthrottle_rpm = 0\n").is_err());
    }
}
