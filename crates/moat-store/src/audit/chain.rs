//! The hash chain: the database form of a record and its canonical encoding.
//!
//! `hash = SHA-256(domain || prev_hash || encode(row))`, where `encode` writes every column
//! except the hashes in a fixed order: integers as 8-byte big-endian, booleans as one byte,
//! strings as an 8-byte big-endian length followed by the UTF-8 bytes, and optional values as a
//! 0 byte (absent) or a 1 byte followed by the value. The encoding is unambiguous, so no two
//! different rows share an encoding. The first row's `prev_hash` is 32 zero bytes. The sequence
//! number is part of the encoding, so rows cannot be renumbered or swapped unnoticed.
//!
//! Two chain formats exist, chosen per row (`hash_v`); format 2 hashes in two steps,
//! `leaf = SHA-256("moat-audit-leaf-v2\0" || encode(row))` and
//! `hash = SHA-256("moat-audit-v2\0" || prev_hash || leaf)`, so that a row can be represented
//! by its leaf alone (evidence packs leave other customers' rows out that way):
//!
//! * **format 1** (`"moat-audit-v1\0"`, rows written before encryption support): the request
//!   body and response text are encoded themselves;
//! * **format 2** (`"moat-audit-v2\0"`, every row written now): in their place the encoding
//!   holds salted digests, `SHA-256("moat-body-v1\0" || salt || text)` as hex, with a random
//!   16-byte salt per row. The chain therefore covers the *plaintext* (through its digest), not
//!   the ciphertext: `audit verify` runs without the encryption key, a key rotation or
//!   re-encryption never touches the chain, and an evidence pack can disclose some bodies (the
//!   verifier recomputes their digests) and only the digests of the others. The salt stops
//!   precomputed dictionaries; a verifier holding a candidate text and the row's salt can
//!   confirm a guess, which is why the salt is only disclosed together with the body.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::crypto::AuditKeyring;
use super::AuditRecord;
use crate::db::get_bool;
use crate::time::{from_us, to_us};
use crate::StoreError;

/// `prev_hash` of the first record.
pub const GENESIS: [u8; 32] = [0u8; 32];

const DOMAIN_V1: &[u8] = b"moat-audit-v1\0";
const DOMAIN_V2: &[u8] = b"moat-audit-v2\0";
const LEAF_V2: &[u8] = b"moat-audit-leaf-v2\0";
const BODY_DOMAIN: &[u8] = b"moat-body-v1\0";
const SALT_LEN: usize = 16;

/// How the bodies enter a row's hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum ChainBodies {
    /// Chain format 1: the texts themselves.
    Plain {
        /// Request body.
        request_body: String,
        /// Response text.
        response_text: Option<String>,
    },
    /// Chain format 2: salted digests of the texts (hex).
    Digests {
        /// Digest of the request body.
        request_digest: String,
        /// Digest of the response text, when there is one.
        response_digest: Option<String>,
    },
}

/// Exactly what one row's hash covers, in a form that can leave the database (evidence packs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainRow {
    /// Sequence number (1, 2, …).
    pub seq: i64,
    /// Arrival time, microseconds since the epoch.
    pub ts_us: i64,
    /// Account id.
    pub account: Option<String>,
    /// API key id.
    pub key_id: Option<String>,
    /// Client address.
    pub ip: String,
    /// Client user agent.
    pub user_agent: String,
    /// API name.
    pub api: String,
    /// Requested model.
    pub model: Option<String>,
    /// Streamed response requested.
    pub stream: bool,
    /// HTTP status.
    pub status: i64,
    /// Finish reason.
    pub finish_reason: Option<String>,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Latency in milliseconds.
    pub latency_ms: i64,
    /// Error code.
    pub error: Option<String>,
    /// Detection decision as stored (JSON text).
    pub decision: Option<String>,
    /// The bodies, or their digests.
    pub bodies: ChainBodies,
}

/// Format 2 chain link: `SHA-256("moat-audit-v2\0" || prev || leaf)`.
pub fn link(prev: &[u8; 32], leaf: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN_V2);
    h.update(prev);
    h.update(leaf);
    h.finalize().into()
}

/// `SHA-256("moat-body-v1\0" || salt || text)` as hex: a format-2 body digest.
pub fn body_digest(salt: &[u8], text: &str) -> String {
    let mut h = Sha256::new();
    h.update(BODY_DOMAIN);
    h.update(salt);
    h.update(text.as_bytes());
    hex::encode(h.finalize())
}

