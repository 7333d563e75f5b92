//! A tiny decoder-only transformer (GPT-style, pre-LayerNorm, learned positions).
//!
//! Every op is a differentiable candle primitive (the fused CPU LayerNorm/softmax kernels of
//! candle-nn have no backward pass), so the same code trains and generates. Generation uses a
//! per-layer key/value cache ([`Cache`]).

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{embedding, linear, linear_no_bias, Embedding, Linear, VarBuilder};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Model hyper-parameters (stored as `config.json` next to the weights).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Vocabulary size.
    pub vocab: usize,
    /// Width of the residual stream.
    pub dim: usize,
    /// Number of transformer blocks.
    pub layers: usize,
    /// Attention heads per block (`dim` must be a multiple).
    pub heads: usize,
    /// Maximum sequence length (learned position embeddings).
    pub seq: usize,
}

impl ModelConfig {
    /// Checks the invariants the model relies on.
    pub fn validate(&self) -> Result<()> {
        if self.vocab < 3 || self.dim == 0 || self.layers == 0 || self.seq < 2 {
            bail!("invalid model config {self:?}");
        }
        if self.heads == 0 || self.dim % self.heads != 0 {
            bail!("dim {} is not a multiple of heads {}", self.dim, self.heads);
        }
        Ok(())
    }

    /// Writes `config.json` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }

    /// Reads `config.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let p = dir.join("config.json");
        let c: Self = serde_json::from_slice(
            &std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?,
        )?;
        c.validate()?;
        Ok(c)
    }
}

/// LayerNorm from primitive ops (differentiable).
struct Norm {
    weight: Tensor,
    bias: Tensor,
}

impl Norm {
    fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(dim, "weight", candle_nn::Init::Const(1.0))?,
            bias: vb.get_with_hints(dim, "bias", candle_nn::Init::Const(0.0))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
        Ok(xn.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)?)
    }
}

struct Block {
    ln1: Norm,
    qkv: Linear,
    proj: Linear,
    ln2: Norm,
    fc: Linear,
    out: Linear,
    heads: usize,
}

impl Block {
    fn new(c: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            ln1: Norm::new(c.dim, vb.pp("ln1"))?,
            qkv: linear(c.dim, 3 * c.dim, vb.pp("qkv"))?,
            proj: linear(c.dim, c.dim, vb.pp("proj"))?,
            ln2: Norm::new(c.dim, vb.pp("ln2"))?,
            fc: linear(c.dim, 4 * c.dim, vb.pp("fc"))?,
            out: linear(4 * c.dim, c.dim, vb.pp("out"))?,
            heads: c.heads,
        })
    }

    /// `x`: (b, t, c). `mask`: (t, T) additive, or None when t == 1. `kv`: the cache of this
    /// layer, extended in place.
    fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        kv: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let hd = c / self.heads;
        let h = self.ln1.forward(x)?;
        let qkv = self
            .qkv
            .forward(&h)?
            .reshape((b, t, 3, self.heads, hd))?
            .permute((2, 0, 3, 1, 4))?; // (3, b, heads, t, hd)
        let q = qkv.get(0)?.contiguous()?;
        let mut k = qkv.get(1)?.contiguous()?;
        let mut v = qkv.get(2)?.contiguous()?;
        if let Some(slot) = kv {
            if let Some((pk, pv)) = slot.as_ref() {
                k = Tensor::cat(&[pk, &k], 2)?;
                v = Tensor::cat(&[pv, &v], 2)?;
            }
            *slot = Some((k.clone(), v.clone()));
        }
        let mut att = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?;
        if let Some(m) = mask {
            att = att.broadcast_add(m)?;
        }
        let att = candle_nn::ops::softmax(&att, D::Minus1)?;
        let y = att
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, t, c))?;
        let x = (x + self.proj.forward(&y)?)?;
        let h = self.fc.forward(&self.ln2.forward(&x)?)?.gelu()?;
        Ok((&x + self.out.forward(&h)?)?)
    }
}

/// Key/value cache for incremental decoding: one entry per layer, plus the next position.
pub struct Cache {
    kv: Vec<Option<(Tensor, Tensor)>>,
    pos: usize,
}

impl Cache {
    /// Number of positions already in the cache.
    pub fn len(&self) -> usize {
        self.pos
    }

    /// True when nothing has been fed yet.
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }
}

/// The student language model.
pub struct Student {
    cfg: ModelConfig,
    tok: Embedding,
    pos: Embedding,
    blocks: Vec<Block>,
    ln_f: Norm,
    head: Linear,
    device: Device,
}

