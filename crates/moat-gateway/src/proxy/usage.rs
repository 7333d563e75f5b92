//! Light, borrowed views of request and response bodies: only the fields the
//! gateway needs (model, stream flags, token caps, usage, finish reason, text),
//! parsed once with serde_json without building a `Value` tree.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use crate::api::Api;
use crate::error::GatewayError;
use crate::proxy::strict::{check_body, MessagesShape, TextShape};

/// What the gateway reads from a request body.
#[derive(Debug, Default, Deserialize)]
pub struct RequestView<'a> {
    /// Requested model.
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    /// Whether a streamed answer was asked for.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Output cap (all three APIs).
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Output cap (newer OpenAI chat name).
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    /// OpenAI chat: bool; OpenAI completions: integer.
    #[serde(default)]
    pub logprobs: Option<Value>,
    /// OpenAI chat: number of alternatives per token.
    #[serde(default)]
    pub top_logprobs: Option<Value>,
    /// OpenAI `stream_options`.
    #[serde(default)]
    pub stream_options: Option<StreamOptionsView>,
    /// OpenAI `response_format` (JSON answers are not watermarked).
    #[serde(default)]
    pub response_format: Option<ResponseFormatView>,
    /// Chat messages (OpenAI chat, Anthropic): required, an array of objects.
    #[serde(default)]
    pub messages: Option<MessagesShape>,
    /// Completions `prompt`: a string or an array.
    #[serde(default)]
    pub prompt: Option<TextShape>,
    /// Anthropic `system`: a string or an array of blocks.
    #[serde(default)]
    pub system: Option<TextShape>,
}

/// OpenAI `response_format`.
#[derive(Debug, Default, Deserialize)]
pub struct ResponseFormatView {
    /// `text`, `json_object`, `json_schema`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

/// OpenAI `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptionsView {
    /// Whether the final usage chunk was asked for.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

impl<'a> RequestView<'a> {
    /// Parses a request body. Syntax errors and bytes that are not UTF-8 are `InvalidJson`;
    /// wrong types, a missing `model` (or `messages`), nesting deeper than
    /// [`MAX_JSON_DEPTH`](super::strict::MAX_JSON_DEPTH) are `InvalidRequest`
    /// ([`super::strict`]).
    pub fn parse(body: &'a [u8], api: Api) -> Result<Self, GatewayError> {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err(if first.is_none() {
                GatewayError::InvalidJson("empty body".into())
            } else {
                // Distinguish "valid JSON but not an object" from garbage.
                match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                    Ok(_) => {
                        GatewayError::InvalidRequest("request body must be a JSON object".into())
                    }
                    Err(e) => GatewayError::InvalidJson(e.to_string()),
                }
            });
        }
        let text = check_body(body)?;
        let view: RequestView = serde_json::from_str(text).map_err(|e| {
            if e.is_data() {
                GatewayError::InvalidRequest(format!("invalid request: {e}"))
            } else {
                GatewayError::InvalidJson(e.to_string())
            }
        })?;
        match view.model.as_deref() {
            None | Some("") => {
                return Err(GatewayError::InvalidRequest("'model' is required".into()))
            }
            Some(m) if m.len() > 256 => {
                return Err(GatewayError::InvalidRequest("'model' is too long".into()))
            }
            _ => {}
        }
        if api == Api::AnthropicMessages && view.max_tokens.is_none() {
            return Err(GatewayError::InvalidRequest(
                "'max_tokens' is required".into(),
            ));
        }
        if matches!(api, Api::OpenAiChat | Api::AnthropicMessages) && view.messages.is_none() {
            return Err(GatewayError::InvalidRequest(
                "'messages' is required (an array of message objects)".into(),
            ));
        }
        Ok(view)
    }

    /// Whether a streamed answer was asked for.
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Output cap requested, if any.
    pub fn max_output(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// Whether log-probabilities are requested (any non-null, non-false, non-zero value;
    /// OpenAI completions' `logprobs: 0` still returns the sampled token's logprob).
    pub fn wants_logprobs(&self) -> bool {
        let on = |v: &Option<Value>| match v {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(_) => true,
        };
        on(&self.logprobs)
            || matches!(&self.top_logprobs, Some(v) if !v.is_null() && v.as_u64() != Some(0))
    }

    /// Whether a JSON answer (`response_format` `json_object` / `json_schema`) was asked for.
    pub fn wants_json(&self) -> bool {
        self.response_format
            .as_ref()
            .and_then(|f| f.kind.as_deref())
            .is_some_and(|k| k.starts_with("json"))
    }

    /// Whether the client asked for the final usage chunk of an OpenAI stream.
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

/// Token usage and outcome of one exchange, accumulated as the response goes by.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Prompt tokens, when the upstream reported them.
    pub input_tokens: Option<u64>,
    /// Completion tokens, when the upstream reported them.
    pub output_tokens: Option<u64>,
    /// Finish/stop reason.
    pub finish_reason: Option<String>,
    /// Bounded prefix of the generated text.
    pub text: String,
    /// Text-carrying stream events seen (≈ output tokens when no usage is reported).
    pub text_events: u64,
    /// Bytes of generated text seen (including what did not fit the prefix).
    pub text_bytes: u64,
}

