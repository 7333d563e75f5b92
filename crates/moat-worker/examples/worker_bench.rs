//! Detector-worker throughput on real traffic.
//!
//! ```text
//! cargo run --release -p moat-worker --example worker_bench -- \
//!     ../shared/traffic/dev/traffic.jsonl.zst ../shared/traffic/dev/accounts.jsonl [ROUNDS] [NATS_URL]
//! ```
//!
//! Turns every traffic line into the `ExchangeEvent` a gateway would publish (features
//! computed once, as the gateway does on the request path), then measures, per round:
//! * `core`: the worker's pure state machine alone (decide + settle + verdict bookkeeping,
//!   as the worker loop calls it), events/s on one thread;
//! * with a NATS URL, end to end: publishing every event to a fresh JetStream stream through
//!   the gateway's `EventPublisher` (events/s), then a `moat detect` worker reading the stream
//!   from the start and deciding every event (events/s, wall time to the last decision).
//!   The stream and buckets are deleted afterwards.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use moat_bus::{BusConfig, EventMeta, EventOutcome, EventPublisher, ExchangeEvent};
use moat_detect::{Api, DetectConfig, RequestFeatures};
use moat_traffic::{AccountRecord, JsonlReader, TrafficRecord};
use moat_worker::{DetectorCore, WorkerOptions};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn load(traffic: &str, accounts: &str) -> Vec<ExchangeEvent> {
    let mut meta = HashMap::new();
    for (_, r) in JsonlReader::<AccountRecord>::open(accounts).expect("accounts") {
        let r = r.expect("account line");
        meta.insert(
            r.account.clone(),
            EventMeta {
                created_ms: r.created_ms(),
                verified: r.verified,
            },
        );
    }
    let mut out = Vec::new();
    for (i, (_, r)) in JsonlReader::<TrafficRecord>::open(traffic)
        .expect("traffic")
        .enumerate()
    {
        let r = r.expect("traffic line");
        let Some(api) = Api::from_wire(&r.api) else {
            continue;
        };
        let features =
            RequestFeatures::from_parts(api, &r.request, &r.ip).with_client(&r.key, &r.user_agent);
        out.push(ExchangeEvent {
            replica: "bench".into(),
            seq: i as u64,
            ts_us: r.ts_ms() * 1000,
            meta: meta.get(&r.account).cloned().unwrap_or_default(),
            account: r.account,
            features,
            outcome: EventOutcome {
                status: r.response.status,
                finish_reason: r.response.finish_reason,
                input_tokens: r.response.usage.input_tokens,
                output_tokens: r.response.usage.output_tokens,
            },
        });
    }
    out
}

fn core_round(events: &[ExchangeEvent]) -> f64 {
    let mut core = DetectorCore::new(0, DetectConfig::default());
    let t = Instant::now();
    let mut verdicts = 0;
    for (i, ev) in events.iter().enumerate() {
        core.decide(ev);
        if i % 1000 == 999 {
            verdicts += core.take_verdicts(0).len();
            if i % 5000 == 4999 {
                core.take_summaries();
            }
        }
    }
    verdicts += core.take_verdicts(0).len();
    let s = t.elapsed().as_secs_f64();
    eprintln!(
        "  core: {} events in {s:.2} s, {verdicts} verdicts",
        events.len()
    );
    events.len() as f64 / s
}

async fn nats_round(events: &[ExchangeEvent], url: &str, round: usize) -> (f64, f64) {
    let t = format!("{:x}{round}", std::process::id());
    let cfg = BusConfig {
        url: url.to_string(),
        stream: format!("MOAT_BENCH_{t}"),
        subject_prefix: format!("moat_bench_{t}.events"),
        verdict_bucket: format!("moat_bench_{t}_verdicts"),
        summary_bucket: format!("moat_bench_{t}_summaries"),
        control_subject: format!("moat_bench_{t}.control"),
        publish_queue: events.len() + 1,
        ..BusConfig::default()
    };
    let bus = moat_bus::Bus::connect(cfg.clone(), true)
        .await
        .expect("NATS");
    let publisher = EventPublisher::spawn(bus.clone());
    let t0 = Instant::now();
    for ev in events {
        publisher.publish(ev.clone());
    }
    assert!(publisher.flush(Duration::from_secs(600)).await);
    let published_in = t0.elapsed().as_secs_f64();
    let opts = WorkerOptions {
        bus: cfg.clone(),
        stop_after: Some(events.len() as u64),
        ..WorkerOptions::default()
    };
    let t1 = Instant::now();
    let stats = moat_worker::run(opts, std::future::pending::<()>())
        .await
        .expect("worker");
    let decided_in = t1.elapsed().as_secs_f64();
    eprintln!(
        "  nats: published {} in {published_in:.2} s; worker decided {} ({} late) in {decided_in:.2} s, {} verdicts",
        events.len(),
        stats.decided,
        stats.late,
        stats.verdicts
    );
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let _ = js.delete_stream(cfg.stream.as_str()).await;
    let _ = js.delete_stream(format!("KV_{}", cfg.verdict_bucket)).await;
    let _ = js.delete_stream(format!("KV_{}", cfg.summary_bucket)).await;
    (
        events.len() as f64 / published_in,
        stats.decided as f64 / decided_in,
    )
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: worker_bench TRAFFIC ACCOUNTS [ROUNDS] [NATS_URL]";
    let traffic = args.get(1).expect(usage);
    let accounts = args.get(2).expect(usage);
    let rounds: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    let nats = args.get(4);
    let t = Instant::now();
    let events = load(traffic, accounts);
    let bytes: usize = events
        .iter()
        .map(|e| serde_json::to_vec(e).map_or(0, |v| v.len()))
        .sum();
    eprintln!(
        "{} events loaded in {:.1} s (mean {} bytes as JSON on the bus)",
        events.len(),
        t.elapsed().as_secs_f64(),
        bytes / events.len().max(1)
    );
    let (mut core, mut publish, mut decide) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        eprintln!("round {}", r + 1);
        core.push(core_round(&events));
        if let Some(url) = nats {
            let (p, d) = nats_round(&events, url, r).await;
            publish.push(p);
            decide.push(d);
        }
    }
    println!(
        "events={} rounds={rounds} bytes_per_event={}",
        events.len(),
        bytes / events.len().max(1)
    );
    println!(
        "core_events_per_s_median={:.0} rounds={core:?}",
        median(core.clone())
    );
    println!("core_us_per_event={:.2}", 1e6 / median(core));
    if nats.is_some() {
        println!(
            "publish_events_per_s_median={:.0} rounds={publish:?}",
            median(publish.clone())
        );
        println!(
            "worker_end_to_end_events_per_s_median={:.0} rounds={decide:?}",
            median(decide.clone())
        );
    }
}