impl Student {
    /// Builds the model from a VarBuilder (fresh variables for training, or loaded weights).
    pub fn new(cfg: ModelConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let device = vb.device().clone();
        let blocks = (0..cfg.layers)
            .map(|i| Block::new(&cfg, vb.pp(format!("blocks.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            tok: embedding(cfg.vocab, cfg.dim, vb.pp("tok"))?,
            pos: embedding(cfg.seq, cfg.dim, vb.pp("pos"))?,
            blocks,
            ln_f: Norm::new(cfg.dim, vb.pp("ln_f"))?,
            head: linear_no_bias(cfg.dim, cfg.vocab, vb.pp("head"))?,
            device,
            cfg,
        })
    }

    /// Loads `config.json` and `model.safetensors` from `dir` (CPU).
    pub fn load(dir: &Path) -> Result<Self> {
        let cfg = ModelConfig::load(dir)?;
        let device = Device::Cpu;
        let p = dir.join("model.safetensors");
        let tensors = candle_core::safetensors::load(&p, &device)
            .with_context(|| format!("loading {}", p.display()))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        Self::new(cfg, vb)
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Additive causal mask for `t` new positions after `past` cached ones: (t, past + t).
    fn mask(&self, t: usize, past: usize) -> Result<Tensor> {
        let total = past + t;
        let m: Vec<f32> = (0..t)
            .flat_map(|i| (0..total).map(move |j| if j > past + i { -1e9 } else { 0.0 }))
            .collect();
        Ok(Tensor::from_vec(m, (t, total), &self.device)?)
    }

    fn hidden(&self, ids: &Tensor, cache: Option<&mut Cache>) -> Result<Tensor> {
        let (_b, t) = ids.dims2()?;
        let past = cache.as_ref().map_or(0, |c| c.pos);
        if past + t > self.cfg.seq {
            bail!(
                "sequence of {} exceeds the model's {}",
                past + t,
                self.cfg.seq
            );
        }
        let positions = Tensor::arange(past as u32, (past + t) as u32, &self.device)?;
        let mut x = self
            .tok
            .forward(ids)?
            .broadcast_add(&self.pos.forward(&positions)?)?;
        let mask = if t > 1 {
            Some(self.mask(t, past)?)
        } else {
            None
        };
        match cache {
            Some(c) => {
                for (blk, kv) in self.blocks.iter().zip(c.kv.iter_mut()) {
                    x = blk.forward(&x, mask.as_ref(), Some(kv))?;
                }
                c.pos += t;
            }
            None => {
                for blk in &self.blocks {
                    x = blk.forward(&x, mask.as_ref(), None)?;
                }
            }
        }
        self.ln_f.forward(&x)
    }

    /// Logits for every position: `ids` (b, t) u32 -> (b, t, vocab).
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let h = self.hidden(ids, None)?;
        Ok(self.head.forward(&h)?)
    }

    /// A fresh, empty cache for incremental decoding.
    pub fn new_cache(&self) -> Cache {
        Cache {
            kv: vec![None; self.cfg.layers],
            pos: 0,
        }
    }

    /// Feeds `ids` (b, t) after the cached positions and returns the logits of the last
    /// position, (b, vocab).
    pub fn step(&self, ids: &Tensor, cache: &mut Cache) -> Result<Tensor> {
        let h = self.hidden(ids, Some(cache))?;
        let t = h.dim(1)?;
        let last = h.narrow(1, t - 1, 1)?.squeeze(1)?;
        Ok(self.head.forward(&last)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::VarMap;

    #[test]
    fn cached_steps_match_full_forward() {
        let cfg = ModelConfig {
            vocab: 11,
            dim: 16,
            layers: 2,
            heads: 2,
            seq: 8,
        };
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let m = Student::new(cfg, vb).unwrap();
        let ids = Tensor::new(&[[1u32, 4, 7, 2, 9]], &Device::Cpu).unwrap();
        let full = m.forward(&ids).unwrap().squeeze(0).unwrap();
        let mut cache = m.new_cache();
        let a = m.step(&ids.narrow(1, 0, 3).unwrap(), &mut cache).unwrap();
        let b = m.step(&ids.narrow(1, 3, 1).unwrap(), &mut cache).unwrap();
        let c = m.step(&ids.narrow(1, 4, 1).unwrap(), &mut cache).unwrap();
        for (pos, got) in [(2usize, a), (3, b), (4, c)] {
            let want = full.get(pos).unwrap();
            let diff = (want - got.squeeze(0).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-4, "position {pos}: {diff}");
        }
        assert_eq!(cache.len(), 5);
        assert!(m
            .step(
                &Tensor::new(&[[1u32, 2, 3, 4]], &Device::Cpu).unwrap(),
                &mut cache
            )
            .is_err());
    }
}
