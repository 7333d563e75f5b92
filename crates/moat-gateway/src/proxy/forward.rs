//! The request pipeline for the proxied APIs:
//!
//! 1. API key present → authenticate (cached; revoked/expired/IP allowlist/disabled account)
//! 2. body read with a size cap → parsed once into a light view (model, stream, caps)
//! 3. key scopes: model allowed, logprobs allowed
//! 4. request inspection hook (detection), if installed, then the enforcement ladder
//!    ([`crate::enforce`]): throttle (429), challenge / block (403), or a degraded request
//! 5. per-account limits: reserve `prompt bytes / 4 + max_tokens`
//! 6. forward to the upstream (one pooled client), streaming or not; reasoning removed
//!    from the answer when the ladder (or `[enforce.reasoning]`) says so
//! 7. settle the reservation with the real usage; audit record via [`Exchange`]

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Instant,
};

use axum::{
    body::Body,
    http::{header, request::Parts, HeaderMap, HeaderValue, Method, Request, Version},
    response::Response,
};
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use futures::StreamExt;
use http_body_util::{BodyDataStream, BodyExt, LengthLimitError, Limited};
use moat_limits::Estimate;
use moat_store::AuthedKey;
use serde_json::Value;

use crate::api::Api;
use crate::client_addr::{api_key, client_ip};
use crate::enforce::{degrade, reasoning_strip};
use crate::error::GatewayError;
use crate::exchange::Exchange;
use crate::gateway::Gateway;
use crate::inspect::InspectRequest;
use crate::metrics;
use crate::proxy::answer::Answer;
use crate::proxy::models::models;
use crate::proxy::stream::relay;
use crate::proxy::usage::RequestView;
use crate::upstream::{UpstreamBody, UpstreamResponse};
use crate::watermark_json;
use moat_mark::Marker;

/// Largest upstream error body kept.
pub(crate) const MAX_ERROR_BODY: usize = 64 * 1024;
/// Largest non-streamed upstream response accepted.
pub(crate) const MAX_RESPONSE_BODY: usize = 256 * 1024 * 1024;

/// Handles one request to `api` end to end. Never panics on request data;
/// every outcome is answered in the caller's API format and audited.
pub async fn proxy(
    gw: Arc<Gateway>,
    api: Api,
    peer: SocketAddr,
    parts: Parts,
    body: Body,
) -> Response {
    let ip = client_ip(peer, &parts.headers, &gw.config.server.trusted_proxies);
    let ua = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut ex = Exchange::new(gw.clone(), api, Some(ip), ua);
    match pipeline(&gw, api, ip, &parts, body, &mut ex).await {
        Ok(Forward::Done(resp)) => resp,
        Ok(Forward::Stream {
            upstream,
            strip_usage,
            strip_reasoning,
            mark,
        }) => {
            let cap = gw.config.audit.response_prefix_bytes;
            let idle = gw.config.upstream.stream_idle_timeout;
            ex.streaming(upstream.status().as_u16());
            let mut passed = HeaderMap::new();
            copy_upstream_headers(upstream.headers(), &mut passed);
            let body = relay(
                BodyDataStream::new(upstream.into_body()).boxed(),
                ex,
                api,
                strip_usage,
                strip_reasoning,
                mark,
                cap,
                idle,
            );
            let mut resp = Response::new(Body::from_stream(body));
            let h = resp.headers_mut();
            h.extend(passed);
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
            resp
        }
        Err(e) => {
            if e.status().is_server_error() && !e.from_upstream() {
                tracing::warn!(api = api.name(), code = e.code(), error = %e, "request failed");
            }
            ex.fail(&e);
            ex.settle().await;
            let mut resp = e.to_response(api.flavor());
            if matches!(e, GatewayError::BodyTooLarge { .. }) && parts.version < Version::HTTP_2 {
                // The rest of the body was not read: this connection cannot be reused.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            resp
        }
    }
}

enum Forward {
    Done(Response),
    Stream {
        upstream: UpstreamResponse,
        strip_usage: bool,
        strip_reasoning: bool,
        /// The text watermark to apply, if any.
        mark: Option<Arc<Marker>>,
    },
}

async fn authenticate(
    gw: &Gateway,
    headers: &HeaderMap,
    ip: IpAddr,
) -> Result<AuthedKey, GatewayError> {
    let token = api_key(headers).ok_or(GatewayError::MissingKey)?;
    Ok(gw.auth.authenticate(token, Some(ip), Utc::now()).await?)
}

async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(GatewayError::BodyTooLarge { limit })
        }
        Err(e) => Err(GatewayError::InvalidRequest(format!(
            "could not read request body: {e}"
        ))),
    }
}

