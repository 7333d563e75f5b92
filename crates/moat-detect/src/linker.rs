//! Cross-account linking over account summaries, for detection split across workers.
//!
//! Each detector worker owns some of the accounts (partitioned by account) and runs a full
//! [`crate::Engine`] over their traffic; an engine links the accounts *it* sees into clusters.
//! A campaign whose accounts hash to different workers is linked here instead: every worker
//! sends compact [`AccountSummary`] values of its accounts (the shared keys they registered,
//! their creation time, their evidence), and a [`Linker`] applies the engine's own linking
//! rules ([`crate::cluster::Clusters`]) to them and scores each cluster on its members' pooled
//! evidence with the engine's own cluster score ([`policy::assess_cluster`]).
//!
//! Only clusters whose members are owned by at least two workers get a verdict: a cluster
//! inside one worker is that worker's engine's business (it sees every request, the linker
//! only snapshots), so with a single worker the linker changes nothing and the worker decides
//! exactly as `moat replay` does.
//!
//! Pure and deterministic: the same summaries in the same order give the same verdicts, so
//! every worker can run its own linker over the shared summary feed (no leader).

use std::collections::{BTreeMap, HashMap};

use crate::cluster::Clusters;
use crate::config::DetectConfig;
use crate::evidence::Evidence;
use crate::external::{AccountSummary, ExternalView, LinkKey};
use crate::policy;

const HOUR_MS: f64 = 3_600_000.0;

#[derive(Debug)]
struct Linked {
    name: String,
    owner: u32,
    evidence: Evidence,
    keys: Vec<LinkKey>,
    created_linked: bool,
}

/// The cross-worker linker. See the module docs.
#[derive(Debug)]
pub struct Linker {
    cfg: DetectConfig,
    clusters: Clusters,
    index: HashMap<String, u32>,
    accounts: Vec<Linked>,
}

impl Linker {
    /// An empty linker with the engine's thresholds.
    pub fn new(cfg: DetectConfig) -> Self {
        let clusters = Clusters::new(
            cfg.max_accounts_per_key,
            cfg.max_shared_keys,
            cfg.rate_half_life_hours * HOUR_MS,
        );
        Linker {
            cfg,
            clusters,
            index: HashMap::new(),
            accounts: Vec::new(),
        }
    }

    /// Number of accounts summarised so far.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// Takes the latest summary of an account owned by worker `owner`.
    pub fn update(&mut self, owner: u32, s: AccountSummary) {
        let i = match self.index.get(&s.account) {
            Some(&i) => i,
            None => {
                let i = self.clusters.add_account();
                self.index.insert(s.account.clone(), i);
                self.accounts.push(Linked {
                    name: s.account.clone(),
                    owner,
                    evidence: Evidence::default(),
                    keys: Vec::new(),
                    created_linked: false,
                });
                i
            }
        };
        {
            let a = &mut self.accounts[i as usize];
            a.owner = owner;
            a.evidence = s.evidence;
        }
        let accounts = &self.accounts;
        let own = |j: u32| accounts[j as usize].evidence.clone();
        let mut fresh = Vec::new();
        if s.new_at_first_request && !accounts[i as usize].created_linked {
            if let Some(c) = s.created_ms {
                self.clusters.touch_created(i, c, &own);
            }
        }
        for k in s.keys {
            if !accounts[i as usize].keys.contains(&k) {
                self.clusters.touch(i, k.kind, k.key, &own);
                fresh.push(k);
            }
        }
        let a = &mut self.accounts[i as usize];
        a.created_linked |= s.new_at_first_request;
        a.keys.extend(fresh);
    }

    /// Verdicts for every account in a cluster of at least `min_cluster_size` accounts owned
    /// by two or more workers, as `(account, owner, view)`; in account order of first summary.
    /// The view's `z` and `sub_z` are the cluster's score on its members' pooled evidence at
    /// the newest member's latest request.
    pub fn verdicts(&self) -> Vec<(String, u32, ExternalView)> {
        let mut groups: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for i in 0..self.accounts.len() as u32 {
            if self.clusters.size_of(i) >= self.cfg.min_cluster_size.max(2) {
                groups.entry(self.clusters.root(i)).or_default().push(i);
            }
        }
        let hl = self.cfg.rate_half_life_hours * HOUR_MS;
        let mut out = Vec::new();
        for (root, members) in groups {
            let first_owner = self.accounts[members[0] as usize].owner;
            if members
                .iter()
                .all(|&m| self.accounts[m as usize].owner == first_owner)
            {
                continue;
            }
            let mut pooled = Evidence::default();
            for &m in &members {
                pooled.merge(&self.accounts[m as usize].evidence, hl);
            }
            let label = format!("xcl_{}", self.accounts[root as usize].name);
            let a = policy::assess_cluster(
                &pooled,
                members.len() as u32,
                self.clusters.kinds_of(root),
                || label.clone(),
                pooled.last_ts,
                &self.cfg,
                true,
            );
            let view = ExternalView {
                z: a.z,
                sub_z: a.z,
                reasons: a.reasons(3),
                cluster: Some(label),
                as_of_ms: pooled.last_ts,
            };
            for m in members {
                let acct = &self.accounts[m as usize];
                out.push((acct.name.clone(), acct.owner, view.clone()));
            }
        }
        out.sort_by_key(|(name, _, _)| self.index[name]);
        out
    }
}
