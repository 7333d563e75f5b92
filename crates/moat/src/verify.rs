//! `moat verify`: asks a suspect OpenAI-compatible endpoint the given prompts, pools all its
//! answers in one [`moat_mark::Accumulator`] (positions deduplicated across answers), and
//! reports the exact p-value for every watermark key, with a **null check**: the same test on
//! the same answers under freshly generated random keys (which never marked anything), and on
//! `--null-texts` under the real keys. Writes `report.json` and a self-contained `report.html`.
//!
//! With the embedded backend's sampler watermark in the configuration, the answers are also
//! re-tokenised with the model's tokenizer and scored by the token-level detector, the
//! `(context, token)` tuples deduplicated across answers, with random sampler keys as its null.

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context;
use clap::Args;
use moat_gateway::watermark::generate_key;
use moat_gateway::watermark_detect::{verdict, KeyResult, Verdict};
use moat_mark::{Accumulator, Keyring, MarkConfig, MarkKey};
use serde::Serialize;
use serde_json::{json, Value};

use crate::cli::Cli;
use crate::mark::{jsonl_texts, load_detectors, Detectors};
use moat_evidence::html::esc;

/// `moat verify`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Suspect endpoint: OpenAI-compatible base URL (e.g. http://host:8000/v1).
    #[arg(long)]
    pub suspect: String,
    /// Model name to ask for.
    #[arg(long)]
    pub model: String,
    /// Prompts: one per line, or JSON Lines with a "prompt" field.
    #[arg(long)]
    pub prompts: PathBuf,
    /// Output folder for report.json and report.html.
    #[arg(long, default_value = "verify-report")]
    pub out: PathBuf,
    /// Environment variable holding the suspect's API key (sent as Bearer).
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// `max_tokens` per answer.
    #[arg(long, default_value_t = 512)]
    pub max_tokens: u64,
    /// Sampling temperature asked of the suspect. 1.0 (the default) samples the distribution
    /// it learned; a low temperature collapses its answers onto its most likely words, which
    /// hides word-choice preferences learned from watermarked text.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Requests in flight.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Texts known never to have been watermarked (one per line, or JSON Lines with "text"),
    /// scored with the real keys as a null check.
    #[arg(long)]
    pub null_texts: Option<PathBuf>,
    /// Random keys for the null check on the suspect's answers.
    #[arg(long, default_value_t = 20)]
    pub null_keys: usize,
    /// Watermark key file instead of the configuration's keys.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Context words the owner's answers were marked with, instead of the configuration's
    /// `watermark.context_words` (0 to 4; 2 by default).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=4))]
    pub context_words: Option<u8>,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

#[derive(Debug, Serialize)]
struct Answer {
    prompt: String,
    text: Option<String>,
    error: Option<String>,
}

fn read_lines_or_jsonl(path: &std::path::Path, field: &str) -> anyhow::Result<Vec<String>> {
    let src =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if src.trim_start().starts_with('{') {
        return jsonl_texts(&src, field);
    }
    Ok(src
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect())
}

fn chat_url(base: &str) -> String {
    let b = base.trim_end_matches('/');
    if b.ends_with("/chat/completions") {
        b.to_string()
    } else if b.ends_with("/v1") {
        format!("{b}/chat/completions")
    } else {
        format!("{b}/v1/chat/completions")
    }
}

/// What every request asks of the suspect.
struct Sampling {
    model: String,
    max_tokens: u64,
    temperature: f64,
}

async fn ask(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    sampling: &Sampling,
    prompt: &str,
) -> Result<String, String> {
    let mut rb = client.post(url).json(&json!({
        "model": sampling.model,
        "max_tokens": sampling.max_tokens,
        "temperature": sampling.temperature,
        "messages": [{"role": "user", "content": prompt}],
    }));
    if let Some(k) = key {
        rb = rb.bearer_auth(k);
    }
    let resp = rb
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .map_err(|e| format!("HTTP {status}: body is not JSON: {e}"))?;
    if !status.is_success() {
        let msg = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(format!("HTTP {status}: {msg}"));
    }
    body.pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| "answer has no choices[0].message.content".to_string())
}

