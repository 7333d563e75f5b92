//! The bus against the real NATS server of this machine (127.0.0.1:4222, JetStream on;
//! `MOAT_TEST_NATS_URL` overrides). Each test uses a stream and buckets of its own and deletes
//! them. These tests fail, not skip, when NATS is unreachable (`.ci/run` starts it).

use std::time::Duration;

use futures::StreamExt;
use moat_bus::{
    Bus, BusConfig, Control, ControlMessage, EventFeed, EventMeta, EventOutcome, EventPublisher,
    ExchangeEvent, SummaryRecord, VerdictRecord, Verdicts,
};
use moat_detect::{Action, ExternalView, RequestFeatures};

fn config() -> BusConfig {
    let t = format!("{:x}", rand_suffix());
    BusConfig {
        url: std::env::var("MOAT_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
        stream: format!("MOAT_TEST_{t}"),
        subject_prefix: format!("moat_test_{t}.events"),
        partitions: 4,
        max_age: Duration::from_secs(600),
        verdict_bucket: format!("moat_test_{t}_verdicts"),
        summary_bucket: format!("moat_test_{t}_summaries"),
        control_subject: format!("moat_test_{t}.control"),
        ..BusConfig::default()
    }
}

fn rand_suffix() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    t ^ (u64::from(std::process::id()) << 40)
}

