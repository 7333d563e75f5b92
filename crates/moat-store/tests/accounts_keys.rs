#[macro_use]
mod common;

use std::time::Duration;

use common::{new_account, TestDb};
use moat_store::{AccountLimits, KeySpec, NewAccount, Store, StoreError};
use sqlx::Row;

on_both_backends!(
    accounts_crud,
    keys_crud_and_rotation,
    secrets_never_stored,
    enforcement_overrides,
    concurrent_rotations_of_one_key
);

async fn accounts_crud(db: &TestDb) {
    let store = db.store.clone();
    let a = store
        .create_account(NewAccount {
            limits: AccountLimits {
                requests_per_minute: Some(60),
                tokens_per_minute: Some(100_000),
                tokens_per_day: None,
            },
            verified: true,
            ..new_account("acct_a")
        })
        .await
        .unwrap();
    assert_eq!(a.id, "acct_a");
    assert!(!a.disabled);
    let generated = store
        .create_account(NewAccount {
            id: None,
            name: "gen".into(),
            tier: "pro".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(generated.id.starts_with("acct_"), "{}", generated.id);
    assert_eq!(generated.id.len(), "acct_".len() + 12);

    let dup = store.create_account(new_account("acct_a")).await;
    assert!(matches!(dup, Err(StoreError::AccountExists(id)) if id == "acct_a"));

    assert_eq!(store.get_account("acct_a").await.unwrap(), Some(a.clone()));
    assert_eq!(store.get_account("nope").await.unwrap(), None);
    let all = store.list_accounts().await.unwrap();
    assert_eq!(all.len(), 2);

    let disabled = store.set_account_disabled("acct_a", true).await.unwrap();
    assert!(disabled.disabled);
    let limited = store
        .set_account_limits("acct_a", AccountLimits::default())
        .await
        .unwrap();
    assert_eq!(limited.limits, AccountLimits::default());
    assert!(matches!(
        store.set_account_disabled("nope", true).await,
        Err(StoreError::AccountNotFound(_))
    ));

    // Persistence across reopen.
    store.close().await;
    let store = db.reopen().await;
    let again = store.get_account("acct_a").await.unwrap().unwrap();
    assert!(again.disabled);
    assert_eq!(again.created_at, a.created_at);
}

async fn keys_crud_and_rotation(db: &TestDb) {
    let store = &db.store;
    store.create_account(new_account("acct_a")).await.unwrap();
    store.create_account(new_account("acct_b")).await.unwrap();
    let spec = KeySpec {
        expires_at: None,
        models: Some(vec!["m1".into(), "m2".into()]),
        allow_logprobs: true,
        ip_allow: vec!["10.0.0.0/8".parse().unwrap()],
        name: Some("ci".into()),
    };
    let (k1, token) = store.create_key("acct_a", spec.clone()).await.unwrap();
    assert!(token.starts_with(&format!("moat_{}_", k1.id)));
    assert!(k1.id.starts_with("key_"));
    assert!(k1.allows_model("m1") && !k1.allows_model("m3"));
    let (k2, _) = store
        .create_key("acct_b", KeySpec::default())
        .await
        .unwrap();
    assert!(k2.allows_model("anything"));

    assert!(matches!(
        store.create_key("nope", KeySpec::default()).await,
        Err(StoreError::AccountNotFound(_))
    ));

    assert_eq!(store.list_keys(None).await.unwrap().len(), 2);
    let a_keys = store.list_keys(Some("acct_a")).await.unwrap();
    assert_eq!(a_keys, vec![k1.clone()]);

    // Rotation: same account and scopes, old key gets a grace expiry and a successor.
    let (k3, token3) = store
        .rotate_key(&k1.id, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_ne!(k3.id, k1.id);
    assert_ne!(token3, token);
    assert_eq!(k3.account, "acct_a");
    assert_eq!(k3.models, k1.models);
    assert_eq!(k3.ip_allow, k1.ip_allow);
    assert_eq!(k3.allow_logprobs, k1.allow_logprobs);
    let old = store.get_key(&k1.id).await.unwrap().unwrap();
    assert_eq!(old.replaced_by.as_deref(), Some(k3.id.as_str()));
    let expiry = old.expires_at.unwrap();
    let delta = expiry - chrono::Utc::now();
    assert!(delta > chrono::Duration::minutes(59) && delta <= chrono::Duration::minutes(60));
    assert!(matches!(
        store.rotate_key(&k1.id, Duration::from_secs(1)).await,
        Err(StoreError::KeyState { .. })
    ));

    // Revocation is idempotent.
    let r = store.revoke_key(&k2.id).await.unwrap();
    let first = r.revoked_at.unwrap();
    let r2 = store.revoke_key(&k2.id).await.unwrap();
    assert_eq!(r2.revoked_at, Some(first));
    assert!(matches!(
        store.rotate_key(&k2.id, Duration::from_secs(1)).await,
        Err(StoreError::KeyState { .. })
    ));
    assert!(matches!(
        store.revoke_key("key_doesnotexist").await,
        Err(StoreError::KeyNotFound(_))
    ));

    // Debug output never includes the hash.
    let dbg = format!("{k3:?}");
    assert!(!dbg.contains("secret_hash"), "{dbg}");
}

/// The secret part of a token is never stored: not in any column, nor (SQLite) anywhere in the
/// database files and WAL.
async fn secrets_never_stored(db: &TestDb) {
    let store = &db.store;
    store.create_account(new_account("acct_a")).await.unwrap();
    let mut secrets = Vec::new();
    for _ in 0..5 {
        let (k, token) = store
            .create_key("acct_a", KeySpec::default())
            .await
            .unwrap();
        secrets.push(token.rsplit_once('_').unwrap().1.to_string());
        let (_, rotated) = store
            .rotate_key(&k.id, Duration::from_secs(60))
            .await
            .unwrap();
        secrets.push(rotated.rsplit_once('_').unwrap().1.to_string());
    }
    let mut raw = db.raw().await;
    let rows = sqlx::query(
        "SELECT id, account_id, COALESCE(name, ''), secret_hash, COALESCE(models, ''), \
         ip_allow, COALESCE(replaced_by, '') FROM api_keys",
    )
    .fetch_all(&mut raw)
    .await
    .unwrap();
    assert_eq!(rows.len(), 10);
    for row in &rows {
        for i in 0..7 {
            let v: String = row.get(i);
            assert!(
                secrets.iter().all(|s| !v.contains(s.as_str())),
                "secret in a column"
            );
        }
    }
    if db.backend == common::Backend::Sqlite {
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(db.dir.path()).unwrap() {
            bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        store.close().await;
        bytes.extend(std::fs::read(&db.url).unwrap());
        for s in &secrets {
            assert_eq!(s.len(), 43);
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "secret found in database files"
            );
        }
    }
}

async fn enforcement_overrides(db: &TestDb) {
    let s = &db.store;
    let a = s.create_account(new_account("acct_x")).await.unwrap();
    assert!(s.get_enforcement(&a.id).await.unwrap().is_none());
    s.set_enforcement(&a.id, "block", "engine", Some("r"))
        .await
        .unwrap();
    let o = s
        .set_enforcement(&a.id, "allow", "operator", None)
        .await
        .unwrap();
    assert_eq!(s.get_enforcement(&a.id).await.unwrap(), Some(o.clone()));
    assert_eq!(s.list_enforcement().await.unwrap(), vec![o]);
    assert!(s
        .set_enforcement(&a.id, "nope", "operator", None)
        .await
        .is_err());
    assert!(matches!(
        s.set_enforcement("acct_none", "block", "operator", None)
            .await,
        Err(StoreError::AccountNotFound(_))
    ));
    assert!(s.clear_enforcement(&a.id).await.unwrap());
    assert!(!s.clear_enforcement(&a.id).await.unwrap());
}

/// Two handles (two replicas) rotating the same key at once: exactly one rotation wins.
async fn concurrent_rotations_of_one_key(db: &TestDb) {
    let a = db.store.clone();
    let b = db.reopen().await;
    a.create_account(new_account("acct_a")).await.unwrap();
    let (k, _) = a.create_key("acct_a", KeySpec::default()).await.unwrap();
    let (ra, rb) = tokio::join!(
        a.rotate_key(&k.id, Duration::from_secs(60)),
        b.rotate_key(&k.id, Duration::from_secs(60))
    );
    let ok = [ra.is_ok(), rb.is_ok()];
    assert_eq!(ok.iter().filter(|x| **x).count(), 1, "{ra:?} {rb:?}");
    for r in [ra, rb].into_iter().filter_map(Result::err) {
        assert!(matches!(r, StoreError::KeyState { .. }), "{r}");
    }
    assert_eq!(a.list_keys(Some("acct_a")).await.unwrap().len(), 2);
}

#[tokio::test]
async fn memory_and_url_paths() {
    assert_eq!(
        Store::open("sqlite::memory:").await.unwrap().backend_name(),
        "sqlite"
    );
    let store = Store::open("sqlite::memory:").await.unwrap();
    store.create_account(new_account("acct_m")).await.unwrap();
    assert_eq!(store.list_accounts().await.unwrap().len(), 1);

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("u.db").display());
    let store = Store::open(&url).await.unwrap();
    store.create_account(new_account("acct_u")).await.unwrap();
    assert!(dir.path().join("u.db").exists());
    // File databases run in WAL mode (set on every connection of the pool).
    use sqlx::Connection;
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let mode: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(mode, "wal");
}

/// The SQLite migrations are byte for byte those of earlier releases (their SHA-384 checksums
/// are recorded in every existing database, and sqlx refuses to open a database whose applied
/// migrations changed), and a database that has only the older migrations keeps opening.
#[tokio::test]
async fn existing_sqlite_database_keeps_opening() {
    let released = [
        "038d2d59db6f27d5e796ec6c80240cc351089085150097570ef36d60a672c10b6bbad203363cf5f04e6fe4622b7427e6",
        "c25d40402b5d92e7c3bab829f868d79fbb4caf65e6bd526a8681a60a3c316edfbe2964146de26336033f423253d9f0ae",
        "358bbba9ab9b7d0d649f4f582584dc46273040be54622edbe3d1ddb30270277b58e700c59c26ec77030caef14f60d0d4",
    ];
    let migrator = sqlx::migrate!("./migrations/sqlite");
    for (m, want) in migrator.iter().zip(released) {
        assert_eq!(
            hex::encode(&*m.checksum),
            want,
            "migration {} changed",
            m.version
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let url = format!("sqlite:{}?mode=rwc", path.display());
    sqlx::any::install_default_drivers();
    {
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        migrator.run(&mut conn).await.unwrap();
        // Back to what an older binary left: migrations 1-3 only.
        sqlx::query("DROP TABLE audit_batches")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 4")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let store = Store::open(&path.to_string_lossy()).await.unwrap();
    store.create_account(new_account("acct_old")).await.unwrap();
    store.close().await;
    use sqlx::Connection;
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = 1")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 4);
}
