//! Splits the cost of `score` into feature extraction and weight lookups (diagnostic).
use std::hint::black_box;
use std::time::Instant;

use moat_intent::{for_each_feature, IntentModel};

fn main() {
    let m = IntentModel::embedded();
    let cfg = *m.feature_config();
    let en = "Can you help me write a polite email to my landlord asking to fix the heating? It has been broken for two weeks and it is getting really cold at night. I already called twice. ".repeat(6);
    let zh = "我想在下个月去日本旅行，大概十天时间。请帮我规划一下行程，预算大约两万元人民币，我对历史文化和美食都很感兴趣。".repeat(8);
    for (name, text) in [("en 1KB", &en[..1024]), ("zh", &zh[..])] {
        let mut n = 0u64;
        for_each_feature(&cfg, "", text, |_, _| n += 1);
        let reps = 20_000;
        let t = Instant::now();
        for _ in 0..reps {
            let mut acc = 0u64;
            for_each_feature(&cfg, "", black_box(text), |_, h| acc ^= h);
            black_box(acc);
        }
        let fx = t.elapsed().as_nanos() as f64 / reps as f64;
        let t = Instant::now();
        for _ in 0..reps {
            black_box(m.score("", black_box(text)));
        }
        let sc = t.elapsed().as_nanos() as f64 / reps as f64;
        println!("{name}: {} bytes, {n} features: extraction {fx:.0} ns ({:.1} ns/feature), score {sc:.0} ns", text.len(), fx / n as f64);
    }
}
