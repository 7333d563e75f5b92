//! Training from scratch: random windows of the token stream, AdamW, cosine learning rate.

use crate::model::{ModelConfig, Student};
use crate::vocab::{Vocab, EOS};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::io::BufRead;
use std::path::Path;
use std::time::Instant;

/// Training options (the CLI's `train` flags).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Optimisation steps.
    pub steps: usize,
    /// Residual width.
    pub dim: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Window length (also the model's maximum context).
    pub seq: usize,
    /// Windows per step.
    pub batch: usize,
    /// Vocabulary size (specials included).
    pub vocab: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// RNG seed (initialisation and window sampling).
    pub seed: u64,
    /// Print the loss every this many steps (0: never).
    pub log_every: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            steps: 1000,
            dim: 128,
            layers: 2,
            heads: 4,
            seq: 64,
            batch: 32,
            vocab: 6000,
            lr: 3e-3,
            seed: 1,
            log_every: 50,
        }
    }
}

/// What a training run reports (also written as `train.json` in the output directory).
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// Documents read from the corpus.
    pub docs: usize,
    /// Tokens in the training stream (document separators included).
    pub tokens: usize,
    /// Fraction of tokens that are `<unk>`.
    pub unk_fraction: f64,
    /// Vocabulary size.
    pub vocab: usize,
    /// Steps run.
    pub steps: usize,
    /// Tokens processed (steps × batch × seq).
    pub tokens_seen: usize,
    /// Mean loss over the first 10 steps.
    pub first_loss: f32,
    /// Mean loss over the last 10 % of steps (at least one).
    pub final_loss: f32,
    /// Wall-clock seconds of the optimisation loop.
    pub seconds: f64,
    /// Model hyper-parameters.
    pub config: ModelConfig,
}

/// Reads a corpus: JSON Lines with a `text` field (or a JSON string) per document; a line
/// that is not JSON is a document by itself.
pub fn read_corpus(path: &Path) -> Result<Vec<String>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut docs = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let text = match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(serde_json::Value::String(s)) => s,
            Ok(v) => match v.get("text").and_then(|t| t.as_str()) {
                Some(s) => s.to_string(),
                None => continue,
            },
            Err(_) => line,
        };
        docs.push(text);
    }
    Ok(docs)
}

/// Seeded GPT-2 style initialisation (candle's CPU device cannot be seeded): matrices
/// N(0, 0.02²), biases 0, LayerNorm gains 1.
fn init_weights(vm: &VarMap, rng: &mut StdRng) -> Result<()> {
    let data = vm
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned var map"))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let shape = var.shape().clone();
        let n = shape.elem_count();
        let values: Vec<f32> = if shape.rank() == 2 {
            (0..n)
                .map(|_| {
                    // Box-Muller.
                    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
                    let u2: f64 = rng.gen();
                    (0.02 * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
                })
                .collect()
        } else if name.ends_with(".weight") {
            vec![1.0; n]
        } else {
            vec![0.0; n]
        };
        var.set(&Tensor::from_vec(values, shape, var.device())?)?;
    }
    Ok(())
}