impl Outcome {
    /// Appends generated text, keeping at most `cap` bytes (on a char boundary).
    pub fn push_text(&mut self, s: &str, cap: usize) {
        self.text_bytes += s.len() as u64;
        let room = cap.saturating_sub(self.text.len());
        if room == 0 || s.is_empty() {
            return;
        }
        if s.len() <= room {
            self.text.push_str(s);
        } else {
            let mut end = room;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.text.push_str(&s[..end]);
        }
    }
}

/// Token counts as the OpenAI and Anthropic APIs report them.
#[derive(Deserialize)]
pub(crate) struct UsageView {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl UsageView {
    /// Records the counts in `out` (Anthropic's cached input counts as input).
    pub(crate) fn apply(&self, out: &mut Outcome) {
        let input = self.prompt_tokens.or_else(|| {
            self.input_tokens.map(|i| {
                i + self.cache_creation_input_tokens.unwrap_or(0)
                    + self.cache_read_input_tokens.unwrap_or(0)
            })
        });
        if let Some(i) = input {
            out.input_tokens = Some(i);
        }
        if let Some(o) = self.completion_tokens.or(self.output_tokens) {
            out.output_tokens = Some(o);
        }
    }
}

#[derive(Deserialize)]
struct MessageView<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ChoiceView<'a> {
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<MessageView<'a>>,
    #[serde(borrow, default)]
    delta: Option<MessageView<'a>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct BlockView<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    thinking: Option<Cow<'a, str>>,
}

/// A whole OpenAI or Anthropic response body (non-streamed), or one OpenAI chunk.
#[derive(Deserialize)]
struct ResponseView<'a> {
    #[serde(default)]
    usage: Option<UsageView>,
    #[serde(borrow, default)]
    choices: Option<Vec<ChoiceView<'a>>>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<Vec<BlockView<'a>>>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

impl ResponseView<'_> {
    fn apply(&self, out: &mut Outcome, cap: usize) -> bool {
        let mut had_text = false;
        if let Some(u) = &self.usage {
            u.apply(out);
        }
        if let Some(choice) = self.choices.as_ref().and_then(|c| c.first()) {
            if let Some(f) = &choice.finish_reason {
                out.finish_reason = Some(f.to_string());
            }
            let m = choice.message.as_ref().or(choice.delta.as_ref());
            for t in [
                m.and_then(|m| m.reasoning_content.as_deref()),
                m.and_then(|m| m.content.as_deref()),
                choice.text.as_deref(),
            ]
            .into_iter()
            .flatten()
            {
                had_text |= !t.is_empty();
                out.push_text(t, cap);
            }
        }
        if let Some(s) = &self.stop_reason {
            out.finish_reason = Some(s.to_string());
        }
        for b in self.content.iter().flatten() {
            for t in [b.thinking.as_deref(), b.text.as_deref()]
                .into_iter()
                .flatten()
            {
                had_text |= !t.is_empty();
                out.push_text(t, cap);
            }
        }
        had_text
    }
}