async fn pipeline(
    gw: &Arc<Gateway>,
    api: Api,
    ip: IpAddr,
    parts: &Parts,
    body: Body,
    ex: &mut Exchange,
) -> Result<Forward, GatewayError> {
    let authed = authenticate(gw, &parts.headers, ip).await?;
    ex.set_key(&authed);
    if api == Api::OpenAiModels {
        gw.enforcer.admit(gw, &authed, None).await?;
        return models(gw, &authed, ex, parts.uri.path())
            .await
            .map(Forward::Done);
    }

    let body = read_body(body, &parts.headers, gw.config.server.max_body_bytes).await?;
    ex.set_body(body.clone());
    let view = RequestView::parse(&body, api)?;
    let model = view.model.as_deref().unwrap_or_default();
    let stream = view.is_stream();
    ex.set_request(model, stream);
    // Detection sees every authenticated, parseable request, scope refusals included
    // (a key probing for logprobs it may not have is itself a signal).
    inspect(gw, &authed, api, ip, parts, model, &body, ex)?;
    let plan = gw.enforcer.admit(gw, &authed, ex.decision_mut()).await?;
    check_scopes(&authed, &view, model)?;
    let mark = watermark_plan(gw, &authed, &view, ex);
    let degrade = &gw.enforcer.config().degrade;
    let rewritten = if plan.degrade {
        degrade::rewrite(&body, api, degrade)?
    } else {
        None
    };
    let cap = rewritten.as_ref().and(degrade.max_tokens);
    reserve(gw, &authed, &view, body.len(), cap, ex).await?;

    // Ask an OpenAI upstream for the usage chunk if the client did not.
    let strip_usage = stream && api.openai_streaming() && !view.wants_stream_usage();
    let has_stream_options = view.stream_options.is_some();
    drop(view);
    let body = rewritten.unwrap_or(body);
    let upstream_body = if strip_usage {
        // A rewritten body no longer has the client's `stream_options` (it was re-serialised
        // from the parsed request, fields kept); splice or merge as for the original.
        with_stream_usage(&body, has_stream_options)
    } else {
        body.clone()
    };

    let deadline = tokio::time::Instant::now() + gw.config.upstream.timeout;
    let req = upstream_request(gw, api, parts, upstream_body, stream)?;
    let resp = send_checked(req, deadline, gw, api).await?;
    let is_sse = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    if stream && is_sse {
        return Ok(Forward::Stream {
            upstream: resp,
            strip_usage,
            strip_reasoning: plan.strip_reasoning,
            mark,
        });
    }
    answer_whole(gw, resp, deadline, plan.strip_reasoning, mark, ex)
        .await
        .map(Forward::Done)
}

/// Whether (and with which key) the answer is watermarked; recorded in the audit record's
/// decision (`decision.watermark`).
fn watermark_plan(
    gw: &Gateway,
    authed: &AuthedKey,
    view: &RequestView<'_>,
    ex: &mut Exchange,
) -> Option<Arc<Marker>> {
    let plan = gw
        .watermark
        .plan(&authed.account, view.wants_logprobs(), view.wants_json());
    let record = gw.watermark.audit_value(&plan);
    match ex.decision_mut() {
        Some(serde_json::Value::Object(d)) => {
            d.insert("watermark".into(), record);
        }
        Some(_) => {}
        None => ex.set_decision(serde_json::json!({ "watermark": record })),
    }
    plan.ok().cloned()
}

/// Key scopes: allowed models and logprobs.
fn check_scopes(
    authed: &AuthedKey,
    view: &RequestView<'_>,
    model: &str,
) -> Result<(), GatewayError> {
    if !authed.key.allows_model(model) {
        return Err(GatewayError::ModelNotAllowed(model.to_string()));
    }
    if view.wants_logprobs() && !authed.key.allow_logprobs {
        return Err(GatewayError::LogprobsNotAllowed);
    }
    Ok(())
}

