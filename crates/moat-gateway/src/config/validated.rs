//! Typed, validated configuration built from [`super::raw::RawConfig`].
//!
//! Every error names the file, line and column of the mistake
//! (`moat.toml:12:1: unknown field ...`).

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use ipnet::IpNet;

use super::raw::{RawConfig, S};

/// Environment variable that overrides `[server] admin_token`.
pub const ENV_ADMIN_TOKEN: &str = "MOAT_ADMIN_TOKEN";
/// Environment variable that overrides `server.threads`.
pub const ENV_SERVER_THREADS: &str = "MOAT_SERVER_THREADS";
/// Environment variable that overrides `[upstream] api_key`.
pub const ENV_UPSTREAM_API_KEY: &str = "MOAT_UPSTREAM_API_KEY";
/// Secret of the embedded backend's sampler watermark (never in the file).
pub const ENV_SAMPLER_WATERMARK_SECRET: &str = "MOAT_SAMPLER_WATERMARK_SECRET";

/// A secret string whose `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A configuration error, displayed as `path:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// File the error is in (`<config>` when parsed from a string).
    pub file: String,
    /// 1-based line and column, when the error has a position.
    pub position: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => write!(f, "{}:{}:{}: {}", self.file, line, col, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsOn {
    /// On the admin listener (default; no admin token needed for it).
    Admin,
    /// On the public listener.
    Main,
    /// Not served.
    Off,
}

/// `[server.tls]`: PEM files for TLS termination.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
}

/// `[server]`
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Public listener for the model APIs.
    pub listen: SocketAddr,
    /// Separate listener for the admin API; off when `None`.
    pub admin_listen: Option<SocketAddr>,
    /// Bearer token for the admin API.
    pub admin_token: Option<Secret>,
    /// Largest accepted request body in bytes (413 above).
    pub max_body_bytes: usize,
    /// Peers whose `X-Forwarded-For` header is trusted for the client address.
    pub trusted_proxies: Vec<IpNet>,
    /// Where `/metrics` is served.
    pub metrics: MetricsOn,
    /// How long in-flight requests may finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// How the public listener is served (`server.threads`).
    pub threads: ServingThreads,
    /// TLS termination on the public listener.
    pub tls: Option<TlsConfig>,
}

/// `server.threads`: how the public listener's requests are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServingThreads {
    /// `"shared"`: on the process's multi-threaded runtime (work stealing between its workers).
    Shared,
    /// `N` (or `"auto"`: one per CPU): N threads, each with its own single-threaded runtime,
    /// its own listening socket on the same address (`SO_REUSEPORT`: the kernel spreads the
    /// connections) and its own upstream connection pool, so that a request is never handed
    /// between threads on its way through the gateway.
    PerThread(usize),
}

/// Where requests are forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamTarget {
    /// A model server, by its base URL without the `/v1` suffix.
    Url(String),
    /// The in-process demo upstream (templated text, not a model).
    Demo,
    /// The in-process embedded model (`upstream.embedded`; needs the `embedded` feature).
    Embedded,
}

/// `[upstream.embedded]`: the in-process GGUF model served by moat-backend.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// GGUF model file.
    pub model: PathBuf,
    /// Model id reported by `/v1/models` (default: the file stem).
    pub model_id: Option<String>,
    /// CPU threads for generation (0 = all cores).
    pub threads: usize,
    /// Requests waiting for the model (one generation runs at a time).
    pub queue: usize,
    /// `max_tokens` when an OpenAI request gives none.
    pub max_tokens: usize,
    /// The sampler watermark, if configured.
    pub watermark: Option<EmbeddedWatermark>,
}

/// `[upstream.embedded.watermark]`
#[derive(Debug, Clone)]
pub struct EmbeddedWatermark {
    /// Public key id.
    pub key_id: String,
    /// The secret (from `MOAT_SAMPLER_WATERMARK_SECRET`).
    pub secret: Secret,
    /// Context width.
    pub h: usize,
    /// Green fraction.
    pub gamma: f64,
    /// Logit bias.
    pub delta: f32,
}

/// `[upstream]`
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Where requests go.
    pub target: UpstreamTarget,
    /// Key sent to the upstream (`Authorization: Bearer` and `x-api-key`).
    pub api_key: Option<Secret>,
    /// Limit for a whole non-streamed exchange, and for the headers of a streamed one.
    pub timeout: Duration,
    /// TCP/TLS connect limit.
    pub connect_timeout: Duration,
    /// Longest silence allowed between two chunks of a stream.
    pub stream_idle_timeout: Duration,
    /// Extra CA certificate (PEM) trusted for an https upstream.
    pub ca_file: Option<PathBuf>,
    /// Idle pooled connections kept per upstream host.
    pub pool_max_idle_per_host: usize,
    /// `anthropic-version` sent when the client sent none.
    pub anthropic_version: String,
    /// The embedded model, when `target` is [`UpstreamTarget::Embedded`].
    pub embedded: Option<EmbeddedConfig>,
}

