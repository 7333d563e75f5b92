//! Request authentication with a concurrent cache.
//!
//! [`KeyAuthenticator::authenticate`] parses `moat_<key id>_<secret>`, looks the key id up
//! (cache first, then the database), and compares `SHA-256(key id, 0, secret)` with the stored
//! hash in constant time. Only after the secret matched are the key's state (revoked, expired),
//! the IP allowlist and the account's state checked, so a caller who knows a key id but not its
//! secret learns nothing about that key.
//!
//! Cache: one entry per key id, holding the key and its account (or "unknown" for ids that are
//! not in the database). Positive entries live `cache_ttl`; negative entries live
//! `min(cache_ttl, 5 s)` so a flood of requests with one bogus id costs one query per 5 s.
//! Malformed tokens are refused before any lookup, and the cache is bounded: when it grows past
//! [`MAX_CACHE_ENTRIES`], expired entries and then all negative entries are evicted, so a flood
//! of random well-formed ids cannot grow memory without bound (each still costs one indexed
//! primary-key query; rate limiting by IP belongs in front of authentication).
//!
//! One read per expired entry: the first request that finds a key's entry past its TTL reads the
//! database, and the key's other requests keep using the entry meanwhile, for at most
//! [`REFRESH_GRACE`] (or `cache_ttl` if shorter) past its TTL; after that every request reads,
//! as without a cache. Without this, every request in flight when the TTL ran out read the
//! database at once, and waited on it, every `cache_ttl`.
//!
//! Changes made in another process (revocation, disabling an account) take effect here after at
//! most `cache_ttl` plus that grace; in this process, or when another replica announces a
//! change, call [`KeyAuthenticator::invalidate_key`] (O(1)) or
//! [`KeyAuthenticator::invalidate_account`].
//! An invalidation also stops a lookup that was in flight when it happened from caching what it
//! read (a generation counter), so a revocation cannot be undone by a racing cache fill.
//!
//! # Store faults
//!
//! [`StoreFaultPolicy`] says what happens when the database cannot be read (down, timed out):
//! [`StoreFaultPolicy::FailClosed`] (the default) refuses with [`AuthError::Store`];
//! [`StoreFaultPolicy::ServeStale`] keeps using a key's cached entry past its TTL for as long as
//! the store fails (the usual checks still apply to it: revoked, expired, IP, disabled account,
//! as of the cached state). Keys not in the cache, and ids cached as unknown, still get
//! [`AuthError::Store`] (a retryable 503, not a misleading 401). Stale answers are counted
//! ([`KeyAuthenticator::stale_served`], metric `moat_auth_stale_served_total`).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use subtle::ConstantTimeEq;

use crate::keys::{hash_secret, KEY_ID_PREFIX, KEY_ID_RANDOM_LEN, SECRET_LEN, TOKEN_PREFIX};
use crate::{Account, KeyRecord, Store, StoreError};

/// Cache size above which the cache is pruned.
pub const MAX_CACHE_ENTRIES: usize = 100_000;
/// Upper bound of the negative-cache TTL.
const NEGATIVE_TTL_MAX: Duration = Duration::from_secs(5);
/// How long past its TTL an entry is still used while one request reads it again.
pub const REFRESH_GRACE: Duration = Duration::from_secs(1);

/// Why a token was refused. The gateway maps these to HTTP 401/403; [`AuthError::Store`] is an
/// internal failure (HTTP 500/503), not the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token does not have the `moat_<key id>_<secret>` shape.
    #[error("malformed API key")]
    Malformed,
    /// No such key, or the secret does not match.
    #[error("unknown API key")]
    Unknown,
    /// The key was revoked.
    #[error("API key revoked")]
    Revoked,
    /// The key is past its expiry (or past its rotation grace period).
    #[error("API key expired")]
    Expired,
    /// The client address is not in the key's allowlist.
    #[error("client address not allowed for this API key")]
    IpNotAllowed,
    /// The key's account is disabled.
    #[error("account disabled")]
    AccountDisabled,
    /// The database could not be read.
    #[error("key lookup failed: {0}")]
    Store(#[from] StoreError),
}

