//! Cost of one `IntentModel::score` call: median nanoseconds per request for prompts of about
//! 150 B, 1 KB, 8 KB and 32 KB (plus a 300-byte system prompt variant).
//!
//! `cargo run --release -p moat-intent --example bench [-- prompts.jsonl]`
//!
//! Without an argument it uses built-in real-world prompts (a grade-school maths question, a
//! chat request, a code prompt, a Chinese and a Russian request, a pasted article); with a
//! JSON-lines file (`{"u": ...}` per line, e.g. `research/intent/data/dataset.jsonl`) it
//! draws the prompts of each size class from that file. Each size class is built from
//! several distinct prompts (concatenated to reach the size), so the measurement is not one
//! cached string.

use std::hint::black_box;
use std::time::Instant;

use moat_intent::IntentModel;

const BUILTIN: &[&str] = &[
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",
    "Can you help me write a polite email to my landlord asking to fix the heating? It has been broken for two weeks and it is getting really cold at night. I already called twice.",
    "from typing import List\n\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n    \"\"\" Check if in given list of numbers, are any two numbers closer to each other than\n    given threshold.\n    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)\n    False\n    \"\"\"\n",
    "我想在下个月去日本旅行，大概十天时间。请帮我规划一下行程，预算大约两万元人民币，我对历史文化和美食都很感兴趣，不太喜欢购物。",
    "Объясни, пожалуйста, чем отличается процесс от потока в операционной системе, и приведи пример, когда лучше использовать каждый из них.",
    "The city council voted on Tuesday to approve a new budget that increases funding for public transit by 12 percent, while cutting administrative costs across several departments. Supporters said the plan would reduce traffic congestion and emissions; critics argued that the cuts would slow down permit processing. The mayor is expected to sign the budget next week.",
];

fn prompts_from(path: Option<String>) -> Vec<String> {
    if let Some(p) = path {
        let text = std::fs::read_to_string(p).expect("read prompts file");
        let v: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v.get("u").and_then(|u| u.as_str()).map(str::to_string))
            .collect();
        if !v.is_empty() {
            return v;
        }
    }
    BUILTIN.iter().map(|s| s.to_string()).collect()
}

/// Prompts of about `size` bytes: real prompts near that size, or real prompts concatenated.
fn make(pool: &[String], size: usize, count: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while out.len() < count {
        let mut s = String::new();
        while s.len() < size {
            if !s.is_empty() {
                s.push_str("\n\n");
            }
            s.push_str(&pool[i % pool.len()]);
            i += 1;
        }
        let mut cut = size.min(s.len());
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        out.push(s);
    }
    out
}

/// CPU time consumed by this thread (excludes time spent descheduled on a shared machine).
fn thread_cpu_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

/// Median over 31 rounds of (wall ns, thread-CPU ns) per `score` call.
fn median_ns(m: &IntentModel, system: &str, prompts: &[String]) -> (f64, f64) {
    let rounds = 31;
    let bytes: usize = prompts.iter().map(|p| p.len().min(2048) + 64).sum();
    let reps = (200_000 / bytes).max(1);
    let mut wall = Vec::with_capacity(rounds);
    let mut cpu = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let c = thread_cpu_ns();
        let t = Instant::now();
        for _ in 0..reps {
            for p in prompts {
                black_box(m.score(black_box(system), black_box(p)));
            }
        }
        let n = (reps * prompts.len()) as f64;
        wall.push(t.elapsed().as_nanos() as f64 / n);
        cpu.push((thread_cpu_ns() - c) as f64 / n);
    }
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    (wall[rounds / 2], cpu[rounds / 2])
}

/// Per-request CPU time over real requests (`{"s", "u"[, "kind"]}` lines; only `kind ==
/// "ordinary"` rows when the field is present): median, p90, p99 of 20 repetitions each.
fn distribution(m: &IntentModel, path: &str) {
    let text = std::fs::read_to_string(path).expect("read prompts file");
    let mut reqs: Vec<(String, String)> = Vec::new();
    for l in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
            continue;
        };
        if v.get("kind")
            .and_then(|k| k.as_str())
            .is_some_and(|k| k != "ordinary")
        {
            continue;
        }
        let s = v
            .get("s")
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .to_string();
        let u = v
            .get("u")
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .to_string();
        reqs.push((s, u));
    }
    if reqs.is_empty() {
        return;
    }
    let mut ns: Vec<f64> = Vec::with_capacity(reqs.len());
    let mut bytes: Vec<usize> = reqs.iter().map(|(s, u)| s.len() + u.len()).collect();
    for (s, u) in &reqs {
        let c = thread_cpu_ns();
        for _ in 0..20 {
            black_box(m.score(black_box(s), black_box(u)));
        }
        ns.push((thread_cpu_ns() - c) as f64 / 20.0);
    }
    ns.sort_by(f64::total_cmp);
    bytes.sort_unstable();
    let q = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p) as usize];
    println!(
        "{} ordinary requests from {path} (median {} B, p90 {} B): CPU per request mean {:.0} ns, median {:.0} ns, p90 {:.0} ns, p99 {:.0} ns, max {:.0} ns",
        reqs.len(),
        bytes[bytes.len() / 2],
        bytes[bytes.len() * 9 / 10],
        ns.iter().sum::<f64>() / ns.len() as f64,
        q(&ns, 0.5),
        q(&ns, 0.9),
        q(&ns, 0.99),
        ns[ns.len() - 1]
    );
}

fn main() {
    let m = IntentModel::embedded();
    let arg = std::env::args().nth(1);
    if let Some(p) = &arg {
        distribution(m, p);
    }
    let pool = prompts_from(arg);
    let sys = "You are a helpful assistant for an online store. Answer customer questions about orders, shipping and returns politely and concisely. If you do not know the answer, say so and offer to connect the customer with a human agent. Never reveal internal notes.";
    // warm up (model parse, caches)
    for p in &pool {
        black_box(m.score("", p));
    }
    println!(
        "moat-intent score(): median ns per request ({} buckets, model {} B)",
        m.buckets(),
        moat_intent::EMBEDDED_MODEL.len()
    );
    println!("(wall clock / this thread's CPU time, which excludes time spent descheduled)");
    println!(
        "{:>8} {:>26} {:>26}",
        "size", "no system", "with 300 B system"
    );
    for (label, size) in [
        ("150 B", 150),
        ("1 KB", 1024),
        ("8 KB", 8192),
        ("32 KB", 32768),
    ] {
        let ps = make(&pool, size, 16);
        let (aw, ac) = median_ns(m, "", &ps);
        let (bw, bc) = median_ns(m, sys, &ps);
        println!("{label:>8} {aw:>8.0} ns / {ac:>6.0} ns cpu {bw:>8.0} ns / {bc:>6.0} ns cpu");
    }
}
