//! `moat check-config`: the resolved configuration as an operator reads it — every section
//! and key of `docs/config.md` with the value in force (defaults filled in, environment
//! overrides applied, relative paths resolved), as TOML. Secrets are never printed: a set
//! secret is a comment saying where it comes from. An unset optional key is a comment saying
//! what that means.

use std::fmt::Write as _;
use std::time::Duration;

use super::scale_out::{LimiterBackend, StoreBackend, StoreOnError};
use super::validated::{
    AuditKeySource, Config, LogFormat, MetricsOn, ServingThreads, UpstreamTarget, ENV_ADMIN_TOKEN,
    ENV_UPSTREAM_API_KEY,
};
use crate::enforce::degrade::FeaturePolicy;
use crate::watermark::{KeySecret, KeySource};

/// One section of the output.
struct Section {
    name: String,
    lines: Vec<String>,
}

impl Section {
    fn new(name: &str) -> Self {
        Section {
            name: name.to_string(),
            lines: Vec::new(),
        }
    }
    fn set(&mut self, key: &str, v: impl Into<toml::Value>) -> &mut Self {
        self.lines.push(format!("{key} = {}", v.into()));
        self
    }
    fn opt<T: Into<toml::Value>>(&mut self, key: &str, v: Option<T>, unset: &str) -> &mut Self {
        match v {
            Some(v) => self.set(key, v),
            None => self.note(key, unset),
        }
    }
    fn dur(&mut self, key: &str, d: Duration) -> &mut Self {
        self.set(key, humantime::format_duration(d).to_string())
    }
    fn note(&mut self, key: &str, what: &str) -> &mut Self {
        self.lines.push(format!("# {key}: {what}"));
        self
    }
    fn list<I: IntoIterator<Item = S>, S: AsRef<str>>(&mut self, key: &str, items: I) -> &mut Self {
        let mut v: Vec<String> = items.into_iter().map(|s| s.as_ref().to_string()).collect();
        v.sort();
        self.set(
            key,
            toml::Value::Array(v.into_iter().map(toml::Value::from).collect()),
        )
    }
}

fn int(n: impl TryInto<i64>) -> toml::Value {
    toml::Value::Integer(n.try_into().unwrap_or(i64::MAX))
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

fn policy(p: FeaturePolicy) -> &'static str {
    match p {
        FeaturePolicy::Keep => "keep",
        FeaturePolicy::Strip => "strip",
        FeaturePolicy::Refuse => "refuse",
    }
}

/// Where a secret comes from, for a comment (the value itself is never printed).
fn secret_note(set: bool, env: &str) -> String {
    if !set {
        return "not set".into();
    }
    if std::env::var_os(env).is_some_and(|v| !v.is_empty()) {
        format!("set (from {env}; not shown)")
    } else {
        "set (in the file; not shown)".into()
    }
}