/// Asks every prompt (`concurrency` at a time); answers in prompt order.
async fn collect(a: &VerifyArgs, prompts: Vec<String>) -> anyhow::Result<Vec<Answer>> {
    let key = match &a.api_key_env {
        Some(var) => Some(std::env::var(var).with_context(|| format!("{var} is not set"))?),
        None => None,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(a.timeout))
        .build()?;
    let url = Arc::new(chat_url(&a.suspect));
    let sem = Arc::new(tokio::sync::Semaphore::new(a.concurrency.max(1)));
    let sampling = Arc::new(Sampling {
        model: a.model.clone(),
        max_tokens: a.max_tokens,
        temperature: a.temperature,
    });
    let mut set = tokio::task::JoinSet::new();
    for (i, p) in prompts.into_iter().enumerate() {
        let (client, url, key, sem) = (client.clone(), url.clone(), key.clone(), sem.clone());
        let sampling = sampling.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let r = ask(&client, &url, key.as_deref(), &sampling, &p).await;
            let (text, error) = match r {
                Ok(t) => (Some(t), None),
                Err(e) => (None, Some(e)),
            };
            (
                i,
                Answer {
                    prompt: p,
                    text,
                    error,
                },
            )
        });
    }
    let mut out: Vec<(usize, Answer)> = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.context("request task failed")?);
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, a)| a).collect())
}

/// Pooled results of every detector over `texts` (text keys, then the sampler key), with the
/// positions scored (text-mark positions plus token tuples), and the same texts under
/// `null_keys` random keys of each scheme.
struct Pooled {
    results: Vec<KeyResult>,
    positions: u64,
    nulls: Vec<KeyResult>,
}

fn pooled(d: &Detectors, texts: &[&str], null_keys: usize) -> anyhow::Result<Pooled> {
    let (mut results, mut nulls, mut positions) = (Vec::new(), Vec::new(), 0);
    if let Some((ring, cfg)) = &d.text {
        let (r, p) = pooled_text(ring, *cfg, texts);
        results = r;
        positions += p;
        if null_keys > 0 {
            nulls = pooled_text(&random_ring(null_keys)?, *cfg, texts).0;
        }
    }
    if let Some(s) = &d.sampler {
        let (real, n) = s.detect_pooled(texts, null_keys)?;
        positions += real.scored;
        results.push(real);
        nulls.extend(n);
    }
    Ok(Pooled {
        results,
        positions,
        nulls,
    })
}

fn pooled_text(ring: &Keyring, cfg: MarkConfig, texts: &[&str]) -> (Vec<KeyResult>, u64) {
    let mut acc = Accumulator::new(ring.clone(), cfg);
    for t in texts {
        acc.add(t);
    }
    let d = acc.detections();
    let positions = d.first().map_or(0, |d| d.positions);
    (d.iter().map(KeyResult::text).collect(), positions)
}

/// A keyring of `n` fresh random keys (they never marked anything).
fn random_ring(n: usize) -> anyhow::Result<Keyring> {
    let mut keys = Vec::new();
    for i in 0..n.max(1) {
        let (_, secret) = generate_key();
        keys.push(MarkKey::from_hex(format!("null-{}", i + 1), &secret)?);
    }
    Ok(Keyring::from_keys(keys, "null-1")?)
}

