//! Several gateway replicas (several `Store` handles, each with its own pool, and a writer
//! each) appending to one audit chain.

#[macro_use]
mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{record, t0, TestDb};
use moat_store::{AuditRecord, AuditWriter, AuditWriterConfig, Store};
use moat_traffic::{JsonlReader, TrafficRecord};
use sqlx::Row;

on_both_backends!(two_replicas_append_to_one_chain);

const PER_REPLICA: u64 = 1500;

fn replica_record(replica: u64, i: u64) -> AuditRecord {
    let mut r = record(i);
    // Interleaved arrival times: replica 0 at even, replica 1 at odd milliseconds.
    r.ts = t0() + chrono::Duration::milliseconds((i * 2 + replica) as i64);
    r.account = Some(format!("acct_{replica}"));
    r.request_body = format!(r#"{{"replica":{replica},"i":{i}}}"#);
    r
}

async fn replica(store: Store, replica: u64) {
    let config = AuditWriterConfig {
        batch_size: 16,
        flush_interval: Duration::from_millis(1),
        ..Default::default()
    };
    let (handle, task) = AuditWriter::spawn(store, config);
    for i in 0..PER_REPLICA {
        handle.record(replica_record(replica, i));
        if i % 25 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let stats = task.shutdown().await;
    assert_eq!((stats.written, stats.lost), (PER_REPLICA, 0), "{stats:?}");
}

async fn two_replicas_append_to_one_chain(db: &TestDb) {
    let a = db.store.clone();
    let b = db.reopen().await;
    let (ra, rb) = tokio::join!(tokio::spawn(replica(a, 0)), tokio::spawn(replica(b, 1)));
    ra.unwrap();
    rb.unwrap();

    let total = 2 * PER_REPLICA;
    let report = db.store.verify_audit().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records, total);
    assert_eq!(report.last_seq, Some(total as i64));

    // Gapless seq; each replica's records in its own recording order; both interleaved.
    let mut rows = Vec::new();
    while (rows.len() as u64) < total {
        let after = rows.len() as i64;
        rows.extend(db.store.read_audit(after, 1000).await.unwrap());
    }
    let mut next: HashMap<String, u64> = HashMap::new();
    let mut switches = 0;
    for (i, (seq, rec)) in rows.iter().enumerate() {
        assert_eq!(*seq, i as i64 + 1);
        let acct = rec.account.clone().unwrap();
        let n = next.entry(acct.clone()).or_default();
        let replica: u64 = acct.trim_start_matches("acct_").parse().unwrap();
        assert_eq!(rec, &replica_record(replica, *n));
        *n += 1;
        if i > 0 && rows[i - 1].1.account != rec.account {
            switches += 1;
        }
    }
    assert_eq!(next.values().sum::<u64>(), total);
    assert!(switches > 0, "replicas' batches interleave in the chain");

    // The batches took disjoint, contiguous seq ranges.
    let mut raw = db.raw().await;
    let ranges = sqlx::query("SELECT first_seq, last_seq FROM audit_batches ORDER BY first_seq")
        .fetch_all(&mut raw)
        .await
        .unwrap();
    let mut expect = 1i64;
    for r in &ranges {
        let (lo, hi): (i64, i64) = (r.get(0), r.get(1));
        assert_eq!(lo, expect);
        assert!(hi >= lo);
        expect = hi + 1;
    }
    assert_eq!(expect, total as i64 + 1);

    // Export is in arrival order (ts, then seq), not chain order.
    let out = db.dir.path().join("traffic.jsonl");
    assert_eq!(
        db.store.export_traffic(None, None, &out).await.unwrap(),
        total
    );
    let recs: Vec<TrafficRecord> = JsonlReader::<TrafficRecord>::open(&out)
        .unwrap()
        .map(|(_, r)| r.unwrap())
        .collect();
    for (k, r) in recs.iter().enumerate() {
        assert_eq!(r.ts, t0() + chrono::Duration::milliseconds(k as i64));
    }
}
