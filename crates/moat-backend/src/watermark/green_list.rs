//! The keyed green list.
//!
//! A token `t` after the context `c = (t_{i-h}, …, t_{i-1})` is green iff
//! `SipHash-1-3(k, "moat-kgw" ‖ h ‖ c ‖ t) < γ · 2^64`, where the 128-bit SipHash key
//! `k = HMAC-SHA256(secret, "moat-backend/kgw/v1")[..16]`. Membership is a per-(context, token)
//! PRF rather than a seeded permutation of the vocabulary, so the detector scores one token
//! with one hash call and the sampler hashes the context once, then one finalisation per
//! vocabulary entry (~1 ms for 49k entries).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use siphasher::sip::SipHasher13;
use std::hash::Hasher;

/// Default context width `h` (previous token ids hashed into the green list).
pub const DEFAULT_H: usize = 2;
/// Default logit bias `δ` added to green tokens.
pub const DEFAULT_DELTA: f32 = 2.0;
/// Default green fraction `γ`.
pub const DEFAULT_GAMMA: f64 = 0.25;

/// Errors building a [`SamplerMark`].
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MarkError {
    /// The secret is shorter than 16 bytes.
    #[error("watermark secret must be at least 16 bytes, got {0}")]
    SecretTooShort(usize),
    /// The key id is empty.
    #[error("watermark key id must not be empty")]
    EmptyId,
    /// `γ` is not in (0, 1).
    #[error("watermark gamma must be in (0, 1), got {0}")]
    BadGamma(f64),
    /// `δ` is negative or not finite.
    #[error("watermark delta must be finite and >= 0, got {0}")]
    BadDelta(f32),
    /// `h` is zero or larger than 8.
    #[error("watermark context width h must be in 1..=8, got {0}")]
    BadH(usize),
}

/// A sampler watermark key with its parameters. `Debug` never prints the key.
#[derive(Clone)]
pub struct SamplerMark {
    key_id: String,
    k0: u64,
    k1: u64,
    h: usize,
    gamma: f64,
    delta: f32,
    threshold: u64,
}

impl std::fmt::Debug for SamplerMark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamplerMark")
            .field("key_id", &self.key_id)
            .field("h", &self.h)
            .field("gamma", &self.gamma)
            .field("delta", &self.delta)
            .finish_non_exhaustive()
    }
}

impl SamplerMark {
    /// A mark with the default parameters (`h = 2`, `δ = 2.0`, `γ = 0.25`).
    pub fn new(key_id: impl Into<String>, secret: impl AsRef<[u8]>) -> Result<Self, MarkError> {
        Self::with_params(key_id, secret, DEFAULT_H, DEFAULT_GAMMA, DEFAULT_DELTA)
    }

    /// A mark with explicit context width `h`, green fraction `gamma` and bias `delta`.
    pub fn with_params(
        key_id: impl Into<String>,
        secret: impl AsRef<[u8]>,
        h: usize,
        gamma: f64,
        delta: f32,
    ) -> Result<Self, MarkError> {
        let key_id = key_id.into();
        let secret = secret.as_ref();
        if key_id.is_empty() {
            return Err(MarkError::EmptyId);
        }
        if secret.len() < 16 {
            return Err(MarkError::SecretTooShort(secret.len()));
        }
        if !(gamma > 0.0 && gamma < 1.0) {
            return Err(MarkError::BadGamma(gamma));
        }
        if !(delta.is_finite() && delta >= 0.0) {
            return Err(MarkError::BadDelta(delta));
        }
        if !(1..=8).contains(&h) {
            return Err(MarkError::BadH(h));
        }
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("hmac takes any key");
        mac.update(b"moat-backend/kgw/v1");
        let d = mac.finalize().into_bytes();
        let k0 = u64::from_le_bytes(d[0..8].try_into().expect("8 bytes"));
        let k1 = u64::from_le_bytes(d[8..16].try_into().expect("8 bytes"));
        // γ·2^64, saturating just below 2^64 (γ < 1).
        let threshold = (gamma * 18_446_744_073_709_551_616.0) as u64;
        Ok(Self {
            key_id,
            k0,
            k1,
            h,
            gamma,
            delta,
            threshold,
        })
    }

    /// The public key identifier (reported with detections, never secret).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Context width `h`.
    pub fn h(&self) -> usize {
        self.h
    }

    /// Green fraction `γ`.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// Logit bias `δ`.
    pub fn delta(&self) -> f32 {
        self.delta
    }

    /// The hasher state after absorbing `context` (exactly `h` ids).
    fn context_state(&self, context: &[u32]) -> SipHasher13 {
        debug_assert_eq!(context.len(), self.h);
        let mut s = SipHasher13::new_with_keys(self.k0, self.k1);
        s.write(b"moat-kgw");
        s.write_u8(self.h as u8);
        for &t in context {
            s.write_u32(t);
        }
        s
    }

    /// Whether `token` is green after `context` (the previous `h` ids, oldest first).
    ///
    /// # Panics
    /// In debug builds, if `context.len() != h`.
    pub fn is_green(&self, context: &[u32], token: u32) -> bool {
        let mut s = self.context_state(context);
        s.write_u32(token);
        s.finish() < self.threshold
    }

    /// Adds `δ` to the logits of the green tokens after `context` (the previous `h` ids). The
    /// index into `logits` is the token id.
    pub fn bias_logits(&self, context: &[u32], logits: &mut [f32]) {
        let base = self.context_state(context);
        for (id, l) in logits.iter_mut().enumerate() {
            let mut s = base;
            s.write_u32(id as u32);
            if s.finish() < self.threshold {
                *l += self.delta;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn green_fraction_is_gamma() {
        let m = SamplerMark::new("k1", [7u8; 32]).unwrap();
        let n = 200_000u32;
        let g = (0..n).filter(|&t| m.is_green(&[t / 7, t % 13], t)).count();
        let frac = g as f64 / n as f64;
        assert!((frac - 0.25).abs() < 0.005, "{frac}");
    }

    #[test]
    fn bias_matches_membership() {
        let m = SamplerMark::new("k1", [9u8; 16]).unwrap();
        let mut logits = vec![0.0f32; 1000];
        m.bias_logits(&[5, 6], &mut logits);
        for (t, l) in logits.iter().enumerate() {
            assert_eq!(*l == m.delta(), m.is_green(&[5, 6], t as u32));
        }
    }

    #[test]
    fn keys_differ_and_validate() {
        let a = SamplerMark::new("a", [1u8; 16]).unwrap();
        let b = SamplerMark::new("b", [2u8; 16]).unwrap();
        let diff = (0..1000u32).filter(|&t| a.is_green(&[1, 2], t) != b.is_green(&[1, 2], t));
        assert!(diff.count() > 200);
        assert_eq!(
            SamplerMark::new("a", [1u8; 8]).unwrap_err(),
            MarkError::SecretTooShort(8)
        );
        assert!(SamplerMark::with_params("a", [1u8; 16], 0, 0.25, 2.0).is_err());
        assert!(SamplerMark::with_params("a", [1u8; 16], 2, 1.0, 2.0).is_err());
        assert!(!format!("{a:?}").contains("k0"));
    }
}