/// The request inspection hook (detection), if one is installed.
#[allow(clippy::too_many_arguments)]
fn inspect(
    gw: &Gateway,
    authed: &AuthedKey,
    api: Api,
    ip: IpAddr,
    parts: &Parts,
    model: &str,
    body: &[u8],
    ex: &mut Exchange,
) -> Result<(), GatewayError> {
    let Some(inspector) = &gw.inspector else {
        return Ok(());
    };
    let verdict = inspector.inspect(&InspectRequest {
        ts: ex.ts(),
        account: &authed.account,
        key: &authed.key,
        ip: Some(ip),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
        api,
        model,
        body,
    });
    if let Some(d) = verdict.decision {
        ex.set_decision(d);
    }
    if let Some(f) = verdict.features {
        ex.set_features(f);
    }
    match verdict.block {
        Some(reason) => Err(GatewayError::Blocked(reason)),
        None => Ok(()),
    }
}

/// Reserves `prompt bytes / 4 + max_tokens` against the account's limits; the
/// reservation is held by the exchange until it settles.
async fn reserve(
    gw: &Gateway,
    authed: &AuthedKey,
    view: &RequestView<'_>,
    body_len: usize,
    cap: Option<u64>,
    ex: &mut Exchange,
) -> Result<(), GatewayError> {
    let limits = gw.limits_for(&authed.account);
    let mut max_out = view
        .max_output()
        .unwrap_or(gw.config.limits.default_max_tokens);
    if let Some(cap) = cap {
        max_out = max_out.min(cap);
    }
    let estimate = Estimate::from_request(body_len, max_out);
    let now_ms = Utc::now().timestamp_millis();
    match gw
        .limiter
        .reserve(&authed.account.id, &limits, estimate, now_ms)
        .await
    {
        Ok(r) => {
            ex.hold(r);
            Ok(())
        }
        Err(d) if d.exceeds_limit => Err(GatewayError::ExceedsLimit {
            limit: d.limit.as_str(),
            needed: estimate.tokens,
            limit_value: d.limit_value,
        }),
        Err(d) => Err(d.into()),
    }
}

/// The upstream request: the gateway's upstream credentials (never the
/// client's key) and the Anthropic version/beta headers.
fn upstream_request(
    gw: &Gateway,
    api: Api,
    parts: &Parts,
    body: Bytes,
    stream: bool,
) -> Result<Request<UpstreamBody>, GatewayError> {
    let u = &gw.upstream;
    let mut rb = u.request(Method::POST, u.uri(api).clone()).header(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if api == Api::AnthropicMessages {
        if let Some(k) = &u.x_api_key {
            rb = rb.header("x-api-key", k.clone());
        }
        let version = parts
            .headers
            .get("anthropic-version")
            .unwrap_or(&u.anthropic_version);
        rb = rb.header("anthropic-version", version.clone());
        if let Some(beta) = parts.headers.get("anthropic-beta") {
            rb = rb.header("anthropic-beta", beta.clone());
        }
    }
    let accept = if stream { "text/event-stream" } else { "*/*" };
    rb.header(header::ACCEPT, HeaderValue::from_static(accept))
        .body(UpstreamBody::new(body))
        .map_err(|e| GatewayError::Internal(format!("upstream request: {e}")))
}

/// A non-streamed answer: read whole, usage recorded, body passed on watermarked when `mark`
/// (then without its reasoning when `strip_reasoning`), otherwise unchanged.
async fn answer_whole(
    gw: &Gateway,
    resp: UpstreamResponse,
    deadline: tokio::time::Instant,
    strip_reasoning: bool,
    mark: Option<Arc<Marker>>,
    ex: &mut Exchange,
) -> Result<Response, GatewayError> {
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/json"));
    let mut passed = HeaderMap::new();
    copy_upstream_headers(resp.headers(), &mut passed);
    let bytes = gw
        .upstream
        .read_body(resp, deadline, MAX_RESPONSE_BODY, false)
        .await?;
    // One parse serves the audit record and the watermark.
    let answer = Answer::parse(ex.api(), &bytes);
    if let Some(a) = &answer {
        a.read_into(ex.outcome_mut(), gw.config.audit.response_prefix_bytes);
    }
    ex.completed(status.as_u16()).await;
    // Same order as the stream relay: mark, then strip (identical text either way).
    let marked = match (&mark, &answer) {
        (Some(m), Some(a)) => watermark_json::mark_answer(a, &bytes, m),
        _ => None,
    };
    drop(answer);
    let bytes = marked.unwrap_or(bytes);
    let bytes = if strip_reasoning {
        reasoning_strip::strip_whole(ex.api(), &bytes).unwrap_or(bytes)
    } else {
        bytes
    };
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = status;
    out.headers_mut().extend(passed);
    out.headers_mut().insert(header::CONTENT_TYPE, content_type);
    Ok(out)
}

/// Upstream response headers passed on to the client (request ids for support).
const PASSED_HEADERS: [&str; 2] = ["x-request-id", "request-id"];

fn copy_upstream_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for name in PASSED_HEADERS {
        if let Some(v) = from.get(name) {
            to.insert(name, v.clone());
        }
    }
}

