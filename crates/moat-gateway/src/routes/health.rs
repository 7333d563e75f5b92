//! `/healthz`, `/metrics` and the fallbacks for unknown routes.

use axum::{
    http::{header, HeaderValue, StatusCode, Uri},
    response::{IntoResponse, Response},
};

use crate::error::{Flavor, GatewayError};

/// `GET /healthz`: the process is up and serving.
pub async fn healthz() -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        r#"{"status":"ok"}"#,
    )
        .into_response()
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
