//! Detection with exact statistics.
//!
//! 1. Run the same token pipeline as the marker (without rewriting) and collect every eligible
//!    position: (set, member present in the text, context fingerprint).
//! 2. Deduplicate: each distinct (context, set) tuple is scored once, by the member the text
//!    uses there most often (ties go to the member seen first). Repeating a sentence
//!    therefore adds no evidence, and the PRF outputs of the scored tuples are independent.
//!    Which member a tuple votes for is a function of the text alone, so under the null it
//!    matches the key's choice with probability `1/|set|` exactly as a single occurrence
//!    would; when the text only leans toward the keyed choice (a model trained on marked
//!    text, or marked text after edits) the majority recovers it more often than one
//!    occurrence does.
//! 3. For each key, count hits (the tuple's member equals the key's choice). Under the null
//!    (text not marked with this key) hits are independent Bernoulli(1/|set|), so the hit count
//!    is Poisson-binomial; the p-value is its exact upper tail, computed in log space
//!    ([`crate::stats`]).
//!
//! Plain text carries no key id: the detector tests every key in the keyring and reports one
//! [`Detection`] per key id; the key whose p-value is significant is the one that marked the
//! text. With `K` keys, a caller that asks "is this text marked by *any* key" should compare
//! `min p` against `alpha / K` (Bonferroni) — see [`Detection::any_significant`].
//!
//! The p-values are those of a discrete distribution, hence conservative (super-uniform)
//! under the null: `P(p <= a) <= a`.

use crate::engine::{may_rewrite, Decide, Engine, Position};
use crate::keyring::Keyring;
use crate::marker::MarkConfig;
use crate::stats::{group_probabilities, ln_poisson_binomial_tail, z_score};
use crate::synonyms::{MAX_MEMBERS, SETS};
use std::collections::HashMap;

/// Result of testing one key against a text.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Key id tested.
    pub key_id: String,
    /// Eligible positions found (before deduplication; same for every key).
    pub positions: u64,
    /// Distinct (context, set) positions scored.
    pub scored: u64,
    /// Scored positions whose word equals this key's choice.
    pub hits: u64,
    /// Exact one-sided p-value `P(hits >= observed | not marked with this key)`; may underflow
    /// to 0 for very long texts — use `log10_p`.
    pub p_value: f64,
    /// `log10(p_value)`, exact in log space (e.g. -40.0 for 1e-40).
    pub log10_p: f64,
    /// z-score of the hit count, for display only.
    pub z: f64,
    /// The null distribution: `(count, p0)` per set size among the scored positions (the hit
    /// count is a sum of independent Binomial(count, p0)). Lets callers compute other tails,
    /// e.g. randomised p-values, with [`crate::stats`].
    pub null_groups: Vec<(u64, f64)>,
}

impl Detection {
    /// Whether this key's result is significant at `alpha` (one key, no correction).
    pub fn is_significant(&self, alpha: f64) -> bool {
        self.log10_p <= alpha.log10()
    }

    /// The most significant detection, if it is significant at `alpha / detections.len()`
    /// (Bonferroni over the keys tested).
    pub fn any_significant(detections: &[Detection], alpha: f64) -> Option<&Detection> {
        let k = detections.len().max(1) as f64;
        detections
            .iter()
            .min_by(|a, b| a.log10_p.total_cmp(&b.log10_p))
            .filter(|d| d.is_significant(alpha / k))
    }
}

/// Decider that keeps the text as is and records eligible positions.
#[derive(Default)]
pub(crate) struct Recorder(pub Vec<Position>);

impl Decide for Recorder {
    fn decide(&mut self, pos: &Position) -> usize {
        self.0.push(*pos);
        pos.member as usize
    }
}

/// Collects the eligible positions of a text, in order (key-independent, not deduplicated).
fn raw_positions(text: &str, cfg: MarkConfig) -> Vec<Position> {
    if !may_rewrite(text) {
        // No word is a set member: no eligible position.
        return Vec::new();
    }
    let mut engine = Engine::with_capacity(cfg, Recorder::default(), text.len());
    let mut sink = String::with_capacity(text.len());
    engine.push(text, &mut sink);
    engine.finish(&mut sink);
    engine.decider.0
}

/// How often each member of a set occurred in one distinct (context, set) tuple.
#[derive(Debug, Clone, Copy)]
struct Votes {
    counts: [u32; MAX_MEMBERS],
    /// Occurrence number at which each member was first seen (`u32::MAX`: never).
    first: [u32; MAX_MEMBERS],
}

impl Votes {
    fn new() -> Self {
        Self {
            counts: [0; MAX_MEMBERS],
            first: [u32::MAX; MAX_MEMBERS],
        }
    }

    fn add(&mut self, member: usize, occurrence: u32) {
        self.counts[member] += 1;
        self.first[member] = self.first[member].min(occurrence);
    }

    /// The member the text uses most often here; ties go to the member seen first. A
    /// function of the text alone (never of a key).
    fn member(&self) -> usize {
        (0..MAX_MEMBERS)
            .max_by(|&a, &b| {
                self.counts[a]
                    .cmp(&self.counts[b])
                    .then(self.first[b].cmp(&self.first[a]))
            })
            .unwrap_or(0)
    }
}