impl AuthError {
    /// A short stable code for logs and error bodies (`"unknown_key"`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Malformed => "malformed_key",
            AuthError::Unknown => "unknown_key",
            AuthError::Revoked => "revoked_key",
            AuthError::Expired => "expired_key",
            AuthError::IpNotAllowed => "ip_not_allowed",
            AuthError::AccountDisabled => "account_disabled",
            AuthError::Store(_) => "auth_backend_error",
        }
    }
}

/// What [`KeyAuthenticator`] does when the store cannot be read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoreFaultPolicy {
    /// Refuse with [`AuthError::Store`] (fail closed). The default.
    #[default]
    FailClosed,
    /// Fail open for known keys: a cached entry past its TTL is still used while the store
    /// errors; keys not in the cache still get [`AuthError::Store`].
    ServeStale,
}

/// A successfully authenticated key and its account.
#[derive(Clone, Debug)]
pub struct AuthedKey {
    /// The key.
    pub key: Arc<KeyRecord>,
    /// The key's account.
    pub account: Arc<Account>,
}

#[derive(Clone)]
struct CacheEntry {
    loaded: Instant,
    value: Option<AuthedKey>,
    /// A request is reading this entry again (it was found past its TTL).
    refreshing: bool,
}

impl CacheEntry {
    /// Whether a request that finds this entry at `now` uses it (`true`) or reads the
    /// database (`false`; it then marks the entry as being read).
    fn usable(&mut self, now: Instant, ttl: Duration) -> bool {
        let age = now.saturating_duration_since(self.loaded);
        if age < ttl {
            return true;
        }
        if self.refreshing && age < ttl + REFRESH_GRACE.min(ttl) {
            return true;
        }
        self.refreshing = true;
        false
    }
}

struct Inner {
    store: Store,
    ttl: Duration,
    negative_ttl: Duration,
    policy: StoreFaultPolicy,
    cache: DashMap<String, CacheEntry>,
    /// Bumped by every invalidation; a lookup caches its result only if it did not change
    /// while the lookup read the database.
    generation: AtomicU64,
    stale_served: AtomicU64,
}

/// Authenticates tokens against the store, with a TTL cache. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct KeyAuthenticator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KeyAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAuthenticator")
            .field("ttl", &self.inner.ttl)
            .field("policy", &self.inner.policy)
            .field("cached", &self.inner.cache.len())
            .finish()
    }
}

/// Split a token into (key id, secret) if it has the right shape.
pub(crate) fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (key_id, secret) = rest.rsplit_once('_')?;
    let random = key_id.strip_prefix(KEY_ID_PREFIX)?;
    let alnum = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric());
    (random.len() == KEY_ID_RANDOM_LEN
        && alnum(random)
        && secret.len() == SECRET_LEN
        && alnum(secret))
    .then_some((key_id, secret))
}

impl KeyAuthenticator {
    /// An authenticator reading from `store`, caching lookups for `cache_ttl`
    /// (`Duration::ZERO` disables caching), failing closed when the store fails.
    pub fn new(store: Store, cache_ttl: Duration) -> KeyAuthenticator {
        KeyAuthenticator::with_policy(store, cache_ttl, StoreFaultPolicy::FailClosed)
    }

    /// Like [`KeyAuthenticator::new`], with the given behaviour on store faults. With
    /// [`StoreFaultPolicy::ServeStale`] a zero `cache_ttl` still caches (every entry is stale at
    /// once, so it is only used while the store fails).
    pub fn with_policy(
        store: Store,
        cache_ttl: Duration,
        policy: StoreFaultPolicy,
    ) -> KeyAuthenticator {
        KeyAuthenticator {
            inner: Arc::new(Inner {
                store,
                ttl: cache_ttl,
                negative_ttl: cache_ttl.min(NEGATIVE_TTL_MAX),
                policy,
                cache: DashMap::new(),
                generation: AtomicU64::new(0),
                stale_served: AtomicU64::new(0),
            }),
        }
    }

    /// The policy on store faults.
    pub fn fault_policy(&self) -> StoreFaultPolicy {
        self.inner.policy
    }

