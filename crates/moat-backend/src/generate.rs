//! The model and its generation loop (CPU, candle quantized llama).

use crate::chat_template::{ChatMessage, ChatTemplate, CHATML};
use crate::gguf_tokenizer::{GgufTokenizer, Utf8Stream};
use crate::sampler::{Sampler, SamplingParams};
use crate::watermark::SamplerMark;
use anyhow::{bail, Context, Result};
use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::{ModelWeights, MAX_SEQ_LEN};
use std::path::Path;
use std::sync::Arc;

/// What to generate from.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Chat messages, rendered with the model's chat template.
    Chat(Vec<ChatMessage>),
    /// Raw text, tokenised as is (the legacy completions API).
    Text(String),
}

/// One generation request.
#[derive(Debug, Clone)]
pub struct GenRequest {
    /// The prompt.
    pub prompt: Prompt,
    /// Maximum number of generated tokens (clamped to the context window).
    pub max_tokens: usize,
    /// Temperature, top-p, seed, logprobs.
    pub sampling: SamplingParams,
    /// Stop sequences: generation ends before the first occurrence of any of them, which is
    /// not included in the output.
    pub stop: Vec<String>,
    /// Whether to apply the model's sampler watermark (when one is configured).
    pub watermark: bool,
}

impl Default for GenRequest {
    fn default() -> Self {
        Self {
            prompt: Prompt::Text(String::new()),
            max_tokens: 16,
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            watermark: true,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// End-of-sequence token or a stop sequence.
    Stop,
    /// `max_tokens` (or the context window) was reached.
    Length,
}

/// Logprob information for one generated token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    /// The token's text (lossy for partial UTF-8).
    pub token: String,
    /// The token's raw bytes.
    pub bytes: Vec<u8>,
    /// Its natural-log probability.
    pub logprob: f32,
    /// The most likely alternatives `(text, logprob)`.
    pub top: Vec<(String, f32)>,
}

/// A streamed piece of output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    /// New text (complete UTF-8 characters; possibly empty when only logprobs are carried).
    pub text: String,
    /// Logprobs of the tokens generated since the previous delta, when requested.
    pub logprobs: Vec<TokenInfo>,
}

/// The result of a generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenOutput {
    /// The whole generated text (after stop-sequence truncation).
    pub text: String,
    /// The generated token ids (including a final EOS, if any).
    pub token_ids: Vec<u32>,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Number of generated tokens.
    pub completion_tokens: usize,
    /// Why generation ended.
    pub finish_reason: FinishReason,
    /// The stop sequence that ended generation, if one did.
    pub stop_sequence: Option<String>,
    /// The model's own natural-log probability of each generated token, before the watermark
    /// bias, temperature and top-p: the perplexity of the output under the unmarked model.
    pub model_logprobs: Vec<f32>,
}

/// A loaded GGUF causal LM with its tokenizer and chat template. Not `Sync`: one generation
/// at a time (the server queues requests on a dedicated thread).
pub struct Model {
    weights: ModelWeights,
    tokenizer: Arc<GgufTokenizer>,
    template: ChatTemplate,
    pool: Arc<rayon::ThreadPool>,
    device: Device,
    end_ids: Vec<u32>,
    mark: Option<SamplerMark>,
}

impl Model {
    /// Loads a GGUF file (llama architecture, e.g. SmolLM2) for CPU inference using `threads`
    /// worker threads (0 = all cores), with an optional sampler watermark.
    pub fn load(path: &Path, threads: usize, mark: Option<SamplerMark>) -> Result<Self> {
        Self::load_with(path, threads, mark, true)
    }

