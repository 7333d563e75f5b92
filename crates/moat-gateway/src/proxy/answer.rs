//! A complete (non-streamed) answer, parsed once for everything the gateway reads from it:
//! usage and finish reason for the limits and the audit log, and the text fields — decoded,
//! with their byte spans in the body — for the audit text prefix and the watermark
//! ([`crate::watermark_json::mark_answer`]). Nothing else is decoded: ids, tool calls,
//! logprobs are skipped by the parser and copied byte for byte by whoever rewrites the body.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::api::Api;
use crate::proxy::usage::{Outcome, UsageView};

/// One string field of the answer's generated text.
pub struct AnswerText<'a> {
    /// Byte range of the JSON string (quotes included) in the body.
    pub span: (usize, usize),
    /// The decoded text.
    pub text: Cow<'a, str>,
    /// Part of the audit log's text prefix (the first choice's text, every block's).
    pub audited: bool,
    /// Watermarked (every choice's text and reasoning, Anthropic `text` / `thinking` blocks).
    pub marked: bool,
}

/// A complete answer of one API, parsed once.
#[derive(Default)]
pub struct Answer<'a> {
    usage: Option<UsageView>,
    finish_reason: Option<Cow<'a, str>>,
    /// Text fields in the order they are generated.
    pub texts: Vec<AnswerText<'a>>,
}

#[derive(Deserialize)]
struct OpenAiAnswer<'a> {
    #[serde(default)]
    usage: Option<UsageView>,
    #[serde(borrow, default)]
    choices: Option<Vec<OpenAiChoice<'a>>>,
}

#[derive(Deserialize)]
struct OpenAiChoice<'a> {
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<MessageView<'a>>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
}

/// The text fields of an OpenAI `message` (whole answer) or `delta` (stream chunk), as raw
/// JSON inside the body.
#[derive(Deserialize)]
pub(crate) struct MessageView<'a> {
    #[serde(borrow, default)]
    pub(crate) content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) reasoning_content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) reasoning: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct AnthropicAnswer<'a> {
    #[serde(default)]
    usage: Option<UsageView>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<Vec<BlockView<'a>>>,
}

/// An Anthropic content block's type and text fields, as raw JSON inside the body.
#[derive(Deserialize)]
pub(crate) struct BlockView<'a> {
    #[serde(borrow, rename = "type", default)]
    pub(crate) kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) thinking: Option<&'a RawValue>,
}

impl<'a> Answer<'a> {
    /// Parses a complete answer of `api`. `None` when the body is not JSON of the API's shape
    /// (an upstream's own format, say): it is then passed on as it is, unread.
    pub fn parse(api: Api, body: &'a [u8]) -> Option<Self> {
        let mut answer = Answer::default();
        if api == Api::AnthropicMessages {
            let v: AnthropicAnswer<'a> = serde_json::from_slice(body).ok()?;
            answer.usage = v.usage;
            answer.finish_reason = v.stop_reason;
            for b in v.content.into_iter().flatten() {
                let kind = b.kind.as_deref();
                answer.push(body, b.thinking, true, kind == Some("thinking"));
                answer.push(body, b.text, true, kind == Some("text"));
            }
        } else {
            let v: OpenAiAnswer<'a> = serde_json::from_slice(body).ok()?;
            answer.usage = v.usage;
            for (i, c) in v.choices.into_iter().flatten().enumerate() {
                let first = i == 0;
                if first {
                    answer.finish_reason = c.finish_reason;
                }
                if let Some(m) = c.message {
                    answer.push(body, m.reasoning_content, first, true);
                    answer.push(body, m.reasoning, false, true);
                    answer.push(body, m.content, first, true);
                }
                answer.push(body, c.text, first, true);
            }
        }
        Some(answer)
    }

    /// Adds a field when it is a JSON string inside `body`.
    fn push(&mut self, body: &'a [u8], raw: Option<&'a RawValue>, audited: bool, marked: bool) {
        let Some(raw) = raw else { return };
        let (Some(span), Some(text)) = (span(body, raw), decode(raw)) else {
            return;
        };
        self.texts.push(AnswerText {
            span,
            text,
            audited,
            marked,
        });
    }

