//! Removes reasoning from answers: OpenAI-style `reasoning_content` / `reasoning` fields,
//! Anthropic `thinking` and `redacted_thinking` blocks (and their stream deltas), and
//! `<think>…</think>` spans inside the text ([`super::think::ThinkFilter`]).
//!
//! [`strip_whole`] rewrites a complete JSON answer. [`StreamStripper`] rewrites a stream
//! event by event: it keeps one `ThinkFilter` per choice / content block and nothing else, so
//! its memory is bounded by a partial tag per open block. Anthropic content blocks that are
//! dropped are removed with their start, deltas and stop, and the blocks after them are
//! renumbered so the client sees contiguous indices.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use serde_json::Value;

use super::think::ThinkFilter;
use crate::api::Api;
use crate::proxy::stream::event_data;

/// Reasoning fields of OpenAI-compatible messages and deltas.
const REASONING_FIELDS: [&str; 3] = ["reasoning_content", "reasoning", "reasoning_details"];

fn is_reasoning_block(t: Option<&str>) -> bool {
    matches!(t, Some("thinking" | "redacted_thinking"))
}

fn strip_text_field(v: &mut Value, field: &str) {
    if let Some(Value::String(s)) = v.get_mut(field) {
        if s.contains("<think>") {
            *s = ThinkFilter::strip(s);
        }
    }
}

/// Removes reasoning from a complete (non-streamed) JSON answer of `api`. Returns `None`
/// when the body is not JSON (passed on unchanged) or nothing had to change.
pub fn strip_whole(api: Api, body: &[u8]) -> Option<Bytes> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let before = v.clone();
    match api {
        Api::AnthropicMessages => {
            if let Some(Value::Array(blocks)) = v.get_mut("content") {
                blocks.retain(|b| !is_reasoning_block(b.get("type").and_then(Value::as_str)));
                for b in blocks.iter_mut() {
                    strip_text_field(b, "text");
                }
            }
        }
        _ => {
            if let Some(Value::Array(choices)) = v.get_mut("choices") {
                for c in choices.iter_mut() {
                    strip_text_field(c, "text");
                    if let Some(m) = c.get_mut("message").and_then(Value::as_object_mut) {
                        for f in REASONING_FIELDS {
                            m.remove(f);
                        }
                    }
                    if let Some(m) = c.get_mut("message") {
                        strip_text_field(m, "content");
                    }
                }
            }
        }
    }
    (v != before).then(|| Bytes::from(serde_json::to_vec(&v).unwrap_or_default()))
}

/// Event-by-event reasoning remover for one streamed answer. See the module docs.
#[derive(Debug)]
pub struct StreamStripper {
    api: Api,
    /// Per choice index (OpenAI) or upstream block index (Anthropic).
    filters: HashMap<u64, ThinkFilter>,
    /// Anthropic: upstream indices of dropped blocks.
    dropped: Vec<u64>,
}

/// Writes one SSE event: the non-data lines of `orig` (event name, id) then `data`.
fn write_event(orig: &[u8], data: &Value, out: &mut BytesMut) {
    for line in orig.split(|&b| b == b'\n') {
        let l = line.strip_suffix(b"\r").unwrap_or(line);
        if !l.is_empty() && !l.starts_with(b"data:") {
            out.extend_from_slice(l);
            out.extend_from_slice(b"\n");
        }
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&serde_json::to_vec(data).unwrap_or_default());
    out.extend_from_slice(b"\n\n");
}

impl StreamStripper {
    /// A stripper for a stream of `api`.
    pub fn new(api: Api) -> Self {
        Self {
            api,
            filters: HashMap::new(),
            dropped: Vec::new(),
        }
    }

    /// Rewrites one complete SSE event into `out` (nothing when the whole event is reasoning).
    pub fn event(&mut self, event: &[u8], out: &mut BytesMut) {
        let parsed = event_data(event)
            .filter(|d| d.first() == Some(&b'{'))
            .and_then(|d| serde_json::from_slice::<Value>(&d).ok());
        let Some(mut v) = parsed else {
            out.extend_from_slice(event); // [DONE], comments, keep-alives
            return;
        };
        let keep = match self.api {
            Api::AnthropicMessages => self.anthropic(&mut v, out),
            _ => self.openai(&mut v),
        };
        if keep {
            write_event(event, &v, out);
        }
    }

