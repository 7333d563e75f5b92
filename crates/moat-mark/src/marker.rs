//! Marking: rewrite every eligible word to the keyed choice of the active key.

use crate::detect::{detect_with, Detection};
use crate::engine::{Decide, Engine, Position};
use crate::keyring::{Keyring, Prf};
use crate::stream::StreamMarker;

/// Marking/detection configuration. Detection must use the configuration the text was marked
/// with (the defaults, unless you changed them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkConfig {
    /// Number of preceding content words in the context (1 or 2; clamped to 1..=4).
    /// 2 (default) gives more distinct positions per text (more power, less deduplication);
    /// 1 survives light editing better.
    pub context_words: usize,
    /// Whether negative contractions (`do not` ↔ `don't`, ...) are used. They are the most
    /// frequent eligible positions in chat answers but change register slightly.
    pub contractions: bool,
}

impl Default for MarkConfig {
    fn default() -> Self {
        Self {
            context_words: 2,
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
        self.mark_with_stats(text).0
    }

    /// Marks a whole text and reports what changed.
    pub fn mark_with_stats(&self, text: &str) -> (String, MarkStats) {
        let mut s = self.stream();
        let mut out = s.push(text);
        out.push_str(&s.finish());
        (out, s.stats())
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
