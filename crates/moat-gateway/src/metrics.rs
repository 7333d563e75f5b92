//! Prometheus metrics.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `moat_requests_total` | counter | `api`, `status` |
//! | `moat_request_duration_seconds` | histogram | `api` |
//! | `moat_upstream_duration_seconds` | histogram (time to response headers) | `api` |
//! | `moat_tokens_total` | counter | `api`, `direction` (`input`/`output`) |
//! | `moat_rejections_total` | counter | `reason` (the error code) |
//! | `moat_audit_*` | see moat-store | |

use std::{sync::OnceLock, time::Duration};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::api::Api;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0,
];

/// Installs the Prometheus recorder (once per process) and returns its handle.
/// `None` if another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        "moat_requests_total",
        "Requests answered, by API and HTTP status"
    );
    metrics::describe_histogram!(
        "moat_request_duration_seconds",
        "Time from arrival to the end of the response"
    );
    metrics::describe_histogram!(
        "moat_upstream_duration_seconds",
        "Time until the upstream's response headers"
    );
    metrics::describe_counter!(
        "moat_tokens_total",
        "Tokens, by API and direction (input/output)"
    );
    metrics::describe_counter!(
        "moat_rejections_total",
        "Requests refused by the gateway, by reason"
    );
}

/// Renders the metrics in the Prometheus text format.
pub fn render() -> String {
    match HANDLE.get() {
        Some(Some(h)) => {
            h.run_upkeep();
            h.render()
        }
        _ => String::new(),
    }
}

fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        413 => "413",
        429 => "429",
        499 => "499",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

/// Records a finished exchange.
pub fn request(api: Api, status: u16, latency: Duration, input: u64, output: u64) {
    let name = api.name();
    metrics::counter!("moat_requests_total", "api" => name, "status" => status_label(status))
        .increment(1);
    metrics::histogram!("moat_request_duration_seconds", "api" => name)
        .record(latency.as_secs_f64());
    if input > 0 {
        metrics::counter!("moat_tokens_total", "api" => name, "direction" => "input")
            .increment(input);
    }
    if output > 0 {
        metrics::counter!("moat_tokens_total", "api" => name, "direction" => "output")
            .increment(output);
    }
}

/// Records the upstream's time to response headers.
pub fn upstream(api: Api, elapsed: Duration) {
    metrics::histogram!("moat_upstream_duration_seconds", "api" => api.name())
        .record(elapsed.as_secs_f64());
}

/// Records a request refused by the gateway.
pub fn rejection(reason: &'static str) {
    metrics::counter!("moat_rejections_total", "reason" => reason).increment(1);
}

/// Serves `GET /metrics` and `GET /healthz` on `addr` from a task of its own, for processes
/// that are not gateways (`moat detect`). Installs the recorder.
pub async fn serve_metrics(addr: std::net::SocketAddr) -> anyhow::Result<std::net::SocketAddr> {
    use axum::{routing::get, Router};
    install();
    let app = Router::new()
        .route("/metrics", get(|| async { render() }))
        .route("/healthz", get(|| async { r#"{"status":"ok"}"# }));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics listener failed");
        }
    });
    Ok(bound)
}
