//! Corpus marking and pooled scoring for the radioactivity experiment (bench/radioactivity).
//!
//! ```text
//! radio mark  --fraction F [--context-words N] [--stop-words 0|1] [--buckets B] [--seed S] [--key-hex HEX] < in.jsonl > out.jsonl
//! radio score [--context-words N] [--stop-words 0|1] [--buckets B] [--null-keys K] [--key-hex HEX] [--label L] < texts.jsonl
//! ```
//!
//! `mark` rewrites the `text` of a deterministic fraction `F` of the lines with moat-mark
//! (line i is marked iff u_i < F, u_i uniform from `--seed` and i, so the marked subset for a
//! smaller F is contained in that of a larger one) and adds `"marked": true|false`.
//! `score` pools every `text` in one `moat_mark::Accumulator` (positions deduplicated across
//! texts) and prints one JSON object: the bench key's detection and, as a null check, the
//! detections of `--null-keys` independent random keys on the same texts.

use moat_mark::{Accumulator, Keyring, MarkConfig, MarkKey, Marker};
use serde_json::{json, Value};
use std::io::{BufRead, BufWriter, Write};

/// The fixed radioactivity bench key (not a secret).
const BENCH_KEY_HEX: &str = "7261646f61637469766974792062656e6368206b6579202d206e6f7420736563";

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn uniform(seed: u64, i: u64) -> f64 {
    (splitmix(seed ^ splitmix(i)) >> 11) as f64 / (1u64 << 53) as f64
}

struct Args {
    mode: String,
    fraction: f64,
    context_words: usize,
    stop_words: bool,
    buckets: u32,
    seed: u64,
    key_hex: String,
    null_keys: usize,
    label: String,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        mode: it.next().ok_or("usage: radio mark|score [options]")?,
        fraction: 1.0,
        context_words: 2,
        stop_words: false,
        buckets: 0,
        seed: 1,
        key_hex: BENCH_KEY_HEX.into(),
        null_keys: 20,
        label: String::new(),
    };
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--fraction" => a.fraction = num(&v)?,
            "--context-words" => a.context_words = num(&v)? as usize,
            "--stop-words" => a.stop_words = num(&v)? != 0.0,
            "--buckets" => a.buckets = num(&v)? as u32,
            "--seed" => a.seed = num(&v)? as u64,
            "--key-hex" => a.key_hex = v,
            "--null-keys" => a.null_keys = num(&v)? as usize,
            "--label" => a.label = v,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(a)
}

fn text_of(line: &str) -> Option<(Value, String)> {
    let v: Value = serde_json::from_str(line).ok()?;
    let t = v.get("text")?.as_str()?.to_string();
    Some((v, t))
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let cfg = MarkConfig {
        context_words: a.context_words,
        context_stop_words: a.stop_words,
        context_buckets: a.buckets,
        ..MarkConfig::default()
    };
    let key = MarkKey::from_hex("bench", &a.key_hex).expect("key");
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    match a.mode.as_str() {
        "mark" => {
            let marker = Marker::new(Keyring::new(key), cfg);
            for (i, line) in stdin.lines().enumerate() {
                let line = line.expect("read");
                let Some((mut v, t)) = text_of(&line) else {
                    continue;
                };
                let marked = uniform(a.seed, i as u64) < a.fraction;
                if marked {
                    v["text"] = Value::String(marker.mark(&t));
                }
                v["marked"] = Value::Bool(marked);
                writeln!(out, "{v}").expect("write");
            }
        }
        "score" => {
            let mut ring = Keyring::new(key);
            for k in 0..a.null_keys {
                let secret: Vec<u8> = (0..4)
                    .flat_map(|j| splitmix(0xA11CE ^ (k as u64 * 8 + j)).to_le_bytes())
                    .collect();
                ring.add(MarkKey::new(format!("null{k}"), secret).expect("key"))
                    .expect("add");
            }
            let mut acc = Accumulator::new(ring, cfg);
            let mut words = 0usize;
            for line in stdin.lines() {
                let line = line.expect("read");
                if let Some((_, t)) = text_of(&line) {
                    words += t.split_whitespace().count();
                    acc.add(&t);
                }
            }
            let dets = acc.detections();
            let bench = dets.iter().find(|d| d.key_id == "bench").expect("bench");
            let mut null_log10: Vec<f64> = dets
                .iter()
                .filter(|d| d.key_id != "bench")
                .map(|d| d.log10_p)
                .collect();
            null_log10.sort_by(f64::total_cmp);
            let sizes = acc.tuple_sizes();
            let in_tuples_of = |k: u32| {
                sizes
                    .iter()
                    .filter(|&&s| s >= k)
                    .map(|&s| s as u64)
                    .sum::<u64>() as f64
                    / bench.positions.max(1) as f64
            };
            let r = json!({
                "positions_in_tuples_of_5": in_tuples_of(5),
                "positions_in_tuples_of_20": in_tuples_of(20),
                "tuples_of_5": sizes.iter().filter(|&&s| s >= 5).count(),
                "label": a.label,
                "context_words": a.context_words,
                "stop_words": a.stop_words,
                "buckets": a.buckets,
                "texts": acc.texts(),
                "words": words,
                "positions": bench.positions,
                "scored": bench.scored,
                "hits": bench.hits,
                "hit_rate": bench.hits as f64 / bench.scored.max(1) as f64,
                "p_value": bench.p_value,
                "log10_p": bench.log10_p,
                "z": bench.z,
                "null_keys": null_log10.len(),
                "null_min_log10_p": null_log10.first(),
                "null_median_log10_p": null_log10.get(null_log10.len() / 2),
            });
            writeln!(out, "{r}").expect("write");
        }
        m => {
            eprintln!("unknown mode {m}");
            std::process::exit(2);
        }
    }
}
