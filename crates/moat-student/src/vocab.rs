//! Word-level tokenizer and vocabulary.
//!
//! Text is split into words (letters/digits with inner apostrophes, so `don't` is one token),
//! runs of one punctuation character (`**`, `...`), and newlines. Whitespace is not stored:
//! [`detokenize`] re-inserts it with fixed rules (no space before `,.;:!?)`, none after `(`,
//! glued hyphens/slashes between words are kept glued). The vocabulary keeps the `K` most
//! frequent tokens; everything else maps to `<unk>`. Word-level tokens let a small student see
//! each synonym choice (`often` vs `frequently`, `don't` vs `do not`) as whole tokens.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Id of the unknown-token placeholder.
pub const UNK: u32 = 0;
/// Id of the document separator (also used as beginning-of-sequence for generation).
pub const EOS: u32 = 1;
/// Marker for a `-` or `/` glued between two words (`large-scale` -> `large @-@ scale`).
const GLUE_PREFIX: &str = "@";

/// A fixed word-level vocabulary: id -> token and token -> id.
#[derive(Debug, Clone)]
pub struct Vocab {
    tokens: Vec<String>,
    index: HashMap<String, u32>,
}

#[derive(Serialize, Deserialize)]
struct VocabFile {
    tokens: Vec<String>,
}

