//! The gateway's single error type. Each variant knows its HTTP status, its
//! stable code, and how to render itself in the caller's API format.
//!
//! * OpenAI: `{"error":{"message","type","code","param"}}`
//! * Anthropic: `{"type":"error","error":{"type","message","code"}}`
//!
//! Errors made by the gateway carry the header `x-moat-error-source: gateway`;
//! errors returned by the upstream model server are passed through with their
//! status, type `upstream_error`, and `x-moat-error-source: upstream`.

use std::time::Duration;

use axum::{
    body::Body,
    http::{header, HeaderValue, StatusCode},
    response::Response,
};
use bytes::Bytes;
use serde_json::{json, Value};

/// Which API format a caller speaks, and so which error shape it expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// OpenAI-compatible.
    OpenAi,
    /// Anthropic-compatible.
    Anthropic,
}

/// Header naming who produced an error response: `gateway` or `upstream`.
pub const ERROR_SOURCE_HEADER: &str = "x-moat-error-source";

/// Everything the gateway can answer with instead of the upstream's response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// Body is not valid JSON, or not an object.
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// Valid JSON, but not an acceptable request.
    #[error("{0}")]
    InvalidRequest(String),
    /// Body larger than `server.max_body_bytes`.
    #[error("request body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// No `Authorization: Bearer` or `x-api-key` header.
    #[error("missing API key: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'")]
    MissingKey,
    /// Malformed token, unknown key id or wrong secret.
    #[error("invalid API key")]
    InvalidKey,
    /// The key was revoked.
    #[error("this API key has been revoked")]
    KeyRevoked,
    /// The key is past its expiry (or its rotation grace period).
    #[error("this API key has expired")]
    KeyExpired,
    /// The key's account is disabled.
    #[error("the account of this API key is disabled")]
    AccountDisabled,
    /// The client address is outside the key's allowlist.
    #[error("requests from this address are not allowed for this API key")]
    IpNotAllowed,
    /// The key may not use this model.
    #[error("this API key may not use model {0:?}")]
    ModelNotAllowed(String),
    /// The key may not request log-probabilities.
    #[error("this API key may not request logprobs")]
    LogprobsNotAllowed,
    /// A per-account limit refused the request.
    #[error("rate limit exceeded ({limit}); retry after {retry_after_secs} s")]
    RateLimited {
        /// Which limit (`requests_per_minute`, `tokens_per_minute`, `tokens_per_day`).
        limit: &'static str,
        /// Seconds until the request would be admitted.
        retry_after_secs: u64,
    },
    /// The request alone is larger than a limit: waiting never helps.
    #[error("request needs more tokens than the account's {limit} limit allows ({needed} > {limit_value}); lower max_tokens or the prompt")]
    ExceedsLimit {
        /// Which limit.
        limit: &'static str,
        /// Tokens the request was estimated at.
        needed: u64,
        /// The limit's value.
        limit_value: u64,
    },
    /// The request was refused by the detection engine.
    #[error("request refused by policy")]
    Blocked(String),
    /// The account must be verified by an operator before it may continue (enforcement
    /// `challenge`).
    #[error("this account must be verified before it can use the API again; contact the operator of this service")]
    VerificationRequired,
    /// The account and its keys are blocked until an operator lifts it (enforcement `block`).
    #[error("this account has been blocked; contact the operator of this service")]
    AccountBlocked,
    /// A degraded account may not use this request feature.
    #[error("{0} is not available to this account at the moment")]
    FeatureRestricted(&'static str),
    /// Nothing at this path.
    #[error("no route for {0}")]
    NotFound(String),
    /// Wrong method for this path.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The upstream could not be reached (connect/TLS/reset).
    #[error("upstream unreachable: {0}")]
    UpstreamUnreachable(String),
    /// The upstream did not answer in time.
    #[error("upstream timed out after {0:?}")]
    UpstreamTimeout(Duration),
    /// The upstream answered something the gateway cannot use.
    #[error("bad response from upstream: {0}")]
    UpstreamBadResponse(String),
    /// The upstream answered with an error status; passed through.
    #[error("upstream returned HTTP {status}")]
    Upstream {
        /// The upstream's status.
        status: u16,
        /// The upstream's body (may be empty / non-JSON).
        body: Bytes,
    },
    /// Key store or another dependency failed.
    #[error("service temporarily unavailable")]
    Unavailable(String),
    /// The shared rate limiter (Redis) cannot be reached and `[limits] on_error = "closed"`.
    #[error("rate limiter temporarily unavailable; retry in {retry_after_secs} s")]
    LimiterUnavailable {
        /// Seconds for the `Retry-After` header.
        retry_after_secs: u64,
    },
    /// A bug or unexpected state.
    #[error("internal error")]
    Internal(String),
}

