//! The hash chain: the database form of a record and its canonical encoding.
//!
//! `hash = SHA-256("moat-audit-v1\0" || prev_hash || encode(row))`, where `encode` writes every
//! column except the hashes in a fixed order: integers as 8-byte big-endian, booleans as one
//! byte, strings as an 8-byte big-endian length followed by the UTF-8 bytes, and optional values
//! as a 0 byte (absent) or a 1 byte followed by the value. The encoding is unambiguous, so no two
//! different rows share an encoding. The first row's `prev_hash` is 32 zero bytes. The sequence
//! number is part of the encoding, so rows cannot be renumbered or swapped unnoticed.

use sha2::{Digest, Sha256};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::AuditRecord;
use crate::time::{from_us, to_us};
use crate::StoreError;

/// `prev_hash` of the first record.
pub const GENESIS: [u8; 32] = [0u8; 32];

const DOMAIN: &[u8] = b"moat-audit-v1\0";

/// An audit row exactly as stored (what the hash covers).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AuditRow {
    pub seq: i64,
    pub ts_us: i64,
    pub account: Option<String>,
    pub key_id: Option<String>,
    pub ip: String,
    pub user_agent: String,
    pub api: String,
    pub model: Option<String>,
    pub stream: bool,
    pub request_body: String,
    pub status: i64,
    pub finish_reason: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub response_text: Option<String>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub decision: Option<String>,
}

fn sat_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl AuditRow {
    /// The stored form of `rec` at position `seq`. Counters above `i64::MAX` saturate.
    pub fn from_record(seq: i64, rec: &AuditRecord) -> AuditRow {
        AuditRow {
            seq,
            ts_us: to_us(rec.ts),
            account: rec.account.clone(),
            key_id: rec.key_id.clone(),
            ip: rec.ip.clone(),
            user_agent: rec.user_agent.clone(),
            api: rec.api.clone(),
            model: rec.model.clone(),
            stream: rec.stream,
            request_body: rec.request_body.clone(),
            status: i64::from(rec.status),
            finish_reason: rec.finish_reason.clone(),
            input_tokens: sat_i64(rec.input_tokens),
            output_tokens: sat_i64(rec.output_tokens),
            response_text: rec.response_text.clone(),
            latency_ms: sat_i64(rec.latency_ms),
            error: rec.error.clone(),
            decision: rec.decision.as_ref().map(|d| d.to_string()),
        }
    }

    /// Back to the API type.
    pub fn to_record(&self) -> Result<AuditRecord, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            table: "audit_log",
            reason: format!("seq {}: {reason}", self.seq),
        };
        let uns =
            |v: i64, what: &str| u64::try_from(v).map_err(|_| corrupt(format!("negative {what}")));
        Ok(AuditRecord {
            ts: from_us(self.ts_us, "audit_log")?,
            account: self.account.clone(),
            key_id: self.key_id.clone(),
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
            api: self.api.clone(),
            model: self.model.clone(),
            stream: self.stream,
            request_body: self.request_body.clone(),
            status: u16::try_from(self.status)
                .map_err(|_| corrupt(format!("status {} out of range", self.status)))?,
            finish_reason: self.finish_reason.clone(),
            input_tokens: uns(self.input_tokens, "input_tokens")?,
            output_tokens: uns(self.output_tokens, "output_tokens")?,
            response_text: self.response_text.clone(),
            latency_ms: uns(self.latency_ms, "latency_ms")?,
            error: self.error.clone(),
            decision: self
                .decision
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| corrupt(format!("decision is not JSON: {e}")))?,
        })
    }

    /// Read a row selected with [`ROW_COLUMNS`] (plus `prev_hash`, `hash` when present).
    pub fn from_sql(row: &SqliteRow) -> Result<AuditRow, StoreError> {
        let c = |e: sqlx::Error| StoreError::Corrupt {
            table: "audit_log",
            reason: e.to_string(),
        };
        Ok(AuditRow {
            seq: row.try_get("seq").map_err(c)?,
            ts_us: row.try_get("ts_us").map_err(c)?,
            account: row.try_get("account_id").map_err(c)?,
            key_id: row.try_get("key_id").map_err(c)?,
            ip: row.try_get("ip").map_err(c)?,
            user_agent: row.try_get("user_agent").map_err(c)?,
            api: row.try_get("api").map_err(c)?,
            model: row.try_get("model").map_err(c)?,
            stream: row.try_get("stream").map_err(c)?,
            request_body: row.try_get("request_body").map_err(c)?,
            status: row.try_get("status").map_err(c)?,
            finish_reason: row.try_get("finish_reason").map_err(c)?,
            input_tokens: row.try_get("input_tokens").map_err(c)?,
            output_tokens: row.try_get("output_tokens").map_err(c)?,
            response_text: row.try_get("response_text").map_err(c)?,
            latency_ms: row.try_get("latency_ms").map_err(c)?,
            error: row.try_get("error").map_err(c)?,
            decision: row.try_get("decision").map_err(c)?,
        })
    }

    /// The canonical byte encoding of the row (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder(Vec::with_capacity(256 + self.request_body.len()));
        e.int(self.seq);
        e.int(self.ts_us);
        e.opt_str(&self.account);
        e.opt_str(&self.key_id);
        e.str(&self.ip);
        e.str(&self.user_agent);
        e.str(&self.api);
        e.opt_str(&self.model);
        e.bool(self.stream);
        e.str(&self.request_body);
        e.int(self.status);
        e.opt_str(&self.finish_reason);
        e.int(self.input_tokens);
        e.int(self.output_tokens);
        e.opt_str(&self.response_text);
        e.int(self.latency_ms);
        e.opt_str(&self.error);
        e.opt_str(&self.decision);
        e.0
    }

    /// `SHA-256(domain || prev || encode(self))`.
    pub fn hash(&self, prev: &[u8; 32]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(DOMAIN);
        h.update(prev);
        h.update(self.encode());
        h.finalize().into()
    }
}

/// Columns of `audit_log` that [`AuditRow::from_sql`] reads, in insert order.
pub(crate) const ROW_COLUMNS: &str = "seq, ts_us, account_id, key_id, ip, user_agent, api, \
     model, stream, request_body, status, finish_reason, input_tokens, output_tokens, \
     response_text, latency_ms, error, decision";

struct Encoder(Vec<u8>);

impl Encoder {
    fn int(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bool(&mut self, v: bool) {
        self.0.push(u8::from(v));
    }
    fn str(&mut self, s: &str) {
        self.0.extend_from_slice(&(s.len() as u64).to_be_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt_str(&mut self, s: &Option<String>) {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.str(s);
            }
        }
    }
}

/// Decode a stored hex hash.
pub(crate) fn decode_hash(hex_str: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_str, &mut out).ok()?;
    Some(out)
}
