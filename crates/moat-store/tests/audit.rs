#[macro_use]
mod common;

use std::time::Duration;

use common::{record, TestDb};
use moat_store::{AuditWriter, AuditWriterConfig, BreakReason, Store};

on_both_backends!(
    batching_and_shutdown_flush,
    flush_interval_writes_without_shutdown,
    records_round_trip_and_chain_continues_across_writers,
    empty_log_verifies,
    tampered_row_is_detected,
    tampered_row_with_replaced_hash_is_detected,
    deleted_row_is_detected,
    renumbered_rows_are_detected,
    deleted_newest_rows_are_detected,
    transient_db_failure_is_retried_without_loss,
    persistent_failure_at_shutdown_is_counted_as_lost,
    audit_writes_concurrent_with_key_management,
    verify_while_writing_has_no_false_alarms,
    nul_characters_do_not_poison_a_batch,
);

async fn write_records(store: &Store, n: u64, config: AuditWriterConfig) {
    let (handle, task) = AuditWriter::spawn(store.clone(), config);
    for i in 0..n {
        handle.record(record(i));
    }
    let stats = task.shutdown().await;
    assert_eq!(stats.recorded, n);
    assert_eq!(stats.written, n);
    assert_eq!(stats.lost, 0);
    assert_eq!(stats.queued, 0);
}

async fn batching_and_shutdown_flush(db: &TestDb) {
    let store = db.store.clone();
    // Long flush interval: only shutdown can flush the last partial batch.
    let config = AuditWriterConfig {
        batch_size: 64,
        flush_interval: Duration::from_secs(3600),
        channel_capacity: 100,
        ..Default::default()
    };
    let (handle, task) = AuditWriter::spawn(store.clone(), config);
    let mut joins = Vec::new();
    for t in 0..4u64 {
        let h = handle.clone();
        joins.push(tokio::spawn(async move {
            for i in 0..250u64 {
                h.record(record(t * 1000 + i));
            }
        }));
    }
    for j in joins {
        j.await.unwrap();
    }
    let stats = task.shutdown().await;
    assert_eq!(stats.recorded, 1000);
    assert_eq!(stats.written, 1000);
    assert_eq!(stats.lost, 0);
    assert!(
        stats.overflowed > 0,
        "queue passed its soft capacity: {stats:?}"
    );
    assert_eq!(store.audit_count().await.unwrap(), 1000);

    // Records after shutdown are refused and counted, not silently dropped.
    handle.record(record(1));
    assert_eq!(handle.stats().lost, 1);

    let report = store.verify_audit().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records, 1000);
    assert_eq!(report.last_seq, Some(1000));
}

async fn flush_interval_writes_without_shutdown(db: &TestDb) {
    let store = db.store.clone();
    let config = AuditWriterConfig {
        batch_size: 1000,
        flush_interval: Duration::from_millis(20),
        channel_capacity: 10,
        ..Default::default()
    };
    let (handle, task) = AuditWriter::spawn(store.clone(), config);
    for i in 0..5 {
        handle.record(record(i));
    }
    let mut n = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        n = store.audit_count().await.unwrap();
        if n == 5 {
            break;
        }
    }
    assert_eq!(n, 5);
    task.shutdown().await;
}

async fn records_round_trip_and_chain_continues_across_writers(db: &TestDb) {
    let store = db.store.clone();
    write_records(&store, 10, AuditWriterConfig::default()).await;
    // A second writer (e.g. after a restart) continues the same chain.
    store.close().await;
    let store: Store = db.reopen().await;
    let (handle, task) = AuditWriter::spawn(store.clone(), AuditWriterConfig::default());
    for i in 10..20 {
        handle.record(record(i));
    }
    task.shutdown().await;
    let rows = store.read_audit(0, 100).await.unwrap();
    assert_eq!(rows.len(), 20);
    for (i, (seq, rec)) in rows.iter().enumerate() {
        assert_eq!(*seq, i as i64 + 1);
        assert_eq!(rec, &record(i as u64));
    }
    let report = store.verify_audit().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records, 20);
    assert_eq!(report.head_hash.as_ref().map(String::len), Some(64));
}

async fn empty_log_verifies(db: &TestDb) {
    let store = db.store.clone();
    let report = store.verify_audit().await.unwrap();
    assert!(report.is_ok());
    assert_eq!(report.records, 0);
}

