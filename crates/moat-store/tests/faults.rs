//! PostgreSQL down or slow: store calls return errors in bounded time, authentication follows
//! its fault policy, and the chain's head lock is bounded by the statement timeout.

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::{
    eventually, new_account, pg_addr, record, with_address, Backend, Mode, Proxy, TestDb,
};
use moat_store::{
    AuditWriter, AuditWriterConfig, AuthError, KeyAuthenticator, KeySpec, Store, StoreError,
    StoreFaultPolicy, StoreOptions,
};
use sqlx::{Connection, Executor};

fn fast() -> StoreOptions {
    StoreOptions {
        acquire_timeout: Duration::from_millis(500),
        statement_timeout: Duration::from_millis(1000),
        max_connections: 4,
    }
}

#[tokio::test]
async fn unreachable_postgres_fails_fast_without_leaking_the_password() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("postgres://moat:hunter2@127.0.0.1:{port}/moat");
    let started = Instant::now();
    let err = Store::open_with(&url, fast()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(err.is_unavailable(), "{err}");
    let msg = err.to_string();
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(msg.contains("moat:***@127.0.0.1"), "{msg}");
}

#[tokio::test]
async fn stalled_postgres_times_out() {
    let db = TestDb::new(Backend::Postgres).await;
    let proxy = Proxy::start(pg_addr().await).await;
    let store = Store::open_with(&with_address(&db.url, proxy.addr), fast())
        .await
        .unwrap();
    store.create_account(new_account("acct_a")).await.unwrap();
    // The host stops answering: connections stay open, nothing comes back.
    proxy.set(Mode::Stall);
    let started = Instant::now();
    let err = store.get_account("acct_a").await.unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(err.is_unavailable(), "{err}");
    assert!(
        matches!(err, StoreError::Timeout { .. } | StoreError::Db { .. }),
        "{err}"
    );
    proxy.set(Mode::Up);
    // Back: new connections work again.
    let mut ok = false;
    for _ in 0..20 {
        if store.get_account("acct_a").await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "store usable again after the stall");
}

/// A writer that holds the chain's head lock blocks the others only up to the statement
/// timeout; the blocked batch is retried and lands after the lock is released.
#[tokio::test]
async fn head_lock_wait_is_bounded_by_the_statement_timeout() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = Store::open_with(&db.url, fast()).await.unwrap();
    let mut holder = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    holder.execute("BEGIN").await.unwrap();
    holder
        .execute("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
        .await
        .unwrap();
    let config = AuditWriterConfig {
        batch_size: 4,
        flush_interval: Duration::from_millis(1),
        ..Default::default()
    };
    let (h, task) = AuditWriter::spawn(store.clone(), config);
    h.record(record(0));
    assert!(
        eventually(10, || h.stats().write_errors >= 1).await,
        "the blocked batch fails after the statement timeout: {:?}",
        h.stats()
    );
    assert_eq!(h.stats().written, 0);
    holder.execute("ROLLBACK").await.unwrap();
    assert!(
        eventually(15, || h.stats().written == 1).await,
        "{:?}",
        h.stats()
    );
    task.shutdown().await;
    assert!(store.verify_audit().await.unwrap().is_ok());
}

#[tokio::test]
async fn authentication_under_store_faults() {
    let db = TestDb::new(Backend::Postgres).await;
    let proxy = Proxy::start(pg_addr().await).await;
    let store = Store::open_with(&with_address(&db.url, proxy.addr), fast())
        .await
        .unwrap();
    store.create_account(new_account("acct_a")).await.unwrap();
    let (key, token) = store
        .create_key("acct_a", KeySpec::default())
        .await
        .unwrap();
    let (_, other) = store
        .create_key("acct_a", KeySpec::default())
        .await
        .unwrap();
    let now = Utc::now();
    let (_, expiring) = store
        .create_key(
            "acct_a",
            KeySpec {
                expires_at: Some(now + chrono::Duration::hours(1)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ttl = Duration::from_millis(50);
    let closed = KeyAuthenticator::new(store.clone(), ttl);
    let stale = KeyAuthenticator::with_policy(store.clone(), ttl, StoreFaultPolicy::ServeStale);
    assert_eq!(closed.fault_policy(), StoreFaultPolicy::FailClosed);
    let unknown = format!("moat_key_AAAAAAAAAAAA_{}", "x".repeat(43));
    for a in [&closed, &stale] {
        a.authenticate(&token, None, now).await.unwrap();
        a.authenticate(&expiring, None, now).await.unwrap();
        assert!(matches!(
            a.authenticate(&unknown, None, now).await,
            Err(AuthError::Unknown)
        ));
    }

    proxy.set(Mode::Cut);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Fail closed: today's behaviour.
    assert!(matches!(
        closed.authenticate(&token, None, now).await,
        Err(AuthError::Store(_))
    ));
    // Serve stale: the cached key keeps working, its checks still apply.
    let authed = stale.authenticate(&token, None, now).await.unwrap();
    assert_eq!(authed.key.id, key.id);
    assert_eq!(stale.stale_served(), 1);
    assert!(matches!(
        stale
            .authenticate(&expiring, None, now + chrono::Duration::hours(2))
            .await,
        Err(AuthError::Expired)
    ));
    // Not cached, or cached as unknown: the store error, not a 401.
    assert!(matches!(
        stale.authenticate(&other, None, now).await,
        Err(AuthError::Store(_))
    ));
    assert!(matches!(
        stale.authenticate(&unknown, None, now).await,
        Err(AuthError::Store(_))
    ));
    // An announced revocation wins over fail-open.
    stale.invalidate_key(&key.id);
    assert!(matches!(
        stale.authenticate(&token, None, now).await,
        Err(AuthError::Store(_))
    ));

    proxy.set(Mode::Up);
    let mut ok = false;
    for _ in 0..30 {
        if stale.authenticate(&token, None, now).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok);
}
