//! The detector: exact binomial test over deduplicated `(context, token)` tuples.
//!
//! Under the null hypothesis (text not produced with this key) each distinct tuple is green
//! independently with probability `γ`, so the green count over `n` distinct tuples is
//! Binomial(n, γ). Repeated tuples are scored once: repetition is common in natural text and
//! in code, and counting a repeated green tuple twice would inflate the evidence. The tail is
//! computed exactly in log space by `moat_mark::stats` (no normal approximation); the z-score
//! is for display.

use super::SamplerMark;
use std::collections::HashSet;

/// The result of a detection.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Detection {
    /// The key id the text was tested against.
    pub key_id: String,
    /// Number of distinct `(context, token)` tuples scored.
    pub scored: u64,
    /// How many of them were green.
    pub green: u64,
    /// `(green - nγ) / sqrt(nγ(1-γ))`; 0 when nothing was scored.
    pub z: f64,
    /// Natural log of the exact p-value `P(Binomial(scored, γ) >= green)`.
    pub ln_p_value: f64,
    /// The exact p-value (underflows to 0 below ~1e-308; see `ln_p_value`).
    pub p_value: f64,
}

/// The distinct `(context, token)` tuples of one or more token sequences, pooled so that a
/// tuple repeated within or across texts is scored once. Score the same set under several
/// keys with [`TupleSet::detect`] (e.g. the real key and random null keys).
#[derive(Debug, Clone, Default)]
pub struct TupleSet {
    h: usize,
    seen: HashSet<Box<[u32]>>,
}

impl TupleSet {
    /// An empty set for context width `h` (the mark's [`SamplerMark::h`]).
    pub fn new(h: usize) -> Self {
        Self {
            h,
            seen: HashSet::new(),
        }
    }

    /// Adds every window `ids[i-h..=i]` of one sequence.
    pub fn add(&mut self, ids: &[u32]) {
        for w in ids.windows(self.h + 1) {
            if !self.seen.contains(w) {
                self.seen.insert(w.into());
            }
        }
    }

    /// Number of distinct tuples.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no tuple was added.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// The exact binomial test of the pooled tuples under `mark` (whose `h` must match).
    pub fn detect(&self, mark: &SamplerMark) -> Detection {
        assert_eq!(mark.h(), self.h, "tuple width and mark h differ");
        let h = self.h;
        let scored = self.seen.len() as u64;
        let green = self
            .seen
            .iter()
            .filter(|w| mark.is_green(&w[..h], w[h]))
            .count() as u64;
        let gamma = mark.gamma();
        let ln_p = moat_mark::stats::ln_binomial_tail(scored, green, gamma);
        let z = if scored == 0 {
            0.0
        } else {
            let n = scored as f64;
            (green as f64 - n * gamma) / (n * gamma * (1.0 - gamma)).sqrt()
        };
        Detection {
            key_id: mark.key_id().to_string(),
            scored,
            green,
            z,
            ln_p_value: ln_p,
            p_value: ln_p.exp(),
        }
    }
}

/// Scores token ids: every position `i >= h` contributes the tuple
/// `(ids[i-h..i], ids[i])` once, however often it occurs.
pub fn detect_tokens(mark: &SamplerMark, ids: &[u32]) -> Detection {
    let mut set = TupleSet::new(mark.h());
    set.add(ids);
    set.detect(mark)
}

/// Re-tokenises `text` with the model's tokenizer (no special tokens) and scores it with
/// [`detect_tokens`].
#[cfg(feature = "embedded")]
pub fn detect_text(
    mark: &SamplerMark,
    tokenizer: &crate::gguf_tokenizer::GgufTokenizer,
    text: &str,
) -> anyhow::Result<Detection> {
    let ids = tokenizer.encode(text)?;
    Ok(detect_tokens(mark, &ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// P(X >= k) for X ~ Binomial(n, p) by enumerating all 2^n outcomes.
    fn brute_tail(n: u32, k: u32, p: f64) -> f64 {
        (0u32..1 << n)
            .filter(|m| m.count_ones() >= k)
            .map(|m| {
                let c = m.count_ones() as i32;
                p.powi(c) * (1.0 - p).powi(n as i32 - c)
            })
            .sum()
    }

    #[test]
    fn exact_tail_matches_brute_force() {
        for &gamma in &[0.25, 0.5, 0.1] {
            for n in 0..=14u32 {
                for k in 0..=n + 1 {
                    let exact = moat_mark::stats::exact_binomial_tail(n as u64, k as u64, gamma);
                    let brute = if k > n { 0.0 } else { brute_tail(n, k, gamma) };
                    let tol = 1e-12f64.max(brute * 1e-9);
                    assert!((exact - brute).abs() <= tol, "n={n} k={k} γ={gamma}");
                }
            }
        }
    }

    #[test]
    fn detector_counts_match_brute_force_on_small_sequences() {
        let mark = SamplerMark::new("k", [3u8; 16]).unwrap();
        let ids: Vec<u32> = vec![5, 9, 11, 5, 9, 11, 5, 9, 2, 7, 1, 8];
        let d = detect_tokens(&mark, &ids);
        // Distinct windows of length 3, brute force.
        let mut tuples: Vec<&[u32]> = ids.windows(3).collect();
        tuples.sort();
        tuples.dedup();
        let green = tuples
            .iter()
            .filter(|w| mark.is_green(&w[..2], w[2]))
            .count() as u64;
        assert_eq!(d.scored, tuples.len() as u64);
        assert_eq!(d.scored, 7); // 10 windows, (5,9,11) (9,11,5) (11,5,9) repeat
        assert_eq!(d.green, green);
        let brute = brute_tail(d.scored as u32, d.green as u32, 0.25);
        assert!((d.p_value - brute).abs() < 1e-12);
    }

    #[test]
    fn biased_sequence_detects_and_random_does_not() {
        use rand::{Rng, SeedableRng};
        let mark = SamplerMark::new("k", [4u8; 16]).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        // Random ids: null hypothesis.
        let random: Vec<u32> = (0..400).map(|_| rng.gen_range(0..50_000)).collect();
        let d0 = detect_tokens(&mark, &random);
        assert!(d0.p_value > 1e-3, "{d0:?}");
        // Always pick a green token: maximal signal.
        let mut ids = vec![1u32, 2];
        for _ in 0..100 {
            let ctx = [ids[ids.len() - 2], ids[ids.len() - 1]];
            let t = loop {
                let c = rng.gen_range(0..50_000);
                if mark.is_green(&ctx, c) {
                    break c;
                }
            };
            ids.push(t);
        }
        let d1 = detect_tokens(&mark, &ids);
        assert!(d1.p_value < 1e-40 && d1.z > 10.0, "{d1:?}");
        assert!(detect_tokens(&mark, &[1]).scored == 0);
    }

    #[test]
    fn pooled_set_scores_a_tuple_repeated_across_texts_once() {
        let mark = SamplerMark::new("k", [5u8; 16]).unwrap();
        let (a, b) = ([1u32, 2, 3, 4], [9u32, 1, 2, 3]);
        let mut set = TupleSet::new(mark.h());
        set.add(&a);
        set.add(&b);
        // (1,2,3) occurs in both; windows: (1,2,3) (2,3,4) (9,1,2).
        assert_eq!(set.len(), 3);
        let joined = detect_tokens(&mark, &[1, 2, 3, 4, 9, 1, 2, 3]);
        let pooled = set.detect(&mark);
        assert_eq!(pooled.scored, 3);
        assert!(pooled.green <= joined.green && joined.scored == 5);
    }
}