    /// Authentications answered from a stale cache entry because the store failed.
    pub fn stale_served(&self) -> u64 {
        self.inner.stale_served.load(Ordering::Relaxed)
    }

    /// Check a bearer token. `client_ip` is checked against the key's allowlist (a key with an
    /// allowlist is refused when the address is unknown); `now` decides expiry.
    pub async fn authenticate(
        &self,
        token: &str,
        client_ip: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<AuthedKey, AuthError> {
        let (key_id, secret) = parse_token(token.trim()).ok_or(AuthError::Malformed)?;
        let authed = self.lookup(key_id).await?.ok_or(AuthError::Unknown)?;
        let presented = hash_secret(key_id, secret);
        if !bool::from(presented.ct_eq(&authed.key.secret_hash)) {
            return Err(AuthError::Unknown);
        }
        if authed.key.is_revoked() {
            return Err(AuthError::Revoked);
        }
        if authed.key.is_expired(now) {
            return Err(AuthError::Expired);
        }
        if !authed.key.allows_ip(client_ip) {
            return Err(AuthError::IpNotAllowed);
        }
        if authed.account.disabled {
            return Err(AuthError::AccountDisabled);
        }
        Ok(authed)
    }

    /// Drop the cached entry for `key_id` (after revoking or rotating it here, or when another
    /// replica announces it). O(1).
    pub fn invalidate_key(&self, key_id: &str) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        self.inner.cache.remove(key_id);
    }

    /// Same as [`KeyAuthenticator::invalidate_key`].
    pub fn invalidate(&self, key_id: &str) {
        self.invalidate_key(key_id);
    }

    /// Drop the cached entries of every key of `account_id` (after disabling the account or
    /// changing its limits). Scans the cache: O(cache size), fine for a rare admin event.
    pub fn invalidate_account(&self, account_id: &str) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        self.inner
            .cache
            .retain(|_, e| e.value.as_ref().is_none_or(|a| a.account.id != account_id));
    }

    /// Drop the whole cache.
    pub fn invalidate_all(&self) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        self.inner.cache.clear();
    }

    fn caches(&self) -> bool {
        !self.inner.ttl.is_zero() || self.inner.policy == StoreFaultPolicy::ServeStale
    }

    async fn lookup(&self, key_id: &str) -> Result<Option<AuthedKey>, StoreError> {
        let inner = &self.inner;
        let ttl_of = |e: &CacheEntry| {
            if e.value.is_some() {
                inner.ttl
            } else {
                inner.negative_ttl
            }
        };
        // Fresh: a shared lock on the shard only.
        if let Some(entry) = inner.cache.get(key_id) {
            if entry.loaded.elapsed() < ttl_of(&entry) {
                return Ok(entry.value.clone());
            }
        }
        let mut stale = None;
        if let Some(mut entry) = inner.cache.get_mut(key_id) {
            let ttl = ttl_of(&entry);
            if entry.usable(Instant::now(), ttl) {
                return Ok(entry.value.clone());
            }
            stale = entry.value.clone();
        }
        let generation = inner.generation.load(Ordering::SeqCst);
        let value = match self.load(key_id).await {
            Ok(v) => v,
            Err(e) => {
                return match stale {
                    Some(authed) if inner.policy == StoreFaultPolicy::ServeStale => {
                        let n = inner.stale_served.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("moat_auth_stale_served_total").increment(1);
                        if n % 1_000 == 0 {
                            tracing::warn!(
                                error = %e,
                                "key store unavailable; serving cached API key entries past their TTL"
                            );
                        }
                        Ok(Some(authed))
                    }
                    _ => Err(e),
                };
            }
        };
        if self.caches() && inner.generation.load(Ordering::SeqCst) == generation {
            self.prune_if_full(MAX_CACHE_ENTRIES);
            inner.cache.insert(
                key_id.to_string(),
                CacheEntry {
                    loaded: Instant::now(),
                    value: value.clone(),
                    refreshing: false,
                },
            );
        }
        Ok(value)
    }

    /// Keep the cache below `max` entries: drop expired entries (with
    /// [`StoreFaultPolicy::ServeStale`], negative ones first: expired positive entries are the
    /// fallback during a store outage), then negative ones, then everything.
    fn prune_if_full(&self, max: usize) {
        let inner = &self.inner;
        if inner.cache.len() < max {
            return;
        }
        let keep_stale = inner.policy == StoreFaultPolicy::ServeStale;
        inner.cache.retain(|_, e| match e.value {
            Some(_) => keep_stale || e.loaded.elapsed() < inner.ttl,
            None => e.loaded.elapsed() < inner.negative_ttl,
        });
        if inner.cache.len() >= max {
            inner.cache.retain(|_, e| e.value.is_some());
        }
        if inner.cache.len() >= max && keep_stale {
            inner.cache.retain(|_, e| e.loaded.elapsed() < inner.ttl);
        }
        if inner.cache.len() >= max {
            inner.cache.clear();
        }
    }
}

