//! Request shapes typical of harvesting: very high `max_tokens`, `n > 1`,
//! `logprobs`/`top_logprobs`, `logit_bias` sweeps, `max_tokens: 1` probes.

use serde_json::Value;

use crate::request_view::RequestView;

/// Harvest-shape flags of one request (bit set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shape(pub u8);

impl Shape {
    /// `max_tokens` (or equivalent) of 8000 or more.
    pub const HUGE_MAX_TOKENS: u8 = 1;
    /// Several completions per prompt (`n > 1`).
    pub const MULTI_SAMPLE: u8 = 2;
    /// Token log-probabilities requested.
    pub const LOGPROBS: u8 = 4;
    /// `logit_bias` present (probing the vocabulary distribution).
    pub const LOGIT_BIAS: u8 = 8;
    /// `max_tokens` of 1 (next-token probing).
    pub const ONE_TOKEN: u8 = 16;

    /// Whether any flag is set.
    pub fn any(self) -> bool {
        self.0 != 0
    }

    /// Harvest weight of the request shape: 1 for sampling/probing parameters (n>1,
    /// logprobs, logit_bias, max_tokens 1), 0.5 for a huge max_tokens alone (long
    /// reasoning answers legitimately need room), 0 otherwise.
    pub fn score(self) -> f32 {
        if self.0 & !Self::HUGE_MAX_TOKENS != 0 {
            1.0
        } else if self.0 != 0 {
            0.5
        } else {
            0.0
        }
    }

    /// Whether a given flag is set.
    pub fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }
}

fn as_u64(v: &Option<Value>) -> Option<u64> {
    v.as_ref().and_then(Value::as_u64)
}

/// Requested output budget: `max_tokens`, `max_completion_tokens` or `max_output_tokens` (0 if absent).
pub fn max_tokens(req: &RequestView<'_>) -> u32 {
    as_u64(&req.max_tokens)
        .or_else(|| as_u64(&req.max_completion_tokens))
        .or_else(|| as_u64(&req.max_output_tokens))
        .unwrap_or(0)
        .min(u64::from(u32::MAX)) as u32
}

/// Computes the shape flags of a request body.
pub fn shape(req: &RequestView<'_>) -> Shape {
    let mut s = 0u8;
    let mt = max_tokens(req);
    if mt >= 8000 {
        s |= Shape::HUGE_MAX_TOKENS;
    }
    if mt == 1 {
        s |= Shape::ONE_TOKEN;
    }
    if as_u64(&req.n).unwrap_or(1) > 1 {
        s |= Shape::MULTI_SAMPLE;
    }
    let lp = match &req.logprobs {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0) > 0,
        _ => false,
    };
    if lp || as_u64(&req.top_logprobs).unwrap_or(0) > 0 {
        s |= Shape::LOGPROBS;
    }
    if matches!(&req.logit_bias, Some(Value::Object(m)) if !m.is_empty()) {
        s |= Shape::LOGIT_BIAS;
    }
    Shape(s)
}

/// The `logit_bias` token ids of a request folded into a 64-bit mask (one bit per hashed
/// id; 0 without a bias). An account's union of these masks separates a fixed bias over a
/// few label tokens (a classifier: a handful of bits) from a bias that walks across the
/// vocabulary to read the model's distribution token by token (most bits).
pub fn logit_bias_mask(req: &RequestView<'_>) -> u64 {
    match &req.logit_bias {
        Some(Value::Object(m)) => m
            .keys()
            .fold(0u64, |acc, k| acc | 1u64 << (crate::text::hash_str(k) % 64)),
        _ => 0,
    }
}