impl ChainRow {
    /// The canonical byte encoding of the row (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder(Vec::with_capacity(512));
        e.int(self.seq);
        e.int(self.ts_us);
        e.opt_str(self.account.as_deref());
        e.opt_str(self.key_id.as_deref());
        e.str(&self.ip);
        e.str(&self.user_agent);
        e.str(&self.api);
        e.opt_str(self.model.as_deref());
        e.bool(self.stream);
        let (req, resp) = match &self.bodies {
            ChainBodies::Plain {
                request_body,
                response_text,
            } => (request_body, response_text),
            ChainBodies::Digests {
                request_digest,
                response_digest,
            } => (request_digest, response_digest),
        };
        e.str(req);
        e.int(self.status);
        e.opt_str(self.finish_reason.as_deref());
        e.int(self.input_tokens);
        e.int(self.output_tokens);
        e.opt_str(resp.as_deref());
        e.int(self.latency_ms);
        e.opt_str(self.error.as_deref());
        e.opt_str(self.decision.as_deref());
        e.0
    }

    /// Format 2 only: the row's leaf, `SHA-256("moat-audit-leaf-v2\0" || encode(self))`. A
    /// row left out of an evidence pack is represented by its leaf.
    pub fn leaf(&self) -> Option<[u8; 32]> {
        match self.bodies {
            ChainBodies::Plain { .. } => None,
            ChainBodies::Digests { .. } => {
                let mut h = Sha256::new();
                h.update(LEAF_V2);
                h.update(self.encode());
                Some(h.finalize().into())
            }
        }
    }

    /// The row's chain hash: format 1 `SHA-256("moat-audit-v1\0" || prev || encode(self))`,
    /// format 2 [`link`]`(prev, leaf)`.
    pub fn hash(&self, prev: &[u8; 32]) -> [u8; 32] {
        match self.leaf() {
            Some(leaf) => link(prev, &leaf),
            None => {
                let mut h = Sha256::new();
                h.update(DOMAIN_V1);
                h.update(prev);
                h.update(self.encode());
                h.finalize().into()
            }
        }
    }
}

/// An encrypted row's sealed bodies.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ct: Vec<u8>,
}

/// An audit row as stored: what the hash covers, plus the bodies in clear or sealed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AuditRow {
    pub chain: ChainRow,
    /// Format-2 salt.
    pub salt: Option<Vec<u8>>,
    /// Plaintext request body, when stored in clear.
    pub request_body: String,
    /// Plaintext response text, when stored in clear.
    pub response_text: Option<String>,
    /// The sealed bodies of an encrypted row.
    pub sealed: Option<Sealed>,
}

fn sat_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn seal_plaintext(req: &str, resp: Option<&str>) -> Vec<u8> {
    let mut e = Encoder(Vec::with_capacity(
        16 + req.len() + resp.map_or(0, str::len),
    ));
    e.str(req);
    e.opt_str(resp);
    e.0
}

fn unseal_plaintext(b: &[u8]) -> Option<(String, Option<String>)> {
    let mut d = Decoder(b);
    let req = d.str()?;
    let resp = match d.byte()? {
        0 => None,
        1 => Some(d.str()?),
        _ => return None,
    };
    d.0.is_empty().then_some((req, resp))
}

impl AuditRow {
    /// The stored form of `rec` at position `seq` (chain format 2), sealed under the active key
    /// of `keys` when there is one. Counters above `i64::MAX` saturate.
    #[cfg(test)]
    pub fn from_record(seq: i64, rec: &AuditRecord, keys: Option<&AuditKeyring>) -> AuditRow {
        let decision = rec.decision.as_ref().map(|d| d.to_string());
        AuditRow::from_parts(seq, rec, decision, keys)
    }