/// `[store]`
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// SQLite database file (`backend = "sqlite"`, the default). Also where the watermark key
    /// file lives by default.
    pub path: PathBuf,
    /// SQLite or PostgreSQL.
    pub backend: super::scale_out::StoreBackend,
    /// What to do while the store is down or slow.
    pub on_error: super::scale_out::StoreOnError,
    /// Bound on one store call (connection checkout, statement).
    pub timeout: Duration,
}

impl StoreConfig {
    /// What `moat_store::Store::open` takes: the PostgreSQL URL or the SQLite file path.
    pub fn location(&self) -> String {
        match &self.backend {
            super::scale_out::StoreBackend::Postgres { url } => url.expose().to_string(),
            super::scale_out::StoreBackend::Sqlite => self.path.to_string_lossy().into_owned(),
        }
    }

    /// The location for logs: the file, or the PostgreSQL URL without its password.
    pub fn display(&self) -> String {
        match &self.backend {
            super::scale_out::StoreBackend::Postgres { url } => {
                moat_store::redact_url(url.expose())
            }
            super::scale_out::StoreBackend::Sqlite => self.path.display().to_string(),
        }
    }
}

/// `[auth]`
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// How long a key lookup is cached in memory.
    pub cache_ttl: Duration,
}

/// `[limits]`: defaults for accounts that have no limits of their own.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    /// Requests per minute (`None` = unlimited).
    pub requests_per_minute: Option<u64>,
    /// Tokens (in + out) per minute.
    pub tokens_per_minute: Option<u64>,
    /// Tokens (in + out) per day.
    pub tokens_per_day: Option<u64>,
    /// Output tokens assumed for the estimate when a request sets no `max_tokens`.
    pub default_max_tokens: u64,
    /// In-process or Redis.
    pub backend: super::scale_out::LimiterBackend,
}

/// `[audit]`
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Bytes of response text kept in the audit log.
    pub response_prefix_bytes: usize,
    /// Bytes of the request body kept in the audit log (default: all of it).
    pub request_body_max_bytes: usize,
    /// Records written per database transaction.
    pub batch: usize,
    /// Longest wait before a partial batch is written.
    pub flush_interval: Duration,
    /// Records that may wait in memory before new ones are dropped (and counted).
    pub queue: usize,
    /// `[audit.encryption]`: bodies encrypted at rest when set.
    pub encryption: Option<AuditEncryptionConfig>,
    /// Records that cannot reach the store are spooled here and written when it is back.
    pub spool_dir: Option<PathBuf>,
}

/// `[audit.encryption]`: the audit body keys (see `docs/evidence.md`).
#[derive(Debug, Clone)]
pub struct AuditEncryptionConfig {
    /// Key id that encrypts new records.
    pub active: String,
    /// Every key id that may appear on a record, with where its key is read from: a file
    /// (`key_file`) or an environment variable (`key_env`), 64 hex digits.
    pub keys: Vec<(String, AuditKeySource)>,
}

/// Where an audit key is read from.
#[derive(Debug, Clone)]
pub enum AuditKeySource {
    /// A file holding 64 hex digits.
    File(PathBuf),
    /// An environment variable holding 64 hex digits.
    Env(String),
}

impl AuditEncryptionConfig {
    /// Read the keys (files / environment) into a keyring with the active key set.
    pub fn load_keyring(&self) -> Result<moat_store::AuditKeyring, moat_store::StoreError> {
        let mut ring = moat_store::AuditKeyring::new();
        for (id, src) in &self.keys {
            match src {
                AuditKeySource::File(p) => ring.add_file(id, p)?,
                AuditKeySource::Env(var) => {
                    let v = std::env::var(var).map_err(|_| moat_store::StoreError::Invalid {
                        field: "audit encryption key",
                        reason: format!("environment variable {var} (key {id:?}) is not set"),
                    })?;
                    ring.add(id, &moat_store::AuditKeyring::parse_key(id, &v)?)?;
                }
            }
        }
        ring.set_active(&self.active)?;
        Ok(ring)
    }
}