impl KeyAuthenticator {
    async fn load(&self, key_id: &str) -> Result<Option<AuthedKey>, StoreError> {
        let store = &self.inner.store;
        Ok(match store.get_key_for_auth(key_id).await? {
            Some(key) => store
                .get_account(&key.account)
                .await?
                .map(|account| AuthedKey {
                    key: Arc::new(key),
                    account: Arc::new(account),
                }),
            None => None,
        })
    }
}

impl Store {
    /// Key lookup for authentication (the record includes the crate-private secret hash).
    async fn get_key_for_auth(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.get_key(key_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_ids_are_negatively_cached_and_cache_is_bounded() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let auth = KeyAuthenticator::new(store, Duration::from_secs(60));
        assert_eq!(auth.inner.negative_ttl, NEGATIVE_TTL_MAX);
        let token = |i: usize| format!("moat_key_{i:012}_{}", "s".repeat(SECRET_LEN));
        let now = Utc::now();
        for i in 0..3 {
            assert!(matches!(
                auth.authenticate(&token(i), None, now).await,
                Err(AuthError::Unknown)
            ));
        }
        assert_eq!(auth.inner.cache.len(), 3);
        assert!(auth.inner.cache.iter().all(|e| e.value.is_none()));
        // Malformed tokens never reach the cache or the database.
        let _ = auth.authenticate("moat_garbage", None, now).await;
        assert_eq!(auth.inner.cache.len(), 3);
        // Pruning drops negative entries when the cache is full.
        auth.prune_if_full(3);
        assert_eq!(auth.inner.cache.len(), 0);
    }

    #[test]
    fn one_request_reads_an_expired_entry_for_a_bounded_time() {
        let ttl = Duration::from_secs(30);
        let t0 = Instant::now();
        let mut e = CacheEntry {
            loaded: t0,
            value: None,
            refreshing: false,
        };
        assert!(e.usable(t0 + Duration::from_secs(29), ttl), "fresh");
        let expired = t0 + ttl;
        assert!(
            !e.usable(expired, ttl),
            "the first request after the TTL reads"
        );
        assert!(
            e.usable(expired + Duration::from_millis(10), ttl),
            "the others use the entry while it is read"
        );
        assert!(
            !e.usable(expired + REFRESH_GRACE, ttl),
            "past the grace every request reads"
        );
        // A zero TTL (no cache; entries only kept to serve a store outage): always read.
        let mut e = CacheEntry {
            loaded: t0,
            value: None,
            refreshing: true,
        };
        assert!(!e.usable(t0, Duration::ZERO));
    }

    #[test]
    fn parses_tokens() {
        let secret = "a".repeat(43);
        let token = format!("moat_key_abcdefABCD12_{secret}");
        assert_eq!(
            parse_token(&token),
            Some(("key_abcdefABCD12", secret.as_str()))
        );
        assert_eq!(parse_token("moat_key_short_x"), None);
        assert_eq!(parse_token("sk-123"), None);
        assert_eq!(
            parse_token(&format!("moat_key_abcdefABCD1!_{secret}")),
            None
        );
        assert_eq!(parse_token(""), None);
    }
}
