//! HTTP routes of the public and admin listeners.

pub mod admin;
pub mod admin_enforce;
pub mod admin_watermark;
pub mod anthropic;
pub mod health;
pub mod openai;

use std::sync::Arc;

use axum::{
    routing::{get, post},
    Router,
};

use crate::config::MetricsOn;
use crate::gateway::Gateway;

/// The public router: model APIs, `/healthz`, and `/metrics` when configured there.
pub fn public(gw: Arc<Gateway>) -> Router {
    let mut r = Router::new()
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{*id}", get(openai::models))
        .route("/v1/messages", post(anthropic::messages))
        .route("/healthz", get(health::healthz));
    if gw.config.server.metrics == MetricsOn::Main {
        r = r.route("/metrics", get(health::metrics));
    }
    r.fallback(health::not_found)
        .method_not_allowed_fallback(health::method_not_allowed)
        .with_state(gw)
}

/// The admin router: `/admin/v1/...` behind the admin token, plus `/healthz`
/// and `/metrics` (when configured there) without it.
pub fn admin(gw: Arc<Gateway>) -> Router {
    let health = Router::new()
        .route("/healthz", get(health::healthz))
        .with_state(gw.clone());
    let mut r = admin::router(gw.clone()).merge(health);
    if gw.config.server.metrics == MetricsOn::Admin {
        r = r.route("/metrics", get(health::metrics));
    }
    r.fallback(health::not_found)
        .method_not_allowed_fallback(health::method_not_allowed)
}
