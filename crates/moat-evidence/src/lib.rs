//! moat-evidence: evidence packs built from moat's hash-chained audit log.
//!
//! A pack answers "who cloned what, how much, how do we know, and why should you believe it":
//! the accounts, keys, IPs, /24 subnets and user agents involved and how they link; requests
//! and tokens per day (an SVG chart); exchanges and tokens per account and in total; their
//! value at list prices ([`PriceTable`]); the detection reasons and every enforcement action
//! with its time; sample exchanges; an optional clone-verification report; and the integrity
//! proof: the chain links from the first record used up to a signed checkpoint, the records
//! used in full and the others by their leaf hash.
//!
//! Pure library: [`build`] turns a [`PackInput`] (read from the store by the CLI) into an
//! [`EvidencePack`]; [`verify`] checks a pack on its own, without the database; [`html`]
//! renders it as a self-contained page. See `docs/evidence.md`.

mod build;
pub mod html;
mod prices;
mod verify;

pub use build::{build, PackInput, Selection};
pub use prices::{Price, PriceTable};
pub use verify::{verify, VerifyOutcome};

use moat_store::{ChainSpan, Checkpoint};
use serde::{Deserialize, Serialize};

/// Format tag of `evidence.json`.
pub const FORMAT: &str = "moat-evidence-v1";

/// Token and exchange counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Exchanges (audit records), refused ones included.
    pub exchanges: u64,
    /// Exchanges answered with a 2xx status.
    pub served: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Output tokens of exchanges that requested reasoning (`reasoning_effort`, `reasoning`
    /// or `thinking` in the request); the audit log does not split reasoning from answer
    /// tokens, so this is an upper bound of the reasoning tokens harvested. Counted only for
    /// exchanges whose bodies were readable when the pack was built.
    pub reasoning_output_tokens: u64,
}

/// One account of the pack.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountSummary {
    /// Account id.
    pub account: String,
    /// Counts.
    pub totals: Totals,
    /// Value at list prices (currency of the price table).
    pub value: f64,
    /// First and last exchange (RFC 3339).
    pub first_seen: String,
    /// Last exchange.
    pub last_seen: String,
    /// Highest risk the detection engine gave.
    pub max_risk: f64,
    /// Strongest action applied.
    pub max_action: String,
    /// Clusters the engine put the account in.
    pub clusters: Vec<String>,
}

/// One identifier (key, IP, subnet, user agent) and the accounts that used it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The identifier.
    pub value: String,
    /// Accounts that used it.
    pub accounts: Vec<String>,
    /// Exchanges that used it.
    pub exchanges: u64,
}

/// How the accounts are linked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    /// API key ids.
    pub keys: Vec<Link>,
    /// Client IPs.
    pub ips: Vec<Link>,
    /// IPv4 /24 (IPv6 /48) subnets.
    pub subnets: Vec<Link>,
    /// User agents.
    pub user_agents: Vec<Link>,
}

/// Requests and tokens on one UTC day.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayPoint {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Exchanges.
    pub requests: u64,
    /// Input + output tokens.
    pub tokens: u64,
}

/// A detection reason and how often it was given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonCount {
    /// The reason, as the engine wrote it.
    pub reason: String,
    /// Exchanges whose decision gave it.
    pub count: u64,
    /// Accounts it was given for.
    pub accounts: Vec<String>,
    /// First time it was given (RFC 3339).
    pub first: String,
}

/// An enforcement action: a change of the per-request action for an account, or an
/// operator/engine override stored by the gateway.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionEvent {
    /// When (RFC 3339).
    pub ts: String,
    /// Account.
    pub account: String,
    /// `allow`, `throttle`, `degrade`, `challenge` or `block`.
    pub action: String,
    /// `decision` (per-request, with the record's seq), `operator` or `engine` (overrides).
    pub source: String,
    /// The audit record whose decision changed the action.
    pub seq: Option<i64>,
    /// Risk at that point, or the override's reason.
    pub detail: String,
}

/// A sample exchange (bodies disclosed; they also appear in the proof, where the verifier
/// checks them against their digests).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Audit record.
    pub seq: i64,
    /// Account.
    pub account: String,
    /// Time (RFC 3339).
    pub ts: String,
    /// Request body.
    pub request: String,
    /// Response text, if recorded.
    pub response: Option<String>,
}

/// The integrity proof.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proof {
    /// First seq of the span (the first record used).
    pub first_seq: i64,
    /// The signed checkpoint the span reaches.
    pub checkpoint: Checkpoint,
    /// The chain links `first_seq..=checkpoint.seq`.
    pub span: ChainSpan,
}

/// A complete evidence pack (`evidence.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvidencePack {
    /// [`FORMAT`].
    pub format: String,
    /// When the pack was built (RFC 3339).
    pub generated_at: String,
    /// What the pack covers.
    pub selection: Selection,
    /// Per-account summaries.
    pub accounts: Vec<AccountSummary>,
    /// All accounts together.
    pub totals: Totals,
    /// Total value at list prices.
    pub value: f64,
    /// The price table used.
    pub prices: PriceTable,
    /// Keys, IPs, subnets, user agents.
    pub links: Links,
    /// Per-day activity.
    pub timeline: Vec<DayPoint>,
    /// Detection reasons.
    pub reasons: Vec<ReasonCount>,
    /// Enforcement actions, in time order.
    pub actions: Vec<ActionEvent>,
    /// Sample exchanges.
    pub samples: Vec<Sample>,
    /// Clone-verification report (`moat verify` JSON), embedded as given.
    pub verify_report: Option<serde_json::Value>,
    /// Integrity proof.
    pub proof: Proof,
}
