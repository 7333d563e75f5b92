//! Sampler-watermark power and quality on the real model.
//!
//! For each prompt, generates one answer with the watermark and one without (same seed,
//! temperature and top-p), then reports:
//! - **power**: for each marked answer, the shortest prefix (in generated tokens) whose exact
//!   binomial p-value is below 1e-6, and from that the length at which 95 % of answers are
//!   detected;
//! - **false positives**: the same detector on the unmarked answers;
//! - **quality**: the model's own perplexity (unbiased logits, see
//!   `GenOutput::model_logprobs`) of the marked and unmarked answers, and the increase.
//!
//! ```sh
//! cargo run --release -p moat-backend --example mark_quality -- \
//!     [--prompts FILE] [--n 24] [--max-tokens 256] [--delta 2.0] [--gamma 0.25] [--h 2] \
//!     [--temperature 0.7] [--skip 0] [--out results.jsonl]
//! ```

use moat_backend::chat_template::ChatMessage;
use moat_backend::sampler::SamplingParams;
use moat_backend::watermark::{detect_tokens, SamplerMark};
use moat_backend::{GenRequest, Model, Prompt};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

const BUILTIN_PROMPTS: &[&str] = &[
    "Write a detailed essay about the history of the printing press.",
    "Explain how vaccines train the immune system, for a high-school student.",
    "Describe a walk through a busy market in Marrakesh.",
    "What are the pros and cons of remote work? Give a thorough answer.",
    "Tell me a story about a lighthouse keeper who finds a message in a bottle.",
    "Explain the water cycle in detail.",
    "How does a bicycle stay upright? Explain the physics.",
    "Give advice to someone starting their first job as a software engineer.",
    "Describe the life cycle of a star like the Sun.",
    "Write a letter to a friend describing your summer holiday by the sea.",
    "Explain why the sky is blue and sunsets are red.",
    "What should a beginner know before adopting a dog?",
    "Summarise the causes of the French Revolution.",
    "Describe how bread is made, from wheat field to bakery.",
    "Explain what a database index is and why it speeds up queries.",
    "Write a short story about a robot learning to paint.",
    "How do bees communicate with each other?",
    "Give tips for running a first marathon.",
    "Explain the difference between weather and climate.",
    "Describe the rules of chess to someone who has never played.",
    "What makes a good teacher? Discuss in detail.",
    "Explain how a refrigerator keeps food cold.",
    "Describe the city of Venice and its canals.",
    "Write a speech for a school graduation ceremony.",
    "Explain photosynthesis step by step.",
    "What are the main ideas of stoic philosophy?",
    "Describe a day in the life of a farmer in spring.",
    "How do airplanes fly? Explain lift and drag.",
    "Write a review of an imaginary restaurant that serves only soup.",
    "Explain how the internet delivers a web page to your computer.",
    "Give a detailed guide to planting a vegetable garden.",
    "Describe the history and cultural importance of tea.",
];

struct Args {
    prompts: Vec<String>,
    max_tokens: usize,
    delta: f32,
    gamma: f64,
    h: usize,
    temperature: f32,
    out: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        prompts: BUILTIN_PROMPTS.iter().map(|s| s.to_string()).collect(),
        max_tokens: 256,
        delta: 2.0,
        gamma: 0.25,
        h: 2,
        temperature: 0.7,
        out: None,
    };
    let mut n = None;
    let mut skip = 0usize;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--prompts" => {
                a.prompts = std::fs::read_to_string(val()?)?
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_string)
                    .collect()
            }
            "--n" => n = Some(val()?.parse()?),
            "--max-tokens" => a.max_tokens = val()?.parse()?,
            "--delta" => a.delta = val()?.parse()?,
            "--gamma" => a.gamma = val()?.parse()?,
            "--h" => a.h = val()?.parse()?,
            "--temperature" => a.temperature = val()?.parse()?,
            "--skip" => skip = val()?.parse()?,
            "--out" => a.out = Some(val()?),
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    a.prompts.drain(..skip.min(a.prompts.len()));
    if let Some(n) = n {
        a.prompts.truncate(n);
    }
    Ok(a)
}

/// Shortest prefix length (tokens) with p < `alpha`, if any.
fn tokens_to_detect(mark: &SamplerMark, ids: &[u32], alpha: f64) -> Option<usize> {
    (mark.h() + 1..=ids.len()).find(|&l| detect_tokens(mark, &ids[..l]).ln_p_value < alpha.ln())
}

