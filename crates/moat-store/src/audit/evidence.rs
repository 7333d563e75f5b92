//! Reading chain ranges for evidence packs (`moat-evidence`).
//!
//! A [`ChainSpan`] holds every link from `first_seq` to `last_seq`: the rows selected for the
//! pack in full ([`AuditEntry`]: what the hash covers, plus the plaintext bodies and their salt
//! when readable), and the others by their leaf hash only (format 2), so a verifier can
//! recompute the chain over the whole range without seeing other customers' rows. Format-1
//! rows (written before chain format 2) have no leaf and are always included in full.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::chain::{AuditRow, ChainRow, ROW_COLUMNS};
use crate::db::Timed;
use crate::error::DbContext;
use crate::{Store, StoreError};

const PAGE: i64 = 2_000;

/// One row of an evidence pack, in full.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// What the hash covers.
    pub row: ChainRow,
    /// The row's stored chain hash (hex).
    pub hash: String,
    /// Hex salt of the body digests (format 2), given only with the bodies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// Plaintext request body, when disclosed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    /// Plaintext response text, when disclosed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_text: Option<String>,
}

/// A link of a [`ChainSpan`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SpanLink {
    /// A row in the pack.
    Row(Box<AuditEntry>),
    /// A row outside the pack, by its format-2 leaf hash (hex).
    Leaf {
        /// Sequence number.
        seq: i64,
        /// `SHA-256("moat-audit-leaf-v2\0" || encode(row))`, hex.
        leaf: String,
    },
}

/// Consecutive links `first_seq..=last_seq` of the chain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainSpan {
    /// Hash of the link before `first_seq` (hex; zeros for seq 1).
    pub prev_hash: String,
    /// The links in order.
    pub links: Vec<SpanLink>,
}

impl Store {
    /// Accounts seen with a detection decision naming cluster `cluster`.
    pub async fn audit_cluster_accounts(&self, cluster: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT DISTINCT account_id FROM audit_log \
             WHERE account_id IS NOT NULL AND decision IS NOT NULL AND {} = $1 \
             ORDER BY account_id",
            self.dialect().json_field("decision", "cluster")
        ))
        .bind(cluster)
        .fetch_all(self.pool())
        .timed(self, "finding cluster accounts")
        .await?;
        rows.iter()
            .map(|r| r.try_get(0).db("finding cluster accounts"))
            .collect()
    }

    /// Lowest and highest seq of `accounts`' rows with `since_us <= ts_us < until_us`.
    pub async fn audit_seq_range(
        &self,
        accounts: &BTreeSet<String>,
        since_us: i64,
        until_us: i64,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        let mut range: Option<(i64, i64)> = None;
        for a in accounts {
            let r = sqlx::query(
                "SELECT MIN(seq), MAX(seq) FROM audit_log \
                 WHERE account_id = $1 AND ts_us >= $2 AND ts_us < $3",
            )
            .bind(a)
            .bind(since_us)
            .bind(until_us)
            .fetch_one(self.pool())
            .timed(self, "finding evidence range")
            .await?;
            let lo: Option<i64> = r.try_get(0).db("finding evidence range")?;
            let hi: Option<i64> = r.try_get(1).db("finding evidence range")?;
            if let (Some(lo), Some(hi)) = (lo, hi) {
                range = Some(range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
            }
        }
        Ok(range)
    }

    /// Links `first_seq..=last_seq`; rows for which `include` holds come in full (bodies
    /// decrypted when the key is configured, else left out), the others as leaves.
    pub async fn audit_span(
        &self,
        first_seq: i64,
        last_seq: i64,
        include: impl Fn(&ChainRow) -> bool,
    ) -> Result<ChainSpan, StoreError> {
        let mut span = ChainSpan::default();
        let mut tx = self.begin_snapshot("reading audit span").await?;
        let mut after = first_seq - 1;
        while after < last_seq {
            let rows = sqlx::query(&format!(
                "SELECT {ROW_COLUMNS}, prev_hash, hash FROM audit_log \
                 WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3"
            ))
            .bind(after)
            .bind(last_seq)
            .bind(PAGE)
            .fetch_all(&mut *tx)
            .timed(self, "reading audit span")
            .await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let row = AuditRow::from_sql(r)?;
                after = row.chain.seq;
                if span.links.is_empty() {
                    span.prev_hash = r.try_get("prev_hash").db("reading audit span")?;
                }
                let hash: String = r.try_get("hash").db("reading audit span")?;
                let leaf = row.chain.leaf();
                if let (false, Some(leaf)) = (include(&row.chain), leaf) {
                    span.links.push(SpanLink::Leaf {
                        seq: row.chain.seq,
                        leaf: hex::encode(leaf),
                    });
                    continue;
                }
                let bodies = row.bodies(self.audit_keys()).ok();
                let salt = bodies.as_ref().and(row.salt.as_ref().map(hex::encode));
                let (request_body, response_text) = match bodies {
                    Some((req, resp)) => (Some(req), resp),
                    None => (None, None),
                };
                span.links.push(SpanLink::Row(Box::new(AuditEntry {
                    row: row.chain,
                    hash,
                    salt,
                    request_body,
                    response_text,
                })));
            }
        }
        tx.rollback().timed(self, "reading audit span").await?;
        Ok(span)
    }
}
