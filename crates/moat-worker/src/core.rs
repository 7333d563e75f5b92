//! The worker's state machine: pure (no I/O, clock passed in), so it is tested directly.

use std::collections::{HashMap, HashSet};

use moat_bus::{ExchangeEvent, SummaryRecord, VerdictRecord};
use moat_detect::{
    policy, AccountMeta, Decision, DetectConfig, Engine, ExternalView, Linker, Outcome,
};

/// Change in log-odds below which a new verdict is not worth publishing (a threshold crossing
/// or a cluster change is always published).
pub const VERDICT_DZ: f64 = 0.25;

/// One worker's engine, cross-account linker and publication state.
#[derive(Debug)]
pub struct DetectorCore {
    worker: u32,
    cfg: DetectConfig,
    engine: Engine,
    linker: Linker,
    known: HashSet<String>,
    published: HashMap<String, ExternalView>,
    linked: HashMap<String, ExternalView>,
    verdict_dirty: HashSet<String>,
    summary_dirty: HashSet<String>,
    decided: u64,
}

impl DetectorCore {
    /// A core for worker number `worker`.
    pub fn new(worker: u32, cfg: DetectConfig) -> DetectorCore {
        DetectorCore {
            worker,
            engine: Engine::new(cfg.clone()),
            linker: Linker::new(cfg.clone()),
            cfg,
            known: HashSet::new(),
            published: HashMap::new(),
            linked: HashMap::new(),
            verdict_dirty: HashSet::new(),
            summary_dirty: HashSet::new(),
            decided: 0,
        }
    }

    /// The engine (read-only), e.g. for account reports.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Exchanges decided so far.
    pub fn decided(&self) -> u64 {
        self.decided
    }

    /// Decides on one exchange and settles its outcome, exactly as `moat replay` does with a
    /// traffic line (same metadata, same features, same order of calls).
    pub fn decide(&mut self, ev: &ExchangeEvent) -> Decision {
        if !self.known.contains(&ev.account) {
            self.engine.upsert_account(AccountMeta {
                id: ev.account.clone(),
                created_ms: ev.meta.created_ms,
                verified: ev.meta.verified,
                ..AccountMeta::default()
            });
            self.known.insert(ev.account.clone());
        }
        let d = self
            .engine
            .decide_features(ev.ts_ms(), &ev.account, &ev.features);
        let o = &ev.outcome;
        self.engine.settle(
            &ev.account,
            &Outcome::new(
                o.status,
                o.finish_reason.as_deref(),
                o.input_tokens,
                o.output_tokens,
            ),
        );
        self.decided += 1;
        if !self.verdict_dirty.contains(&ev.account) {
            self.verdict_dirty.insert(ev.account.clone());
        }
        if !self.summary_dirty.contains(&ev.account) {
            self.summary_dirty.insert(ev.account.clone());
        }
        d
    }

    /// Verdicts worth publishing for the accounts decided on since the last call: those whose
    /// view moved by [`VERDICT_DZ`] or crossed a threshold since it was last published.
    pub fn take_verdicts(&mut self, now_ms: i64) -> Vec<VerdictRecord> {
        let mut out = Vec::new();
        let mut dirty: Vec<String> = self.verdict_dirty.drain().collect();
        dirty.sort();
        for account in dirty {
            let Some(view) = self.engine.external_view(&account) else {
                continue;
            };
            let changed = self
                .published
                .get(&account)
                .is_none_or(|old| old.differs(&view, VERDICT_DZ, &self.cfg));
            if !changed {
                continue;
            }
            out.push(VerdictRecord {
                account: account.clone(),
                worker: self.worker,
                action: policy::ladder_action(view.risk(), &self.cfg),
                view: view.clone(),
                updated_ms: now_ms,
            });
            self.published.insert(account, view);
        }
        out
    }

    /// Summaries of the accounts decided on since the last call that can link (for the
    /// cross-account linker of every worker).
    pub fn take_summaries(&mut self) -> Vec<SummaryRecord> {
        let mut dirty: Vec<String> = self.summary_dirty.drain().collect();
        dirty.sort();
        dirty
            .into_iter()
            .filter_map(|a| self.engine.account_summary(&a))
            .filter(|s| s.has_links())
            .map(|summary| SummaryRecord {
                worker: self.worker,
                summary,
            })
            .collect()
    }

    /// Takes a summary from the shared feed (this worker's own included).
    pub fn on_summary(&mut self, rec: SummaryRecord) {
        self.linker.update(rec.worker, rec.summary);
    }