/// `moat verify`
pub async fn run(cli: &Cli, a: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let detectors = load_detectors(cli, a.key_file.as_deref(), a.context_words)?;
    let prompts = read_lines_or_jsonl(&a.prompts, "prompt")?;
    anyhow::ensure!(!prompts.is_empty(), "{}: no prompts", a.prompts.display());
    let null_texts = match &a.null_texts {
        Some(p) => Some(read_lines_or_jsonl(p, "text")?),
        None => None,
    };
    eprintln!(
        "asking {} prompts of {} at {} ...",
        prompts.len(),
        a.model,
        chat_url(&a.suspect)
    );
    let answers = collect(a, prompts).await?;
    let texts: Vec<&str> = answers.iter().filter_map(|x| x.text.as_deref()).collect();
    let errors: Vec<&str> = answers.iter().filter_map(|x| x.error.as_deref()).collect();
    let words: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();

    let Pooled {
        results,
        positions,
        nulls: null_results,
    } = pooled(&detectors, &texts, a.null_keys.max(1))?;
    let v = verdict(&results);
    let null_min = null_results
        .iter()
        .map(|r| r.p_value)
        .fold(1.0f64, f64::min);
    let null_ok = null_results
        .iter()
        .all(|r| r.log10_p > (moat_gateway::watermark_detect::ALPHA).log10());
    let null_texts_check = match null_texts.as_ref() {
        Some(nt) => {
            let refs: Vec<&str> = nt.iter().map(String::as_str).collect();
            let r = pooled(&detectors, &refs, 0)?.results;
            let v = verdict(&r);
            Some(json!({"texts": nt.len(), "results": r, "verdict": v}))
        }
        None => None,
    };
    let null_texts_ok = null_texts_check
        .as_ref()
        .map(|c| c["verdict"]["marked"] == json!(false));

    let line = verdict_line(
        &v,
        texts.len(),
        positions,
        null_min,
        null_ok && null_texts_ok != Some(false),
    );
    let report = json!({
        "suspect": a.suspect,
        "model": a.model,
        "sampling": {"max_tokens": a.max_tokens, "temperature": a.temperature},
        "generated_at": chrono::Utc::now().to_rfc3339(),
        "verdict": v,
        "verdict_line": line,
        "results": results,
        "answers_used": texts.len(),
        "answers_failed": errors.len(),
        "words": words,
        "positions": positions,
        "null_check": {
            "random_keys": {"keys": null_results.len(), "min_p": null_min,
                            "all_not_significant": null_ok, "results": null_results},
            "null_texts": null_texts_check,
        },
        "errors": errors,
        "answers": answers,
    });
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let jp = a.out.join("report.json");
    std::fs::write(&jp, serde_json::to_vec_pretty(&report)?)?;
    let hp = a.out.join("report.html");
    std::fs::write(&hp, render_html(&report))?;
    println!("{line}");
    println!("report: {} and {}", jp.display(), hp.display());
    Ok(ExitCode::SUCCESS)
}

fn verdict_line(
    v: &Verdict,
    answers: usize,
    positions: u64,
    null_min: f64,
    null_ok: bool,
) -> String {
    let head = match (&v.key_id, v.marked) {
        (Some(k), true) => format!(
            "VERDICT: WATERMARK DETECTED (key {k}, p = {:.3e}, log10 p = {:.2})",
            v.p_value.unwrap_or(0.0),
            v.log10_p.unwrap_or(0.0)
        ),
        (Some(_), false) => format!(
            "VERDICT: no watermark detected (best p = {:.3e}, threshold {:.1e})",
            v.p_value.unwrap_or(1.0),
            v.alpha
        ),
        (None, _) => "VERDICT: inconclusive (no eligible positions in the answers)".to_string(),
    };
    format!(
        "{head}; {answers} answers, {positions} positions; null check {} (min p under random keys {null_min:.3})",
        if null_ok { "OK" } else { "FAILED" }
    )
}

fn result_rows(results: &Value) -> String {
    let mut s = String::new();
    for r in results.as_array().into_iter().flatten() {
        s += &format!(
            "<tr><td>{}</td><td>{}</td><td>{:.3e}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td><td>{}</td></tr>\n",
            esc(r["key_id"].as_str().unwrap_or("")),
            esc(r["scheme"].as_str().unwrap_or("")),
            r["p_value"].as_f64().unwrap_or(f64::NAN),
            r["log10_p"].as_f64().unwrap_or(f64::NAN),
            r["z"].as_f64().unwrap_or(f64::NAN),
            r["scored"],
            r["hits"],
        );
    }
    s
}

