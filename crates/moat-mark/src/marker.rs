//! Marking: rewrite every eligible word to the keyed choice of the active key.

use crate::detect::{detect_with, Detection};
use crate::engine::{may_rewrite, Decide, Engine, Position};
use crate::keyring::{Keyring, Prf};
use crate::stream::StreamMarker;
use std::borrow::Cow;

/// Marking/detection configuration. Detection must use the configuration the text was marked
/// with (the defaults, unless you changed them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkConfig {
    /// Number of preceding content words in the context (0 to 4; larger values are capped
    /// at 4). 2 (default) gives more distinct positions per text (more power, less
    /// deduplication); 1 survives light editing better; 0 (a *unigram* mark: one keyed choice
    /// per synonym set and key) is the one a model trained on marked text learns fastest, so
    /// it is the setting for proving distillation (radioactivity), at the price of fewer
    /// distinct positions per text and a bias that a frequency analysis of many answers can
    /// reveal.
    pub context_words: usize,
    /// Whether stop words (`the`, `is`, `you`, ...) count as context words. Off (default), the
    /// context is the previous content words, which survive light edits of function words;
    /// on, `context_words = 1` makes the context simply the previous word, so the same
    /// (context, set) tuples recur across many answers and a model trained on them learns
    /// the keyed choices as bigram preferences (see `docs/watermark.md#radioactivity`).
    pub context_stop_words: bool,
    /// Folds the contexts into this many classes (0, default: not folded). Each set then has
    /// at most this many keyed choices, each backed by every context of its class: fewer
    /// distinct positions per text, but choices a model trained on marked text sees often
    /// enough to learn.
    pub context_buckets: u32,
    /// Whether negative contractions (`do not` ↔ `don't`, ...) are used. They are the most
    /// frequent eligible positions in chat answers but change register slightly.
    pub contractions: bool,
}

impl Default for MarkConfig {
    fn default() -> Self {
        Self {
            context_words: 2,
            context_stop_words: false,
            context_buckets: 0,
            contractions: true,
        }
    }
}

/// What marking did to a text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MarkStats {
    /// Word tokens seen (outside opaque code).
    pub words: usize,
    /// Eligible positions (before deduplication).
    pub eligible: usize,
    /// Positions rewritten (a contraction counts once).
    pub changed: usize,
}

impl MarkStats {
    /// Fraction of words changed (0 for an empty text).
    pub fn changed_fraction(&self) -> f64 {
        if self.words == 0 {
            0.0
        } else {
            self.changed as f64 / self.words as f64
        }
    }
}

/// Decider that picks the keyed choice.
#[derive(Clone, Copy)]
pub(crate) struct KeyedChoice(pub Prf);

impl Decide for KeyedChoice {
    fn decide(&mut self, pos: &Position) -> usize {
        let len = crate::synonyms::SETS[pos.set as usize].members.len();
        self.0.choose(pos.ctx, pos.set, len)
    }
}

/// Watermarker bound to a keyring and configuration. Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Marker {
    keyring: Keyring,
    cfg: MarkConfig,
}

impl Marker {
    /// Creates a marker. Marking uses the keyring's active key.
    pub fn new(keyring: Keyring, cfg: MarkConfig) -> Self {
        Self { keyring, cfg }
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// The configuration.
    pub fn config(&self) -> MarkConfig {
        self.cfg
    }

    /// Marks a whole text.
    pub fn mark(&self, text: &str) -> String {
        let mut out = String::new();
        self.mark_into(text, &mut out);
        out
    }

    /// Marks a whole text, appending the result to `out` (reuse one buffer across calls to
    /// avoid allocating).
    pub fn mark_into(&self, text: &str, out: &mut String) {
        if !may_rewrite(text) {
            out.push_str(text);
            return;
        }
        out.reserve(text.len() + 16);
        let mut e = self.engine(text.len());
        e.push(text, out);
        e.finish(out);
    }

    /// Marks a whole text; borrows the input when marking leaves it unchanged because it has
    /// no word that could be rewritten (the common case for short answers).
    pub fn mark_cow<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if may_rewrite(text) {
            Cow::Owned(self.mark(text))
        } else {
            Cow::Borrowed(text)
        }
    }

    /// Marks a whole text and reports what changed.
    pub fn mark_with_stats(&self, text: &str) -> (String, MarkStats) {
        let mut out = String::with_capacity(text.len() + 16);
        let mut e = self.engine(text.len());
        e.push(text, &mut out);
        e.finish(&mut out);
        (out, e.stats)
    }

    fn engine(&self, cap: usize) -> Engine<KeyedChoice> {
        Engine::with_capacity(self.cfg, KeyedChoice(self.keyring.active_prf()), cap)
    }

    /// A streaming marker for one response (bounded hold-back; see [`StreamMarker`]).
    pub fn stream(&self) -> StreamMarker {
        StreamMarker::new(Engine::new(
            self.cfg,
            KeyedChoice(self.keyring.active_prf()),
        ))
    }

    /// Detects the watermark of every key in the keyring (see [`crate::detect()`]).
    pub fn detect(&self, text: &str) -> Vec<Detection> {
        detect_with(text, &self.keyring, self.cfg)
    }
}
