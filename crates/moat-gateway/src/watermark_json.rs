//! Applying the text watermark to answers in the APIs' JSON, without a `Value` tree.
//!
//! A borrowed view locates the text fields as raw JSON spans (`&RawValue` pointing into the
//! body; for a whole answer, the [`Answer`] parsed once for the audit record too); each span
//! is decoded, marked, re-encoded and spliced back in. Everything else —
//! tool calls, JSON arguments, ids, usage — is copied byte for byte.
//!
//! Fields marked: OpenAI chat `message`/`delta` `content`, `reasoning_content`, `reasoning`;
//! OpenAI completions `text`; Anthropic `text` and `thinking` blocks (`text_delta`,
//! `thinking_delta` when streamed).
//!
//! [`StreamMarking`] keeps one [`StreamMarker`] per (choice or content block, field). What a
//! marker holds back (a few words at most) is released as an extra event just before the event
//! that ends its choice/block (`finish_reason`, `content_block_stop`, or the terminator), so
//! the streamed text equals the non-streamed text for the same upstream text.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use moat_mark::{Marker, StreamMarker};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::api::Api;
use crate::proxy::answer::{decode, span, Answer, BlockView, MessageView};
use crate::proxy::stream::event_data;

/// One replacement of `start..end` of a buffer.
struct Edit {
    start: usize,
    end: usize,
    with: Vec<u8>,
}

fn encode(s: &str) -> Vec<u8> {
    serde_json::to_vec(s).unwrap_or_else(|_| b"\"\"".to_vec())
}

fn apply(src: &[u8], mut edits: Vec<Edit>) -> Vec<u8> {
    edits.sort_by_key(|e| e.start);
    let extra: usize = edits.iter().map(|e| e.with.len()).sum();
    let mut out = Vec::with_capacity(src.len() + extra);
    let mut at = 0;
    for e in edits {
        if e.start < at {
            continue; // overlapping spans cannot happen with a valid view; be safe anyway
        }
        out.extend_from_slice(&src[at..e.start]);
        out.extend_from_slice(&e.with);
        at = e.end;
    }
    out.extend_from_slice(&src[at..]);
    out
}

#[derive(Deserialize)]
struct OpenAiView<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    created: Option<&'a RawValue>,
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct ChoiceView<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    delta: Option<&'a RawValue>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    finish_reason: Option<&'a RawValue>,
}

impl<'a> MessageView<'a> {
    /// Text fields in stream order (reasoning first).
    fn fields(&self) -> [(Field, Option<&'a RawValue>); 3] {
        [
            (Field::ReasoningContent, self.reasoning_content),
            (Field::Reasoning, self.reasoning),
            (Field::Content, self.content),
        ]
    }
}

#[derive(Deserialize)]
struct AnthropicEvent<'a> {
    #[serde(borrow, rename = "type", default)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    content_block: Option<&'a RawValue>,
    #[serde(borrow, default)]
    delta: Option<&'a RawValue>,
}

/// A marked text field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Content,
    ReasoningContent,
    Reasoning,
    /// OpenAI completions `text`, Anthropic `text` blocks.
    Text,
    /// Anthropic `thinking` blocks.
    Thinking,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Content => "content",
            Field::ReasoningContent => "reasoning_content",
            Field::Reasoning => "reasoning",
            Field::Text => "text",
            Field::Thinking => "thinking",
        }
    }
}

/// Marks the text fields of a complete (non-streamed) answer, parsed once by
/// [`Answer::parse`] from `body`. `None` when nothing changed.
pub fn mark_answer(answer: &Answer<'_>, body: &[u8], marker: &Marker) -> Option<Bytes> {
    let mut edits = Vec::new();
    for t in answer.texts.iter().filter(|t| t.marked) {
        // Borrowed: no word could be rewritten (the common case for short answers).
        if let Cow::Owned(marked) = marker.mark_cow(&t.text) {
            if marked != *t.text {
                let (start, end) = t.span;
                edits.push(Edit {
                    start,
                    end,
                    with: encode(&marked),
                });
            }
        }
    }
    (!edits.is_empty()).then(|| Bytes::from(apply(body, edits)))
}