impl GatewayError {
    /// HTTP status of the error response.
    pub fn status(&self) -> StatusCode {
        use GatewayError::*;
        match self {
            InvalidJson(_) | InvalidRequest(_) | ExceedsLimit { .. } => StatusCode::BAD_REQUEST,
            BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            MissingKey | InvalidKey | KeyRevoked | KeyExpired => StatusCode::UNAUTHORIZED,
            AccountDisabled | IpNotAllowed | ModelNotAllowed(_) | LogprobsNotAllowed
            | Blocked(_) | VerificationRequired | AccountBlocked | FeatureRestricted(_) => {
                StatusCode::FORBIDDEN
            }
            RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            NotFound(_) => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            UpstreamUnreachable(_) | UpstreamBadResponse(_) => StatusCode::BAD_GATEWAY,
            UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Upstream { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            Unavailable(_) | LimiterUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code (OpenAI `error.code`, Anthropic `error.code`),
    /// also used as the metrics `reason` label and the audit `error` field.
    pub fn code(&self) -> &'static str {
        use GatewayError::*;
        match self {
            InvalidJson(_) => "invalid_json",
            InvalidRequest(_) => "invalid_request",
            BodyTooLarge { .. } => "body_too_large",
            MissingKey => "missing_api_key",
            InvalidKey => "invalid_api_key",
            KeyRevoked => "key_revoked",
            KeyExpired => "key_expired",
            AccountDisabled => "account_disabled",
            IpNotAllowed => "ip_not_allowed",
            ModelNotAllowed(_) => "model_not_allowed",
            LogprobsNotAllowed => "logprobs_not_allowed",
            RateLimited { .. } => "rate_limit_exceeded",
            ExceedsLimit { .. } => "request_exceeds_limit",
            Blocked(_) => "request_blocked",
            VerificationRequired => "account_verification_required",
            AccountBlocked => "account_blocked",
            FeatureRestricted(_) => "feature_restricted",
            NotFound(_) => "not_found",
            MethodNotAllowed => "method_not_allowed",
            UpstreamUnreachable(_) => "upstream_unreachable",
            UpstreamTimeout(_) => "upstream_timeout",
            UpstreamBadResponse(_) => "upstream_bad_response",
            Upstream { .. } => "upstream_error",
            Unavailable(_) => "service_unavailable",
            LimiterUnavailable { .. } => "limiter_unavailable",
            Internal(_) => "internal_error",
        }
    }

    /// Whether the upstream produced this error (as opposed to the gateway).
    pub fn from_upstream(&self) -> bool {
        matches!(self, GatewayError::Upstream { .. })
    }

    /// OpenAI `error.type`.
    fn openai_type(&self) -> &'static str {
        use GatewayError::*;
        match self {
            InvalidJson(_)
            | InvalidRequest(_)
            | BodyTooLarge { .. }
            | ExceedsLimit { .. }
            | NotFound(_)
            | MethodNotAllowed => "invalid_request_error",
            MissingKey | InvalidKey | KeyRevoked | KeyExpired => "authentication_error",
            AccountDisabled | IpNotAllowed | ModelNotAllowed(_) | LogprobsNotAllowed
            | Blocked(_) | VerificationRequired | AccountBlocked | FeatureRestricted(_) => {
                "permission_error"
            }
            RateLimited { .. } => "rate_limit_error",
            Upstream { .. } => "upstream_error",
            UpstreamUnreachable(_)
            | UpstreamTimeout(_)
            | UpstreamBadResponse(_)
            | Unavailable(_)
            | LimiterUnavailable { .. }
            | Internal(_) => "api_error",
        }
    }

    /// Anthropic `error.type` (one of Anthropic's documented types where one fits).
    fn anthropic_type(&self) -> &'static str {
        use GatewayError::*;
        match self {
            InvalidJson(_) | InvalidRequest(_) | ExceedsLimit { .. } | MethodNotAllowed => {
                "invalid_request_error"
            }
            BodyTooLarge { .. } => "request_too_large",
            MissingKey | InvalidKey | KeyRevoked | KeyExpired => "authentication_error",
            AccountDisabled | IpNotAllowed | ModelNotAllowed(_) | LogprobsNotAllowed
            | Blocked(_) | VerificationRequired | AccountBlocked | FeatureRestricted(_) => {
                "permission_error"
            }
            NotFound(_) => "not_found_error",
            RateLimited { .. } => "rate_limit_error",
            Upstream { .. } => "upstream_error",
            Unavailable(_) | LimiterUnavailable { .. } => "overloaded_error",
            UpstreamUnreachable(_) | UpstreamTimeout(_) | UpstreamBadResponse(_) | Internal(_) => {
                "api_error"
            }
        }
    }

