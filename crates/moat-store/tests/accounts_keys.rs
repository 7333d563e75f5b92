mod common;

use std::time::Duration;

use common::{new_account, temp_store};
use moat_store::{AccountLimits, KeySpec, NewAccount, Store, StoreError};

#[tokio::test]
async fn accounts_crud() {
    let (_dir, store, path) = temp_store().await;
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
    let store = Store::open(&path).await.unwrap();
    let again = store.get_account("acct_a").await.unwrap().unwrap();
    assert!(again.disabled);
    assert_eq!(again.created_at, a.created_at);
}

#[tokio::test]
async fn keys_crud_and_rotation() {
    let (_dir, store, _path) = temp_store().await;
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

/// The secret part of a token never reaches the database file (nor its WAL).
#[tokio::test]
async fn secrets_never_stored() {
    let (dir, store, path) = temp_store().await;
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
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    store.close().await;
    bytes.extend(std::fs::read(&path).unwrap());
    for s in &secrets {
        assert_eq!(s.len(), 43);
        assert!(
            !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
            "secret found in database files"
        );
    }
}

#[tokio::test]
async fn memory_and_url_paths() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    store.create_account(new_account("acct_m")).await.unwrap();
    assert_eq!(store.list_accounts().await.unwrap().len(), 1);

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("u.db").display());
    let store = Store::open(&url).await.unwrap();
    store.create_account(new_account("acct_u")).await.unwrap();
    assert!(dir.path().join("u.db").exists());
}