    fn openai(&mut self, v: &mut Value) -> bool {
        let Some(Value::Array(choices)) = v.get_mut("choices") else {
            return true;
        };
        let mut had_reasoning_only = !choices.is_empty();
        for c in choices.iter_mut() {
            let idx = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            let finished = c.get("finish_reason").is_some_and(|f| !f.is_null());
            let filter = self.filters.entry(idx).or_default();
            let mut removed = false;
            let field = if c.get("delta").is_some() {
                if let Some(d) = c.get_mut("delta").and_then(Value::as_object_mut) {
                    for f in REASONING_FIELDS {
                        removed |= d.remove(f).is_some();
                    }
                }
                "/delta/content"
            } else {
                "/text"
            };
            let mut text = match c.pointer(field) {
                Some(Value::String(s)) => {
                    let t = filter.push(s);
                    removed |= t.len() != s.len();
                    Some(t)
                }
                _ => None,
            };
            if finished {
                let rest = filter.finish();
                if !rest.is_empty() {
                    text.get_or_insert_with(String::new).push_str(&rest);
                }
            }
            if let Some(t) = text {
                if let Some(slot) = c.pointer_mut(field) {
                    *slot = Value::String(t);
                } else if let Some(d) = c.get_mut("delta").and_then(Value::as_object_mut) {
                    d.insert("content".into(), Value::String(t));
                }
            }
            let empty_delta = c.get("delta").and_then(Value::as_object).is_some_and(|d| {
                d.values().all(|x| x.is_null() || x.as_str() == Some("")) && removed
            });
            let empty_text = c.get("text") == Some(&Value::String(String::new())) && removed;
            if !(finished || c.get("logprobs").is_some_and(|l| !l.is_null()))
                && (empty_delta || empty_text)
            {
                continue;
            }
            had_reasoning_only = false;
        }
        // A chunk that only carried reasoning is dropped (usage chunks have no choices).
        !had_reasoning_only || v.get("usage").is_some_and(|u| !u.is_null())
    }

    fn new_index(&self, idx: u64) -> u64 {
        idx - self.dropped.iter().filter(|&&d| d < idx).count() as u64
    }

