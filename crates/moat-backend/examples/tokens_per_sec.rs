//! Measures generation speed: a 128-token greedy generation, median of 3 runs.
//!
//! ```sh
//! cargo run --release -p moat-backend --example tokens_per_sec -- [model.gguf] [threads]
//! ```

use moat_backend::chat_template::ChatMessage;
use moat_backend::sampler::SamplingParams;
use moat_backend::{GenRequest, Model, Prompt};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| moat_backend::DEFAULT_MODEL_PATH.to_string());
    let threads: usize = args.next().map(|t| t.parse()).transpose()?.unwrap_or(0);
    let t0 = Instant::now();
    let mut model = Model::load(std::path::Path::new(&path), threads, None)?;
    println!("loaded {path} in {:.2?}", t0.elapsed());
    let req = GenRequest {
        prompt: Prompt::Chat(vec![ChatMessage::new(
            "user",
            "Write a long essay about the history of the printing press.",
        )]),
        max_tokens: 128,
        sampling: SamplingParams {
            temperature: 0.0,
            ..Default::default()
        },
        stop: vec![],
        watermark: false,
    };
    let mut rates = Vec::new();
    for run in 1..=3 {
        let mut first = None;
        let t = Instant::now();
        let out = model.generate(&req, |_| {
            first.get_or_insert_with(|| t.elapsed());
            true
        })?;
        let total = t.elapsed();
        let ttft = first.unwrap_or(total);
        // Decode rate excludes the prompt pass (time to first token).
        let decode =
            (out.completion_tokens.saturating_sub(1)) as f64 / (total - ttft).as_secs_f64();
        let overall = out.completion_tokens as f64 / total.as_secs_f64();
        println!(
            "run {run}: prompt {} tok, generated {} tok in {total:.2?} (first token {ttft:.2?}): \
             {overall:.1} tok/s overall, {decode:.1} tok/s decode",
            out.prompt_tokens, out.completion_tokens
        );
        rates.push((overall, decode));
    }
    rates.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (overall, _) = rates[1];
    let mut dec: Vec<f64> = rates.iter().map(|r| r.1).collect();
    dec.sort_by(f64::total_cmp);
    println!(
        "median: {overall:.1} tok/s overall, {:.1} tok/s decode",
        dec[1]
    );
    Ok(())
}
