//! `upstream.base_url = "embedded"`: starts moat-backend's in-process model server (OpenAI and
//! Anthropic APIs on 127.0.0.1:0) and returns its base URL; the gateway then proxies to it like
//! any upstream. Needs the `embedded` cargo feature.

use crate::config::Config;

/// Starts the embedded backend and returns its base URL.
#[cfg(feature = "embedded")]
pub async fn start(config: &Config) -> anyhow::Result<String> {
    use anyhow::Context;
    let e = config
        .upstream
        .embedded
        .as_ref()
        .context("upstream.embedded is missing")?;
    let mut cfg = moat_backend::BackendConfig::new(&e.model);
    if let Some(id) = &e.model_id {
        cfg.model_id = id.clone();
    }
    cfg.threads = e.threads;
    cfg.queue = e.queue;
    cfg.default_max_tokens = e.max_tokens;
    cfg.required_key = config
        .upstream
        .api_key
        .as_ref()
        .map(|k| k.expose().to_string());
    if let Some(w) = &e.watermark {
        cfg.watermark = Some(moat_backend::watermark::SamplerMark::with_params(
            w.key_id.clone(),
            w.secret.expose().as_bytes(),
            w.h,
            w.gamma,
            w.delta,
        )?);
    }
    let (addr, _task) = moat_backend::spawn_backend(cfg)
        .await
        .with_context(|| format!("starting the embedded model {}", e.model.display()))?;
    tracing::info!(%addr, model = %e.model.display(), "using the in-process embedded model");
    Ok(format!("http://{addr}"))
}

/// Without the `embedded` feature: a clear error.
#[cfg(not(feature = "embedded"))]
pub async fn start(_config: &Config) -> anyhow::Result<String> {
    anyhow::bail!(
        "upstream.base_url = \"embedded\" needs moat built with the `embedded` feature \
         (cargo build -p moat --features embedded)"
    )
}