/// One marked text stream: (choice or block index, field).
struct Slot {
    index: u64,
    field: Field,
    marker: StreamMarker,
    finished: bool,
}

/// Event-by-event marker for one streamed answer. See the module docs.
pub struct StreamMarking {
    api: Api,
    marker: Arc<Marker>,
    slots: Vec<Slot>,
    /// OpenAI: `"id":…,"object":…,"created":…,"model":…` of the first chunk, for extra chunks.
    head: Option<Vec<u8>>,
}

impl StreamMarking {
    /// A marking state for a stream of `api`.
    pub fn new(api: Api, marker: Arc<Marker>) -> Self {
        Self {
            api,
            marker,
            slots: Vec::new(),
            head: None,
        }
    }

    fn slot(&mut self, index: u64, field: Field) -> &mut Slot {
        let pos = self
            .slots
            .iter()
            .position(|s| s.index == index && s.field == field);
        let i = match pos {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    index,
                    field,
                    marker: self.marker.stream(),
                    finished: false,
                });
                self.slots.len() - 1
            }
        };
        &mut self.slots[i]
    }

    /// Marks a streamed piece of text (empty output is possible: held back).
    fn push(&mut self, index: u64, field: Field, text: &str) -> String {
        let s = self.slot(index, field);
        if s.finished {
            return text.to_string(); // text after the end of its block: pass it on
        }
        s.marker.push(text)
    }

    /// Releases what the matching unfinished slots hold, as `(index, field, text)`.
    fn finish(&mut self, pred: impl Fn(&Slot) -> bool) -> Vec<(u64, Field, String)> {
        let mut out = Vec::new();
        for s in self.slots.iter_mut().filter(|s| !s.finished && pred(s)) {
            s.finished = true;
            let rest = s.marker.finish();
            if !rest.is_empty() {
                out.push((s.index, s.field, rest));
            }
        }
        out
    }

    /// Rewrites one complete SSE event; every resulting event is passed to `emit`.
    pub fn event(&mut self, event: &[u8], emit: &mut dyn FnMut(&[u8])) {
        let (ev, off, len): (Cow<'_, [u8]>, usize, usize) = match event_data(event) {
            None => return emit(event),
            Some(Cow::Borrowed(d)) => match span_of(event, d) {
                Some(off) => (Cow::Borrowed(event), off, d.len()),
                None => return emit(event),
            },
            Some(Cow::Owned(d)) => {
                // Several `data:` lines: rebuild the event with one.
                let mut e = Vec::with_capacity(d.len() + 16);
                for line in event.split(|&b| b == b'\n') {
                    let l = line.strip_suffix(b"\r").unwrap_or(line);
                    if !l.is_empty() && !l.starts_with(b"data:") {
                        e.extend_from_slice(l);
                        e.push(b'\n');
                    }
                }
                e.extend_from_slice(b"data: ");
                let off = e.len();
                e.extend_from_slice(&d);
                e.extend_from_slice(b"\n\n");
                (Cow::Owned(e), off, d.len())
            }
        };
        let data = &ev[off..off + len];
        let edits = match self.api {
            Api::AnthropicMessages => self.anthropic(data, emit),
            _ => self.openai(data, emit),
        };
        if edits.is_empty() {
            emit(&ev);
        } else {
            let edits = edits
                .into_iter()
                .map(|e| Edit {
                    start: e.start + off,
                    end: e.end + off,
                    with: e.with,
                })
                .collect();
            emit(&apply(&ev, edits));
        }
    }

    /// Releases everything still held (end of stream without a terminator).
    pub fn finish_all(&mut self, emit: &mut dyn FnMut(&[u8])) {
        let rest = self.finish(|_| true);
        for (index, field, text) in rest {
            self.emit_extra(index, field, &text, emit);
        }
    }

    fn emit_extra(&self, index: u64, field: Field, text: &str, emit: &mut dyn FnMut(&[u8])) {
        let t = String::from_utf8(encode(text)).unwrap_or_default();
        let ev = match self.api {
            Api::AnthropicMessages => {
                let (kind, name) = match field {
                    Field::Thinking => ("thinking_delta", "thinking"),
                    _ => ("text_delta", "text"),
                };
                format!(
                    "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":{index},\"delta\":{{\"type\":\"{kind}\",\"{name}\":{t}}}}}\n\n"
                )
            }
            _ => {
                let head = self
                    .head
                    .as_deref()
                    .map(|h| String::from_utf8_lossy(h).into_owned())
                    .unwrap_or_default();
                let body = if field == Field::Text {
                    format!("\"text\":{t}")
                } else {
                    format!("\"delta\":{{\"{}\":{t}}}", field.name())
                };
                format!(
                    "data: {{{head}\"choices\":[{{\"index\":{index},{body},\"finish_reason\":null}}]}}\n\n"
                )
            }
        };
        emit(ev.as_bytes());
    }

    fn openai(&mut self, data: &[u8], emit: &mut dyn FnMut(&[u8])) -> Vec<Edit> {
        let mut edits = Vec::new();
        if data.trim_ascii() == b"[DONE]" {
            self.finish_all(emit);
            return edits;
        }
        let Ok(v) = serde_json::from_slice::<OpenAiView>(data) else {
            return edits;
        };
        if self.head.is_none() {
            let mut h = Vec::new();
            for (k, raw) in [
                ("id", v.id),
                ("object", v.object),
                ("created", v.created),
                ("model", v.model),
            ] {
                if let Some(r) = raw {
                    h.extend_from_slice(format!("\"{k}\":{},", r.get()).as_bytes());
                }
            }
            self.head = Some(h);
        }
        for c in v.choices.iter().flatten() {
            let Ok(choice) = serde_json::from_str::<ChoiceView>(c.get()) else {
                continue;
            };
            let index = choice.index.unwrap_or(0);
            let finished = choice.finish_reason.is_some_and(|f| f.get() != "null");
            let mut fields: Vec<(Field, &RawValue)> = Vec::with_capacity(2);
            if let Some(t) = choice.text {
                fields.push((Field::Text, t));
            }
            if let Some(d) = choice.delta {
                if let Ok(m) = serde_json::from_str::<MessageView>(d.get()) {
                    fields.extend(
                        m.fields()
                            .into_iter()
                            .filter_map(|(f, r)| r.map(|r| (f, r))),
                    );
                }
            }
            // Present fields: (field, span, upstream text, marked text).
            let mut present: Vec<(Field, (usize, usize), String, String)> = Vec::new();
            for (field, raw) in fields {
                let (Some(text), Some(sp)) = (decode(raw), span(data, raw)) else {
                    continue;
                };
                let marked = self.push(index, field, &text);
                present.push((field, sp, text.into_owned(), marked));
            }
            // What the markers still hold goes into this event: reasoning once the answer
            // starts, everything when the choice finishes.
            let mut rest = Vec::new();
            if present
                .iter()
                .any(|p| p.0 == Field::Content && !p.2.is_empty())
            {
                rest.extend(self.finish(|s| {
                    s.index == index
                        && matches!(s.field, Field::ReasoningContent | Field::Reasoning)
                }));
            }
            if finished {
                rest.extend(self.finish(|s| s.index == index));
            }
            let mut inserts: Vec<(Field, String)> = Vec::new();
            for (_, f, t) in rest {
                match present.iter_mut().find(|p| p.0 == f) {
                    Some(p) => p.3.push_str(&t),
                    None => inserts.push((f, t)),
                }
            }
            for (_, (start, end), text, marked) in present {
                if marked != text {
                    edits.push(Edit {
                        start,
                        end,
                        with: encode(&marked),
                    });
                }
            }
            if inserts.is_empty() {
                continue;
            }
            // Into the delta (chat) or the choice (completions); an extra event otherwise.
            let container = choice
                .delta
                .or((self.api == Api::OpenAiCompletions).then_some(*c));
            match container.and_then(|r| span(data, r)) {
                Some((s0, e0)) if data.get(s0) == Some(&b'{') => {
                    let empty = data[s0 + 1..e0 - 1].iter().all(u8::is_ascii_whitespace);
                    let mut with = Vec::new();
                    for (i, (f, t)) in inserts.iter().enumerate() {
                        if i > 0 {
                            with.push(b',');
                        }
                        with.extend_from_slice(format!("\"{}\":", f.name()).as_bytes());
                        with.extend_from_slice(&encode(t));
                    }
                    if !empty {
                        with.push(b',');
                    }
                    edits.push(Edit {
                        start: s0 + 1,
                        end: s0 + 1,
                        with,
                    });
                }
                _ => {
                    for (f, t) in inserts {
                        self.emit_extra(index, f, &t, emit);
                    }
                }
            }
        }
        edits
    }

    fn anthropic(&mut self, data: &[u8], emit: &mut dyn FnMut(&[u8])) -> Vec<Edit> {
        let mut edits = Vec::new();
        let Ok(v) = serde_json::from_slice::<AnthropicEvent>(data) else {
            return edits;
        };
        let index = v.index.unwrap_or(0);
        let (raw, field) = match v.kind.as_deref() {
            Some("content_block_start") => {
                let Some(b) = v
                    .content_block
                    .and_then(|b| serde_json::from_str::<BlockView>(b.get()).ok())
                else {
                    return edits;
                };
                match b.kind.as_deref() {
                    Some("text") => (b.text, Field::Text),
                    Some("thinking") => (b.thinking, Field::Thinking),
                    _ => return edits,
                }
            }
            Some("content_block_delta") => {
                let Some(d) = v
                    .delta
                    .and_then(|b| serde_json::from_str::<BlockView>(b.get()).ok())
                else {
                    return edits;
                };
                match d.kind.as_deref() {
                    Some("text_delta") => (d.text, Field::Text),
                    Some("thinking_delta") => (d.thinking, Field::Thinking),
                    _ => return edits,
                }
            }
            Some("content_block_stop") => {
                let rest = self.finish(|s| s.index == index);
                for (i, f, t) in rest {
                    self.emit_extra(i, f, &t, emit);
                }
                return edits;
            }
            Some("message_stop") => {
                self.finish_all(emit);
                return edits;
            }
            _ => return edits,
        };
        if let Some(raw) = raw {
            if let (Some(text), Some((start, end))) = (decode(raw), span(data, raw)) {
                let marked = self.push(index, field, &text);
                if marked != text {
                    edits.push(Edit {
                        start,
                        end,
                        with: encode(&marked),
                    });
                }
            }
        }
        edits
    }
}

