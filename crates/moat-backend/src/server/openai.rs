//! The OpenAI shapes: `/v1/chat/completions`, `/v1/completions`, `/v1/models`.

use super::{content_text, new_id, now, stop_list, AppState, Event};
use crate::chat_template::ChatMessage;
use crate::generate::{FinishReason, GenOutput, GenRequest, Prompt, TokenInfo};
use crate::sampler::SamplingParams;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde_json::{json, Value};
use std::convert::Infallible;

/// An OpenAI-format error response.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let kind = if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    (status, Json(json!({"error": {"message": message.into(), "type": kind, "param": null, "code": null}})))
        .into_response()
}

pub(crate) async fn models(State(st): State<AppState>) -> Response {
    Json(json!({"object": "list", "data": [model_obj(&st.model_id)]})).into_response()
}

pub(crate) async fn model(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    if id == *st.model_id {
        Json(model_obj(&st.model_id)).into_response()
    } else {
        error(StatusCode::NOT_FOUND, format!("model {id:?} not found"))
    }
}

fn model_obj(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "moat-embedded"})
}

fn finish_str(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

/// Common request fields → sampling parameters, limits, stops.
fn parse_common(
    st: &AppState,
    b: &Value,
    chat: bool,
) -> Result<(GenRequest, String, bool, bool), String> {
    let model = b
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(&st.model_id)
        .to_string();
    if b.get("n").and_then(Value::as_u64).is_some_and(|n| n != 1) {
        return Err("only n = 1 is supported".into());
    }
    let max_tokens = b
        .get("max_completion_tokens")
        .or_else(|| b.get("max_tokens"))
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .unwrap_or(st.default_max_tokens);
    let temperature = b.get("temperature").and_then(Value::as_f64).unwrap_or(1.0) as f32;
    let top_p = b.get("top_p").and_then(Value::as_f64).unwrap_or(1.0) as f32;
    if !(0.0..=2.0).contains(&temperature) {
        return Err("temperature must be between 0 and 2".into());
    }
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err("top_p must be in (0, 1]".into());
    }
    let top_logprobs = if chat {
        match b.get("logprobs").and_then(Value::as_bool) {
            Some(true) => Some(
                b.get("top_logprobs")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    .min(20) as usize,
            ),
            _ => None,
        }
    } else {
        b.get("logprobs")
            .and_then(Value::as_u64)
            .map(|k| k.min(5) as usize)
    };
    let stream = b.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = b
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let req = GenRequest {
        prompt: Prompt::Text(String::new()),
        max_tokens,
        sampling: SamplingParams {
            temperature,
            top_p,
            seed: b.get("seed").and_then(Value::as_u64),
            top_logprobs,
        },
        stop: stop_list(b.get("stop")),
        watermark: true,
    };
    Ok((req, model, stream, include_usage))
}

fn usage(o: &GenOutput) -> Value {
    json!({"prompt_tokens": o.prompt_tokens, "completion_tokens": o.completion_tokens,
           "total_tokens": o.prompt_tokens + o.completion_tokens})
}

fn chat_logprobs(infos: &[TokenInfo]) -> Value {
    let content: Vec<Value> = infos
        .iter()
        .map(|t| {
            json!({"token": t.token, "logprob": t.logprob, "bytes": t.bytes,
                   "top_logprobs": t.top.iter().map(|(s, l)| json!({"token": s, "logprob": l,
                       "bytes": s.as_bytes()})).collect::<Vec<_>>()})
        })
        .collect();
    json!({"content": content})
}

fn completion_logprobs(infos: &[TokenInfo]) -> Value {
    json!({
        "tokens": infos.iter().map(|t| t.token.clone()).collect::<Vec<_>>(),
        "token_logprobs": infos.iter().map(|t| t.logprob).collect::<Vec<_>>(),
        "top_logprobs": infos.iter().map(|t| t.top.iter().map(|(s, l)| (s.clone(), json!(l)))
            .collect::<serde_json::Map<_, _>>()).collect::<Vec<_>>(),
    })
}

pub(crate) async fn chat(State(st): State<AppState>, body: Bytes) -> Response {
    let b: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")),
    };
    let Some(msgs) = b.get("messages").and_then(Value::as_array) else {
        return error(StatusCode::BAD_REQUEST, "messages is required");
    };
    let messages: Vec<ChatMessage> = msgs
        .iter()
        .map(|m| {
            let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
            let role = if role == "developer" { "system" } else { role };
            ChatMessage::new(role, content_text(m.get("content").unwrap_or(&Value::Null)))
        })
        .collect();
    let (mut req, model, stream, include_usage) = match parse_common(&st, &b, true) {
        Ok(x) => x,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    req.prompt = Prompt::Chat(messages);
    run(st, req, model, stream, include_usage, true).await
}

