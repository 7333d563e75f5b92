//! Build a pack from a real (encrypted) SQLite audit log, verify it, and check that tampering
//! is caught and named.

use chrono::Utc;
use moat_evidence::{build, verify, PackInput, PriceTable, Selection};
use moat_store::{
    AuditKeyring, AuditRecord, AuditWriter, AuditWriterConfig, CheckpointSigner, SpanLink, Store,
};

fn rec(i: i64, account: &str) -> AuditRecord {
    AuditRecord {
        ts: chrono::DateTime::from_timestamp(1_770_000_000 + i * 3_600, 0).unwrap(),
        account: Some(account.into()),
        key_id: Some(format!("key_{account}")),
        ip: format!("203.0.113.{}", i % 7),
        user_agent: "ua".into(),
        api: "openai.chat".into(),
        model: Some("m".into()),
        stream: false,
        request_body: format!(r#"{{"model":"m","reasoning_effort":"high","i":{i}}}"#),
        status: 200,
        finish_reason: Some("stop".into()),
        input_tokens: 10 + i as u64,
        output_tokens: 100,
        response_text: Some(format!("answer {i}")),
        latency_ms: 5,
        error: None,
        decision: Some(serde_json::json!({
            "action": if i > 20 { "block" } else { "allow" }, "risk": 0.9,
            "reasons": ["systematic coverage"], "cluster": "cl_1"})),
    }
}

#[tokio::test]
async fn pack_verifies_and_tampering_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let keys = AuditKeyring::from_spec(&format!("k1={}", "42".repeat(32))).unwrap();
    let store = Store::open(&dir.path().join("a.db").to_string_lossy())
        .await
        .unwrap()
        .with_audit_keys(keys);
    let (audit, task) = AuditWriter::spawn(store.clone(), AuditWriterConfig::default());
    for i in 0..40 {
        audit.record(rec(i, if i % 2 == 0 { "acct_a" } else { "acct_benign" }));
    }
    task.shutdown().await;
    let signer = CheckpointSigner::generate();
    let cp = store.audit_checkpoint(&signer).await.unwrap();
    assert_eq!(store.audit_cluster_accounts("cl_1").await.unwrap().len(), 2);

    let sel = Selection {
        cluster: None,
        accounts: vec!["acct_a".into()],
        since_us: None,
        until_us: None,
    };
    let set = sel.accounts.iter().cloned().collect();
    let (lo, _) = store
        .audit_seq_range(&set, i64::MIN, i64::MAX)
        .await
        .unwrap()
        .unwrap();
    let span = store
        .audit_span(lo, cp.seq, |r| sel.matches(r.account.as_deref(), r.ts_us))
        .await
        .unwrap();
    let pack = build(PackInput {
        selection: sel,
        span,
        checkpoint: cp,
        overrides: vec![],
        prices: PriceTable::default(),
        verify_report: None,
        generated_at: Utc::now(),
    });
    assert_eq!(pack.totals.exchanges, 20);
    assert_eq!(pack.totals.output_tokens, 2_000);
    assert_eq!(pack.totals.reasoning_output_tokens, 2_000);
    assert_eq!(
        pack.totals.input_tokens,
        (0..40).step_by(2).map(|i| 10 + i).sum::<u64>()
    );
    // Other accounts' rows are leaves only.
    let leaves = pack
        .proof
        .span
        .links
        .iter()
        .filter(|l| matches!(l, SpanLink::Leaf { .. }))
        .count();
    assert_eq!(leaves, 20);
    assert!(pack.actions.iter().any(|a| a.action == "block"));
    let ok = verify(&pack, Some(&signer.public_hex())).unwrap();
    assert_eq!((ok.records, ok.bodies, ok.links), (20, 20, 40));

    // Changed token count in a record.
    let mut bad = pack.clone();
    let SpanLink::Row(e) = &mut bad.proof.span.links[4] else {
        panic!("row expected")
    };
    e.row.output_tokens += 1;
    let seq = e.row.seq;
    let err = verify(&bad, None).unwrap_err();
    assert!(
        err.contains(&format!("record seq {seq}: content altered")),
        "{err}"
    );

    // A dropped leaf.
    let mut bad = pack.clone();
    let SpanLink::Leaf { seq, .. } = bad.proof.span.links.remove(5) else {
        panic!("leaf expected")
    };
    let err = verify(&bad, None).unwrap_err();
    assert!(err.contains(&format!("record seq {seq}: missing")), "{err}");

    // Stated totals that the records do not support.
    let mut bad = pack.clone();
    bad.totals.output_tokens += 1;
    assert!(verify(&bad, None).unwrap_err().contains("stated totals"));

    // Another signer.
    let other = CheckpointSigner::generate();
    assert!(verify(&pack, Some(&other.public_hex())).is_err());
}
