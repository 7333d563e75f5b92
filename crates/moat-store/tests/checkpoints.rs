//! Encrypted bodies, signed checkpoints and evidence reads, on both backends.

#[macro_use]
mod common;

use std::collections::BTreeSet;

use common::{record, TestDb};
use moat_store::{
    AuditKeyring, AuditRecord, AuditWriter, AuditWriterConfig, BreakReason, CheckpointSigner,
    SpanLink, Store,
};
use sqlx::Row;

on_both_backends!(
    encrypted_bodies_round_trip,
    checkpoints_sign_and_catch_removal,
    evidence_reads
);

fn keys() -> AuditKeyring {
    AuditKeyring::from_spec(&format!("k1={}", "3c".repeat(32))).unwrap()
}

async fn write(store: &Store, records: impl IntoIterator<Item = AuditRecord>) {
    let (h, task) = AuditWriter::spawn(store.clone(), AuditWriterConfig::default());
    for r in records {
        h.record(r);
    }
    let stats = task.shutdown().await;
    assert_eq!(stats.lost, 0);
}

async fn encrypted_bodies_round_trip(db: &TestDb) {
    let store = db.store.clone().with_audit_keys(keys());
    write(&store, (0..10).map(record)).await;
    let rows = store.read_audit(0, 100).await.unwrap();
    assert_eq!(rows.len(), 10);
    for (i, (_, r)) in rows.iter().enumerate() {
        assert_eq!(r, &record(i as u64));
    }
    // Stored sealed: no plaintext in the row, ciphertext in the BLOB / BYTEA column.
    let mut raw = db.raw().await;
    let row = sqlx::query(
        "SELECT request_body, response_text, enc_key_id, enc_nonce, body_ct FROM audit_log \
         WHERE seq = 3",
    )
    .fetch_one(&mut raw)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>(0), "");
    assert_eq!(row.get::<Option<String>, _>(1), None);
    assert_eq!(row.get::<String, _>(2), "k1");
    assert_eq!(row.get::<Vec<u8>, _>(3).len(), 24);
    assert!(row.get::<Vec<u8>, _>(4).len() > 16);
    let report = store.verify_audit().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.bodies_checked, 10);
    // Without the key the chain still verifies; bodies are unchecked.
    let report = db.store.verify_audit().await.unwrap();
    assert!(report.is_ok());
    assert_eq!(report.bodies_unchecked, 10);
}

async fn checkpoints_sign_and_catch_removal(db: &TestDb) {
    let store = &db.store;
    write(store, (0..6).map(record)).await;
    let signer = CheckpointSigner::generate();
    let cp = store.audit_checkpoint(&signer).await.unwrap();
    assert_eq!(cp.seq, 6);
    cp.verify_signature(Some(&signer.public_hex())).unwrap();
    assert_eq!(store.audit_checkpoints().await.unwrap(), vec![cp.clone()]);
    assert_eq!(
        store.audit_log_id().await.unwrap(),
        cp.log_id,
        "the log id is created once"
    );
    let report = store.verify_audit().await.unwrap();
    assert!(report.is_ok());
    assert_eq!(report.checkpoints_verified, 1);

    // Remove the two newest records and rewrite the head to match: the chain alone looks
    // fine, the checkpoint does not.
    let mut raw = db.raw().await;
    sqlx::query("DELETE FROM audit_log WHERE seq > 4")
        .execute(&mut raw)
        .await
        .unwrap();
    let h: String = sqlx::query("SELECT hash FROM audit_log WHERE seq = 4")
        .fetch_one(&mut raw)
        .await
        .unwrap()
        .get(0);
    sqlx::query("UPDATE audit_head SET seq = 4, hash = $1")
        .bind(h)
        .execute(&mut raw)
        .await
        .unwrap();
    let broken = store.verify_audit().await.unwrap().broken.unwrap();
    assert_eq!(broken.seq, 6);
    assert!(
        matches!(broken.reason, BreakReason::Checkpoint(_)),
        "{broken}"
    );
}

async fn evidence_reads(db: &TestDb) {
    let store = db.store.clone().with_audit_keys(keys());
    write(
        &store,
        (0..12).map(|i| {
            let mut r = record(i);
            r.account = Some(format!("acct_{}", i % 3));
            if i % 3 != 2 {
                r.decision = Some(serde_json::json!({"action": "degrade", "cluster": "cl_1"}));
            }
            r
        }),
    )
    .await;
    assert_eq!(
        store.audit_cluster_accounts("cl_1").await.unwrap(),
        vec!["acct_0".to_string(), "acct_1".to_string()]
    );
    assert!(store
        .audit_cluster_accounts("cl_2")
        .await
        .unwrap()
        .is_empty());
    let accounts: BTreeSet<String> = ["acct_1".to_string()].into();
    let (lo, hi) = store
        .audit_seq_range(&accounts, i64::MIN, i64::MAX)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((lo, hi), (2, 11));
    let span = store
        .audit_span(lo, hi, |row| row.account.as_deref() == Some("acct_1"))
        .await
        .unwrap();
    assert_eq!(span.links.len(), 10);
    let full: Vec<_> = span
        .links
        .iter()
        .filter_map(|l| match l {
            SpanLink::Row(e) => Some(e),
            SpanLink::Leaf { .. } => None,
        })
        .collect();
    assert_eq!(full.len(), 4);
    assert!(full.iter().all(|e| e.request_body.is_some()), "decrypted");
    assert_eq!(span.prev_hash.len(), 64);
}
