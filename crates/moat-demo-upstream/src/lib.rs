//! A **demo upstream** for moat: a tiny HTTP server that speaks the OpenAI
//! (`/v1/chat/completions`, `/v1/completions`, `/v1/models`) and Anthropic
//! (`/v1/messages`) APIs, streaming and not, with usage numbers.
//!
//! It is **not a model**: every answer is templated text that echoes the
//! prompt. It exists for the quickstart (`moat demo`) and as the upstream of
//! the integration tests, so it can also misbehave on demand, chosen by the
//! `model` field of the request:
//!
//! | model | behaviour |
//! |---|---|
//! | `error-NNN` | answers with HTTP status NNN and an error body in the API's format |
//! | `slow-MS` | waits MS milliseconds before answering (timeouts) |
//! | `long-N` | answers with N words, streamed one per chunk, 2 ms apart |
//! | `abort-N` | streams N words then drops the connection without finishing |
//! | `garbage` | answers HTTP 200 with a body that is not JSON (`application/json` claimed); streamed, the second event's data is not JSON |
//! | `think…` | (`think-long-400`: reasons, then behaves as `long-400`) also "reasons", as open reasoning servers do: OpenAI `reasoning_content` (chat), a `<think>…</think>` span before the answer in the text (streamed in 5-character pieces, so tags are split across chunks), and Anthropic `thinking` + `redacted_thinking` blocks when the request enables `thinking` |
//! | anything else | echoes the last user message |
//!
//! `max_tokens` caps the number of words answered.

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};

/// Banner text that starts every demo answer, so nobody mistakes it for a model.
pub const BANNER: &str = "[moat demo upstream, not a model]";

/// Marker that starts every demo "reasoning" text (`think…` models).
pub const REASONING_MARKER: &str = "[demo reasoning, not a model]";

/// Models listed by `GET /v1/models`.
pub const MODELS: &[&str] = &["demo-echo", "demo-template"];

#[derive(Clone, Default)]
struct DemoState {
    /// Optional API key the upstream requires (to test key forwarding).
    required_key: Option<String>,
}

/// Options for the demo upstream.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// When set, requests must carry this key as `Authorization: Bearer` or `x-api-key`.
    pub required_key: Option<String>,
}

/// The demo upstream's router.
pub fn router(opts: DemoOptions) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/models/{*id}", get(model))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/messages", post(messages))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(DemoState {
            required_key: opts.required_key,
        })
}

/// Serves the demo upstream on an already bound listener until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    opts: DemoOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(opts))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds `addr` and spawns the demo upstream on the current tokio runtime.
/// Returns the bound address (useful with port 0).
pub async fn spawn(addr: SocketAddr, opts: DemoOptions) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = serve(listener, opts, std::future::pending()).await {
            tracing::error!(error = %e, "demo upstream stopped");
        }
    });
    Ok(local)
}

#[derive(Clone, Copy, PartialEq)]
enum Api {
    Chat,
    Completions,
    Messages,
}

/// What the `model` name asks the demo upstream to do.
enum Behaviour {
    Echo,
    Error(u16),
    Slow(u64),
    Long(usize),
    Abort(usize),
    Garbage,
}

fn behaviour(model: &str) -> Behaviour {
    // `think-long-400` reasons and then behaves as `long-400`.
    let model = model.strip_prefix("think-").unwrap_or(model);
    let num = |p: &str| model.strip_prefix(p).and_then(|n| n.parse::<u64>().ok());
    if let Some(code) = num("error-").filter(|c| (400..=599).contains(c)) {
        Behaviour::Error(code as u16)
    } else if let Some(ms) = num("slow-") {
        Behaviour::Slow(ms)
    } else if let Some(n) = num("long-") {
        Behaviour::Long(n.min(100_000) as usize)
    } else if let Some(n) = num("abort-") {
        Behaviour::Abort(n.min(100_000) as usize)
    } else if model == "garbage" {
        Behaviour::Garbage
    } else {
        Behaviour::Echo
    }
}

