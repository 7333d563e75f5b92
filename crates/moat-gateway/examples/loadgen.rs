//! A small closed-loop load generator for measuring the gateway's CPU cost per request.
//!
//! ```text
//! cargo run --release -p moat-gateway --example loadgen -- \
//!     --url http://127.0.0.1:8080/v1/chat/completions --key moat_... \
//!     --concurrency 64 --requests 20000 [--stream] [--pid <gateway pid>]
//! ```
//!
//! With `--pid`, reads the gateway's user+system CPU time from `/proc/<pid>/stat`
//! before and after, and prints CPU microseconds per request. Run the upstream
//! (e.g. `moat demo-upstream`) as a separate process so it is not counted.
//!
//! `--url` and `--pid` take comma-separated lists to drive several replicas at once: the
//! workers are spread round-robin over the URLs and the CPU of all PIDs is summed.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Summed user+system ticks of every PID in a comma-separated list.
fn cpu_ticks_all(pids: &str) -> Option<u64> {
    pids.split(',').map(|p| cpu_ticks(p.trim())).sum()
}

fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // fields 14 and 15 of stat (utime, stime) are at 11 and 12 after the ")".
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn ticks_per_second() -> f64 {
    // Linux exposes USER_HZ = 100 on every common configuration.
    100.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let urls: Vec<String> = arg(&args, "--url")
        .unwrap_or_else(|| "http://127.0.0.1:8080/v1/chat/completions".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let key = arg(&args, "--key").unwrap_or_default();
    let concurrency: usize = arg(&args, "--concurrency")
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let total: usize = arg(&args, "--requests")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let stream = args.iter().any(|a| a == "--stream");
    let pid = arg(&args, "--pid");
    // Valid for both APIs (Anthropic requires max_tokens; OpenAI accepts it).
    let body = format!(
        r#"{{"model":"demo-echo","max_tokens":32,"stream":{stream},"messages":[{{"role":"user","content":"Summarise the plot of a short story about a lighthouse keeper."}}]}}"#
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    // Warm up connections.
    for i in 0..concurrency.min(total) {
        let _ = client
            .post(&urls[i % urls.len()])
            .bearer_auth(&key)
            .body(body.clone())
            .send()
            .await;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let cpu0 = pid.as_deref().and_then(cpu_ticks_all);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (client, url, key, body, next, errors) = (
            client.clone(),
            urls[worker % urls.len()].clone(),
            key.clone(),
            body.clone(),
            next.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                let ok = match client
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat: Vec<Duration> = Vec::with_capacity(total);
    for t in tasks {
        lat.extend(t.await.expect("task"));
    }
    let elapsed = start.elapsed();
    let cpu1 = pid.as_deref().and_then(cpu_ticks_all);
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "requests={} errors={} concurrency={} stream={} elapsed={:.2}s rps={:.0} p50_ms={:.3} p99_ms={:.3}",
        lat.len(),
        errors.load(Ordering::Relaxed),
        concurrency,
        stream,
        elapsed.as_secs_f64(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3
    );
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        let cpu_s = (b - a) as f64 / ticks_per_second();
        println!(
            "server cpu={:.2}s cpu_per_request_us={:.1}",
            cpu_s,
            cpu_s * 1e6 / lat.len() as f64
        );
    }
}