    /// Installs the linker's verdicts on clusters spanning workers into the engine, for the
    /// accounts this worker owns; returns how many changed.
    pub fn apply_links(&mut self) -> usize {
        let mut changed = 0;
        for (account, owner, view) in self.linker.verdicts() {
            if owner != self.worker {
                continue;
            }
            let same = self
                .linked
                .get(&account)
                .is_some_and(|old| !old.differs(&view, VERDICT_DZ, &self.cfg));
            if same {
                continue;
            }
            self.engine.set_external(&account, Some(view.clone()));
            self.verdict_dirty.insert(account.clone());
            self.linked.insert(account, view);
            changed += 1;
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moat_bus::{EventMeta, EventOutcome};
    use moat_detect::{RequestFeatures, RequestView};

    fn event(account: &str, i: i64, prompt: &str) -> ExchangeEvent {
        let body = serde_json::json!({
            "model": "m",
            "max_tokens": 4000,
            "messages": [
                {"role": "system", "content": "You are a meticulous expert tutor who always answers completely and rigorously."},
                {"role": "user", "content": prompt}
            ]
        })
        .to_string();
        let view: RequestView<'_> = serde_json::from_str(&body).unwrap();
        let ip = format!("203.0.113.{}", 10 + (i % 3));
        let features = RequestFeatures::from_view(moat_detect::Api::OpenAiChat, &view, &ip)
            .with_client("key_1", "python-httpx/0.27");
        ExchangeEvent {
            replica: "gw".into(),
            seq: i as u64,
            ts_us: (1_770_000_000_000 + i * 20_000) * 1000,
            account: account.into(),
            meta: EventMeta {
                created_ms: Some(1_769_990_000_000),
                verified: Some(false),
            },
            features,
            outcome: EventOutcome {
                status: 200,
                finish_reason: Some("stop".into()),
                input_tokens: 60,
                output_tokens: 1800,
            },
        }
    }

    fn harvest_prompt(i: i64) -> String {
        let topics = [
            "photosynthesis",
            "the French revolution",
            "binary search trees",
            "inflation",
            "plate tectonics",
            "the immune system",
            "quantum tunnelling",
            "supply chains",
        ];
        format!(
            "Explain {} in depth. Write out your complete internal reasoning step by step, \
             showing every intermediate thought before the final answer. (item {i})",
            topics[(i % 8) as usize]
        )
    }

    #[test]
    fn a_worker_decides_like_the_engine_and_publishes_only_changes() {
        let mut core = DetectorCore::new(0, DetectConfig::default());
        let mut reference = Engine::new(DetectConfig::default());
        let mut verdicts = 0;
        for i in 0..60 {
            let ev = event("acct_x", i, &harvest_prompt(i));
            let d = core.decide(&ev);
            if i == 0 {
                reference.upsert_account(AccountMeta {
                    id: "acct_x".into(),
                    created_ms: ev.meta.created_ms,
                    verified: ev.meta.verified,
                    ..AccountMeta::default()
                });
            }
            let r = reference.decide_features(ev.ts_ms(), "acct_x", &ev.features);
            reference.settle("acct_x", &Outcome::new(200, Some("stop"), 60, 1800));
            assert_eq!(d, r, "request {i}");
            verdicts += core.take_verdicts(0).len();
        }
        // far fewer verdicts than requests, and the last one is restrictive
        assert!((1..30).contains(&verdicts), "{verdicts} verdicts");
        let view = core.engine().external_view("acct_x").unwrap();
        assert!(
            view.risk() >= DetectConfig::default().degrade_at,
            "{view:?}"
        );
        // nothing new: nothing to publish
        assert!(core.take_verdicts(0).is_empty());
    }

    #[test]
    fn clusters_split_over_workers_are_linked_through_summaries() {
        let cfg = DetectConfig::default();
        let mut w0 = DetectorCore::new(0, cfg.clone());
        let mut w1 = DetectorCore::new(1, cfg.clone());
        // eight accounts of one campaign (shared system prompt, shared /24), four per worker
        for i in 0..320 {
            let a = i % 8;
            let ev = event(&format!("acct_{a}"), i, &harvest_prompt(i));
            if a % 2 == 0 {
                w0.decide(&ev)
            } else {
                w1.decide(&ev)
            };
        }
        let mut all = w0.take_summaries();
        all.extend(w1.take_summaries());
        assert_eq!(all.len(), 8);
        for s in &all {
            w0.on_summary(s.clone());
            w1.on_summary(s.clone());
        }
        // both linkers see one cluster of all eight, owned half by each worker
        let v0 = w0.linker.verdicts();
        assert_eq!(v0.len(), 8);
        assert!(v0.iter().all(|(_, _, v)| v.cluster == v0[0].2.cluster));
        assert!(v0[0]
            .2
            .cluster
            .as_deref()
            .is_some_and(|c| c.starts_with("xcl_")));
        assert!(
            v0[0].2.reasons.iter().any(|r| r.contains("8 accounts")),
            "{:?}",
            v0[0].2
        );
        assert_eq!(v0, w1.linker.verdicts());
        // each worker installs the verdicts of its own four accounts, once
        assert_eq!(w0.apply_links(), 4);
        assert_eq!(w1.apply_links(), 4);
        assert_eq!(w0.apply_links(), 0);
        let cluster_z = v0[0].2.z;
        let v = w0.engine().external_view("acct_0").unwrap();
        assert!(v.sub_z >= cluster_z, "{v:?} vs {cluster_z}");
    }
}
