//! Validation of the settings for several replicas: `[store] backend/url/on_error/timeout`,
//! `[limits] backend/redis_url/on_error/timeout`, `[audit] spool_dir` and `[bus]`.

use std::path::PathBuf;
use std::time::Duration;

use super::raw::{RawBus, RawLimits, RawStore, S};
use super::validated::{ConfigError, Env, Secret, Validator};

/// Environment variable that overrides `[store] url` (it may hold a password).
pub const ENV_STORE_URL: &str = "MOAT_STORE_URL";

/// Where accounts, keys, overrides and the audit log live.
#[derive(Debug, Clone)]
pub enum StoreBackend {
    /// A SQLite file (one process): `[store] path`.
    Sqlite,
    /// A PostgreSQL database shared by every replica: `[store] url`.
    Postgres {
        /// `postgres://user@host:port/db` (may hold a password: never logged).
        url: Secret,
    },
}

/// What a replica does when the store is down or slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOnError {
    /// Keep serving: cached keys and overrides stay in use past their TTL, audit records are
    /// spooled to `[audit] spool_dir` (availability first).
    ServeStale,
    /// Refuse what cannot be checked against the store (503), as a single process does.
    FailClosed,
}

/// Which limiter enforces quotas.
#[derive(Debug, Clone, PartialEq)]
pub enum LimiterBackend {
    /// In-process (one replica; quotas are per process).
    Memory,
    /// Redis: exact quotas shared by every replica.
    Redis {
        /// `redis://host:port/db`.
        url: String,
        /// Behaviour when Redis fails or misses `timeout`.
        fail_mode: moat_limits::FailMode,
        /// Deadline of one limiter call.
        timeout: Duration,
    },
}

/// `[bus]`, validated.
#[derive(Debug, Clone)]
pub struct BusSettings {
    /// This replica's id (events, control messages); default `<hostname>-<pid>`.
    pub replica: String,
    /// Stream, buckets, subjects.
    pub bus: moat_bus::BusConfig,
}

fn choice<'a>(
    v: &Validator<'_>,
    s: &'a S,
    key: &str,
    allowed: &[&str],
) -> Result<&'a str, ConfigError> {
    let got = s.get_ref().as_str();
    if allowed.contains(&got) {
        Ok(got)
    } else {
        let list = allowed
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(" or ");
        Err(v.at(s, format!("{key}: expected {list}, got {got:?}")))
    }
}

/// A name used in NATS subjects / stream names: letters, digits, `-`, `_` (and `.` where
/// `dots`).
fn nats_name(
    v: &Validator<'_>,
    s: Option<&S>,
    key: &str,
    default: &str,
    dots: bool,
) -> Result<String, ConfigError> {
    let Some(s) = s else {
        return Ok(default.to_string());
    };
    let ok = !s.get_ref().is_empty()
        && s.get_ref()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (dots && b == b'.'))
        && !s.get_ref().starts_with('.')
        && !s.get_ref().ends_with('.');
    if ok {
        Ok(s.get_ref().clone())
    } else {
        Err(v.at(
            s,
            format!(
                "{key}: use letters, digits, '-' and '_'{}",
                if dots {
                    " (and '.' between tokens)"
                } else {
                    ""
                }
            ),
        ))
    }
}

