//! A borrowed, typed view of a request body: only the fields the signals read.
//!
//! Deserialising into this view is several times faster than building a
//! `serde_json::Value`, and it works from a JSON string (`serde_json::from_str`, used by
//! replay) and from an already parsed `Value` (`RequestView::from_value`, used by
//! [`crate::Engine::decide`]) with identical results, so live and offline decisions agree.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// Text content: a plain string or a list of typed parts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContentView<'a> {
    /// Text pieces (plain string, or the `text` of `text` parts).
    pub texts: Vec<Cow<'a, str>>,
    /// Whether a `tool_result` part is present (an agent loop).
    pub tool_result: bool,
}

#[derive(Deserialize)]
struct PartView<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for ContentView<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = ContentView<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of content parts")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(ContentView {
                    texts: vec![Cow::Borrowed(v)],
                    tool_result: false,
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ContentView {
                    texts: vec![Cow::Owned(v.to_string())],
                    tool_result: false,
                })
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(ContentView {
                    texts: vec![Cow::Owned(v)],
                    tool_result: false,
                })
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ContentView::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = ContentView::default();
                while let Some(p) = seq.next_element::<PartOrString<'a>>()? {
                    match p {
                        PartOrString::Text(t) => out.texts.push(t),
                        PartOrString::ToolResult => out.tool_result = true,
                        PartOrString::Other => {}
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

enum PartOrString<'a> {
    Text(Cow<'a, str>),
    ToolResult,
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for PartOrString<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = PartOrString<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a content part")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(PartOrString::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(PartOrString::Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(PartOrString::Text(Cow::Owned(v)))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(PartOrString::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(PartOrString::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(PartOrString::Other)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let p = PartView::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(match (p.kind.as_deref(), p.text) {
                    (Some("tool_result"), _) => PartOrString::ToolResult,
                    (Some("text") | Some("input_text") | None, Some(t)) => PartOrString::Text(t),
                    _ => PartOrString::Other,
                })
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// One chat message.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct MessageView<'a> {
    /// `system`, `developer`, `user`, `assistant`, `tool`, ...
    #[serde(borrow, default)]
    pub role: Cow<'a, str>,
    /// Text content.
    #[serde(borrow, default)]
    pub content: Option<ContentView<'a>>,
}

/// Anthropic request `metadata`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct MetadataView<'a> {
    /// End-user id.
    #[serde(borrow, default)]
    pub user_id: Option<Cow<'a, str>>,
}

/// A tool definition (only its name matters).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ToolView<'a> {
    /// Anthropic-style name.
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    /// OpenAI-style `function.name`.
    #[serde(borrow, default)]
    pub function: Option<FunctionView<'a>>,
}

/// OpenAI `function` object of a tool.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct FunctionView<'a> {
    /// Function name.
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
}

/// The fields of a request body that the detection signals read. Unknown fields are skipped.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RequestView<'a> {
    /// OpenAI end-user id (`user`), set by platforms serving many end users.
    #[serde(borrow, default)]
    pub user: Option<Cow<'a, str>>,
    /// OpenAI `safety_identifier`: a stable hash of the end user, the successor of `user`.
    #[serde(borrow, default)]
    pub safety_identifier: Option<Cow<'a, str>>,
    /// Anthropic `metadata` (its `user_id` is the end-user id).
    #[serde(borrow, default)]
    pub metadata: Option<MetadataView<'a>>,
    /// Chat messages (OpenAI chat, Anthropic messages).
    #[serde(borrow, default)]
    pub messages: Option<Vec<MessageView<'a>>>,
    /// Anthropic top-level system prompt.
    #[serde(borrow, default)]
    pub system: Option<ContentView<'a>>,
    /// Legacy completions prompt (string or list).
    #[serde(borrow, default)]
    pub prompt: Option<ContentView<'a>>,
    /// Tool definitions.
    #[serde(borrow, default)]
    pub tools: Option<Vec<ToolView<'a>>>,
    /// Legacy OpenAI function definitions.
    #[serde(borrow, default)]
    pub functions: Option<Vec<FunctionView<'a>>>,
    /// `max_tokens`.
    #[serde(default)]
    pub max_tokens: Option<Value>,
    /// `max_completion_tokens`.
    #[serde(default)]
    pub max_completion_tokens: Option<Value>,
    /// `max_output_tokens`.
    #[serde(default)]
    pub max_output_tokens: Option<Value>,
    /// `n` (completions per prompt).
    #[serde(default)]
    pub n: Option<Value>,
    /// `logprobs`.
    #[serde(default)]
    pub logprobs: Option<Value>,
    /// `top_logprobs`.
    #[serde(default)]
    pub top_logprobs: Option<Value>,
    /// `logit_bias`.
    #[serde(default)]
    pub logit_bias: Option<Value>,
    /// Anthropic `thinking`.
    #[serde(default)]
    pub thinking: Option<Value>,
    /// OpenAI `reasoning_effort`.
    #[serde(default)]
    pub reasoning_effort: Option<Value>,
    /// OpenAI `reasoning` object.
    #[serde(default)]
    pub reasoning: Option<Value>,
}

impl<'a> RequestView<'a> {
    /// View of an already parsed body (borrowing its strings). A body that does not fit
    /// the view (e.g. not an object) gives an empty view.
    pub fn from_value(v: &'a Value) -> RequestView<'a> {
        RequestView::deserialize(v).unwrap_or_default()
    }
}
