//! The detection engine as the gateway's [`RequestInspector`]: every authenticated,
//! parseable request is scored by the same pure [`moat_detect::Engine`] that `moat replay`
//! runs, with the same inputs (arrival time in milliseconds, account, key id, client IP as
//! recorded in the audit log, the request body), so live and offline decisions agree.
//!
//! The decision is attached to the request's audit record; the enforcement ladder
//! ([`crate::enforce`]) turns it into what is applied (or, in shadow mode, only logged).

use std::collections::HashSet;

use moat_detect::{AccountMeta, DetectConfig, Engine, Outcome, RequestFeatures, RequestView};
use moat_store::Account;
use parking_lot::Mutex;

use crate::api::Api;
use crate::inspect::{InspectOutcome, InspectRequest, Inspection, RequestInspector};

/// Runs the detection engine on the request path; decisions go to the enforcement ladder.
pub struct DetectionInspector {
    state: Mutex<State>,
}

struct State {
    engine: Engine,
    /// Accounts whose metadata the engine already has.
    known: HashSet<String>,
}

impl DetectionInspector {
    /// An inspector running an engine with these thresholds.
    pub fn new(cfg: DetectConfig) -> Self {
        DetectionInspector {
            state: Mutex::new(State {
                engine: Engine::new(cfg),
                known: HashSet::new(),
            }),
        }
    }

    /// The engine's current per-account reports (ranked by the caller).
    pub fn account_reports(&self) -> Vec<moat_detect::AccountReport> {
        self.state.lock().engine.account_reports()
    }
}

/// The engine's view of a stored account (the same fields `moat audit export` writes to
/// `accounts.jsonl`, so replay sees the same metadata).
pub fn account_meta(a: &Account) -> AccountMeta {
    AccountMeta {
        id: a.id.clone(),
        created_ms: Some(a.created_at.timestamp_millis()),
        tier: Some(a.tier.clone()),
        email_domain: a.email_domain.clone(),
        country: a.country.clone(),
        verified: Some(a.verified),
        allowlisted: false,
    }
}

fn engine_api(api: Api) -> Option<moat_detect::Api> {
    match api {
        Api::OpenAiChat => Some(moat_detect::Api::OpenAiChat),
        Api::OpenAiCompletions => Some(moat_detect::Api::OpenAiCompletions),
        Api::AnthropicMessages => Some(moat_detect::Api::AnthropicMessages),
        Api::OpenAiModels => None,
    }
}

impl RequestInspector for DetectionInspector {
    fn inspect(&self, req: &InspectRequest<'_>) -> Inspection {
        let Some(api) = engine_api(req.api) else {
            return Inspection::default();
        };
        // The engine's borrowed view, as replay parses it (no intermediate `serde_json::Value`):
        // the gateway's, which parsed it once and refused bodies that do not fit it; parsed
        // here only for callers that give none (a body that does not fit gives an empty view,
        // exactly like `RequestView::from_value`). The features are a pure function of the
        // request: computed before taking the lock, which is held only for the state update.
        let parsed;
        let view = match req.view {
            Some(v) => v,
            None => {
                parsed = serde_json::from_slice::<RequestView<'_>>(req.body).unwrap_or_default();
                &parsed
            }
        };
        let ip = req.ip.map(|i| i.to_string()).unwrap_or_default();
        let features =
            RequestFeatures::from_view(api, view, &ip).with_client(&req.key.id, req.user_agent);
        let ts_ms = req.ts.timestamp_millis();
        let decision = {
            let mut st = self.state.lock();
            if !st.known.contains(&req.account.id) {
                st.engine.upsert_account(account_meta(req.account));
                st.known.insert(req.account.id.clone());
            }
            st.engine.decide_features(ts_ms, &req.account.id, &features)
        };
        Inspection {
            block: None,
            decision: serde_json::to_value(&decision).ok(),
            features: Some(Box::new(features)),
        }
    }

    fn set_external(&self, account: &str, view: Option<moat_detect::ExternalView>) {
        self.state.lock().engine.set_external(account, view);
    }

    fn observe(&self, o: &InspectOutcome<'_>) {
        let outcome = Outcome::new(o.status, o.finish_reason, o.input_tokens, o.output_tokens);
        self.state.lock().engine.settle(o.account, &outcome);
    }

    fn account_reports(&self) -> Vec<moat_detect::AccountReport> {
        DetectionInspector::account_reports(self)
    }
}