impl Validator<'_> {
    /// `[audit.encryption]`: one source per key, unique ids, an active key among them.
    fn audit_encryption(
        &self,
        raw: super::raw::RawAuditEncryption,
    ) -> Result<AuditEncryptionConfig, ConfigError> {
        let mut keys: Vec<(String, AuditKeySource)> = Vec::new();
        for k in raw.keys {
            let id = k.id.get_ref().clone();
            if keys.iter().any(|(x, _)| *x == id) {
                return Err(self.at(
                    &k.id,
                    format!("audit.encryption.keys: id {id:?} given twice"),
                ));
            }
            let src = match (&k.key_file, &k.key_env) {
                (Some(f), None) => AuditKeySource::File(self.path(f)),
                (None, Some(e)) => AuditKeySource::Env(e.get_ref().clone()),
                _ => {
                    return Err(self.at(
                        &k.id,
                        format!(
                        "audit.encryption.keys: key {id:?} needs exactly one of key_file, key_env"
                    ),
                    ))
                }
            };
            keys.push((id, src));
        }
        let active = match raw.active {
            Some(a) if keys.iter().any(|(x, _)| x == a.get_ref()) => a.get_ref().clone(),
            Some(a) => {
                return Err(self.at(&a, "audit.encryption.active: no key with this id"));
            }
            None => match keys.last() {
                Some((id, _)) => id.clone(),
                None => {
                    return Err(self.error(None, "audit.encryption: at least one key is required"))
                }
            },
        };
        Ok(AuditEncryptionConfig { active, keys })
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human readable.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `moat_gateway=debug,info`.
    pub level: String,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// File it was read from, if any.
    pub source: Option<PathBuf>,
    /// `[server]`
    pub server: ServerConfig,
    /// `[upstream]`
    pub upstream: UpstreamConfig,
    /// `[store]`
    pub store: StoreConfig,
    /// `[auth]`
    pub auth: AuthConfig,
    /// `[limits]`
    pub limits: LimitsConfig,
    /// `[audit]`
    pub audit: AuditConfig,
    /// `[log]`
    pub log: LogConfig,
    /// `[detect]`: the detection engine's thresholds (defaults where absent).
    pub detect: moat_detect::DetectConfig,
    /// `[enforce]`: the response ladder (shadow mode by default).
    pub enforce: crate::enforce::EnforceConfig,
    /// `[watermark]`: the text watermark (on by default).
    pub watermark: crate::watermark::WatermarkConfig,
    /// `[bus]`: replicas and detector workers (None: one process).
    pub bus: Option<super::scale_out::BusSettings>,
}

/// Source of environment overrides (a trait so tests need not touch the process env).
pub trait Env {
    /// Value of a variable, if set and non-empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// No environment at all.
pub struct NoEnv;

impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

impl Config {
    /// Reads and validates a config file, applying environment overrides.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            position: None,
            message: format!("cannot read: {e}"),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut cfg = Self::parse(&src, &file, &base, &ProcessEnv)?;
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Like [`Config::load`], for the commands that only read the configuration (accounts,
    /// keys, audit, mark, verify, evidence): what only a serving gateway needs is not required
    /// — no admin token for `server.admin_listen` (`admin_token` is `None` then).
    pub fn load_offline(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            position: None,
            message: format!("cannot read: {e}"),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let v = Validator {
            src: &src,
            file: &file,
            base: &base,
            serving: false,
        };
        let mut cfg = v.parse(&ProcessEnv)?;
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Parses and validates `src`; relative paths are resolved against `base`.
    pub fn parse(src: &str, file: &str, base: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
        Validator {
            src,
            file,
            base,
            serving: true,
        }
        .parse(env)
    }
}

pub(super) struct Validator<'a> {
    src: &'a str,
    file: &'a str,
    base: &'a Path,
    /// For `moat serve` (every requirement), or for a command that only reads the file.
    serving: bool,
}

fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let col = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, col)
}

