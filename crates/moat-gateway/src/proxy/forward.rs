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
use http_body_util::{BodyDataStream, BodyExt};
use moat_limits::Estimate;
use moat_store::AuthedKey;
use serde_json::Value;

use crate::api::Api;
use crate::client_addr::{api_key, client_ip};
use crate::config::StoreOnError;
use crate::enforce::{degrade, reasoning_strip};
use crate::error::GatewayError;
use crate::exchange::Exchange;
use crate::gateway::Gateway;
use crate::inspect::InspectRequest;
use crate::metrics;
use crate::proxy::answer::Answer;
use crate::proxy::models::models;
use crate::proxy::stream::relay;
use crate::proxy::strict;
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
    let mut unread = None;
    match pipeline(&gw, api, ip, &parts, body, &mut unread, &mut ex).await {
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
                // The rest of the body was not read: this connection cannot be reused. It is
                // read and discarded after the answer, so that a client still sending gets to
                // read its 413 instead of a reset connection; not when the client waits for
                // `100 Continue` (it sends nothing more, and reading would invite it to).
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                let expects = parts
                    .headers
                    .get(header::EXPECT)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
                if let (Some(rest), false) = (unread.take(), expects) {
                    drain(rest);
                }
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

/// Reads the request body, at most `limit` bytes. Over the limit (declared in
/// `Content-Length`, or counted while reading a chunked body) it is `BodyTooLarge`, and the
/// unread rest of the body is left in `unread` for [`drain`].
async fn read_body(
    mut body: Body,
    headers: &HeaderMap,
    limit: usize,
    unread: &mut Option<Body>,
) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        *unread = Some(body);
        return Err(GatewayError::BodyTooLarge { limit });
    }
    // One chunk (the usual case) is kept as it is; more are gathered into one buffer.
    let mut first: Option<Bytes> = None;
    let mut more = BytesMut::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            GatewayError::InvalidRequest(format!("could not read request body: {e}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        len += data.len();
        if len > limit {
            *unread = Some(body);
            return Err(GatewayError::BodyTooLarge { limit });
        }
        if first.is_none() && more.is_empty() {
            first = Some(data);
        } else {
            if let Some(f) = first.take() {
                more.reserve(declared.map_or(0, |n| n as usize).max(len));
                more.extend_from_slice(&f);
            }
            more.extend_from_slice(&data);
        }
    }
    Ok(match first {
        Some(f) => f,
        None => more.freeze(),
    })
}

/// Longest time the rest of a refused body is read (and discarded) after its 413.
const DRAIN_FOR: std::time::Duration = std::time::Duration::from_secs(30);
/// Longest silence while draining.
const DRAIN_IDLE: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and discards the rest of a body refused with 413 (nginx's "lingering close"): an
/// HTTP/1.1 client that is still sending would otherwise have its connection reset before it
/// reads the answer. The response is sent at once; the connection is closed (the answer
/// says `Connection: close`) when the client has sent everything, goes quiet for
/// [`DRAIN_IDLE`], or after [`DRAIN_FOR`].
fn drain(body: Body) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let until = tokio::time::Instant::now() + DRAIN_FOR;
        let mut body = body;
        loop {
            let wait = (tokio::time::Instant::now() + DRAIN_IDLE).min(until);
            match tokio::time::timeout_at(wait, body.frame()).await {
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
        }
    });
}