async fn tampered_row_is_detected(db: &TestDb) {
    let store = db.store.clone();
    write_records(&store, 20, AuditWriterConfig::default()).await;
    let mut conn = db.raw().await;
    sqlx::query(
        "UPDATE audit_log SET request_body = '{\"model\":\"m\",\"messages\":[]}' WHERE seq = 7",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let report = store.verify_audit().await.unwrap();
    let broken = report.broken.expect("tampering not detected");
    assert_eq!(broken.seq, 7);
    assert_eq!(broken.reason, BreakReason::ContentAltered);
    assert_eq!(report.records, 7);
}

async fn tampered_row_with_replaced_hash_is_detected(db: &TestDb) {
    let store = db.store.clone();
    write_records(&store, 5, AuditWriterConfig::default()).await;
    let mut conn = db.raw().await;
    // Editing a row and overwriting its hash with something else.
    sqlx::query("UPDATE audit_log SET status = 500, hash = $1 WHERE seq = 3")
        .bind("ab".repeat(32))
        .execute(&mut conn)
        .await
        .unwrap();
    let broken = store.verify_audit().await.unwrap().broken.unwrap();
    assert_eq!(broken.seq, 3);
    assert_eq!(broken.reason, BreakReason::ContentAltered);
}

async fn deleted_row_is_detected(db: &TestDb) {
    let store = db.store.clone();
    write_records(&store, 20, AuditWriterConfig::default()).await;
    let mut conn = db.raw().await;
    sqlx::query("DELETE FROM audit_log WHERE seq = 12")
        .execute(&mut conn)
        .await
        .unwrap();
    let broken = store.verify_audit().await.unwrap().broken.unwrap();
    assert_eq!(broken.seq, 13);
    assert_eq!(broken.reason, BreakReason::Missing { expected_seq: 12 });
}

async fn renumbered_rows_are_detected(db: &TestDb) {
    let store = db.store.clone();
    write_records(&store, 6, AuditWriterConfig::default()).await;
    let mut conn = db.raw().await;
    // Delete row 3 and close the gap by renumbering the rows after it.
    sqlx::query("DELETE FROM audit_log WHERE seq = 3")
        .execute(&mut conn)
        .await
        .unwrap();
    for seq in 4..=6 {
        sqlx::query("UPDATE audit_log SET seq = $1 WHERE seq = $2")
            .bind(seq - 1)
            .bind(seq)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let broken = store.verify_audit().await.unwrap().broken.unwrap();
    assert_eq!(broken.seq, 3);
    assert_eq!(broken.reason, BreakReason::ContentAltered);
}

async fn deleted_newest_rows_are_detected(db: &TestDb) {
    let store = db.store.clone();
    write_records(&store, 10, AuditWriterConfig::default()).await;
    let mut conn = db.raw().await;
    sqlx::query("DELETE FROM audit_log WHERE seq >= 9")
        .execute(&mut conn)
        .await
        .unwrap();
    let report = store.verify_audit().await.unwrap();
    let broken = report.broken.unwrap();
    assert_eq!(broken.seq, 10);
    assert_eq!(broken.reason, BreakReason::HeadMismatch { last_seq: 8 });

    // New records after a tail deletion still show the gap.
    write_records(&store, 1, AuditWriterConfig::default()).await;
    let broken = store.verify_audit().await.unwrap().broken.unwrap();
    assert_eq!(broken.reason, BreakReason::Missing { expected_seq: 9 });
}

async fn transient_db_failure_is_retried_without_loss(db: &TestDb) {
    let store = db.store.clone();
    let config = AuditWriterConfig {
        batch_size: 10,
        flush_interval: Duration::from_millis(10),
        channel_capacity: 100,
        ..Default::default()
    };
    let (handle, task) = AuditWriter::spawn(store.clone(), config);
    let mut conn = db.raw().await;
    sqlx::query("ALTER TABLE audit_log RENAME TO audit_log_away")
        .execute(&mut conn)
        .await
        .unwrap();
    for i in 0..25 {
        handle.record(record(i));
    }
    let mut errors = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        errors = handle.stats().write_errors;
        if errors >= 2 {
            break;
        }
    }
    assert!(errors >= 2, "writer should be failing and retrying");
    sqlx::query("ALTER TABLE audit_log_away RENAME TO audit_log")
        .execute(&mut conn)
        .await
        .unwrap();
    let stats = task.shutdown().await;
    assert_eq!(stats.written, 25, "{stats:?}");
    assert_eq!(stats.lost, 0);
    assert_eq!(store.audit_count().await.unwrap(), 25);
    assert!(store.verify_audit().await.unwrap().is_ok());
}

async fn persistent_failure_at_shutdown_is_counted_as_lost(db: &TestDb) {
    let store = db.store.clone();
    let config = AuditWriterConfig {
        batch_size: 10,
        flush_interval: Duration::from_secs(3600),
        channel_capacity: 100,
        ..Default::default()
    };
    let (handle, task) = AuditWriter::spawn(store.clone(), config);
    let mut conn = db.raw().await;
    sqlx::query("DROP TABLE audit_log")
        .execute(&mut conn)
        .await
        .unwrap();
    for i in 0..3 {
        handle.record(record(i));
    }
    let stats = task.shutdown().await;
    assert_eq!(stats.written, 0);
    assert_eq!(stats.lost, 3, "{stats:?}");
    assert!(stats.write_errors >= 5);
}

async fn audit_writes_concurrent_with_key_management(db: &TestDb) {
    let store = db.store.clone();
    store
        .create_account(common::new_account("acct_a"))
        .await
        .unwrap();
    let config = AuditWriterConfig {
        batch_size: 8,
        flush_interval: Duration::from_millis(1),
        channel_capacity: 100,
        ..Default::default()
    };
    let (handle, task) = AuditWriter::spawn(store.clone(), config);
    let admin = {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..30 {
                let (k, _) = store
                    .create_key("acct_a", moat_store::KeySpec::default())
                    .await
                    .unwrap();
                store
                    .rotate_key(&k.id, Duration::from_secs(1))
                    .await
                    .unwrap();
            }
        })
    };
    for i in 0..500 {
        handle.record(record(i));
        if i % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    admin.await.unwrap();
    let stats = task.shutdown().await;
    assert_eq!(stats.written, 500);
    assert_eq!(store.list_keys(None).await.unwrap().len(), 60);
    assert!(store.verify_audit().await.unwrap().is_ok());
}

