//! Encryption at rest of audit bodies (request body and response text).
//!
//! Each row is sealed with XChaCha20-Poly1305 (RustCrypto `chacha20poly1305`) under the keyring's
//! *active* key, with a fresh random 24-byte nonce. The plaintext is the canonical encoding of
//! `(request_body, response_text)`; the associated data binds the ciphertext to its place in the
//! chain: `"moat-audit-body-v1\0" || seq || key id || request digest || response digest`. The
//! digests are what the hash chain covers (see [`super::chain`]), so a ciphertext moved to
//! another row, or paired with other digests, fails authentication.
//!
//! Keys are 32 bytes, written as 64 hex digits (e.g. `openssl rand -hex 32 > audit.key`). Every
//! key ever used stays in the keyring for reading; only the active one encrypts new rows.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::StoreError;

/// Length of the random nonce stored with each encrypted row.
pub const NONCE_LEN: usize = 24;

const AD_DOMAIN: &[u8] = b"moat-audit-body-v1\0";

/// The audit encryption keys: every key id that may appear on a row, and the active one.
#[derive(Clone, Default)]
pub struct AuditKeyring {
    keys: BTreeMap<String, XChaCha20Poly1305>,
    active: Option<String>,
}

impl fmt::Debug for AuditKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("AuditKeyring")
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .finish()
    }
}

fn invalid(reason: String) -> StoreError {
    StoreError::Invalid {
        field: "audit encryption key",
        reason,
    }
}

/// Parse 64 hex digits (surrounding whitespace ignored) into a key.
pub fn parse_key_hex(id: &str, text: &str) -> Result<[u8; 32], StoreError> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut key)
        .map_err(|_| invalid(format!("key {id:?} must be 64 hex digits (32 bytes)")))?;
    Ok(key)
}

impl AuditKeyring {
    /// An empty keyring (reads plaintext rows only, writes plaintext).
    pub fn new() -> AuditKeyring {
        AuditKeyring::default()
    }

    /// Parse 64 hex digits into a key (`id` only names it in the error).
    pub fn parse_key(id: &str, text: &str) -> Result<[u8; 32], StoreError> {
        parse_key_hex(id, text)
    }

    /// Add a key for reading (and for writing once made active).
    pub fn add(&mut self, id: &str, key: &[u8; 32]) -> Result<(), StoreError> {
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_graphic()) {
            return Err(invalid(format!(
                "key id {id:?} must be 1-64 printable characters"
            )));
        }
        let cipher = XChaCha20Poly1305::new(key.into());
        if self.keys.insert(id.to_string(), cipher).is_some() {
            return Err(invalid(format!("key id {id:?} given twice")));
        }
        Ok(())
    }

    /// Add a key read from a file holding 64 hex digits.
    pub fn add_file(&mut self, id: &str, path: &Path) -> Result<(), StoreError> {
        let text = std::fs::read_to_string(path).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.add(id, &parse_key_hex(id, &text)?)
    }

    /// Parse `id=HEX[,id=HEX…]` (the `MOAT_AUDIT_KEYS` environment variable); the last key is
    /// made active unless [`AuditKeyring::set_active`] says otherwise.
    pub fn from_spec(spec: &str) -> Result<AuditKeyring, StoreError> {
        let mut ring = AuditKeyring::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, hex_key) = part
                .split_once('=')
                .ok_or_else(|| invalid("expected id=HEX[,id=HEX...]".into()))?;
            ring.add(id.trim(), &parse_key_hex(id, hex_key)?)?;
            ring.active = Some(id.trim().to_string());
        }
        Ok(ring)
    }

    /// Make `id` the key that encrypts new rows.
    pub fn set_active(&mut self, id: &str) -> Result<(), StoreError> {
        if !self.keys.contains_key(id) {
            return Err(invalid(format!("active key {id:?} is not in the keyring")));
        }
        self.active = Some(id.to_string());
        Ok(())
    }

    /// The key id that encrypts new rows, if any.
    pub fn active(&self) -> Option<&str> {
        self.active.as_deref()
    }

    /// Whether the keyring holds `id`.
    pub fn has(&self, id: &str) -> bool {
        self.keys.contains_key(id)
    }

    /// Seal `plaintext` under the active key; `None` when no key is active.
    pub(crate) fn seal(
        &self,
        seq: i64,
        digests: (&str, Option<&str>),
        plaintext: &[u8],
    ) -> Option<(String, Vec<u8>, Vec<u8>)> {
        let id = self.active.as_ref()?;
        let cipher = self.keys.get(id)?;
        let mut nonce = [0u8; NONCE_LEN];
        // A CSPRNG seeded from the OS; 192-bit random nonces never repeat in practice.
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = associated_data(seq, id, digests);
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .ok()?;
        Some((id.clone(), nonce.to_vec(), ct))
    }

    /// Open a row's ciphertext; the error names the row and the key id.
    pub(crate) fn open(
        &self,
        seq: i64,
        key_id: &str,
        digests: (&str, Option<&str>),
        nonce: &[u8],
        ct: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let cipher = self.keys.get(key_id).ok_or_else(|| StoreError::AuditKey {
            seq,
            key_id: key_id.to_string(),
            reason: "this key is not configured ([audit.encryption] or MOAT_AUDIT_KEYS); \
                     the body cannot be read without it"
                .into(),
        })?;
        if nonce.len() != NONCE_LEN {
            return Err(StoreError::AuditKey {
                seq,
                key_id: key_id.to_string(),
                reason: format!("stored nonce has {} bytes, not {NONCE_LEN}", nonce.len()),
            });
        }
        let aad = associated_data(seq, key_id, digests);
        cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| StoreError::AuditKey {
                seq,
                key_id: key_id.to_string(),
                reason: "decryption failed: wrong key for this id, or the ciphertext was altered"
                    .into(),
            })
    }
}