const TABLE_HEAD: &str =
    "<tr><th>key id</th><th>scheme</th><th>p-value (exact)</th><th>log10 p</th><th>z</th><th>positions scored</th><th>hits</th></tr>";

/// A self-contained, script-free HTML page of the report.
fn render_html(r: &Value) -> String {
    let marked = r["verdict"]["marked"] == json!(true);
    let mut answers = String::new();
    for a in r["answers"].as_array().into_iter().flatten().take(50) {
        let text = a["text"].as_str().map(|t| {
            let cut: String = t.chars().take(400).collect();
            if cut.len() < t.len() {
                format!("{cut}…")
            } else {
                cut
            }
        });
        answers += &format!(
            "<tr><td>{}</td><td>{}</td></tr>\n",
            esc(&a["prompt"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(120)
                .collect::<String>()),
            match (text, a["error"].as_str()) {
                (Some(t), _) => esc(&t),
                (None, Some(e)) => format!("<em>error: {}</em>", esc(e)),
                _ => String::new(),
            }
        );
    }
    let null = &r["null_check"];
    let null_texts = match null["null_texts"].as_object() {
        Some(n) => format!(
            "<h3>User-provided null texts ({} texts, real keys)</h3><table>{TABLE_HEAD}{}</table><p>Verdict on null texts: <b>{}</b></p>",
            n["texts"],
            result_rows(&n["results"]),
            if n["verdict"]["marked"] == json!(true) { "SIGNIFICANT (null check failed)" } else { "not significant (as expected)" }
        ),
        None => String::new(),
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>moat verify report</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
.verdict {{ padding: 1rem; border-radius: 6px; font-weight: 600; }}
.yes {{ background: #fde2e1; border: 1px solid #d33; }} .no {{ background: #e6f4ea; border: 1px solid #3a3; }}
table {{ border-collapse: collapse; width: 100%; margin: 1rem 0; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.3rem 0.5rem; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }} code {{ background: #f3f3f3; padding: 0 0.2rem; }}
</style></head><body>
<h1>Watermark verification report</h1>
<p>Suspect <code>{suspect}</code>, model <code>{model}</code>, generated {at}.</p>
<p class="verdict {cls}">{line}</p>
<h2>Evidence</h2>
<p>{used} answers used ({failed} failed), {words} words, {positions} eligible positions
(deduplicated across answers before scoring). The p-value is the exact upper tail of the
Poisson-binomial hit count under the hypothesis that the text was not produced with the key;
the verdict threshold is {alpha:.1e} (Bonferroni over the keys tested).</p>
<table>{TABLE_HEAD}{rows}</table>
<h2>Null check</h2>
<p>The same test on the same answers under {nk} freshly generated random keys, which never
marked anything: their p-values must not be significant. Smallest: {nmin:.3}.
All not significant: <b>{nok}</b>.</p>
<table>{TABLE_HEAD}{nrows}</table>
{null_texts}
<h2>Answers (first 50)</h2>
<table><tr><th>prompt</th><th>answer</th></tr>{answers}</table>
</body></html>
"#,
        suspect = esc(r["suspect"].as_str().unwrap_or("")),
        model = esc(r["model"].as_str().unwrap_or("")),
        at = esc(r["generated_at"].as_str().unwrap_or("")),
        cls = if marked { "yes" } else { "no" },
        line = esc(r["verdict_line"].as_str().unwrap_or("")),
        used = r["answers_used"],
        failed = r["answers_failed"],
        words = r["words"],
        positions = r["positions"],
        alpha = r["verdict"]["alpha"].as_f64().unwrap_or(0.0),
        rows = result_rows(&r["results"]),
        nk = null["random_keys"]["keys"],
        nmin = null["random_keys"]["min_p"].as_f64().unwrap_or(1.0),
        nok = null["random_keys"]["all_not_significant"],
        nrows = result_rows(&null["random_keys"]["results"]),
    )
}