async fn verify_while_writing_has_no_false_alarms(db: &TestDb) {
    let store = db.store.clone();
    let config = AuditWriterConfig {
        batch_size: 5,
        flush_interval: Duration::from_millis(1),
        channel_capacity: 100,
        ..Default::default()
    };
    let (handle, task) = AuditWriter::spawn(store.clone(), config);
    let producer = tokio::spawn(async move {
        for i in 0..2000 {
            handle.record(record(i));
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
    });
    while !producer.is_finished() {
        let report = store.verify_audit().await.unwrap();
        assert!(report.is_ok(), "{report:?}");
    }
    producer.await.unwrap();
    task.shutdown().await;
    let report = store.verify_audit().await.unwrap();
    assert!(report.is_ok());
    assert_eq!(report.records, 2000);
}

/// A client can send U+0000 (raw in the body, or JSON-escaped in the model name). PostgreSQL
/// text cannot store it: the record is kept with U+FFFD instead, and the chain still verifies.
async fn nul_characters_do_not_poison_a_batch(db: &TestDb) {
    let store = db.store.clone();
    let mut bad = record(1);
    bad.request_body = "{\"model\":\"m\u{0}x\"}\u{0}".into();
    bad.model = Some("m\u{0}x".into());
    write_records(&store, 1, AuditWriterConfig::default()).await;
    let (handle, task) = AuditWriter::spawn(store.clone(), AuditWriterConfig::default());
    handle.record(bad.clone());
    handle.record(record(2));
    let stats = task.shutdown().await;
    assert_eq!((stats.written, stats.lost), (2, 0), "{stats:?}");
    let rows = store.read_audit(0, 10).await.unwrap();
    assert_eq!(rows.len(), 3);
    let back = &rows[1].1;
    match db.backend {
        common::Backend::Sqlite => assert_eq!(back, &bad),
        common::Backend::Postgres => {
            assert_eq!(back.model.as_deref(), Some("m\u{FFFD}x"));
            assert_eq!(
                back.request_body,
                bad.request_body.replace('\0', "\u{FFFD}")
            );
        }
    }
    assert_eq!(rows[2].1, record(2));
    assert!(store.verify_audit().await.unwrap().is_ok());
}
