//! The detection engine: per-account state, cross-account clusters, decisions.

use std::collections::HashMap;

use crate::cluster::{self, Clusters};
use crate::config::DetectConfig;
use crate::event::{AccountMeta, AccountReport, Action, Decision, Event, Outcome};
use crate::evidence::{Context, Evidence, SettleKind};
use crate::external::{AccountSummary, ExternalView, LinkKeys};
use crate::features::RequestFeatures;
use crate::policy::{self, Assessment};
use crate::principals::PrincipalTable;
use crate::signals::skeleton::SkeletonTable;

const DAY_MS: f64 = 86_400_000.0;
const HOUR_MS: f64 = 3_600_000.0;
const IP_RING: usize = 8;

/// Bounded state of one account.
#[derive(Debug, Clone, Default)]
struct AccountState {
    created_ms: Option<i64>,
    verified: Option<bool>,
    allowlisted: bool,
    evidence: Evidence,
    /// Evidence over the account's strongly extraction-like single-turn requests only, so
    /// that a distiller hidden among a reseller's ordinary end users is scored on its own.
    substream: Evidence,
    skeletons: SkeletonTable,
    ips: [u32; IP_RING],
    ip_cursor: u8,
    last_kind: SettleKind,
    last_in_substream: bool,
    peak_z: f32,
    first_principal: u64,
    principals: Option<Box<PrincipalTable>>,
    last_principal_slot: Option<u8>,
    /// Shared keys registered with the cross-account index (for [`AccountSummary`]).
    links: LinkKeys,
    /// The account was new at its first request (it takes part in creation-burst links).
    new_at_first_request: bool,
    /// What another engine concluded about the account (see [`crate::external`]).
    external: Option<Box<ExternalView>>,
}

/// A request read against its account's history.
struct History {
    cx: Context,
    seen_prefix: u32,
    seen_suffix: u32,
}

/// The extraction detection engine. Pure: events in, decisions out; the only clock is
/// the events' timestamps; same input sequence, same decisions.
#[derive(Debug)]
pub struct Engine {
    cfg: DetectConfig,
    names: Vec<String>,
    index: HashMap<String, u32>,
    accounts: Vec<AccountState>,
    clusters: Clusters,
}

