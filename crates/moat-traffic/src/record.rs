//! Serde types for traffic lines and account metadata lines.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::time::ts_millis;

/// One exchange (request + response summary) of the traffic log.
///
/// ```json
/// {"ts":"2026-03-02T14:05:09.312Z","account":"acct_0042","key":"key_0042_1",
///  "ip":"198.51.100.17","user_agent":"OpenAI/Python 1.51.0","api":"openai.chat",
///  "request":{"model":"m","messages":[{"role":"user","content":"..."}]},
///  "response":{"status":200,"finish_reason":"stop","usage":{"input_tokens":812,"output_tokens":431}}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficRecord {
    /// Arrival time of the request (RFC 3339, UTC, written with milliseconds).
    #[serde(with = "ts_millis")]
    pub ts: DateTime<Utc>,
    /// Account (organisation) id.
    pub account: String,
    /// API key id (never the secret).
    #[serde(default)]
    pub key: String,
    /// Client address as seen by the gateway.
    #[serde(default)]
    pub ip: String,
    /// Client user agent.
    #[serde(default)]
    pub user_agent: String,
    /// `openai.chat`, `openai.completions` or `anthropic.messages` (see [`crate::api`]).
    pub api: String,
    /// The request body exactly as the client sent it.
    #[serde(default)]
    pub request: serde_json::Value,
    /// What the upstream answered (summary).
    #[serde(default)]
    pub response: TrafficResponse,
}

impl TrafficRecord {
    /// Arrival time in milliseconds since the Unix epoch.
    pub fn ts_ms(&self) -> i64 {
        self.ts.timestamp_millis()
    }
}

/// Summary of the upstream response of one exchange.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrafficResponse {
    /// HTTP status returned to the client.
    #[serde(default)]
    pub status: u16,
    /// `stop`, `length`, `tool_calls`, `end_turn`, ... when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Token usage.
    #[serde(default)]
    pub usage: Usage,
    /// Optional response text (only when the audit log keeps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// Token usage of one exchange.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Completion tokens.
    #[serde(default)]
    pub output_tokens: u64,
}

/// One line of `accounts.jsonl`: account metadata.
///
/// ```json
/// {"account":"acct_0042","created":"2026-02-20T09:00:00Z","tier":"free",
///  "email_domain":"example.com","country":"US","verified":false}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// Account id.
    pub account: String,
    /// Creation time (RFC 3339), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Billing tier (`free`, `build`, `scale`, `enterprise`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Domain of the account's e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_domain: Option<String>,
    /// Country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Whether the account passed verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// Operator allowlist: never restrict this account.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allowlisted: bool,
}

impl AccountRecord {
    /// Creation time in milliseconds since the epoch, when present and parseable.
    pub fn created_ms(&self) -> Option<i64> {
        self.created
            .as_deref()
            .and_then(crate::time::parse_rfc3339_ms)
    }
}
