//! Detection results as JSON, shared by `POST /admin/v1/watermark/detect`, `moat mark detect`
//! and `moat verify`.
//!
//! Every key of the text keyring is tested (scheme `text`); with the `embedded` feature and the
//! embedded backend's sampler watermark configured, the token-level detector with the model's
//! tokenizer is run too (scheme `sampler`). The key id of the significant result says which
//! scheme (and key) marked the text.

use moat_mark::{Detection, Keyring, MarkConfig};
use serde::Serialize;

/// Significance level of the verdict (after Bonferroni over the keys tested).
pub const ALPHA: f64 = 1e-6;

/// One key's result.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KeyResult {
    /// Key id tested.
    pub key_id: String,
    /// `text` (moat-mark) or `sampler` (embedded backend, token level).
    pub scheme: &'static str,
    /// Exact one-sided p-value (may underflow to 0; see `log10_p`).
    pub p_value: f64,
    /// `log10` of the p-value, exact.
    pub log10_p: f64,
    /// z-score, for display.
    pub z: f64,
    /// Distinct positions (text) or (context, token) tuples (sampler) scored.
    pub scored: u64,
    /// Scored positions agreeing with the key (text: keyed choice; sampler: green).
    pub hits: u64,
}

impl KeyResult {
    /// From a moat-mark detection.
    pub fn text(d: &Detection) -> Self {
        Self {
            key_id: d.key_id.clone(),
            scheme: "text",
            p_value: d.p_value,
            log10_p: d.log10_p,
            z: d.z,
            scored: d.scored,
            hits: d.hits,
        }
    }
}

/// The verdict over all keys: the most significant key, and whether it passes
/// `ALPHA / keys` (Bonferroni).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    /// Whether the text is watermarked (at `alpha`, corrected).
    pub marked: bool,
    /// Most significant key id (when any position was scored).
    pub key_id: Option<String>,
    /// Its scheme.
    pub scheme: Option<&'static str>,
    /// Its p-value.
    pub p_value: Option<f64>,
    /// Its `log10` p-value.
    pub log10_p: Option<f64>,
    /// Threshold used (`ALPHA / number of keys`).
    pub alpha: f64,
}

/// Picks the most significant result and applies the Bonferroni-corrected threshold.
pub fn verdict(results: &[KeyResult]) -> Verdict {
    let alpha = ALPHA / results.len().max(1) as f64;
    let best = results
        .iter()
        .filter(|r| r.scored > 0)
        .min_by(|a, b| a.log10_p.total_cmp(&b.log10_p));
    Verdict {
        marked: best.is_some_and(|b| b.log10_p <= alpha.log10()),
        key_id: best.map(|b| b.key_id.clone()),
        scheme: best.map(|b| b.scheme),
        p_value: best.map(|b| b.p_value),
        log10_p: best.map(|b| b.log10_p),
        alpha,
    }
}

/// Text-watermark results of one text for every key.
pub fn detect_text(text: &str, ring: &Keyring, cfg: MarkConfig) -> Vec<KeyResult> {
    moat_mark::detect_with(text, ring, cfg)
        .iter()
        .map(KeyResult::text)
        .collect()
}

/// The embedded backend's token-level detector (sampler watermark), with the model's tokenizer.
#[cfg(feature = "embedded")]
pub struct SamplerDetector {
    mark: moat_backend::watermark::SamplerMark,
    model: moat_backend::Model,
}

#[cfg(feature = "embedded")]
impl SamplerDetector {
    /// Loads the tokenizer of the configured embedded model; `None` unless
    /// `upstream.base_url = "embedded"` with `[upstream.embedded.watermark]`.
    pub fn from_config(config: &crate::config::Config) -> anyhow::Result<Option<Self>> {
        let Some(e) = &config.upstream.embedded else {
            return Ok(None);
        };
        let Some(w) = &e.watermark else {
            return Ok(None);
        };
        let mark = moat_backend::watermark::SamplerMark::with_params(
            w.key_id.clone(),
            w.secret.expose().as_bytes(),
            w.h,
            w.gamma,
            w.delta,
        )?;
        let model = moat_backend::Model::load(&e.model, 1, None)?;
        Ok(Some(Self { mark, model }))
    }

    /// An empty pool: texts added to it are scored one by one and all together, from one
    /// tokenisation each.
    pub fn pool(&self) -> SamplerPool<'_> {
        SamplerPool {
            detector: self,
            set: moat_backend::watermark::TupleSet::new(self.mark.h()),
        }
    }

    /// Scores many texts together; see [`SamplerPool::finish`].
    pub fn detect_pooled(
        &self,
        texts: &[&str],
        null_keys: usize,
    ) -> anyhow::Result<(KeyResult, Vec<KeyResult>)> {
        let mut pool = self.pool();
        for t in texts {
            pool.add(t)?;
        }
        pool.finish(null_keys)
    }
}

