//! The detection engine: per-account state, cross-account clusters, decisions.

use std::collections::HashMap;

use crate::cluster::{self, Clusters};
use crate::config::DetectConfig;
use crate::event::{AccountMeta, AccountReport, Action, Decision, Event, Outcome};
use crate::evidence::{Context, Evidence};
use crate::features::RequestFeatures;
use crate::policy::{self, Assessment};
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
    skeletons: SkeletonTable,
    ips: [u32; IP_RING],
    ip_cursor: u8,
    last_single_turn: bool,
    peak_z: f32,
    peak_from_cluster: bool,
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
        Engine {
            cfg,
            names: Vec::new(),
            index: HashMap::new(),
            accounts: Vec::new(),
            clusters: Clusters::default(),
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
        let hl = self.cfg.rate_half_life_hours * HOUR_MS;
        let first_request = self.accounts[i as usize].evidence.n == 0;

        // account-history context of this request
        let cx = {
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
                .is_some_and(|c| ((ts_ms - c) as f64) < self.cfg.new_account_days * DAY_MS);
            st.last_single_turn = f.single_turn();
            (
                Context {
                    templated: seen_prefix > 0 || seen_suffix > 0,
                    new_ip,
                    young,
                    unverified: st.verified == Some(false),
                },
                seen_prefix,
                seen_suffix,
            )
        };
        let (cx, seen_prefix, seen_suffix) = cx;
        self.accounts[i as usize].evidence.observe(ts_ms, f, &cx, hl);
        if let Some(ce) = self.clusters.evidence_mut(i) {
            ce.observe(ts_ms, f, &cx, hl);
        }

        // cross-account links
        if !self.cfg.disable_clustering {
            let accounts = &self.accounts;
            let own = |j: u32| accounts[j as usize].evidence.clone();
            let (mk, mx) = (self.cfg.max_accounts_per_key, self.cfg.max_shared_keys);
            let cl = &mut self.clusters;
            if first_request && cx.young {
                if let Some(c) = accounts[i as usize].created_ms {
                    cl.touch_created(i, c, &own, hl);
                }
            }
            cl.touch(i, cluster::INFRA, f.subnet_key, mk, mx, &own, hl);
            cl.touch(i, cluster::FAMILY, f.system_key, mk, mx, &own, hl);
            cl.touch(i, cluster::FAMILY, f.tools_key, mk, mx, &own, hl);
            // only skeletons the account repeats are families (unique prompts are not)
            if seen_prefix >= 2 {
                cl.touch(i, cluster::FAMILY, f.prefix_key ^ 0x11, mk, mx, &own, hl);
            }
            if seen_suffix >= 2 && f.suffix_key != f.prefix_key {
                cl.touch(i, cluster::FAMILY, f.suffix_key ^ 0x11, mk, mx, &own, hl);
            }
        }

        let (a, from_cluster) = self.assess_index(i, ts_ms);
        let st = &mut self.accounts[i as usize];
        if a.z as f32 > st.peak_z {
            st.peak_z = a.z as f32;
            st.peak_from_cluster = from_cluster;
        }
        if st.allowlisted {
            return Decision {
                action: Action::Allow,
                risk: 0.0,
                reasons: vec!["account is allowlisted".to_string()],
                cluster: self.clusters.label_of(i),
            };
        }
        let risk = policy::sigmoid(a.z + policy::request_adjustment(f));
        let action = policy::action_for(risk, f, &self.cfg);
        let reasons = if action == Action::Allow { Vec::new() } else { a.reasons(3) };
        Decision {
            action,
            risk: round3(risk),
            reasons,
            cluster: self.clusters.label_of(i),
        }
    }

    /// Own assessment, or the cluster's when that is higher. Returns whether the
    /// cluster's was used.
    fn assess_index(&self, i: u32, now_ms: i64) -> (Assessment, bool) {
        let own = policy::assess(&self.accounts[i as usize].evidence, now_ms, &self.cfg);
        let size = self.clusters.size_of(i);
        if size >= self.cfg.min_cluster_size {
            if let Some(ce) = self.clusters.evidence_of(i) {
                let mut ca = policy::assess(ce, now_ms, &self.cfg);
                if ca.z > -1.5 {
                    let bonus = (0.5 * f64::from(size).ln()).min(2.0);
                    let label = self.clusters.label_of(i).unwrap_or_default();
                    let kinds = Clusters::describe_kinds(self.clusters.kinds_of(i));
                    ca.z += bonus;
                    ca.terms.push(policy::Term {
                        weight: bonus.max(0.4),
                        reason: policy::Reason::Cluster { label, size, links: kinds },
                    });
                }
                if ca.z > own.z {
                    return (ca, true);
                }
            }
        }
        (own, false)
    }

    /// Records the outcome of the account's last decided request (token usage, status).
    /// Never changes the decision already taken for that request.
    pub fn settle(&mut self, account: &str, out: &Outcome) {
        let Some(&i) = self.index.get(account) else {
            return;
        };
        let single = self.accounts[i as usize].last_single_turn;
        self.accounts[i as usize].evidence.settle(out, single);
        if let Some(ce) = self.clusters.evidence_mut(i) {
            ce.settle(out, single);
        }
    }

    /// Final per-account verdicts, in order of first appearance.
    pub fn account_reports(&self) -> Vec<AccountReport> {
        (0..self.accounts.len() as u32)
            .map(|i| {
                let st = &self.accounts[i as usize];
                let now = st.evidence.last_ts;
                let (a, _) = self.assess_index(i, now);
                let z = f64::from(st.peak_z).max(a.z);
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

    /// Approximate bytes of state per account (fixed-size account state plus its share of
    /// the index and the cross-account structures).
    pub fn state_bytes_per_account(&self) -> f64 {
        let n = self.accounts.len().max(1);
        let fixed = std::mem::size_of::<AccountState>() * self.accounts.capacity();
        let names: usize = self.names.iter().map(|s| s.capacity() * 2 + 48).sum();
        let index = self.index.capacity() * 40;
        (fixed + names + index + self.clusters.heap_bytes()) as f64 / n as f64
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