impl Validator<'_> {
    fn parse(&self, env: &dyn Env) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            toml::from_str(self.src).map_err(|e| self.error(e.span(), e.message().trim_end()))?;
        self.validate(raw, env)
    }

    fn error(
        &self,
        span: Option<std::ops::Range<usize>>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            position: span.map(|s| line_col(self.src, s.start)),
            message: message.into(),
        }
    }

    pub(super) fn at(&self, s: &S, message: impl Into<String>) -> ConfigError {
        self.error(Some(s.span()), message)
    }

    fn at_span(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> ConfigError {
        self.error(Some(span), message)
    }

    fn addr(&self, s: &S, key: &str) -> Result<SocketAddr, ConfigError> {
        s.get_ref().parse().map_err(|_| {
            self.at(
                s,
                format!(
                    "{key}: expected an address like 127.0.0.1:8080, got {:?}",
                    s.get_ref()
                ),
            )
        })
    }

    pub(super) fn duration(
        &self,
        s: Option<&S>,
        key: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match s {
            None => Ok(default),
            Some(s) => parse_duration(s.get_ref()).map_err(|e| {
                self.at(
                    s,
                    format!("{key}: {e} (examples: \"500ms\", \"30s\", \"10m\")"),
                )
            }),
        }
    }

    /// `server.threads`, or `MOAT_SERVER_THREADS` (same values) when set.
    fn serving_threads(
        &self,
        raw: Option<&toml::Spanned<toml::Value>>,
        env: &dyn Env,
    ) -> Result<ServingThreads, ConfigError> {
        const MAX: i64 = 256;
        let count = |n: i64| {
            (1..=MAX)
                .contains(&n)
                .then_some(ServingThreads::PerThread(n as usize))
                .ok_or(format!("got {n}"))
        };
        let word = |w: &str| match w {
            "shared" => Ok(ServingThreads::Shared),
            "auto" => Ok(ServingThreads::PerThread(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            )),
            w => w
                .parse::<i64>()
                .map_err(|_| format!("got {w:?}"))
                .and_then(count),
        };
        let expected = "expected \"shared\", \"auto\" or a thread count from 1 to 256";
        if let Some(v) = env.var(ENV_SERVER_THREADS) {
            return word(v.trim())
                .map_err(|e| self.whole(format!("{ENV_SERVER_THREADS}: {expected}, {e}")));
        }
        let Some(s) = raw else {
            return Ok(ServingThreads::Shared);
        };
        match s.get_ref() {
            toml::Value::Integer(n) => count(*n),
            toml::Value::String(w) => word(w),
            other => Err(format!("got {other}")),
        }
        .map_err(|e| self.at_span(s.span(), format!("server.threads: {expected}, {e}")))
    }

    pub(super) fn path(&self, s: &S) -> PathBuf {
        let p = Path::new(s.get_ref());
        if p.is_absolute() || self.base.as_os_str().is_empty() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    pub(super) fn whole(&self, message: impl Into<String>) -> ConfigError {
        self.error(None, message)
    }

    fn embedded(
        &self,
        target: &UpstreamTarget,
        raw: Option<&super::raw::RawEmbedded>,
        env: &dyn Env,
    ) -> Result<Option<EmbeddedConfig>, ConfigError> {
        let raw = match (target, raw) {
            (UpstreamTarget::Embedded, Some(r)) => r,
            (UpstreamTarget::Embedded, None) => return Err(self.whole("base_url = \"embedded\" needs [upstream.embedded] with model = \"path/to/model.gguf\"")),
            (_, Some(_)) => return Err(self.whole("[upstream.embedded] is only used with upstream.base_url = \"embedded\"")),
            (_, None) => return Ok(None),
        };
        let model = raw.model.as_ref().map(|s| self.path(s)).ok_or_else(|| self.whole("upstream.embedded.model is required (a GGUF file; scripts/fetch-model downloads SmolLM2-135M-Instruct)"))?;
        let watermark = match &raw.watermark {
            None => None,
            Some(w) => {
                let secret = env.var(ENV_SAMPLER_WATERMARK_SECRET).ok_or_else(|| self.at(&w.key_id, format!("upstream.embedded.watermark needs the secret in {ENV_SAMPLER_WATERMARK_SECRET}")))?;
                if secret.len() < 16 {
                    return Err(self.at(
                        &w.key_id,
                        format!("{ENV_SAMPLER_WATERMARK_SECRET} must be at least 16 bytes"),
                    ));
                }
                let (h, gamma, delta) = (
                    w.h.unwrap_or(2),
                    w.gamma.unwrap_or(0.25),
                    w.delta.unwrap_or(2.0),
                );
                let valid = (1..=8).contains(&h)
                    && gamma > 0.0
                    && gamma < 1.0
                    && delta.is_finite()
                    && delta >= 0.0
                    && !w.key_id.get_ref().is_empty();
                if !valid {
                    return Err(self.at(&w.key_id, "upstream.embedded.watermark: need a non-empty key_id, 1 <= h <= 8, 0 < gamma < 1, delta >= 0"));
                }
                Some(EmbeddedWatermark {
                    key_id: w.key_id.get_ref().clone(),
                    secret: Secret::new(secret),
                    h,
                    gamma,
                    delta: delta as f32,
                })
            }
        };
        Ok(Some(EmbeddedConfig {
            model,
            model_id: raw.model_id.as_ref().map(|s| s.get_ref().clone()),
            threads: raw.threads.unwrap_or(0),
            queue: raw.queue.unwrap_or(64).max(1),
            max_tokens: raw.max_tokens.unwrap_or(256).max(1),
            watermark,
        }))
    }

    fn validate(&self, raw: RawConfig, env: &dyn Env) -> Result<Config, ConfigError> {
        let rs = raw.server;
        let listen = match &rs.listen {
            Some(s) => self.addr(s, "server.listen")?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        let admin_listen = rs
            .admin_listen
            .as_ref()
            .map(|s| self.addr(s, "server.admin_listen"))
            .transpose()?;
        if let (Some(a), Some(s)) = (admin_listen, rs.admin_listen.as_ref()) {
            if a == listen && listen.port() != 0 {
                return Err(self.at(s, "server.admin_listen must differ from server.listen"));
            }
        }
        let admin_token = env
            .var(ENV_ADMIN_TOKEN)
            .or_else(|| rs.admin_token.as_ref().map(|s| s.get_ref().clone()))
            .map(Secret::new);
        if let Some(t) = &admin_token {
            if t.expose().len() < 16 {
                let msg = "server.admin_token must be at least 16 characters";
                return Err(match &rs.admin_token {
                    Some(s) if env.var(ENV_ADMIN_TOKEN).is_none() => self.at(s, msg),
                    _ => self.whole(format!("{msg} ({ENV_ADMIN_TOKEN})")),
                });
            }
        }
        if admin_listen.is_some() && admin_token.is_none() && self.serving {
            return Err(self.whole(format!(
                "server.admin_listen is set but no admin token: set server.admin_token or {ENV_ADMIN_TOKEN}"
            )));
        }
        let max_body_bytes = rs.max_body_bytes.unwrap_or(4 * 1024 * 1024);
        if max_body_bytes == 0 || max_body_bytes > 1 << 30 {
            return Err(self.whole("server.max_body_bytes must be between 1 and 1073741824"));
        }
        let mut trusted_proxies = Vec::new();
        for s in rs.trusted_proxies.iter().flatten() {
            trusted_proxies.push(
                parse_cidr(s.get_ref())
                    .map_err(|e| self.at(s, format!("server.trusted_proxies: {e}")))?,
            );
        }
        let metrics = match rs.metrics.as_ref() {
            None => MetricsOn::Admin,
            Some(s) => match s.get_ref().as_str() {
                "admin" => MetricsOn::Admin,
                "main" => MetricsOn::Main,
                "off" => MetricsOn::Off,
                other => {
                    return Err(self.at(
                        s,
                        format!(
                        "server.metrics: expected \"admin\", \"main\" or \"off\", got {other:?}"
                    ),
                    ))
                }
            },
        };
        let shutdown_grace = self.duration(
            rs.shutdown_grace.as_ref(),
            "server.shutdown_grace",
            Duration::from_secs(10),
        )?;
        let threads = self.serving_threads(rs.threads.as_ref(), env)?;
        let tls = rs.tls.as_ref().map(|t| TlsConfig {
            cert: self.path(&t.cert),
            key: self.path(&t.key),
        });

        let ru = raw.upstream;
        let target = match &ru.base_url {
            None => return Err(self.whole("upstream.base_url is required (a URL such as \"http://127.0.0.1:8000/v1\", or \"demo\")")),
            Some(s) if s.get_ref() == "demo" => UpstreamTarget::Demo,
            Some(s) if s.get_ref() == "embedded" => UpstreamTarget::Embedded,
            Some(s) => UpstreamTarget::Url(normalise_base_url(s.get_ref()).map_err(|e| self.at(s, format!("upstream.base_url: {e}")))?),
        };
        let embedded = self.embedded(&target, ru.embedded.as_ref(), env)?;
        let api_key = env
            .var(ENV_UPSTREAM_API_KEY)
            .or_else(|| ru.api_key.as_ref().map(|s| s.get_ref().clone()))
            .map(Secret::new);
        let timeout = self.duration(
            ru.timeout.as_ref(),
            "upstream.timeout",
            Duration::from_secs(600),
        )?;
        let connect_timeout = self.duration(
            ru.connect_timeout.as_ref(),
            "upstream.connect_timeout",
            Duration::from_secs(10),
        )?;
        let stream_idle_timeout = self.duration(
            ru.stream_idle_timeout.as_ref(),
            "upstream.stream_idle_timeout",
            Duration::from_secs(300),
        )?;
        for (d, s, key) in [
            (timeout, &ru.timeout, "upstream.timeout"),
            (
                connect_timeout,
                &ru.connect_timeout,
                "upstream.connect_timeout",
            ),
            (
                stream_idle_timeout,
                &ru.stream_idle_timeout,
                "upstream.stream_idle_timeout",
            ),
        ] {
            if d.is_zero() {
                return Err(match s {
                    Some(s) => self.at(s, format!("{key} must be greater than zero")),
                    None => self.whole(format!("{key} must be greater than zero")),
                });
            }
        }
        let ca_file = ru.ca_file.as_ref().map(|s| self.path(s));
        let anthropic_version = ru
            .anthropic_version
            .map(|s| s.into_inner())
            .unwrap_or_else(|| "2023-06-01".to_string());

        let (backend, on_error, store_timeout) = self.store_backend(&raw.store, env)?;
        let store = StoreConfig {
            path: raw
                .store
                .path
                .as_ref()
                .map(|s| self.path(s))
                .unwrap_or_else(|| self.base.join("moat.db")),
            backend,
            on_error,
            timeout: store_timeout,
        };
        let auth = AuthConfig {
            cache_ttl: self.duration(
                raw.auth.cache_ttl.as_ref(),
                "auth.cache_ttl",
                Duration::from_secs(30),
            )?,
        };
        let rl = raw.limits;
        let limiter_backend = self.limiter_backend(&rl)?;
        let limits = LimitsConfig {
            backend: limiter_backend,
            requests_per_minute: rl.requests_per_minute,
            tokens_per_minute: rl.tokens_per_minute,
            tokens_per_day: rl.tokens_per_day,
            default_max_tokens: rl.default_max_tokens.unwrap_or(1024),
        };
        let ra = raw.audit;
        let audit = AuditConfig {
            response_prefix_bytes: ra.response_prefix_bytes.unwrap_or(4096),
            request_body_max_bytes: ra.request_body_max_bytes.unwrap_or(max_body_bytes as usize),
            batch: ra.batch.unwrap_or(256).max(1),
            flush_interval: self.duration(
                ra.flush_interval.as_ref(),
                "audit.flush_interval",
                Duration::from_millis(200),
            )?,
            queue: ra.queue.unwrap_or(65_536).max(1),
            encryption: match ra.encryption {
                None => None,
                Some(e) => Some(self.audit_encryption(e)?),
            },
            spool_dir: self.spool_dir(ra.spool_dir.as_ref()),
        };
        let format = match raw.log.format.as_ref() {
            None => LogFormat::Pretty,
            Some(s) => match s.get_ref().as_str() {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                other => {
                    return Err(self.at(
                        s,
                        format!("log.format: expected \"pretty\" or \"json\", got {other:?}"),
                    ))
                }
            },
        };
        let level = raw
            .log
            .level
            .map(|s| s.into_inner())
            .unwrap_or_else(|| "info".to_string());
        let watermark = self.watermark(raw.watermark.unwrap_or_default(), &store.path, env)?;
        Ok(Config {
            source: None,
            server: ServerConfig {
                listen,
                admin_listen,
                admin_token,
                max_body_bytes: max_body_bytes as usize,
                trusted_proxies,
                metrics,
                shutdown_grace,
                threads,
                tls,
            },
            upstream: UpstreamConfig {
                target,
                api_key,
                timeout,
                connect_timeout,
                stream_idle_timeout,
                ca_file,
                pool_max_idle_per_host: ru.pool_max_idle_per_host.unwrap_or(256),
                anthropic_version,
                embedded,
            },
            store,
            auth,
            limits,
            audit,
            log: LogConfig { format, level },
            detect: raw.detect.unwrap_or_default(),
            enforce: self.enforce(raw.enforce.unwrap_or_default())?,
            watermark,
            bus: self.bus(raw.bus)?,
        })
    }

    fn watermark(
        &self,
        raw: crate::watermark::RawWatermark,
        db: &Path,
        env: &dyn Env,
    ) -> Result<crate::watermark::WatermarkConfig, ConfigError> {
        crate::watermark::WatermarkConfig::validate(raw, db, &|s: &S| self.path(s), env)
            .map_err(|e| self.error(e.span, e.message))
    }

    fn enforce(
        &self,
        r: crate::enforce::config::RawEnforce,
    ) -> Result<crate::enforce::EnforceConfig, ConfigError> {
        use crate::enforce::config::{degrade_config, HideReasoning, Thresholds, WebhookConfig};
        let d = crate::enforce::EnforceConfig::default();
        let levels = [r.throttle_at, r.degrade_at, r.challenge_at, r.block_at];
        let thresholds = if levels.iter().all(Option::is_none) {
            None
        } else {
            let [t, dg, c, b] = levels.map(|l| l.unwrap_or(f64::INFINITY));
            if [t, dg, c, b].iter().any(|v| v.is_nan() || *v < 0.0) {
                return Err(self.whole("enforce.*_at thresholds must be in [0, 1]"));
            }
            let finite: Vec<f64> = [t, dg, c, b]
                .into_iter()
                .filter(|v| v.is_finite())
                .collect();
            if finite.iter().any(|v| *v > 1.0) || finite.windows(2).any(|w| w[0] > w[1]) {
                return Err(self.whole(
                    "enforce: thresholds must be in [0, 1] and throttle_at <= degrade_at <= challenge_at <= block_at (an omitted one is never reached)",
                ));
            }
            Some(Thresholds {
                throttle_at: t,
                degrade_at: dg,
                challenge_at: c,
                block_at: b,
            })
        };
        let throttle_rpm = r.throttle_rpm.unwrap_or(d.throttle_rpm);
        if throttle_rpm == 0 {
            return Err(self.whole("enforce.throttle_rpm must be at least 1"));
        }
        let webhook = match r.webhook {
            None => None,
            Some(w) => {
                let url = w.url.get_ref();
                if !(url.starts_with("http://") || url.starts_with("https://"))
                    || reqwest::Url::parse(url).is_err()
                {
                    return Err(self.at(&w.url, "enforce.webhook.url: expected an http(s) URL"));
                }
                Some(WebhookConfig {
                    url: url.clone(),
                    min_action: w.min_action.unwrap_or(moat_detect::Action::Degrade),
                    timeout: self.duration(
                        w.timeout.as_ref(),
                        "enforce.webhook.timeout",
                        Duration::from_secs(5),
                    )?,
                    retries: w.retries.unwrap_or(3).min(10),
                    queue: w.queue.unwrap_or(1000).max(1),
                })
            }
        };
        let reasoning = r.reasoning.unwrap_or_default();
        Ok(crate::enforce::EnforceConfig {
            shadow: r.shadow.unwrap_or(d.shadow),
            thresholds,
            throttle_for: self.duration(
                r.throttle_for.as_ref(),
                "enforce.throttle_for",
                d.throttle_for,
            )?,
            throttle_rpm,
            degrade_for: self.duration(
                r.degrade_for.as_ref(),
                "enforce.degrade_for",
                d.degrade_for,
            )?,
            persist_challenge: r.persist_challenge.unwrap_or(d.persist_challenge),
            persist_block: r.persist_block.unwrap_or(d.persist_block),
            allow: r.allow.unwrap_or_default().into_iter().collect(),
            force: r.force.unwrap_or_default(),
            degrade: degrade_config(r.degrade),
            hide_reasoning: HideReasoning {
                all: reasoning.hide_all.unwrap_or(false),
                tiers: reasoning
                    .hide_for_tiers
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
                accounts: reasoning
                    .hide_for_accounts
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            },
            webhook,
        })
    }
}

/// Parses `"30s"`, `"500ms"`, `"24h"`, `"7d"` (humantime syntax; `"0s"` allowed).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Parses a CIDR (`10.0.0.0/8`) or a bare address (taken as a single host).
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("invalid CIDR {s:?} (expected e.g. 10.0.0.0/8 or 2001:db8::/32)"))
}