/// The resolved configuration as TOML text (see the module docs).
pub fn describe(c: &Config) -> String {
    let mut out: Vec<Section> = Vec::new();

    let s = &c.server;
    let mut sec = Section::new("server");
    sec.set("listen", s.listen.to_string())
        .opt(
            "admin_listen",
            s.admin_listen.map(|a| a.to_string()),
            "off (no admin API)",
        )
        .note(
            "admin_token",
            &secret_note(s.admin_token.is_some(), ENV_ADMIN_TOKEN),
        )
        .set("max_body_bytes", int(s.max_body_bytes))
        .list(
            "trusted_proxies",
            s.trusted_proxies.iter().map(|n| n.to_string()),
        )
        .set(
            "metrics",
            match s.metrics {
                MetricsOn::Admin => "admin",
                MetricsOn::Main => "main",
                MetricsOn::Off => "off",
            },
        )
        .dur("shutdown_grace", s.shutdown_grace);
    match s.threads {
        ServingThreads::Shared => sec.set("threads", "shared"),
        ServingThreads::PerThread(n) => sec.set("threads", int(n)),
    };
    out.push(sec);
    if let Some(t) = &s.tls {
        let mut sec = Section::new("server.tls");
        sec.set("cert", path(&t.cert)).set("key", path(&t.key));
        out.push(sec);
    }

    let u = &c.upstream;
    let mut sec = Section::new("upstream");
    match &u.target {
        UpstreamTarget::Url(b) => sec.set("base_url", b.clone()),
        UpstreamTarget::Demo => sec.set("base_url", "demo"),
        UpstreamTarget::Embedded => sec.set("base_url", "embedded"),
    };
    sec.note(
        "api_key",
        &secret_note(u.api_key.is_some(), ENV_UPSTREAM_API_KEY),
    )
    .dur("timeout", u.timeout)
    .dur("connect_timeout", u.connect_timeout)
    .dur("stream_idle_timeout", u.stream_idle_timeout)
    .opt(
        "ca_file",
        u.ca_file.as_deref().map(path),
        "none (web PKI roots only)",
    )
    .set("pool_max_idle_per_host", int(u.pool_max_idle_per_host))
    .set("anthropic_version", u.anthropic_version.clone());
    out.push(sec);
    if let Some(e) = &u.embedded {
        let mut sec = Section::new("upstream.embedded");
        sec.set("model", path(&e.model))
            .opt("model_id", e.model_id.clone(), "the file stem")
            .set("threads", int(e.threads))
            .set("queue", int(e.queue))
            .set("max_tokens", int(e.max_tokens));
        out.push(sec);
        if let Some(w) = &e.watermark {
            let mut sec = Section::new("upstream.embedded.watermark");
            sec.set("key_id", w.key_id.clone())
                .set("h", int(w.h))
                .set("gamma", w.gamma)
                .set("delta", f64::from(w.delta))
                .note(
                    "secret",
                    "set (from MOAT_SAMPLER_WATERMARK_SECRET; not shown)",
                );
            out.push(sec);
        }
    }

    let st = &c.store;
    let mut sec = Section::new("store");
    match &st.backend {
        StoreBackend::Sqlite => sec.set("backend", "sqlite").set("path", path(&st.path)),
        StoreBackend::Postgres { .. } => sec
            .set("backend", "postgres")
            .set("url", st.display())
            .note("url", "password, if any, not shown"),
    };
    sec.set(
        "on_error",
        match st.on_error {
            StoreOnError::ServeStale => "serve_stale",
            StoreOnError::FailClosed => "fail_closed",
        },
    )
    .dur("timeout", st.timeout);
    out.push(sec);

    let mut sec = Section::new("auth");
    sec.dur("cache_ttl", c.auth.cache_ttl);
    out.push(sec);

    let l = &c.limits;
    let mut sec = Section::new("limits");
    sec.opt(
        "requests_per_minute",
        l.requests_per_minute.map(int),
        "unlimited",
    )
    .opt(
        "tokens_per_minute",
        l.tokens_per_minute.map(int),
        "unlimited",
    )
    .opt("tokens_per_day", l.tokens_per_day.map(int), "unlimited")
    .set("default_max_tokens", int(l.default_max_tokens));
    match &l.backend {
        LimiterBackend::Memory => {
            sec.set("backend", "memory");
        }
        LimiterBackend::Redis {
            url,
            fail_mode,
            timeout,
        } => {
            sec.set("backend", "redis")
                .set("redis_url", moat_store::redact_url(url))
                .set(
                    "on_error",
                    match fail_mode {
                        moat_limits::FailMode::Open => "open",
                        moat_limits::FailMode::Closed => "closed",
                    },
                )
                .dur("timeout", *timeout);
        }
    }
    out.push(sec);

    let a = &c.audit;
    let mut sec = Section::new("audit");
    sec.set("response_prefix_bytes", int(a.response_prefix_bytes))
        .set("request_body_max_bytes", int(a.request_body_max_bytes))
        .set("batch", int(a.batch))
        .dur("flush_interval", a.flush_interval)
        .set("queue", int(a.queue))
        .opt(
            "spool_dir",
            a.spool_dir.as_deref().map(path),
            "none (records the store cannot take wait in memory)",
        );
    out.push(sec);
    if let Some(e) = &a.encryption {
        let mut sec = Section::new("audit.encryption");
        sec.set("active", e.active.clone());
        for (id, src) in &e.keys {
            match src {
                AuditKeySource::File(p) => {
                    sec.note(&format!("key {id}"), &format!("key_file {}", path(p)))
                }
                AuditKeySource::Env(v) => sec.note(&format!("key {id}"), &format!("key_env {v}")),
            };
        }
        out.push(sec);
    }

    if let Some(b) = &c.bus {
        let bc = &b.bus;
        let mut sec = Section::new("bus");
        sec.set("url", moat_store::redact_url(&bc.url))
            .set("replica", b.replica.clone())
            .set("partitions", int(bc.partitions))
            .dur("retention", bc.max_age)
            .set("max_bytes", int(bc.max_bytes))
            .set("stream", bc.stream.clone())
            .set("subject_prefix", bc.subject_prefix.clone())
            .set("verdict_bucket", bc.verdict_bucket.clone())
            .set("summary_bucket", bc.summary_bucket.clone())
            .set("control_subject", bc.control_subject.clone())
            .set("publish_queue", int(bc.publish_queue))
            .dur("connect_timeout", bc.connect_timeout);
        out.push(sec);
    }

    let mut sec = Section::new("log");
    sec.set(
        "format",
        match c.log.format {
            LogFormat::Pretty => "pretty",
            LogFormat::Json => "json",
        },
    )
    .set("level", c.log.level.clone());
    if std::env::var_os("RUST_LOG").is_some() {
        sec.note("level", "RUST_LOG is set and overrides it");
    }
    out.push(sec);

    // [detect]: the engine's own (serialisable) thresholds.
    let mut sec = Section::new("detect");
    if let Ok(toml::Value::Table(t)) = toml::Value::try_from(&c.detect) {
        let mut nested = Vec::new();
        for (k, v) in t {
            match v {
                toml::Value::Table(inner) => nested.push((k, inner)),
                v => sec.lines.push(format!("{k} = {v}")),
            }
        }
        out.push(sec);
        for (k, inner) in nested {
            let mut sec = Section::new(&format!("detect.{k}"));
            for (k, v) in inner {
                sec.lines.push(format!("{k} = {v}"));
            }
            out.push(sec);
        }
    } else {
        out.push(sec);
    }

    let e = &c.enforce;
    let mut sec = Section::new("enforce");
    sec.set("shadow", e.shadow);
    match &e.thresholds {
        Some(t) => {
            sec.set("throttle_at", t.throttle_at)
                .set("degrade_at", t.degrade_at)
                .set("challenge_at", t.challenge_at)
                .set("block_at", t.block_at);
        }
        None => {
            sec.note(
                "throttle_at, degrade_at, challenge_at, block_at",
                "unset (the engine's own action)",
            );
        }
    }
    sec.dur("throttle_for", e.throttle_for)
        .set("throttle_rpm", int(e.throttle_rpm))
        .dur("degrade_for", e.degrade_for)
        .set("persist_challenge", e.persist_challenge)
        .set("persist_block", e.persist_block)
        .list("allow", e.allow.iter());
    out.push(sec);
    if !e.force.is_empty() {
        let mut sec = Section::new("enforce.force");
        for (acct, action) in &e.force {
            sec.set(&toml_key(acct), action.as_str());
        }
        out.push(sec);
    }
    let d = &e.degrade;
    let mut sec = Section::new("enforce.degrade");
    sec.set("strip_reasoning", d.strip_reasoning)
        .set("max_tokens", int(d.max_tokens.unwrap_or(0)))
        .set("logprobs", policy(d.logprobs))
        .set("n", policy(d.n))
        .set("disable_thinking", d.disable_thinking);
    out.push(sec);
    let h = &e.hide_reasoning;
    let mut sec = Section::new("enforce.reasoning");
    sec.set("hide_all", h.all)
        .list("hide_for_tiers", h.tiers.iter())
        .list("hide_for_accounts", h.accounts.iter());
    out.push(sec);
    if let Some(w) = &e.webhook {
        let mut sec = Section::new("enforce.webhook");
        sec.set("url", moat_store::redact_url(&w.url))
            .set("min_action", w.min_action.as_str())
            .dur("timeout", w.timeout)
            .set("retries", int(w.retries))
            .set("queue", int(w.queue));
        out.push(sec);
    }

    let w = &c.watermark;
    let mut sec = Section::new("watermark");
    sec.set("enabled", w.enabled);
    match &w.keys {
        KeySource::File(p) => {
            sec.set("key_file", path(p));
        }
        KeySource::Listed(keys) => {
            for (id, k) in keys {
                match k {
                    KeySecret::Env(_) => sec.note(
                        &format!("key {id}"),
                        "secret from the environment (not shown)",
                    ),
                    KeySecret::File(p) => {
                        sec.note(&format!("key {id}"), &format!("secret_file {}", path(p)))
                    }
                };
            }
        }
    }
    sec.opt("active_key", w.active_key.clone(), "the last key")
        .list("tiers_off", w.tiers_off.iter())
        .list("accounts_off", w.accounts_off.iter())
        .set("context_words", int(w.mark.context_words))
        .set("context_stop_words", w.mark.context_stop_words)
        .set("context_buckets", int(w.mark.context_buckets))
        .set("contractions", w.mark.contractions);
    out.push(sec);

    let mut text = String::new();
    for (i, sec) in out.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        let _ = writeln!(text, "[{}]", sec.name);
        for l in &sec.lines {
            let _ = writeln!(text, "{l}");
        }
    }
    text
}

