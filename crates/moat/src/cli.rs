//! Command-line arguments.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};

/// moat: a gateway that protects a model API from extraction and distillation.
#[derive(Debug, Parser)]
#[command(name = "moat", version, about, propagate_version = true)]
pub struct Cli {
    /// Configuration file [default: moat.toml].
    #[arg(long, short, global = true, env = "MOAT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database file, overriding `[store] path` (then no config file is needed
    /// for the accounts, keys and audit commands).
    #[arg(long, global = true, env = "MOAT_DB")]
    pub db: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve,
    /// Check a configuration file and print what it resolves to.
    CheckConfig,
    /// Manage accounts.
    #[command(subcommand)]
    Accounts(AccountsCmd),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Cross-account clusters found by the detection engine.
    #[command(subcommand)]
    Clusters(crate::enforce::ClustersCmd),
    /// Verify or export the audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Run the detection engine offline over a traffic log.
    Replay(ReplayArgs),
    /// Run a detector worker over the replicas' exchange events (`[bus]`).
    Detect(DetectArgs),
    /// Build an evidence pack from the audit log, or verify one (`evidence verify DIR`).
    Evidence(crate::evidence::EvidenceArgs),
    /// Quickstart: a gateway with every protection on in front of a local model (SmolLM2
    /// through the embedded backend, after `scripts/fetch-model`), else the built-in demo
    /// upstream (templated text, not a model).
    Demo(DemoArgs),
    /// Run only the demo upstream (templated text, NOT a model), e.g. for tests.
    DemoUpstream(DemoUpstreamArgs),
    /// Text watermark: detect it in texts.
    #[command(subcommand)]
    Mark(crate::mark::MarkCmd),
    /// Ask a suspect endpoint the prompts and test its answers for the watermark (report).
    Verify(crate::verify::VerifyArgs),
}