impl Engine {
    /// Creates an engine with the given thresholds.
    pub fn new(cfg: DetectConfig) -> Self {
        let clusters = Clusters::new(
            cfg.max_accounts_per_key,
            cfg.max_shared_keys,
            cfg.rate_half_life_hours * HOUR_MS,
        );
        Engine {
            names: Vec::new(),
            index: HashMap::new(),
            accounts: Vec::new(),
            cfg,
            clusters,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &DetectConfig {
        &self.cfg
    }

    fn account_index(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = self.clusters.add_account();
        self.names.push(id.to_string());
        self.index.insert(id.to_string(), i);
        self.accounts.push(AccountState {
            peak_z: policy::PRIOR_Z as f32,
            ..AccountState::default()
        });
        i
    }

    /// Adds or updates account metadata (creation time, verification, allowlist).
    pub fn upsert_account(&mut self, meta: AccountMeta) {
        let i = self.account_index(&meta.id) as usize;
        let st = &mut self.accounts[i];
        st.created_ms = meta.created_ms;
        st.verified = meta.verified;
        st.allowlisted = meta.allowlisted;
    }

    /// Decides on one request, using everything seen before plus this request, and
    /// updates the state. Equivalent to `decide_features(ev.ts_ms, &ev.account,
    /// &RequestFeatures::extract(ev))`.
    pub fn decide(&mut self, ev: &Event) -> Decision {
        let f = RequestFeatures::extract(ev);
        self.decide_features(ev.ts_ms, &ev.account, &f)
    }

    /// Same as [`Engine::decide`] with features computed beforehand (they are a pure
    /// function of the event, so callers may compute them in parallel).
    pub fn decide_features(&mut self, ts_ms: i64, account: &str, f: &RequestFeatures) -> Decision {
        let i = self.account_index(account);
        let first_request = self.accounts[i as usize].evidence.n == 0;
        let history = self.history_context(i, ts_ms, f);
        let sub = f.strongly_extraction_like() && f.single_turn();
        self.record(i, ts_ms, f, &history.cx, sub);
        if !self.cfg.disable_clustering {
            self.link(i, f, &history, first_request);
        }

        let principal = self.accounts[i as usize].last_principal_slot;
        let own = self.evaluate(i, ts_ms, sub, principal, false);
        let st = &mut self.accounts[i as usize];
        // the higher of this engine's assessment and an external one (a detector worker's)
        let external = st
            .external
            .as_deref()
            .filter(|e| e.z_for(sub) > own.z)
            .cloned();
        let z = external.as_ref().map_or(own.z, |e| e.z_for(sub));
        if z as f32 > st.peak_z {
            st.peak_z = z as f32;
        }
        let local = self.clusters.label_of(i);
        let cluster = match &external {
            Some(e) => e.cluster.clone().or(local),
            None => local.or_else(|| st.external.as_ref().and_then(|e| e.cluster.clone())),
        };
        if st.allowlisted {
            return Decision {
                action: Action::Allow,
                risk: 0.0,
                reasons: vec!["account is allowlisted".to_string()],
                cluster,
            };
        }
        let risk = policy::sigmoid(z + policy::request_adjustment(f));
        let action = policy::action_for(risk, f, &self.cfg);
        let reasons = match (action, external) {
            (Action::Allow, _) => Vec::new(),
            (_, Some(e)) => e.reasons.into_iter().take(3).collect(),
            (_, None) => self.evaluate(i, ts_ms, sub, principal, true).reasons(3),
        };
        Decision {
            action,
            risk: round3(risk),
            reasons,
            cluster,
        }
    }

    /// Installs (or, with `None`, removes) what another engine concluded about `account`;
    /// from now on each of its requests is decided on the higher of this engine's own
    /// assessment and that one (see [`crate::external`]).
    pub fn set_external(&mut self, account: &str, view: Option<ExternalView>) {
        let i = self.account_index(account) as usize;
        self.accounts[i].external = view.map(Box::new);
    }

    /// This engine's account-level assessment of `account` at its latest request, for other
    /// engines (`None` for an account it has not seen): the higher of its own and any
    /// installed external view, for requests outside and inside the extraction sub-stream.
    pub fn external_view(&self, account: &str) -> Option<ExternalView> {
        let &i = self.index.get(account)?;
        let st = &self.accounts[i as usize];
        let now = st.evidence.last_ts;
        let rest = self.evaluate(i, now, false, None, true);
        let sub = self.evaluate(i, now, true, None, true);
        let mut view = ExternalView {
            z: rest.z,
            sub_z: sub.z.max(rest.z),
            reasons: if sub.z > rest.z { &sub } else { &rest }.reasons(3),
            cluster: self.clusters.label_of(i),
            as_of_ms: now,
        };
        if let Some(e) = st.external.as_deref() {
            if e.z_for(true) > view.sub_z {
                view.reasons = e.reasons.clone();
                view.cluster = e.cluster.clone().or(view.cluster);
            }
            view.z = view.z.max(e.z);
            view.sub_z = view.sub_z.max(e.z_for(true));
            view.cluster = view.cluster.or_else(|| e.cluster.clone());
            view.as_of_ms = view.as_of_ms.max(e.as_of_ms);
        }
        Some(view)
    }

    /// The compact summary of `account` that the cross-account linker needs
    /// ([`crate::linker`]); `None` for an account this engine has not seen.
    pub fn account_summary(&self, account: &str) -> Option<AccountSummary> {
        let &i = self.index.get(account)?;
        let st = &self.accounts[i as usize];
        Some(AccountSummary {
            account: account.to_string(),
            created_ms: st.created_ms,
            new_at_first_request: st.new_at_first_request,
            keys: st.links.as_slice().to_vec(),
            evidence: st.evidence.clone(),
        })
    }

    /// What this request means given the account's own history (templates, addresses,
    /// age); updates the skeleton table and the address ring.
    fn history_context(&mut self, i: u32, ts_ms: i64, f: &RequestFeatures) -> History {
        let new_account_ms = self.cfg.new_account_days * DAY_MS;
        let st = &mut self.accounts[i as usize];
        let seen_prefix = st.skeletons.observe(f.prefix_key);
        let seen_suffix = if f.suffix_key != f.prefix_key {
            st.skeletons.observe(f.suffix_key)
        } else {
            seen_prefix
        };
        let ip32 = (f.ip_key as u32) | 1;
        let new_ip = !st.ips.contains(&ip32);
        if new_ip {
            st.ips[usize::from(st.ip_cursor) % IP_RING] = ip32;
            st.ip_cursor = st.ip_cursor.wrapping_add(1);
        }
        let young = st
            .created_ms
            .is_some_and(|c| ((ts_ms - c) as f64) < new_account_ms);
        History {
            cx: Context {
                templated: seen_prefix > 0 || seen_suffix > 0,
                new_ip,
                young,
                unverified: st.verified == Some(false),
            },
            seen_prefix,
            seen_suffix,
        }
    }

    /// Adds the request to the account's evidence blocks (whole account, extraction
    /// sub-stream, principal) and to its cluster's.
    fn record(&mut self, i: u32, ts_ms: i64, f: &RequestFeatures, cx: &Context, sub: bool) {
        let st = &mut self.accounts[i as usize];
        st.last_in_substream = sub;
        st.last_kind = SettleKind {
            single_turn: f.single_turn(),
            novel: f.single_turn() && !cx.templated,
            templated_reasoning: f.single_turn()
                && cx.templated
                && (f.reasoning >= crate::signals::reasoning::MEDIUM || f.thinking_budget >= 1024),
        };
        st.last_principal_slot = None;
        if f.principal_key != 0 {
            if st.first_principal == 0 {
                st.first_principal = f.principal_key;
            } else if st.principals.is_none() && f.principal_key != st.first_principal {
                // the history so far belongs to the first principal
                st.principals = Some(Box::new(PrincipalTable::new(
                    st.first_principal,
                    &st.evidence,
                )));
            }
            if let Some(t) = st.principals.as_mut() {
                let slot = t.slot(f.principal_key);
                t.evidence_mut(slot).observe(ts_ms, f, cx);
                st.last_principal_slot = Some(slot as u8);
            }
        }
        st.evidence.observe(ts_ms, f, cx);
        if sub {
            st.substream.observe(ts_ms, f, cx);
        }
        if let Some(ce) = self.clusters.evidence_mut(i) {
            ce.observe(ts_ms, f, cx);
        }
    }

    /// Registers the request's shared keys (infrastructure, system prompt, templates) and
    /// links the account with others (see [`crate::cluster`]).
    fn link(&mut self, i: u32, f: &RequestFeatures, h: &History, first_request: bool) {
        let accounts = &self.accounts;
        let own = |j: u32| accounts[j as usize].evidence.clone();
        let cl = &mut self.clusters;
        let st = &accounts[i as usize];
        let new_at_first_request = first_request && h.cx.young && st.created_ms.is_some();
        if new_at_first_request {
            if let Some(c) = st.created_ms {
                cl.touch_created(i, c, &own);
            }
        }
        let mut keys: [(u8, u64); 6] = [(0, 0); 6];
        // an address must recur (be in the recent ring) before its subnet counts as the
        // account's infrastructure: rotating proxies would otherwise collide with everyone
        if !h.cx.new_ip {
            keys[0] = (cluster::INFRA, f.subnet_key);
        }
        keys[1] = (cluster::FAMILY, f.system_key);
        // tool sets and repeated skeletons are weaker families (generic agent tools,
        // public benchmark texts): they only link together with shared infrastructure
        keys[2] = (cluster::TEMPLATE, f.tools_key);
        // only skeletons the account repeats are families (unique prompts are not)
        if h.seen_prefix >= 2 {
            keys[3] = (cluster::TEMPLATE, f.prefix_key ^ 0x11);
        }
        if h.seen_suffix >= 2 && f.suffix_key != f.prefix_key {
            keys[4] = (cluster::TEMPLATE, f.suffix_key ^ 0x11);
        }
        // extraction-style use of a system prompt, by an account whose traffic is mostly
        // like that, links accounts without shared infrastructure
        if f.strongly_extraction_like() && st.evidence.n >= 5 && st.substream.n * 2 >= st.evidence.n
        {
            keys[5] = (cluster::FAMILY | cluster::SUSPECT, f.system_key);
        }
        for &(kind, key) in keys.iter().filter(|(_, key)| *key != 0) {
            cl.touch(i, kind, key, &own);
        }
        let st = &mut self.accounts[i as usize];
        st.new_at_first_request |= new_at_first_request;
        for &(kind, key) in &keys {
            st.links.add(kind, key);
        }
    }

    /// The highest of: the account's own assessment (without the extraction sub-stream
    /// for a request outside it), its cluster's (when clustered), its extraction
    /// sub-stream's (`sub`: this request belongs to it) and its principal's.
    fn evaluate(
        &self,
        i: u32,
        now_ms: i64,
        sub: bool,
        principal: Option<u8>,
        collect: bool,
    ) -> Assessment {
        let cfg = &self.cfg;
        let st = &self.accounts[i as usize];
        // a request outside the extraction sub-stream is judged on the rest of the
        // account's traffic, so a distiller's share does not taint its neighbours
        let mut best = if !sub && st.substream.n > 0 {
            let rest = st
                .evidence
                .minus(&st.substream, cfg.rate_half_life_hours * HOUR_MS);
            policy::assess_with(&rest, now_ms, cfg, collect)
        } else {
            policy::assess_with(&st.evidence, now_ms, cfg, collect)
        };
        let size = self.clusters.size_of(i);
        if size >= cfg.min_cluster_size {
            if let Some(ce) = self.clusters.evidence_of(i) {
                let ca = policy::assess_cluster(
                    ce,
                    size,
                    self.clusters.kinds_of(i),
                    || self.clusters.label_of(i).unwrap_or_default(),
                    now_ms,
                    cfg,
                    collect,
                );
                if ca.z > best.z {
                    best = ca;
                }
            }
        }
        if sub {
            let s = policy::assess_with(&st.substream, now_ms, cfg, collect);
            if s.z > best.z {
                best = s;
            }
        }
        if let (Some(t), Some(slot)) = (st.principals.as_ref(), principal) {
            let p = policy::assess_with(t.evidence(usize::from(slot)), now_ms, cfg, collect);
            if p.z > best.z {
                best = p;
            }
        }
        best
    }

    /// Records the outcome of the account's last decided request (token usage, status).
    /// Never changes the decision already taken for that request.
    pub fn settle(&mut self, account: &str, out: &Outcome) {
        let Some(&i) = self.index.get(account) else {
            return;
        };
        let hl = self.cfg.rate_half_life_hours * HOUR_MS;
        let st = &mut self.accounts[i as usize];
        let kind = st.last_kind;
        st.evidence.settle(out, kind, hl);
        if st.last_in_substream {
            st.substream.settle(out, kind, hl);
        }
        if let (Some(t), Some(slot)) = (st.principals.as_mut(), st.last_principal_slot) {
            t.evidence_mut(usize::from(slot)).settle(out, kind, hl);
        }
        if let Some(ce) = self.clusters.evidence_mut(i) {
            ce.settle(out, kind, hl);
        }
    }

    /// Final per-account verdicts, in order of first appearance.
    pub fn account_reports(&self) -> Vec<AccountReport> {
        (0..self.accounts.len() as u32)
            .map(|i| {
                let st = &self.accounts[i as usize];
                let now = st.evidence.last_ts;
                let slots = st.principals.as_ref().map_or(0, |t| t.used());
                let a = (0..slots)
                    .map(|k| self.evaluate(i, now, true, Some(k as u8), true))
                    .chain(std::iter::once(self.evaluate(i, now, true, None, true)))
                    .max_by(|x, y| x.z.total_cmp(&y.z))
                    .unwrap_or_default();
                let ext = st.external.as_deref().map_or(f64::MIN, |e| e.z_for(true));
                let z = f64::from(st.peak_z).max(a.z).max(ext);
                let risk = policy::sigmoid(z);
                let verdict = if st.allowlisted {
                    "allowlisted"
                } else if risk >= self.cfg.degrade_at {
                    "extraction"
                } else if risk >= self.cfg.throttle_at {
                    "suspicious"
                } else {
                    "benign"
                };
                AccountReport {
                    account: self.names[i as usize].clone(),
                    risk: round3(if st.allowlisted { 0.0 } else { risk }),
                    verdict: verdict.to_string(),
                    cluster: self.clusters.label_of(i),
                    reasons: a.reasons(4),
                }
            })
            .collect()
    }

    /// Number of accounts with state.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// Bytes of the fixed-size per-account state (evidence counters, skeleton table,
    /// address ring, metadata): the same after ten requests or ten million. Accounts with
    /// several principals (keys / end users / clients) add one [`PrincipalTable`] of
    /// `principal_table_bytes()`.
    pub fn account_state_bytes() -> usize {
        std::mem::size_of::<AccountState>()
    }

    /// Bytes of the principal table an account gets once it has a second principal.
    pub fn principal_table_bytes() -> usize {
        std::mem::size_of::<PrincipalTable>()
    }

    /// Approximate bytes of state per account (fixed-size account state plus its share of
    /// the index and the cross-account structures).
    pub fn state_bytes_per_account(&self) -> f64 {
        let n = self.accounts.len().max(1);
        let fixed = std::mem::size_of::<AccountState>() * self.accounts.capacity();
        let names: usize = self.names.iter().map(|s| s.capacity() * 2 + 48).sum();
        let index = self.index.capacity() * 40;
        let principals: usize = self
            .accounts
            .iter()
            .filter(|a| a.principals.is_some())
            .count()
            * std::mem::size_of::<PrincipalTable>();
        let links: usize = self.accounts.iter().map(|a| a.links.heap_bytes()).sum();
        (fixed + names + index + principals + links + self.clusters.heap_bytes()) as f64 / n as f64
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