pub(crate) async fn completions(State(st): State<AppState>, body: Bytes) -> Response {
    let b: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")),
    };
    let prompt = match b.get("prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
            a[0].as_str().unwrap_or("").to_string()
        }
        _ => return error(StatusCode::BAD_REQUEST, "prompt must be a string"),
    };
    let (mut req, model, stream, include_usage) = match parse_common(&st, &b, false) {
        Ok(x) => x,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if b.get("max_tokens").is_none() {
        req.max_tokens = 16; // the legacy API's default
    }
    req.prompt = Prompt::Text(prompt);
    run(st, req, model, stream, include_usage, false).await
}

async fn run(
    st: AppState,
    req: GenRequest,
    model: String,
    stream: bool,
    include_usage: bool,
    chat: bool,
) -> Response {
    let want_lp = req.sampling.top_logprobs.is_some();
    let (id, created) = (new_id(if chat { "chatcmpl-" } else { "cmpl-" }), now());
    if !stream {
        let mut rx = match st.submit(req).await {
            Ok(rx) => rx,
            Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e),
        };
        let mut infos = Vec::new();
        let out = loop {
            match rx.recv().await {
                Some(Event::Delta(d)) => infos.extend(d.logprobs),
                Some(Event::Started(_)) => {}
                Some(Event::Done(r)) => break r,
                None => break Err("the model worker dropped the request".into()),
            }
        };
        let out = match out {
            Ok(o) => o,
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        };
        let finish = finish_str(out.finish_reason);
        let body = if chat {
            let lp = if want_lp {
                chat_logprobs(&infos)
            } else {
                Value::Null
            };
            json!({"id": id, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": out.text,
                    "refusal": null}, "logprobs": lp, "finish_reason": finish}],
                "usage": usage(&out), "system_fingerprint": null})
        } else {
            let lp = if want_lp {
                completion_logprobs(&infos)
            } else {
                Value::Null
            };
            json!({"id": id, "object": "text_completion", "created": created, "model": model,
                "choices": [{"index": 0, "text": out.text, "logprobs": lp,
                    "finish_reason": finish}], "usage": usage(&out)})
        };
        return Json(body).into_response();
    }
    let rx = match st.submit(req).await {
        Ok(rx) => rx,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    let object = if chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    let chunk = move |choice: Value, usage: Option<Value>| {
        let mut c = json!({"id": id, "object": object, "created": created, "model": model,
            "choices": [choice]});
        if let Some(u) = usage {
            c["choices"] = json!([]);
            c["usage"] = u;
        } else if include_usage {
            c["usage"] = Value::Null;
        }
        SseEvent::default().data(c.to_string())
    };
    let first = chat.then(|| {
        chunk(
            json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null,
                "finish_reason": null}),
            None,
        )
    });
    let events = tokio_stream_from(rx).flat_map(move |ev| {
        let mut out = Vec::new();
        match ev {
            Event::Started(_) => {}
            Event::Delta(d) => {
                if !d.text.is_empty() || (want_lp && !d.logprobs.is_empty()) {
                    let choice = if chat {
                        let lp = if want_lp {
                            chat_logprobs(&d.logprobs)
                        } else {
                            Value::Null
                        };
                        json!({"index": 0, "delta": {"content": d.text}, "logprobs": lp,
                            "finish_reason": null})
                    } else {
                        let lp = if want_lp {
                            completion_logprobs(&d.logprobs)
                        } else {
                            Value::Null
                        };
                        json!({"index": 0, "text": d.text, "logprobs": lp, "finish_reason": null})
                    };
                    out.push(chunk(choice, None));
                }
            }
            Event::Done(Ok(o)) => {
                let f = finish_str(o.finish_reason);
                let choice = if chat {
                    json!({"index": 0, "delta": {}, "logprobs": null, "finish_reason": f})
                } else {
                    json!({"index": 0, "text": "", "logprobs": null, "finish_reason": f})
                };
                out.push(chunk(choice, None));
                if include_usage {
                    out.push(chunk(Value::Null, Some(usage(&o))));
                }
                out.push(SseEvent::default().data("[DONE]"));
            }
            Event::Done(Err(e)) => {
                let err = json!({"error": {"message": e, "type": "server_error"}});
                out.push(SseEvent::default().data(err.to_string()));
            }
        }
        futures::stream::iter(out.into_iter().map(Ok::<_, Infallible>))
    });
    let s = futures::stream::iter(first.map(Ok::<_, Infallible>)).chain(events);
    Sse::new(s).keep_alive(KeepAlive::default()).into_response()
}

/// An unbounded receiver as a stream.
pub(crate) fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
