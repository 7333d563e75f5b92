//! `moat mark detect FILE|-`: tests texts for the watermark with every configured key.
//!
//! Keys: `--key-file`, else the configuration's `[watermark]` keys (by default the key file
//! next to the database; `--db` alone is enough for that). With the `embedded` build and the
//! embedded backend's sampler watermark configured, the token-level detector (model tokenizer)
//! is run as well; the key id of the significant result says which scheme marked the text.
//! Exit status 0 unless input or keys cannot be read: the verdict is in the output.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use clap::{Args, Subcommand};
use moat_gateway::watermark::{default_key_file, read_key_file};
use moat_gateway::watermark_detect::{detect_text, verdict, KeyResult, SamplerDetector, Verdict};
use moat_mark::{Keyring, MarkConfig};
use serde_json::{json, Value};

use crate::cli::Cli;
use crate::commands::{config_path, load_config, print_json};

/// `moat mark …`
#[derive(Debug, Subcommand)]
pub enum MarkCmd {
    /// Test texts for the watermark (exact p-values for every key).
    Detect(DetectArgs),
}

/// `moat mark detect`
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// File to read, or `-` for standard input.
    pub file: PathBuf,
    /// The input is JSON Lines: one text per line (a JSON string, or an object with "text").
    #[arg(long)]
    pub jsonl: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Watermark key file (`<id> <hex secret>` per line) instead of the configuration's keys.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Context words the text was marked with, instead of the configuration's
    /// `watermark.context_words` (0 to 4; 2 by default).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=4))]
    pub context_words: Option<u8>,
}

/// The text keyring and marking configuration for the CLI commands.
pub(crate) fn load_keys(
    cli: &Cli,
    key_file: Option<&Path>,
    context_words: Option<u8>,
) -> anyhow::Result<(Keyring, MarkConfig)> {
    let (ring, mut cfg) = load_keys_and_config(cli, key_file)?;
    if let Some(n) = context_words {
        cfg.context_words = n.into();
    }
    Ok((ring, cfg))
}

/// What `moat mark detect` and `moat verify` score with.
pub(crate) struct Detectors {
    /// The text-watermark keyring and its parameters.
    pub text: Option<(Keyring, MarkConfig)>,
    /// The sampler watermark's detector, when the configuration has one (and no `--key-file`;
    /// never without the `embedded` build).
    pub sampler: Option<SamplerDetector>,
}

/// Loads the text keys and, with the embedded backend's sampler watermark configured, the
/// token-level detector. With the sampler watermark on, the gateway never applies the text
/// mark, so its key file may not exist: the token-level detector alone is then enough.
pub(crate) fn load_detectors(
    cli: &Cli,
    key_file: Option<&Path>,
    context_words: Option<u8>,
) -> anyhow::Result<Detectors> {
    let sampler = match (key_file, config_path(cli).exists()) {
        (None, true) => SamplerDetector::from_config(&load_config(cli)?)?,
        _ => None,
    };
    let text = match load_keys(cli, key_file, context_words) {
        Ok(k) => Some(k),
        Err(e) if sampler.is_some() => {
            eprintln!("moat: text watermark keys unavailable ({e:#}); token-level detector only");
            None
        }
        Err(e) => return Err(e),
    };
    Ok(Detectors { text, sampler })
}

fn load_keys_and_config(
    cli: &Cli,
    key_file: Option<&Path>,
) -> anyhow::Result<(Keyring, MarkConfig)> {
    if let Some(p) = key_file {
        let keys = read_key_file(p)?;
        let last = keys.last().map(|k| k.id().to_string()).unwrap_or_default();
        return Ok((Keyring::from_keys(keys, &last)?, MarkConfig::default()));
    }
    if !config_path(cli).exists() {
        if let Some(db) = &cli.db {
            let p = default_key_file(db);
            return load_keys_and_config(cli, Some(&p));
        }
    }
    let cfg = load_config(cli)?;
    Ok((cfg.watermark.keyring(false)?, cfg.watermark.mark))
}

fn read_input(file: &Path) -> anyhow::Result<String> {
    let mut s = String::new();
    if file == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading stdin")?;
    } else {
        s = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    }
    Ok(s)
}