/// Trains a fresh student on `docs` and writes `model.safetensors`, `config.json`,
/// `vocab.json` and `train.json` into `out`.
pub fn train(docs: &[String], out: &Path, o: &TrainOptions) -> Result<TrainReport> {
    if docs.is_empty() {
        bail!("empty corpus");
    }
    std::fs::create_dir_all(out)?;
    let vocab = Vocab::build(docs.iter().map(String::as_str), o.vocab);
    let mut stream: Vec<u32> = Vec::new();
    for d in docs {
        stream.push(EOS);
        stream.extend(vocab.encode(d));
    }
    stream.push(EOS);
    let window = o.seq + 1;
    if stream.len() < window + 1 {
        bail!("corpus has {} tokens, fewer than one window", stream.len());
    }
    let unk = stream.iter().filter(|&&t| t == crate::vocab::UNK).count();
    let cfg = ModelConfig {
        vocab: vocab.len(),
        dim: o.dim,
        layers: o.layers,
        heads: o.heads,
        seq: o.seq,
    };
    cfg.validate()?;
    let device = Device::Cpu;
    let vm = VarMap::new();
    let model = Student::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &device))?;
    let mut rng = StdRng::seed_from_u64(o.seed);
    init_weights(&vm, &mut rng)?;
    let mut opt = AdamW::new(
        vm.all_vars(),
        ParamsAdamW {
            lr: o.lr,
            weight_decay: 0.01,
            ..Default::default()
        },
    )?;
    let warmup = (o.steps / 20).max(1);
    let mut losses = Vec::with_capacity(o.steps);
    let t0 = Instant::now();
    for step in 0..o.steps {
        let mut xs = Vec::with_capacity(o.batch * o.seq);
        let mut ys = Vec::with_capacity(o.batch * o.seq);
        for _ in 0..o.batch {
            let s = rng.gen_range(0..stream.len() - window);
            xs.extend_from_slice(&stream[s..s + o.seq]);
            ys.extend_from_slice(&stream[s + 1..s + window]);
        }
        let x = Tensor::from_vec(xs, (o.batch, o.seq), &device)?;
        let y = Tensor::from_vec(ys, o.batch * o.seq, &device)?;
        let logits = model.forward(&x)?.reshape((o.batch * o.seq, cfg.vocab))?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        let lr = if step < warmup {
            o.lr * (step + 1) as f64 / warmup as f64
        } else {
            let p = (step - warmup) as f64 / (o.steps - warmup).max(1) as f64;
            o.lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * p).cos()))
        };
        opt.set_learning_rate(lr);
        opt.backward_step(&loss)?;
        let l = loss.to_scalar::<f32>()?;
        if !l.is_finite() {
            bail!("loss became {l} at step {step}");
        }
        losses.push(l);
        if o.log_every > 0 && (step % o.log_every == 0 || step + 1 == o.steps) {
            println!(
                "step {step:>6} loss {l:.4} lr {lr:.2e} {:.1}s",
                t0.elapsed().as_secs_f64()
            );
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let mean = |s: &[f32]| s.iter().sum::<f32>() / s.len().max(1) as f32;
    let tail = (o.steps / 10).max(1);
    let report = TrainReport {
        docs: docs.len(),
        tokens: stream.len(),
        unk_fraction: unk as f64 / stream.len() as f64,
        vocab: vocab.len(),
        steps: o.steps,
        tokens_seen: o.steps * o.batch * o.seq,
        first_loss: mean(&losses[..losses.len().min(10)]),
        final_loss: mean(&losses[losses.len() - tail.min(losses.len())..]),
        seconds,
        config: cfg,
    };
    vm.save(out.join("model.safetensors"))?;
    cfg.save(out)?;
    vocab.save(&out.join("vocab.json"))?;
    std::fs::write(out.join("train.json"), serde_json::to_vec_pretty(&report)?)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_steps_reduce_the_loss() {
        let docs: Vec<String> = (0..40)
            .map(|i| {
                format!(
                    "the {} cat sat on the mat . it did not move . the dog barked {} times .",
                    ["red", "blue", "green"][i % 3],
                    ["two", "three"][i % 2]
                )
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let o = TrainOptions {
            steps: 20,
            dim: 32,
            layers: 1,
            heads: 2,
            seq: 16,
            batch: 8,
            vocab: 100,
            lr: 1e-2,
            seed: 3,
            log_every: 0,
        };
        let r = train(&docs, dir.path(), &o).unwrap();
        assert!(
            r.final_loss < r.first_loss * 0.7,
            "loss {} -> {}",
            r.first_loss,
            r.final_loss
        );
        assert_eq!(r.unk_fraction, 0.0);
        // The saved model loads and has the trained shape.
        let m = Student::load(dir.path()).unwrap();
        assert_eq!(m.config(), &r.config);
        assert!(Vocab::load(&dir.path().join("vocab.json")).is_ok());
    }
}
