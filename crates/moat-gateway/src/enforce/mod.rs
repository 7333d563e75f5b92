//! Enforcement: the graduated response ladder applied to every proxied request.
//!
//! What runs where:
//!
//! * **Inline, before forwarding** (per request, microseconds): the engine's decision (its
//!   request-content features are extracted outside the engine lock; only the state update
//!   holds it, see [`crate::detection`]), an override lookup (one hash-map probe, a store read
//!   once per `[auth] cache_ttl` per account), the ladder ([`ladder::choose`]), a short lock
//!   on the per-account state (throttle pacing, sticky periods, last action), and for a
//!   degraded request the body rewrite ([`degrade`]).
//! * **While relaying**: reasoning removal ([`reasoning_strip`]) only for degraded or
//!   reasoning-hidden requests, event by event.
//! * **Off the hot path**: the engine's outcome bookkeeping (when the exchange ends), writes
//!   of persisted escalations (spawned), the audit records of action changes (the batched
//!   audit writer) and the webhook ([`webhook`], bounded queue, background task).
//!
//! Shadow mode (`[enforce] shadow = true`, the default) computes and logs everything but
//! applies nothing the engine asked for; operator overrides and `[enforce] force` still apply.

pub mod config;
pub mod degrade;
pub mod ladder;
pub mod overrides;
pub mod reasoning_strip;
pub mod report;
pub mod think;
pub mod webhook;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use moat_detect::Action;
use moat_store::{Account, AuditRecord, AuthedKey};
use parking_lot::Mutex;
use serde_json::{json, Value};

pub use config::EnforceConfig;
use ladder::{Choice, EngineView, Source};
use overrides::{OverrideCache, Pinned};
use webhook::Webhook;

use crate::error::GatewayError;
use crate::gateway::Gateway;

/// `api` of the audit records that hold action changes (never exported as traffic).
pub const AUDIT_API: &str = "moat.enforcement";

/// What the pipeline does with an admitted request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plan {
    /// Apply `[enforce.degrade]` to the request.
    pub degrade: bool,
    /// Remove reasoning from the answer.
    pub strip_reasoning: bool,
}

#[derive(Debug)]
struct AccountState {
    /// Last intended action (what the policy said, shadow or not).
    last: Action,
    throttled_until: Option<Instant>,
    degraded_until: Option<Instant>,
    next_slot: Option<Instant>,
}

impl AccountState {
    fn new() -> Self {
        Self {
            last: Action::Allow,
            throttled_until: None,
            degraded_until: None,
            next_slot: None,
        }
    }
}

/// The ladder's live state. One per gateway.
#[derive(Debug)]
pub struct Enforcer {
    cfg: EnforceConfig,
    overrides: OverrideCache,
    state: Mutex<HashMap<String, AccountState>>,
    webhook: Option<Webhook>,
}

/// An action change, for the audit log, the webhook and the logs.
struct Change<'a> {
    account: &'a str,
    key: Option<&'a str>,
    from: Action,
    to: Action,
    source: &'a str,
    shadow: bool,
    reasons: Value,
    risk: Option<f64>,
    cluster: Value,
}

impl Enforcer {
    /// Starts the ladder (and the webhook sender, which needs a tokio runtime).
    pub fn new(cfg: EnforceConfig, cache_ttl: Duration) -> Self {
        let webhook = cfg.webhook.clone().map(Webhook::spawn);
        Self {
            cfg,
            overrides: OverrideCache::new(cache_ttl),
            state: Mutex::new(HashMap::new()),
            webhook,
        }
    }

    /// The policy in force.
    pub fn config(&self) -> &EnforceConfig {
        &self.cfg
    }

    /// Forgets the cached override of `account` (another replica changed it): the next
    /// request reads it from the store.
    pub fn forget_override(&self, account: &str) {
        self.overrides.forget(account);
    }

    /// Whether `account` gets answers without reasoning even when allowed.
    fn hides_reasoning(&self, account: &Account) -> bool {
        let h = &self.cfg.hide_reasoning;
        h.all || h.tiers.contains(&account.tier) || h.accounts.contains(&account.id)
    }

