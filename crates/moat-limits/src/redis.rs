//! Redis-backed [`Limiter`] shared by several gateway replicas (feature `redis`).
//!
//! Same state, same integer arithmetic and same decisions as
//! [`InMemoryLimiter`](crate::InMemoryLimiter), with the per-account state in
//! one Redis hash and each step (reserve, settle, release) one atomic Lua
//! script: `EVALSHA`, one round trip per call (the scripts are loaded by
//! [`RedisLimiter::connect`], or on first use after a `NOSCRIPT` reply).
//! See the crate docs and `docs/limits.md` for the layout and fault modes.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};

use crate::day::utc_day;
use crate::limiter::Limiter;
use crate::types::{Charged, Denied, Estimate, LimitKind, Limits, Reservation};

/// Largest per-minute limit, estimate or usage passed to the scripts: bucket
/// levels are kept in units of 1/60 000, and must stay below 2^53 to be exact
/// in Lua's doubles. Larger values are clamped to this (1.5·10^11), which
/// changes nothing for any realistic quota.
pub const MAX_MINUTE_VALUE: u64 = 150_000_000_000;

/// Largest tokens-per-day limit passed to the scripts (2^52); larger ones are clamped.
pub const MAX_DAY_LIMIT: u64 = 1 << 52;

/// Largest TTL the scripts set on an account hash (3 days); see
/// [`RedisLimiterConfig::in_flight_ttl`].
pub const MAX_TTL: Duration = Duration::from_secs(3 * 86_400);

/// Metric counter incremented on every Redis error or timeout (labels `op`:
/// `reserve` / `settle` / `release`, and `cause`: `timeout` / `redis`).
pub const ERRORS_METRIC: &str = "moat_limiter_redis_errors_total";

const PRELUDE: &str = include_str!("lua/prelude.lua");

/// What [`RedisLimiter::reserve`](Limiter::reserve) answers when Redis does not
/// answer within [`RedisLimiterConfig::timeout`] (down, slow, script error).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailMode {
    /// Admit the request without counting it (availability first). The
    /// returned [`Reservation`] has nothing [`charged`](Reservation::charged)
    /// and `generation() == 0`, so its settle/release cost no round trip.
    #[default]
    Open,
    /// Refuse with [`Denied::unavailable`] ([`LimitKind::Unavailable`],
    /// `retry_after` = [`RedisLimiterConfig::unavailable_retry_after`]); the
    /// gateway should answer 503 (quota enforcement first).
    Closed,
}

/// Settings of a [`RedisLimiter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisLimiterConfig {
    /// Redis URL, e.g. `redis://127.0.0.1:6379/0` (`rediss://` is not enabled).
    pub url: String,
    /// Prefix of the per-account hash keys; the key is `prefix + account`.
    pub key_prefix: String,
    /// Deadline of one limiter call, connection set-up included. Past it the
    /// call fails according to [`Self::fail_mode`]; the Redis command itself
    /// still completes in the background (a reservation that arrives late is
    /// released again), bounded by [`Self::response_timeout`].
    pub timeout: Duration,
    /// Behaviour of `reserve` when Redis fails or misses [`Self::timeout`].
    pub fail_mode: FailMode,
    /// `retry_after` of the fail-closed refusal.
    pub unavailable_retry_after: Duration,
    /// Hard bound on one Redis command on the connection (also bounds the
    /// background completion after a missed [`Self::timeout`]).
    pub response_timeout: Duration,
    /// Bound on establishing a TCP connection to Redis.
    pub connect_timeout: Duration,
    /// Added to every key's computed lifetime (absorbs clock skew between
    /// replicas and Redis).
    pub ttl_slack: Duration,
    /// Minimum lifetime of a key while reservations are in flight, refreshed
    /// by every call for the account. Longer than the longest request; if it
    /// lapses the account restarts fresh and the late settles are ignored.
    /// Capped at [`MAX_TTL`].
    pub in_flight_ttl: Duration,
}

