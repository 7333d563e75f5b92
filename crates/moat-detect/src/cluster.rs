//! Cross-account linking: accounts that share infrastructure, prompt families and
//! creation time are merged into clusters, and a cluster is scored as a whole on the sum
//! of its members' evidence — so a hundred accounts that each stay under every
//! per-account threshold are still caught together.
//!
//! Algorithm (online, deterministic, bounded):
//!
//! * Each request registers the account under a few *shared keys*: its /24 subnet
//!   (kind `INFRA`, only once the address recurs), its system prompt (kind `FAMILY`), its
//!   tool definitions and any prompt skeleton it repeats (kind `TEMPLATE`). At its first request a new account (younger than
//!   `new_account_days`) is also compared with recently created accounts (kind `CREATED`:
//!   created within 72 h of each other).
//! * When an account meets another under a key, the pair records that kind of link.
//! * Requests that are strongly extraction-like (full reasoning trace, native thinking,
//!   sampling/probing parameters, grader prompts) also register their families under a
//!   separate namespace (kind `SUSPECT`): accounts that use *the same* family *for
//!   extraction-style requests* are linked even without shared infrastructure — the
//!   distributed attacker on residential proxies with aged accounts.
//! * A pair is merged (union-find) once it shares a system prompt **and** either
//!   infrastructure, a creation burst, or extraction-style use of that prompt; or a
//!   template/tool set **and** infrastructure. One coincidence (a public benchmark prompt,
//!   a generic agent tool set, a cloud /24, two sign-ups on the same day) never links
//!   accounts on its own.
//! * A cluster's evidence is the sum of its members' (see [`crate::evidence`]); its risk
//!   adds a size term only when the pooled evidence is already suspicious and the
//!   cluster shares infrastructure or a creation burst (a cluster linked by prompt
//!   family alone is scored on its pooled evidence only).
//!
//! Bounds: at most `max_accounts_per_key` members are remembered per key (later accounts
//! are still compared with them), at most `max_shared_keys` keys overall (new keys are
//! ignored beyond that), and one byte per linked pair, at most [`MAX_PAIRS`] pairs.

use std::collections::HashMap;

use crate::evidence::Evidence;

/// Shared infrastructure (/24 subnet).
pub const INFRA: u8 = 1;
/// Shared system prompt.
pub const FAMILY: u8 = 2;
/// Shared tool set or repeated prompt skeleton (weaker: generic tools, public texts).
pub const TEMPLATE: u8 = 16;
/// Created within 72 h of each other while new.
pub const CREATED: u8 = 4;
/// Shared prompt family used, by both accounts, in strongly extraction-like requests
/// (full reasoning traces, native thinking, sampling/probing parameters, grading).
pub const SUSPECT: u8 = 8;

const CREATED_WINDOW_MS: i64 = 72 * 3_600_000;
const RECENT_YOUNG: usize = 256;
/// Linked-pair records kept at most (one byte of link kinds each); new pairs are ignored
/// beyond that.
pub const MAX_PAIRS: usize = 1 << 22;

/// Union-find over account indices plus the shared-key index.
#[derive(Debug, Default)]
pub struct Clusters {
    parent: Vec<u32>,
    size: Vec<u32>,
    kinds: Vec<u8>,
    label: Vec<u32>,
    evidence: HashMap<u32, Evidence>,
    next_label: u32,
    keys: HashMap<u64, Vec<u32>>,
    pairs: HashMap<u64, u8>,
    recent_young: Vec<(u32, i64)>,
    young_cursor: usize,
    max_members: usize,
    max_keys: usize,
    half_life_ms: f64,
}

impl Clusters {
    /// Empty index: at most `max_members` remembered accounts per key, `max_keys` keys;
    /// `half_life_ms` is the evidence decay used when merging.
    pub fn new(max_members: usize, max_keys: usize, half_life_ms: f64) -> Self {
        Clusters {
            max_members,
            max_keys,
            half_life_ms,
            ..Clusters::default()
        }
    }

    /// Registers account index `i` (indices must be dense, in creation order).
    pub fn add_account(&mut self) -> u32 {
        let i = self.parent.len() as u32;
        self.parent.push(i);
        self.size.push(1);
        self.kinds.push(0);
        self.label.push(0);
        i
    }

    /// Root of `i`'s cluster.
    pub fn find(&mut self, mut i: u32) -> u32 {
        while self.parent[i as usize] != i {
            let p = self.parent[i as usize];
            self.parent[i as usize] = self.parent[p as usize];
            i = p;
        }
        i
    }

    /// Root without path compression (for `&self` readers).
    pub fn root(&self, mut i: u32) -> u32 {
        while self.parent[i as usize] != i {
            i = self.parent[i as usize];
        }
        i
    }

    /// Number of accounts in `i`'s cluster.
    pub fn size_of(&self, i: u32) -> u32 {
        self.size[self.root(i) as usize]
    }

    /// Link kinds that built `i`'s cluster.
    pub fn kinds_of(&self, i: u32) -> u8 {
        self.kinds[self.root(i) as usize]
    }

