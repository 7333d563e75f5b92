//! KGW-style sampler watermark ("A Watermark for Large Language Models", Kirchenbauer et al.).
//!
//! At each generation step the vocabulary is split, pseudo-randomly and keyed by a secret, into
//! a *green* fraction `γ` and the rest; `δ` is added to the green logits before sampling, so a
//! watermarked text over-represents green tokens. The split depends on the previous `h` token
//! ids, so the detector needs only the text, the tokenizer and the key: it re-tokenises, counts
//! green tokens over the deduplicated `(context, token)` tuples and reports the exact binomial
//! tail probability of seeing that many by chance.
//!
//! * [`SamplerMark`] — the key and parameters; decides membership and biases logits.
//! * [`detect_tokens`] / [`detect_text`] — the detector; [`TupleSet`] pools many texts.

mod detect;
mod green_list;

#[cfg(feature = "embedded")]
pub use detect::detect_text;
pub use detect::{detect_tokens, Detection, TupleSet};
pub use green_list::{MarkError, SamplerMark, DEFAULT_DELTA, DEFAULT_GAMMA, DEFAULT_H};
