//! Tests against the real SmolLM2-135M-Instruct GGUF (`scripts/fetch-model`). Each test is
//! skipped, with a message, when the file is absent; `scripts/test` fetches it so CI runs them.
#![cfg(feature = "embedded")]

use moat_backend::chat_template::ChatMessage;
use moat_backend::sampler::SamplingParams;
use moat_backend::watermark::{detect_text, detect_tokens, SamplerMark};
use moat_backend::{FinishReason, GenRequest, Model, Prompt};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

fn model_path() -> PathBuf {
    std::env::var_os("MOAT_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(moat_backend::DEFAULT_MODEL_PATH)
        })
}

fn mark() -> SamplerMark {
    SamplerMark::new("test-key", b"0123456789abcdef-test-secret").unwrap()
}

/// The shared model (loaded once), or `None` with a message when the file is absent.
fn model() -> Option<std::sync::MutexGuard<'static, Model>> {
    static M: OnceLock<Option<Mutex<Model>>> = OnceLock::new();
    let m = M.get_or_init(|| {
        let p = model_path();
        if !p.exists() {
            return None;
        }
        Some(Mutex::new(
            Model::load(&p, 0, Some(mark())).expect("loading the model"),
        ))
    });
    match m {
        Some(m) => Some(m.lock().unwrap_or_else(|e| e.into_inner())),
        None => {
            eprintln!(
                "SKIPPED: {} is absent; run scripts/fetch-model to enable the real-model tests",
                model_path().display()
            );
            None
        }
    }
}

fn chat(text: &str, max_tokens: usize) -> GenRequest {
    GenRequest {
        prompt: Prompt::Chat(vec![ChatMessage::new("user", text)]),
        max_tokens,
        sampling: SamplingParams {
            temperature: 0.0,
            ..Default::default()
        },
        stop: vec![],
        watermark: false,
    }
}

#[test]
fn chat_template_and_tokenizer_from_gguf() {
    let Some(m) = model() else { return };
    let p = m.render_chat(&[ChatMessage::new("user", "Hi")]).unwrap();
    assert_eq!(
        p,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
         Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    let tok = m.tokenizer();
    let ids = tok
        .encode("<|im_start|>user\nHello, world! 2024 café ✓")
        .unwrap();
    assert_eq!(ids[0], 1, "special token recognised");
    assert_eq!(tok.decode(&ids), "user\nHello, world! 2024 café ✓");
    // SmolLM splits digits individually.
    assert_eq!(tok.encode("2024").unwrap().len(), 4);
    assert_eq!(
        tok.encode(" the").unwrap(),
        vec![tok.token_id("Ġthe").unwrap()]
    );
}

#[test]
fn greedy_is_deterministic_and_usage_is_counted() {
    let Some(mut m) = model() else { return };
    let req = chat("What is 2+2?", 24);
    let mut streamed = String::new();
    let a = m
        .generate(&req, |d| {
            streamed.push_str(&d.text);
            true
        })
        .unwrap();
    let b = m.generate(&req, |_| true).unwrap();
    assert_eq!(a.text, b.text);
    assert_eq!(a.token_ids, b.token_ids);
    assert!(a.text.contains('4'), "{:?}", a.text);
    assert_eq!(streamed, a.text);
    assert_eq!(a.prompt_tokens, m.encode_prompt(&req.prompt).unwrap().len());
    assert_eq!(a.completion_tokens, a.token_ids.len());
    assert!(a.completion_tokens > 0 && a.completion_tokens <= 24);
}

#[test]
fn max_tokens_is_respected() {
    let Some(mut m) = model() else { return };
    let out = m
        .generate(&chat("Write a long poem about the sea.", 5), |_| true)
        .unwrap();
    assert_eq!(out.completion_tokens, 5);
    assert_eq!(out.finish_reason, FinishReason::Length);
    let out = m.generate(&chat("Say hi.", 0), |_| true).unwrap();
    assert_eq!((out.completion_tokens, out.text.as_str()), (0, ""));
}

#[test]
fn stop_sequences_cut_the_output() {
    let Some(mut m) = model() else { return };
    let mut req = chat("Write a long poem about the sea.", 40);
    let full = m.generate(&req, |_| true).unwrap().text;
    // A stop sequence from the middle of the greedy output.
    let start = full
        .char_indices()
        .map(|(i, _)| i)
        .find(|&i| i >= full.len() / 2)
        .unwrap();
    let stop: String = full[start..].chars().take(4).collect();
    let pos = full.find(&stop).unwrap();
    req.stop = vec![stop.clone(), "\u{1}never".into()];
    let mut streamed = String::new();
    let out = m
        .generate(&req, |d| {
            streamed.push_str(&d.text);
            true
        })
        .unwrap();
    assert_eq!(out.text, full[..pos]);
    assert_eq!(
        streamed, out.text,
        "held-back prefixes must not leak into the stream"
    );
    assert_eq!(out.finish_reason, FinishReason::Stop);
    assert_eq!(out.stop_sequence.as_deref(), Some(stop.as_str()));
}

#[test]
fn seeded_sampling_is_reproducible_and_logprobs_are_reported() {
    let Some(mut m) = model() else { return };
    let mut req = chat("Tell me a joke.", 16);
    req.sampling = SamplingParams {
        temperature: 0.9,
        top_p: 0.95,
        seed: Some(42),
        top_logprobs: Some(3),
    };
    let mut lps = Vec::new();
    let a = m
        .generate(&req, |d| {
            lps.extend(d.logprobs);
            true
        })
        .unwrap();
    let b = m.generate(&req, |_| true).unwrap();
    assert_eq!(a.token_ids, b.token_ids);
    assert_eq!(lps.len(), a.completion_tokens);
    for t in &lps {
        assert_eq!(t.top.len(), 3);
        assert!(t.logprob <= 0.0 && t.top[0].1 >= t.top[2].1);
    }
}

#[test]
fn watermark_is_detected_and_absent_without_it() {
    let Some(mut m) = model() else { return };
    let mk = mark();
    let mut req = chat(
        "Write a long, detailed story about a dragon who learns to cook. Use many paragraphs.",
        200,
    );
    req.sampling = SamplingParams {
        temperature: 1.0,
        top_p: 1.0,
        seed: Some(7),
        top_logprobs: None,
    };
    req.watermark = true;
    let marked = m.generate(&req, |_| true).unwrap();
    req.watermark = false;
    let plain = m.generate(&req, |_| true).unwrap();
    let dm = detect_text(&mk, m.tokenizer(), &marked.text).unwrap();
    let dp = detect_text(&mk, m.tokenizer(), &plain.text).unwrap();
    let dm_ids = detect_tokens(&mk, &marked.token_ids);
    eprintln!(
        "watermarked: {} tokens, {dm:?}\n  (generated ids: {dm_ids:?})\nplain: {} tokens, {dp:?}",
        marked.completion_tokens, plain.completion_tokens
    );
    assert!(dm.scored >= 100, "too little text to test: {dm:?}");
    assert!(dm.p_value < 1e-4, "{dm:?}");
    assert!(dp.p_value > 1e-4, "{dp:?}");
    // A different key does not see the mark.
    let other = SamplerMark::new("other", b"another-secret-key-material").unwrap();
    assert!(
        detect_text(&other, m.tokenizer(), &marked.text)
            .unwrap()
            .p_value
            > 1e-4
    );
}
