//! In-process [`Limiter`] backend.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::account::AccountState;
use crate::limiter::Limiter;
use crate::types::{Denied, Estimate, Limits, Reservation};

/// Tuning of [`InMemoryLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InMemoryConfig {
    /// Number of lock shards (rounded down to a power of two, at least 1, at
    /// most `max_accounts`).
    pub shards: usize,
    /// Hard bound on tracked accounts (each shard holds at most
    /// `max_accounts / shards`).
    pub max_accounts: usize,
    /// Minimum time between idle sweeps of one shard, in milliseconds. A sweep
    /// runs only when a *new* account is inserted into that shard.
    pub sweep_interval_ms: i64,
}

impl Default for InMemoryConfig {
    fn default() -> Self {
        InMemoryConfig {
            shards: 64,
            max_accounts: 1 << 20,
            sweep_interval_ms: 60_000,
        }
    }
}

/// Eviction counters of an [`InMemoryLimiter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvictionStats {
    /// Idle accounts dropped (lossless: their state equalled a fresh one).
    pub idle: u64,
    /// Non-idle accounts dropped because a shard was full (lossy: the account
    /// restarts with fresh limits; pending settles for it become no-ops).
    pub forced: u64,
}

/// A shard lock on its own cache lines, so threads working on different
/// shards do not invalidate each other's lines (false sharing).
#[derive(Debug)]
#[repr(align(128))]
struct Padded(Mutex<Shard>);

#[derive(Debug)]
struct Shard {
    map: HashMap<Arc<str>, AccountState>,
    last_sweep_ms: i64,
}

impl Shard {
    /// Drop every idle account; returns how many.
    fn sweep(&mut self, now_ms: i64) -> u64 {
        let before = self.map.len();
        self.map.retain(|_, s| !s.is_idle(now_ms));
        self.last_sweep_ms = now_ms;
        (before - self.map.len()) as u64
    }

    /// Drop the least recently seen account, preferring ones with nothing in flight.
    fn evict_one(&mut self) -> bool {
        let victim = self
            .map
            .values()
            .min_by_key(|s| (s.in_flight > 0, s.last_seen_ms))
            .map(|s| s.key.clone());
        victim.is_some_and(|k| self.map.remove(&k).is_some())
    }
}

/// Sharded in-process limiter.
///
/// * **Sharding**: accounts are spread over a fixed array of
///   `parking_lot::Mutex<HashMap>` shards by a keyed hash; one call locks one
///   shard once, O(1).
/// * **No allocation on the hot path** for known accounts: the key is an
///   `Arc<str>` that the [`Reservation`] shares. The inherent `*_now` methods
///   are allocation-free; the [`Limiter`] trait methods add the one boxed
///   future that `async_trait` needs for `dyn Limiter`.
/// * **Bounded memory**: at most [`InMemoryConfig::max_accounts`] accounts.
///   When a new account arrives, its shard drops idle accounts (lossless, at
///   most once per `sweep_interval_ms`, or whenever the shard is full); if the
///   shard is still full the least recently seen account is dropped (lossy,
///   counted in [`EvictionStats::forced`]). [`Self::evict_idle`] can also be
///   called from a background task.
#[derive(Debug)]
pub struct InMemoryLimiter {
    shards: Box<[Padded]>,
    mask: usize,
    per_shard: usize,
    sweep_interval_ms: i64,
    hasher: std::collections::hash_map::RandomState,
    generation: AtomicU64,
    evicted_idle: AtomicU64,
    evicted_forced: AtomicU64,
}

impl Default for InMemoryLimiter {
    fn default() -> Self {
        Self::new(InMemoryConfig::default())
    }
}

impl InMemoryLimiter {
    /// Create a limiter with the given tuning.
    pub fn new(config: InMemoryConfig) -> Self {
        let max_accounts = config.max_accounts.max(1);
        let wanted = config.shards.clamp(1, max_accounts);
        // round down to a power of two
        let n = 1usize << (usize::BITS - 1 - wanted.leading_zeros());
        let shards = (0..n)
            .map(|_| {
                Padded(Mutex::new(Shard {
                    map: HashMap::new(),
                    last_sweep_ms: i64::MIN,
                }))
            })
            .collect();
        InMemoryLimiter {
            shards,
            mask: n - 1,
            per_shard: max_accounts / n,
            sweep_interval_ms: config.sweep_interval_ms,
            hasher: Default::default(),
            generation: AtomicU64::new(1),
            evicted_idle: AtomicU64::new(0),
            evicted_forced: AtomicU64::new(0),
        }
    }

