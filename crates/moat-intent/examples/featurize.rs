//! Feature extraction for the Python training scripts (`research/intent/`): reads JSON lines
//! `{"s": system, "u": last_user}` on stdin and writes, per line, a little-endian `u32`
//! count followed by that many `u32` features `(kind << 24) | (hash >> 40)` on stdout.
//! Bucket `b` of a model with 2^k buckets is `(hash >> 40) >> (24 - k)`, so one extraction
//! serves every table size. Flags: `--kinds N --sys N --head N --tail N`.
//!
//! `cargo run --release -p moat-intent --example featurize -- --kinds 254 < in.jsonl > out.bin`

use std::io::{BufRead, BufWriter, Write};

use moat_intent::{for_each_feature, FeatureConfig};

fn main() {
    let mut cfg = FeatureConfig::default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < args.len() {
        let v: usize = args[i + 1].parse().expect("numeric flag value");
        match args[i].as_str() {
            "--kinds" => cfg.kinds = v as u8,
            "--sys" => cfg.sys_bytes = v,
            "--head" => cfg.head_bytes = v,
            "--tail" => cfg.tail_bytes = v,
            f => panic!("unknown flag {f}"),
        }
        i += 2;
    }
    let stdin = std::io::stdin();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut buf: Vec<u32> = Vec::new();
    for line in stdin.lock().lines() {
        let line = line.expect("read stdin");
        let v: serde_json::Value = serde_json::from_str(&line).expect("json line");
        let s = v.get("s").and_then(|x| x.as_str()).unwrap_or("");
        let u = v.get("u").and_then(|x| x.as_str()).unwrap_or("");
        buf.clear();
        for_each_feature(&cfg, s, u, |k, h| {
            buf.push((u32::from(k) << 24) | (h >> 40) as u32)
        });
        out.write_all(&(buf.len() as u32).to_le_bytes()).unwrap();
        for f in &buf {
            out.write_all(&f.to_le_bytes()).unwrap();
        }
    }
}
