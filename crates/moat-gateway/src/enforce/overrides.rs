//! In-memory cache of the persisted enforcement overrides (`account_enforcement`).
//!
//! A lookup costs one hash-map probe; an entry older than `[auth] cache_ttl` is read again
//! from the store, so an override made with the CLI on the database reaches a running
//! gateway within that TTL. Overrides made through the admin API (or by the gateway itself)
//! update the cache at once.

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

/// The cache. See the module docs.
#[derive(Debug)]
pub struct OverrideCache {
    ttl: Duration,
    map: Mutex<HashMap<String, (Option<Pinned>, Instant)>>,
}

impl OverrideCache {
    /// A cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// `account`'s override: cached, or read from `store` when stale. A store failure keeps
    /// the last known value (or none).
    pub async fn get(&self, store: &Store, account: &str) -> Option<Pinned> {
        let stale = {
            let map = self.map.lock();
            match map.get(account) {
                Some((p, at)) if at.elapsed() < self.ttl => return p.clone(),
                Some((p, _)) => p.clone(),
                None => None,
            }
        };
        match store.get_enforcement(account).await {
            Ok(o) => {
                let p = o.as_ref().and_then(Pinned::from_store);
                self.put(account, p.clone());
                p
            }
            Err(e) => {
                tracing::warn!(account, error = %e, "reading enforcement override failed; using the cached one");
                stale
            }
        }
    }

    /// Sets `account`'s entry now (admin API, engine escalation).
    pub fn put(&self, account: &str, p: Option<Pinned>) {
        let mut map = self.map.lock();
        if map.len() > 200_000 {
            let ttl = self.ttl;
            map.retain(|_, (_, at)| at.elapsed() < ttl);
        }
        map.insert(account.to_string(), (p, Instant::now()));
    }
}

impl OverrideCache {
    /// Drops `account`'s entry: the next lookup reads the store (another replica changed it).
    pub fn forget(&self, account: &str) {
        self.map.lock().remove(account);
    }
}