impl Validator<'_> {
    pub(super) fn store_backend(
        &self,
        r: &RawStore,
        env: &dyn Env,
    ) -> Result<(StoreBackend, StoreOnError, Duration), ConfigError> {
        let backend = match &r.backend {
            None => None,
            Some(s) => Some(choice(self, s, "store.backend", &["sqlite", "postgres"])?),
        };
        let url = env
            .var(ENV_STORE_URL)
            .or_else(|| r.url.as_ref().map(|s| s.get_ref().clone()));
        let is_pg = |u: &str| u.starts_with("postgres://") || u.starts_with("postgresql://");
        let backend = match (backend, url) {
            (Some("postgres") | None, Some(u)) if is_pg(&u) => StoreBackend::Postgres { url: Secret::new(u) },
            (Some("postgres"), Some(_)) => {
                return Err(match &r.url {
                    Some(s) => self.at(s, "store.url: expected a postgres:// or postgresql:// URL"),
                    None => self.whole(format!("{ENV_STORE_URL}: expected a postgres:// URL")),
                })
            }
            (Some("postgres"), None) => {
                return Err(self.whole(format!(
                    "store.backend = \"postgres\" needs store.url (or {ENV_STORE_URL}), e.g. \"postgres://moat@127.0.0.1:5432/moat\""
                )))
            }
            (None, Some(_)) => {
                return Err(match &r.url {
                    Some(s) => self.at(s, "store.url: expected a postgres:// URL (a SQLite file goes in store.path)"),
                    None => self.whole(format!("{ENV_STORE_URL}: expected a postgres:// URL")),
                })
            }
            (Some("sqlite"), Some(_)) if r.url.is_some() => {
                return Err(self.whole("store.url is only used with store.backend = \"postgres\""))
            }
            _ => StoreBackend::Sqlite,
        };
        let on_error = match &r.on_error {
            None => StoreOnError::ServeStale,
            Some(s) => match choice(self, s, "store.on_error", &["serve_stale", "fail_closed"])? {
                "fail_closed" => StoreOnError::FailClosed,
                _ => StoreOnError::ServeStale,
            },
        };
        let timeout = self.duration(r.timeout.as_ref(), "store.timeout", Duration::from_secs(2))?;
        if timeout.is_zero() {
            return Err(self.whole("store.timeout must be greater than zero"));
        }
        Ok((backend, on_error, timeout))
    }

    pub(super) fn limiter_backend(&self, r: &RawLimits) -> Result<LimiterBackend, ConfigError> {
        let redis = match &r.backend {
            None => r.redis_url.is_some(),
            Some(s) => choice(self, s, "limits.backend", &["memory", "redis"])? == "redis",
        };
        if !redis {
            if let Some(s) = r.redis_url.as_ref().or(r.on_error.as_ref()) {
                return Err(self.at(
                    s,
                    "limits.redis_url / limits.on_error need limits.backend = \"redis\"",
                ));
            }
            return Ok(LimiterBackend::Memory);
        }
        let url = r
            .redis_url
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_else(|| "redis://127.0.0.1:6379/".into());
        if !(url.starts_with("redis://")
            || url.starts_with("rediss://")
            || url.starts_with("unix://"))
        {
            return Err(match &r.redis_url {
                Some(s) => self.at(s, "limits.redis_url: expected a redis:// URL"),
                None => self.whole("limits.redis_url: expected a redis:// URL"),
            });
        }
        let fail_mode = match &r.on_error {
            None => moat_limits::FailMode::Open,
            Some(s) => match choice(self, s, "limits.on_error", &["open", "closed"])? {
                "closed" => moat_limits::FailMode::Closed,
                _ => moat_limits::FailMode::Open,
            },
        };
        let timeout = self.duration(
            r.timeout.as_ref(),
            "limits.timeout",
            Duration::from_millis(50),
        )?;
        if timeout.is_zero() {
            return Err(self.whole("limits.timeout must be greater than zero"));
        }
        Ok(LimiterBackend::Redis {
            url,
            fail_mode,
            timeout,
        })
    }

    pub(super) fn spool_dir(&self, s: Option<&S>) -> Option<PathBuf> {
        s.map(|s| self.path(s))
    }

    pub(super) fn bus(&self, r: Option<RawBus>) -> Result<Option<BusSettings>, ConfigError> {
        let Some(r) = r else { return Ok(None) };
        let d = moat_bus::BusConfig::default();
        let url = r
            .url
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or(d.url.clone());
        if !(url.starts_with("nats://")
            || url.starts_with("tls://")
            || url.starts_with("localhost")
            || url.contains(':'))
        {
            return Err(match &r.url {
                Some(s) => self.at(
                    s,
                    "bus.url: expected a NATS URL such as \"nats://127.0.0.1:4222\"",
                ),
                None => self.whole("bus.url: expected a NATS URL"),
            });
        }
        let partitions = r.partitions.unwrap_or(d.partitions);
        if !(1..=1024).contains(&partitions) {
            return Err(self.whole("bus.partitions must be between 1 and 1024"));
        }
        let replica = match &r.replica {
            Some(s) => nats_name(self, Some(s), "bus.replica", "", false)?,
            None => default_replica_id(),
        };
        let max_age = self.duration(r.retention.as_ref(), "bus.retention", d.max_age)?;
        if max_age < Duration::from_secs(60) {
            return Err(self
                .whole("bus.retention must be at least 1m (workers rebuild their state from it)"));
        }
        Ok(Some(BusSettings {
            replica,
            bus: moat_bus::BusConfig {
                url,
                stream: nats_name(self, r.stream.as_ref(), "bus.stream", &d.stream, false)?,
                subject_prefix: nats_name(
                    self,
                    r.subject_prefix.as_ref(),
                    "bus.subject_prefix",
                    &d.subject_prefix,
                    true,
                )?,
                partitions,
                max_age,
                max_bytes: r.max_bytes.unwrap_or(d.max_bytes),
                verdict_bucket: nats_name(
                    self,
                    r.verdict_bucket.as_ref(),
                    "bus.verdict_bucket",
                    &d.verdict_bucket,
                    false,
                )?,
                summary_bucket: nats_name(
                    self,
                    r.summary_bucket.as_ref(),
                    "bus.summary_bucket",
                    &d.summary_bucket,
                    false,
                )?,
                control_subject: nats_name(
                    self,
                    r.control_subject.as_ref(),
                    "bus.control_subject",
                    &d.control_subject,
                    true,
                )?,
                connect_timeout: self.duration(
                    r.connect_timeout.as_ref(),
                    "bus.connect_timeout",
                    d.connect_timeout,
                )?,
                request_timeout: d.request_timeout,
                publish_queue: r.publish_queue.unwrap_or(d.publish_queue).max(1),
            },
        }))
    }
}

/// `<hostname>-<pid>`, reduced to the characters NATS names allow.
fn default_replica_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "moat".into());
    let clean: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{clean}-{}", std::process::id())
}
