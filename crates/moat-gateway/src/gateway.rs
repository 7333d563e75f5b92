//! The shared state of a running gateway.

use std::cell::Cell;
use std::sync::Arc;

use http::HeaderValue;
use moat_limits::{Limiter, Limits};
use moat_store::{Account, AuditHandle, KeyAuthenticator, Store};

use crate::api::Api;
use crate::config::Config;
use crate::inspect::RequestInspector;

thread_local! {
    /// Which serving thread this OS thread is (`server.threads`); 0 elsewhere.
    static SERVING_THREAD: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current OS thread as serving thread `index`: its requests use that thread's
/// upstream connection pool ([`Upstream::client`]).
pub fn enter_serving_thread(index: usize) {
    SERVING_THREAD.with(|t| t.set(index));
}

/// The upstream model server: pooled HTTP clients and precomputed URLs.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The pooled clients (HTTP/1.1 keep-alive, HTTP/2 when the server offers it): one per
    /// serving thread, so that a connection is driven by the runtime whose requests use it.
    clients: Arc<[reqwest::Client]>,
    /// Base URL without `/v1`.
    pub base: String,
    chat: reqwest::Url,
    completions: reqwest::Url,
    models: reqwest::Url,
    messages: reqwest::Url,
    /// `Authorization: Bearer <upstream key>`.
    pub bearer: Option<HeaderValue>,
    /// `x-api-key: <upstream key>`.
    pub x_api_key: Option<HeaderValue>,
    /// Default `anthropic-version`.
    pub anthropic_version: HeaderValue,
}

impl Upstream {
    /// Builds the client for `base` (already normalised: no trailing `/v1`).
    pub fn new(config: &Config, base: &str) -> anyhow::Result<Upstream> {
        crate::tls::ensure_crypto_provider();
        let u = &config.upstream;
        let roots = match &u.ca_file {
            None => Vec::new(),
            Some(ca) => {
                let pem = std::fs::read(ca)
                    .map_err(|e| anyhow::anyhow!("upstream.ca_file {}: {e}", ca.display()))?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| anyhow::anyhow!("upstream.ca_file {}: {e}", ca.display()))?;
                if certs.is_empty() {
                    anyhow::bail!("upstream.ca_file {}: no certificate found", ca.display());
                }
                certs
            }
        };
        let client = || {
            let mut builder = reqwest::Client::builder()
                .connect_timeout(u.connect_timeout)
                .pool_max_idle_per_host(u.pool_max_idle_per_host)
                .pool_idle_timeout(std::time::Duration::from_secs(90))
                .tcp_nodelay(true)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("moat/", env!("CARGO_PKG_VERSION")));
            for c in &roots {
                builder = builder.add_root_certificate(c.clone());
            }
            builder.build()
        };
        let pools = match config.server.threads {
            crate::config::ServingThreads::Shared => 1,
            crate::config::ServingThreads::PerThread(n) => n,
        };
        let clients = (0..pools)
            .map(|_| client())
            .collect::<Result<Arc<[_]>, _>>()?;
        let header = |v: String| -> anyhow::Result<HeaderValue> {
            let mut h = HeaderValue::from_str(&v)
                .map_err(|_| anyhow::anyhow!("upstream.api_key contains invalid characters"))?;
            h.set_sensitive(true);
            Ok(h)
        };
        let key = u.api_key.as_ref().map(|k| k.expose().to_string());
        // Parsed once: cloning a Url is much cheaper than parsing it per request.
        let url = |api: Api| -> anyhow::Result<reqwest::Url> {
            reqwest::Url::parse(&format!("{base}{}", api.path()))
                .map_err(|e| anyhow::anyhow!("upstream.base_url {base:?}: {e}"))
        };
        Ok(Upstream {
            clients,
            base: base.to_string(),
            chat: url(Api::OpenAiChat)?,
            completions: url(Api::OpenAiCompletions)?,
            models: url(Api::OpenAiModels)?,
            messages: url(Api::AnthropicMessages)?,
            bearer: key
                .clone()
                .map(|k| header(format!("Bearer {k}")))
                .transpose()?,
            x_api_key: key.map(header).transpose()?,
            anthropic_version: HeaderValue::from_str(&u.anthropic_version).map_err(|_| {
                anyhow::anyhow!("upstream.anthropic_version contains invalid characters")
            })?,
        })
    }

    /// The connection pool of the current serving thread.
    pub fn client(&self) -> &reqwest::Client {
        let i = SERVING_THREAD.with(Cell::get);
        &self.clients[i % self.clients.len()]
    }

    /// URL of `api` on the upstream.
    pub fn url(&self, api: Api) -> &reqwest::Url {
        match api {
            Api::OpenAiChat => &self.chat,
            Api::OpenAiCompletions => &self.completions,
            Api::OpenAiModels => &self.models,
            Api::AnthropicMessages => &self.messages,
        }
    }
}

/// Everything a request handler needs. Shared as `Arc<Gateway>`.
pub struct Gateway {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// The database.
    pub store: Store,
    /// Cached key lookups.
    pub auth: KeyAuthenticator,
    /// Per-account limits.
    pub limiter: Arc<dyn Limiter>,
    /// Audit log intake.
    pub audit: AuditHandle,
    /// The upstream model server.
    pub upstream: Upstream,
    /// Optional request inspection (detection engine).
    pub inspector: Option<Arc<dyn RequestInspector>>,
    /// The enforcement ladder (overrides, throttles, degradation, shadow mode).
    pub enforcer: crate::enforce::Enforcer,
    /// The text watermark policy (`[watermark]`).
    pub watermark: crate::watermark::Watermarker,
    /// Links to the other replicas and the detector workers (`[bus]`), if any.
    pub scale_out: Option<crate::scale_out::ScaleOut>,
    /// The Redis limiter, when it is the limiter (for health reports).
    pub redis_limiter: Option<Arc<moat_limits::RedisLimiter>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("upstream", &self.upstream.base)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Tells the other replicas (if any) about a change made here that they cache.
    pub fn announce(&self, msg: moat_bus::ControlMessage) {
        if let Some(so) = &self.scale_out {
            so.announce(msg);
        }
    }

    /// The limits that apply to `account`: its own, falling back to the configured defaults.
    pub fn limits_for(&self, account: &Account) -> Limits {
        let d = &self.config.limits;
        let a = &account.limits;
        Limits {
            requests_per_minute: a
                .requests_per_minute
                .or_else(|| d.requests_per_minute.map(|v| v.min(u32::MAX as u64) as u32)),
            tokens_per_minute: a.tokens_per_minute.or(d.tokens_per_minute),
            tokens_per_day: a.tokens_per_day.or(d.tokens_per_day),
        }
    }
}
