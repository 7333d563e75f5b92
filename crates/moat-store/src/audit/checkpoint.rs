//! Signed checkpoints of the audit chain (in the spirit of Certificate Transparency's signed
//! tree heads).
//!
//! A checkpoint is an Ed25519 signature over
//!
//! ```text
//! moat-checkpoint-v1
//! log_id=<log id>
//! seq=<last seq covered>
//! records=<record count>
//! head=<hex chain hash of that record>
//! ts=<RFC 3339 time, microseconds, UTC>
//! ```
//!
//! (each line ending in `\n`). Published somewhere the operator cannot rewrite (a ticket, a
//! transparency log, the other party of a dispute), it makes any later removal or change of a
//! record up to `seq` provable: the recomputed chain no longer reaches `head`.

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::db::Timed;
use crate::error::DbContext;
use crate::time::{from_us, to_us};
use crate::{Store, StoreError};

/// One signed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Identity of the log (random, created with the first checkpoint).
    pub log_id: String,
    /// Sequence number of the last record covered.
    pub seq: i64,
    /// Records covered (equal to `seq`: sequence numbers start at 1 without gaps).
    pub records: i64,
    /// Hex chain hash of record `seq`.
    pub head_hash: String,
    /// When the checkpoint was made (RFC 3339, microseconds, UTC).
    pub ts: String,
    /// Hex Ed25519 public key of the signer.
    pub public_key: String,
    /// Hex Ed25519 signature over [`Checkpoint::message`].
    pub signature: String,
}

impl Checkpoint {
    /// The exact bytes that are signed.
    pub fn message(&self) -> Vec<u8> {
        format!(
            "moat-checkpoint-v1\nlog_id={}\nseq={}\nrecords={}\nhead={}\nts={}\n",
            self.log_id, self.seq, self.records, self.head_hash, self.ts
        )
        .into_bytes()
    }

    /// Check the signature with `public_key_hex` (when given) or with the key named in the
    /// checkpoint itself. A key given that differs from the embedded one is an error too.
    pub fn verify_signature(&self, public_key_hex: Option<&str>) -> Result<(), String> {
        if let Some(k) = public_key_hex {
            if !k.trim().eq_ignore_ascii_case(&self.public_key) {
                return Err(format!(
                    "checkpoint at seq {} is signed by key {}, not by the given public key",
                    self.seq, self.public_key
                ));
            }
        }
        let key = parse_public_key(public_key_hex.unwrap_or(&self.public_key))?;
        let mut sig = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut sig).map_err(|_| {
            format!(
                "checkpoint at seq {}: signature is not 64 hex bytes",
                self.seq
            )
        })?;
        key.verify(&self.message(), &Signature::from_bytes(&sig))
            .map_err(|_| format!("checkpoint at seq {}: signature does not verify", self.seq))
    }
}

/// Parse a hex Ed25519 public key.
pub fn parse_public_key(hex_key: &str) -> Result<VerifyingKey, String> {
    let mut b = [0u8; 32];
    hex::decode_to_slice(hex_key.trim(), &mut b)
        .map_err(|_| "public key must be 64 hex digits".to_string())?;
    VerifyingKey::from_bytes(&b).map_err(|_| "not a valid Ed25519 public key".to_string())
}

/// An Ed25519 signing key for checkpoints. Its file holds the 32-byte seed as 64 hex digits.
pub struct CheckpointSigner(SigningKey);

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointSigner(public {})", self.public_hex())
    }
}

impl CheckpointSigner {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> CheckpointSigner {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        CheckpointSigner(SigningKey::from_bytes(&seed))
    }

    /// Read a key file (64 hex digits).
    pub fn from_file(path: &Path) -> Result<CheckpointSigner, StoreError> {
        let text = std::fs::read_to_string(path).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| StoreError::Invalid {
            field: "checkpoint signing key",
            reason: format!("{} must hold 64 hex digits", path.display()),
        })?;
        Ok(CheckpointSigner(SigningKey::from_bytes(&seed)))
    }

    /// The secret seed as hex (for writing the key file).
    pub fn secret_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    /// The public key as hex.
    pub fn public_hex(&self) -> String {
        hex::encode(self.0.verifying_key().to_bytes())
    }

    /// Sign a checkpoint of `head_hash` at `seq`.
    pub fn sign(&self, log_id: &str, seq: i64, head_hash: &str, ts: DateTime<Utc>) -> Checkpoint {
        let mut cp = Checkpoint {
            log_id: log_id.to_string(),
            seq,
            records: seq,
            head_hash: head_hash.to_string(),
            ts: ts.to_rfc3339_opts(SecondsFormat::Micros, true),
            public_key: self.public_hex(),
            signature: String::new(),
        };
        cp.signature = hex::encode(self.0.sign(&cp.message()).to_bytes());
        cp
    }
}

