//! Strict input: what a request body must be before anything reads it or it is forwarded.
//!
//! * UTF-8 throughout (JSON is UTF-8, RFC 8259; serde_json only checks the strings it decodes,
//!   not the ones it skips, and an upstream fed invalid bytes fails in its own way);
//! * arrays and objects nested at most [`MAX_JSON_DEPTH`] deep (serde_json skips unknown fields
//!   without a depth limit, so a 100,000-deep value would otherwise reach the upstream, and
//!   every later parse of an accepted body — the degrade rewrite, the watermark — stops at
//!   serde_json's own limit of 128);
//! * the fields the gateway reads of the expected JSON type ([`MessagesShape`], [`TextShape`]
//!   here; the rest in [`super::usage::RequestView`] and, when detection runs, the detection
//!   engine's view, parsed once and handed to it).
//!
//! All of it is a single pass or less over the body: `str::from_utf8`, then a bracket count
//! (SIMD `memchr`) that only falls back to a scan of the structure when the body has more
//! opening brackets than the limit.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::error::GatewayError;

/// Deepest nesting of arrays and objects accepted in a request body.
pub const MAX_JSON_DEPTH: usize = 100;

/// The body as UTF-8 text, nested at most `MAX_JSON_DEPTH` deep; the error a client gets
/// otherwise (400 `invalid_json` for bytes that are not UTF-8, 400 `invalid_request` for
/// nesting too deep).
pub fn check_body(body: &[u8]) -> Result<&str, GatewayError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        GatewayError::InvalidJson(format!(
            "request body is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    if depth_exceeds(body, MAX_JSON_DEPTH) {
        return Err(GatewayError::InvalidRequest(format!(
            "request body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep"
        )));
    }
    Ok(text)
}

/// Whether arrays/objects in `json` nest deeper than `max` (brackets inside strings are not
/// counted). Malformed JSON is not diagnosed here: the parser that follows does that.
pub fn depth_exceeds(json: &[u8], max: usize) -> bool {
    // Fewer opening brackets than the limit (strings included): it cannot be exceeded.
    if memchr::memchr2_iter(b'[', b'{', json).count() <= max {
        return false;
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// The body in the detection engine's view (what `moat replay` parses from the audit log),
/// for a body [`super::usage::RequestView::parse`] accepted. A body that does not fit it (a
/// message whose `role` is a number, `tools` that is not an array, …) is refused with 400
/// `invalid_request` rather than scored as an empty request.
pub fn detection_view(body: &[u8]) -> Result<moat_detect::RequestView<'_>, GatewayError> {
    serde_json::from_slice(body)
        .map_err(|e| GatewayError::InvalidRequest(format!("invalid request: {e}")))
}

/// `messages`: an array of objects (their contents are skipped here; the detection view reads
/// them when detection runs).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MessagesShape {
    /// Number of messages.
    pub len: usize,
}

impl<'de> Deserialize<'de> for MessagesShape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MessagesShape;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of message objects")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut len = 0;
                while seq.next_element::<ObjectShape>()?.is_some() {
                    len += 1;
                }
                Ok(MessagesShape { len })
            }
        }
        d.deserialize_seq(V)
    }
}

/// Any JSON object (its entries skipped).
struct ObjectShape;

impl<'de> Deserialize<'de> for ObjectShape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ObjectShape;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(ObjectShape)
            }
        }
        d.deserialize_map(V)
    }
}

/// Text the gateway and the detection engine read: a string, or an array of parts
/// (completions `prompt`, Anthropic `system`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TextShape;

impl<'de> Deserialize<'de> for TextShape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TextShape;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(TextShape)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(TextShape)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_limit() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(!depth_exceeds(
            nested(MAX_JSON_DEPTH).as_bytes(),
            MAX_JSON_DEPTH
        ));
        assert!(depth_exceeds(
            nested(MAX_JSON_DEPTH + 1).as_bytes(),
            MAX_JSON_DEPTH
        ));
        // Brackets inside strings (escaped quotes included) do not count.
        let s = format!(r#"{{"a":"\"{}"}}"#, "[".repeat(500));
        assert!(!depth_exceeds(s.as_bytes(), 10));
        // Many brackets side by side are not deep.
        let wide = format!("[{}]", vec!["{}"; 500].join(","));
        assert!(!depth_exceeds(wide.as_bytes(), 2));
        assert!(depth_exceeds(wide.as_bytes(), 1));
        let deep = format!(r#"{{"model":"m","x":{}}}"#, nested(100_000));
        assert!(matches!(
            check_body(deep.as_bytes()),
            Err(GatewayError::InvalidRequest(_))
        ));
    }

    #[test]
    fn utf8_is_required() {
        assert!(matches!(
            check_body(b"{\"model\":\"m\xff\"}"),
            Err(GatewayError::InvalidJson(m)) if m.contains("offset 11")
        ));
        assert_eq!(
            check_body("{\"a\":\"é\"}".as_bytes()).unwrap(),
            "{\"a\":\"é\"}"
        );
    }

    #[test]
    fn shapes() {
        let m: MessagesShape = serde_json::from_str(r#"[{"role":"user"},{}]"#).unwrap();
        assert_eq!(m.len, 2);
        assert!(serde_json::from_str::<MessagesShape>(r#""hi""#).is_err());
        assert!(serde_json::from_str::<MessagesShape>(r#"[1]"#).is_err());
        assert!(serde_json::from_str::<MessagesShape>(r#"{"a":1}"#).is_err());
        assert!(serde_json::from_str::<TextShape>(r#""hi""#).is_ok());
        assert!(serde_json::from_str::<TextShape>(r#"[1,"a"]"#).is_ok());
        assert!(serde_json::from_str::<TextShape>(r#"5"#).is_err());
        assert!(serde_json::from_str::<TextShape>(r#"{}"#).is_err());
    }
}
