//! The detection engine: per-account state, cross-account clusters, decisions.

use std::borrow::Cow;
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
use crate::weights::N_FEATURES;

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
    /// The highest rung the account has reached (its first restriction is a degrade).
    top_action: Action,
    /// What another engine concluded about the account (see [`crate::external`]).
    external: Option<Box<ExternalView>>,
}

/// One block of evidence a request is decided on (see [`Engine::blocks`]).
// The owned variant (the account without its sub-stream) lives on the stack for one
// decision; boxing it would add an allocation to every request.
#[allow(clippy::large_enum_variant)]
enum Block<'a> {
    Own(Cow<'a, Evidence>),
    Cluster(&'a Evidence, u32, u8),
    Substream(&'a Evidence),
    Principal(&'a Evidence),
}

impl Block<'_> {
    fn evidence(&self) -> &Evidence {
        match self {
            Block::Own(e) => e,
            Block::Cluster(e, _, _) | Block::Substream(e) | Block::Principal(e) => e,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Block::Own(_) => "account",
            Block::Cluster(..) => "cluster",
            Block::Substream(_) => "substream",
            Block::Principal(_) => "principal",
        }
    }
}

/// The feature values of one block of evidence behind a decision (see
/// [`Engine::keep_snapshots`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// `account`, `cluster`, `substream` or `principal`.
    pub block: &'static str,
    /// Feature values, indexed by [`crate::weights::Feature`] (request-level ones included).
    pub phi: [f64; N_FEATURES],
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
    snapshots: Option<Vec<Snapshot>>,
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
            snapshots: None,
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
            peak_z: self.cfg.weights.bias as f32,
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
        let without_intent;
        let f = if !self.cfg.intent && (f.intent != 0.0 || f.intent_flag.is_some()) {
            without_intent = RequestFeatures {
                intent: 0.0,
                intent_flag: None,
                ..f.clone()
            };
            &without_intent
        } else {
            f
        };
        let i = self.account_index(account);
        let first_request = self.accounts[i as usize].evidence.n == 0;
        let history = self.history_context(i, ts_ms, f);
        let sub = f.strongly_extraction_like() && f.single_turn();
        self.record(i, ts_ms, f, &history.cx, sub);
        if !self.cfg.disable_clustering {
            self.link(i, f, &history, first_request);
        }

        let principal = self.accounts[i as usize].last_principal_slot;
        if self.snapshots.is_some() {
            let snap = self.snapshot(i, ts_ms, sub, principal, f);
            self.snapshots = Some(snap);
        }
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
        let risk = policy::sigmoid(z + policy::request_adjustment(f, &self.cfg));
        // a graduated ladder: an account is degraded before it is challenged or blocked
        let ceiling = policy::rung_ceiling(st.top_action);
        let action = policy::action_for(risk, f, &self.cfg).min(ceiling);
        st.top_action = st.top_action.max(action);
        let reasons = match (action, external) {
            (Action::Allow, _) => Vec::new(),
            (_, Some(e)) => e.reasons.into_iter().take(3).collect(),
            (_, None) => self.reasons_for(i, ts_ms, sub, principal),
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

    /// The blocks of evidence a request is decided on: the account's own (without the
    /// extraction sub-stream for a request outside it, so a distiller's share does not
    /// taint its neighbours), its cluster's (when clustered), its extraction sub-stream's
    /// (`sub`: this request belongs to it) and its principal's.
    fn blocks(&self, i: u32, sub: bool, principal: Option<u8>) -> [Option<Block<'_>>; 4] {
        let cfg = &self.cfg;
        let st = &self.accounts[i as usize];
        let own = if !sub && st.substream.n > 0 {
            Cow::Owned(
                st.evidence
                    .minus(&st.substream, cfg.rate_half_life_hours * HOUR_MS),
            )
        } else {
            Cow::Borrowed(&st.evidence)
        };
        let size = self.clusters.size_of(i);
        let cluster = (size >= cfg.min_cluster_size)
            .then(|| self.clusters.evidence_of(i))
            .flatten()
            .map(|ce| Block::Cluster(ce, size, self.clusters.kinds_of(i)));
        let principal = match (st.principals.as_ref(), principal) {
            (Some(t), Some(slot)) => Some(Block::Principal(t.evidence(usize::from(slot)))),
            _ => None,
        };
        [
            Some(Block::Own(own)),
            cluster,
            sub.then_some(Block::Substream(&st.substream)),
            principal,
        ]
    }

    /// The highest assessment among the request's [`Engine::blocks`].
    fn evaluate(
        &self,
        i: u32,
        now_ms: i64,
        sub: bool,
        principal: Option<u8>,
        collect: bool,
    ) -> Assessment {
        let cfg = &self.cfg;
        let mut best: Option<Assessment> = None;
        for b in self.blocks(i, sub, principal).into_iter().flatten() {
            let a = match b {
                Block::Cluster(ce, size, kinds) => policy::assess_cluster(
                    ce,
                    size,
                    kinds,
                    || self.clusters.label_of(i).unwrap_or_default(),
                    now_ms,
                    cfg,
                    collect,
                ),
                b => policy::assess_with(b.evidence(), now_ms, cfg, collect),
            };
            if best.as_ref().is_none_or(|x| a.z > x.z) {
                best = Some(a);
            }
        }
        best.unwrap_or_default()
    }

    /// Reasons for a restricted request: the deciding block's, and a note when only the
    /// account's extraction-style requests (or one principal's) are restricted while the
    /// rest of its traffic looks ordinary, so the operator learns that the account carries a
    /// distiller (a reseller's end user, a leaked key) rather than being one.
    fn reasons_for(&self, i: u32, now_ms: i64, sub: bool, principal: Option<u8>) -> Vec<String> {
        let best = self.evaluate(i, now_ms, sub, principal, true);
        let rest = self.evaluate(i, now_ms, false, None, false);
        let mut reasons = best.reasons(3);
        let throttle_z = (self.cfg.throttle_at / (1.0 - self.cfg.throttle_at)).ln();
        if best.z > rest.z && rest.z < throttle_z {
            reasons.insert(
                0,
                format!(
                    "mixed account: its other traffic looks ordinary (risk {:.2}); only its extraction-style requests{} are restricted",
                    policy::sigmoid(rest.z),
                    if principal.is_some() && !sub { " from one key / end user" } else { "" }
                ),
            );
        }
        reasons
    }

    /// Feature values of each block the request was decided on, the request-level ones
    /// added (what `research/fit` fits the weights on).
    fn snapshot(
        &self,
        i: u32,
        now_ms: i64,
        sub: bool,
        principal: Option<u8>,
        f: &RequestFeatures,
    ) -> Vec<Snapshot> {
        let req = policy::request_features(f);
        self.blocks(i, sub, principal)
            .into_iter()
            .flatten()
            .map(|b| {
                let mut phi = match &b {
                    Block::Cluster(ce, size, kinds) => {
                        policy::cluster_features(ce, *size, *kinds, now_ms, &self.cfg)
                    }
                    b => policy::features_of(b.evidence(), now_ms, &self.cfg),
                }
                .v;
                for (x, r) in phi.iter_mut().zip(req) {
                    *x += r;
                }
                Snapshot {
                    block: b.kind(),
                    phi,
                }
            })
            .collect()
    }

    /// Starts (or stops) keeping the feature values of each decision for
    /// [`Engine::take_snapshot`] (research: fitting the weights; off by default).
    pub fn keep_snapshots(&mut self, on: bool) {
        self.snapshots = on.then(Vec::new);
    }

    /// The feature values behind the latest decision (empty unless
    /// [`Engine::keep_snapshots`] is on).
    pub fn take_snapshot(&mut self) -> Vec<Snapshot> {
        self.snapshots
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
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
