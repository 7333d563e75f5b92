//! Watermark keys, the keyring used for rotation, and the keyed PRF.
//!
//! # PRF choice
//!
//! The preferred synonym at a position is `SipHash-1-3(k, context_fingerprint ‖ set_id) mod |set|`
//! with a 128-bit key `k`. SipHash is a PRF designed for short inputs; the input here is 18
//! bytes, so one call costs a few tens of nanoseconds, which matters on the streaming path.
//! `k` is not the raw secret: it is `HMAC-SHA256(secret, "moat-mark/v1/siphash-key")[..16]`, so
//! secrets of any length and structure yield a uniform 128-bit key, and the same secret is never
//! reused verbatim in two algorithms. SipHash-1-3 (rather than 2-4) is what Rust's own
//! `HashMap` uses against adversarial inputs; an attacker here never sees PRF outputs directly
//! (only word choices, one bit or so per position), so the reduced-round variant is adequate.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use siphasher::sip::SipHasher13;
use std::fmt;
use std::hash::Hasher;

/// Minimum accepted secret length in bytes (128 bits).
pub const MIN_SECRET_LEN: usize = 16;

/// Errors building keys or keyrings.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The secret is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("watermark secret must be at least {MIN_SECRET_LEN} bytes, got {0}")]
    SecretTooShort(usize),
    /// The key id is empty.
    #[error("watermark key id must not be empty")]
    EmptyId,
    /// Two keys share an id.
    #[error("duplicate watermark key id {0:?}")]
    DuplicateId(String),
    /// No key with that id is in the keyring.
    #[error("unknown watermark key id {0:?}")]
    UnknownId(String),
    /// A hex secret could not be parsed.
    #[error("watermark secret is not valid hex")]
    BadHex,
}

/// One watermark key: a public identifier and a secret.
///
/// `Debug` never prints the secret.
#[derive(Clone)]
pub struct MarkKey {
    id: String,
    secret: Vec<u8>,
}

impl MarkKey {
    /// Creates a key. The secret must be at least 16 bytes of high-entropy material.
    pub fn new(id: impl Into<String>, secret: impl AsRef<[u8]>) -> Result<Self, KeyError> {
        let id = id.into();
        let secret = secret.as_ref().to_vec();
        if id.is_empty() {
            return Err(KeyError::EmptyId);
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::SecretTooShort(secret.len()));
        }
        Ok(Self { id, secret })
    }

    /// Creates a key from a hex-encoded secret (e.g. read from configuration).
    pub fn from_hex(id: impl Into<String>, hex_secret: &str) -> Result<Self, KeyError> {
        let s = hex_secret.trim();
        if s.len() % 2 != 0 || !s.is_ascii() {
            return Err(KeyError::BadHex);
        }
        let bytes = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| KeyError::BadHex)?;
        Self::new(id, bytes)
    }

    /// The key identifier (reported by detection).
    pub fn id(&self) -> &str {
        &self.id
    }

    fn derive(&self) -> Prf {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).expect("HMAC accepts any length");
        mac.update(b"moat-mark/v1/siphash-key");
        let out = mac.finalize().into_bytes();
        let k0 = u64::from_le_bytes(out[0..8].try_into().expect("8 bytes"));
        let k1 = u64::from_le_bytes(out[8..16].try_into().expect("8 bytes"));
        Prf { k0, k1 }
    }
}

impl fmt::Debug for MarkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MarkKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Keyed PRF derived from a [`MarkKey`].
#[derive(Clone, Copy)]
pub(crate) struct Prf {
    k0: u64,
    k1: u64,
}

impl Prf {
    /// Picks the preferred member index in `0..set_len` for a (context, set) position.
    pub(crate) fn choose(&self, ctx_fp: u128, set_id: u16, set_len: usize) -> usize {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write(&ctx_fp.to_le_bytes());
        h.write(&set_id.to_le_bytes());
        // The modulo bias of a 64-bit value reduced mod 2..=4 is < 2^-62: negligible against
        // the exact null probabilities 1/|set| used by detection.
        (h.finish() % set_len as u64) as usize
    }
}

/// A set of watermark keys with exactly one *active* key.
///
/// Marking always uses the active key. Detection tries every key, so text marked with a key
/// that has since been rotated out of the active slot still verifies as long as the key stays
/// in the keyring. Plain text carries no header, so the key id is *inferred* by detection:
/// the key that yields a significant result is the one that marked the text.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(MarkKey, Prf)>,
    active: usize,
}

impl Keyring {
    /// A keyring holding a single, active key.
    pub fn new(active: MarkKey) -> Self {
        let prf = active.derive();
        Self {
            keys: vec![(active, prf)],
            active: 0,
        }
    }

    /// Builds a keyring from several keys, marking `active_id` active.
    pub fn from_keys(keys: Vec<MarkKey>, active_id: &str) -> Result<Self, KeyError> {
        let mut out: Vec<(MarkKey, Prf)> = Vec::with_capacity(keys.len());
        for k in keys {
            if out.iter().any(|(o, _)| o.id == k.id) {
                return Err(KeyError::DuplicateId(k.id));
            }
            let prf = k.derive();
            out.push((k, prf));
        }
        let active = out
            .iter()
            .position(|(k, _)| k.id == active_id)
            .ok_or_else(|| KeyError::UnknownId(active_id.to_string()))?;
        Ok(Self { keys: out, active })
    }

    /// Adds a key that is kept for verification only (not active).
    pub fn add(&mut self, key: MarkKey) -> Result<(), KeyError> {
        if self.keys.iter().any(|(o, _)| o.id == key.id) {
            return Err(KeyError::DuplicateId(key.id));
        }
        let prf = key.derive();
        self.keys.push((key, prf));
        Ok(())
    }

    /// Makes the key with `id` the active (marking) key; the previous one stays for detection.
    pub fn set_active(&mut self, id: &str) -> Result<(), KeyError> {
        self.active = self
            .keys
            .iter()
            .position(|(k, _)| k.id == id)
            .ok_or_else(|| KeyError::UnknownId(id.to_string()))?;
        Ok(())
    }

    /// Removes a key (its text no longer verifies). The active key cannot be removed.
    pub fn remove(&mut self, id: &str) -> Result<(), KeyError> {
        let idx = self
            .keys
            .iter()
            .position(|(k, _)| k.id == id)
            .ok_or_else(|| KeyError::UnknownId(id.to_string()))?;
        if idx == self.active {
            return Err(KeyError::UnknownId(format!(
                "{id} (active key cannot be removed)"
            )));
        }
        self.keys.remove(idx);
        if idx < self.active {
            self.active -= 1;
        }
        Ok(())
    }

    /// Id of the active key.
    pub fn active_id(&self) -> &str {
        &self.keys[self.active].0.id
    }

    /// Ids of all keys, in insertion order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(k, _)| k.id.as_str())
    }

    /// Number of keys (detection tests each one; see the multiple-testing note in `detect`).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a keyring has at least its active key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub(crate) fn active_prf(&self) -> Prf {
        self.keys[self.active].1
    }

    pub(crate) fn prfs(&self) -> impl Iterator<Item = (&str, Prf)> {
        self.keys.iter().map(|(k, p)| (k.id.as_str(), *p))
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .field("active", &self.active_id())
            .finish()
    }
}