async fn cleanup(cfg: &BusConfig) {
    let client = async_nats::connect(cfg.url.as_str()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let _ = js.delete_stream(cfg.stream.as_str()).await;
    let _ = js.delete_key_value(cfg.verdict_bucket.as_str()).await;
    let _ = js.delete_key_value(cfg.summary_bucket.as_str()).await;
}

fn event(replica: &str, seq: u64, account: &str) -> ExchangeEvent {
    ExchangeEvent {
        replica: replica.into(),
        seq,
        ts_us: 1_770_000_000_000_000 + seq as i64 * 1000,
        account: account.into(),
        meta: EventMeta {
            created_ms: Some(1),
            verified: Some(true),
        },
        features: RequestFeatures {
            max_tokens: seq as u32,
            ..Default::default()
        },
        outcome: EventOutcome {
            status: 200,
            finish_reason: Some("stop".into()),
            input_tokens: 3,
            output_tokens: 4,
        },
    }
}

#[tokio::test]
async fn published_events_reach_the_owning_worker_in_order_and_only_once() {
    let cfg = config();
    let bus = Bus::connect(cfg.clone(), true)
        .await
        .expect("NATS on 127.0.0.1:4222");
    let publisher = EventPublisher::spawn(bus.clone());
    let accounts: Vec<String> = (0..12).map(|i| format!("acct_{i}")).collect();
    let mut sent = Vec::new();
    for i in 0..300u64 {
        let ev = event("gw-a", publisher.next_seq(), &accounts[(i % 12) as usize]);
        sent.push(ev.clone());
        publisher.publish(ev);
    }
    assert!(
        publisher.flush(Duration::from_secs(10)).await,
        "{:?}",
        publisher.health()
    );
    let h = publisher.health();
    assert_eq!((h.published, h.dropped, h.queued), (300, 0, 0), "{h:?}");
    // a retried batch republishes the same message ids: JetStream keeps one copy of each
    let again = EventPublisher::spawn(bus.clone());
    for ev in sent.iter().take(10) {
        again.publish(ev.clone());
    }
    assert!(again.flush(Duration::from_secs(10)).await);

    // two workers, partitions 0,2 and 1,3
    let mut got = Vec::new();
    for owned in [[0u32, 2], [1, 3]] {
        let expected = sent
            .iter()
            .filter(|e| owned.contains(&moat_bus::partition_of(&e.account, cfg.partitions)))
            .count();
        let mut feed = EventFeed::open(&bus, Some(&owned)).await.unwrap();
        let mut mine = Vec::new();
        while mine.len() < expected {
            let d = tokio::time::timeout(Duration::from_secs(5), feed.next())
                .await
                .expect("feed stalled")
                .unwrap()
                .unwrap();
            assert!(owned.contains(&d.partition));
            let ev = d.event.unwrap();
            assert_eq!(
                moat_bus::partition_of(&ev.account, cfg.partitions),
                d.partition
            );
            mine.push(ev);
        }
        // nothing more for these partitions
        assert!(
            tokio::time::timeout(Duration::from_millis(300), feed.next())
                .await
                .is_err()
        );
        assert!(feed.caught_up());
        got.push(mine);
    }
    let total: usize = got.iter().map(Vec::len).sum();
    assert_eq!(total, 300, "each event exactly once over both workers");
    for mine in &got {
        let expected: Vec<&ExchangeEvent> = sent
            .iter()
            .filter(|e| mine.iter().any(|m| m.account == e.account))
            .collect();
        assert_eq!(
            mine.iter().collect::<Vec<_>>(),
            expected,
            "stream order kept"
        );
    }
    cleanup(&cfg).await;
}

#[tokio::test]
async fn verdicts_and_summaries_are_watched_from_their_current_values() {
    let cfg = config();
    let bus = Bus::connect(cfg.clone(), true).await.unwrap();
    let verdicts = Verdicts::open(&bus).await.unwrap();
    let view = |z: f64| ExternalView {
        z,
        sub_z: z,
        reasons: vec!["r".into()],
        cluster: None,
        as_of_ms: 5,
    };
    let rec = |account: &str, z: f64| VerdictRecord {
        account: account.into(),
        worker: 0,
        view: view(z),
        action: Action::Allow,
        updated_ms: 1,
    };
    verdicts.put(&rec("acct one", 1.0)).await.unwrap();
    verdicts.put(&rec("acct one", 2.0)).await.unwrap();
    verdicts.put(&rec("acct_2", 3.0)).await.unwrap();
    let mut w = Box::pin(verdicts.watch().await.unwrap());
    let mut first = Vec::new();
    for _ in 0..2 {
        let (key, v) = tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let v = v.unwrap();
        assert_eq!(
            moat_bus::account_of_key(&key).as_deref(),
            Some(v.account.as_str())
        );
        first.push((v.account, v.view.z));
    }
    first.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        first,
        vec![("acct one".to_string(), 2.0), ("acct_2".to_string(), 3.0)]
    );
    verdicts.put(&rec("acct_2", 4.0)).await.unwrap();
    let (_, v) = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(v.unwrap().view.z, 4.0);

    let summaries = moat_bus::Summaries::open(&bus).await.unwrap();
    let s = SummaryRecord {
        worker: 1,
        summary: moat_detect::AccountSummary {
            account: "acct_9".into(),
            created_ms: Some(7),
            new_at_first_request: true,
            keys: vec![],
            evidence: Default::default(),
        },
    };
    summaries.put(&s).await.unwrap();
    let mut ws = Box::pin(summaries.watch().await.unwrap());
    let (_, got) = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.unwrap(), s);
    cleanup(&cfg).await;
}

#[tokio::test]
async fn control_messages_reach_subscribers() {
    let cfg = config();
    let bus = Bus::connect(cfg.clone(), true).await.unwrap();
    let control = Control::new(bus.clone());
    let mut sub = Box::pin(control.subscribe().await.unwrap());
    let msg = ControlMessage::KeyChanged {
        key_id: "key_abc".into(),
    };
    control.send("gw-a", &msg).await.unwrap();
    let (origin, got) = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((origin.as_str(), got), ("gw-a", msg));
}

#[tokio::test]
async fn a_gateway_starts_while_nats_is_down_and_counts_what_it_drops() {
    let cfg = BusConfig {
        url: "nats://127.0.0.1:1".into(), // nothing listens on port 1
        publish_queue: 4,
        ..config()
    };
    let bus = Bus::connect(cfg, false).await.expect("returns at once");
    assert!(!bus.is_connected());
    let p = EventPublisher::spawn(bus);
    for i in 0..10 {
        p.publish(event("gw", i, "a"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let h = p.health();
    assert!(!h.connected);
    assert_eq!(h.published, 0);
    // the task holds one batch (up to the queue size) and the queue the next four
    assert!(h.dropped >= 2, "{h:?}");
    assert!(!p.flush(Duration::from_millis(100)).await);
}