impl Store {
    /// The log's id, created on first use.
    pub async fn audit_log_id(&self) -> Result<String, StoreError> {
        let mut id = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        sqlx::query(
            "INSERT INTO audit_log_id (id, log_id) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(format!("log_{}", hex::encode(id)))
        .execute(self.pool())
        .timed(self, "creating the audit log id")
        .await?;
        sqlx::query("SELECT log_id FROM audit_log_id WHERE id = 1")
            .fetch_one(self.pool())
            .timed(self, "reading the audit log id")
            .await?
            .try_get(0)
            .db("reading the audit log id")
    }

    /// Verify the whole chain, then sign and store a checkpoint of its head. Refuses an empty
    /// or broken chain.
    pub async fn audit_checkpoint(
        &self,
        signer: &CheckpointSigner,
    ) -> Result<Checkpoint, StoreError> {
        let report = self.verify_audit().await?;
        if let Some(b) = &report.broken {
            return Err(StoreError::Invalid {
                field: "audit chain",
                reason: format!("not signing a broken chain: {b}"),
            });
        }
        let (Some(seq), Some(head)) = (report.last_seq, report.head_hash.as_deref()) else {
            return Err(StoreError::Invalid {
                field: "audit chain",
                reason: "the audit log is empty".into(),
            });
        };
        let log_id = self.audit_log_id().await?;
        let cp = signer.sign(&log_id, seq, head, crate::time::now());
        let ts = chrono::DateTime::parse_from_rfc3339(&cp.ts)
            .map(|t| to_us(t.with_timezone(&Utc)))
            .unwrap_or_default();
        sqlx::query(
            "INSERT INTO audit_checkpoints (log_id, seq, head_hash, ts_us, public_key, signature) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&cp.log_id)
        .bind(cp.seq)
        .bind(&cp.head_hash)
        .bind(ts)
        .bind(&cp.public_key)
        .bind(&cp.signature)
        .execute(self.pool())
        .timed(self, "storing checkpoint")
        .await?;
        Ok(cp)
    }

    /// Every stored checkpoint, oldest first.
    pub async fn audit_checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT log_id, seq, head_hash, ts_us, public_key, signature \
             FROM audit_checkpoints ORDER BY id",
        )
        .fetch_all(self.pool())
        .timed(self, "reading checkpoints")
        .await?;
        rows.iter()
            .map(|r| {
                let ts: i64 = r.try_get("ts_us").db("reading checkpoints")?;
                let seq: i64 = r.try_get("seq").db("reading checkpoints")?;
                Ok(Checkpoint {
                    log_id: r.try_get("log_id").db("reading checkpoints")?,
                    seq,
                    records: seq,
                    head_hash: r.try_get("head_hash").db("reading checkpoints")?,
                    ts: from_us(ts, "audit_checkpoints")?
                        .to_rfc3339_opts(SecondsFormat::Micros, true),
                    public_key: r.try_get("public_key").db("reading checkpoints")?,
                    signature: r.try_get("signature").db("reading checkpoints")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::{AuditRow, ROW_COLUMNS};
    use crate::audit::verify::BreakReason;
    use crate::AuditRecord;

    fn rec(i: i64) -> AuditRecord {
        AuditRecord {
            ts: chrono::DateTime::from_timestamp(1_700_000_000 + i, 0).unwrap(),
            account: Some("acct".into()),
            ip: "127.0.0.1".into(),
            api: "openai.chat".into(),
            request_body: format!("{{\"i\":{i}}}"),
            status: 200,
            output_tokens: 5,
            ..Default::default()
        }
    }

    /// Someone with write access edits record 3 and re-hashes every later row and the head: the
    /// chain alone verifies, the checkpoint signed before does not.
    #[tokio::test]
    async fn consistent_rewrite_is_caught_by_checkpoint() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        store
            .append_audit(&(1..=6).map(rec).collect::<Vec<_>>())
            .await
            .unwrap();
        let cp = store
            .audit_checkpoint(&CheckpointSigner::generate())
            .await
            .unwrap();
        assert_eq!(cp.seq, 6);
        assert_eq!(store.verify_audit().await.unwrap().checkpoints_verified, 1);

        let rows = sqlx::query(&format!("SELECT {ROW_COLUMNS} FROM audit_log ORDER BY seq"))
            .fetch_all(store.pool())
            .await
            .unwrap();
        let mut prev = crate::audit::chain::GENESIS;
        for r in &rows {
            let mut row = AuditRow::from_sql(r).unwrap();
            if row.chain.seq == 3 {
                row.chain.output_tokens = 0;
            }
            let hash = row.hash(&prev);
            sqlx::query(
                "UPDATE audit_log SET output_tokens = $1, prev_hash = $2, hash = $3 WHERE seq = $4",
            )
            .bind(row.chain.output_tokens)
            .bind(hex::encode(prev))
            .bind(hex::encode(hash))
            .bind(row.chain.seq)
            .execute(store.pool())
            .await
            .unwrap();
            prev = hash;
        }
        sqlx::query("UPDATE audit_head SET hash = $1")
            .bind(hex::encode(prev))
            .execute(store.pool())
            .await
            .unwrap();
        let broken = store.verify_audit().await.unwrap().broken.unwrap();
        assert_eq!(broken.seq, 6);
        assert!(
            matches!(broken.reason, BreakReason::Checkpoint(_)),
            "{broken}"
        );
    }

    #[test]
    fn sign_and_verify() {
        let s = CheckpointSigner::generate();
        let cp = s.sign("log_x", 5, &"ab".repeat(32), Utc::now());
        cp.verify_signature(None).unwrap();
        cp.verify_signature(Some(&s.public_hex())).unwrap();
        let other = CheckpointSigner::generate();
        assert!(cp.verify_signature(Some(&other.public_hex())).is_err());
        let mut forged = cp.clone();
        forged.seq = 4;
        assert!(forged.verify_signature(None).is_err());
    }
}