    /// Like `from_record`, with the decision given as its exact JSON text (the
    /// record's own `decision` is ignored).
    pub fn from_parts(
        seq: i64,
        rec: &AuditRecord,
        decision: Option<String>,
        keys: Option<&AuditKeyring>,
    ) -> AuditRow {
        // `thread_rng` is a CSPRNG seeded from the OS (and reseeded): the salt stays
        // unpredictable without a getrandom system call per record.
        let mut salt = [0u8; SALT_LEN];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut salt);
        let request_digest = body_digest(&salt, &rec.request_body);
        let response_digest = rec.response_text.as_deref().map(|t| body_digest(&salt, t));
        let sealed = keys.and_then(|k| {
            k.seal(
                seq,
                (&request_digest, response_digest.as_deref()),
                &seal_plaintext(&rec.request_body, rec.response_text.as_deref()),
            )
        });
        let sealed = sealed.map(|(key_id, nonce, ct)| Sealed { key_id, nonce, ct });
        let clear = sealed.is_none();
        AuditRow {
            chain: ChainRow {
                seq,
                ts_us: to_us(rec.ts),
                account: rec.account.clone(),
                key_id: rec.key_id.clone(),
                ip: rec.ip.clone(),
                user_agent: rec.user_agent.clone(),
                api: rec.api.clone(),
                model: rec.model.clone(),
                stream: rec.stream,
                status: i64::from(rec.status),
                finish_reason: rec.finish_reason.clone(),
                input_tokens: sat_i64(rec.input_tokens),
                output_tokens: sat_i64(rec.output_tokens),
                latency_ms: sat_i64(rec.latency_ms),
                error: rec.error.clone(),
                decision,
                bodies: ChainBodies::Digests {
                    request_digest,
                    response_digest,
                },
            },
            salt: Some(salt.to_vec()),
            request_body: if clear {
                rec.request_body.clone()
            } else {
                String::new()
            },
            response_text: if clear {
                rec.response_text.clone()
            } else {
                None
            },
            sealed,
        }
    }

    /// Key id of an encrypted row.
    pub fn enc_key_id(&self) -> Option<&str> {
        self.sealed.as_ref().map(|s| s.key_id.as_str())
    }

    /// The plaintext bodies: decrypted (and checked against their digests) for encrypted rows.
    pub fn bodies(
        &self,
        keys: Option<&AuditKeyring>,
    ) -> Result<(String, Option<String>), StoreError> {
        let seq = self.chain.seq;
        let (req, resp) = match &self.sealed {
            None => (self.request_body.clone(), self.response_text.clone()),
            Some(s) => {
                let digests = match &self.chain.bodies {
                    ChainBodies::Digests {
                        request_digest,
                        response_digest,
                    } => (request_digest.as_str(), response_digest.as_deref()),
                    ChainBodies::Plain { .. } => {
                        return Err(corrupt(seq, "encrypted format-1 row"))
                    }
                };
                let ring = keys.ok_or_else(|| StoreError::AuditKey {
                    seq,
                    key_id: s.key_id.clone(),
                    reason: "the body is encrypted and no audit encryption key is configured \
                             ([audit.encryption] or MOAT_AUDIT_KEYS)"
                        .into(),
                })?;
                let pt = ring.open(seq, &s.key_id, digests, &s.nonce, &s.ct)?;
                unseal_plaintext(&pt).ok_or_else(|| corrupt(seq, "undecodable plaintext"))?
            }
        };
        if let (
            ChainBodies::Digests {
                request_digest,
                response_digest,
            },
            Some(salt),
        ) = (&self.chain.bodies, &self.salt)
        {
            let resp_digest = resp.as_deref().map(|t| body_digest(salt, t));
            if body_digest(salt, &req) != *request_digest || resp_digest != *response_digest {
                return Err(corrupt(seq, "body does not match its digest"));
            }
        }
        Ok((req, resp))
    }

    /// Back to the API type (decrypting with `keys` when the row is encrypted).
    pub fn to_record(&self, keys: Option<&AuditKeyring>) -> Result<AuditRecord, StoreError> {
        let c = &self.chain;
        let uns = |v: i64, what: &str| {
            u64::try_from(v).map_err(|_| corrupt(c.seq, &format!("negative {what}")))
        };
        let (request_body, response_text) = self.bodies(keys)?;
        Ok(AuditRecord {
            ts: from_us(c.ts_us, "audit_log")?,
            account: c.account.clone(),
            key_id: c.key_id.clone(),
            ip: c.ip.clone(),
            user_agent: c.user_agent.clone(),
            api: c.api.clone(),
            model: c.model.clone(),
            stream: c.stream,
            request_body,
            status: u16::try_from(c.status)
                .map_err(|_| corrupt(c.seq, &format!("status {} out of range", c.status)))?,
            finish_reason: c.finish_reason.clone(),
            input_tokens: uns(c.input_tokens, "input_tokens")?,
            output_tokens: uns(c.output_tokens, "output_tokens")?,
            response_text,
            latency_ms: uns(c.latency_ms, "latency_ms")?,
            error: c.error.clone(),
            decision: c
                .decision
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| corrupt(c.seq, &format!("decision is not JSON: {e}")))?,
        })
    }

    /// Read a row selected with [`ROW_COLUMNS`].
    pub fn from_sql(row: &AnyRow) -> Result<AuditRow, StoreError> {
        let c = |e: sqlx::Error| StoreError::Corrupt {
            table: "audit_log",
            reason: e.to_string(),
        };
        let seq: i64 = row.try_get("seq").map_err(c)?;
        let hash_v: i64 = row.try_get("hash_v").map_err(c)?;
        let request_body: String = row.try_get("request_body").map_err(c)?;
        let response_text: Option<String> = row.try_get("response_text").map_err(c)?;
        let bodies = match hash_v {
            1 => ChainBodies::Plain {
                request_body: request_body.clone(),
                response_text: response_text.clone(),
            },
            2 => ChainBodies::Digests {
                request_digest: row
                    .try_get::<Option<String>, _>("request_digest")
                    .map_err(c)?
                    .ok_or_else(|| corrupt(seq, "format-2 row without request_digest"))?,
                response_digest: row.try_get("response_digest").map_err(c)?,
            },
            v => return Err(corrupt(seq, &format!("unknown chain format {v}"))),
        };
        let salt = row
            .try_get::<Option<String>, _>("body_salt")
            .map_err(c)?
            .map(|s| hex::decode(s).map_err(|_| corrupt(seq, "body_salt is not hex")))
            .transpose()?;
        let key_id: Option<String> = row.try_get("enc_key_id").map_err(c)?;
        let sealed = match key_id {
            None => None,
            Some(key_id) => Some(Sealed {
                key_id,
                nonce: row
                    .try_get::<Option<Vec<u8>>, _>("enc_nonce")
                    .map_err(c)?
                    .unwrap_or_default(),
                ct: row
                    .try_get::<Option<Vec<u8>>, _>("body_ct")
                    .map_err(c)?
                    .unwrap_or_default(),
            }),
        };
        Ok(AuditRow {
            chain: ChainRow {
                seq,
                ts_us: row.try_get("ts_us").map_err(c)?,
                account: row.try_get("account_id").map_err(c)?,
                key_id: row.try_get("key_id").map_err(c)?,
                ip: row.try_get("ip").map_err(c)?,
                user_agent: row.try_get("user_agent").map_err(c)?,
                api: row.try_get("api").map_err(c)?,
                model: row.try_get("model").map_err(c)?,
                stream: get_bool(row, "stream").map_err(c)?,
                status: row.try_get("status").map_err(c)?,
                finish_reason: row.try_get("finish_reason").map_err(c)?,
                input_tokens: row.try_get("input_tokens").map_err(c)?,
                output_tokens: row.try_get("output_tokens").map_err(c)?,
                latency_ms: row.try_get("latency_ms").map_err(c)?,
                error: row.try_get("error").map_err(c)?,
                decision: row.try_get("decision").map_err(c)?,
                bodies,
            },
            salt,
            request_body,
            response_text,
            sealed,
        })
    }

    /// `SHA-256(domain || prev || encode(chain))`.
    pub fn hash(&self, prev: &[u8; 32]) -> [u8; 32] {
        self.chain.hash(prev)
    }
}

fn corrupt(seq: i64, reason: &str) -> StoreError {
    StoreError::Corrupt {
        table: "audit_log",
        reason: format!("seq {seq}: {reason}"),
    }
}

/// Columns of `audit_log` that [`AuditRow::from_sql`] reads.
pub(crate) const ROW_COLUMNS: &str = "seq, ts_us, account_id, key_id, ip, user_agent, api, \
     model, stream, request_body, status, finish_reason, input_tokens, output_tokens, \
     response_text, latency_ms, error, decision, hash_v, body_salt, request_digest, \
     response_digest, enc_key_id, enc_nonce, body_ct";

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
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.str(s);
            }
        }
    }
}

struct Decoder<'a>(&'a [u8]);

impl Decoder<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn str(&mut self) -> Option<String> {
        let (len, rest) = self.0.split_at_checked(8)?;
        let len = usize::try_from(u64::from_be_bytes(len.try_into().ok()?)).ok()?;
        let (s, rest) = rest.split_at_checked(len)?;
        self.0 = rest;
        String::from_utf8(s.to_vec()).ok()
    }
}

/// Decode a stored hex hash.
pub fn decode_hash(hex_str: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_str, &mut out).ok()?;
    Some(out)
}
