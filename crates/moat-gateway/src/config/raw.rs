//! The configuration file exactly as written: plain serde structs with
//! `deny_unknown_fields`, so a misspelt key is an error pointing at its line.
//! [`super::validated`] turns these into typed values.

use serde::Deserialize;
use toml::Spanned;

/// A string value that remembers where it was written, for error messages.
pub type S = Spanned<String>;

/// Root of `moat.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub upstream: RawUpstream,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub audit: RawAudit,
    #[serde(default)]
    pub log: RawLog,
    /// Detection thresholds, defined (and checked for unknown keys) by moat-detect.
    pub detect: Option<moat_detect::DetectConfig>,
    /// `[enforce]`: the response ladder.
    #[serde(default)]
    pub enforce: Option<crate::enforce::config::RawEnforce>,
    /// `[watermark]`: the text watermark on answers.
    #[serde(default)]
    pub watermark: Option<crate::watermark::RawWatermark>,
    /// `[bus]`: several replicas and detector workers (absent: one process).
    pub bus: Option<RawBus>,
}

/// `[server]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<S>,
    pub admin_listen: Option<S>,
    pub admin_token: Option<S>,
    pub max_body_bytes: Option<u64>,
    pub trusted_proxies: Option<Vec<S>>,
    pub metrics: Option<S>,
    pub shutdown_grace: Option<S>,
    /// A count, or `"auto"` / `"shared"`; any other value is reported by the validation.
    pub threads: Option<Spanned<toml::Value>>,
    pub tls: Option<RawTls>,
}

/// `[server.tls]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: S,
    pub key: S,
}

/// `[upstream]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub base_url: Option<S>,
    pub api_key: Option<S>,
    pub timeout: Option<S>,
    pub connect_timeout: Option<S>,
    pub stream_idle_timeout: Option<S>,
    pub ca_file: Option<S>,
    pub pool_max_idle_per_host: Option<usize>,
    pub anthropic_version: Option<S>,
    pub embedded: Option<RawEmbedded>,
}

/// `[upstream.embedded]`: the in-process model (`base_url = "embedded"`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmbedded {
    pub model: Option<S>,
    pub model_id: Option<S>,
    pub threads: Option<usize>,
    pub queue: Option<usize>,
    pub max_tokens: Option<usize>,
    pub watermark: Option<RawEmbeddedWatermark>,
}

/// `[upstream.embedded.watermark]`: the sampler watermark (secret from the environment).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmbeddedWatermark {
    pub key_id: S,
    pub h: Option<usize>,
    pub gamma: Option<f64>,
    pub delta: Option<f64>,
}

/// `[store]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub path: Option<S>,
    pub backend: Option<S>,
    pub url: Option<S>,
    pub on_error: Option<S>,
    pub timeout: Option<S>,
}

/// `[auth]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub cache_ttl: Option<S>,
}

/// `[limits]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub tokens_per_day: Option<u64>,
    pub default_max_tokens: Option<u64>,
    pub backend: Option<S>,
    pub redis_url: Option<S>,
    pub on_error: Option<S>,
    pub timeout: Option<S>,
}

/// `[audit]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    pub response_prefix_bytes: Option<usize>,
    pub request_body_max_bytes: Option<usize>,
    pub batch: Option<usize>,
    pub flush_interval: Option<S>,
    pub queue: Option<usize>,
    pub encryption: Option<RawAuditEncryption>,
    pub spool_dir: Option<S>,
}

/// `[audit.encryption]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuditEncryption {
    pub active: Option<S>,
    #[serde(default)]
    pub keys: Vec<RawAuditKey>,
}

/// `[[audit.encryption.keys]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuditKey {
    pub id: S,
    pub key_file: Option<S>,
    pub key_env: Option<S>,
}

/// `[log]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<S>,
    pub level: Option<S>,
}

/// `[bus]`: the NATS JetStream bus between replicas and detector workers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBus {
    pub url: Option<S>,
    pub replica: Option<S>,
    pub stream: Option<S>,
    pub subject_prefix: Option<S>,
    pub partitions: Option<u32>,
    pub retention: Option<S>,
    pub max_bytes: Option<i64>,
    pub verdict_bucket: Option<S>,
    pub summary_bucket: Option<S>,
    pub control_subject: Option<S>,
    pub publish_queue: Option<usize>,
    pub connect_timeout: Option<S>,
}
