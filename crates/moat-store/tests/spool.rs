//! The audit spool: records outlive a store outage, reach the chain exactly once, in order.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{eventually, pg_addr, record, with_address, Backend, Mode, Proxy, TestDb};
use moat_store::{AuditKeyring, AuditWriter, AuditWriterConfig, Store, StoreOptions};

on_both_backends!(
    records_are_spooled_while_the_store_is_down,
    leftover_spool_is_flushed_once,
    spooled_bodies_are_encrypted_with_the_audit_key,
);

/// A store a test can take down and bring back: on PostgreSQL a proxy in front of the server
/// is cut; on SQLite the audit table is renamed away (every batch then fails).
struct Flaky<'a> {
    db: &'a TestDb,
    store: Store,
    proxy: Option<Proxy>,
}

fn fast() -> StoreOptions {
    StoreOptions {
        acquire_timeout: Duration::from_millis(500),
        statement_timeout: Duration::from_secs(2),
        max_connections: 4,
    }
}

impl Flaky<'_> {
    async fn new(db: &TestDb) -> Flaky<'_> {
        match db.backend {
            Backend::Sqlite => Flaky {
                store: Store::open_with(&db.url, fast()).await.unwrap(),
                db,
                proxy: None,
            },
            Backend::Postgres => {
                let proxy = Proxy::start(pg_addr().await).await;
                let url = with_address(&db.url, proxy.addr);
                Flaky {
                    store: Store::open_with(&url, fast()).await.unwrap(),
                    db,
                    proxy: Some(proxy),
                }
            }
        }
    }

    async fn down(&self) {
        match &self.proxy {
            Some(p) => p.set(Mode::Cut),
            None => {
                self.db
                    .exec("ALTER TABLE audit_log RENAME TO audit_log_away")
                    .await
            }
        }
    }

    async fn up(&self) {
        match &self.proxy {
            Some(p) => p.set(Mode::Up),
            None => {
                self.db
                    .exec("ALTER TABLE audit_log_away RENAME TO audit_log")
                    .await
            }
        }
    }
}

fn config(spool: &Path) -> AuditWriterConfig {
    AuditWriterConfig {
        batch_size: 8,
        flush_interval: Duration::from_millis(5),
        spool_dir: Some(spool.to_path_buf()),
        spool_retry: Duration::from_millis(100),
        ..Default::default()
    }
}

fn spool_file(dir: &Path) -> PathBuf {
    dir.join("audit-spool.jsonl")
}

/// Every record is in the chain once, in recording order, and the chain verifies.
async fn assert_chain_holds(store: &Store, n: u64) {
    let rows = store.read_audit(0, 10_000).await.unwrap();
    assert_eq!(rows.len() as u64, n);
    for (i, (seq, rec)) in rows.iter().enumerate() {
        assert_eq!(*seq, i as i64 + 1);
        assert_eq!(rec, &record(i as u64), "seq {seq}");
    }
    let report = store.verify_audit().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records, n);
}