    /// The message shown to the client. Internal details are not exposed.
    fn client_message(&self) -> String {
        match self {
            GatewayError::Upstream { body, status } => {
                upstream_message(body).unwrap_or_else(|| format!("upstream returned HTTP {status}"))
            }
            GatewayError::Blocked(reason) if !reason.is_empty() => {
                format!("request refused by policy: {reason}")
            }
            GatewayError::UpstreamUnreachable(_) => "upstream unreachable".to_string(),
            GatewayError::UpstreamBadResponse(_) => "bad response from upstream".to_string(),
            other => other.to_string(),
        }
    }

    /// The error body in `flavor`'s format.
    pub fn body(&self, flavor: Flavor) -> Value {
        let message = self.client_message();
        let mut body = match flavor {
            Flavor::OpenAi => json!({"error": {
                "message": message, "type": self.openai_type(), "code": self.code(), "param": null,
            }}),
            Flavor::Anthropic => json!({"type": "error", "error": {
                "type": self.anthropic_type(), "message": message, "code": self.code(),
            }}),
        };
        if let GatewayError::Upstream { status, body: raw } = self {
            let inner = match flavor {
                Flavor::OpenAi => &mut body["error"],
                Flavor::Anthropic => &mut body["error"],
            };
            inner["upstream_status"] = json!(status);
            if let Ok(v) = serde_json::from_slice::<Value>(raw) {
                inner["upstream"] = v;
            }
        }
        body
    }