    /// `cl_N` label of `i`'s cluster (None for a singleton).
    pub fn label_of(&self, i: u32) -> Option<String> {
        let r = self.root(i) as usize;
        (self.size[r] >= 2 && self.label[r] > 0).then(|| format!("cl_{}", self.label[r]))
    }

    /// Pooled evidence of `i`'s cluster (None for a singleton).
    pub fn evidence_of(&self, i: u32) -> Option<&Evidence> {
        self.evidence.get(&self.root(i))
    }

    /// Mutable pooled evidence of `i`'s cluster (None for a singleton).
    pub fn evidence_mut(&mut self, i: u32) -> Option<&mut Evidence> {
        let r = self.find(i);
        self.evidence.get_mut(&r)
    }

    /// Records that account `i` uses shared key `key` of kind `kind`; links with the
    /// accounts already seen under it. `own` gives each account's evidence for merging.
    pub fn touch(&mut self, i: u32, kind: u8, key: u64, own: &dyn Fn(u32) -> Evidence) {
        if key == 0 {
            return;
        }
        let tagged = key ^ (u64::from(kind) << 56);
        let members = match self.keys.get_mut(&tagged) {
            Some(m) => m,
            None => {
                if self.keys.len() >= self.max_keys {
                    return;
                }
                self.keys.entry(tagged).or_default()
            }
        };
        if members.contains(&i) {
            return;
        }
        let others: Vec<u32> = members.clone();
        if members.len() < self.max_members {
            members.push(i);
        }
        for j in others {
            self.link(i, j, kind, own);
        }
    }

    /// Called at an account's first request when the account is new: links it (kind
    /// `CREATED`) with recently created new accounts.
    pub fn touch_created(&mut self, i: u32, created_ms: i64, own: &dyn Fn(u32) -> Evidence) {
        let near: Vec<u32> = self
            .recent_young
            .iter()
            .filter(|(_, c)| (c - created_ms).abs() <= CREATED_WINDOW_MS)
            .map(|(j, _)| *j)
            .collect();
        for j in near {
            self.link(i, j, CREATED, own);
        }
        if self.recent_young.len() < RECENT_YOUNG {
            self.recent_young.push((i, created_ms));
        } else {
            self.recent_young[self.young_cursor] = (i, created_ms);
            self.young_cursor = (self.young_cursor + 1) % RECENT_YOUNG;
        }
    }

    fn link(&mut self, i: u32, j: u32, kind: u8, own: &dyn Fn(u32) -> Evidence) {
        if i == j {
            return;
        }
        let pk = (u64::from(i.min(j)) << 32) | u64::from(i.max(j));
        if self.pairs.len() >= MAX_PAIRS && !self.pairs.contains_key(&pk) {
            return;
        }
        let m = self.pairs.entry(pk).or_insert(0);
        *m |= kind;
        let mask = *m;
        let family = mask & FAMILY != 0 && mask & (INFRA | CREATED | SUSPECT) != 0;
        let template = mask & TEMPLATE != 0 && mask & INFRA != 0;
        if family || template {
            self.union(i, j, mask, own);
        }
    }

    fn union(&mut self, a: u32, b: u32, mask: u8, own: &dyn Fn(u32) -> Evidence) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            self.kinds[ra as usize] |= mask;
            return;
        }
        // the older root (smaller index) survives: deterministic
        let (keep, gone) = if ra < rb { (ra, rb) } else { (rb, ra) };
        let mut ev = self.evidence.remove(&keep).unwrap_or_else(|| own(keep));
        let other = self.evidence.remove(&gone).unwrap_or_else(|| own(gone));
        ev.merge(&other, self.half_life_ms);
        self.evidence.insert(keep, ev);
        self.parent[gone as usize] = keep;
        self.size[keep as usize] += self.size[gone as usize];
        self.kinds[keep as usize] |= self.kinds[gone as usize] | mask;
        let (lk, lg) = (self.label[keep as usize], self.label[gone as usize]);
        self.label[keep as usize] = match (lk, lg) {
            (0, 0) => {
                self.next_label += 1;
                self.next_label
            }
            (0, l) | (l, 0) => l,
            (x, y) => x.min(y),
        };
    }

    /// Human-readable description of what links a cluster.
    pub fn describe_kinds(kinds: u8) -> String {
        let mut parts = Vec::new();
        if kinds & SUSPECT != 0 && kinds & FAMILY != 0 {
            parts.push("an extraction-style system prompt");
        } else if kinds & FAMILY != 0 {
            parts.push("a system prompt");
        }
        if kinds & TEMPLATE != 0 {
            parts.push("prompt templates or tool sets");
        }
        if kinds & INFRA != 0 {
            parts.push("/24 subnets");
        }
        if kinds & CREATED != 0 {
            parts.push("an account-creation burst");
        }
        match parts.split_last() {
            None => String::new(),
            Some((last, [])) => (*last).to_string(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        }
    }

    /// Approximate heap bytes used by the cross-account index.
    pub fn heap_bytes(&self) -> usize {
        self.parent.capacity() * 13
            + self.keys.capacity() * 40
            + self.keys.values().map(|v| v.capacity() * 4).sum::<usize>()
            + self.pairs.capacity() * 17
            + self.evidence.len() * (std::mem::size_of::<Evidence>() + 8)
    }
}