/// Offset of `inner` (a sub-slice) in `outer`.
fn span_of(outer: &[u8], inner: &[u8]) -> Option<usize> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    (start + inner.len() <= outer.len()).then_some(start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::stream::SseSplitter;
    use moat_mark::{Keyring, MarkConfig, MarkKey};
    use serde_json::{json, Value};

    const PROSE: &str = "Sure, here is what I think. I don't think it is a big problem, but you \
        are often using large tools. It is perhaps the biggest question: do not modify the \
        config, choose a larger cache instead. \"Quoted big words stay\", `big` too, and 42 \
        large 3.5 values.\n\n```\nlet big = large(); // don't\n```\nFinally, we will select \
        the approximately 10 biggest items; however, someone can't always alter them.";

    /// Parses and marks a whole answer, as the non-streamed path does.
    fn mark_whole(api: Api, body: &[u8], m: &Marker) -> Option<Bytes> {
        mark_answer(&Answer::parse(api, body)?, body, m)
    }

    fn marker() -> Arc<Marker> {
        Arc::new(Marker::new(
            Keyring::new(MarkKey::new("t1", [9u8; 32]).unwrap()),
            MarkConfig::default(),
        ))
    }

    /// Runs SSE `src` through a StreamMarking, split into `piece`-byte chunks.
    fn stream(api: Api, src: &str, piece: usize, m: &Arc<Marker>) -> Vec<(Option<String>, Value)> {
        let mut sp = SseSplitter::default();
        let mut st = StreamMarking::new(api, m.clone());
        let mut out = Vec::new();
        for chunk in src.as_bytes().chunks(piece) {
            sp.push(chunk);
            while let Some(ev) = sp.next_event() {
                st.event(&ev, &mut |e: &[u8]| out.extend_from_slice(e));
            }
        }
        st.finish_all(&mut |e: &[u8]| out.extend_from_slice(e));
        let mut sp = SseSplitter::default();
        sp.push(&out);
        let mut evs = Vec::new();
        while let Some(ev) = sp.next_event() {
            let name = std::str::from_utf8(&ev)
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("event: ").map(str::to_string));
            let d = event_data(&ev).unwrap();
            let v = serde_json::from_slice(&d).unwrap_or(Value::String("[DONE]".into()));
            evs.push((name, v));
        }
        evs
    }

    /// Word-sized pieces, like a model's tokens.
    fn pieces(s: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        for ch in s.chars() {
            cur.push(ch);
            if ch == ' ' || cur.len() >= 7 {
                out.push(std::mem::take(&mut cur));
            }
        }
        out.push(cur);
        out
    }

    #[test]
    fn openai_stream_text_equals_whole_text() {
        let m = marker();
        let whole = json!({"id":"x","object":"chat.completion","created":1,"model":"m",
            "choices":[{"index":0,"message":{"role":"assistant","content":PROSE,
            "reasoning_content":PROSE,"tool_calls":[{"id":"c","type":"function",
            "function":{"name":"f","arguments":"{\"big\":\"large\"}"}}]},"finish_reason":"stop"}]});
        let body = serde_json::to_vec(&whole).unwrap();
        let marked: Value =
            serde_json::from_slice(&mark_whole(Api::OpenAiChat, &body, &m).unwrap()).unwrap();
        let content = marked["choices"][0]["message"]["content"].as_str().unwrap();
        assert_ne!(content, PROSE);
        assert_eq!(content, m.mark(PROSE));
        assert_eq!(
            marked["choices"][0]["message"]["tool_calls"],
            whole["choices"][0]["message"]["tool_calls"]
        );
        assert!(content.contains("\"Quoted big words stay\", `big` too, and 42 "));
        assert!(
            content.contains("```\nlet big = large(); // don't\n```") && content.contains(" 3.5 ")
        );

        let mut src = String::new();
        let chunk = |c: Value| {
            format!(
                "data: {}\n\n",
                json!({"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[c]})
            )
        };
        src += &chunk(
            json!({"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}),
        );
        for p in pieces(PROSE) {
            src += &chunk(json!({"index":0,"delta":{"reasoning_content":p},"finish_reason":null}));
        }
        for p in pieces(PROSE) {
            src += &chunk(json!({"index":0,"delta":{"content":p},"finish_reason":null}));
        }
        src += &chunk(json!({"index":0,"delta":{},"finish_reason":"stop"}));
        src += "data: [DONE]\n\n";
        for piece in [1, 5, 64, 4096] {
            let evs = stream(Api::OpenAiChat, &src, piece, &m);
            let mut text = String::new();
            let mut reasoning = String::new();
            let mut finish_seen = false;
            for (_, v) in &evs {
                if let Some(d) = v.pointer("/choices/0/delta") {
                    assert!(!finish_seen, "text after the finish chunk");
                    text += d["content"].as_str().unwrap_or("");
                    reasoning += d["reasoning_content"].as_str().unwrap_or("");
                }
                finish_seen |= v
                    .pointer("/choices/0/finish_reason")
                    .is_some_and(|f| !f.is_null());
            }
            assert_eq!(text, content, "piece {piece}");
            assert_eq!(reasoning, m.mark(PROSE));
            assert_eq!(evs.last().unwrap().1, Value::String("[DONE]".into()));
        }
    }

    #[test]
    fn anthropic_stream_text_equals_whole_text() {
        let m = marker();
        let whole = json!({"id":"msg","type":"message","content":[
            {"type":"thinking","thinking":PROSE,"signature":"s"},
            {"type":"text","text":PROSE},
            {"type":"tool_use","id":"t","name":"f","input":{"big":"don't change"}}]});
        let body = serde_json::to_vec(&whole).unwrap();
        let marked: Value =
            serde_json::from_slice(&mark_whole(Api::AnthropicMessages, &body, &m).unwrap())
                .unwrap();
        assert_eq!(marked["content"][1]["text"], m.mark(PROSE));
        assert_eq!(marked["content"][0]["thinking"], m.mark(PROSE));
        assert_eq!(marked["content"][2], whole["content"][2]);

        let ev = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
        let mut src = ev(
            "message_start",
            json!({"type":"message_start","message":{"content":[]}}),
        );
        src += &ev(
            "content_block_start",
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        );
        for p in pieces(PROSE) {
            src += &ev(
                "content_block_delta",
                json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":p}}),
            );
        }
        src += &ev(
            "content_block_stop",
            json!({"type":"content_block_stop","index":0}),
        );
        src += &ev(
            "content_block_start",
            json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}),
        );
        src += &ev(
            "content_block_delta",
            json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"big\": \"don't\"}"}}),
        );
        src += &ev(
            "content_block_stop",
            json!({"type":"content_block_stop","index":1}),
        );
        src += &ev("message_stop", json!({"type":"message_stop"}));
        for piece in [3, 1000] {
            let evs = stream(Api::AnthropicMessages, &src, piece, &m);
            let mut text = String::new();
            let mut stopped = false;
            for (name, v) in &evs {
                if v["index"] == 0 {
                    assert!(!stopped, "text after content_block_stop");
                    assert_eq!(name.as_deref(), v["type"].as_str());
                    text += v
                        .pointer("/delta/text")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    stopped |= v["type"] == "content_block_stop";
                }
                if v.pointer("/delta/type") == Some(&json!("input_json_delta")) {
                    assert_eq!(v["delta"]["partial_json"], "{\"big\": \"don't\"}");
                }
            }
            assert_eq!(text, m.mark(PROSE));
        }
    }

    #[test]
    fn completions_and_odd_inputs() {
        let m = marker();
        let body = serde_json::to_vec(
            &json!({"choices":[{"index":0,"text":PROSE},{"index":1,"text":PROSE}]}),
        )
        .unwrap();
        let v: Value =
            serde_json::from_slice(&mark_whole(Api::OpenAiCompletions, &body, &m).unwrap())
                .unwrap();
        assert_eq!(v["choices"][1]["text"], m.mark(PROSE));
        // Not JSON, wrong shapes, non-string content: left alone.
        assert!(mark_whole(Api::OpenAiChat, b"not json", &m).is_none());
        assert!(mark_whole(
            Api::OpenAiChat,
            br#"{"choices":[{"message":{"content":[1,2]}}]}"#,
            &m
        )
        .is_none());
        assert!(mark_whole(Api::AnthropicMessages, br#"{"content":"x"}"#, &m).is_none());
        // Two completions choices streamed interleaved, with text on the finish chunk.
        let chunk = |c: Value| {
            format!(
                "data: {}\n\n",
                json!({"id":"c","object":"text_completion","choices":[c]})
            )
        };
        let mut src = String::new();
        let ps = pieces(PROSE);
        for p in &ps {
            for i in 0..2 {
                src += &chunk(json!({"index":i,"text":p,"finish_reason":null}));
            }
        }
        src += &chunk(json!({"index":0,"text":" The end is big.","finish_reason":"stop"}));
        // Choice 1 never finishes: released before [DONE].
        src += "data: [DONE]\n\n";
        let evs = stream(Api::OpenAiCompletions, &src, 17, &m);
        for i in 0..2 {
            let t: String = evs
                .iter()
                .filter(|(_, v)| v.pointer("/choices/0/index") == Some(&json!(i)))
                .map(|(_, v)| v["choices"][0]["text"].as_str().unwrap().to_string())
                .collect();
            let want = if i == 0 {
                format!("{PROSE} The end is big.")
            } else {
                PROSE.to_string()
            };
            assert_eq!(t, m.mark(&want), "choice {i}");
        }
    }
}
