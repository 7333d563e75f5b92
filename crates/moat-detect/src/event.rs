//! Engine input and output types: events, outcomes, account metadata, decisions, reports.

use serde::{Deserialize, Serialize};

/// Which client API a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Api {
    /// OpenAI chat completions (`openai.chat`).
    #[serde(rename = "openai.chat")]
    OpenAiChat,
    /// OpenAI legacy completions (`openai.completions`).
    #[serde(rename = "openai.completions")]
    OpenAiCompletions,
    /// Anthropic messages (`anthropic.messages`).
    #[serde(rename = "anthropic.messages")]
    AnthropicMessages,
}

impl Api {
    /// Parses the traffic-log wire name (`openai.chat`, `openai.completions`, `anthropic.messages`).
    pub fn from_wire(s: &str) -> Option<Api> {
        match s {
            "openai.chat" => Some(Api::OpenAiChat),
            "openai.completions" => Some(Api::OpenAiCompletions),
            "anthropic.messages" => Some(Api::AnthropicMessages),
            _ => None,
        }
    }

    /// The traffic-log wire name.
    pub fn wire(self) -> &'static str {
        match self {
            Api::OpenAiChat => "openai.chat",
            Api::OpenAiCompletions => "openai.completions",
            Api::AnthropicMessages => "anthropic.messages",
        }
    }
}

/// One incoming request, as the gateway sees it before forwarding it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Arrival time, milliseconds since the Unix epoch (the engine's only clock).
    pub ts_ms: i64,
    /// Account (organisation) id.
    pub account: String,
    /// API key id.
    pub key: String,
    /// Client IP address (v4 or v6, textual).
    pub ip: String,
    /// Client user agent.
    pub user_agent: String,
    /// Which API the request used.
    pub api: Api,
    /// The request body exactly as sent.
    pub request: serde_json::Value,
}

/// What happened after a request was answered (never used for that request's decision).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// HTTP status returned.
    pub status: u16,
    /// Whether the model stopped because it hit `max_tokens` (`finish_reason` `length`/`max_tokens`).
    pub truncated: bool,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
}

impl Outcome {
    /// Builds an outcome from the traffic-log fields.
    pub fn new(
        status: u16,
        finish_reason: Option<&str>,
        input_tokens: u64,
        output_tokens: u64,
    ) -> Self {
        Outcome {
            status,
            truncated: matches!(finish_reason, Some("length") | Some("max_tokens")),
            input_tokens,
            output_tokens,
        }
    }
}

/// Account metadata (from `accounts.jsonl` or the gateway's account store).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountMeta {
    /// Account id.
    pub id: String,
    /// Creation time, ms since the epoch.
    pub created_ms: Option<i64>,
    /// Billing tier.
    pub tier: Option<String>,
    /// E-mail domain.
    pub email_domain: Option<String>,
    /// Country code.
    pub country: Option<String>,
    /// Verification status.
    pub verified: Option<bool>,
    /// Operator allowlist: the engine never restricts this account.
    pub allowlisted: bool,
}

/// The graduated enforcement ladder.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Serve normally.
    #[default]
    Allow,
    /// Serve, but slow down (not restrictive).
    Throttle,
    /// Serve a degraded answer (shorter, no reasoning trace, watermarked).
    Degrade,
    /// Require a human/identity challenge before serving.
    Challenge,
    /// Refuse.
    Block,
}

impl Action {
    /// Lowercase name (`allow`, `throttle`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Throttle => "throttle",
            Action::Degrade => "degrade",
            Action::Challenge => "challenge",
            Action::Block => "block",
        }
    }

    /// Whether this action withholds the full answer (degrade, challenge, block).
    pub fn is_restrictive(self) -> bool {
        self >= Action::Degrade
    }
}

/// The engine's answer for one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// What to do with the request.
    pub action: Action,
    /// Risk in [0, 1] that this request is part of an extraction campaign.
    pub risk: f64,
    /// Human-readable reasons (empty when allowed without notable signals).
    pub reasons: Vec<String>,
    /// Cross-account cluster (`cl_N`) the account belongs to, if any.
    pub cluster: Option<String>,
}

impl Decision {
    /// An unconditional allow with zero risk (used e.g. for unparseable lines).
    pub fn allow() -> Self {
        Decision {
            action: Action::Allow,
            risk: 0.0,
            reasons: Vec::new(),
            cluster: None,
        }
    }
}

/// Final per-account verdict (`accounts.jsonl` of a replay).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountReport {
    /// Account id.
    pub account: String,
    /// Final risk in [0, 1] (account and cluster evidence).
    pub risk: f64,
    /// `extraction`, `suspicious`, `benign` or `allowlisted`.
    pub verdict: String,
    /// Cluster id, if the account is linked to others.
    pub cluster: Option<String>,
    /// Human-readable reasons.
    pub reasons: Vec<String>,
}
