//! # moat-mark — keyed lexical text watermark
//!
//! A watermark for model output that works on plain text from any upstream. At *eligible
//! positions* — a word from a curated set of interchangeable words ([`synonyms`]) in ordinary
//! prose — the marker rewrites the word to the member chosen by a keyed PRF of the local
//! context (the previous content words, canonicalised) and the set. Detection recomputes the
//! positions, counts how many words equal each key's choice, and reports an exact
//! Poisson-binomial p-value.
//!
//! ```
//! use moat_mark::{Keyring, MarkConfig, MarkKey, Marker};
//!
//! let keyring = Keyring::new(MarkKey::new("k2026a", [7u8; 32]).unwrap());
//! let marker = Marker::new(keyring, MarkConfig::default());
//! let marked = marker.mark("I don't think it is a big problem.");
//!
//! // Streaming with arbitrary chunking gives the same bytes.
//! let mut s = marker.stream();
//! let mut out = s.push("I do");
//! out += &s.push("n't think it is a b");
//! out += &s.push("ig problem.");
//! out += &s.finish();
//! assert_eq!(out, marked);
//!
//! let det = marker.detect(&marked);
//! assert_eq!(det[0].key_id, "k2026a");
//! ```
//!
//! One answer carries ~14 eligible positions per 1000 words; use [`Accumulator`] to pool the
//! evidence of many texts (positions are deduplicated across texts).
//!
//! See `docs/watermark.md` for the design, the null-hypothesis argument and measured power.

pub mod context;
mod detect;
mod engine;
pub mod keyring;
mod marker;
pub mod stats;
mod stream;
pub mod synonyms;
mod tokenize;

pub use detect::{detect, detect_with, Accumulator, Detection};
pub use keyring::{KeyError, Keyring, MarkKey};
pub use marker::{MarkConfig, MarkStats, Marker};
pub use stats::{exact_binomial_tail, ln_binomial_tail, ln_poisson_binomial_tail};
pub use stream::StreamMarker;
pub use synonyms::TABLE_VERSION;

/// Eligible-position count of a text (key-independent), before and after deduplication.
pub fn eligible_positions(text: &str, cfg: MarkConfig) -> (usize, usize) {
    detect::position_counts(text, cfg)
}
