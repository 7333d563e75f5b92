#[macro_use]
mod common;

use std::net::IpAddr;
use std::time::Duration;

use chrono::Utc;
use common::{new_account, TestDb};
use moat_store::{AuthError, KeyAuthenticator, KeySpec};

on_both_backends!(
    authenticate_outcomes,
    ip_allowlist,
    rotation_grace,
    cache_ttl_and_negative_cache,
    invalidation
);

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

async fn authenticate_outcomes(db: &TestDb) {
    let store = db.store.clone();
    store.create_account(new_account("acct_a")).await.unwrap();
    let auth = KeyAuthenticator::new(store.clone(), Duration::from_secs(60));
    let now = Utc::now();

    let (key, token) = store
        .create_key("acct_a", KeySpec::default())
        .await
        .unwrap();
    let ok = auth.authenticate(&token, ip("1.2.3.4"), now).await.unwrap();
    assert_eq!(ok.key.id, key.id);
    assert_eq!(ok.account.id, "acct_a");
    // Cached path gives the same answer.
    let ok = auth.authenticate(&token, None, now).await.unwrap();
    assert_eq!(ok.key.id, key.id);

    // Malformed.
    for bad in [
        "",
        "sk-abc",
        "moat_",
        "moat_key_x_y",
        &token[..token.len() - 1],
    ] {
        assert!(
            matches!(
                auth.authenticate(bad, None, now).await,
                Err(AuthError::Malformed)
            ),
            "{bad:?}"
        );
    }
    // Well-formed but unknown id.
    let unknown = format!("moat_key_AAAAAAAAAAAA_{}", "x".repeat(43));
    assert!(matches!(
        auth.authenticate(&unknown, None, now).await,
        Err(AuthError::Unknown)
    ));
    // Known id, wrong secret.
    let (prefix, secret) = token.rsplit_once('_').unwrap();
    let mut wrong = secret.as_bytes().to_vec();
    wrong[0] = if wrong[0] == b'a' { b'b' } else { b'a' };
    let wrong = format!("{prefix}_{}", String::from_utf8(wrong).unwrap());
    assert!(matches!(
        auth.authenticate(&wrong, None, now).await,
        Err(AuthError::Unknown)
    ));

    // Revoked: visible after invalidate (this process) ...
    store.revoke_key(&key.id).await.unwrap();
    auth.invalidate(&key.id);
    assert!(matches!(
        auth.authenticate(&token, None, now).await,
        Err(AuthError::Revoked)
    ));
    // ... and a revoked key with a wrong secret still says Unknown (no state leak).
    assert!(matches!(
        auth.authenticate(&wrong, None, now).await,
        Err(AuthError::Unknown)
    ));

    // Expired.
    let (_, tok_exp) = store
        .create_key(
            "acct_a",
            KeySpec {
                expires_at: Some(now + chrono::Duration::minutes(5)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(auth.authenticate(&tok_exp, None, now).await.is_ok());
    assert!(matches!(
        auth.authenticate(&tok_exp, None, now + chrono::Duration::minutes(5))
            .await,
        Err(AuthError::Expired)
    ));

    // Account disabled.
    let (_, tok_b) = store
        .create_key("acct_a", KeySpec::default())
        .await
        .unwrap();
    store.set_account_disabled("acct_a", true).await.unwrap();
    auth.invalidate_all();
    assert!(matches!(
        auth.authenticate(&tok_b, None, now).await,
        Err(AuthError::AccountDisabled)
    ));
}

async fn ip_allowlist(db: &TestDb) {
    let store = db.store.clone();
    store.create_account(new_account("acct_a")).await.unwrap();
    let auth = KeyAuthenticator::new(store.clone(), Duration::from_secs(60));
    let now = Utc::now();
    let (_, token) = store
        .create_key(
            "acct_a",
            KeySpec {
                ip_allow: vec![
                    "10.1.0.0/16".parse().unwrap(),
                    "2001:db8::/32".parse().unwrap(),
                ],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(auth.authenticate(&token, ip("10.1.2.3"), now).await.is_ok());
    assert!(auth
        .authenticate(&token, ip("2001:db8::1"), now)
        .await
        .is_ok());
    // IPv4-mapped IPv6 from a dual-stack listener.
    assert!(auth
        .authenticate(&token, ip("::ffff:10.1.2.3"), now)
        .await
        .is_ok());
    for bad in [ip("10.2.0.1"), ip("2001:db9::1"), None] {
        assert!(
            matches!(
                auth.authenticate(&token, bad, now).await,
                Err(AuthError::IpNotAllowed)
            ),
            "{bad:?}"
        );
    }
}

async fn rotation_grace(db: &TestDb) {
    let store = db.store.clone();
    store.create_account(new_account("acct_a")).await.unwrap();
    let auth = KeyAuthenticator::new(store.clone(), Duration::from_secs(60));
    let (old, old_token) = store
        .create_key("acct_a", KeySpec::default())
        .await
        .unwrap();
    let now = Utc::now();
    assert!(auth.authenticate(&old_token, None, now).await.is_ok());

    let (new, new_token) = store
        .rotate_key(&old.id, Duration::from_secs(600))
        .await
        .unwrap();
    auth.invalidate(&old.id);
    let t = Utc::now();
    // Both work during the grace period.
    assert!(auth.authenticate(&old_token, None, t).await.is_ok());
    let authed = auth.authenticate(&new_token, None, t).await.unwrap();
    assert_eq!(authed.key.id, new.id);
    // After the grace period only the new key works.
    let later = t + chrono::Duration::seconds(601);
    assert!(matches!(
        auth.authenticate(&old_token, None, later).await,
        Err(AuthError::Expired)
    ));
    assert!(auth.authenticate(&new_token, None, later).await.is_ok());
}

async fn cache_ttl_and_negative_cache(db: &TestDb) {
    let store = db.store.clone();
    store.create_account(new_account("acct_a")).await.unwrap();
    let auth = KeyAuthenticator::new(store.clone(), Duration::from_millis(200));
    let now = Utc::now();
    let (key, token) = store
        .create_key("acct_a", KeySpec::default())
        .await
        .unwrap();
    assert!(auth.authenticate(&token, None, now).await.is_ok());
    // Revoked elsewhere (no invalidate): cached until the TTL runs out.
    store.revoke_key(&key.id).await.unwrap();
    assert!(auth.authenticate(&token, None, now).await.is_ok());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(matches!(
        auth.authenticate(&token, None, now).await,
        Err(AuthError::Revoked)
    ));

    // A clone shares the cache.
    let clone = auth.clone();
    clone.invalidate(&key.id);

    // Zero TTL: no caching at all.
    let uncached = KeyAuthenticator::new(store.clone(), Duration::ZERO);
    let (k2, t2) = store
        .create_key("acct_a", KeySpec::default())
        .await
        .unwrap();
    assert!(uncached.authenticate(&t2, None, now).await.is_ok());
    store.revoke_key(&k2.id).await.unwrap();
    assert!(matches!(
        uncached.authenticate(&t2, None, now).await,
        Err(AuthError::Revoked)
    ));
}

async fn invalidation(db: &TestDb) {
    let store = db.store.clone();
    store.create_account(new_account("acct_a")).await.unwrap();
    store.create_account(new_account("acct_b")).await.unwrap();
    let auth = KeyAuthenticator::new(store.clone(), Duration::from_secs(3600));
    let now = Utc::now();
    let (ka, ta) = store
        .create_key("acct_a", KeySpec::default())
        .await
        .unwrap();
    let (_, ta2) = store
        .create_key("acct_a", KeySpec::default())
        .await
        .unwrap();
    let (_, tb) = store
        .create_key("acct_b", KeySpec::default())
        .await
        .unwrap();
    for t in [&ta, &ta2, &tb] {
        auth.authenticate(t, None, now).await.unwrap();
    }
    // Revoked by "another replica": the cache still says yes until told.
    store.revoke_key(&ka.id).await.unwrap();
    assert!(auth.authenticate(&ta, None, now).await.is_ok());
    auth.invalidate_key(&ka.id);
    assert!(matches!(
        auth.authenticate(&ta, None, now).await,
        Err(AuthError::Revoked)
    ));
    // Account-wide: every key of the account is reloaded, other accounts stay cached.
    store.set_account_disabled("acct_a", true).await.unwrap();
    store.set_account_disabled("acct_b", true).await.unwrap();
    auth.invalidate_account("acct_a");
    assert!(matches!(
        auth.authenticate(&ta2, None, now).await,
        Err(AuthError::AccountDisabled)
    ));
    assert!(
        auth.authenticate(&tb, None, now).await.is_ok(),
        "acct_b still cached"
    );
}
