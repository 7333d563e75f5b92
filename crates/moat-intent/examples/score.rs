//! Scores JSON lines `{"s": system, "u": last_user, ...}` from stdin with the embedded model
//! (or `--model PATH`) and prints `reasoning grader synth` per line (used by
//! `research/intent/eval.py` to check the shipped, quantised model end to end).

use std::io::{BufRead, BufWriter, Write};

use moat_intent::IntentModel;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let owned;
    let m: &IntentModel = if args.len() == 2 && args[0] == "--model" {
        let b = std::fs::read(&args[1]).expect("read model");
        owned = IntentModel::from_bytes(&b).expect("valid model");
        &owned
    } else {
        IntentModel::embedded()
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("read stdin");
        let v: serde_json::Value = serde_json::from_str(&line).expect("json line");
        let s = v.get("s").and_then(|x| x.as_str()).unwrap_or("");
        let u = v.get("u").and_then(|x| x.as_str()).unwrap_or("");
        let sc = m.score(s, u);
        writeln!(out, "{:.6} {:.6} {:.6}", sc.reasoning, sc.grader, sc.synth).unwrap();
    }
}
