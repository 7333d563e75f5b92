//! Recomputing the audit hash chain.

use std::fmt;

use sqlx::Row;

use super::chain::{decode_hash, AuditRow, ChainBodies, GENESIS, ROW_COLUMNS};
use super::checkpoint::Checkpoint;
use super::crypto::AuditKeyring;
use crate::db::Timed;
use crate::error::DbContext;
use crate::{Store, StoreError};

/// Rows read per query while verifying.
const PAGE: i64 = 2_000;

/// Why the chain is broken at a given row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BreakReason {
    /// The row's content does not match its stored hash (the row was edited).
    ContentAltered,
    /// One or more rows before this one are missing (deleted, or rows were renumbered):
    /// `expected_seq` was the next sequence number the chain needed.
    Missing {
        /// The sequence number that should have come next.
        expected_seq: i64,
    },
    /// The row's `prev_hash` is not the previous row's hash (the previous row was replaced
    /// with a re-hashed forgery, or rows were reordered).
    BadPrevHash,
    /// A stored hash is not 64 hex digits, or a column cannot be decoded.
    Undecodable(String),
    /// The recorded chain head (`audit_head`) does not match the last row: the newest rows
    /// were removed, or the head was altered. `seq` of the [`BrokenLink`] is the head's seq.
    HeadMismatch {
        /// Sequence number of the last row actually present (0 if none).
        last_seq: i64,
    },
    /// Rows exist but the chain head record is missing.
    HeadMissing,
    /// A body cannot be decrypted with its configured key, or does not match its digest.
    Body(String),
    /// The chain does not reach a signed checkpoint: the record at the checkpoint's seq has
    /// another hash, or is gone (`seq` of the [`BrokenLink`] is the checkpoint's seq).
    Checkpoint(String),
}

impl fmt::Display for BreakReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BreakReason::ContentAltered => write!(f, "content altered (hash mismatch)"),
            BreakReason::Missing { expected_seq } => {
                write!(f, "record(s) removed or reordered: expected seq {expected_seq}")
            }
            BreakReason::BadPrevHash => write!(f, "prev_hash does not match the previous record"),
            BreakReason::Undecodable(why) => write!(f, "undecodable row: {why}"),
            BreakReason::HeadMismatch { last_seq } => write!(
                f,
                "chain head does not match the last record (seq {last_seq}): newest records removed or head altered"
            ),
            BreakReason::HeadMissing => write!(f, "chain head record missing"),
            BreakReason::Body(why) => write!(f, "body: {why}"),
            BreakReason::Checkpoint(why) => write!(f, "signed checkpoint: {why}"),
        }
    }
}

/// The first place where the chain is broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenLink {
    /// Sequence number of the row at which the break was found.
    pub seq: i64,
    /// What is wrong there.
    pub reason: BreakReason,
}

impl fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seq {}: {}", self.seq, self.reason)
    }
}

/// Result of [`Store::verify_audit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Rows checked (up to and including the broken one).
    pub records: u64,
    /// Sequence number of the last row checked, if any.
    pub last_seq: Option<i64>,
    /// Hex hash of the last intact link: record it somewhere else (e.g. a ticket, a log
    /// shipper) to anchor the chain against wholesale rewriting.
    pub head_hash: Option<String>,
    /// The first broken link; `None` when the whole chain verifies.
    pub broken: Option<BrokenLink>,
    /// Bodies decrypted (or read in clear) and matched against their digests.
    pub bodies_checked: u64,
    /// Encrypted bodies not checked because their key is not configured (the chain itself is
    /// still verified: it covers the bodies' digests).
    pub bodies_unchecked: u64,
    /// Signed checkpoints whose head the chain reaches and whose signature holds.
    pub checkpoints_verified: u64,
}

impl VerifyReport {
    /// Whether the chain verified end to end.
    pub fn is_ok(&self) -> bool {
        self.broken.is_none()
    }
}