async fn models(State(st): State<DemoState>, headers: HeaderMap) -> Response {
    if let Some(r) = check_key(&st, &headers, Api::Chat) {
        return r;
    }
    let data: Vec<Value> = MODELS
        .iter()
        .map(|m| json!({"id": m, "object": "model", "created": 0, "owned_by": "moat-demo"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

async fn model(
    State(st): State<DemoState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = check_key(&st, &headers, Api::Chat) {
        return r;
    }
    if MODELS.contains(&id.as_str()) {
        Json(json!({"id": id, "object": "model", "created": 0, "owned_by": "moat-demo"}))
            .into_response()
    } else {
        error_response(Api::Chat, 404, &format!("demo upstream: no model {id:?}"))
    }
}

async fn chat(st: State<DemoState>, headers: HeaderMap, body: Bytes) -> Response {
    handle(st, headers, body, Api::Chat).await
}

async fn completions(st: State<DemoState>, headers: HeaderMap, body: Bytes) -> Response {
    handle(st, headers, body, Api::Completions).await
}

async fn messages(st: State<DemoState>, headers: HeaderMap, body: Bytes) -> Response {
    handle(st, headers, body, Api::Messages).await
}

fn check_key(st: &DemoState, headers: &HeaderMap, api: Api) -> Option<Response> {
    let want = st.required_key.as_deref()?;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let xkey = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    if bearer == Some(want) || xkey == Some(want) {
        None
    } else {
        Some(error_response(
            api,
            401,
            "demo upstream: wrong upstream api key",
        ))
    }
}

fn error_response(api: Api, status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match api {
        Api::Messages => {
            json!({"type": "error", "error": {"type": "api_error", "message": message}})
        }
        _ => {
            json!({"error": {"message": message, "type": "server_error", "code": "demo_error", "param": null}})
        }
    };
    (status, Json(body)).into_response()
}

/// Text content of an OpenAI/Anthropic message `content` (string or parts).
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn prompt_text(api: Api, req: &Value) -> String {
    match api {
        Api::Completions => match req.get("prompt") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        },
        _ => req
            .get("messages")
            .and_then(Value::as_array)
            .and_then(|m| {
                m.iter()
                    .rev()
                    .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            })
            .and_then(|m| m.get("content"))
            .map(content_text)
            .unwrap_or_default(),
    }
}

async fn handle(
    State(st): State<DemoState>,
    headers: HeaderMap,
    body: Bytes,
    api: Api,
) -> Response {
    if let Some(r) = check_key(&st, &headers, api) {
        return r;
    }
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return error_response(api, 400, "demo upstream: body is not a JSON object"),
    };
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("demo-echo")
        .to_string();
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let max_tokens = req
        .get("max_tokens")
        .or_else(|| req.get("max_completion_tokens"))
        .and_then(Value::as_u64)
        .map(|n| n as usize);

    let prompt = prompt_text(api, &req);
    let input_tokens = (body.len() / 4).max(1) as u64;
    let mut words: Vec<String> = match behaviour(&model) {
        Behaviour::Error(code) => {
            return error_response(api, code, &format!("demo upstream: requested error {code}"))
        }
        Behaviour::Slow(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            echo_words(&prompt)
        }
        Behaviour::Long(n) | Behaviour::Abort(n) => (0..n).map(|i| format!("w{i}")).collect(),
        Behaviour::Garbage if !stream => {
            return Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    "<html><body>502 Bad Gateway (demo garbage)</body></html>",
                ))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        Behaviour::Echo | Behaviour::Garbage => echo_words(&prompt),
    };
    let mut finish = "stop";
    if let Some(max) = max_tokens {
        if words.len() > max {
            words.truncate(max);
            finish = "length";
        }
    }
    let reasoning = model.starts_with("think").then(|| {
        format!(
            "{REASONING_MARKER} DEMO-REASONING: the user wrote {} words; plan: restate, then echo.",
            prompt.split_whitespace().count()
        )
    });
    let thinking_blocks = api == Api::Messages
        && req.pointer("/thinking/type").and_then(Value::as_str) == Some("enabled");
    let abort = matches!(behaviour(&model), Behaviour::Abort(_));
    let garbage = matches!(behaviour(&model), Behaviour::Garbage);
    let long = matches!(behaviour(&model), Behaviour::Long(_) | Behaviour::Abort(_));
    let answer = Answer {
        api,
        model,
        words,
        finish,
        input_tokens,
        reasoning,
        thinking_blocks,
    };
    if stream {
        stream_response(answer, include_usage, long, abort, garbage)
    } else {
        Json(answer.full()).into_response()
    }
}

fn echo_words(prompt: &str) -> Vec<String> {
    let mut words: Vec<String> = BANNER.split(' ').map(str::to_string).collect();
    words.push("You".into());
    words.push("said:".into());
    words.extend(prompt.split_whitespace().take(4096).map(str::to_string));
    words
}

struct Answer {
    api: Api,
    model: String,
    words: Vec<String>,
    finish: &'static str,
    input_tokens: u64,
    /// `think…` models: the reasoning text.
    reasoning: Option<String>,
    /// Anthropic request with `thinking` enabled: reasoning as thinking blocks too.
    thinking_blocks: bool,
}

impl Answer {
    fn text(&self) -> String {
        match &self.reasoning {
            Some(r) => format!("<think>{r}</think>{}", self.words.join(" ")),
            None => self.words.join(" "),
        }
    }

    /// Streamed text pieces: one word each, or 5-character pieces when reasoning (so the
    /// `<think>` tags are split across chunks).
    fn pieces(&self) -> Vec<String> {
        if self.reasoning.is_none() {
            return self
                .words
                .iter()
                .enumerate()
                .map(|(i, w)| if i == 0 { w.clone() } else { format!(" {w}") })
                .collect();
        }
        let chars: Vec<char> = self.text().chars().collect();
        chars.chunks(5).map(|c| c.iter().collect()).collect()
    }

    fn output_tokens(&self) -> u64 {
        let r = self
            .reasoning
            .as_ref()
            .map_or(0, |r| r.split_whitespace().count());
        (self.words.len() + r) as u64
    }

    fn anthropic_stop(&self) -> &'static str {
        if self.finish == "length" {
            "max_tokens"
        } else {
            "end_turn"
        }
    }

    fn openai_usage(&self) -> Value {
        json!({
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens(),
            "total_tokens": self.input_tokens + self.output_tokens(),
        })
    }

    fn full(&self) -> Value {
        match self.api {
            Api::Chat => json!({
                "id": "chatcmpl-demo", "object": "chat.completion", "created": 0, "model": self.model,
                "choices": [{"index": 0, "message": self.chat_message(),
                             "logprobs": null, "finish_reason": self.finish}],
                "usage": self.openai_usage(),
            }),
            Api::Completions => json!({
                "id": "cmpl-demo", "object": "text_completion", "created": 0, "model": self.model,
                "choices": [{"index": 0, "text": self.text(), "logprobs": null, "finish_reason": self.finish}],
                "usage": self.openai_usage(),
            }),
            Api::Messages => json!({
                "id": "msg_demo", "type": "message", "role": "assistant", "model": self.model,
                "content": self.anthropic_blocks(),
                "stop_reason": self.anthropic_stop(), "stop_sequence": null,
                "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens()},
            }),
        }
    }

    fn chat_message(&self) -> Value {
        let mut m = json!({"role": "assistant", "content": self.text()});
        if let Some(r) = &self.reasoning {
            m["reasoning_content"] = Value::from(r.as_str());
        }
        m
    }

    fn anthropic_blocks(&self) -> Value {
        let mut blocks = Vec::new();
        if let (Some(r), true) = (&self.reasoning, self.thinking_blocks) {
            blocks.push(json!({"type": "thinking", "thinking": r, "signature": "demo-signature"}));
            blocks.push(json!({"type": "redacted_thinking", "data": "ZGVtbyByZWRhY3RlZA=="}));
        }
        blocks.push(json!({"type": "text", "text": self.text()}));
        Value::Array(blocks)
    }

    /// The SSE events of a streamed answer, as `(event name, data)` pairs.
    fn events(&self, include_usage: bool) -> Vec<(Option<&'static str>, String)> {
        let mut out = Vec::with_capacity(self.words.len() + 8);
        let pieces = self.pieces();
        match self.api {
            Api::Chat | Api::Completions => {
                let chat = self.api == Api::Chat;
                let usage_field = if include_usage {
                    Some(Value::Null)
                } else {
                    None
                };
                let chunk = |choice: Value| {
                    let mut v = if chat {
                        json!({"id": "chatcmpl-demo", "object": "chat.completion.chunk", "created": 0,
                               "model": self.model, "choices": [choice]})
                    } else {
                        json!({"id": "cmpl-demo", "object": "text_completion", "created": 0,
                               "model": self.model, "choices": [choice]})
                    };
                    if let Some(u) = &usage_field {
                        v["usage"] = u.clone();
                    }
                    v.to_string()
                };
                if chat {
                    out.push((None, chunk(json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}))));
                }
                if chat {
                    for w in self.reasoning.iter().flat_map(|r| r.split_inclusive(' ')) {
                        out.push((None, chunk(json!({"index": 0, "delta": {"reasoning_content": w}, "finish_reason": null}))));
                    }
                }
                for p in &pieces {
                    let c = if chat {
                        json!({"index": 0, "delta": {"content": p}, "finish_reason": null})
                    } else {
                        json!({"index": 0, "text": p, "finish_reason": null})
                    };
                    out.push((None, chunk(c)));
                }
                let last = if chat {
                    json!({"index": 0, "delta": {}, "finish_reason": self.finish})
                } else {
                    json!({"index": 0, "text": "", "finish_reason": self.finish})
                };
                out.push((None, chunk(last)));
                if include_usage {
                    let obj = if chat {
                        "chat.completion.chunk"
                    } else {
                        "text_completion"
                    };
                    out.push((
                        None,
                        json!({"id": "demo", "object": obj, "created": 0, "model": self.model,
                                           "choices": [], "usage": self.openai_usage()})
                        .to_string(),
                    ));
                }
                out.push((None, "[DONE]".to_string()));
            }
            Api::Messages => {
                out.push((
                    Some("message_start"),
                    json!({"type": "message_start", "message": {
                    "id": "msg_demo", "type": "message", "role": "assistant", "model": self.model,
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": self.input_tokens, "output_tokens": 1}}})
                    .to_string(),
                ));
                let mut idx = 0;
                if let (Some(r), true) = (&self.reasoning, self.thinking_blocks) {
                    let ev = |name: &'static str, v: Value| (Some(name), v.to_string());
                    out.push(ev(
                        "content_block_start",
                        json!({"type": "content_block_start", "index": 0,
                        "content_block": {"type": "thinking", "thinking": ""}}),
                    ));
                    for w in r.split_inclusive(' ') {
                        out.push(ev(
                            "content_block_delta",
                            json!({"type": "content_block_delta", "index": 0,
                            "delta": {"type": "thinking_delta", "thinking": w}}),
                        ));
                    }
                    out.push(ev(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "signature_delta", "signature": "demo-signature"}}),
                    ));
                    out.push(ev(
                        "content_block_stop",
                        json!({"type": "content_block_stop", "index": 0}),
                    ));
                    out.push(ev("content_block_start", json!({"type": "content_block_start", "index": 1,
                        "content_block": {"type": "redacted_thinking", "data": "ZGVtbyByZWRhY3RlZA=="}})));
                    out.push(ev(
                        "content_block_stop",
                        json!({"type": "content_block_stop", "index": 1}),
                    ));
                    idx = 2;
                }
                out.push((
                    Some("content_block_start"),
                    json!({"type": "content_block_start", "index": idx,
                    "content_block": {"type": "text", "text": ""}})
                    .to_string(),
                ));
                out.push((Some("ping"), json!({"type": "ping"}).to_string()));
                for p in &pieces {
                    out.push((
                        Some("content_block_delta"),
                        json!({"type": "content_block_delta", "index": idx,
                        "delta": {"type": "text_delta", "text": p}})
                        .to_string(),
                    ));
                }
                out.push((
                    Some("content_block_stop"),
                    json!({"type": "content_block_stop", "index": idx}).to_string(),
                ));
                out.push((
                    Some("message_delta"),
                    json!({"type": "message_delta",
                    "delta": {"stop_reason": self.anthropic_stop(), "stop_sequence": null},
                    "usage": {"output_tokens": self.output_tokens()}})
                    .to_string(),
                ));
                out.push((
                    Some("message_stop"),
                    json!({"type": "message_stop"}).to_string(),
                ));
            }
        }
        out
    }
}