    /// Applies the ladder to one request. `decision` is the engine's decision (stored in the
    /// audit record); the enforcement outcome is added to it as `enforcement`.
    pub async fn admit(
        &self,
        gw: &Gateway,
        authed: &AuthedKey,
        decision: Option<&mut Value>,
    ) -> Result<Plan, GatewayError> {
        let account = &authed.account.id;
        let pinned = self.overrides.get(&gw.store, account).await;
        let engine = decision.as_deref().and_then(EngineView::from_decision);
        let now = Instant::now();
        let (choice, from, retry) = {
            let mut map = self.state.lock();
            if !map.contains_key(account.as_str()) {
                map.insert(account.clone(), AccountState::new());
            }
            let Some(st) = map.get_mut(account.as_str()) else {
                unreachable!("inserted above")
            };
            let sticky = [
                (st.throttled_until, Action::Throttle),
                (st.degraded_until, Action::Degrade),
            ]
            .into_iter()
            .filter(|(u, _)| u.is_some_and(|u| u > now))
            .map(|(_, a)| a)
            .max();
            let choice = ladder::choose(
                &self.cfg,
                account,
                pinned.as_ref().map(|p| p.action),
                engine.as_ref(),
                sticky,
                st.last,
            );
            if choice.source == Source::Engine && !choice.shadowed {
                let raw = engine
                    .as_ref()
                    .map(|e| ladder::engine_action(&self.cfg, e, st.last));
                if raw == Some(Action::Throttle) {
                    st.throttled_until = Some(now + self.cfg.throttle_for);
                }
                if choice.intended == Action::Degrade && !self.cfg.degrade_for.is_zero() {
                    st.degraded_until = Some(now + self.cfg.degrade_for);
                }
            }
            let mut retry = None;
            if choice.applied == Action::Throttle {
                match st.next_slot {
                    Some(t) if t > now => retry = Some(t - now),
                    _ => {
                        st.next_slot =
                            Some(now + Duration::from_secs(60) / self.cfg.throttle_rpm.max(1))
                    }
                }
            }
            let from = std::mem::replace(&mut st.last, choice.intended);
            (choice, from, retry)
        };
        self.count(&choice, from);
        let mut change = Change {
            account,
            key: Some(&authed.key.id),
            from,
            to: choice.intended,
            source: pinned
                .as_ref()
                .map_or(choice.source.as_str(), |p| p.source.as_str()),
            shadow: choice.shadowed,
            reasons: Value::Null,
            risk: None,
            cluster: Value::Null,
        };
        if let Some(d) = decision {
            if from != choice.intended {
                change.reasons = d.get("reasons").cloned().unwrap_or(Value::Null);
                change.cluster = d.get("cluster").cloned().unwrap_or(Value::Null);
                change.risk = d.get("risk").and_then(Value::as_f64);
            }
            if let Some(o) = d.as_object_mut() {
                o.insert(
                    "enforcement".into(),
                    json!({"applied": choice.applied.as_str(), "intended": choice.intended.as_str(),
                           "source": choice.source.as_str(), "shadow": choice.shadowed}),
                );
            }
        }
        if from != choice.intended {
            self.changed(gw, change);
        }
        self.persist_escalation(gw, account, &choice, engine.as_ref());
        let hide = self.hides_reasoning(&authed.account);
        match choice.applied {
            Action::Allow => Ok(Plan {
                degrade: false,
                strip_reasoning: hide,
            }),
            Action::Throttle => match retry {
                Some(wait) => Err(GatewayError::RateLimited {
                    limit: "enforcement_throttle",
                    retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                }),
                None => Ok(Plan {
                    degrade: false,
                    strip_reasoning: hide,
                }),
            },
            Action::Degrade => Ok(Plan {
                degrade: true,
                strip_reasoning: hide || self.cfg.degrade.strip_reasoning,
            }),
            Action::Challenge => Err(GatewayError::VerificationRequired),
            Action::Block => Err(GatewayError::AccountBlocked),
        }
    }

    /// Keeps an engine `challenge` / `block` until an operator lifts it.
    fn persist_escalation(
        &self,
        gw: &Gateway,
        account: &str,
        c: &Choice,
        engine: Option<&EngineView>,
    ) {
        let persist = match c.applied {
            Action::Block => self.cfg.persist_block,
            Action::Challenge => self.cfg.persist_challenge,
            _ => false,
        };
        if !persist || c.source != Source::Engine {
            return;
        }
        self.overrides.put(
            account,
            Some(Pinned {
                action: c.applied,
                source: "engine".into(),
            }),
        );
        let announcer = gw.scale_out.as_ref().map(|so| so.announcer());
        let store = gw.store.clone();
        let account = account.to_string();
        let action = c.applied.as_str();
        let reason = engine.map(|e| format!("detection engine (risk {:.3})", e.risk));
        tokio::spawn(async move {
            match store
                .set_enforcement(&account, action, "engine", reason.as_deref())
                .await
            {
                Err(e) => {
                    tracing::error!(account, error = %e, "persisting enforcement escalation failed")
                }
                // the other replicas read the stored override at once
                Ok(_) => {
                    if let Some(a) = announcer {
                        a.send(moat_bus::ControlMessage::OverrideChanged { account })
                            .await;
                    }
                }
            }
        });
    }