    fn anthropic(&mut self, v: &mut Value, out: &mut BytesMut) -> bool {
        let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
        let Some(idx) = v.get("index").and_then(Value::as_u64) else {
            if ty == "message_start" {
                if let Some(Value::Array(blocks)) = v.pointer_mut("/message/content") {
                    blocks.retain(|b| !is_reasoning_block(b.get("type").and_then(Value::as_str)));
                }
            }
            return true;
        };
        if self.dropped.contains(&idx) {
            return false;
        }
        match ty {
            "content_block_start" => {
                let bt = v.pointer("/content_block/type").and_then(Value::as_str);
                if is_reasoning_block(bt) {
                    self.dropped.push(idx);
                    return false;
                }
                if let Some(Value::String(s)) = v.pointer_mut("/content_block/text") {
                    let f = self.filters.entry(idx).or_default();
                    *s = f.push(s);
                }
            }
            "content_block_delta" => {
                let dt = v.pointer("/delta/type").and_then(Value::as_str);
                if matches!(dt, Some("thinking_delta" | "signature_delta")) {
                    return false;
                }
                if let Some(Value::String(s)) = v.pointer_mut("/delta/text") {
                    let f = self.filters.entry(idx).or_default();
                    let t = f.push(s);
                    if t.is_empty() {
                        return false;
                    }
                    *s = t;
                }
            }
            "content_block_stop" => {
                if let Some(mut f) = self.filters.remove(&idx) {
                    let rest = f.finish();
                    if !rest.is_empty() {
                        let delta = serde_json::json!({"type": "content_block_delta",
                            "index": self.new_index(idx),
                            "delta": {"type": "text_delta", "text": rest}});
                        let head = b"event: content_block_delta\n";
                        write_event(head, &delta, out);
                    }
                }
            }
            _ => {}
        }
        v["index"] = Value::from(self.new_index(idx));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::stream::SseSplitter;

    /// Runs `src` through the stripper cut at `cut`, returns the output events' data.
    fn run(api: Api, src: &str, cut: usize) -> Vec<Value> {
        let mut sp = SseSplitter::default();
        let mut st = StreamStripper::new(api);
        let mut out = BytesMut::new();
        for piece in [&src.as_bytes()[..cut], &src.as_bytes()[cut..]] {
            sp.push(piece);
            while let Some(ev) = sp.next_event() {
                st.event(&ev, &mut out);
            }
        }
        let mut sp = SseSplitter::default();
        sp.push(&out);
        let mut evs = vec![];
        while let Some(ev) = sp.next_event() {
            let d = event_data(&ev).unwrap().into_owned();
            if d != b"[DONE]" {
                evs.push(serde_json::from_slice(&d).unwrap());
            }
        }
        evs
    }

    fn openai_stream(pieces: &[&str]) -> String {
        let mut s = String::from(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"reasoning_content\":\"secret plan\"}}]}\n\n",
        );
        for p in pieces {
            let c = serde_json::json!({"choices":[{"index":0,"delta":{"content":p},"finish_reason":null}]});
            s += &format!("data: {c}\n\n");
        }
        s += "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
        s += "data: [DONE]\n\n";
        s
    }

    fn openai_text(evs: &[Value]) -> String {
        evs.iter()
            .filter_map(|e| {
                e.pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
            })
            .collect()
    }

    #[test]
    fn openai_stream_tags_split_at_every_byte() {
        let answer = "Ré<think>pensée 思考</think>ponse<think>a</think> ok <thinking";
        for split in 0..=answer.len() {
            if !answer.is_char_boundary(split) {
                continue;
            }
            let src = openai_stream(&[&answer[..split], &answer[split..]]);
            let evs = run(Api::OpenAiChat, &src, src.len() / 2);
            assert_eq!(
                openai_text(&evs),
                "Réponse ok <thinking",
                "split at {split}"
            );
            assert!(evs
                .iter()
                .all(|e| e.pointer("/choices/0/delta/reasoning_content").is_none()));
            assert!(!serde_json::to_string(&evs).unwrap().contains("secret"));
        }
    }

    #[test]
    fn openai_stream_unclosed_span_is_dropped() {
        let src = openai_stream(&["A", "<think>", "never", " closed"]);
        for cut in 0..src.len() {
            let evs = run(Api::OpenAiChat, &src, cut);
            assert_eq!(openai_text(&evs), "A");
            assert_eq!(
                evs.last().unwrap().pointer("/choices/0/finish_reason"),
                Some(&Value::from("stop"))
            );
        }
    }

    fn anthropic_stream(text_pieces: &[&str]) -> String {
        let mut evs: Vec<(&str, Value)> = vec![
            (
                "message_start",
                serde_json::json!({"type":"message_start","message":{"content":[]}}),
            ),
            (
                "content_block_start",
                serde_json::json!({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}),
            ),
            (
                "content_block_delta",
                serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"secret plan"}}),
            ),
            (
                "content_block_delta",
                serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig"}}),
            ),
            (
                "content_block_stop",
                serde_json::json!({"type":"content_block_stop","index":0}),
            ),
            (
                "content_block_start",
                serde_json::json!({"type":"content_block_start","index":1,"content_block":{"type":"redacted_thinking","data":"xx"}}),
            ),
            (
                "content_block_stop",
                serde_json::json!({"type":"content_block_stop","index":1}),
            ),
            (
                "content_block_start",
                serde_json::json!({"type":"content_block_start","index":2,"content_block":{"type":"text","text":""}}),
            ),
        ];
        for p in text_pieces {
            evs.push(("content_block_delta", serde_json::json!({"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":p}})));
        }
        evs.push((
            "content_block_stop",
            serde_json::json!({"type":"content_block_stop","index":2}),
        ));
        evs.push(("message_stop", serde_json::json!({"type":"message_stop"})));
        evs.iter()
            .map(|(n, d)| format!("event: {n}\ndata: {d}\n\n"))
            .collect()
    }

    #[test]
    fn anthropic_stream_drops_thinking_blocks_and_spans() {
        let answer = "ok <think>x</think>done <thi";
        for split in 0..=answer.len() {
            let src = anthropic_stream(&[&answer[..split], &answer[split..]]);
            let evs = run(Api::AnthropicMessages, &src, split * 7 % src.len());
            let text: String = evs
                .iter()
                .filter_map(|e| e.pointer("/delta/text").and_then(Value::as_str))
                .collect();
            assert_eq!(text, "ok done <thi", "split at {split}");
            let s = serde_json::to_string(&evs).unwrap();
            assert!(!s.contains("thinking") && !s.contains("secret") && !s.contains("sig"));
            // Remaining blocks are renumbered from 0.
            assert!(evs
                .iter()
                .filter_map(|e| e.get("index"))
                .all(|i| i == &Value::from(0)));
        }
    }

    #[test]
    fn whole_answers() {
        let oa = br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"<think>hm</think>Yes","reasoning_content":"hm"}}]}"#;
        let v: Value = serde_json::from_slice(&strip_whole(Api::OpenAiChat, oa).unwrap()).unwrap();
        assert_eq!(
            v.pointer("/choices/0/message/content"),
            Some(&Value::from("Yes"))
        );
        assert!(v.pointer("/choices/0/message/reasoning_content").is_none());
        let an = br#"{"content":[{"type":"thinking","thinking":"hm","signature":"s"},{"type":"redacted_thinking","data":"x"},{"type":"text","text":"A<think>b</think>C"}]}"#;
        let v: Value =
            serde_json::from_slice(&strip_whole(Api::AnthropicMessages, an).unwrap()).unwrap();
        assert_eq!(
            v["content"],
            serde_json::json!([{"type":"text","text":"AC"}])
        );
        assert!(strip_whole(Api::OpenAiChat, br#"{"choices":[]}"#).is_none());
    }
}