#[derive(Debug, Subcommand)]
pub enum AccountsCmd {
    /// Create an account.
    Create(AccountCreateArgs),
    /// List accounts.
    List(JsonFlag),
    /// Disable an account: all its keys are refused (403 account_disabled).
    Disable {
        /// Account id.
        id: String,
    },
    /// Enable a disabled account again.
    Enable {
        /// Account id.
        id: String,
    },
    /// Accounts ranked by risk, with reasons, cluster, action and override.
    Risk(crate::enforce::RiskArgs),
    /// Allowlist an account: the detection engine never restricts it.
    Allow(crate::enforce::OverrideArgs),
    /// Block an account and its keys (403 account_blocked) until `unblock`.
    Block(crate::enforce::OverrideArgs),
    /// Require verification (403 account_verification_required) until `unblock`.
    Challenge(crate::enforce::OverrideArgs),
    /// Lift an override (allow, block, challenge): the engine decides again.
    Unblock(crate::enforce::OverrideArgs),
    /// Set an account's own limits (an omitted one falls back to `[limits]`).
    SetLimits {
        /// Account id.
        id: String,
        /// Requests per minute.
        #[arg(long)]
        rpm: Option<u32>,
        /// Tokens per minute.
        #[arg(long)]
        tpm: Option<u64>,
        /// Tokens per day.
        #[arg(long)]
        tpd: Option<u64>,
    },
    /// Show one account and its keys.
    Show {
        /// Account id.
        id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AccountCreateArgs {
    /// Account id (generated when omitted).
    #[arg(long)]
    pub id: Option<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Tier, e.g. free, pro, enterprise.
    #[arg(long)]
    pub tier: Option<String>,
    /// E-mail domain of the customer.
    #[arg(long)]
    pub email_domain: Option<String>,
    /// ISO country code.
    #[arg(long)]
    pub country: Option<String>,
    /// Identity verified.
    #[arg(long)]
    pub verified: bool,
    /// Requests per minute (default: `[limits]`).
    #[arg(long)]
    pub rpm: Option<u32>,
    /// Tokens per minute (default: `[limits]`).
    #[arg(long)]
    pub tpm: Option<u64>,
    /// Tokens per day (default: `[limits]`).
    #[arg(long)]
    pub tpd: Option<u64>,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Create a key; its secret is printed once.
    Create(KeyCreateArgs),
    /// List keys.
    List {
        /// Only this account's keys.
        #[arg(long)]
        account: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Revoke a key (a running gateway notices within `[auth] cache_ttl`;
    /// the admin API revokes at once).
    Revoke {
        /// Key id (`key_…`).
        id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Replace a key by a new one with the same scopes; the old one keeps working for the grace period.
    Rotate {
        /// Key id (`key_…`).
        id: String,
        /// How long the old key keeps working.
        #[arg(long, default_value = "24h")]
        grace: String,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Args)]
pub struct KeyCreateArgs {
    /// Owning account.
    #[arg(long)]
    pub account: String,
    /// Lifetime (e.g. 30d, 12h) or an RFC 3339 expiry time.
    #[arg(long)]
    pub expires: Option<String>,
    /// Models the key may use (comma-separated); all when omitted.
    #[arg(long, value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// Allow requesting logprobs.
    #[arg(long)]
    pub allow_logprobs: bool,
    /// Client networks allowed (comma-separated CIDRs); any when omitted.
    #[arg(long, value_delimiter = ',')]
    pub ip_allow: Vec<String>,
    /// Label.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Check the audit log's hash chain; exits non-zero at the first broken link.
    Verify(JsonFlag),
    /// Export exchanges in the traffic log format (JSON Lines; zstd when the name ends in .zst).
    Export(ExportArgs),
    /// Sign the current chain head (Ed25519) and store the checkpoint.
    Checkpoint(crate::audit::CheckpointArgs),
    /// Stored checkpoints.
    #[command(subcommand)]
    Checkpoints(CheckpointsCmd),
    /// Make a checkpoint signing key (FILE) and its public key (FILE.pub).
    Keygen(crate::audit::KeygenArgs),
    /// Write a traffic log (and `moat replay` decisions) through the audit writer.
    Import(crate::audit::ImportArgs),
}

#[derive(Debug, Subcommand)]
pub enum CheckpointsCmd {
    /// Write every checkpoint to a JSON file.
    Export(crate::audit::CheckpointsExportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Start: RFC 3339 time, or a duration meaning "that long ago" (e.g. 24h).
    #[arg(long)]
    pub since: Option<String>,
    /// End (exclusive): RFC 3339 time, or a duration ago.
    #[arg(long)]
    pub until: Option<String>,
    /// Output file (e.g. traffic.jsonl.zst).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write account metadata (accounts.jsonl format) to this file.
    #[arg(long)]
    pub accounts_out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Traffic log (.jsonl or .jsonl.zst).
    #[arg(long)]
    pub traffic: PathBuf,
    /// Account metadata (accounts.jsonl).
    #[arg(long)]
    pub accounts: PathBuf,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Research: write the feature values behind a sample of each account's decisions to
    /// this JSON Lines file (what `research/fit` fits the detection weights on).
    #[arg(long)]
    pub snapshots: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Gateway address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Demo database (created with a demo account when absent).
    #[arg(long, default_value = "./moat-demo.db")]
    pub demo_db: PathBuf,
    /// What answers: the real model when available (`auto`), insist on it (`model`), or the
    /// templated demo upstream (`demo`, not a model).
    #[arg(long, value_enum, default_value_t = DemoUpstream::Auto)]
    pub upstream: DemoUpstream,
    /// The GGUF model for the embedded backend (`scripts/fetch-model` puts SmolLM2 here).
    #[arg(long, default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf")]
    pub model: PathBuf,
}

/// `moat demo --upstream`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoUpstream {
    /// The model if this build has the embedded backend and the model file exists, else demo.
    Auto,
    /// The embedded model backend (error if unavailable).
    Model,
    /// The templated demo upstream (not a model).
    Demo,
}

#[derive(Debug, Args)]
pub struct DemoUpstreamArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// Require this upstream API key (Bearer or x-api-key).
    #[arg(long, env = "MOAT_DEMO_REQUIRE_KEY")]
    pub require_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// This worker's number, 0-based.
    #[arg(long, default_value_t = 0)]
    pub index: u32,
    /// How many workers share the account partitions.
    #[arg(long, default_value_t = 1)]
    pub workers: u32,
    /// How far out of arrival order exchanges may complete and still be decided in arrival
    /// order (e.g. 500ms, 2s).
    #[arg(long, default_value = "500ms")]
    pub hold: String,
    /// Write every decision as a JSON line to this file.
    #[arg(long)]
    pub decisions_out: Option<PathBuf>,
    /// Serve `/metrics` (Prometheus) and `/healthz` on this address.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}
