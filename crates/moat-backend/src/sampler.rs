//! Token selection: watermark bias, temperature, top-p, seeded RNG, optional logprobs.

use crate::watermark::SamplerMark;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Sampling parameters of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; `<= 0` means greedy (argmax).
    pub temperature: f32,
    /// Nucleus mass in (0, 1]; 1 disables top-p.
    pub top_p: f32,
    /// RNG seed; `None` seeds from the OS.
    pub seed: Option<u64>,
    /// When `Some(k)`, report the chosen token's logprob and the `k` most likely alternatives.
    pub top_logprobs: Option<usize>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            seed: None,
            top_logprobs: None,
        }
    }
}

/// The log-probability of a chosen token and the most likely alternatives.
///
/// Probabilities are those of the distribution the sampler used *before* temperature and
/// top-p, i.e. the model's softmax after the watermark bias (so they never reveal the
/// unmarked distribution).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// Natural-log probability of the chosen token.
    pub logprob: f32,
    /// `(token id, logprob)` of the top-k tokens, most likely first.
    pub top: Vec<(u32, f32)>,
}

/// Picks tokens from logits.
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
    mark: Option<SamplerMark>,
}

impl Sampler {
    /// A sampler for one generation; `mark` enables the watermark bias.
    pub fn new(params: SamplingParams, mark: Option<SamplerMark>) -> Self {
        let rng = match params.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_entropy(),
        };
        Self { params, rng, mark }
    }

    /// Chooses the next token. `history` is every token so far (prompt and generated), used as
    /// the watermark context; `logits` (indexed by token id) is modified in place.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> (u32, Option<TokenLogprob>) {
        if let Some(mark) = &self.mark {
            if history.len() >= mark.h() {
                mark.bias_logits(&history[history.len() - mark.h()..], logits);
            }
        }
        let token = if self.params.temperature <= 0.0 {
            argmax(logits)
        } else {
            self.sample_top_p(logits)
        };
        let lp = self.params.top_logprobs.map(|k| logprobs(logits, token, k));
        (token, lp)
    }

    fn sample_top_p(&mut self, logits: &[f32]) -> u32 {
        let t = self.params.temperature;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut probs: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, ((l - max) / t).exp()))
            .collect();
        let total: f32 = probs.iter().map(|p| p.1).sum();
        let top_p = self.params.top_p;
        if top_p < 1.0 {
            probs.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
            let mut acc = 0.0;
            let mut keep = probs.len();
            for (i, p) in probs.iter().enumerate() {
                acc += p.1 / total;
                if acc >= top_p {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep.max(1));
        }
        let mass: f32 = probs.iter().map(|p| p.1).sum();
        let mut r = self.rng.gen::<f32>() * mass;
        for &(id, p) in &probs {
            if r < p {
                return id;
            }
            r -= p;
        }
        probs.last().expect("non-empty vocabulary").0
    }
}

/// Index of the largest logit (lowest index on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Log-softmax of `token` and the `k` best tokens.
fn logprobs(logits: &[f32], token: u32, k: usize) -> TokenLogprob {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
    let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
    let k = k.min(logits.len());
    if k > 0 && k < idx.len() {
        idx.select_nth_unstable_by(k - 1, |&a, &b| {
            logits[b as usize].total_cmp(&logits[a as usize])
        });
    }
    idx.truncate(k);
    idx.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
    TokenLogprob {
        logprob: logits[token as usize] - lse,
        top: idx
            .into_iter()
            .map(|i| (i, logits[i as usize] - lse))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_and_logprobs() {
        let mut s = Sampler::new(
            SamplingParams {
                temperature: 0.0,
                top_logprobs: Some(2),
                ..Default::default()
            },
            None,
        );
        let mut l = vec![0.0, 3.0, 1.0, 2.0];
        let (t, lp) = s.sample(&mut l, &[]);
        assert_eq!(t, 1);
        let lp = lp.unwrap();
        assert_eq!(lp.top.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 3]);
        let z: f32 = [0.0f32, 3.0, 1.0, 2.0].iter().map(|x| x.exp()).sum();
        assert!((lp.logprob - (3.0 - z.ln())).abs() < 1e-5);
    }

    #[test]
    fn seeded_sampling_is_reproducible_and_top_p_truncates() {
        let p = SamplingParams {
            temperature: 1.0,
            top_p: 0.5,
            seed: Some(7),
            top_logprobs: None,
        };
        let logits = vec![5.0, 4.9, 0.0, 0.0, 0.0];
        let run = |p: &SamplingParams| {
            let mut s = Sampler::new(p.clone(), None);
            (0..50)
                .map(|_| s.sample(&mut logits.clone(), &[]).0)
                .collect::<Vec<_>>()
        };
        let a = run(&p);
        assert_eq!(a, run(&p));
        // top-p 0.5 keeps only token 0 (p ≈ 0.52).
        assert!(a.iter().all(|&t| t == 0));
        let all = run(&SamplingParams { top_p: 1.0, ..p });
        assert!(all.contains(&1));
    }
}
