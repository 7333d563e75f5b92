//! Generates a chat answer from the command line (greedy unless a temperature is given).
//!
//! ```sh
//! cargo run -p moat-backend --example generate -- "What is 2+2?" [max_tokens] [temperature]
//! ```

use moat_backend::chat_template::ChatMessage;
use moat_backend::sampler::SamplingParams;
use moat_backend::{GenRequest, Model, Prompt};
use std::io::Write;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let prompt = args
        .next()
        .unwrap_or_else(|| "What is the capital of France?".into());
    let max_tokens = args.next().map(|s| s.parse()).transpose()?.unwrap_or(64);
    let temperature = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0.0);
    let path =
        std::env::var("MOAT_MODEL").unwrap_or_else(|_| moat_backend::DEFAULT_MODEL_PATH.into());
    let mut model = Model::load(std::path::Path::new(&path), 0, None)?;
    let req = GenRequest {
        prompt: Prompt::Chat(vec![ChatMessage::new("user", prompt)]),
        max_tokens,
        sampling: SamplingParams {
            temperature,
            ..Default::default()
        },
        stop: vec![],
        watermark: false,
    };
    let ids = model.encode_prompt(&req.prompt)?;
    eprintln!("prompt ids: {ids:?}");
    let out = model.generate(&req, |d| {
        print!("{}", d.text);
        let _ = std::io::stdout().flush();
        true
    })?;
    println!();
    eprintln!("ids: {:?}\nfinish: {:?}", out.token_ids, out.finish_reason);
    Ok(())
}
