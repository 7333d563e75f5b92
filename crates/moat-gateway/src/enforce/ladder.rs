//! The pure part of the ladder: which action applies to a request, given the operator's
//! override, the configuration and the engine's decision. No I/O, no clock.

use moat_detect::Action;
use serde_json::Value;

use super::config::EnforceConfig;

/// The engine's decision as stored in the audit record.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineView {
    /// The engine's action.
    pub action: Action,
    /// Risk in [0, 1].
    pub risk: f64,
}

impl EngineView {
    /// Reads `{"action":…, "risk":…}`; `None` when absent or unknown.
    pub fn from_decision(d: &Value) -> Option<EngineView> {
        let action = serde_json::from_value(d.get("action")?.clone()).ok()?;
        let risk = d.get("risk").and_then(Value::as_f64).unwrap_or(0.0);
        Some(EngineView { action, risk })
    }
}

/// Where the chosen action came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A persisted override (operator, or an engine escalation kept until lifted).
    Override,
    /// `[enforce] force` / `allow`.
    Config,
    /// The detection engine (with its sticky throttle/degrade periods).
    Engine,
}

impl Source {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Override => "override",
            Source::Config => "config",
            Source::Engine => "engine",
        }
    }
}

/// The ladder's answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// What the policy says (what would be applied outside shadow mode).
    pub intended: Action,
    /// What is applied.
    pub applied: Action,
    /// Where `intended` came from.
    pub source: Source,
    /// Shadow mode suppressed a restriction.
    pub shadowed: bool,
}

/// The engine's action under the configured thresholds (or the engine's own). `last` is the
/// account's last intended action: under thresholds the ladder climbs as the engine's own
/// does, a first restriction at most `degrade` ([`moat_detect::policy::rung_ceiling`]).
pub fn engine_action(cfg: &EnforceConfig, e: &EngineView, last: Action) -> Action {
    match &cfg.thresholds {
        Some(t) => t
            .action(e.risk)
            .min(moat_detect::policy::rung_ceiling(last)),
        None => e.action,
    }
}

/// Chooses the action. `sticky` is the strongest still-running throttle/degrade period.
pub fn choose(
    cfg: &EnforceConfig,
    account: &str,
    overridden: Option<Action>,
    engine: Option<&EngineView>,
    sticky: Option<Action>,
    last: Action,
) -> Choice {
    let (intended, source) = if let Some(a) = overridden {
        (a, Source::Override)
    } else if let Some(a) = cfg.force.get(account) {
        (*a, Source::Config)
    } else if cfg.allow.contains(account) {
        (Action::Allow, Source::Config)
    } else {
        let e = engine.map_or(Action::Allow, |e| engine_action(cfg, e, last));
        (e.max(sticky.unwrap_or(Action::Allow)), Source::Engine)
    };
    let shadowed = cfg.shadow && source == Source::Engine && intended != Action::Allow;
    Choice {
        intended,
        applied: if shadowed { Action::Allow } else { intended },
        source,
        shadowed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::config::Thresholds;

    fn enforcing() -> EnforceConfig {
        EnforceConfig {
            shadow: false,
            ..Default::default()
        }
    }

    #[test]
    fn precedence() {
        let mut cfg = enforcing();
        cfg.allow.insert("a".into());
        cfg.force.insert("f".into(), Action::Degrade);
        let block = EngineView {
            action: Action::Block,
            risk: 0.99,
        };
        let c = choose(&cfg, "a", None, Some(&block), None, Action::Block);
        assert_eq!((c.applied, c.source), (Action::Allow, Source::Config));
        let c = choose(
            &cfg,
            "a",
            Some(Action::Block),
            Some(&block),
            None,
            Action::Block,
        );
        assert_eq!((c.applied, c.source), (Action::Block, Source::Override));
        let c = choose(&cfg, "f", None, None, None, Action::Block);
        assert_eq!(c.applied, Action::Degrade);
        let c = choose(&cfg, "x", None, Some(&block), None, Action::Block);
        assert_eq!((c.applied, c.source), (Action::Block, Source::Engine));
        let allow = EngineView {
            action: Action::Allow,
            risk: 0.1,
        };
        let c = choose(
            &cfg,
            "x",
            None,
            Some(&allow),
            Some(Action::Throttle),
            Action::Block,
        );
        assert_eq!(c.applied, Action::Throttle);
    }

    #[test]
    fn shadow_and_thresholds() {
        let mut cfg = EnforceConfig::default();
        assert!(cfg.shadow);
        let e = EngineView {
            action: Action::Degrade,
            risk: 0.7,
        };
        let c = choose(&cfg, "x", None, Some(&e), None, Action::Block);
        assert_eq!(
            (c.intended, c.applied, c.shadowed),
            (Action::Degrade, Action::Allow, true)
        );
        let c = choose(
            &cfg,
            "x",
            Some(Action::Block),
            Some(&e),
            None,
            Action::Block,
        );
        assert_eq!(
            c.applied,
            Action::Block,
            "operator overrides apply in shadow mode"
        );
        cfg.shadow = false;
        cfg.thresholds = Some(Thresholds {
            throttle_at: 0.5,
            degrade_at: 0.8,
            challenge_at: f64::INFINITY,
            block_at: 0.95,
        });
        assert_eq!(
            choose(&cfg, "x", None, Some(&e), None, Action::Block).applied,
            Action::Throttle
        );
        assert_eq!(
            EngineView::from_decision(&serde_json::json!({"action":"block","risk":0.5})),
            Some(EngineView {
                action: Action::Block,
                risk: 0.5
            })
        );
    }
}
