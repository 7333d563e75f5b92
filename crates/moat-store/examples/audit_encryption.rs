//! Cost of encryption at rest on the audit write path: records/s through the real batched
//! writer into a fresh SQLite file (WAL), without and with XChaCha20-Poly1305, alternating in
//! the same run; prints the median of the rounds.
//!
//! ```sh
//! cargo run --release -p moat-store --example audit_encryption -- [records] [rounds]
//! ```

mod common;

use std::time::Instant;

use common::record;

use moat_store::{AuditKeyring, AuditRecord, AuditWriter, AuditWriterConfig, Store};

async fn round(records: &[AuditRecord], keys: Option<AuditKeyring>) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.db");
    let mut store = Store::open(&path.to_string_lossy()).await.expect("open");
    if let Some(k) = keys {
        store = store.with_audit_keys(k);
    }
    let start = Instant::now();
    let (audit, task) = AuditWriter::spawn(store.clone(), AuditWriterConfig::default());
    for r in records {
        audit.record(r.clone());
    }
    let stats = task.shutdown().await;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(stats.written as usize, records.len());
    store.close().await;
    records.len() as f64 / secs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(20_000);
    let rounds = args.get(1).copied().unwrap_or(5);
    let records: Vec<AuditRecord> = (0..n).map(record).collect();
    let avg = records
        .iter()
        .map(|r| r.request_body.len() + r.response_text.as_ref().map_or(0, String::len))
        .sum::<usize>()
        / n.max(1);
    let keys = AuditKeyring::from_spec(&format!("k1={}", "5a".repeat(32))).expect("key");
    let (mut plain, mut enc) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        plain.push(round(&records, None).await);
        enc.push(round(&records, Some(keys.clone())).await);
    }
    let (p, e) = (median(plain.clone()), median(enc.clone()));
    println!("records per round: {n}, body bytes per record (request + response): {avg}, rounds: {rounds}");
    println!("plaintext rounds (records/s): {plain:.0?}");
    println!("encrypted rounds (records/s): {enc:.0?}");
    println!(
        "median records/s: plaintext {p:.0}, encrypted {e:.0}, ratio encrypted/plaintext {:.3}",
        e / p
    );
}
