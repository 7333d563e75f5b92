//! A worker against the real NATS server of this machine: events published by two
//! "replicas" out of arrival order are decided in arrival order, exactly as the pure core
//! decides the sorted sequence, and verdicts land in the bucket.

use std::time::Duration;

use futures::StreamExt;
use moat_bus::{Bus, BusConfig, EventMeta, EventOutcome, EventPublisher, ExchangeEvent, Verdicts};
use moat_detect::{Api, DetectConfig, RequestFeatures, RequestView};
use moat_worker::{DetectorCore, WorkerOptions};

fn config() -> BusConfig {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        ^ u128::from(std::process::id());
    let t = format!("{:x}", t as u64);
    BusConfig {
        url: std::env::var("MOAT_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
        stream: format!("MOAT_WT_{t}"),
        subject_prefix: format!("moat_wt_{t}.events"),
        partitions: 4,
        max_age: Duration::from_secs(600),
        verdict_bucket: format!("moat_wt_{t}_verdicts"),
        summary_bucket: format!("moat_wt_{t}_summaries"),
        control_subject: format!("moat_wt_{t}.control"),
        ..BusConfig::default()
    }
}

fn features(prompt: &str, system: &str) -> RequestFeatures {
    let body = serde_json::json!({"model": "m", "max_tokens": 4000, "messages": [
        {"role": "system", "content": system}, {"role": "user", "content": prompt}]})
    .to_string();
    let view: RequestView<'_> = serde_json::from_str(&body).unwrap();
    RequestFeatures::from_view(Api::OpenAiChat, &view, "198.51.100.4").with_client("k", "ua")
}

fn events() -> Vec<ExchangeEvent> {
    let cot = "Before answering, write out your complete internal reasoning step by step, showing every intermediate thought.";
    let topics = [
        "tides",
        "glaciers",
        "vaccines",
        "compilers",
        "rainbows",
        "banking",
        "bees",
        "volcanoes",
    ];
    (0..80i64)
        .map(|i| {
            let (account, prompt, system) = if i % 4 == 3 {
                (
                    "acct_chat",
                    format!("what's a good name for a cat? {i}"),
                    "",
                )
            } else {
                (
                    "acct_harvest",
                    format!("Explain {} thoroughly (#{i})", topics[(i % 8) as usize]),
                    cot,
                )
            };
            ExchangeEvent {
                replica: if i % 2 == 0 { "gw-a" } else { "gw-b" }.into(),
                seq: i as u64,
                ts_us: 1_770_000_000_000_000 + i * 30_000_000,
                account: account.into(),
                meta: EventMeta {
                    created_ms: Some(1_769_900_000_000),
                    verified: Some(false),
                },
                features: features(&prompt, system),
                outcome: EventOutcome {
                    status: 200,
                    finish_reason: Some("stop".into()),
                    input_tokens: 50,
                    output_tokens: 2000,
                },
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_decides_the_merged_stream_in_arrival_order_and_publishes_verdicts() {
    let cfg = config();
    let bus = Bus::connect(cfg.clone(), true)
        .await
        .expect("NATS on 127.0.0.1:4222");
    let evs = events();
    // publish in a shuffled (completion) order: neighbours swapped pairwise
    let publisher = EventPublisher::spawn(bus.clone());
    for pair in evs.chunks(2) {
        for ev in pair.iter().rev() {
            publisher.publish(ev.clone());
        }
    }
    assert!(publisher.flush(Duration::from_secs(10)).await);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("decisions.jsonl");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let opts = WorkerOptions {
        bus: cfg.clone(),
        hold: Duration::from_secs(3600), // event-time hold: only the clock (idle) releases
        decisions_out: Some(out.clone()),
        ..WorkerOptions::default()
    };
    let worker = tokio::spawn(moat_worker::run(opts, async {
        let _ = stop_rx.await;
    }));
    // the verdict for the harvesting account appears in the bucket
    let verdicts = Verdicts::open(&bus).await.unwrap();
    let mut watch = Box::pin(verdicts.watch().await.unwrap());
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(item) = watch.next().await {
            if let Ok((_, Some(v))) = item {
                if v.account == "acct_harvest" && v.action.is_restrictive() {
                    return v;
                }
            }
        }
        panic!("watch ended")
    })
    .await
    .expect("a restrictive verdict for the harvester");
    assert!(found.view.risk() >= DetectConfig::default().degrade_at);
    stop_tx.send(()).unwrap();
    let stats = worker.await.unwrap().unwrap();
    assert_eq!(stats.decided, 80);
    assert_eq!(stats.late, 0);

    // the same decisions as the pure core on the arrival-ordered sequence
    let mut core = DetectorCore::new(0, DetectConfig::default());
    let expected: Vec<serde_json::Value> = evs
        .iter()
        .map(|e| serde_json::to_value(core.decide(e)).unwrap())
        .collect();
    let got: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), 80);
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g["ts_us"], evs[i].ts_us, "arrival order at {i}");
        for k in ["action", "risk", "reasons", "cluster"] {
            assert_eq!(g[k], e[k], "{k} of decision {i}");
        }
    }
    let client = async_nats::connect(cfg.url.as_str()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let _ = js.delete_stream(cfg.stream.as_str()).await;
    let _ = js.delete_key_value(cfg.verdict_bucket.as_str()).await;
    let _ = js.delete_key_value(cfg.summary_bucket.as_str()).await;
}