impl Vocab {
    /// Builds a vocabulary of at most `size` entries (including `<unk>` and `<eos>`) from the
    /// most frequent tokens of `docs`; ties are broken by token text, so it is deterministic.
    pub fn build<'a>(docs: impl IntoIterator<Item = &'a str>, size: usize) -> Self {
        let mut counts: HashMap<String, u64> = HashMap::new();
        for d in docs {
            for t in tokenize(d) {
                *counts.entry(t).or_default() += 1;
            }
        }
        let mut by_freq: Vec<(String, u64)> = counts.into_iter().collect();
        by_freq.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut tokens = vec!["<unk>".to_string(), "<eos>".to_string()];
        tokens.extend(
            by_freq
                .into_iter()
                .map(|(t, _)| t)
                .take(size.saturating_sub(2)),
        );
        Self::from_tokens(tokens)
    }

    fn from_tokens(tokens: Vec<String>) -> Self {
        let index = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Self { tokens, index }
    }

    /// Number of entries, specials included.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// True if the vocabulary has no entries (never the case for a built one).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Token ids of `text` (unknown tokens map to [`UNK`]).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        tokenize(text)
            .into_iter()
            .map(|t| self.index.get(&t).copied().unwrap_or(UNK))
            .collect()
    }

    /// Text of `ids`: specials are dropped, whitespace is re-inserted by [`detokenize`].
    pub fn decode(&self, ids: &[u32]) -> String {
        let toks: Vec<&str> = ids
            .iter()
            .filter(|&&i| i != UNK && i != EOS)
            .filter_map(|&i| self.tokens.get(i as usize).map(String::as_str))
            .collect();
        detokenize(&toks)
    }

    /// Writes the vocabulary as JSON (`{"tokens": [...]}`).
    pub fn save(&self, path: &Path) -> Result<()> {
        let f = VocabFile {
            tokens: self.tokens.clone(),
        };
        std::fs::write(path, serde_json::to_vec(&f)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Reads a vocabulary written by [`Vocab::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let f: VocabFile = serde_json::from_slice(&bytes)?;
        if f.tokens.len() < 3 || f.tokens[0] != "<unk>" || f.tokens[1] != "<eos>" {
            bail!("{}: not a moat-student vocabulary", path.display());
        }
        Ok(Self::from_tokens(f.tokens))
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

fn is_apostrophe(c: char) -> bool {
    c == '\'' || c == '\u{2019}'
}

/// Splits `text` into word-level tokens (see the module docs).
pub fn tokenize(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut newlines = 0usize;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            // At most two newlines in a row (a paragraph break).
            if newlines < 2 {
                out.push("\n".to_string());
            }
            newlines += 1;
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        newlines = 0;
        if is_word_char(c) {
            let start = i;
            i += 1;
            while i < chars.len() {
                if is_word_char(chars[i]) {
                    i += 1;
                } else if is_apostrophe(chars[i])
                    && i + 1 < chars.len()
                    && chars[i + 1].is_alphabetic()
                {
                    i += 2;
                } else {
                    break;
                }
            }
            out.push(chars[start..i].iter().collect());
            continue;
        }
        // A hyphen or slash glued between two words.
        if (c == '-' || c == '/')
            && i > 0
            && is_word_char(chars[i - 1])
            && i + 1 < chars.len()
            && is_word_char(chars[i + 1])
        {
            out.push(format!("{GLUE_PREFIX}{c}{GLUE_PREFIX}"));
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i] == c && i - start < 8 {
            i += 1;
        }
        out.push(chars[start..i].iter().collect());
    }
    out
}

fn no_space_before(t: &str) -> bool {
    matches!(
        t,
        "," | "." | ";" | ":" | "!" | "?" | ")" | "]" | "}" | "%" | "..." | "\n"
    ) || is_glue(t)
}

fn no_space_after(t: &str) -> bool {
    matches!(t, "(" | "[" | "{" | "$" | "\n") || is_glue(t)
}

fn is_glue(t: &str) -> bool {
    t.len() == 3 && t.starts_with(GLUE_PREFIX) && t.ends_with(GLUE_PREFIX)
}

/// Joins tokens into text: single spaces between tokens except around punctuation, glued
/// hyphens/slashes and newlines; `"` alternates between opening and closing within a line.
pub fn detokenize<T: AsRef<str>>(tokens: &[T]) -> String {
    let mut s = String::new();
    let mut prev: Option<&str> = None;
    let mut quote_open = false;
    for t in tokens {
        let t = t.as_ref();
        let is_quote = t == "\"";
        let space = match prev {
            None => false,
            Some(p) => {
                let closing_quote = is_quote && quote_open;
                let after_opening_quote = p == "\"" && quote_open;
                !(no_space_after(p) || no_space_before(t) || closing_quote || after_opening_quote)
            }
        };
        if space {
            s.push(' ');
        }
        if is_glue(t) {
            s.push_str(&t[1..2]);
        } else {
            s.push_str(t);
        }
        if is_quote {
            quote_open = !quote_open;
        }
        if t == "\n" {
            quote_open = false;
        }
        prev = Some(t);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenize_keeps_contractions_and_glue() {
        let t = tokenize("I don't think it's a large-scale, big deal... (really)!\n\n\nOk");
        assert_eq!(
            t,
            vec![
                "I", "don't", "think", "it's", "a", "large", "@-@", "scale", ",", "big", "deal",
                "...", "(", "really", ")", "!", "\n", "\n", "Ok"
            ]
        );
    }

    #[test]
    fn round_trip_of_ordinary_prose() {
        let texts = [
            "Sure, here's an example: you can often use it (in most cases).",
            "It doesn't matter; the large-scale model is 3/4 done!\n\nNext paragraph.",
            "He said \"do not go\" and left.",
        ];
        for text in texts {
            assert_eq!(detokenize(&tokenize(text)), text, "{text}");
        }
    }

    #[test]
    fn vocab_round_trip_and_unk() {
        let docs = ["the cat sat on the mat.", "the dog sat."];
        let v = Vocab::build(docs, 100);
        assert_eq!(v.len(), 2 + 7); // the cat sat on mat . dog
        let ids = v.encode("the cat sat on the mat.");
        assert!(ids.iter().all(|&i| i != UNK));
        assert_eq!(v.decode(&ids), "the cat sat on the mat.");
        // Unknown words become <unk> and are dropped when decoding.
        let ids = v.encode("the zebra sat.");
        assert_eq!(ids[1], UNK);
        assert_eq!(v.decode(&ids), "the sat.");
        // Truncated vocabulary keeps the most frequent tokens.
        let small = Vocab::build(docs, 4);
        assert_eq!(small.tokens[2..], ["the".to_string(), ".".to_string()]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vocab.json");
        v.save(&p).unwrap();
        let back = Vocab::load(&p).unwrap();
        assert_eq!(back.tokens, v.tokens);
    }
}
