//! Audit write throughput per backend: records/s through the real batched writer into a fresh
//! SQLite file (WAL) and a fresh PostgreSQL database, alternating in the same run, then two
//! concurrent writers (two `Store` handles, as two gateway replicas) on one PostgreSQL chain.
//! Prints the median of the rounds and the ratios.
//!
//! ```sh
//! cargo run --release -p moat-store --example store_backends -- [records] [rounds]
//! ```
//!
//! PostgreSQL: the server of `MOAT_BENCH_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each round creates and drops a database
//! `moat_bench_<random>` on it.

mod common;

use std::time::Instant;

use common::record;

use moat_store::{AuditRecord, AuditWriter, AuditWriterConfig, Store};
use sqlx::{Connection, Executor};

fn pg_server() -> String {
    std::env::var("MOAT_BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| i + authority);
    match query {
        Some(q) => format!("{}/{name}?{q}", &base[..path]),
        None => format!("{}/{name}", &base[..path]),
    }
}

async fn admin(sql: &str) {
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&pg_server())
        .await
        .expect("PostgreSQL reachable (MOAT_BENCH_PG_URL)");
    c.execute(sql).await.expect("admin statement");
    let _ = c.close().await;
}

/// Write `records` through `writers` writers on separate handles; records/s.
async fn round(url: &str, records: &[AuditRecord], writers: usize) -> f64 {
    let mut stores = Vec::new();
    for _ in 0..writers {
        stores.push(Store::open(url).await.expect("open"));
    }
    let per = records.len() / writers;
    let start = Instant::now();
    let mut joins = Vec::new();
    for (w, store) in stores.iter().enumerate() {
        let store = store.clone();
        let chunk = records[w * per..(w + 1) * per].to_vec();
        joins.push(tokio::spawn(async move {
            let (audit, task) = AuditWriter::spawn(store, AuditWriterConfig::default());
            for r in chunk {
                audit.record(r);
            }
            task.shutdown().await
        }));
    }
    let mut written = 0;
    for j in joins {
        let stats = j.await.expect("writer");
        assert_eq!(stats.lost, 0);
        written += stats.written;
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(written as usize, per * writers);
    let report = stores[0].verify_audit().await.expect("verify");
    assert!(report.is_ok(), "{report:?}");
    for s in &stores {
        s.close().await;
    }
    written as f64 / secs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let records: Vec<AuditRecord> = (0..n).map(record).collect();
    let (mut sqlite, mut pg, mut pg2) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bench.db");
        sqlite.push(round(&path.to_string_lossy(), &records, 1).await);

        for (writers, out) in [(1, &mut pg), (2, &mut pg2)] {
            let mut b = [0u8; 6];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
            let name = format!("moat_bench_{}", hex::encode(b));
            admin(&format!("CREATE DATABASE {name}")).await;
            out.push(round(&with_database(&pg_server(), &name), &records, writers).await);
            admin(&format!("DROP DATABASE {name} WITH (FORCE)")).await;
        }
        eprintln!(
            "round {r}: sqlite {:.0}/s, postgres {:.0}/s, postgres x2 writers {:.0}/s",
            sqlite[r], pg[r], pg2[r]
        );
    }
    let (s, p, p2) = (median(sqlite), median(pg), median(pg2));
    println!("audit records/s, {n} records, median of {rounds} rounds (batch 256)");
    println!("  sqlite (WAL file)            {s:>9.0}");
    println!(
        "  postgres, 1 writer           {p:>9.0}   ({:.2}x sqlite)",
        p / s
    );
    println!(
        "  postgres, 2 writers, 1 chain {p2:>9.0}   ({:.2}x 1 writer)",
        p2 / p
    );
}
