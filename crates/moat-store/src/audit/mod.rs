//! The audit log: one hash-chained row per exchange, rejected ones included.

pub mod chain;
pub mod checkpoint;
pub mod crypto;
pub mod evidence;
pub mod export;
mod intake;
pub(crate) mod spool;
pub mod verify;
pub mod writer;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One exchange as the gateway saw it. Sent to [`crate::AuditHandle::record`].
/// (`Default` is only a convenience for building records field by field.)
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When the request arrived (stored with microsecond precision).
    pub ts: DateTime<Utc>,
    /// Account id, if the request was authenticated.
    pub account: Option<String>,
    /// Key id (never the secret), if the request was authenticated.
    pub key_id: Option<String>,
    /// Client address as seen by the gateway.
    pub ip: String,
    /// Client user agent.
    pub user_agent: String,
    /// `openai.chat`, `openai.completions`, `anthropic.messages` or `openai.models`.
    pub api: String,
    /// Requested model, if any.
    pub model: Option<String>,
    /// Whether a streamed response was requested.
    pub stream: bool,
    /// Raw request body as the client sent it (possibly truncated per gateway config).
    pub request_body: String,
    /// HTTP status returned to the client.
    pub status: u16,
    /// Finish reason of the completion, if any.
    pub finish_reason: Option<String>,
    /// Input (prompt) tokens.
    pub input_tokens: u64,
    /// Output (completion) tokens.
    pub output_tokens: u64,
    /// Bounded prefix of the response text.
    pub response_text: Option<String>,
    /// Time from arrival to the end of the response.
    pub latency_ms: u64,
    /// Error code for rejections and upstream failures.
    pub error: Option<String>,
    /// Detection decision, if any.
    pub decision: Option<serde_json::Value>,
}

/// A record on its way to the chain: the record (its `decision` unused) and the decision as
/// the exact JSON text that will be stored and hashed. Carrying the text rather than a
/// `serde_json::Value` keeps a spooled record byte-identical to the one that would have been
/// written directly (a float parsed back from JSON is not guaranteed to be the same float).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Pending {
    /// The record, with `decision` set to `None`.
    #[serde(flatten)]
    pub rec: AuditRecord,
    /// `decision` as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_json: Option<String>,
}

impl From<AuditRecord> for Pending {
    fn from(mut rec: AuditRecord) -> Pending {
        let decision_json = rec.decision.take().map(|d| d.to_string());
        Pending { rec, decision_json }
    }
}
