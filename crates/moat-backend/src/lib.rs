//! moat's embedded model backend.
//!
//! With the `embedded` feature, this crate loads a GGUF causal LM (llama architecture, e.g.
//! SmolLM2-135M-Instruct) with candle on the CPU, builds its tokenizer and chat template from
//! the GGUF metadata, generates with temperature/top-p/stop sequences/seed/logprobs and serves
//! the OpenAI and Anthropic APIs in-process ([`spawn_backend`]), so the gateway can use it as
//! its upstream (`upstream.base_url = "embedded"`).
//!
//! The [`watermark`] module (always available) is a KGW-style sampler watermark: a keyed green
//! list biases generation, and the detector gives an exact binomial p-value.
//!
//! Modules: [`gguf_tokenizer`], [`chat_template`], [`sampler`], [`generate`], `server`
//! (OpenAI and Anthropic routes), [`watermark`].

#[cfg(feature = "embedded")]
pub mod chat_template;
#[cfg(feature = "embedded")]
pub mod generate;
#[cfg(feature = "embedded")]
pub mod gguf_tokenizer;
pub mod sampler;
#[cfg(feature = "embedded")]
mod server;
pub mod watermark;
#[cfg(feature = "embedded")]
pub mod weights;

#[cfg(feature = "embedded")]
pub use generate::{Delta, FinishReason, GenOutput, GenRequest, Model, Prompt};
#[cfg(feature = "embedded")]
pub use server::{spawn_backend, BackendConfig};

/// The model file `scripts/fetch-model` downloads, relative to the repository root.
pub const DEFAULT_MODEL_PATH: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