impl Default for RedisLimiterConfig {
    fn default() -> Self {
        RedisLimiterConfig {
            url: "redis://127.0.0.1:6379/".to_owned(),
            key_prefix: "moat:lim:".to_owned(),
            timeout: Duration::from_millis(50),
            fail_mode: FailMode::Open,
            unavailable_retry_after: Duration::from_secs(1),
            response_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_millis(500),
            ttl_slack: Duration::from_secs(60),
            in_flight_ttl: Duration::from_secs(3_600),
        }
    }
}

/// Why a [`RedisLimiter`] could not be built or connected.
#[derive(Debug, thiserror::Error)]
pub enum RedisLimiterError {
    /// Invalid URL or client settings.
    #[error("redis limiter configuration: {0}")]
    Config(String),
    /// Constructed outside a tokio runtime (the connection manager needs one).
    #[error("redis limiter must be created inside a tokio runtime")]
    NoRuntime,
    /// Redis did not answer (within [`RedisLimiterConfig::connect_timeout`]).
    #[error("redis limiter cannot reach redis: {0}")]
    Unreachable(String),
}

/// Why one limiter call got no answer from Redis.
#[derive(Debug)]
enum Fault {
    Timeout,
    Redis,
}

impl Fault {
    fn cause(&self) -> &'static str {
        match self {
            Fault::Timeout => "timeout",
            Fault::Redis => "redis",
        }
    }
}

struct Scripts {
    reserve: Script,
    settle: Script,
    release: Script,
}

/// Settings the scripts need, pre-rendered.
#[derive(Debug, Clone, Copy)]
struct TtlArgs {
    slack_ms: u64,
    in_flight_ms: u64,
}

/// [`Limiter`] over Redis: exact quotas across replicas.
///
/// One hash per account (`key_prefix + account`) with the fields `rq_level,
/// rq_held, rq_rate, rq_last, tk_level, tk_held, tk_rate, tk_last, day,
/// day_used, in_flight, gen`, and a TTL that ends when the state is
/// equivalent to a fresh one (fully drained, day over, nothing in flight).
///
/// Cheap to share (`Arc<dyn Limiter>`); all clones of the inner connection
/// multiplex over one TCP connection that reconnects by itself.
pub struct RedisLimiter {
    conn: ConnectionManager,
    scripts: Arc<Scripts>,
    prefix: String,
    timeout: Duration,
    fail_mode: FailMode,
    unavailable_retry_after: Duration,
    ttl: TtlArgs,
    gen_seed: u64,
    gen_counter: AtomicU64,
    errors: AtomicU64,
    /// Whether Redis answers (see [`RedisLimiter::is_healthy`]).
    health: Arc<Health>,
}