fn perplexity(lps: &[f32]) -> f64 {
    let mean = lps.iter().map(|&l| l as f64).sum::<f64>() / lps.len().max(1) as f64;
    (-mean).exp()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let path =
        std::env::var("MOAT_MODEL").unwrap_or_else(|_| moat_backend::DEFAULT_MODEL_PATH.into());
    let mark = SamplerMark::with_params("bench-kgw", [42u8; 32], args.h, args.gamma, args.delta)?;
    // MOAT_THREADS: decoding threads (0 = all cores); shards run side by side with 1 each.
    let threads = std::env::var("MOAT_THREADS").map_or(Ok(0), |t| t.parse())?;
    let mut model = Model::load(Path::new(&path), threads, Some(mark.clone()))?;
    let mut out = match &args.out {
        Some(p) => Some(std::fs::File::create(p)?),
        None => None,
    };
    println!(
        "model {path}; h={} gamma={} delta={} temperature={} max_tokens={} prompts={}",
        args.h,
        args.gamma,
        args.delta,
        args.temperature,
        args.max_tokens,
        args.prompts.len()
    );
    let (mut needed, mut ppl_mark, mut ppl_plain, mut null_p) = (vec![], vec![], vec![], vec![]);
    let (mut lp_mark, mut lp_plain) = (vec![], vec![]);
    let t0 = Instant::now();
    for (i, prompt) in args.prompts.iter().enumerate() {
        let mut outs = Vec::new();
        for watermark in [true, false] {
            let req = GenRequest {
                prompt: Prompt::Chat(vec![ChatMessage::new("user", prompt.clone())]),
                max_tokens: args.max_tokens,
                sampling: SamplingParams {
                    temperature: args.temperature,
                    top_p: 0.95,
                    seed: Some(1000 + i as u64),
                    ..Default::default()
                },
                stop: vec![],
                watermark,
            };
            outs.push(model.generate(&req, |_| true)?);
        }
        let (m, p) = (&outs[0], &outs[1]);
        let dm = detect_tokens(&mark, &m.token_ids);
        let dp = detect_tokens(&mark, &p.token_ids);
        let need = tokens_to_detect(&mark, &m.token_ids, 1e-6);
        needed.push(need);
        ppl_mark.push(perplexity(&m.model_logprobs));
        ppl_plain.push(perplexity(&p.model_logprobs));
        lp_mark.extend(m.model_logprobs.iter().map(|&l| l as f64));
        lp_plain.extend(p.model_logprobs.iter().map(|&l| l as f64));
        null_p.push(dp.p_value);
        println!(
            "[{i:>2}] marked {:>3} tok p={:.2e} need={:>4} ppl={:.2} | plain {:>3} tok p={:.3} ppl={:.2}  ({:.0?})",
            m.completion_tokens,
            dm.p_value,
            need.map(|n| n.to_string()).unwrap_or("-".into()),
            ppl_mark[i],
            p.completion_tokens,
            dp.p_value,
            ppl_plain[i],
            t0.elapsed()
        );
        if let Some(f) = out.as_mut() {
            writeln!(
                f,
                "{}",
                serde_json::json!({
                    "prompt": prompt, "marked_text": m.text, "plain_text": p.text,
                    "marked_ids": m.token_ids, "plain_ids": p.token_ids,
                    "marked_tokens": m.completion_tokens, "plain_tokens": p.completion_tokens,
                    "marked_p": dm.p_value, "marked_ln_p": dm.ln_p_value, "marked_scored": dm.scored,
                    "plain_p": dp.p_value, "tokens_to_1e-6": need,
                    "marked_ppl": ppl_mark[i], "plain_ppl": ppl_plain[i],
                })
            )?;
        }
    }
    let n = needed.len();
    let mut lens: Vec<usize> = needed.iter().map(|x| x.unwrap_or(usize::MAX)).collect();
    lens.sort();
    let k95 = ((0.95 * n as f64).ceil() as usize).clamp(1, n);
    let detected = needed.iter().filter(|x| x.is_some()).count();
    println!("\n== summary ({n} prompts, {:.0?})", t0.elapsed());
    println!("marked answers detected at p<1e-6 within max_tokens: {detected}/{n}");
    match lens[k95 - 1] {
        usize::MAX => println!(
            "tokens for p<1e-6 on 95% of answers: not reached within {} tokens",
            args.max_tokens
        ),
        l => println!("tokens for p<1e-6 on 95% of answers: {l}"),
    }
    let det: Vec<f64> = needed.iter().flatten().map(|&l| l as f64).collect();
    println!(
        "median tokens to p<1e-6 (detected answers): {:.0}",
        median(det)
    );
    println!(
        "unmarked answers: min p {:.3}, fraction p<0.01: {:.3}",
        null_p.iter().copied().fold(1.0, f64::min),
        null_p.iter().filter(|&&p| p < 0.01).count() as f64 / n as f64
    );
    let pooled = |lps: &[f64]| (-(lps.iter().sum::<f64>() / lps.len() as f64)).exp();
    let (pm, pp) = (pooled(&lp_mark), pooled(&lp_plain));
    println!(
        "perplexity under the unmarked model (pooled over tokens): marked {pm:.3}, unmarked {pp:.3}, increase {:+.1}%",
        100.0 * (pm / pp - 1.0)
    );
    println!(
        "median per-answer perplexity: marked {:.3}, unmarked {:.3}",
        median(ppl_mark),
        median(ppl_plain)
    );
    Ok(())
}