impl AuditKeyring {
    /// Seal an arbitrary blob under the active key, bound to `ad` (the audit spool uses it);
    /// `None` when no key is active. Returns (key id, nonce, ciphertext).
    pub(crate) fn seal_blob(
        &self,
        ad: &[u8],
        plaintext: &[u8],
    ) -> Option<(String, Vec<u8>, Vec<u8>)> {
        let id = self.active.as_ref()?;
        let cipher = self.keys.get(id)?;
        let mut nonce = [0u8; NONCE_LEN];
        // A CSPRNG seeded from the OS; 192-bit random nonces never repeat in practice.
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: ad,
                },
            )
            .ok()?;
        Some((id.clone(), nonce.to_vec(), ct))
    }

    /// Open a blob sealed by [`AuditKeyring::seal_blob`]; the error says why (never any key
    /// material).
    pub(crate) fn open_blob(
        &self,
        key_id: &str,
        ad: &[u8],
        nonce: &[u8],
        ct: &[u8],
    ) -> Result<Vec<u8>, String> {
        let cipher = self
            .keys
            .get(key_id)
            .ok_or_else(|| format!("key {key_id:?} is not configured"))?;
        if nonce.len() != NONCE_LEN {
            return Err(format!("nonce has {} bytes, not {NONCE_LEN}", nonce.len()));
        }
        cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: ad })
            .map_err(|_| {
                format!("decryption with key {key_id:?} failed (wrong key or altered data)")
            })
    }
}

fn associated_data(seq: i64, key_id: &str, (req, resp): (&str, Option<&str>)) -> Vec<u8> {
    let mut ad = Vec::with_capacity(AD_DOMAIN.len() + 8 + key_id.len() + 140);
    ad.extend_from_slice(AD_DOMAIN);
    ad.extend_from_slice(&seq.to_be_bytes());
    for part in [Some(key_id), Some(req), resp] {
        match part {
            None => ad.push(0),
            Some(s) => {
                ad.push(1);
                ad.extend_from_slice(&(s.len() as u64).to_be_bytes());
                ad.extend_from_slice(s.as_bytes());
            }
        }
    }
    ad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_binding() {
        let ring = AuditKeyring::from_spec(&format!("k1={}", "11".repeat(32))).unwrap();
        let (id, nonce, ct) = ring.seal(7, ("aa", Some("bb")), b"hello").unwrap();
        assert_eq!(id, "k1");
        let pt = ring.open(7, &id, ("aa", Some("bb")), &nonce, &ct).unwrap();
        assert_eq!(pt, b"hello");
        // Another seq, or other digests: refused.
        assert!(ring.open(8, &id, ("aa", Some("bb")), &nonce, &ct).is_err());
        assert!(ring.open(7, &id, ("aa", None), &nonce, &ct).is_err());
        // A wrong key under the same id: a clear error naming the key id.
        let wrong = AuditKeyring::from_spec(&format!("k1={}", "22".repeat(32))).unwrap();
        let e = wrong
            .open(7, "k1", ("aa", Some("bb")), &nonce, &ct)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"k1\"") && e.contains("wrong key"), "{e}");
    }

    #[test]
    fn bad_specs_are_refused() {
        assert!(AuditKeyring::from_spec("k1=zz").is_err());
        assert!(AuditKeyring::from_spec("nokey").is_err());
        let k = "ab".repeat(32);
        assert!(AuditKeyring::from_spec(&format!("a={k},a={k}")).is_err());
        let ring = AuditKeyring::from_spec(&format!("a={k},b={k}")).unwrap();
        assert_eq!(ring.active(), Some("b"));
        assert!(!format!("{ring:?}").contains(&k));
    }
}
