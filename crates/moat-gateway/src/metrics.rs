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

use metrics::{Counter, Histogram};
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

/// The `status` label values: common codes exactly, the rest by class.
const STATUS_LABELS: [&str; 17] = [
    "200", "400", "401", "403", "404", "405", "413", "429", "499", "500", "502", "503", "504",
    "2xx", "3xx", "4xx", "5xx",
];

fn status_index(status: u16) -> usize {
    match status {
        200 => 0,
        400 => 1,
        401 => 2,
        403 => 3,
        404 => 4,
        405 => 5,
        413 => 6,
        429 => 7,
        499 => 8,
        500 => 9,
        502 => 10,
        503 => 11,
        504 => 12,
        s if s < 300 => 13,
        s if s < 400 => 14,
        s if s < 500 => 15,
        _ => 16,
    }
}

/// The per-request series of one API, each resolved on first use. Recording through a kept
/// handle is one atomic update; through the macros it is a registry lookup (labels built and
/// hashed) per series per request.
struct Series {
    requests: [OnceLock<Counter>; STATUS_LABELS.len()],
    duration: OnceLock<Histogram>,
    upstream: OnceLock<Histogram>,
    tokens_in: OnceLock<Counter>,
    tokens_out: OnceLock<Counter>,
}

impl Series {
    const fn new() -> Self {
        Series {
            requests: [const { OnceLock::new() }; STATUS_LABELS.len()],
            duration: OnceLock::new(),
            upstream: OnceLock::new(),
            tokens_in: OnceLock::new(),
            tokens_out: OnceLock::new(),
        }
    }
}

static SERIES: [Series; 4] = [const { Series::new() }; 4];

/// `api`'s series once the recorder is in place (a handle taken before would stay a no-op);
/// `None` before, when the macros are used instead.
fn series(api: Api) -> Option<&'static Series> {
    HANDLE.get()?;
    Some(
        &SERIES[match api {
            Api::OpenAiChat => 0,
            Api::OpenAiCompletions => 1,
            Api::OpenAiModels => 2,
            Api::AnthropicMessages => 3,
        }],
    )
}

fn requests_total(api: Api, status: u16) -> Counter {
    let status = STATUS_LABELS[status_index(status)];
    metrics::counter!("moat_requests_total", "api" => api.name(), "status" => status)
}

fn tokens_total(api: Api, direction: &'static str) -> Counter {
    metrics::counter!("moat_tokens_total", "api" => api.name(), "direction" => direction)
}

fn request_duration(api: Api) -> Histogram {
    metrics::histogram!("moat_request_duration_seconds", "api" => api.name())
}

fn upstream_duration(api: Api) -> Histogram {
    metrics::histogram!("moat_upstream_duration_seconds", "api" => api.name())
}

/// Records through `slot`'s kept handle, or through a fresh lookup (`slot` is `None`: the
/// recorder is not in place yet).
fn with<T>(slot: Option<&OnceLock<T>>, make: impl FnOnce() -> T, record: impl FnOnce(&T)) {
    match slot {
        Some(slot) => record(slot.get_or_init(make)),
        None => record(&make()),
    }
}

/// Records a finished exchange.
pub fn request(api: Api, status: u16, latency: Duration, input: u64, output: u64) {
    let s = series(api);
    with(
        s.map(|s| &s.requests[status_index(status)]),
        || requests_total(api, status),
        |c| c.increment(1),
    );
    with(
        s.map(|s| &s.duration),
        || request_duration(api),
        |h| h.record(latency.as_secs_f64()),
    );
    if input > 0 {
        with(
            s.map(|s| &s.tokens_in),
            || tokens_total(api, "input"),
            |c| c.increment(input),
        );
    }
    if output > 0 {
        with(
            s.map(|s| &s.tokens_out),
            || tokens_total(api, "output"),
            |c| c.increment(output),
        );
    }
}

/// Records the upstream's time to response headers.
pub fn upstream(api: Api, elapsed: Duration) {
    with(
        series(api).map(|s| &s.upstream),
        || upstream_duration(api),
        |h| h.record(elapsed.as_secs_f64()),
    );
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