/// Texts of a JSON Lines input: a JSON string per line, or an object with a string field
/// `field` (`text`, `prompt`…).
pub(crate) fn jsonl_texts(src: &str, field: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for (n, line) in src.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(line).with_context(|| format!("line {}: not JSON", n + 1))?;
        let t = match &v {
            Value::String(s) => s.clone(),
            Value::Object(o) => o
                .get(field)
                .and_then(Value::as_str)
                .with_context(|| format!("line {}: no string field {field:?}", n + 1))?
                .to_string(),
            _ => anyhow::bail!("line {}: expected a string or an object", n + 1),
        };
        out.push(t);
    }
    Ok(out)
}

/// Formats one set of results as text lines.
pub(crate) fn format_results(results: &[KeyResult], v: &Verdict) -> String {
    let mut s = String::new();
    for r in results {
        s += &format!(
            "  key {:<24} {:<7} p = {:<10.3e} (log10 {:>8.2})  z = {:>6.2}  scored {:>6}  hits {:>6}\n",
            r.key_id, r.scheme, r.p_value, r.log10_p, r.z, r.scored, r.hits
        );
    }
    s += &match (&v.key_id, v.marked) {
        (Some(k), true) => format!(
            "  verdict: WATERMARKED by key {k} ({}), p = {:.3e} < {:.1e}\n",
            v.scheme.unwrap_or(""),
            v.p_value.unwrap_or(0.0),
            v.alpha
        ),
        (Some(_), false) => format!(
            "  verdict: not watermarked (no key below {:.1e})\n",
            v.alpha
        ),
        (None, _) => "  verdict: nothing to score (no eligible positions)\n".to_string(),
    };
    s
}

/// `moat mark …`
pub async fn run(cli: &Cli, cmd: &MarkCmd) -> anyhow::Result<ExitCode> {
    let MarkCmd::Detect(a) = cmd;
    let src = read_input(&a.file)?;
    let texts = if a.jsonl {
        jsonl_texts(&src, "text")?
    } else {
        vec![src]
    };
    let Detectors {
        text: text_keys,
        sampler,
    } = load_detectors(cli, a.key_file.as_deref(), a.context_words)?;
    let mut acc = text_keys
        .as_ref()
        .map(|(ring, mcfg)| moat_mark::Accumulator::new(ring.clone(), *mcfg));
    // One tokenisation per text feeds both its own sampler result and the pooled one.
    let mut sampler_pool = sampler.as_ref().map(SamplerDetector::pool);
    let mut each = Vec::new();
    for t in &texts {
        let mut results = Vec::new();
        if let (Some((ring, mcfg)), Some(acc)) = (&text_keys, acc.as_mut()) {
            acc.add(t);
            results = detect_text(t, ring, *mcfg);
        }
        if let Some(pool) = sampler_pool.as_mut() {
            results.push(pool.add(t)?);
        }
        let v = verdict(&results);
        each.push((results, v));
    }
    let mut pooled: Vec<KeyResult> = acc
        .map(|acc| acc.detections().iter().map(KeyResult::text).collect())
        .unwrap_or_default();
    if let (Some(pool), true) = (&sampler_pool, texts.len() > 1) {
        pooled.push(pool.finish(0)?.0);
    }
    let pooled_v = verdict(&pooled);
    if a.json {
        let texts: Vec<Value> = each
            .iter()
            .map(|(r, v)| json!({"verdict": v, "results": r}))
            .collect();
        let mut out = json!({"texts": texts});
        if texts.len() > 1 {
            out["pooled"] = json!({"verdict": pooled_v, "results": pooled, "texts": each.len()});
        }
        print_json(&out);
    } else {
        for (i, (r, v)) in each.iter().enumerate() {
            if each.len() > 1 {
                println!("text {}:", i + 1);
            }
            print!("{}", format_results(r, v));
        }
        if each.len() > 1 {
            println!(
                "all {} texts pooled (positions deduplicated across texts):",
                each.len()
            );
            print!("{}", format_results(&pooled, &pooled_v));
        }
    }
    Ok(ExitCode::SUCCESS)
}
