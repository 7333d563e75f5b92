//! Measures the per-chunk cost and hold-back of [`moat_mark::StreamMarker`].
//!
//! ```text
//! cargo run --release -p moat-mark --example stream_bench -- [CHUNK_BYTES] [ROUNDS] < texts.jsonl
//! ```
//!
//! Input: JSON Lines with a `"text"` field (or plain text). Each text is streamed in chunks of
//! about `CHUNK_BYTES` bytes (default 4, roughly one LLM token per SSE delta); the time of
//! every `push` is recorded. Reports mean / p50 / p99 / max ns per chunk, throughput, and the
//! bytes held back after each push (the added latency in text terms).

use moat_mark::{Keyring, MarkConfig, MarkKey, Marker};
use serde_json::Value;
use std::io::BufRead;
use std::time::Instant;

fn pct(sorted: &[u64], q: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let chunk: usize = args.next().map_or(4, |s| s.parse().expect("chunk bytes"));
    let rounds: usize = args.next().map_or(1, |s| s.parse().expect("rounds"));
    let texts: Vec<String> = std::io::stdin()
        .lock()
        .lines()
        .map(|l| l.expect("stdin"))
        .map(|l| match serde_json::from_str::<Value>(&l) {
            Ok(Value::Object(o)) => o
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            _ => l,
        })
        .collect();
    let marker = Marker::new(
        Keyring::new(MarkKey::new("bench", [42u8; 32]).expect("key")),
        MarkConfig::default(),
    );
    let mut times: Vec<u64> = Vec::new();
    let mut held: Vec<u64> = Vec::new();
    let mut bytes = 0usize;
    let mut total_ns = 0u128;
    let mut finish_ns: Vec<u64> = Vec::new();
    let mut out = String::new();
    for _ in 0..rounds {
        for t in &texts {
            let mut s = marker.stream();
            let mut i = 0;
            while i < t.len() {
                let mut j = (i + chunk).min(t.len());
                while !t.is_char_boundary(j) {
                    j += 1;
                }
                out.clear();
                let t0 = Instant::now();
                s.push_into(&t[i..j], &mut out);
                let ns = t0.elapsed().as_nanos();
                total_ns += ns;
                times.push(ns as u64);
                held.push(s.held_back() as u64);
                i = j;
            }
            let t0 = Instant::now();
            std::hint::black_box(s.finish());
            finish_ns.push(t0.elapsed().as_nanos() as u64);
            bytes += t.len();
        }
    }
    times.sort_unstable();
    held.sort_unstable();
    finish_ns.sort_unstable();
    let n = times.len();
    println!(
        "texts {} x {rounds}, chunks {n} of ~{chunk} bytes, {bytes} bytes",
        texts.len()
    );
    println!(
        "push ns/chunk: mean {:.0} p50 {} p90 {} p99 {} max {}",
        total_ns as f64 / n as f64,
        pct(&times, 0.5),
        pct(&times, 0.9),
        pct(&times, 0.99),
        times[n - 1]
    );
    println!(
        "throughput {:.1} MB/s; finish() ns p50 {} p99 {}",
        bytes as f64 / (total_ns as f64 / 1e9) / 1e6,
        pct(&finish_ns, 0.5),
        pct(&finish_ns, 0.99)
    );
    println!(
        "held back after push (bytes): mean {:.1} p50 {} p90 {} p99 {} max {}",
        held.iter().sum::<u64>() as f64 / n as f64,
        pct(&held, 0.5),
        pct(&held, 0.9),
        pct(&held, 0.99),
        held[n - 1]
    );
}