    /// Records usage, finish reason and the audited text (at most `cap` bytes kept) in `out`.
    pub fn read_into(&self, out: &mut Outcome, cap: usize) {
        if let Some(u) = &self.usage {
            u.apply(out);
        }
        if let Some(f) = &self.finish_reason {
            out.finish_reason = Some(f.to_string());
        }
        for t in self.texts.iter().filter(|t| t.audited) {
            out.push_text(&t.text, cap);
        }
    }
}

/// Decodes a raw JSON string (`None` for any other JSON type).
pub(crate) fn decode(raw: &RawValue) -> Option<Cow<'_, str>> {
    if !raw.get().starts_with('"') {
        return None;
    }
    serde_json::from_str::<Cow<'_, str>>(raw.get()).ok()
}

/// `raw`'s byte range inside `base` (it must borrow from it).
pub(crate) fn span(base: &[u8], raw: &RawValue) -> Option<(usize, usize)> {
    let s = raw.get().as_bytes();
    let start = (s.as_ptr() as usize).checked_sub(base.as_ptr() as usize)?;
    (start + s.len() <= base.len()).then_some((start, start + s.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(api: Api, body: &[u8], cap: usize) -> Outcome {
        let mut o = Outcome::default();
        if let Some(a) = Answer::parse(api, body) {
            a.read_into(&mut o, cap);
        }
        o
    }

    #[test]
    fn openai_usage_finish_and_text() {
        let b = br#"{"choices":[{"message":{"content":"h\u00e9llo"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#;
        let o = read(Api::OpenAiChat, b, 3);
        assert_eq!((o.input_tokens, o.output_tokens), (Some(3), Some(2)));
        assert_eq!(o.finish_reason.as_deref(), Some("stop"));
        assert_eq!(o.text, "h\u{e9}"); // cut on a char boundary
        assert_eq!(o.text_bytes, 6);
    }

    #[test]
    fn anthropic_usage_finish_and_text() {
        let b = br#"{"content":[{"type":"thinking","thinking":"hm "},{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":4,"cache_read_input_tokens":2,"output_tokens":1}}"#;
        let o = read(Api::AnthropicMessages, b, 100);
        assert_eq!((o.input_tokens, o.output_tokens), (Some(6), Some(1)));
        assert_eq!(o.finish_reason.as_deref(), Some("end_turn"));
        assert_eq!(o.text, "hm hi");
    }

    #[test]
    fn spans_point_at_the_strings_and_only_the_first_choice_is_audited() {
        let b = br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"a\"b","reasoning":"r","tool_calls":[{"function":{"arguments":"{}"}}]}},{"index":1,"text":"second"}]}"#;
        let a = Answer::parse(Api::OpenAiChat, b).unwrap();
        let got: Vec<_> = a
            .texts
            .iter()
            .map(|t| {
                let (s, e) = t.span;
                (
                    std::str::from_utf8(&b[s..e]).unwrap(),
                    t.text.as_ref(),
                    t.audited,
                    t.marked,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("\"r\"", "r", false, true),
                ("\"a\\\"b\"", "a\"b", true, true),
                ("\"second\"", "second", false, true),
            ]
        );
        let o = read(Api::OpenAiChat, b, 100);
        assert_eq!(o.text, "a\"b");
    }

    #[test]
    fn other_shapes_are_not_read() {
        assert!(Answer::parse(Api::OpenAiChat, b"not json").is_none());
        assert!(Answer::parse(Api::AnthropicMessages, br#"{"content":"x"}"#).is_none());
        // Content parts (not a string) and null fields carry no text.
        let a = Answer::parse(
            Api::OpenAiChat,
            br#"{"choices":[{"message":{"content":[1,2],"reasoning":null},"finish_reason":null}],"usage":null}"#,
        )
        .unwrap();
        assert!(a.texts.is_empty() && a.finish_reason.is_none() && a.usage.is_none());
    }
}
