//! Micro-benchmark of the marker's hot path: ns per `Marker::mark` call (median over rounds),
//! plus streaming (4-byte chunks) and detection on the same texts.
//!
//! ```text
//! cargo run --release -p moat-mark --example mark_bench -- [ROUNDS] [ITERS_PER_ROUND] [ONLY]
//! ```
//!
//! `ONLY` (`short`, `prose`, `code`, optionally `:mark`, `:stream` or `:detect`) runs one text
//! and one measurement, e.g. under `perf stat`.
//!
//! Texts: (a) `short`: a ~110 byte answer without any synonym-set word, (b) `short_prose`: a
//! ~110 byte answer with eligible words, (c) `prose`: ~1 KB of prose dense with eligible
//! words, (d) `code`: a code-heavy markdown answer.

use moat_mark::{Keyring, MarkConfig, MarkKey, Marker};
use std::hint::black_box;
use std::time::Instant;

const SHORT: &str = "The demo upstream received your request and is answering now. \
It echoes back what you asked, in short form.";

const SHORT_PROSE: &str = "Sure! It's a big change, but you don't need to modify the file. \
Usually the defaults work fine for everyone.";

const PROSE: &str = "Sure! Here is a big overview of the options. Moreover, the large model \
is often used for this, and it doesn't matter much which one you pick at first. Everyone \
knows that someone will choose the largest option, but that is not always the best idea. \
For example, you can't always modify the configuration file; it is not nearly as simple as \
it looks. Perhaps this is exactly what anybody would do toward the end of a project. \
Finally, we do not know how the system behaves under load.\n\n\
Additionally, the results were not entirely clear, particularly for the bigger runs. \
They usually rarely alter things, and they mainly select approximately 30 kinds of tools. \
In summary, it's a trade-off: the larger setup is typically faster, but it isn't cheaper, \
and there's no reason to believe that the smaller one won't work. I'm sure you'll find \
the right balance. Similarly, the team shouldn't worry about the first release.\n";

const CODE: &str = "Here is how to read a file in Rust:\n\n```rust\nuse std::fs;\n\n\
fn main() -> std::io::Result<()> {\n    let text = fs::read_to_string(\"big.txt\")?;\n    \
for line in text.lines() {\n        if line.len() > 80 {\n            println!(\"large: {line}\");\n        \
}\n    }\n    Ok(())\n}\n```\n\n\
The `read_to_string` call loads the whole file. For large files, use `BufReader` instead:\n\n\
```rust\nlet f = std::io::BufReader::new(fs::File::open(path)?);\nfor line in f.lines() { \
let line = line?; }\n```\n\nSee https://doc.rust-lang.org/std/io/struct.BufReader.html for details.\n";

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn bench(rounds: usize, iters: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters {
        f();
    }
    let mut per = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t0 = Instant::now();
        for _ in 0..iters {
            f();
        }
        per.push(t0.elapsed().as_nanos() as f64 / iters.max(1) as f64);
    }
    median(per)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(31, |s| s.parse().expect("rounds"));
    let iters: usize = args.next().map_or(2000, |s| s.parse().expect("iters"));
    let only = args.next().unwrap_or_default();
    let (only_text, only_what) = only.split_once(':').unwrap_or((&only, ""));
    let run = |what: &str| only_what.is_empty() || only_what == what;
    let marker = Marker::new(
        Keyring::new(MarkKey::new("bench", [42u8; 32]).expect("key")),
        MarkConfig::default(),
    );
    println!("rounds {rounds} x {iters} iterations, median ns per call");
    for (name, text) in [
        ("short", SHORT),
        ("short_prose", SHORT_PROSE),
        ("prose", PROSE),
        ("code", CODE),
    ] {
        if !only_text.is_empty() && only_text != name {
            continue;
        }
        let (_, st) = marker.mark_with_stats(text);
        let mark = bench(rounds, if run("mark") { iters } else { 0 }, || {
            black_box(marker.mark(black_box(text)));
        });
        let stream = bench(rounds, if run("stream") { iters } else { 0 }, || {
            let mut s = marker.stream();
            let mut out = String::new();
            let mut i = 0;
            while i < text.len() {
                let mut j = (i + 4).min(text.len());
                while !text.is_char_boundary(j) {
                    j += 1;
                }
                s.push_into(&text[i..j], &mut out);
                i = j;
            }
            out.push_str(&s.finish());
            black_box(out);
        });
        let detect = bench(
            rounds,
            if run("detect") { iters / 2 + 1 } else { 0 },
            || {
                black_box(marker.detect(black_box(text)));
            },
        );
        println!(
            "{name:<11} {:>4} B  words {:>3} eligible {:>2} changed {:>2} | mark {mark:>9.0} ns  \
             stream(4B) {stream:>9.0} ns  detect {detect:>9.0} ns",
            text.len(),
            st.words,
            st.eligible,
            st.changed
        );
    }
}
