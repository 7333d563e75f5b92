#[macro_use]
mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;

use chrono::Duration;
use common::{new_account, record, t0, TestDb};
use moat_store::{AuditWriter, AuditWriterConfig, ExportReport, NewAccount};
use moat_traffic::{AccountRecord, JsonlReader, TrafficRecord};

on_both_backends!(
    traffic_export_round_trip,
    export_of_many_records_pages_correctly,
    accounts_export
);

fn read_lines(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap();
    let reader: Box<dyn std::io::Read> = if path.extension().is_some_and(|e| e == "zst") {
        Box::new(zstd::stream::read::Decoder::new(file).unwrap())
    } else {
        Box::new(file)
    };
    BufReader::new(reader).lines().map(Result::unwrap).collect()
}

async fn traffic_export_round_trip(db: &TestDb) {
    let (dir, store) = (&db.dir, db.store.clone());
    let (handle, task) = AuditWriter::spawn(store.clone(), AuditWriterConfig::default());
    // Recorded out of arrival order (responses finish in any order): export sorts by ts.
    for i in (0..10).rev() {
        handle.record(record(i));
    }
    // Rows the traffic format cannot hold.
    let mut unauth = record(20);
    unauth.account = None;
    unauth.key_id = None;
    unauth.status = 401;
    unauth.error = Some("unknown_key".into());
    handle.record(unauth);
    let mut models = record(21);
    models.api = "openai.models".into();
    models.request_body = String::new();
    handle.record(models);
    let mut truncated = record(22);
    truncated.request_body.truncate(20);
    handle.record(truncated);
    // A rejected but authenticated request is exported.
    let mut limited = record(23);
    limited.status = 429;
    limited.finish_reason = None;
    limited.response_text = None;
    limited.input_tokens = 0;
    limited.output_tokens = 0;
    limited.error = Some("rate_limited".into());
    handle.record(limited);
    task.shutdown().await;

    let out = dir.path().join("traffic.jsonl");
    let report = store.export_traffic_report(None, None, &out).await.unwrap();
    assert_eq!(
        report,
        ExportReport {
            written: 11,
            skipped_unauthenticated: 1,
            skipped_other_api: 1,
            skipped_non_json: 1,
        }
    );
    let lines = read_lines(&out);
    assert_eq!(lines.len(), 11);
    // Exact DESIGN.md shape of the first line.
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(
        first,
        serde_json::json!({
            "ts": "2026-03-02T14:05:09.312Z",
            "account": "acct_a",
            "key": "key_aaaaaaaaaaaa",
            "ip": "198.51.100.17",
            "user_agent": "OpenAI/Python 1.51.0",
            "api": "openai.chat",
            "request": {"model": "m", "messages": [{"role": "user", "content": "question 0"}], "max_tokens": 512},
            "response": {"status": 200, "finish_reason": "stop",
                         "usage": {"input_tokens": 10, "output_tokens": 20}, "text": "answer 0"}
        })
    );
    assert!(lines[0].starts_with(r#"{"ts":"2026-03-02T14:05:09.312Z","account":"acct_a""#));
    // Arrival order, parseable by the replay reader.
    let recs: Vec<TrafficRecord> = JsonlReader::<TrafficRecord>::open(&out)
        .unwrap()
        .map(|(_, r)| r.unwrap())
        .collect();
    assert!(recs.windows(2).all(|w| w[0].ts <= w[1].ts));
    assert_eq!(recs[10].response.status, 429);
    assert_eq!(recs[10].response.finish_reason, None);

    // Time window: since inclusive, until exclusive.
    let out = dir.path().join("window.jsonl.zst");
    let n = store
        .export_traffic(
            Some(t0() + Duration::seconds(2)),
            Some(t0() + Duration::seconds(5)),
            &out,
        )
        .await
        .unwrap();
    assert_eq!(n, 3);
    // Really zstd: starts with the zstd magic number.
    assert_eq!(
        &std::fs::read(&out).unwrap()[..4],
        &[0x28, 0xb5, 0x2f, 0xfd]
    );
    let lines = read_lines(&out);
    assert_eq!(lines.len(), 3);
    let recs: Vec<TrafficRecord> = JsonlReader::<TrafficRecord>::open(&out)
        .unwrap()
        .map(|(_, r)| r.unwrap())
        .collect();
    let contents: Vec<_> = recs
        .iter()
        .map(|r| {
            r.request["messages"][0]["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(contents, ["question 2", "question 3", "question 4"]);
}

async fn export_of_many_records_pages_correctly(db: &TestDb) {
    let (dir, store) = (&db.dir, db.store.clone());
    let (handle, task) = AuditWriter::spawn(store.clone(), AuditWriterConfig::default());
    // Several records share each timestamp, spanning more than one export page.
    for i in 0..4500u64 {
        let mut r = record(i);
        r.ts = t0() + Duration::seconds((i / 3) as i64);
        handle.record(r);
    }
    task.shutdown().await;
    let out = dir.path().join("all.jsonl.zst");
    assert_eq!(store.export_traffic(None, None, &out).await.unwrap(), 4500);
    let recs: Vec<TrafficRecord> = JsonlReader::<TrafficRecord>::open(&out)
        .unwrap()
        .map(|(_, r)| r.unwrap())
        .collect();
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.response.usage.input_tokens, 10 + i as u64);
    }
}

async fn accounts_export(db: &TestDb) {
    let (dir, store) = (&db.dir, db.store.clone());
    store
        .create_account(NewAccount {
            verified: true,
            tier: "enterprise".into(),
            ..new_account("acct_b")
        })
        .await
        .unwrap();
    store
        .create_account(NewAccount {
            email_domain: None,
            country: None,
            ..new_account("acct_a")
        })
        .await
        .unwrap();
    let out = dir.path().join("accounts.jsonl");
    assert_eq!(store.export_accounts(&out).await.unwrap(), 2);
    let lines = read_lines(&out);
    assert_eq!(lines.len(), 2);
    let a: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(a["account"], "acct_a");
    assert_eq!(a["tier"], "free");
    assert!(a.get("email_domain").is_none());
    let created = a["created"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 20, "{created}");
    let recs: Vec<AccountRecord> = JsonlReader::<AccountRecord>::open(&out)
        .unwrap()
        .map(|(_, r)| r.unwrap())
        .collect();
    assert_eq!(recs[1].account, "acct_b");
    assert_eq!(recs[1].tier.as_deref(), Some("enterprise"));
    assert_eq!(recs[1].email_domain.as_deref(), Some("example.com"));
    assert_eq!(recs[1].country.as_deref(), Some("US"));
    assert_eq!(recs[1].verified, Some(true));
}
