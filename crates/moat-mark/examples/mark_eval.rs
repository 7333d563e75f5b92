//! Evaluation driver: reads texts from stdin, writes one JSON object of statistics per text.
//!
//! Input: JSON Lines, each `{"id": ..., "text": "..."}` (or a bare JSON string); a line that is
//! not JSON is taken as the text itself.
//!
//! ```text
//! cargo run --release -p moat-mark --example mark_eval -- [--mode mark|detect]
//!     [--threshold 1e-6] [--emit-marked] [--seed N] [--key-hex HEX] [--key-per-text]
//!     [--context-words N] < texts.jsonl
//! ```
//!
//! `--mode mark` (default) marks each text with the key, then detects on the marked text and
//! finds `words_to_detect`: the smallest number of whitespace-separated words of the marked
//! text whose prefix reaches `p <= threshold` (null if the whole text does not).
//! `--mode detect` detects on the text as given (false-positive runs).
//! `--key-per-text` uses an independent key for every line (derived from `--seed` and the line
//! number): the p-values are then i.i.d. under the null, which is what a KS test assumes. With
//! one fixed key, texts sharing common (context, set) tuples ("Sure!" at the start of an
//! answer) share their outcomes, so p-values of different texts are correlated.
//! Each output line also has `p_rand`, the randomised p-value `P(X > k) + U·P(X = k)` which is
//! exactly uniform under the null (the plain p-value is discrete, hence conservative).
//! `--context-words N` marks and detects with `MarkConfig::context_words = N` instead of the
//! default.

use moat_mark::stats::ln_poisson_binomial_tail;
use moat_mark::{Detection, Keyring, MarkConfig, MarkKey, Marker};
use serde_json::{json, Value};
use std::io::{BufRead, BufWriter, Write};

struct Args {
    mark: bool,
    threshold: f64,
    emit_marked: bool,
    seed: u64,
    key_hex: String,
    key_per_text: bool,
    cfg: MarkConfig,
}

fn parse_args() -> Args {
    let mut a = Args {
        mark: true,
        threshold: 1e-6,
        emit_marked: false,
        seed: 1,
        key_hex: "6d6f61742d6d61726b206576616c206b6579202d206e6f7420736563726574".into(),
        key_per_text: false,
        cfg: MarkConfig::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().expect("missing value");
        match arg.as_str() {
            "--mode" => a.mark = val() == "mark",
            "--threshold" => a.threshold = val().parse().expect("threshold"),
            "--emit-marked" => a.emit_marked = true,
            "--seed" => a.seed = val().parse().expect("seed"),
            "--key-hex" => a.key_hex = val(),
            "--key-per-text" => a.key_per_text = true,
            "--context-words" => a.cfg.context_words = val().parse().expect("context words"),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// splitmix64, for the randomised p-value.
fn uniform(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn randomised_p(d: &Detection, u: f64) -> f64 {
    let ge = ln_poisson_binomial_tail(&d.null_groups, d.hits).exp();
    let gt = ln_poisson_binomial_tail(&d.null_groups, d.hits + 1).exp();
    gt + u * (ge - gt)
}

/// Byte offsets where each whitespace-separated word ends.
fn word_ends(text: &str) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_word {
                ends.push(i);
            }
            in_word = false;
        } else {
            in_word = true;
        }
    }
    if in_word {
        ends.push(text.len());
    }
    ends
}

fn words_to_detect(text: &str, marker: &Marker, log10_thr: f64) -> Option<usize> {
    let ends = word_ends(text);
    let hit = |n: usize| marker.detect(&text[..ends[n - 1]])[0].log10_p <= log10_thr;
    if ends.is_empty() || !hit(ends.len()) {
        return None;
    }
    let (mut lo, mut hi) = (1usize, ends.len()); // hit(hi) is true
    while lo < hi {
        let mid = (lo + hi) / 2;
        if hit(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(lo)
}

fn main() {
    let args = parse_args();
    let key = MarkKey::from_hex("eval", &args.key_hex).expect("key");
    let ring = Keyring::new(key);
    let fixed = Marker::new(ring, args.cfg);
    let mut rng = args.seed;
    let stdin = std::io::stdin();
    let mut out = BufWriter::new(std::io::stdout());
    for (n, line) in stdin.lock().lines().enumerate() {
        let line = line.expect("read stdin");
        let (id, text) = match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(o)) => (
                o.get("id").cloned().unwrap_or(json!(n)),
                o.get("text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ),
            Ok(Value::String(s)) => (json!(n), s),
            _ => (json!(n), line.clone()),
        };
        let words = word_ends(&text).len();
        let marker = if args.key_per_text {
            let secret = format!("moat-mark-eval-key-{}-{n}", args.seed);
            let k = MarkKey::new("eval", secret.as_bytes()).expect("key");
            Marker::new(Keyring::new(k), args.cfg)
        } else {
            fixed.clone()
        };
        let (scanned, stats) = if args.mark {
            let (m, s) = marker.mark_with_stats(&text);
            (m, Some(s))
        } else {
            (text.clone(), None)
        };
        let d = &marker.detect(&scanned)[0];
        let mut rec = json!({
            "id": id,
            "words": words,
            "positions": d.positions,
            "scored": d.scored,
            "hits": d.hits,
            "log10_p": d.log10_p,
            "p_value": d.p_value,
            "p_rand": randomised_p(d, uniform(&mut rng)),
            "z": d.z,
        });
        if let Some(s) = stats {
            rec["word_tokens"] = json!(s.words);
            rec["eligible"] = json!(s.eligible);
            rec["changed"] = json!(s.changed);
            rec["words_to_detect"] =
                json!(words_to_detect(&scanned, &marker, args.threshold.log10()));
        }
        if args.emit_marked {
            rec["marked"] = json!(scanned);
        }
        writeln!(out, "{rec}").expect("write");
    }
}
