//! The local context that conditions the keyed choice.
//!
//! The context of a position is the last `n` (1 or 2) *content words* before it, where a
//! content word is any word token (outside opaque code) whose canonical form is not a stop
//! word. Words are lowercased and **canonicalised**: a member of a synonym set is replaced by
//! the set's first member (`large` → `big`, `don't` → `do not`). Hence rewriting a word never
//! changes the context of any later position, so
//!
//! * marking is a pure per-position substitution: the contexts the detector recomputes on the
//!   marked text are exactly the contexts the marker used; and
//! * contexts (and which positions are eligible) are key-independent functions of the text, so
//!   on unmarked text each distinct (context, set) tuple hits the keyed choice with probability
//!   exactly `1/|set|`, independently across tuples (PRF outputs on distinct inputs).

use std::collections::VecDeque;
use xxhash_rust::xxh3::xxh3_128;

/// Function words skipped when building the context (they carry little information and are
/// the most likely to be edited by light paraphrase).
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "of", "to", "in", "on", "at", "for", "with", "by",
    "from", "as", "is", "are", "was", "were", "be", "been", "it", "its", "this", "that", "these",
    "those", "i", "you", "he", "she", "we", "they", "them", "his", "her", "our", "your", "their",
    "my", "me", "us", "so", "if", "then", "than", "not", "no", "can", "will", "would", "should",
    "could", "do", "does", "did", "has", "have", "had", "there", "here", "which", "who", "what",
    "s", "t",
];

/// Sliding window of the last `n` content words.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    n: usize,
    words: VecDeque<String>,
}

impl Context {
    /// A context of the last `n` content words (`n` is clamped to 1..=4).
    pub fn new(n: usize) -> Self {
        Self {
            n: n.clamp(1, 4),
            words: VecDeque::new(),
        }
    }

    /// Records a word (already canonical lowercase).
    pub fn push(&mut self, canonical: &str) {
        if STOPWORDS.contains(&canonical) {
            return;
        }
        if self.words.len() == self.n {
            self.words.pop_front();
        }
        self.words.push_back(canonical.to_string());
    }

    /// Key-independent 128-bit fingerprint of the current context.
    pub fn fingerprint(&self) -> u128 {
        let mut bytes = Vec::with_capacity(32);
        bytes.push(self.n as u8);
        // Left-pad missing words so "start of text" is a context of its own.
        bytes.resize(bytes.len() + (self.n - self.words.len()), 0);
        for w in &self.words {
            bytes.extend_from_slice(w.as_bytes());
            bytes.push(0);
        }
        xxh3_128(&bytes)
    }
}
