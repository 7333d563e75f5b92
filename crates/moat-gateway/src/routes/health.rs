//! `/healthz`, `/metrics` and the fallbacks for unknown routes.

use std::sync::Arc;

use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode, Uri},
    response::{IntoResponse, Response},
};

use crate::error::{Flavor, GatewayError};
use crate::gateway::Gateway;

/// `GET /healthz`: `{"status":"ok"}` when every dependency answers; `{"status":"degraded",
/// "checks":{...}}` (still HTTP 200: the replica serves, as configured per dependency) when
/// the store, the Redis limiter or the bus is failing. A single process without `[bus]` or
/// Redis only reports its audit writer.
pub async fn healthz(State(gw): State<Arc<Gateway>>) -> Response {
    let report = health_report(&gw);
    let status = StatusCode::OK;
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        report.to_string(),
    )
        .into_response()
}

/// The `/healthz` document: overall status and one entry per dependency.
pub fn health_report(gw: &Gateway) -> serde_json::Value {
    let mut degraded: Vec<&str> = Vec::new();
    let a = gw.audit.stats();
    let h = gw.audit.health();
    if !h.store_ok {
        degraded.push("store");
    }
    let audit_ok =
        h.dropped == 0 && h.spooled_pending == 0 && h.queued < 10 * gw.config.audit.queue as u64;
    if !audit_ok {
        degraded.push("audit");
    }
    let limiter = match &gw.redis_limiter {
        Some(r) => {
            let ok = r.is_healthy();
            if !ok {
                degraded.push("limiter");
            }
            serde_json::json!({"backend": "redis", "ok": ok, "errors": r.error_count(),
                               "on_error": format!("{:?}", r.fail_mode()).to_lowercase()})
        }
        None => serde_json::json!({"backend": "memory", "ok": true}),
    };
    let bus = gw.scale_out.as_ref().map(|so| {
        let h = so.health();
        let ok = h.connected && !h.failing;
        if !ok {
            degraded.push("bus");
        }
        serde_json::json!({"ok": ok, "replica": so.replica(), "publisher": h,
                           "verdicts_applied": so.verdicts_applied(),
            "last_verdict": so.last_verdict()})
    });
    let mut checks = serde_json::json!({
        "store": {"ok": h.store_ok, "backend": gw.store.backend_name(),
                  "stale_keys_served": gw.auth.stale_served()},
        "audit": {"ok": audit_ok, "queued": a.queued, "written": a.written,
                  "write_errors": a.write_errors, "lost": a.lost, "spool": h.spool_enabled,
                  "spooled_pending": h.spooled_pending},
        "limiter": limiter,
    });
    if let Some(b) = bus {
        checks["bus"] = b;
    }
    serde_json::json!({
        "status": if degraded.is_empty() { "ok" } else { "degraded" },
        "degraded": degraded,
        "checks": checks,
    })
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics() -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        crate::metrics::render(),
    )
        .into_response()
}

fn flavor_for(uri: &Uri) -> Flavor {
    if uri.path().starts_with("/v1/messages") {
        Flavor::Anthropic
    } else {
        Flavor::OpenAi
    }
}

/// Unknown path: 404 in the API's error format.
pub async fn not_found(uri: Uri) -> Response {
    GatewayError::NotFound(uri.path().chars().take(200).collect()).to_response(flavor_for(&uri))
}

/// Known path, wrong method: 405 in the API's error format.
pub async fn method_not_allowed(uri: Uri) -> Response {
    GatewayError::MethodNotAllowed.to_response(flavor_for(&uri))
}