fn stream_response(
    answer: Answer,
    include_usage: bool,
    paced: bool,
    abort: bool,
    garbage: bool,
) -> Response {
    let mut events = answer.events(include_usage);
    if garbage {
        let at = 1.min(events.len());
        events.insert(at, (None, "<html>not an event</html>".to_string()));
    }
    if abort {
        // Keep the first events (start + half of the words) then fail the body.
        let keep = (events.len() / 2).max(1);
        events.truncate(keep);
    }
    let n = events.len();
    let body =
        stream::iter(events.into_iter().enumerate()).then(move |(i, (name, data))| async move {
            if paced && i > 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let frame = match name {
                Some(ev) => format!("event: {ev}\ndata: {data}\n\n"),
                None => format!("data: {data}\n\n"),
            };
            Ok::<_, Infallible>(Bytes::from(frame))
        });
    let body = if abort {
        let fail = stream::once(async move {
            Err::<Bytes, std::io::Error>(std::io::Error::other(format!(
                "demo abort after {n} events"
            )))
        });
        Body::from_stream(body.map(|r| r.map_err(|e| match e {})).chain(fail))
    } else {
        Body::from_stream(body)
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviours_parse() {
        assert!(matches!(behaviour("error-503"), Behaviour::Error(503)));
        assert!(matches!(behaviour("error-99"), Behaviour::Echo));
        assert!(matches!(behaviour("slow-10"), Behaviour::Slow(10)));
        assert!(matches!(behaviour("long-5"), Behaviour::Long(5)));
        assert!(matches!(behaviour("garbage"), Behaviour::Garbage));
        assert!(matches!(behaviour("demo-echo"), Behaviour::Echo));
    }

    #[test]
    fn stream_has_usage_chunk_only_when_asked() {
        let a = Answer {
            api: Api::Chat,
            model: "m".into(),
            words: vec!["a".into(), "b".into()],
            finish: "stop",
            input_tokens: 3,
            reasoning: None,
            thinking_blocks: false,
        };
        let with = a.events(true);
        let without = a.events(false);
        assert_eq!(with.len(), without.len() + 1);
        assert!(with[with.len() - 2].1.contains("\"choices\":[]"));
    }

    #[test]
    fn think_models_reason_in_every_shape() {
        let mut a = Answer {
            api: Api::Messages,
            model: "think-1".into(),
            words: vec!["a".into(), "b".into()],
            finish: "stop",
            input_tokens: 3,
            reasoning: Some("r1 r2".into()),
            thinking_blocks: true,
        };
        let full = a.full().to_string();
        assert!(full.contains("\"thinking\"") && full.contains("redacted_thinking"));
        assert!(full.contains("<think>r1 r2</think>a b"));
        let evs = a.events(false);
        assert!(evs.iter().any(|(_, d)| d.contains("thinking_delta")));
        a.api = Api::Chat;
        assert!(a.full().to_string().contains("reasoning_content"));
        let pieces = a.pieces();
        assert!(pieces.iter().all(|p| p.chars().count() <= 5));
        assert_eq!(pieces.concat(), "<think>r1 r2</think>a b");
    }
}