    /// An operator pins (`Some`) or lifts (`None`) `account`'s action. Takes effect at once in
    /// this gateway; the change is audited and sent to the webhook.
    pub async fn set_override(
        &self,
        gw: &Gateway,
        account: &str,
        action: Option<Action>,
        reason: Option<&str>,
    ) -> Result<Option<moat_store::EnforcementOverride>, moat_store::StoreError> {
        let stored = match action {
            Some(a) => Some(
                gw.store
                    .set_enforcement(account, a.as_str(), "operator", reason)
                    .await?,
            ),
            None => {
                if gw.store.get_account(account).await?.is_none() {
                    return Err(moat_store::StoreError::AccountNotFound(account.into()));
                }
                gw.store.clear_enforcement(account).await?;
                None
            }
        };
        self.overrides.put(
            account,
            action.map(|a| Pinned {
                action: a,
                source: "operator".into(),
            }),
        );
        gw.announce(moat_bus::ControlMessage::OverrideChanged {
            account: account.to_string(),
        });
        let to = action.unwrap_or(Action::Allow);
        let from = {
            let mut map = self.state.lock();
            let st = map
                .entry(account.to_string())
                .or_insert_with(AccountState::new);
            if action.is_none() {
                // Lifted: the engine starts over for this account's sticky periods.
                st.throttled_until = None;
                st.degraded_until = None;
            }
            std::mem::replace(&mut st.last, to)
        };
        self.changed(
            gw,
            Change {
                account,
                key: None,
                from,
                to,
                source: "operator",
                shadow: false,
                reasons: json!([reason.unwrap_or(if action.is_some() {
                    "operator override"
                } else {
                    "override lifted"
                })]),
                risk: None,
                cluster: Value::Null,
            },
        );
        Ok(stored)
    }

    /// The current action of every account with state (intended, shadow or not).
    pub fn current_actions(&self) -> HashMap<String, Action> {
        self.state
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.last))
            .collect()
    }

    fn count(&self, c: &Choice, from: Action) {
        metrics::counter!("moat_enforce_actions_total", "action" => c.applied.as_str())
            .increment(1);
        if c.shadowed {
            metrics::counter!("moat_enforce_shadow_would_act_total", "action" => c.intended.as_str())
                .increment(1);
        }
        if from != c.intended {
            let mode = if self.cfg.shadow {
                "shadow"
            } else {
                "enforced"
            };
            metrics::gauge!("moat_enforce_accounts", "action" => from.as_str(), "mode" => mode)
                .decrement(1.0);
            metrics::gauge!("moat_enforce_accounts", "action" => c.intended.as_str(), "mode" => mode)
                .increment(1.0);
        }
    }

    fn changed(&self, gw: &Gateway, c: Change<'_>) {
        metrics::counter!("moat_enforce_changes_total", "to" => c.to.as_str()).increment(1);
        let event = json!({
            "kind": "action_change", "account": c.account, "key": c.key,
            "from": c.from.as_str(), "to": c.to.as_str(), "source": c.source,
            "shadow": c.shadow, "risk": c.risk, "reasons": c.reasons, "cluster": c.cluster,
        });
        tracing::info!(
            account = c.account,
            from = c.from.as_str(),
            to = c.to.as_str(),
            source = c.source,
            shadow = c.shadow,
            "enforcement action changed"
        );
        gw.audit.record(AuditRecord {
            ts: Utc::now(),
            account: Some(c.account.to_string()),
            key_id: c.key.map(str::to_string),
            api: AUDIT_API.to_string(),
            request_body: event.to_string(),
            error: Some("action_change".into()),
            ..Default::default()
        });
        if let Some(w) = &self.webhook {
            if c.from.max(c.to) >= w_min(&self.cfg) {
                let text = format!(
                    "moat: account {} {} → {}{} ({}){}",
                    c.account,
                    c.from.as_str(),
                    c.to.as_str(),
                    if c.shadow {
                        " [shadow mode: not applied]"
                    } else {
                        ""
                    },
                    c.source,
                    match &c.reasons {
                        Value::Array(r) if !r.is_empty() => format!(
                            ": {}",
                            r.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                        _ => String::new(),
                    }
                );
                w.send(text, event);
            }
        }
    }
}

fn w_min(cfg: &EnforceConfig) -> Action {
    cfg.webhook.as_ref().map_or(Action::Allow, |w| w.min_action)
}