    /// Like [`Model::load`]; `dequantize` expands quantised weights to f32 first (faster on a
    /// portable build, ~4 bytes per parameter of memory; see [`crate::weights`]).
    pub fn load_with(
        path: &Path,
        threads: usize,
        mark: Option<SamplerMark>,
        dequantize: bool,
    ) -> Result<Self> {
        let mut file = std::fs::File::open(path)
            .with_context(|| format!("opening model file {}", path.display()))?;
        let content = gguf_file::Content::read(&mut file)
            .with_context(|| format!("reading GGUF {}", path.display()))?;
        let tokenizer = GgufTokenizer::from_gguf(&content)?;
        let device = Device::Cpu;
        let tpl_src = match content.metadata.get("tokenizer.chat_template") {
            Some(v) => v.to_string()?.clone(),
            None => CHATML.to_string(),
        };
        let weights = if dequantize {
            let (content, mut data) = crate::weights::dequantize_all(&content, &mut file)?;
            ModelWeights::from_gguf(content, &mut data, &device)
        } else {
            ModelWeights::from_gguf(content, &mut file, &device)
        }
        .context("loading model weights")?;
        let name = |id: Option<u32>| {
            id.and_then(|i| tokenizer.token_str(i))
                .unwrap_or_default()
                .to_string()
        };
        let template = ChatTemplate::new(
            &tpl_src,
            &name(tokenizer.bos_id()),
            &name(Some(tokenizer.eos_id())),
        )?;
        let mut end_ids = vec![tokenizer.eos_id()];
        for t in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>"] {
            if let Some(id) = tokenizer.token_id(t) {
                if tokenizer.is_special(id) && !end_ids.contains(&id) {
                    end_ids.push(id);
                }
            }
        }
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("moat-backend-{i}"))
                .build()?,
        );
        Ok(Self {
            weights,
            tokenizer: Arc::new(tokenizer),
            template,
            pool,
            device,
            end_ids,
            mark,
        })
    }

    /// The tokenizer (shared; also what [`crate::watermark::detect_text`] needs).
    pub fn tokenizer(&self) -> &Arc<GgufTokenizer> {
        &self.tokenizer
    }

    /// The configured sampler watermark, if any.
    pub fn mark(&self) -> Option<&SamplerMark> {
        self.mark.as_ref()
    }

    /// Renders and tokenises a prompt.
    pub fn encode_prompt(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        match prompt {
            Prompt::Chat(m) => self.tokenizer.encode(&self.template.render(m)?),
            Prompt::Text(t) => self.tokenizer.encode(t),
        }
    }

    /// Renders chat messages with the model's template (for inspection and tests).
    pub fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        self.template.render(messages)
    }

    /// Generates, calling `on_delta` with each piece of new text; returning `false` from it
    /// cancels generation (e.g. the client went away). Runs on the calling thread, with the
    /// model's own thread pool for the matrix work: call it from a blocking thread.
    pub fn generate(
        &mut self,
        req: &GenRequest,
        on_delta: impl FnMut(Delta) -> bool + Send,
    ) -> Result<GenOutput> {
        let prompt = self.encode_prompt(&req.prompt)?;
        self.generate_from_ids(prompt, req, on_delta)
    }

    /// Like [`Model::generate`] for an already tokenised prompt (`req.prompt` is ignored).
    pub fn generate_from_ids(
        &mut self,
        prompt: Vec<u32>,
        req: &GenRequest,
        on_delta: impl FnMut(Delta) -> bool + Send,
    ) -> Result<GenOutput> {
        if prompt.is_empty() {
            bail!("the prompt is empty");
        }
        if prompt.len() >= MAX_SEQ_LEN {
            bail!(
                "the prompt has {} tokens; the context window is {MAX_SEQ_LEN}",
                prompt.len()
            );
        }
        let pool = Arc::clone(&self.pool);
        let mark = if req.watermark {
            self.mark.clone()
        } else {
            None
        };
        let this = &mut *self;
        pool.install(move || this.run(prompt, req, mark, on_delta))
    }

    fn forward(&mut self, ids: &[u32], pos: usize) -> Result<Vec<f32>> {
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let logits = self.weights.forward(&input, pos)?;
        Ok(logits
            .squeeze(0)?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?)
    }

    fn run(
        &mut self,
        prompt: Vec<u32>,
        req: &GenRequest,
        mark: Option<SamplerMark>,
        mut on_delta: impl FnMut(Delta) -> bool,
    ) -> Result<GenOutput> {
        let tok = Arc::clone(&self.tokenizer);
        let prompt_tokens = prompt.len();
        let budget = req.max_tokens.min(MAX_SEQ_LEN - prompt_tokens);
        let mut sampler = Sampler::new(req.sampling.clone(), mark.clone());
        let stops: Vec<&str> = req
            .stop
            .iter()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .collect();
        let mut history = prompt.clone();
        let mut generated = Vec::new();
        let mut utf8 = Utf8Stream::default();
        let mut full = String::new();
        let mut emitted = 0usize;
        let mut pending_lp = Vec::new();
        let mut finish = FinishReason::Length;
        let mut stop_sequence = None;
        let mut logits = if budget > 0 {
            self.forward(&prompt, 0)?
        } else {
            Vec::new()
        };
        let mut cut = None;
        let mut model_logprobs = Vec::new();
        while generated.len() < budget {
            let lse = log_sum_exp(&logits);
            let (id, lp) = sampler.sample(&mut logits, &history);
            let bias = match &mark {
                Some(m)
                    if history.len() >= m.h()
                        && m.is_green(&history[history.len() - m.h()..], id) =>
                {
                    m.delta()
                }
                _ => 0.0,
            };
            model_logprobs.push(logits[id as usize] - bias - lse);
            history.push(id);
            generated.push(id);
            if let Some(lp) = lp {
                pending_lp.push(TokenInfo {
                    token: String::from_utf8_lossy(tok.token_bytes(id)).into_owned(),
                    bytes: tok.token_bytes(id).to_vec(),
                    logprob: lp.logprob,
                    top: lp
                        .top
                        .iter()
                        .map(|&(t, l)| {
                            (String::from_utf8_lossy(tok.token_bytes(t)).into_owned(), l)
                        })
                        .collect(),
                });
            }
            let is_end = self.end_ids.contains(&id);
            if !is_end {
                full.push_str(&utf8.push(tok.token_bytes(id)));
            }
            if is_end || generated.len() == budget {
                full.push_str(&utf8.finish());
            }
            // Stop sequences: cut at the first occurrence, hold back a possible prefix.
            let mut safe_end = full.len();
            if let Some((pos, s)) = find_stop(&full, &stops) {
                cut = Some(pos);
                stop_sequence = Some(s.to_string());
                safe_end = pos;
            } else if !is_end {
                safe_end = full.len() - held_suffix(&full, &stops);
            }
            if safe_end > emitted || !pending_lp.is_empty() {
                let d = Delta {
                    text: full[emitted..safe_end.max(emitted)].to_string(),
                    logprobs: std::mem::take(&mut pending_lp),
                };
                emitted = emitted.max(safe_end);
                if !on_delta(d) {
                    finish = FinishReason::Stop;
                    break;
                }
            }
            if is_end || cut.is_some() {
                finish = FinishReason::Stop;
                break;
            }
            if generated.len() < budget {
                logits = self.forward(&[id], history.len() - 1)?;
            }
        }
        if let Some(pos) = cut {
            full.truncate(pos);
        } else if emitted < full.len() {
            // Length finish with a held-back partial stop-sequence prefix: release it.
            if !on_delta(Delta {
                text: full[emitted..].to_string(),
                logprobs: Vec::new(),
            }) {
                finish = FinishReason::Stop;
            }
        }
        Ok(GenOutput {
            text: full,
            completion_tokens: generated.len(),
            token_ids: generated,
            prompt_tokens,
            finish_reason: finish,
            stop_sequence,
            model_logprobs,
        })
    }
}

/// `ln Σ exp(x)`, computed stably.
fn log_sum_exp(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return max;
    }
    max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln()
}

/// The earliest occurrence of any stop sequence: `(byte offset, sequence)`.
fn find_stop<'a>(text: &str, stops: &[&'a str]) -> Option<(usize, &'a str)> {
    stops
        .iter()
        .filter_map(|s| text.find(s).map(|p| (p, *s)))
        .min_by_key(|&(p, _)| p)
}

/// Length of the longest suffix of `text` that is a proper prefix of a stop sequence.
fn held_suffix(text: &str, stops: &[&str]) -> usize {
    let mut best = 0;
    for s in stops {
        for (i, _) in text.char_indices().rev().take(s.chars().count()) {
            let suffix = &text[i..];
            if suffix.len() < s.len() && s.starts_with(suffix) {
                best = best.max(suffix.len());
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_helpers() {
        assert_eq!(find_stop("abc\n\nd", &["\n\n", "c"]), Some((2, "c")));
        assert_eq!(held_suffix("hello wor", &["world"]), 3);
        assert_eq!(held_suffix("hello", &["world"]), 0);
        assert_eq!(held_suffix("ééé", &["éx"]), 2);
    }
}