    /// The complete HTTP response in `flavor`'s format.
    pub fn to_response(&self, flavor: Flavor) -> Response {
        let body = serde_json::to_vec(&self.body(flavor)).unwrap_or_default();
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(
            ERROR_SOURCE_HEADER,
            HeaderValue::from_static(if self.from_upstream() {
                "upstream"
            } else {
                "gateway"
            }),
        );
        match self {
            GatewayError::RateLimited {
                retry_after_secs, ..
            }
            | GatewayError::LimiterUnavailable { retry_after_secs } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            GatewayError::MissingKey
            | GatewayError::InvalidKey
            | GatewayError::KeyRevoked
            | GatewayError::KeyExpired => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        resp
    }
}

/// The `message` of an upstream error body in either API's shape.
fn upstream_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let m = v
        .pointer("/error/message")
        .or_else(|| v.get("message"))
        .or_else(|| v.get("detail"))
        .or_else(|| v.get("error"))?;
    Some(match m {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

impl From<moat_store::AuthError> for GatewayError {
    fn from(e: moat_store::AuthError) -> Self {
        use moat_store::AuthError as A;
        match e {
            A::Malformed | A::Unknown => GatewayError::InvalidKey,
            A::Revoked => GatewayError::KeyRevoked,
            A::Expired => GatewayError::KeyExpired,
            A::IpNotAllowed => GatewayError::IpNotAllowed,
            A::AccountDisabled => GatewayError::AccountDisabled,
            A::Store(e) => GatewayError::Unavailable(e.to_string()),
        }
    }
}

impl From<moat_limits::Denied> for GatewayError {
    fn from(d: moat_limits::Denied) -> Self {
        if d.is_unavailable() {
            // A fail-closed limiter backend that cannot be reached: our fault, not the caller's.
            GatewayError::LimiterUnavailable {
                retry_after_secs: d.retry_after_secs().max(1),
            }
        } else if d.exceeds_limit {
            GatewayError::ExceedsLimit {
                limit: d.limit.as_str(),
                needed: 0,
                limit_value: d.limit_value,
            }
        } else {
            GatewayError::RateLimited {
                limit: d.limit.as_str(),
                retry_after_secs: d.retry_after_secs().max(1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_shape() {
        let b = GatewayError::KeyRevoked.body(Flavor::OpenAi);
        assert_eq!(b["error"]["code"], "key_revoked");
        assert_eq!(b["error"]["type"], "authentication_error");
        assert!(b["error"]["message"].is_string());
        assert!(b.get("type").is_none());
    }

    #[test]
    fn anthropic_shape() {
        let b = GatewayError::BodyTooLarge { limit: 10 }.body(Flavor::Anthropic);
        assert_eq!(b["type"], "error");
        assert_eq!(b["error"]["type"], "request_too_large");
        assert_eq!(b["error"]["code"], "body_too_large");
    }

    #[test]
    fn statuses() {
        use GatewayError::*;
        let cases: Vec<(GatewayError, u16)> = vec![
            (InvalidJson("x".into()), 400),
            (BodyTooLarge { limit: 1 }, 413),
            (MissingKey, 401),
            (InvalidKey, 401),
            (KeyRevoked, 401),
            (KeyExpired, 401),
            (IpNotAllowed, 403),
            (ModelNotAllowed("m".into()), 403),
            (LogprobsNotAllowed, 403),
            (
                RateLimited {
                    limit: "requests_per_minute",
                    retry_after_secs: 3,
                },
                429,
            ),
            (UpstreamUnreachable("x".into()), 502),
            (UpstreamTimeout(Duration::from_secs(1)), 504),
            (
                Upstream {
                    status: 418,
                    body: Bytes::new(),
                },
                418,
            ),
        ];
        for (e, s) in cases {
            assert_eq!(e.status().as_u16(), s, "{e:?}");
        }
    }

    #[test]
    fn rate_limit_sets_retry_after() {
        let r = GatewayError::RateLimited {
            limit: "tokens_per_minute",
            retry_after_secs: 7,
        }
        .to_response(Flavor::OpenAi);
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
        assert_eq!(r.headers()[ERROR_SOURCE_HEADER], "gateway");
    }

    #[test]
    fn upstream_errors_are_marked_and_keep_message() {
        let raw = Bytes::from_static(
            br#"{"error":{"message":"model overloaded","type":"server_error"}}"#,
        );
        let e = GatewayError::Upstream {
            status: 503,
            body: raw,
        };
        let b = e.body(Flavor::OpenAi);
        assert_eq!(b["error"]["type"], "upstream_error");
        assert_eq!(b["error"]["message"], "model overloaded");
        assert_eq!(b["error"]["upstream_status"], 503);
        assert_eq!(b["error"]["upstream"]["error"]["type"], "server_error");
        let r = e.to_response(Flavor::Anthropic);
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[ERROR_SOURCE_HEADER], "upstream");
        let e = GatewayError::Upstream {
            status: 500,
            body: Bytes::from_static(b"<html>"),
        };
        assert_eq!(
            e.body(Flavor::Anthropic)["error"]["message"],
            "upstream returned HTTP 500"
        );
    }

    #[test]
    fn internal_details_are_hidden() {
        let b = GatewayError::UpstreamUnreachable("connect 10.0.0.1:443 refused".into())
            .body(Flavor::OpenAi);
        assert_eq!(b["error"]["message"], "upstream unreachable");
    }
}