/// Texts scored together by the sampler detector: `(context, token)` tuples deduplicated
/// across texts (a suspect's answers share phrases).
#[cfg(feature = "embedded")]
pub struct SamplerPool<'a> {
    detector: &'a SamplerDetector,
    set: moat_backend::watermark::TupleSet,
}

#[cfg(feature = "embedded")]
impl SamplerPool<'_> {
    /// Adds `text` to the pool and returns its own result.
    pub fn add(&mut self, text: &str) -> anyhow::Result<KeyResult> {
        let ids = self.detector.model.tokenizer().encode(text)?;
        self.set.add(&ids);
        let own = moat_backend::watermark::detect_tokens(&self.detector.mark, &ids);
        Ok(sampler_result(own))
    }

    /// The pooled result under the real key, and under `null_keys` fresh random keys with the
    /// same `h`, `γ`, `δ` (which never marked anything: the null check).
    pub fn finish(&self, null_keys: usize) -> anyhow::Result<(KeyResult, Vec<KeyResult>)> {
        let mark = &self.detector.mark;
        let real = sampler_result(self.set.detect(mark));
        let mut nulls = Vec::with_capacity(null_keys);
        for i in 0..null_keys {
            let (_, secret) = crate::watermark::generate_key();
            let m = moat_backend::watermark::SamplerMark::with_params(
                format!("null-sampler-{}", i + 1),
                secret,
                mark.h(),
                mark.gamma(),
                mark.delta(),
            )?;
            nulls.push(sampler_result(self.set.detect(&m)));
        }
        Ok((real, nulls))
    }
}

/// Without the embedded backend there is no sampler watermark: this detector cannot exist,
/// so callers need no `cfg` of their own.
#[cfg(not(feature = "embedded"))]
pub enum SamplerDetector {}

/// See the `embedded` build's `SamplerPool`; uninhabited here.
#[cfg(not(feature = "embedded"))]
pub enum SamplerPool<'a> {
    #[doc(hidden)]
    _Never(std::convert::Infallible, std::marker::PhantomData<&'a ()>),
}

#[cfg(not(feature = "embedded"))]
impl SamplerDetector {
    /// Always `None`: this build has no embedded backend.
    pub fn from_config(_config: &crate::config::Config) -> anyhow::Result<Option<Self>> {
        Ok(None)
    }

    /// Unreachable: no value of this type exists.
    pub fn pool(&self) -> SamplerPool<'_> {
        match *self {}
    }

    /// Unreachable: no value of this type exists.
    pub fn detect_pooled(
        &self,
        _texts: &[&str],
        _null_keys: usize,
    ) -> anyhow::Result<(KeyResult, Vec<KeyResult>)> {
        match *self {}
    }
}

#[cfg(not(feature = "embedded"))]
impl SamplerPool<'_> {
    /// Unreachable: no value of this type exists.
    pub fn add(&mut self, _text: &str) -> anyhow::Result<KeyResult> {
        match self {
            Self::_Never(n, _) => match *n {},
        }
    }

    /// Unreachable: no value of this type exists.
    pub fn finish(&self, _null_keys: usize) -> anyhow::Result<(KeyResult, Vec<KeyResult>)> {
        match self {
            Self::_Never(n, _) => match *n {},
        }
    }
}

#[cfg(feature = "embedded")]
fn sampler_result(d: moat_backend::watermark::Detection) -> KeyResult {
    KeyResult {
        key_id: d.key_id,
        scheme: "sampler",
        p_value: d.p_value,
        log10_p: d.ln_p_value / std::f64::consts::LN_10,
        z: d.z,
        scored: d.scored,
        hits: d.green,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moat_mark::{MarkKey, Marker};

    #[test]
    fn verdict_names_the_marking_key() {
        let a = MarkKey::new("a", [1u8; 32]).unwrap();
        let b = MarkKey::new("b", [2u8; 32]).unwrap();
        let ring = Keyring::from_keys(vec![a, b], "b").unwrap();
        let marker = Marker::new(ring.clone(), MarkConfig::default());
        let mut text = String::new();
        // Letters only: words with digits are opaque and do not feed the context.
        let word = |i: usize| -> String {
            [i % 26, i / 26 % 26, i / 676 % 26]
                .iter()
                .map(|&d| (b'a' + d as u8) as char)
                .collect()
        };
        for i in 0..400 {
            let (a, b) = (word(i), word(i * 7 + 3));
            text += &format!("The {a} {b} is a big problem and we do not often use it. ");
        }
        let v = verdict(&detect_text(
            &marker.mark(&text),
            &ring,
            MarkConfig::default(),
        ));
        assert!(v.marked);
        assert_eq!(v.key_id.as_deref(), Some("b"));
        assert_eq!(v.alpha, ALPHA / 2.0);
        let v = verdict(&detect_text(&text, &ring, MarkConfig::default()));
        assert!(!v.marked, "unmarked text: {v:?}");
        let v = verdict(&detect_text("", &ring, MarkConfig::default()));
        assert!(!v.marked && v.key_id.is_none());
    }
}