impl Store {
    /// Recompute the whole audit chain in sequence order and report the first broken link.
    ///
    /// Detects edited rows, removed rows (anywhere, including the newest ones via the stored
    /// chain head), renumbered or reordered rows, and forged `prev_hash` links. It cannot detect
    /// a consistent rewrite of the whole chain from some row onwards by someone with write
    /// access to the database: compare `head_hash` with a copy kept elsewhere for that.
    pub async fn verify_audit(&self) -> Result<VerifyReport, StoreError> {
        let mut report = VerifyReport {
            records: 0,
            last_seq: None,
            head_hash: None,
            broken: None,
            bodies_checked: 0,
            bodies_unchecked: 0,
            checkpoints_verified: 0,
        };
        let checkpoints = self.audit_checkpoints().await?;
        let mut at_seq: std::collections::BTreeMap<i64, Vec<&Checkpoint>> = Default::default();
        for cp in &checkpoints {
            at_seq.entry(cp.seq).or_default().push(cp);
        }
        // One read transaction: a consistent snapshot even while the writer appends.
        let mut tx = self.begin_snapshot("starting audit verification").await?;
        let mut expected_seq = 1i64;
        let mut prev = GENESIS;
        let mut after = 0i64;
        'pages: loop {
            let rows = sqlx::query(&format!(
                "SELECT {ROW_COLUMNS}, prev_hash, hash FROM audit_log \
                 WHERE seq > $1 ORDER BY seq LIMIT $2"
            ))
            .bind(after)
            .bind(PAGE)
            .fetch_all(&mut *tx)
            .timed(self, "reading audit log")
            .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let seq: i64 = row.try_get("seq").db("reading audit seq")?;
                after = seq;
                report.records += 1;
                report.last_seq = Some(seq);
                let checked = check_row(row, seq, expected_seq, &mut prev, self.audit_keys())
                    .and_then(|body| {
                        match body {
                            Some(true) => report.bodies_checked += 1,
                            Some(false) => report.bodies_unchecked += 1,
                            None => {}
                        }
                        check_checkpoints(at_seq.get(&seq), &prev)
                    });
                if let Err(reason) = checked {
                    report.broken = Some(BrokenLink { seq, reason });
                    break 'pages;
                }
                report.checkpoints_verified += at_seq.get(&seq).map_or(0, |v| v.len() as u64);
                expected_seq = seq + 1;
            }
        }
        if report.broken.is_none() {
            report.broken = check_head(self, &mut tx, expected_seq - 1, &prev).await?;
        }
        if report.broken.is_none() {
            if let Some((&seq, _)) = at_seq.range(expected_seq..).next() {
                report.broken = Some(BrokenLink {
                    seq,
                    reason: BreakReason::Checkpoint(format!(
                        "a checkpoint covers seq {seq} but the log ends at seq {}: records removed",
                        expected_seq - 1
                    )),
                });
            }
        }
        tx.rollback()
            .timed(self, "ending audit verification")
            .await?;
        if report.records > 0 {
            report.head_hash = Some(hex::encode(prev));
        }
        Ok(report)
    }
}

/// Compare the recorded chain head with the last verified row.
async fn check_head(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    last_seq: i64,
    last_hash: &[u8; 32],
) -> Result<Option<BrokenLink>, StoreError> {
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_optional(&mut *tx)
        .timed(store, "reading audit head")
        .await?;
    let Some(head) = head else {
        return Ok((last_seq > 0).then_some(BrokenLink {
            seq: last_seq,
            reason: BreakReason::HeadMissing,
        }));
    };
    let seq: i64 = head.try_get("seq").db("reading audit head")?;
    let hash: String = head.try_get("hash").db("reading audit head")?;
    let matches = seq == last_seq && decode_hash(&hash).as_ref() == Some(last_hash);
    Ok((!matches).then_some(BrokenLink {
        seq,
        reason: BreakReason::HeadMismatch { last_seq },
    }))
}

/// Signed checkpoints at this row: its hash must be their head, their signatures must hold.
fn check_checkpoints(cps: Option<&Vec<&Checkpoint>>, hash: &[u8; 32]) -> Result<(), BreakReason> {
    for cp in cps.into_iter().flatten() {
        if decode_hash(&cp.head_hash).as_ref() != Some(hash) {
            return Err(BreakReason::Checkpoint(format!(
                "checkpoint of {} signed head {} here, the chain now gives {}",
                cp.ts,
                cp.head_hash,
                hex::encode(hash)
            )));
        }
        cp.verify_signature(None).map_err(BreakReason::Checkpoint)?;
    }
    Ok(())
}