/// Whether Redis answers, and whether a probe is checking for its return.
#[derive(Debug)]
struct Health {
    ok: std::sync::atomic::AtomicBool,
    probing: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("fail_mode", &self.fail_mode)
            .field("errors", &self.errors.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// SplitMix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn opt_arg(v: Option<u64>, max: u64) -> i64 {
    v.map_or(-1, |v| v.min(max) as i64)
}

impl RedisLimiter {
    /// Create the limiter without contacting Redis; the connection is made on
    /// first use (and re-made after failures), so a gateway can start while
    /// Redis is down and fail open/closed meanwhile. Must be called inside a
    /// tokio runtime with IO and time enabled (`enable_all`), which every
    /// call then also needs.
    pub fn new(config: RedisLimiterConfig) -> Result<Self, RedisLimiterError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(RedisLimiterError::NoRuntime);
        }
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| RedisLimiterError::Config(e.to_string()))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            // reconnect quickly and give up early; the next call tries again
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|e| RedisLimiterError::Config(e.to_string()))?;
        let script = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        let scripts = Scripts {
            reserve: script(include_str!("lua/reserve.lua")),
            settle: script(include_str!("lua/settle.lua")),
            release: script(include_str!("lua/release.lua")),
        };
        let seed = {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(crate::unix_now_ms())
        };
        Ok(RedisLimiter {
            conn,
            scripts: Arc::new(scripts),
            prefix: config.key_prefix,
            timeout: config.timeout,
            fail_mode: config.fail_mode,
            unavailable_retry_after: config.unavailable_retry_after,
            ttl: TtlArgs {
                slack_ms: ms(config.ttl_slack),
                in_flight_ms: ms(config.in_flight_ttl).min(ms(MAX_TTL)),
            },
            gen_seed: seed,
            gen_counter: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            health: Arc::new(Health {
                ok: std::sync::atomic::AtomicBool::new(true),
                probing: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// [`new`](Self::new), then check that Redis answers and load the three
    /// scripts (so that every later call is a single `EVALSHA`). Use at
    /// start-up to refuse to run without Redis.
    pub async fn connect(config: RedisLimiterConfig) -> Result<Self, RedisLimiterError> {
        let deadline = config.connect_timeout + config.response_timeout;
        let limiter = Self::new(config)?;
        let mut conn = limiter.conn.clone();
        let scripts = limiter.scripts.clone();
        let load = async move {
            for s in [&scripts.reserve, &scripts.settle, &scripts.release] {
                s.load_async(&mut conn).await?;
            }
            RedisResult::Ok(())
        };
        match tokio::time::timeout(deadline, load).await {
            Ok(Ok(())) => Ok(limiter),
            Ok(Err(e)) => Err(RedisLimiterError::Unreachable(e.to_string())),
            Err(_) => Err(RedisLimiterError::Unreachable(format!(
                "no answer within {deadline:?}"
            ))),
        }
    }

    /// Number of calls that got no answer from Redis (errors and timeouts)
    /// since creation; the same events are counted in [`ERRORS_METRIC`].
    pub fn error_count(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// The configured fault behaviour.
    pub fn fail_mode(&self) -> FailMode {
        self.fail_mode
    }

    /// The Redis key of `account`'s state.
    pub fn key(&self, account: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + account.len());
        k.push_str(&self.prefix);
        k.push_str(account);
        k
    }

    /// A fresh non-zero account incarnation id below 2^53 (exact in Lua).
    fn next_generation(&self) -> u64 {
        let n = self.gen_counter.fetch_add(1, Ordering::Relaxed);
        let z = self
            .gen_seed
            .wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        (mix(z) >> 12) | 1
    }

    /// After a fault: one background task PINGs Redis every 250 ms until it answers, then
    /// marks the limiter healthy again, so health reports recover without waiting for traffic.
    fn probe(&self) {
        if self.health.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.health.probing.store(false, Ordering::Release);
            return;
        };
        let health = self.health.clone();
        let mut conn = self.conn.clone();
        let timeout = self.timeout.max(Duration::from_millis(100));
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let cmd = redis::cmd("PING");
                let ping = cmd.query_async::<String>(&mut conn);
                if let Ok(Ok(_)) = tokio::time::timeout(timeout, ping).await {
                    health.ok.store(true, Ordering::Relaxed);
                    break;
                }
            }
            health.probing.store(false, Ordering::Release);
        });
    }

    /// Whether Redis answers: the last call got its answer in time, or a probe since the last
    /// fault did (for health reports).
    pub fn is_healthy(&self) -> bool {
        self.health.ok.load(Ordering::Relaxed)
    }

    fn record_fault(&self, op: &'static str, fault: &Fault) {
        self.health.ok.store(false, Ordering::Relaxed);
        self.probe();
        self.errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(ERRORS_METRIC, "op" => op, "cause" => fault.cause()).increment(1);
    }

    /// Run `fut` (one Redis command) on its own task and wait at most
    /// `self.timeout` for it. The command is never abandoned half-way: past
    /// the deadline it completes in the background and its result goes to
    /// `on_late` instead.
    async fn call<T, F, L>(&self, fut: F, on_late: L) -> Result<T, Fault>
    where
        T: Send + 'static,
        F: Future<Output = RedisResult<T>> + Send + 'static,
        L: FnOnce(T) + Send + 'static,
    {
        // e.g. polled inline by a `ReservationGuard` dropped outside a runtime
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(Fault::Redis);
        };
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        runtime.spawn(async move {
            let result = fut.await;
            if let Err(Ok(late)) = tx.send(result) {
                on_late(late);
            }
        });
        let answer = match tokio::time::timeout(self.timeout, &mut rx).await {
            Ok(answer) => answer,
            Err(_) => {
                // Close first: a result sent before this is still taken below,
                // one sent after goes to `on_late`; none is lost.
                rx.close();
                match rx.try_recv() {
                    Ok(answer) => Ok(answer),
                    Err(_) => return Err(Fault::Timeout),
                }
            }
        };
        match answer {
            Ok(Ok(v)) => {
                self.health.ok.store(true, Ordering::Relaxed);
                Ok(v)
            }
            // a Redis error, or the task died (runtime shutting down)
            Ok(Err(_)) | Err(_) => Err(Fault::Redis),
        }
    }

    async fn reserve_redis(
        &self,
        account: &str,
        limits: &Limits,
        cost: u64,
        now_ms: i64,
    ) -> Result<Result<Reservation, Denied>, Fault> {
        let key = self.key(account);
        let rpm = opt_arg(limits.requests_per_minute.map(u64::from), MAX_MINUTE_VALUE);
        let tpm = opt_arg(limits.tokens_per_minute, MAX_MINUTE_VALUE);
        let tpd = opt_arg(limits.tokens_per_day, MAX_DAY_LIMIT);
        let gen = self.next_generation();
        let ttl = self.ttl;
        let charged = Charged {
            requests_per_minute: limits.requests_per_minute.is_some(),
            tokens_per_minute: limits.tokens_per_minute.is_some(),
            tokens_per_day: limits.tokens_per_day.is_some(),
        };
        let mut conn = self.conn.clone();
        let scripts = self.scripts.clone();
        // for the late clean-up of a reservation that missed the deadline
        let (late_conn, late_scripts, late_key) =
            (self.conn.clone(), self.scripts.clone(), key.clone());
        let fut = async move {
            scripts
                .reserve
                .key(key)
                .arg(now_ms)
                .arg(rpm)
                .arg(tpm)
                .arg(tpd)
                .arg(cost)
                .arg(gen)
                .arg(ttl.slack_ms)
                .arg(ttl.in_flight_ms)
                .invoke_async::<Vec<i64>>(&mut conn)
                .await
        };
        let on_late = move |reply: Vec<i64>| {
            if let [1, gen, day] = reply[..] {
                let mut conn = late_conn;
                tokio::spawn(async move {
                    let args = FinishArgs {
                        now_ms,
                        gen: gen as u64,
                        charged,
                        tokens: cost,
                        day,
                        ttl,
                    };
                    let _ = args
                        .invocation(&late_scripts.release, late_key, None)
                        .invoke_async::<i64>(&mut conn)
                        .await;
                });
            }
        };
        let reply = self.call(fut, on_late).await?;
        match reply[..] {
            [1, gen, day] => Ok(Ok(Reservation::new(
                Arc::from(account),
                cost,
                day,
                charged,
                gen as u64,
            ))),
            [0, kind, retry_ms, remaining, exceeds] => {
                let (limit, limit_value) = match kind {
                    1 => (
                        LimitKind::RequestsPerMinute,
                        limits.requests_per_minute.map(u64::from),
                    ),
                    2 => (LimitKind::TokensPerMinute, limits.tokens_per_minute),
                    3 => (LimitKind::TokensPerDay, limits.tokens_per_day),
                    _ => return Err(Fault::Redis),
                };
                Ok(Err(Denied {
                    limit,
                    retry_after: Duration::from_millis(retry_ms.max(0) as u64),
                    limit_value: limit_value.unwrap_or(0),
                    remaining: remaining.max(0) as u64,
                    exceeds_limit: exceeds != 0,
                }))
            }
            _ => Err(Fault::Redis),
        }
    }

    /// Settle (`actual = Some`) or release (`None`) through Redis.
    async fn finish(&self, r: Reservation, actual: Option<u64>, now_ms: i64) {
        let op = if actual.is_some() {
            "settle"
        } else {
            "release"
        };
        // fail-open and unlimited reservations were never recorded
        if r.generation() == 0 {
            return;
        }
        let args = FinishArgs {
            now_ms,
            gen: r.generation(),
            charged: r.charged(),
            tokens: r.tokens(),
            day: r.day(),
            ttl: self.ttl,
        };
        let key = self.key(r.account());
        let mut conn = self.conn.clone();
        let scripts = self.scripts.clone();
        let fut = async move {
            let script = if actual.is_some() {
                &scripts.settle
            } else {
                &scripts.release
            };
            args.invocation(script, key, actual)
                .invoke_async::<i64>(&mut conn)
                .await
        };
        if let Err(f) = self.call(fut, |_| {}).await {
            self.record_fault(op, &f);
        }
    }
}

