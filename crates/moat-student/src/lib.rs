//! # moat-student — a tiny LM trained from scratch, for the watermark radioactivity test
//!
//! The watermark of `moat-mark` is *radioactive* if a model trained on marked answers
//! reproduces the keyed word choices in its own output. This crate trains such a student
//! from scratch on CPU with candle: a word-level vocabulary ([`vocab`]), a small decoder-only
//! transformer ([`model`]), AdamW training ([`train`]), sampling ([`generate`]) and an
//! OpenAI-compatible chat endpoint ([`serve`]) that `moat verify` can query.
//!
//! Word-level tokens (`don't`, `frequently`) make each synonym choice a single prediction.
//! A transformer rather than a GRU/LSTM: all positions of a window train in parallel as a few
//! large matrix products, which is what a CPU does well; a recurrent net runs one small
//! product per time step and is dominated by per-op overhead in candle.
//!
//! See `bench/radioactivity/` for the experiment and its results.

pub mod generate;
pub mod model;
pub mod serve;
pub mod train;
pub mod vocab;

pub use generate::{generate, generate_batch, Generation, SampleOptions};
pub use model::{ModelConfig, Student};
pub use train::{read_corpus, train, TrainOptions, TrainReport};
pub use vocab::Vocab;
