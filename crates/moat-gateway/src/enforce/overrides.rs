//! In-memory cache of the persisted enforcement overrides (`account_enforcement`).
//!
//! A lookup costs one hash-map probe; an entry older than `[auth] cache_ttl` is read again
//! from the store, so an override made with the CLI on the database reaches a running
//! gateway within that TTL (plus the one read). Overrides made through the admin API (or by
//! the gateway itself) update the cache at once.
//!
//! One read per stale entry: the first request that finds the entry stale reads the store, and
//! the account's other requests meanwhile keep the value they had (at most one read older).
//! Without this, every request in flight when the TTL ran out read the store at once, and
//! waited on it, every `cache_ttl`. A read that never finishes (its request was dropped) is
//! retried by the next request after [`REFRESH_RETRY`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use moat_detect::Action;
use moat_store::{EnforcementOverride, Store};
use parking_lot::Mutex;

/// A cached override.
#[derive(Debug, Clone, PartialEq)]
pub struct Pinned {
    /// The pinned action.
    pub action: Action,
    /// `operator` or `engine`.
    pub source: String,
}

impl Pinned {
    fn from_store(o: &EnforcementOverride) -> Option<Pinned> {
        Some(Pinned {
            action: serde_json::from_value(serde_json::Value::from(o.action.as_str())).ok()?,
            source: o.source.clone(),
        })
    }
}

/// How long a started store read keeps other requests on the old value before one of them
/// reads again.
pub const REFRESH_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Entry {
    value: Option<Pinned>,
    loaded: Instant,
    /// When a request started reading the store for this entry, if one is reading.
    refreshing: Option<Instant>,
}

/// What a lookup in the map decided.
#[derive(Debug, PartialEq)]
enum Lookup {
    /// Fresh, or stale while another request reads the store: use it.
    Use(Option<Pinned>),
    /// This request reads the store; the value to fall back on if that fails.
    Read(Option<Pinned>),
}

/// The cache. See the module docs.
#[derive(Debug)]
pub struct OverrideCache {
    ttl: Duration,
    map: Mutex<HashMap<String, Entry>>,
}

impl OverrideCache {
    /// A cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// `account`'s override: cached, or read from `store` when stale (by one request at a
    /// time; see the module docs). A store failure keeps the last known value (or none).
    pub async fn get(&self, store: &Store, account: &str) -> Option<Pinned> {
        let stale = match self.lookup(account, Instant::now()) {
            Lookup::Use(p) => return p,
            Lookup::Read(p) => p,
        };
        match store.get_enforcement(account).await {
            Ok(o) => {
                let p = o.as_ref().and_then(Pinned::from_store);
                self.put(account, p.clone());
                p
            }
            Err(e) => {
                tracing::warn!(account, error = %e, "reading enforcement override failed; using the cached one");
                if let Some(entry) = self.map.lock().get_mut(account) {
                    entry.refreshing = None; // the next request tries again
                }
                stale
            }
        }
    }

    /// Decides from the map alone whether this request uses the cached value or reads the
    /// store, and marks the entry as being read in the latter case.
    fn lookup(&self, account: &str, now: Instant) -> Lookup {
        let mut map = self.map.lock();
        let Some(entry) = map.get_mut(account) else {
            return Lookup::Read(None);
        };
        if now.saturating_duration_since(entry.loaded) < self.ttl {
            return Lookup::Use(entry.value.clone());
        }
        match entry.refreshing {
            Some(at) if now.saturating_duration_since(at) < REFRESH_RETRY => {
                Lookup::Use(entry.value.clone())
            }
            _ => {
                entry.refreshing = Some(now);
                Lookup::Read(entry.value.clone())
            }
        }
    }

    /// Sets `account`'s entry now (admin API, engine escalation).
    pub fn put(&self, account: &str, p: Option<Pinned>) {
        let mut map = self.map.lock();
        if map.len() > 200_000 {
            let ttl = self.ttl;
            map.retain(|_, e| e.loaded.elapsed() < ttl);
        }
        map.insert(
            account.to_string(),
            Entry {
                value: p,
                loaded: Instant::now(),
                refreshing: None,
            },
        );
    }
}

impl OverrideCache {
    /// Drops `account`'s entry: the next lookup reads the store (another replica changed it).
    pub fn forget(&self, account: &str) {
        self.map.lock().remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pinned(action: Action) -> Option<Pinned> {
        Some(Pinned {
            action,
            source: "operator".into(),
        })
    }

    #[test]
    fn one_request_reads_a_stale_entry_the_others_keep_the_old_value() {
        let cache = OverrideCache::new(Duration::from_secs(30));
        let t0 = Instant::now();
        assert_eq!(cache.lookup("a", t0), Lookup::Read(None), "unknown: read");
        cache.put("a", pinned(Action::Block));
        let fresh = Instant::now();
        assert_eq!(cache.lookup("a", fresh), Lookup::Use(pinned(Action::Block)));
        let stale = fresh + Duration::from_secs(31);
        assert_eq!(
            cache.lookup("a", stale),
            Lookup::Read(pinned(Action::Block)),
            "the first request after the TTL reads"
        );
        for later in [stale, stale + Duration::from_secs(1)] {
            assert_eq!(
                cache.lookup("a", later),
                Lookup::Use(pinned(Action::Block)),
                "the others do not wait on the store"
            );
        }
        // A read that never came back is retried.
        assert_eq!(
            cache.lookup("a", stale + REFRESH_RETRY),
            Lookup::Read(pinned(Action::Block))
        );
        // A finished read makes the entry fresh again.
        cache.put("a", None);
        assert_eq!(cache.lookup("a", Instant::now()), Lookup::Use(None));
    }

    #[tokio::test]
    async fn reads_the_store_and_keeps_the_old_value_when_it_fails() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let cache = OverrideCache::new(Duration::ZERO);
        assert_eq!(cache.get(&store, "a").await, None);
        cache.put("a", pinned(Action::Throttle));
        // TTL zero: every lookup reads; the store has no override for "a".
        assert_eq!(cache.get(&store, "a").await, None);
        cache.put("a", pinned(Action::Throttle));
        store.close().await;
        assert_eq!(
            cache.get(&store, "a").await,
            pinned(Action::Throttle),
            "store down: the cached value"
        );
        assert_eq!(
            cache.lookup("a", Instant::now()),
            Lookup::Read(pinned(Action::Throttle)),
            "after a failed read the next request reads again"
        );
    }
}