/// Sends an upstream request, records its latency, and turns a non-2xx answer into
/// [`GatewayError::Upstream`] (status and a bounded prefix of the body passed through).
pub(crate) async fn send_checked(
    req: Request<UpstreamBody>,
    deadline: tokio::time::Instant,
    gw: &Gateway,
    api: Api,
) -> Result<UpstreamResponse, GatewayError> {
    let started = Instant::now();
    let resp = gw.upstream.send(req, deadline).await?;
    metrics::upstream(api, started.elapsed());
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = gw
        .upstream
        .read_body(resp, deadline, MAX_ERROR_BODY, true)
        .await
        .unwrap_or_default();
    Err(GatewayError::Upstream {
        status: status.as_u16(),
        body,
    })
}

/// The body with `stream_options.include_usage = true`. When the body has no
/// `stream_options` the field is spliced in without re-serialising.
pub fn with_stream_usage(body: &Bytes, has_stream_options: bool) -> Bytes {
    if !has_stream_options {
        if let Some(i) = body.iter().position(|&b| b == b'{') {
            let rest = &body[i + 1..];
            let empty = rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
            let field: &[u8] = if empty {
                br#""stream_options":{"include_usage":true}"#
            } else {
                br#""stream_options":{"include_usage":true},"#
            };
            let mut out = BytesMut::with_capacity(body.len() + field.len());
            out.extend_from_slice(&body[..=i]);
            out.extend_from_slice(field);
            out.extend_from_slice(rest);
            return out.freeze();
        }
        return body.clone();
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(mut v) => {
            if let Some(obj) = v.as_object_mut() {
                let so = obj
                    .entry("stream_options")
                    .or_insert_with(|| Value::Object(Default::default()));
                if !so.is_object() {
                    *so = Value::Object(Default::default());
                }
                if let Some(so) = so.as_object_mut() {
                    so.insert("include_usage".into(), Value::Bool(true));
                }
            }
            serde_json::to_vec(&v)
                .map(Bytes::from)
                .unwrap_or_else(|_| body.clone())
        }
        Err(_) => body.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn parse(b: &Bytes) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn splices_stream_options() {
        let b = Bytes::from_static(br#" {"model":"m","stream":true}"#);
        let out = with_stream_usage(&b, false);
        let v = parse(&out);
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["model"], "m");
        let out = with_stream_usage(&Bytes::from_static(b"{ }"), false);
        assert_eq!(parse(&out)["stream_options"]["include_usage"], true);
    }

    #[tokio::test]
    async fn body_limit_is_enforced() {
        let mut h = HeaderMap::new();
        let ok = read_body(Body::from(vec![b'a'; 10]), &h, 10).await.unwrap();
        assert_eq!(ok.len(), 10);
        let e = read_body(Body::from(vec![b'a'; 11]), &h, 10)
            .await
            .unwrap_err();
        assert!(matches!(e, GatewayError::BodyTooLarge { limit: 10 }));
        // A declared Content-Length over the cap is refused before reading.
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("1000000"));
        let e = read_body(Body::empty(), &h, 10).await.unwrap_err();
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        // Streamed bodies without a length are cut at the cap.
        let chunks = futures::stream::iter(
            (0..3).map(|_| Ok::<_, std::io::Error>(Bytes::from_static(b"123456"))),
        );
        let e = read_body(Body::from_stream(chunks), &HeaderMap::new(), 10)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "body_too_large");
    }

    #[test]
    fn rewrites_existing_stream_options() {
        let b = Bytes::from_static(
            br#"{"model":"m","stream":true,"stream_options":{"include_usage":false,"x":1}}"#,
        );
        let v = parse(&with_stream_usage(&b, true));
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stream_options"]["x"], 1);
    }
}
