//! The local context that conditions the keyed choice.
//!
//! The context of a position is the last `n` (0 to 4; 2 by default) *content words* before it,
//! where a content word is any word token (outside opaque code) whose canonical form is not a
//! stop word — or, with `stop_words` on, the last `n` words of any kind (`n = 1`: simply the
//! previous word). Optionally the contexts are folded into a few classes. Words are lowercased
//! and **canonicalised**: a member of a synonym set is replaced by the set's first member
//! (`large` → `big`, `don't` → `do not`). Hence rewriting a word never changes the context of
//! any later position, so
//!
//! * marking is a pure per-position substitution: the contexts the detector recomputes on the
//!   marked text are exactly the contexts the marker used; and
//! * contexts (and which positions are eligible) are key-independent functions of the text, so
//!   on unmarked text each distinct (context, set) tuple hits the keyed choice with probability
//!   exactly `1/|set|`, independently across tuples (PRF outputs on distinct inputs).

use xxhash_rust::xxh3::xxh3_128;

/// Function words skipped when building the context (they carry little information and are
/// the most likely to be edited by light paraphrase).
pub(crate) const STOPWORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "of", "to", "in", "on", "at", "for", "with", "by",
    "from", "as", "is", "are", "was", "were", "be", "been", "it", "its", "this", "that", "these",
    "those", "i", "you", "he", "she", "we", "they", "them", "his", "her", "our", "your", "their",
    "my", "me", "us", "so", "if", "then", "than", "not", "no", "can", "will", "would", "should",
    "could", "do", "does", "did", "has", "have", "had", "there", "here", "which", "who", "what",
    "s", "t",
];

/// Sliding window of the last `n` content words.
///
/// Kept directly as the fingerprint input — `[n]`, one zero byte per missing word, then each
/// word followed by a zero byte — so a push is a small in-place edit and the fingerprint one
/// hash of a reused buffer (cached until the next push).
#[derive(Debug, Clone)]
pub(crate) struct Context {
    n: usize,
    /// Stop words count as context words.
    stop_words: bool,
    /// Contexts are folded into this many classes (0: not folded).
    buckets: u32,
    /// Number of words in the window.
    len: usize,
    /// Byte length (with terminator) of each word, oldest first.
    lens: [usize; 4],
    bytes: Vec<u8>,
    cached: Option<u128>,
}

impl Context {
    /// A context of the last `n` content words (`n` is capped at 4), or of the last `n` words
    /// of any kind when `stop_words` is set. With `n = 0` every position has the same (empty)
    /// context: the keyed choice depends on the synonym set alone (a unigram mark).
    ///
    /// With `buckets > 0` the fingerprint is folded into `buckets` classes (a key-independent
    /// hash of the words, modulo `buckets`): each synonym set then has at most `buckets`
    /// keyed choices, every one of them backed by all the contexts of its class.
    pub fn new(n: usize, stop_words: bool, buckets: u32) -> Self {
        let n = n.min(4);
        let mut bytes = Vec::with_capacity(64);
        bytes.push(n as u8);
        // Left-pad missing words so "start of text" is a context of its own.
        bytes.resize(1 + n, 0);
        Self {
            n,
            stop_words,
            buckets,
            len: 0,
            lens: [0; 4],
            bytes,
            cached: None,
        }
    }

    /// Records a word (already canonical lowercase).
    #[cfg(test)]
    pub fn push(&mut self, canonical: &str) {
        self.push_word(canonical, STOPWORDS.contains(&canonical));
    }

    /// Records a word (already canonical lowercase) whose stop-word status is known.
    #[inline]
    pub fn push_word(&mut self, canonical: &str, stop: bool) {
        if (stop && !self.stop_words) || self.n == 0 {
            return;
        }
        if self.len == self.n {
            let first = self.lens[0];
            self.bytes.drain(1..1 + first);
            self.lens.copy_within(1..self.n, 0);
        } else {
            self.bytes.remove(1);
            self.len += 1;
        }
        self.bytes.extend_from_slice(canonical.as_bytes());
        self.bytes.push(0);
        self.lens[self.len - 1] = canonical.len() + 1;
        self.cached = None;
    }

    /// Key-independent 128-bit fingerprint of the current context.
    #[inline]
    pub fn fingerprint(&mut self) -> u128 {
        let buckets = self.buckets;
        *self.cached.get_or_insert_with(|| match buckets {
            0 => xxh3_128(&self.bytes),
            b => xxh3_128(&self.bytes) % u128::from(b),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The original definition of the fingerprint.
    fn reference(n: usize, words: &[&str]) -> u128 {
        let n = n.min(4);
        let kept: Vec<&&str> = words.iter().filter(|w| !STOPWORDS.contains(w)).collect();
        let kept = &kept[kept.len().saturating_sub(n)..];
        let mut bytes = vec![n as u8];
        bytes.resize(1 + n - kept.len(), 0);
        for w in kept {
            bytes.extend_from_slice(w.as_bytes());
            bytes.push(0);
        }
        xxh3_128(&bytes)
    }

    #[test]
    fn fingerprint_matches_definition() {
        let words = [
            "big",
            "the",
            "do not",
            "x",
            "a",
            "modèle",
            "",
            "it is",
            "of",
            "longer word",
            "y",
        ];
        for n in 0..6 {
            let mut c = Context::new(n, false, 0);
            assert_eq!(c.fingerprint(), reference(n, &[]));
            for i in 0..words.len() {
                c.push(words[i]);
                assert_eq!(c.fingerprint(), reference(n, &words[..=i]), "n {n} i {i}");
            }
        }
    }
}