async fn pipeline(
    gw: &Arc<Gateway>,
    api: Api,
    ip: IpAddr,
    parts: &Parts,
    body: Body,
    unread: &mut Option<Body>,
    ex: &mut Exchange,
) -> Result<Forward, GatewayError> {
    let authed = authenticate(gw, &parts.headers, ip).await?;
    ex.set_key(&authed);
    // `[store] on_error = "fail_closed"`: nothing is served while the audit log cannot be
    // written (a full or read-only disk, a database that refuses writes). The refusal itself
    // is recorded (spooled, or retried in memory), and serving resumes once a write succeeds.
    if gw.config.store.on_error == StoreOnError::FailClosed && !gw.audit.health().store_ok {
        return Err(GatewayError::Unavailable(
            "the audit log cannot be written (store.on_error = fail_closed)".into(),
        ));
    }
    if api == Api::OpenAiModels {
        gw.enforcer.admit(gw, &authed, None).await?;
        return models(gw, &authed, ex, parts.uri.path())
            .await
            .map(Forward::Done);
    }

    let body = read_body(
        body,
        &parts.headers,
        gw.config.server.max_body_bytes,
        unread,
    )
    .await?;
    ex.set_body(body.clone());
    let view = RequestView::parse(&body, api)?;
    let model = view.model.as_deref().unwrap_or_default();
    let stream = view.is_stream();
    ex.set_request(model, stream);
    // The fields detection reads, parsed once (for the inspector) and type-checked: a body
    // the engine could not read is refused, not scored as an empty request.
    let detect_view = match gw.inspector {
        Some(_) => Some(strict::detection_view(&body)?),
        None => None,
    };
    // Detection sees every authenticated, parseable request, scope refusals included
    // (a key probing for logprobs it may not have is itself a signal).
    inspect(
        gw,
        &authed,
        api,
        ip,
        parts,
        model,
        &body,
        detect_view.as_ref(),
        ex,
    )?;
    drop(detect_view);
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
    view: Option<&moat_detect::RequestView<'_>>,
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
        view,
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
    // One parse serves the validation, the audit record and the watermark. A success that is
    // not an answer of the API's shape (not JSON, an HTML page, a truncated body) is the
    // upstream's failure: 502, never relayed as if it were an answer.
    // (`send_checked` turned every other status into an error already.)
    let Some(answer) = Answer::parse(ex.api(), &bytes) else {
        return Err(GatewayError::UpstreamBadResponse(format!(
            "HTTP {} answer is not a {} JSON answer ({} bytes, content-type {:?})",
            status.as_u16(),
            ex.api().name(),
            bytes.len(),
            content_type.to_str().unwrap_or("?"),
        )));
    };
    answer.read_into(ex.outcome_mut(), gw.config.audit.response_prefix_bytes);
    ex.completed(status.as_u16()).await;
    // Same order as the stream relay: mark, then strip (identical text either way).
    let marked = mark
        .as_ref()
        .and_then(|m| watermark_json::mark_answer(&answer, &bytes, m));
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
        let mut rest = None;
        let ok = read_body(Body::from(vec![b'a'; 10]), &h, 10, &mut rest)
            .await
            .unwrap();
        assert_eq!(ok.len(), 10);
        let e = read_body(Body::from(vec![b'a'; 11]), &h, 10, &mut rest)
            .await
            .unwrap_err();
        assert!(matches!(e, GatewayError::BodyTooLarge { limit: 10 }));
        // A declared Content-Length over the cap is refused before reading; the body is left
        // for draining.
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("1000000"));
        let mut rest = None;
        let e = read_body(Body::empty(), &h, 10, &mut rest)
            .await
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(rest.is_some());
        // Streamed bodies without a length are cut at the cap; several chunks under it are
        // joined.
        let chunks = |n| {
            futures::stream::iter(
                (0..n).map(|_| Ok::<_, std::io::Error>(Bytes::from_static(b"123456"))),
            )
        };
        let mut rest = None;
        let e = read_body(
            Body::from_stream(chunks(3)),
            &HeaderMap::new(),
            10,
            &mut rest,
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), "body_too_large");
        let rest = rest.unwrap().collect().await.unwrap().to_bytes();
        assert_eq!(&rest[..], b"123456");
        let ok = read_body(
            Body::from_stream(chunks(3)),
            &HeaderMap::new(),
            18,
            &mut None,
        )
        .await
        .unwrap();
        assert_eq!(&ok[..], b"123456123456123456");
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