/// The distinct (context, set) tuples of one or more texts, with their votes.
#[derive(Debug, Clone, Default)]
struct Tuples {
    index: HashMap<(u16, u128), usize>,
    /// (set, context, votes) in first-occurrence order.
    tuples: Vec<(u16, u128, Votes)>,
    /// Eligible positions seen (before deduplication).
    total: usize,
}

impl Tuples {
    fn add(&mut self, p: &Position) {
        let occurrence = u32::try_from(self.total).unwrap_or(u32::MAX);
        self.total += 1;
        let i = *self.index.entry((p.set, p.ctx)).or_insert_with(|| {
            self.tuples.push((p.set, p.ctx, Votes::new()));
            self.tuples.len() - 1
        });
        self.tuples[i].2.add(p.member as usize, occurrence);
    }

    /// Adds every eligible position of `text`.
    fn add_text(&mut self, text: &str, cfg: MarkConfig) {
        for p in raw_positions(text, cfg) {
            self.add(&p);
        }
    }

    fn of_text(text: &str, cfg: MarkConfig) -> Self {
        let mut t = Self::default();
        t.add_text(text, cfg);
        t
    }
}

/// Eligible positions of a text, before and after deduplication (key-independent).
pub(crate) fn position_counts(text: &str, cfg: MarkConfig) -> (usize, usize) {
    let t = Tuples::of_text(text, cfg);
    (t.total, t.tuples.len())
}

/// Scores deduplicated tuples against every key.
fn score(keyring: &Keyring, tuples: &Tuples) -> Vec<Detection> {
    let ps: Vec<f64> = tuples
        .tuples
        .iter()
        .map(|&(set, _, _)| 1.0 / SETS[set as usize].members.len() as f64)
        .collect();
    let groups = group_probabilities(&ps);
    // What each tuple votes for is the same for every key: decide it once.
    let voted: Vec<usize> = tuples.tuples.iter().map(|(_, _, v)| v.member()).collect();
    keyring
        .prfs()
        .map(|(id, prf)| {
            let hits = tuples
                .tuples
                .iter()
                .zip(&voted)
                .filter(|((set, ctx, _), &member)| {
                    let len = SETS[*set as usize].members.len();
                    prf.choose(*ctx, *set, len) == member
                })
                .count() as u64;
            let ln_p = ln_poisson_binomial_tail(&groups, hits);
            Detection {
                key_id: id.to_string(),
                positions: tuples.total as u64,
                scored: tuples.tuples.len() as u64,
                hits,
                p_value: ln_p.exp(),
                log10_p: ln_p / std::f64::consts::LN_10,
                z: z_score(hits, &ps),
                null_groups: groups.clone(),
            }
        })
        .collect()
}

/// Tests every key of `keyring` against `text`, with the default [`MarkConfig`].
pub fn detect(text: &str, keyring: &Keyring) -> Vec<Detection> {
    detect_with(text, keyring, MarkConfig::default())
}

/// Tests every key of `keyring` against `text` with an explicit configuration (must match the
/// configuration used for marking).
pub fn detect_with(text: &str, keyring: &Keyring, cfg: MarkConfig) -> Vec<Detection> {
    score(keyring, &Tuples::of_text(text, cfg))
}

/// Accumulates evidence over many texts (e.g. all responses to one account, or a sample of a
/// suspect model's outputs), deduplicating (context, set) positions *across* texts: each
/// distinct tuple votes once, for the member used there most often over all texts.
///
/// One answer rarely has enough eligible positions for a small p-value (about 14 per 1000
/// words); the evidence of many answers adds up. The null argument is the same as for one text:
/// positions are key-independent and each distinct tuple is scored once.
///
/// Memory: about 150 bytes per distinct position (~150 positions per 10,000 words).
#[derive(Debug, Clone)]
pub struct Accumulator {
    keyring: Keyring,
    cfg: MarkConfig,
    tuples: Tuples,
    texts: usize,
}

impl Accumulator {
    /// An empty accumulator testing the keys of `keyring`.
    pub fn new(keyring: Keyring, cfg: MarkConfig) -> Self {
        Self {
            keyring,
            cfg,
            tuples: Tuples::default(),
            texts: 0,
        }
    }

    /// Adds one text.
    pub fn add(&mut self, text: &str) {
        self.texts += 1;
        self.tuples.add_text(text, self.cfg);
    }

    /// Number of texts added.
    pub fn texts(&self) -> usize {
        self.texts
    }

    /// How many eligible positions fell into each distinct (context, set) tuple, in
    /// first-occurrence order: how repetitive the evidence is (key-independent).
    pub fn tuple_sizes(&self) -> Vec<u32> {
        self.tuples
            .tuples
            .iter()
            .map(|(_, _, v)| v.counts.iter().sum())
            .collect()
    }

    /// Current results, one per key id (same semantics as [`detect`]).
    pub fn detections(&self) -> Vec<Detection> {
        score(&self.keyring, &self.tuples)
    }
}