/// `k` as a TOML key (quoted unless bare).
fn toml_key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        k.to_string()
    } else {
        toml::Value::from(k).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NoEnv;

    #[test]
    fn resolved_config_is_toml_with_defaults_and_no_secrets() {
        let src = "[server]\nadmin_listen = \"127.0.0.1:9090\"\nadmin_token = \"a-very-secret-token-123\"\n[upstream]\nbase_url = \"http://127.0.0.1:8000/v1\"\napi_key = \"sk-upstream-secret\"\n[limits]\nrequests_per_minute = 60\n[enforce.force]\n\"acct x\" = \"block\"\n";
        let c = Config::parse(src, "t.toml", std::path::Path::new("/etc/moat"), &NoEnv).unwrap();
        let text = describe(&c);
        assert!(!text.contains("a-very-secret-token-123") && !text.contains("sk-upstream-secret"));
        assert!(!text.contains("Secret("), "{text}");
        // It is TOML (comments and all), with the defaults filled in.
        let v: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(v["server"]["listen"].as_str(), Some("127.0.0.1:8080"));
        assert_eq!(v["server"]["max_body_bytes"].as_integer(), Some(4 << 20));
        assert_eq!(v["upstream"]["timeout"].as_str(), Some("10m"));
        assert_eq!(v["store"]["path"].as_str(), Some("/etc/moat/moat.db"));
        assert_eq!(v["limits"]["requests_per_minute"].as_integer(), Some(60));
        assert_eq!(v["enforce"]["shadow"].as_bool(), Some(true));
        assert_eq!(v["enforce"]["force"]["acct x"].as_str(), Some("block"));
        assert_eq!(v["watermark"]["enabled"].as_bool(), Some(true));
        assert!(text.contains("# admin_token: set (in the file; not shown)"));
        assert!(text.contains("# tokens_per_day: unlimited"));
        assert!(v.contains_key("detect"));
    }
}