/// Check one row against the chain so far; on success advance `prev` to its hash. Returns
/// whether the body was checked (`Some(true)`), could not be for lack of its key
/// (`Some(false)`), or has nothing to check (format 1, `None`).
fn check_row(
    row: &sqlx::any::AnyRow,
    seq: i64,
    expected_seq: i64,
    prev: &mut [u8; 32],
    keys: Option<&AuditKeyring>,
) -> Result<Option<bool>, BreakReason> {
    if seq != expected_seq {
        return Err(BreakReason::Missing { expected_seq });
    }
    let audit = AuditRow::from_sql(row).map_err(|e| BreakReason::Undecodable(e.to_string()))?;
    let hashes = row
        .try_get::<String, _>("prev_hash")
        .ok()
        .and_then(|p| decode_hash(&p))
        .zip(
            row.try_get::<String, _>("hash")
                .ok()
                .and_then(|h| decode_hash(&h)),
        );
    let Some((stored_prev, stored_hash)) = hashes else {
        return Err(BreakReason::Undecodable("bad prev_hash or hash".into()));
    };
    if audit.hash(&stored_prev) != stored_hash {
        return Err(BreakReason::ContentAltered);
    }
    if stored_prev != *prev {
        return Err(BreakReason::BadPrevHash);
    }
    *prev = stored_hash;
    if matches!(audit.chain.bodies, ChainBodies::Plain { .. }) {
        return Ok(None);
    }
    let key_missing = audit
        .enc_key_id()
        .is_some_and(|id| !keys.is_some_and(|k| k.has(id)));
    if key_missing {
        return Ok(Some(false));
    }
    let clear = audit.sealed.is_none();
    audit.bodies(keys).map(|_| Some(true)).map_err(|e| {
        if clear {
            // A body stored in clear that no longer matches its chained digest was edited.
            BreakReason::ContentAltered
        } else {
            BreakReason::Body(e.to_string())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditRecord;

    fn rec(i: i64) -> AuditRecord {
        AuditRecord {
            ts: chrono::DateTime::from_timestamp(1_700_000_000 + i, 0).unwrap(),
            account: Some("acct_a".into()),
            key_id: None,
            ip: "127.0.0.1".into(),
            user_agent: "t".into(),
            api: "openai.chat".into(),
            model: None,
            stream: false,
            request_body: format!("{{\"i\":{i}}}"),
            status: 200,
            finish_reason: None,
            input_tokens: 1,
            output_tokens: 2,
            response_text: None,
            latency_ms: 3,
            error: None,
            decision: None,
        }
    }

    /// A forger who rewrites row 2 *with a correctly recomputed hash* still breaks the link
    /// from row 3.
    #[tokio::test]
    async fn forged_row_breaks_next_link() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        store
            .append_audit(&[rec(1), rec(2), rec(3), rec(4)])
            .await
            .unwrap();
        assert!(store.verify_audit().await.unwrap().is_ok());

        let prev: String = sqlx::query("SELECT prev_hash FROM audit_log WHERE seq = 2")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .get(0);
        let mut forged = rec(2);
        forged.status = 403;
        let mut row = AuditRow::from_record(2, &forged, None);
        // Keep the stored salt so only the status differs.
        let stored = sqlx::query(&format!(
            "SELECT {ROW_COLUMNS} FROM audit_log WHERE seq = 2"
        ))
        .fetch_one(store.pool())
        .await
        .unwrap();
        let stored = AuditRow::from_sql(&stored).unwrap();
        row.chain.bodies = stored.chain.bodies;
        let hash = row.hash(&decode_hash(&prev).unwrap());
        sqlx::query("UPDATE audit_log SET status = 403, hash = $1 WHERE seq = 2")
            .bind(hex::encode(hash))
            .execute(store.pool())
            .await
            .unwrap();
        let broken = store.verify_audit().await.unwrap().broken.unwrap();
        assert_eq!(
            broken,
            BrokenLink {
                seq: 3,
                reason: BreakReason::BadPrevHash
            }
        );
    }

    /// A database written before chain format 2 (rows with `hash_v = 1`, the schema's default
    /// after migration 0003) keeps verifying, and new format-2 rows chain on after it.
    #[tokio::test]
    async fn format1_rows_then_format2_rows_verify() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let mut prev = GENESIS;
        for seq in 1..=3 {
            let mut row = AuditRow::from_record(seq, &rec(seq), None).chain;
            row.bodies = ChainBodies::Plain {
                request_body: rec(seq).request_body,
                response_text: None,
            };
            let hash = row.hash(&prev);
            sqlx::query(
                "INSERT INTO audit_log (seq, ts_us, account_id, key_id, ip, user_agent, api, model, \
                 stream, request_body, status, finish_reason, input_tokens, output_tokens, \
                 response_text, latency_ms, error, decision, prev_hash, hash) \
                 VALUES ($1, $2, $3, NULL, $4, $5, $6, NULL, 0, $7, 200, NULL, 1, 2, NULL, 3, NULL, NULL, $8, $9)",
            )
            .bind(seq)
            .bind(row.ts_us)
            .bind(&row.account)
            .bind(&row.ip)
            .bind(&row.user_agent)
            .bind(&row.api)
            .bind(rec(seq).request_body)
            .bind(hex::encode(prev))
            .bind(hex::encode(hash))
            .execute(store.pool())
            .await
            .unwrap();
            prev = hash;
        }
        sqlx::query("INSERT INTO audit_head (id, seq, hash) VALUES (1, 3, $1)")
            .bind(hex::encode(prev))
            .execute(store.pool())
            .await
            .unwrap();
        let r = store.verify_audit().await.unwrap();
        assert!(r.is_ok(), "{r:?}");
        let keys = AuditKeyring::from_spec(&format!("k={}", "01".repeat(32))).unwrap();
        let store = store.with_audit_keys(keys);
        store.append_audit(&[rec(4), rec(5)]).await.unwrap();
        let r = store.verify_audit().await.unwrap();
        assert!(r.is_ok(), "{r:?}");
        assert_eq!((r.records, r.bodies_checked), (5, 2));
        let read = store.read_audit(0, 10).await.unwrap();
        assert_eq!(read[0].1.request_body, rec(1).request_body);
        assert_eq!(read[4].1.request_body, rec(5).request_body);
    }

    #[test]
    fn encoding_is_unambiguous_for_optional_fields() {
        let mut a = AuditRow::from_record(1, &rec(1), None).chain;
        let mut b = a.clone();
        a.model = Some(String::new());
        b.model = None;
        assert_ne!(a.encode(), b.encode());
        a.model = Some("ab".into());
        a.error = Some("c".into());
        b.model = Some("a".into());
        b.error = Some("bc".into());
        assert_ne!(a.hash(&GENESIS), b.hash(&GENESIS));
    }
}