/// Arguments of the settle and release scripts.
#[derive(Debug, Clone, Copy)]
struct FinishArgs {
    now_ms: i64,
    gen: u64,
    charged: Charged,
    tokens: u64,
    day: i64,
    ttl: TtlArgs,
}

impl FinishArgs {
    /// The settle (`actual = Some`) or release invocation of `script`.
    fn invocation(
        self,
        script: &Script,
        key: String,
        actual: Option<u64>,
    ) -> redis::ScriptInvocation<'_> {
        let flag = |b: bool| if b { "1" } else { "0" };
        let mut inv = script.key(key);
        inv.arg(self.now_ms)
            .arg(self.gen)
            .arg(flag(self.charged.requests_per_minute))
            .arg(flag(self.charged.tokens_per_minute))
            .arg(flag(self.charged.tokens_per_day))
            .arg(self.tokens);
        if let Some(a) = actual {
            inv.arg(a.min(MAX_MINUTE_VALUE));
        }
        inv.arg(self.day)
            .arg(self.ttl.slack_ms)
            .arg(self.ttl.in_flight_ms);
        inv
    }
}

#[async_trait::async_trait]
impl Limiter for RedisLimiter {
    /// One `EVALSHA` of the reserve script. Estimates, per-minute limits and
    /// usage above [`MAX_MINUTE_VALUE`] are clamped to it (so is
    /// [`Reservation::tokens`]). Without any configured limit nothing can be
    /// refused, and no round trip is made. On a Redis error or timeout the
    /// answer follows [`FailMode`].
    async fn reserve(
        &self,
        account: &str,
        limits: &Limits,
        estimate: Estimate,
        now_ms: i64,
    ) -> Result<Reservation, Denied> {
        let cost = estimate.tokens.min(MAX_MINUTE_VALUE);
        let unrecorded = || {
            Ok(Reservation::new(
                Arc::from(account),
                cost,
                utc_day(now_ms),
                Charged::default(),
                0,
            ))
        };
        if *limits == Limits::UNLIMITED {
            return unrecorded();
        }
        match self.reserve_redis(account, limits, cost, now_ms).await {
            Ok(decision) => decision,
            Err(fault) => {
                self.record_fault("reserve", &fault);
                match self.fail_mode {
                    FailMode::Open => unrecorded(),
                    FailMode::Closed => Err(Denied::unavailable(self.unavailable_retry_after)),
                }
            }
        }
    }

    /// One `EVALSHA` of the settle script; ignored by Redis when the account
    /// state expired or was re-created since the reservation. Errors are
    /// counted and otherwise dropped (the key's TTL bounds the damage).
    async fn settle(&self, reservation: Reservation, actual_tokens: u64, now_ms: i64) {
        self.finish(reservation, Some(actual_tokens), now_ms).await;
    }

    /// One `EVALSHA` of the release script; see [`settle`](Self::settle).
    async fn release(&self, reservation: Reservation, now_ms: i64) {
        self.finish(reservation, None, now_ms).await;
    }
}