async fn records_are_spooled_while_the_store_is_down(db: &TestDb) {
    let f = Flaky::new(db).await;
    let spool = f.db.dir.path().join("spool");
    let (h, task) = AuditWriter::spawn(f.store.clone(), config(&spool));
    for i in 0..5 {
        h.record(record(i));
    }
    assert!(eventually(10, || h.stats().written == 5).await);
    assert!(h.health().is_healthy() && h.health().spool_enabled);

    f.down().await;
    for i in 5..45 {
        h.record(record(i));
        if i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(
        eventually(20, || h.health().spooled_pending == 40).await,
        "{:?}",
        h.stats()
    );
    let health = h.health();
    assert!(!health.store_ok && !health.is_healthy(), "{health:?}");
    assert_eq!(health.dropped, 0);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(spool_file(&spool))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Without audit keys the spool is plaintext (documented: put it on an encrypted disk).
    let text = std::fs::read_to_string(spool_file(&spool)).unwrap();
    assert!(text.contains("question 7"));

    f.up().await;
    assert!(
        eventually(30, || h.health().spooled_pending == 0
            && h.health().store_ok)
        .await,
        "{:?}",
        h.stats()
    );
    assert!(!spool_file(&spool).exists(), "spool deleted once flushed");
    for i in 45..50 {
        h.record(record(i));
    }
    let stats = task.shutdown().await;
    assert_eq!(
        (stats.written, stats.lost, stats.spooled),
        (50, 0, 40),
        "{stats:?}"
    );
    assert!(stats.write_errors >= 1);
    assert_chain_holds(&f.db.store, 50).await;
}

async fn leftover_spool_is_flushed_once(db: &TestDb) {
    let f = Flaky::new(db).await;
    let spool = f.db.dir.path().join("spool");
    f.down().await;
    let (h, task) = AuditWriter::spawn(f.store.clone(), config(&spool));
    for i in 0..20 {
        h.record(record(i));
    }
    // Shutdown while the store is down: the records stay on disk, none is lost.
    let stats = task.shutdown().await;
    assert_eq!((stats.lost, stats.spooled_pending), (0, 20), "{stats:?}");
    let backup = f.db.dir.path().join("spool-backup.jsonl");
    std::fs::copy(spool_file(&spool), &backup).unwrap();

    // Restart with the store back: the leftover spool goes into the chain first.
    f.up().await;
    let (h, task) = AuditWriter::spawn(f.store.clone(), config(&spool));
    assert!(
        eventually(30, || h.stats().written == 20).await,
        "{:?}",
        h.stats()
    );
    h.record(record(20));
    let stats = task.shutdown().await;
    assert_eq!((stats.written, stats.spooled_pending), (21, 0), "{stats:?}");
    assert!(!spool_file(&spool).exists());
    assert_chain_holds(&f.db.store, 21).await;

    // A crash after the commit but before the spool was deleted: the same spool comes back
    // (plus a line torn by the crash). Its batches are recognised by id, nothing is doubled.
    std::fs::copy(&backup, spool_file(&spool)).unwrap();
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(spool_file(&spool))
            .unwrap();
        file.write_all(br#"{"v":1,"batch":"b_torn","n":1,"reco"#)
            .unwrap();
    }
    let (h, task) = AuditWriter::spawn(f.store.clone(), config(&spool));
    assert!(
        eventually(30, || h.health().spooled_pending == 0
            && h.stats().spool_rejected == 1)
        .await,
        "{:?}",
        h.stats()
    );
    let stats = task.shutdown().await;
    assert_eq!(stats.deduplicated, 20, "{stats:?}");
    assert!(spool.join("audit-spool.rejected.jsonl").exists());
    assert!(!spool_file(&spool).exists());
    assert_chain_holds(&f.db.store, 21).await;
}

async fn spooled_bodies_are_encrypted_with_the_audit_key(db: &TestDb) {
    let f = Flaky::new(db).await;
    let keys = || AuditKeyring::from_spec(&format!("k1={}", "5a".repeat(32))).unwrap();
    let store = f.store.clone().with_audit_keys(keys());
    let spool = f.db.dir.path().join("spool");
    f.down().await;
    let (h, task) = AuditWriter::spawn(store.clone(), config(&spool));
    for i in 0..12 {
        h.record(record(i));
    }
    assert!(eventually(20, || h.health().spooled_pending == 12).await);
    let bytes = std::fs::read(spool_file(&spool)).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !text.contains("question") && !text.contains("answer"),
        "{text}"
    );
    assert!(text.contains(r#""key_id":"k1""#));
    f.up().await;
    assert!(eventually(30, || h.health().spooled_pending == 0).await);
    task.shutdown().await;
    let reader = f.db.store.clone().with_audit_keys(keys());
    assert_chain_holds(&reader, 12).await;
    let report = reader.verify_audit().await.unwrap();
    assert_eq!(report.bodies_checked, 12);
}

/// One writer per spool directory: a second one runs without it (and says so in its health).
#[tokio::test]
async fn a_spool_directory_has_one_writer() {
    let db = TestDb::new(Backend::Sqlite).await;
    let spool = db.dir.path().join("spool");
    let (h1, t1) = AuditWriter::spawn(db.store.clone(), config(&spool));
    assert!(eventually(5, || h1.health().spool_enabled).await);
    let (h2, t2) = AuditWriter::spawn(db.store.clone(), config(&spool));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!h2.health().spool_enabled);
    h2.record(record(0));
    t2.shutdown().await;
    t1.shutdown().await;
    // The lock is released with the first writer; a new one gets it.
    let (h3, t3) = AuditWriter::spawn(db.store.clone(), config(&spool));
    assert!(eventually(5, || h3.health().spool_enabled).await);
    t3.shutdown().await;
    assert_eq!(db.store.audit_count().await.unwrap(), 1);
}
