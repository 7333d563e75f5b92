//! Latency of one reserve + settle pair: `InMemoryLimiter` vs `RedisLimiter`,
//! measured in the same run through `dyn Limiter`.
//!
//! ```text
//! cargo run --release -p moat-limits --features redis --example redis_bench [OPS] [REDIS_URL]
//! ```
//!
//! Defaults: 20 000 pairs, `redis://127.0.0.1:6379/`. Prints median, p99 and
//! max per pair for one caller, then for 32 concurrent callers (one account
//! each) with the aggregate throughput. Uses keys under `moat-bench:<pid>:`
//! and deletes them afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moat_limits::{
    Estimate, FailMode, InMemoryLimiter, Limiter, Limits, RedisLimiter, RedisLimiterConfig,
};

/// 2026-11-23T00:00:00Z
const T0: i64 = 1_795_392_000_000;
const CONCURRENCY: usize = 32;

fn limits() -> Limits {
    // generous limits: every reservation is admitted, all three checks run
    Limits {
        requests_per_minute: Some(u32::MAX),
        tokens_per_minute: Some(1 << 36),
        tokens_per_day: Some(1 << 50),
    }
}

/// `ops` reserve+settle pairs on `account`; the latency of each pair.
async fn pairs(l: &dyn Limiter, account: &str, ops: usize) -> Vec<Duration> {
    let lim = limits();
    let mut lat = Vec::with_capacity(ops);
    for i in 0..ops {
        let now = T0 + (i / 100) as i64;
        let start = Instant::now();
        let r = l
            .reserve(account, &lim, Estimate { tokens: 1_500 }, now)
            .await
            .expect("generous limits admit everything");
        l.settle(r, 700, now).await;
        lat.push(start.elapsed());
    }
    lat
}

fn report(name: &str, mut lat: Vec<Duration>, wall: Duration) {
    lat.sort_unstable();
    let q = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{name:<34} n={:>6}  median {:>8.2} µs  p99 {:>8.2} µs  max {:>9.2} µs  {:>9.0} pairs/s",
        lat.len(),
        us(q(0.5)),
        us(q(0.99)),
        us(*lat.last().unwrap()),
        lat.len() as f64 / wall.as_secs_f64(),
    );
}

async fn bench(name: &str, l: Arc<dyn Limiter>, ops: usize) {
    // warm-up: creates the account, loads the scripts, fills the caches
    pairs(l.as_ref(), "bench-0", 1_000).await;
    let start = Instant::now();
    let lat = pairs(l.as_ref(), "bench-0", ops).await;
    report(&format!("{name}, 1 caller"), lat, start.elapsed());

    let per_task = ops / CONCURRENCY;
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|t| {
            let l = l.clone();
            tokio::spawn(async move { pairs(l.as_ref(), &format!("bench-{t}"), per_task).await })
        })
        .collect();
    let mut lat = Vec::with_capacity(ops);
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    report(
        &format!("{name}, {CONCURRENCY} callers"),
        lat,
        start.elapsed(),
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let ops: usize = args.next().map_or(20_000, |a| a.parse().expect("OPS"));
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".to_owned());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let prefix = format!("moat-bench:{}:", std::process::id());
        bench("InMemoryLimiter", Arc::new(InMemoryLimiter::default()), ops).await;
        let redis = RedisLimiter::connect(RedisLimiterConfig {
            url: url.clone(),
            key_prefix: prefix.clone(),
            fail_mode: FailMode::Closed,
            ..RedisLimiterConfig::default()
        })
        .await
        .expect("Redis reachable");
        let redis = Arc::new(redis);
        bench("RedisLimiter", redis.clone(), ops).await;
        println!("redis errors/timeouts: {}", redis.error_count());

        let client = redis::Client::open(url.as_str()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut c)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut c)
                .await
                .unwrap();
        }
    });
}