    fn shard(&self, account: &str) -> &Mutex<Shard> {
        let h = self.hasher.hash_one(account) as usize;
        &self.shards[h & self.mask].0
    }

    /// Synchronous, allocation-free (for known accounts) [`Limiter::reserve`].
    pub fn reserve_now(
        &self,
        account: &str,
        limits: &Limits,
        estimate: Estimate,
        now_ms: i64,
    ) -> Result<Reservation, Denied> {
        let mut shard = self.shard(account).lock();
        if let Some(state) = shard.map.get_mut(account) {
            return state.reserve(limits, estimate, now_ms);
        }
        // Cold path: a new account.
        if now_ms.saturating_sub(shard.last_sweep_ms) >= self.sweep_interval_ms
            || shard.map.len() >= self.per_shard
        {
            let n = shard.sweep(now_ms);
            self.evicted_idle.fetch_add(n, Ordering::Relaxed);
        }
        while shard.map.len() >= self.per_shard && shard.evict_one() {
            self.evicted_forced.fetch_add(1, Ordering::Relaxed);
        }
        let key: Arc<str> = Arc::from(account);
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let mut state = AccountState::new(key.clone(), generation, now_ms);
        let result = state.reserve(limits, estimate, now_ms);
        // A refused first request leaves the state fresh: do not store it.
        if result.is_ok() {
            shard.map.insert(key, state);
        }
        result
    }

    /// Run `f` on the state the reservation was taken from, if it still exists.
    fn with_state(&self, r: &Reservation, f: impl FnOnce(&mut AccountState)) {
        let mut shard = self.shard(r.account()).lock();
        if let Some(state) = shard.map.get_mut(r.account()) {
            if state.generation == r.generation() {
                f(state);
            }
        }
    }

    /// Synchronous [`Limiter::settle`].
    pub fn settle_now(&self, reservation: Reservation, actual_tokens: u64, now_ms: i64) {
        self.with_state(&reservation, |s| {
            s.settle(&reservation, actual_tokens, now_ms)
        });
    }

    /// Synchronous [`Limiter::release`].
    pub fn release_now(&self, reservation: Reservation, now_ms: i64) {
        self.with_state(&reservation, |s| s.release(&reservation, now_ms));
    }

    /// Drop every idle account in every shard (lossless); returns how many.
    pub fn evict_idle(&self, now_ms: i64) -> u64 {
        let n: u64 = self.shards.iter().map(|s| s.0.lock().sweep(now_ms)).sum();
        self.evicted_idle.fetch_add(n, Ordering::Relaxed);
        n
    }

    /// Number of accounts currently tracked.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock().map.len()).sum()
    }

    /// `true` when no account is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The hard bound on tracked accounts actually in force.
    pub fn capacity(&self) -> usize {
        self.per_shard * self.shards.len()
    }

    /// Eviction counters since creation.
    pub fn eviction_stats(&self) -> EvictionStats {
        EvictionStats {
            idle: self.evicted_idle.load(Ordering::Relaxed),
            forced: self.evicted_forced.load(Ordering::Relaxed),
        }
    }
}

#[async_trait::async_trait]
impl Limiter for InMemoryLimiter {
    async fn reserve(
        &self,
        account: &str,
        limits: &Limits,
        estimate: Estimate,
        now_ms: i64,
    ) -> Result<Reservation, Denied> {
        self.reserve_now(account, limits, estimate, now_ms)
    }

    async fn settle(&self, reservation: Reservation, actual_tokens: u64, now_ms: i64) {
        self.settle_now(reservation, actual_tokens, now_ms);
    }

    async fn release(&self, reservation: Reservation, now_ms: i64) {
        self.release_now(reservation, now_ms);
    }
}