/// Checks a base URL and strips a trailing `/` and `/v1`.
fn normalise_base_url(s: &str) -> Result<String, String> {
    let url = s.trim();
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("expected an http:// or https:// URL, got {url:?}"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("missing host in {url:?}"));
    }
    if url.contains(['?', '#', ' ']) {
        return Err(format!("no query, fragment or spaces allowed in {url:?}"));
    }
    let mut u = url.trim_end_matches('/');
    if let Some(x) = u.strip_suffix("/v1") {
        u = x;
    }
    Ok(u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct MapEnv(Vec<(&'static str, &'static str)>);
    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn parse(src: &str) -> Result<Config, ConfigError> {
        Config::parse(src, "moat.toml", Path::new(""), &NoEnv)
    }

    const MIN: &str = "[upstream]\nbase_url = \"http://127.0.0.1:9000/v1/\"\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MIN).unwrap();
        assert_eq!(
            c.upstream.target,
            UpstreamTarget::Url("http://127.0.0.1:9000".into())
        );
        assert_eq!(c.server.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(c.server.metrics, MetricsOn::Admin);
        assert_eq!(c.limits.default_max_tokens, 1024);
        assert_eq!(c.store.path, PathBuf::from("moat.db"));
    }

    #[test]
    fn serving_threads_parse_from_file_and_environment() {
        assert_eq!(parse(MIN).unwrap().server.threads, ServingThreads::Shared);
        let with = |v: &str| parse(&format!("{MIN}[server]\nthreads = {v}\n"));
        assert_eq!(
            with("3").unwrap().server.threads,
            ServingThreads::PerThread(3)
        );
        assert_eq!(
            with("\"shared\"").unwrap().server.threads,
            ServingThreads::Shared
        );
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(
            with("\"auto\"").unwrap().server.threads,
            ServingThreads::PerThread(cores)
        );
        for bad in ["0", "257", "-1", "\"many\"", "1.5"] {
            let e = with(bad).unwrap_err().to_string();
            assert!(
                e.contains("server.threads") || e.contains("threads"),
                "{bad}: {e}"
            );
        }
        let env = MapEnv(vec![(ENV_SERVER_THREADS, "2")]);
        let c = Config::parse(MIN, "moat.toml", Path::new(""), &env).unwrap();
        assert_eq!(c.server.threads, ServingThreads::PerThread(2));
        let env = MapEnv(vec![(ENV_SERVER_THREADS, "zero")]);
        let e = Config::parse(MIN, "moat.toml", Path::new(""), &env).unwrap_err();
        assert!(e.to_string().contains(ENV_SERVER_THREADS), "{e}");
    }

    #[test]
    fn unknown_key_reports_file_line_col() {
        let src = format!("{MIN}\n[server]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n");
        let e = parse(&src).unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(6), "{e}");
        let s = e.to_string();
        assert!(s.starts_with("moat.toml:6:1: "), "{s}");
        assert!(s.contains("unknown field `lisen`"), "{s}");
    }

    #[test]
    fn unknown_section_is_rejected() {
        let e = parse(&format!("{MIN}[serverr]\nlisten = \"x\"\n")).unwrap_err();
        assert!(e.to_string().contains("unknown field `serverr`"), "{e}");
        assert_eq!(e.position.map(|p| p.0), Some(3));
    }

    #[test]
    fn bad_values_point_at_their_line() {
        let e = parse(&format!("{MIN}[server]\nlisten = \"nope\"\n")).unwrap_err();
        assert_eq!(e.position, Some((4, 10)), "{e}");
        let e = parse(&format!("{MIN}[upstream.x]\n")).unwrap_err();
        assert!(e.position.is_some());
        let e = parse("[upstream]\nbase_url = \"ftp://x\"\n").unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(2), "{e}");
        let e = parse(&format!("{MIN}timeout = \"soon\"\n")).unwrap_err();
        assert!(e.to_string().starts_with("moat.toml:3:"), "{e}");
        let e = parse(&format!("{MIN}[log]\nformat = \"xml\"\n")).unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(4), "{e}");
        let e = parse(&format!("{MIN}[server]\nmax_body_bytes = \"big\"\n")).unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(4), "{e}");
    }

    #[test]
    fn missing_upstream_is_an_error() {
        let e = parse("").unwrap_err();
        assert!(e.message.contains("upstream.base_url"), "{e}");
    }

    #[test]
    fn admin_listener_needs_a_token() {
        let src = format!("{MIN}[server]\nadmin_listen = \"127.0.0.1:9\"\n");
        assert!(parse(&src).unwrap_err().message.contains("admin token"));
        let env = MapEnv(vec![(ENV_ADMIN_TOKEN, "0123456789abcdef0123")]);
        let c = Config::parse(&src, "f", Path::new(""), &env).unwrap();
        assert_eq!(
            c.server.admin_token.unwrap().expose(),
            "0123456789abcdef0123"
        );
        let short = format!("{MIN}[server]\nadmin_token = \"short\"\n");
        assert!(parse(&short).unwrap_err().message.contains("16"));
    }

    #[test]
    fn env_overrides_upstream_key() {
        let src = format!("{MIN}api_key = \"from-file\"\n");
        let env = MapEnv(vec![(ENV_UPSTREAM_API_KEY, "from-env")]);
        let c = Config::parse(&src, "f", Path::new(""), &env).unwrap();
        assert_eq!(c.upstream.api_key.unwrap().expose(), "from-env");
        assert!(format!("{:?}", parse(&src).unwrap().upstream.api_key).contains("***"));
    }

    #[test]
    fn relative_paths_resolve_against_config_dir() {
        let src = format!("{MIN}[store]\npath = \"data/m.db\"\n[server.tls]\ncert = \"/abs/c.pem\"\nkey = \"k.pem\"\n");
        let c = Config::parse(&src, "f", Path::new("/etc/moat"), &NoEnv).unwrap();
        assert_eq!(c.store.path, PathBuf::from("/etc/moat/data/m.db"));
        let tls = c.server.tls.unwrap();
        assert_eq!(tls.cert, PathBuf::from("/abs/c.pem"));
        assert_eq!(tls.key, PathBuf::from("/etc/moat/k.pem"));
    }

    #[test]
    fn cidrs_parse() {
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("127.0.0.1").unwrap().to_string(), "127.0.0.1/32");
        assert!(parse_cidr("10.0.0.0/33").is_err());
        let e = parse(&format!(
            "{MIN}[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"bogus\"]\n"
        ))
        .unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(4), "{e}");
    }

    #[test]
    fn demo_upstream_is_accepted() {
        let c = parse("[upstream]\nbase_url = \"demo\"\n").unwrap();
        assert_eq!(c.upstream.target, UpstreamTarget::Demo);
    }

    #[test]
    fn embedded_upstream_is_validated() {
        let src = "[upstream]\nbase_url = \"embedded\"\n[upstream.embedded]\nmodel = \"m.gguf\"\nthreads = 2\n";
        let c = parse(src).unwrap();
        assert_eq!(c.upstream.target, UpstreamTarget::Embedded);
        let e = c.upstream.embedded.unwrap();
        assert_eq!(
            (e.model, e.threads, e.queue),
            (PathBuf::from("m.gguf"), 2, 64)
        );
        assert!(e.watermark.is_none());
        assert!(parse("[upstream]\nbase_url = \"embedded\"\n").is_err());
        assert!(
            parse(&format!("{src}modle = 1\n")).is_err(),
            "unknown keys are rejected"
        );
        assert!(
            parse("[upstream]\nbase_url = \"demo\"\n[upstream.embedded]\nmodel = \"m\"\n").is_err()
        );
        let wm = format!("{src}[upstream.embedded.watermark]\nkey_id = \"k1\"\ngamma = 0.5\n");
        assert!(
            parse(&wm).is_err(),
            "the secret must come from the environment"
        );
        let env = MapEnv(vec![(ENV_SAMPLER_WATERMARK_SECRET, "0123456789abcdef0123")]);
        let c = Config::parse(&wm, "moat.toml", Path::new(""), &env).unwrap();
        let w = c.upstream.embedded.unwrap().watermark.unwrap();
        assert_eq!(
            (w.key_id.as_str(), w.h, w.gamma, w.delta),
            ("k1", 2, 0.5, 2.0)
        );
        let bad = format!("{src}[upstream.embedded.watermark]\nkey_id = \"k1\"\ngamma = 1.5\n");
        assert!(Config::parse(&bad, "moat.toml", Path::new(""), &env).is_err());
    }
}
