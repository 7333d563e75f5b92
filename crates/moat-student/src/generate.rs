//! Sampling continuations, one prompt or many in lockstep (batched with a KV cache).

use crate::model::Student;
use crate::vocab::{Vocab, EOS, UNK};
use anyhow::Result;
use candle_core::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

/// Sampling options.
#[derive(Debug, Clone, Copy)]
pub struct SampleOptions {
    /// Maximum number of generated tokens (words and punctuation marks).
    pub max_tokens: usize,
    /// Softmax temperature; `<= 0` is greedy.
    pub temperature: f64,
    /// Keep only the `top_k` most likely tokens (0: all).
    pub top_k: usize,
    /// RNG seed.
    pub seed: u64,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            max_tokens: 200,
            temperature: 0.7,
            top_k: 40,
            seed: 0,
        }
    }
}

/// A generated continuation.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The continuation text (the prompt is not included).
    pub text: String,
    /// Tokens generated (excluding the end-of-text token).
    pub tokens: usize,
    /// True when the model ended the text itself (rather than hitting `max_tokens`).
    pub stopped: bool,
}

fn sample(logits: &[f32], o: &SampleOptions, rng: &mut StdRng) -> u32 {
    let mut cand: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .filter(|&(i, l)| i as u32 != UNK && l.is_finite())
        .map(|(i, &l)| (i as u32, l))
        .collect();
    if cand.is_empty() {
        return EOS;
    }
    cand.sort_by(|a, b| b.1.total_cmp(&a.1));
    if o.temperature <= 0.0 {
        return cand[0].0;
    }
    if o.top_k > 0 {
        cand.truncate(o.top_k);
    }
    let max = cand[0].1 as f64;
    let weights: Vec<f64> = cand
        .iter()
        .map(|&(_, l)| ((l as f64 - max) / o.temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut r = rng.gen::<f64>() * total;
    for (w, &(id, _)) in weights.iter().zip(&cand) {
        r -= w;
        if r <= 0.0 {
            return id;
        }
    }
    cand[cand.len() - 1].0
}

/// Prompt ids as the model saw documents in training: `<eos>` then the text, truncated to
/// the last half-window so that there is room to generate.
fn prompt_ids(vocab: &Vocab, prompt: &str, keep: usize) -> Vec<u32> {
    let mut ids = vec![EOS];
    ids.extend(vocab.encode(prompt));
    if ids.len() > keep {
        ids.drain(..ids.len() - keep);
    }
    ids
}

/// Continues each prompt. Prompts with the same token length are decoded together in
/// batches of `batch` rows (lockstep, one KV cache per batch); results keep the input order.
pub fn generate_batch(
    model: &Student,
    vocab: &Vocab,
    prompts: &[String],
    o: &SampleOptions,
    batch: usize,
) -> Result<Vec<Generation>> {
    let seq = model.config().seq;
    let keep = (seq / 2).max(1);
    let encoded: Vec<Vec<u32>> = prompts.iter().map(|p| prompt_ids(vocab, p, keep)).collect();
    let mut by_len: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, ids) in encoded.iter().enumerate() {
        by_len.entry(ids.len()).or_default().push(i);
    }
    let mut out: Vec<Option<Generation>> = vec![None; prompts.len()];
    let mut rng = StdRng::seed_from_u64(o.seed);
    for idx in by_len.values() {
        for chunk in idx.chunks(batch.max(1)) {
            let rows: Vec<Vec<u32>> = chunk.iter().map(|&i| encoded[i].clone()).collect();
            let gens = generate_rows(model, vocab, rows, o, &mut rng)?;
            for (&i, g) in chunk.iter().zip(gens) {
                out[i] = Some(g);
            }
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// Continues one prompt.
pub fn generate(
    model: &Student,
    vocab: &Vocab,
    prompt: &str,
    o: &SampleOptions,
) -> Result<Generation> {
    let seq = model.config().seq;
    let ids = prompt_ids(vocab, prompt, (seq / 2).max(1));
    let mut rng = StdRng::seed_from_u64(o.seed);
    Ok(generate_rows(model, vocab, vec![ids], o, &mut rng)?.remove(0))
}

/// Decodes equal-length rows in lockstep.
fn generate_rows(
    model: &Student,
    vocab: &Vocab,
    mut rows: Vec<Vec<u32>>,
    o: &SampleOptions,
    rng: &mut StdRng,
) -> Result<Vec<Generation>> {
    let b = rows.len();
    let seq = model.config().seq;
    let dev = model.device().clone();
    let to_tensor = |rows: &[Vec<u32>], from: usize| -> Result<Tensor> {
        let t = rows[0].len() - from;
        let flat: Vec<u32> = rows
            .iter()
            .flat_map(|r| r[from..].iter().copied())
            .collect();
        Ok(Tensor::from_vec(flat, (b, t), &dev)?)
    };
    let prompt_len = rows[0].len();
    let mut cache = model.new_cache();
    let mut logits = model.step(&to_tensor(&rows, 0)?, &mut cache)?;
    let mut done = vec![false; b];
    let mut generated: Vec<Vec<u32>> = vec![Vec::new(); b];
    for _ in 0..o.max_tokens {
        let l: Vec<Vec<f32>> = logits.to_vec2()?;
        for r in 0..b {
            let next = sample(&l[r], o, rng);
            rows[r].push(next);
            if !done[r] {
                if next == EOS {
                    done[r] = true;
                } else {
                    generated[r].push(next);
                }
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
        if cache.len() + 1 > seq {
            // Window full: restart the cache on the last half-window.
            cache = model.new_cache();
            let from = rows[0].len() - (seq / 2).max(1);
            logits = model.step(&to_tensor(&rows, from)?, &mut cache)?;
        } else {
            let last = rows[0].len() - 1;
            logits = model.step(&to_tensor(&rows, last)?, &mut cache)?;
        }
    }
    debug_assert!(rows.iter().all(|r| r.len() >= prompt_len));
    Ok(generated
        .into_iter()
        .zip(done)
        .map(|(g, stopped)| Generation {
            text: vocab.decode(&g),
            tokens: g.len(),
            stopped,
        })
        .collect())
}
