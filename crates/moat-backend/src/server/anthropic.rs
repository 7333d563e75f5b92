//! The Anthropic shape: `/v1/messages` (non-streaming and SSE).

use super::openai::tokio_stream_from;
use super::{content_text, new_id, stop_list, AppState, Event};
use crate::chat_template::ChatMessage;
use crate::generate::{FinishReason, GenOutput, GenRequest, Prompt};
use crate::sampler::SamplingParams;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde_json::{json, Value};
use std::convert::Infallible;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let kind = if status.is_server_error() {
        "api_error"
    } else {
        "invalid_request_error"
    };
    (
        status,
        Json(json!({"type": "error", "error": {"type": kind, "message": message.into()}})),
    )
        .into_response()
}

fn stop_reason(o: &GenOutput) -> &'static str {
    match (o.finish_reason, &o.stop_sequence) {
        (FinishReason::Length, _) => "max_tokens",
        (FinishReason::Stop, Some(_)) => "stop_sequence",
        (FinishReason::Stop, None) => "end_turn",
    }
}

fn sse(kind: &str, data: Value) -> Result<SseEvent, Infallible> {
    Ok(SseEvent::default().event(kind).data(data.to_string()))
}

pub(crate) async fn messages(State(st): State<AppState>, body: Bytes) -> Response {
    let b: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")),
    };
    let Some(max_tokens) = b.get("max_tokens").and_then(Value::as_u64) else {
        return error(StatusCode::BAD_REQUEST, "max_tokens: Field required");
    };
    let Some(msgs) = b.get("messages").and_then(Value::as_array) else {
        return error(StatusCode::BAD_REQUEST, "messages: Field required");
    };
    let mut chat = Vec::with_capacity(msgs.len() + 1);
    if let Some(sys) = b.get("system") {
        chat.push(ChatMessage::new("system", content_text(sys)));
    }
    for m in msgs {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        chat.push(ChatMessage::new(
            role,
            content_text(m.get("content").unwrap_or(&Value::Null)),
        ));
    }
    let temperature = b.get("temperature").and_then(Value::as_f64).unwrap_or(1.0) as f32;
    if !(0.0..=1.0).contains(&temperature) {
        return error(
            StatusCode::BAD_REQUEST,
            "temperature: must be between 0 and 1",
        );
    }
    let model = b
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(&st.model_id)
        .to_string();
    let req = GenRequest {
        prompt: Prompt::Chat(chat),
        max_tokens: max_tokens as usize,
        sampling: SamplingParams {
            temperature,
            top_p: b.get("top_p").and_then(Value::as_f64).unwrap_or(1.0) as f32,
            seed: None,
            top_logprobs: None,
        },
        stop: stop_list(b.get("stop_sequences")),
        watermark: true,
    };
    let id = new_id("msg_");
    let stream = b.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if !stream {
        return match st.complete(req).await {
            Ok(o) => Json(
                json!({"id": id, "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": o.text}], "stop_reason": stop_reason(&o),
                "stop_sequence": o.stop_sequence,
                "usage": {"input_tokens": o.prompt_tokens, "output_tokens": o.completion_tokens}}),
            )
            .into_response(),
            Err(e) => error(StatusCode::BAD_REQUEST, e),
        };
    }
    let rx = match st.submit(req).await {
        Ok(rx) => rx,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    // The model thread reports the prompt length first; message_start carries it.
    let (model_c, id_c) = (model.clone(), id.clone());
    let start = move |input_tokens: usize| {
        vec![
            sse(
                "message_start",
                json!({"type": "message_start", "message": {"id": id_c,
                "type": "message", "role": "assistant", "model": model_c, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": input_tokens, "output_tokens": 0}}}),
            ),
            sse(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
            ),
            sse("ping", json!({"type": "ping"})),
        ]
    };
    let events = tokio_stream_from(rx).flat_map(move |ev| {
        let out = match ev {
            Event::Started(n) => start(n),
            Event::Delta(d) if d.text.is_empty() => vec![],
            Event::Delta(d) => vec![sse("content_block_delta", json!({"type": "content_block_delta",
                "index": 0, "delta": {"type": "text_delta", "text": d.text}}))],
            Event::Done(Ok(o)) => vec![
                sse("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
                sse("message_delta", json!({"type": "message_delta",
                    "delta": {"stop_reason": stop_reason(&o), "stop_sequence": o.stop_sequence},
                    "usage": {"input_tokens": o.prompt_tokens, "output_tokens": o.completion_tokens}})),
                sse("message_stop", json!({"type": "message_stop"})),
            ],
            Event::Done(Err(e)) => vec![sse("error", json!({"type": "error",
                "error": {"type": "invalid_request_error", "message": e}}))],
        };
        futures::stream::iter(out)
    });
    Sse::new(events).into_response()
}
