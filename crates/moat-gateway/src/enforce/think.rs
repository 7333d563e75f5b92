//! Streaming removal of `<think>…</think>` spans from generated text, as open reasoning
//! models (DeepSeek-R1, QwQ, …) emit them inside the answer.
//!
//! [`ThinkFilter`] takes the text in arbitrary pieces (stream deltas) and returns what may be
//! shown. It holds back at most one partial tag (`<`, `<th`, `</thin`, …: fewer than 8 bytes),
//! never the answer itself. Several spans per answer are removed; a span still open when the
//! text ends is dropped (the model was cut off mid-thought). The tags are ASCII, so a held-back
//! suffix always starts on a character boundary.

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// Incremental `<think>` span remover. See the module docs.
#[derive(Debug, Default, Clone)]
pub struct ThinkFilter {
    inside: bool,
    /// A possible partial tag carried over from the previous piece.
    held: String,
}

/// Length of the longest suffix of `s` that is a proper prefix of `tag`.
fn partial_suffix(s: &str, tag: &str) -> usize {
    let max = (tag.len() - 1).min(s.len());
    (1..=max)
        .rev()
        .find(|&n| s.is_char_boundary(s.len() - n) && tag.starts_with(&s[s.len() - n..]))
        .unwrap_or(0)
}

impl ThinkFilter {
    /// A filter outside any span.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the text is currently inside a span.
    pub fn inside(&self) -> bool {
        self.inside
    }

    /// Feeds one piece; returns the visible text it completes (maybe empty).
    pub fn push(&mut self, piece: &str) -> String {
        let mut out = String::new();
        let joined;
        let mut rest: &str = if self.held.is_empty() {
            piece
        } else {
            joined = std::mem::take(&mut self.held) + piece;
            &joined
        };
        loop {
            let tag = if self.inside { CLOSE } else { OPEN };
            match rest.find(tag) {
                Some(i) => {
                    if !self.inside {
                        out.push_str(&rest[..i]);
                    }
                    rest = &rest[i + tag.len()..];
                    self.inside = !self.inside;
                }
                None => {
                    let keep = partial_suffix(rest, tag);
                    let (emit, hold) = rest.split_at(rest.len() - keep);
                    if !self.inside {
                        out.push_str(emit);
                    }
                    self.held = hold.to_string();
                    return out;
                }
            }
        }
    }

    /// The text is complete: returns a held partial tag that turned out to be text.
    /// An unclosed span is dropped.
    pub fn finish(&mut self) -> String {
        let held = std::mem::take(&mut self.held);
        if self.inside {
            String::new()
        } else {
            held
        }
    }

    /// The whole text at once.
    pub fn strip(text: &str) -> String {
        let mut f = ThinkFilter::new();
        let mut out = f.push(text);
        out.push_str(&f.finish());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(text: &str, cuts: &[usize]) -> String {
        let mut f = ThinkFilter::new();
        let mut out = String::new();
        let mut prev = 0;
        for &c in cuts {
            out.push_str(&f.push(&text[prev..c]));
            prev = c;
        }
        out.push_str(&f.push(&text[prev..]));
        out.push_str(&f.finish());
        out
    }

    #[test]
    fn removes_spans() {
        assert_eq!(ThinkFilter::strip("<think>a</think>b"), "b");
        assert_eq!(
            ThinkFilter::strip("x<think>a</think>y<think>b</think>z"),
            "xyz"
        );
        assert_eq!(ThinkFilter::strip("answer <think>never closed"), "answer ");
        assert_eq!(
            ThinkFilter::strip("a < b and <thin ice>"),
            "a < b and <thin ice>"
        );
        assert_eq!(ThinkFilter::strip("ends with <thi"), "ends with <thi");
        assert_eq!(
            ThinkFilter::strip("</think> stray close"),
            "</think> stray close"
        );
    }

    #[test]
    fn split_at_every_byte_position() {
        let text = "héllo <think>pensée 思考 </think>→ réponse<think>x</think> fin 終";
        let want = "héllo → réponse fin 終";
        for i in 0..=text.len() {
            if !text.is_char_boundary(i) {
                continue;
            }
            assert_eq!(chunked(text, &[i]), want, "cut at {i}");
            for j in i..=text.len() {
                if text.is_char_boundary(j) {
                    assert_eq!(chunked(text, &[i, j]), want, "cuts at {i},{j}");
                }
            }
        }
        // One character at a time.
        let cuts: Vec<usize> = text.char_indices().map(|(i, _)| i).skip(1).collect();
        assert_eq!(chunked(text, &cuts), want);
    }

    #[test]
    fn holds_back_at_most_a_partial_tag() {
        let mut f = ThinkFilter::new();
        assert_eq!(f.push("abc </thi"), "abc </thi");
        assert_eq!(f.push("abc <thi"), "abc ");
        assert_eq!(f.held.len(), 4);
        assert_eq!(f.push("nk>secret"), "");
        assert!(f.inside());
        assert_eq!(f.push("</th"), "");
        assert_eq!(f.push("ink>ok"), "ok");
        assert_eq!(f.finish(), "");
    }
}