/// What a stream event means for the relay.
#[derive(Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Forward it.
    Forward,
    /// OpenAI's final usage-only chunk (`choices: []` and a usage object).
    UsageOnly,
    /// OpenAI `[DONE]` terminator or Anthropic `message_stop`.
    Done,
    /// An error event sent by the upstream inside the stream.
    Error,
    /// A `data` payload that is not JSON (nor OpenAI's `[DONE]`): the upstream is broken.
    Invalid,
}

/// `Invalid` when `data` is not JSON at all (one more parse, only for a payload the typed view
/// refused); `Forward` for JSON of another shape, and for an empty payload (a keep-alive).
fn unreadable(data: &[u8]) -> EventKind {
    if data.trim_ascii().is_empty() || serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok()
    {
        EventKind::Forward
    } else {
        EventKind::Invalid
    }
}

#[derive(Deserialize)]
struct AnthropicEventView<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    message: Option<ResponseView<'a>>,
    #[serde(default)]
    usage: Option<UsageView>,
    #[serde(borrow, default)]
    delta: Option<AnthropicDeltaView<'a>>,
}

#[derive(Deserialize)]
struct AnthropicDeltaView<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
}

/// Reads one SSE event's `data` payload into `out`, and classifies it.
pub fn read_stream_event(api: Api, data: &[u8], out: &mut Outcome, cap: usize) -> EventKind {
    if api == Api::AnthropicMessages {
        let Ok(ev) = serde_json::from_slice::<AnthropicEventView>(data) else {
            return unreadable(data);
        };
        match ev.kind.as_ref() {
            "message_start" => {
                if let Some(m) = &ev.message {
                    // Its output count is provisional (Anthropic sends 1): the real one comes in
                    // `message_delta`; a stream that breaks off before is estimated instead.
                    let output = out.output_tokens;
                    m.apply(out, cap);
                    out.output_tokens = output;
                }
            }
            "content_block_delta" => {
                if let Some(d) = &ev.delta {
                    for t in [d.thinking.as_deref(), d.text.as_deref()]
                        .into_iter()
                        .flatten()
                    {
                        out.text_events += 1;
                        out.push_text(t, cap);
                    }
                }
            }
            "message_delta" => {
                if let Some(u) = &ev.usage {
                    u.apply(out);
                }
                if let Some(s) = ev.delta.as_ref().and_then(|d| d.stop_reason.as_deref()) {
                    out.finish_reason = Some(s.to_string());
                }
            }
            "message_stop" => return EventKind::Done,
            "error" => return EventKind::Error,
            _ => {}
        }
        return EventKind::Forward;
    }
    let trimmed = data.trim_ascii();
    if trimmed == b"[DONE]" {
        return EventKind::Done;
    }
    let Ok(chunk) = serde_json::from_slice::<ResponseView>(trimmed) else {
        return unreadable(trimmed);
    };
    if chunk.error.is_some() {
        return EventKind::Error;
    }
    if chunk.apply(out, cap) {
        out.text_events += 1;
    }
    let usage_only = chunk.usage.is_some() && chunk.choices.as_ref().is_some_and(|c| c.is_empty());
    if usage_only {
        EventKind::UsageOnly
    } else {
        EventKind::Forward
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_view_reads_fields() {
        let b = br#"{"model":"m\u0041","stream":true,"max_tokens":5,"logprobs":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let v = RequestView::parse(b, Api::OpenAiChat).unwrap();
        assert_eq!(v.model.as_deref(), Some("mA"));
        assert!(v.is_stream() && v.wants_logprobs() && !v.wants_stream_usage());
        assert_eq!(v.max_output(), Some(5));
    }

    #[test]
    fn request_view_errors() {
        assert!(matches!(
            RequestView::parse(b"{nope", Api::OpenAiChat),
            Err(GatewayError::InvalidJson(_))
        ));
        assert!(matches!(
            RequestView::parse(b"", Api::OpenAiChat),
            Err(GatewayError::InvalidJson(_))
        ));
        assert!(matches!(
            RequestView::parse(b"[1]", Api::OpenAiChat),
            Err(GatewayError::InvalidRequest(_))
        ));
        assert!(matches!(
            RequestView::parse(b"[1", Api::OpenAiChat),
            Err(GatewayError::InvalidJson(_))
        ));
        assert!(matches!(
            RequestView::parse(br#"{"model":5}"#, Api::OpenAiChat),
            Err(GatewayError::InvalidRequest(_))
        ));
        assert!(matches!(
            RequestView::parse(br#"{"x":1}"#, Api::OpenAiChat),
            Err(GatewayError::InvalidRequest(_))
        ));
        assert!(matches!(
            RequestView::parse(br#"{"model":"m"}"#, Api::AnthropicMessages),
            Err(GatewayError::InvalidRequest(_))
        ));
        assert!(matches!(
            RequestView::parse(br#"{"model":"m"} x"#, Api::OpenAiChat),
            Err(GatewayError::InvalidJson(_))
        ));
    }

    #[test]
    fn logprobs_flags() {
        let p = |s: &str| {
            RequestView::parse(s.as_bytes(), Api::OpenAiCompletions)
                .unwrap()
                .wants_logprobs()
        };
        assert!(!p(r#"{"model":"m","logprobs":false}"#));
        assert!(!p(r#"{"model":"m","logprobs":null}"#));
        assert!(p(r#"{"model":"m","logprobs":0}"#));
        assert!(p(r#"{"model":"m","logprobs":3}"#));
        assert!(p(r#"{"model":"m","top_logprobs":2}"#));
    }

    #[test]
    fn openai_stream_events() {
        let mut o = Outcome::default();
        let k = read_stream_event(
            Api::OpenAiChat,
            br#"{"choices":[{"delta":{"content":"a"},"finish_reason":null}],"usage":null}"#,
            &mut o,
            10,
        );
        assert_eq!(k, EventKind::Forward);
        let k = read_stream_event(
            Api::OpenAiChat,
            br#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":1}}"#,
            &mut o,
            10,
        );
        assert_eq!(k, EventKind::UsageOnly);
        assert_eq!(
            read_stream_event(Api::OpenAiChat, b" [DONE]", &mut o, 10),
            EventKind::Done
        );
        assert_eq!(
            read_stream_event(Api::OpenAiChat, br#"{"error":{"message":"x"}}"#, &mut o, 10),
            EventKind::Error
        );
        assert_eq!(
            (o.input_tokens, o.output_tokens, o.text.as_str()),
            (Some(7), Some(1), "a")
        );
    }

    #[test]
    fn anthropic_stream_events() {
        let mut o = Outcome::default();
        read_stream_event(
            Api::AnthropicMessages,
            br#"{"type":"message_start","message":{"usage":{"input_tokens":9,"output_tokens":1}}}"#,
            &mut o,
            10,
        );
        read_stream_event(Api::AnthropicMessages, br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"yo"}}"#, &mut o, 10);
        read_stream_event(Api::AnthropicMessages, br#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":5}}"#, &mut o, 10);
        let k = read_stream_event(
            Api::AnthropicMessages,
            br#"{"type":"message_stop"}"#,
            &mut o,
            10,
        );
        assert_eq!(k, EventKind::Done);
        assert_eq!(
            read_stream_event(
                Api::AnthropicMessages,
                br#"{"type":"error","error":{}}"#,
                &mut o,
                10
            ),
            EventKind::Error
        );
        assert_eq!((o.input_tokens, o.output_tokens), (Some(9), Some(5)));
        // Cut off before `message_delta`: no output count (estimated from the text instead of
        // message_start's provisional 1).
        let mut cut = Outcome::default();
        read_stream_event(
            Api::AnthropicMessages,
            br#"{"type":"message_start","message":{"usage":{"input_tokens":9,"output_tokens":1}}}"#,
            &mut cut,
            10,
        );
        assert_eq!((cut.input_tokens, cut.output_tokens), (Some(9), None));
        assert_eq!(
            (o.finish_reason.as_deref(), o.text.as_str(), o.text_events),
            (Some("max_tokens"), "yo", 1)
        );
    }
}
