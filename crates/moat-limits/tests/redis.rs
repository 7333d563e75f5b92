//! Behavioural tests of [`RedisLimiter`] against a real Redis on 127.0.0.1:6379.
//!
//! Run with `cargo test -p moat-limits --features redis`. These tests FAIL (they
//! do not skip) when Redis is not reachable: CI starts one. Each test uses its
//! own key prefix and deletes its keys when done (also on failure).

use std::sync::Arc;
use std::time::{Duration, Instant};

use moat_limits::{
    Denied, FailMode, InMemoryLimiter, LimitKind, Limiter, Limits, RedisLimiter,
    RedisLimiterConfig, RedisLimiterError, Reservation,
};

/// The Redis under test: `MOAT_TEST_REDIS_URL`, default `redis://127.0.0.1:6379/`.
fn url() -> String {
    std::env::var("MOAT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}
mod common;
use common::{est, rpm, tpd, tpm, DAY, T0};

fn no_redis(e: impl std::fmt::Display) -> ! {
    panic!(
        "these tests need a real Redis at {} (CI starts one; locally run `redis-server`, \
         or set MOAT_TEST_REDIS_URL): {e}",
        url()
    )
}

/// A per-test key namespace; deletes its keys on drop (even after a failed assert).
struct Ns {
    prefix: String,
}

impl Ns {
    fn new(test: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Ns {
            prefix: format!("moat-test:{test}:{}:{nanos}:", std::process::id()),
        }
    }

    fn config(&self) -> RedisLimiterConfig {
        RedisLimiterConfig {
            url: url(),
            key_prefix: self.prefix.clone(),
            // generous: another test may block Redis for a moment (late_reply_*)
            timeout: Duration::from_secs(5),
            // a Redis problem must show up as a failure, not as an admission
            fail_mode: FailMode::Closed,
            ..RedisLimiterConfig::default()
        }
    }

    async fn limiter(&self) -> RedisLimiter {
        RedisLimiter::connect(self.config())
            .await
            .unwrap_or_else(|e| no_redis(e))
    }

    fn redis(&self) -> redis::Connection {
        redis::Client::open(url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .unwrap_or_else(|e| no_redis(e))
    }

    fn keys(&self) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut self.redis())
            .unwrap()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let Ok(mut c) = redis::Client::open(url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut c)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(keys).query(&mut c);
        }
    }
}

async fn deny(l: &RedisLimiter, limits: &Limits, tokens: u64, now: i64) -> Denied {
    l.reserve("a", limits, est(tokens), now).await.unwrap_err()
}

async fn admit(l: &RedisLimiter, limits: &Limits, tokens: u64, now: i64) -> Reservation {
    l.reserve("a", limits, est(tokens), now)
        .await
        .unwrap_or_else(|d| panic!("expected admission at {now}: {d}"))
}

#[tokio::test]
async fn requests_per_minute_exact_boundary_and_retry_after() {
    let ns = Ns::new("rpm");
    let l = ns.limiter().await;
    let lim = rpm(3);
    for _ in 0..3 {
        let r = admit(&l, &lim, 0, T0).await;
        l.settle(r, 0, T0).await;
    }
    let d = deny(&l, &lim, 0, T0).await;
    assert_eq!(d.limit, LimitKind::RequestsPerMinute);
    assert_eq!((d.limit_value, d.remaining, d.exceeds_limit), (3, 0, false));
    assert_eq!(d.retry_after, Duration::from_secs(20));
    assert!(l.reserve("a", &lim, est(0), T0 + 19_999).await.is_err());
    let r = admit(&l, &lim, 0, T0 + 20_000).await;
    l.settle(r, 0, T0 + 20_000).await;
    // other accounts are independent
    assert!(l.reserve("b", &lim, est(0), T0).await.is_ok());
    assert_eq!(l.error_count(), 0);
}

#[tokio::test]
async fn tokens_per_minute_exact_boundary_and_held_capacity() {
    let ns = Ns::new("tpm");
    let l = ns.limiter().await;
    let lim = tpm(1_000);
    let a = admit(&l, &lim, 600, T0).await;
    let b = admit(&l, &lim, 400, T0).await;
    let d = deny(&l, &lim, 1, T0).await;
    assert_eq!(
        (d.limit, d.limit_value, d.remaining),
        (LimitKind::TokensPerMinute, 1_000, 0)
    );
    assert_eq!(d.retry_after, Duration::from_millis(60));
    l.settle(a, 600, T0).await;
    l.settle(b, 400, T0).await;
    assert!(l.reserve("a", &lim, est(1), T0 + 59).await.is_err());
    let r = admit(&l, &lim, 1, T0 + 60).await;
    l.settle(r, 1, T0 + 60).await;
    assert_eq!(deny(&l, &lim, 501, T0 + 30_060).await.remaining, 500);
    assert!(l.reserve("a", &lim, est(500), T0 + 30_060).await.is_ok());
    // in-flight estimates do not refill, however long
    let h = l.reserve("h", &tpm(100), est(100), T0).await.unwrap();
    assert!(l
        .reserve("h", &tpm(100), est(1), T0 + 600_000)
        .await
        .is_err());
    l.settle(h, 100, T0 + 600_000).await;
    let d = l
        .reserve("h", &tpm(100), est(100), T0 + 630_000)
        .await
        .unwrap_err();
    assert_eq!((d.remaining, d.retry_after), (50, Duration::from_secs(30)));
    assert!(l
        .reserve("h", &tpm(100), est(100), T0 + 660_000)
        .await
        .is_ok());
}

#[tokio::test]
async fn settle_refunds_unused_estimate() {
    let ns = Ns::new("refund");
    let l = ns.limiter().await;
    let lim = Limits {
        requests_per_minute: None,
        tokens_per_minute: Some(1_000),
        tokens_per_day: Some(5_000),
    };
    let r = admit(&l, &lim, 1_000, T0).await;
    l.settle(r, 200, T0).await;
    let d = deny(&l, &lim, 801, T0).await;
    assert_eq!((d.limit, d.remaining), (LimitKind::TokensPerMinute, 800));
    let r = admit(&l, &lim, 800, T0).await;
    l.settle(r, 800, T0).await;
    assert_eq!(deny(&l, &tpd(5_000), 4_001, T0).await.remaining, 4_000);
}

#[tokio::test]
async fn settle_charges_usage_beyond_estimate() {
    let ns = Ns::new("overcharge");
    let l = ns.limiter().await;
    let lim = Limits {
        requests_per_minute: None,
        tokens_per_minute: Some(1_000),
        tokens_per_day: Some(10_000),
    };
    let r = admit(&l, &lim, 100, T0).await;
    l.settle(r, 1_500, T0).await;
    let d = deny(&l, &lim, 1, T0).await;
    assert_eq!((d.limit, d.remaining), (LimitKind::TokensPerMinute, 0));
    assert_eq!(d.retry_after, Duration::from_millis(30_060));
    assert!(l.reserve("a", &lim, est(1), T0 + 30_059).await.is_err());
    let r = admit(&l, &lim, 1, T0 + 30_060).await;
    l.settle(r, 1, T0 + 30_060).await;
    assert_eq!(
        deny(&l, &tpd(10_000), 10_000, T0).await.remaining,
        10_000 - 1_501
    );
}

#[tokio::test]
async fn release_returns_capacity() {
    let ns = Ns::new("release");
    let l = ns.limiter().await;
    let lim = Limits {
        requests_per_minute: Some(1),
        tokens_per_minute: Some(1_000),
        tokens_per_day: Some(1_000),
    };
    let r = admit(&l, &lim, 1_000, T0).await;
    assert_eq!(
        deny(&l, &lim, 0, T0).await.limit,
        LimitKind::RequestsPerMinute
    );
    l.release(r, T0 + 1).await;
    let r = admit(&l, &lim, 1_000, T0 + 1).await;
    l.release(r, T0 + 2).await;
    // settle with 0 keeps the request counted but returns the tokens
    let r = admit(&l, &lim, 1_000, T0 + 2).await;
    l.settle(r, 0, T0 + 2).await;
    assert_eq!(
        deny(&l, &lim, 1_000, T0 + 2).await.limit,
        LimitKind::RequestsPerMinute
    );
    assert_eq!(deny(&l, &tpm(1_000), 1_001, T0 + 2).await.remaining, 1_000);
}

#[tokio::test]
async fn day_window_rollover() {
    let ns = Ns::new("day");
    let l = ns.limiter().await;
    let lim = tpd(1_000);
    let late = T0 + DAY - 1_000;
    let r = admit(&l, &lim, 1_000, late).await;
    assert_eq!(r.day(), moat_limits::utc_day(late));
    let d = deny(&l, &lim, 1, late).await;
    assert_eq!(d.limit, LimitKind::TokensPerDay);
    assert_eq!(d.retry_after, Duration::from_secs(1));
    assert_eq!(
        deny(&l, &lim, 1, late + 999).await.retry_after,
        Duration::from_millis(1)
    );
    let r2 = admit(&l, &lim, 1_000, T0 + DAY).await;
    // yesterday's settle lands in yesterday: today's count is untouched
    l.settle(r, 10, T0 + DAY).await;
    let d = deny(&l, &lim, 1, T0 + DAY).await;
    assert_eq!(d.remaining, 0);
    assert_eq!(d.retry_after, Duration::from_millis(DAY as u64));
    l.settle(r2, 400, T0 + DAY + 5).await;
    assert_eq!(deny(&l, &lim, 601, T0 + DAY + 5).await.remaining, 600);
}

#[tokio::test]
async fn longest_wait_is_reported_and_nothing_is_charged_on_denial() {
    let ns = Ns::new("longest");
    let l = ns.limiter().await;
    let lim = Limits {
        requests_per_minute: Some(60),
        tokens_per_minute: Some(100),
        tokens_per_day: Some(150),
    };
    let r = admit(&l, &lim, 100, T0).await;
    l.settle(r, 100, T0).await;
    let d = deny(&l, &lim, 60, T0 + 1_000).await;
    assert_eq!(d.limit, LimitKind::TokensPerDay);
    assert_eq!(d.retry_after, Duration::from_millis((DAY - 1_000) as u64));
    let d = deny(&l, &lim, 50, T0 + 1_000).await;
    assert_eq!(d.limit, LimitKind::TokensPerMinute);
    assert_eq!(d.retry_after, Duration::from_secs(29));
    assert!(l.reserve("a", &lim, est(50), T0 + 30_000).await.is_ok());
}

#[tokio::test]
async fn estimate_larger_than_limit_is_flagged_and_creates_no_key() {
    let ns = Ns::new("exceeds");
    let l = ns.limiter().await;
    let d = deny(&l, &tpm(100), 101, T0).await;
    assert!(d.exceeds_limit);
    assert_eq!((d.remaining, d.retry_after), (100, Duration::from_secs(60)));
    let d = deny(&l, &tpd(100), 101, T0 + 1_000).await;
    assert!(d.exceeds_limit);
    assert_eq!(d.limit, LimitKind::TokensPerDay);
    assert!(ns.keys().is_empty(), "refused first contact created state");
    // unlimited: admitted without a round trip and without state
    let r = l
        .reserve("a", &Limits::UNLIMITED, est(u64::MAX / 2), T0)
        .await
        .unwrap();
    l.settle(r, u64::MAX / 2, T0).await;
    assert!(ns.keys().is_empty());
}

#[tokio::test]
async fn clock_going_backwards_is_harmless() {
    let ns = Ns::new("skew");
    let l = ns.limiter().await;
    let lim = Limits {
        requests_per_minute: Some(1),
        tokens_per_minute: None,
        tokens_per_day: Some(10),
    };
    let r = admit(&l, &lim, 10, T0 + DAY).await;
    l.settle(r, 10, T0 + DAY).await;
    // a replica a whole day behind: nothing refilled, no day rolled back
    let d = deny(&l, &lim, 0, T0).await;
    assert_eq!(d.limit, LimitKind::RequestsPerMinute);
    assert_eq!(d.retry_after, Duration::from_secs(60));
    let d = deny(&l, &tpd(10), 1, T0).await;
    assert_eq!((d.limit, d.remaining), (LimitKind::TokensPerDay, 0));
    assert!(l
        .reserve("a", &lim, est(1), T0 + DAY + 60_000)
        .await
        .is_err());
    // slightly behind: the minute bucket does not refill backwards either
    let l2 = ns.limiter().await;
    let r = l2.reserve("b", &rpm(1), est(0), T0 + 10_000).await.unwrap();
    l2.settle(r, 0, T0 + 10_000).await;
    let d = l
        .reserve("b", &rpm(1), est(0), T0 + 9_000)
        .await
        .unwrap_err();
    // the stored time stays the newest: 60 s from then
    assert_eq!(d.retry_after, Duration::from_secs(60));
    assert!(l.reserve("b", &rpm(1), est(0), T0 + 69_999).await.is_err());
    assert!(l.reserve("b", &rpm(1), est(0), T0 + 70_000).await.is_ok());
}

#[tokio::test]
async fn stale_settle_after_recreation_is_ignored() {
    let ns = Ns::new("stale");
    let l = ns.limiter().await;
    let lim = rpm(1);
    let old = admit(&l, &lim, 0, T0).await;
    // the state vanishes (TTL or flush) and the account starts fresh
    let _: i64 = redis::cmd("DEL")
        .arg(l.key("a"))
        .query(&mut ns.redis())
        .unwrap();
    let fresh = admit(&l, &lim, 0, T0 + 1).await;
    assert_ne!(old.generation(), fresh.generation());
    l.release(old, T0 + 1).await;
    assert!(l.reserve("a", &lim, est(0), T0 + 1).await.is_err());
    l.release(fresh, T0 + 1).await;
    assert!(l.reserve("a", &lim, est(0), T0 + 1).await.is_ok());
}

#[tokio::test]
async fn key_ttl_follows_the_state() {
    let ns = Ns::new("ttl");
    let l = ns.limiter().await;
    let pttl = |ns: &Ns| -> i64 {
        redis::cmd("PTTL")
            .arg(l.key("a"))
            .query(&mut ns.redis())
            .unwrap()
    };
    let slack = 60_000;
    // in flight: at least the in-flight TTL (1 h)
    let r = admit(&l, &tpm(1_000), 500, T0).await;
    let t = pttl(&ns);
    assert!(
        t > 3_600_000 + slack - 5_000 && t <= 3_600_000 + slack,
        "{t}"
    );
    // settled 500 of 1000/min: drained in 30 s
    l.settle(r, 500, T0).await;
    let t = pttl(&ns);
    assert!(t > 30_000 + slack - 5_000 && t <= 30_000 + slack, "{t}");
    // day usage: until the next UTC midnight
    let r = admit(&l, &tpd(1_000), 10, T0 + DAY - 10_000).await;
    l.settle(r, 10, T0 + DAY - 10_000).await;
    let t = pttl(&ns);
    assert!(t > 10_000 + slack - 5_000 && t <= 30_000 + slack, "{t}");
}

#[tokio::test]
async fn large_values_stay_exact() {
    let ns = Ns::new("large");
    let l = ns.limiter().await;
    let mem = InMemoryLimiter::default();
    // levels near 6·10^15 units: beyond Lua's default 14-digit formatting
    let lim = Limits {
        requests_per_minute: Some(u32::MAX),
        tokens_per_minute: Some(100_000_000_000),
        tokens_per_day: Some(1 << 51),
    };
    for (e, a) in [
        (99_999_999_999u64, 99_999_999_998u64),
        (1, 1),
        (3, 1),
        (2, 0),
    ] {
        let r1 = l.reserve("a", &lim, est(e), T0).await;
        let r2 = mem.reserve_now("a", &lim, est(e), T0);
        assert_eq!(r1.as_ref().err(), r2.as_ref().err());
        if let (Ok(r1), Ok(r2)) = (r1, r2) {
            l.settle(r1, a, T0).await;
            mem.settle_now(r2, a, T0);
        }
    }
    let d1 = deny(&l, &lim, 100_000_000_000, T0 + 7).await;
    let d2 = mem
        .reserve_now("a", &lim, est(100_000_000_000), T0 + 7)
        .unwrap_err();
    assert_eq!(d1, d2);
    assert_eq!(l.error_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_admit_exactly_the_limit() {
    for (i, (limits, cost, n)) in [
        (rpm(37), 0, 37u64),
        (tpm(500), 10, 50),
        (tpd(730), 10, 73),
        (
            Limits {
                requests_per_minute: Some(120),
                tokens_per_minute: Some(10_000),
                tokens_per_day: Some(1_110),
            },
            10,
            111,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let ns = Ns::new(&format!("replicas{i}"));
        // two limiters = two gateway replicas, each with its own connection
        let replicas: [Arc<dyn Limiter>; 2] =
            [Arc::new(ns.limiter().await), Arc::new(ns.limiter().await)];
        let barrier = Arc::new(tokio::sync::Barrier::new(200));
        let tasks: Vec<_> = (0..200)
            .map(|j| {
                let limiter = replicas[j % 2].clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    (j % 2, limiter.reserve("acct", &limits, est(cost), T0).await)
                })
            })
            .collect();
        let mut ok = Vec::new();
        let mut denied = 0;
        for t in tasks {
            match t.await.unwrap() {
                (j, Ok(r)) => ok.push((j, r)),
                (_, Err(d)) => {
                    assert!(!d.is_unavailable(), "{d}");
                    denied += 1;
                }
            }
        }
        assert_eq!(ok.len() as u64, n, "{limits:?}");
        assert_eq!(denied, 200 - n);
        // both replicas now see the account as full
        for replica in &replicas {
            let d = replica.reserve("acct", &limits, est(cost.max(1)), T0).await;
            assert!(d.is_err_and(|d| !d.is_unavailable()), "{limits:?}");
        }
        // release everything concurrently, across replicas: all capacity is back
        let rel: Vec<_> = ok
            .into_iter()
            .map(|(j, r)| {
                let limiter = replicas[1 - j].clone();
                tokio::spawn(async move { limiter.release(r, T0).await })
            })
            .collect();
        for t in rel {
            t.await.unwrap();
        }
        let r = replicas[0]
            .reserve("acct", &limits, est(cost * n), T0)
            .await;
        assert!(r.is_ok(), "{limits:?}");
    }
}

/// xorshift64*: a reproducible sequence without extra dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test]
async fn parity_with_in_memory_on_random_operations() {
    let ns = Ns::new("parity");
    let redis = ns.limiter().await;
    let mem = InMemoryLimiter::default();
    let limit_sets = [
        rpm(5),
        tpm(3_000),
        tpd(300_000),
        Limits {
            requests_per_minute: Some(12),
            tokens_per_minute: Some(4_000),
            tokens_per_day: Some(400_000),
        },
        Limits {
            requests_per_minute: Some(8),
            tokens_per_minute: Some(2_000),
            tokens_per_day: None,
        },
        Limits {
            requests_per_minute: Some(0),
            tokens_per_minute: Some(0),
            tokens_per_day: Some(0),
        },
    ];
    let accounts = ["p0", "p1", "p2"];
    let mut kinds = std::collections::HashMap::new();
    for seed in [1u64, 0x5eed, 0xdead_beef] {
        let mut rng = Rng(seed);
        // the time starts late in a day, so the sequence crosses midnight
        let mut now = T0 + DAY - 120_000;
        let mut pending: Vec<(Reservation, Reservation)> = Vec::new();
        let (mut admitted, mut refused) = (0, 0);
        for step in 0..1_500 {
            now += match rng.below(20) {
                0 => -(rng.below(5_000) as i64), // a replica with a clock behind
                1 => rng.below(120_000) as i64,
                2..=9 => rng.below(2_000) as i64,
                _ => 0,
            };
            let account = accounts[rng.below(3) as usize];
            let op = rng.below(10);
            if op < 5 || pending.is_empty() {
                // per account, mostly the same limits; sometimes a "config reload"
                let idx = if rng.below(10) == 0 {
                    rng.below(limit_sets.len() as u64) as usize
                } else {
                    account.as_bytes()[1] as usize % 4 + 1
                };
                let limits = limit_sets[idx];
                let e = est(rng.below(400));
                let a = mem.reserve_now(account, &limits, e, now);
                let b = redis.reserve(account, &limits, e, now).await;
                match (a, b) {
                    (Ok(a), Ok(b)) => {
                        assert_eq!(
                            (a.account(), a.tokens(), a.charged()),
                            (b.account(), b.tokens(), b.charged()),
                            "seed {seed} step {step}"
                        );
                        if a.charged().tokens_per_day {
                            assert_eq!(a.day(), b.day(), "seed {seed} step {step}");
                        }
                        admitted += 1;
                        pending.push((a, b));
                    }
                    (Err(a), Err(b)) => {
                        assert_eq!(a, b, "seed {seed} step {step}");
                        *kinds.entry(a.limit).or_insert(0) += 1;
                        refused += 1;
                    }
                    (a, b) => panic!("seed {seed} step {step}: memory {a:?} vs redis {b:?}"),
                }
            } else {
                let (a, b) = pending.swap_remove(rng.below(pending.len() as u64) as usize);
                if op < 9 {
                    let actual = rng.below(600);
                    mem.settle_now(a, actual, now);
                    redis.settle(b, actual, now).await;
                } else {
                    mem.release_now(a, now);
                    redis.release(b, now).await;
                }
            }
        }
        eprintln!("seed {seed}: {admitted} admitted, {refused} refused");
        assert!(admitted > 200 && refused > 20, "{admitted} / {refused}");
        for (a, b) in pending {
            mem.release_now(a, now);
            redis.release(b, now).await;
        }
    }
    // every kind of refusal was compared, several times
    eprintln!("refusals: {kinds:?}");
    assert!(
        kinds.values().all(|&n| n >= 5) && kinds.len() == 3,
        "{kinds:?}"
    );
    assert_eq!(redis.error_count(), 0);
}

/// A local port with nothing listening.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn unreachable_config(port: u16, fail_mode: FailMode) -> RedisLimiterConfig {
    RedisLimiterConfig {
        url: format!("redis://127.0.0.1:{port}/"),
        key_prefix: "moat-test:unreachable:".to_owned(),
        timeout: Duration::from_millis(50),
        fail_mode,
        ..RedisLimiterConfig::default()
    }
}

#[tokio::test]
async fn fail_open_admits_uncounted_when_redis_is_down() {
    let l = RedisLimiter::new(unreachable_config(closed_port(), FailMode::Open)).unwrap();
    let lim = rpm(1);
    for i in 0..3 {
        let start = Instant::now();
        let r = l.reserve("a", &lim, est(10), T0).await.unwrap();
        assert!(start.elapsed() < Duration::from_millis(500));
        assert_eq!(r.generation(), 0);
        assert_eq!(r.charged(), Default::default());
        assert_eq!(r.tokens(), 10);
        // nothing was recorded: settling it makes no call and no error
        l.settle(r, 5, T0).await;
        assert_eq!(l.error_count(), i + 1);
    }
}

#[tokio::test]
async fn fail_closed_denies_as_unavailable_when_redis_is_down() {
    let l = RedisLimiter::new(unreachable_config(closed_port(), FailMode::Closed)).unwrap();
    let d = l.reserve("a", &rpm(1), est(10), T0).await.unwrap_err();
    assert!(d.is_unavailable());
    assert_eq!(d.limit, LimitKind::Unavailable);
    assert_eq!(d.limit.as_str(), "limiter_unavailable");
    assert_eq!(d.retry_after, Duration::from_secs(1));
    assert!(!d.exceeds_limit);
    assert_eq!(l.error_count(), 1);
    // connect() reports the outage up front
    let e = RedisLimiter::connect(unreachable_config(closed_port(), FailMode::Closed))
        .await
        .unwrap_err();
    assert!(matches!(e, RedisLimiterError::Unreachable(_)), "{e}");
}

#[tokio::test]
async fn slow_redis_times_out_per_call() {
    // accepts connections, never answers
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    for mode in [FailMode::Closed, FailMode::Open] {
        let l = RedisLimiter::new(unreachable_config(port, mode)).unwrap();
        for _ in 0..2 {
            let start = Instant::now();
            let r = l.reserve("a", &tpm(100), est(10), T0).await;
            let took = start.elapsed();
            assert!(
                took >= Duration::from_millis(50) && took < Duration::from_millis(400),
                "{took:?}"
            );
            match mode {
                FailMode::Closed => assert!(r.unwrap_err().is_unavailable()),
                FailMode::Open => assert_eq!(r.unwrap().generation(), 0),
            }
        }
        assert_eq!(l.error_count(), 2);
    }
    server.abort();
}

#[tokio::test]
async fn late_reply_is_released_not_leaked() {
    let ns = Ns::new("late");
    let slow = RedisLimiter::connect(RedisLimiterConfig {
        timeout: Duration::from_millis(50),
        ..ns.config()
    })
    .await
    .unwrap_or_else(|e| no_redis(e));
    let l = ns.limiter().await;
    let lim = rpm(1);
    // keep Redis busy for 300 ms with a script on another connection
    let busy = tokio::task::spawn_blocking(|| {
        let mut c = redis::Client::open(url())
            .unwrap()
            .get_connection()
            .unwrap();
        let _: redis::RedisResult<i64> = redis::cmd("EVAL")
            .arg(
                "local t0 = redis.call('TIME') repeat local t = redis.call('TIME') \
                 until (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > 300000 return 1",
            )
            .arg(0)
            .query(&mut c);
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let d = slow.reserve("a", &lim, est(0), T0).await.unwrap_err();
    assert!(d.is_unavailable(), "{d}");
    busy.await.unwrap();
    // the reservation was made by Redis after the deadline, then given back
    let mut ok = false;
    for _ in 0..100 {
        if let Ok(r) = l.reserve("a", &lim, est(0), T0).await {
            l.release(r, T0).await;
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ok, "late reservation leaked");
}

#[test]
fn new_outside_a_runtime_is_an_error_not_a_panic() {
    let e = RedisLimiter::new(RedisLimiterConfig::default()).unwrap_err();
    assert!(matches!(e, RedisLimiterError::NoRuntime));
    let e = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async {
            RedisLimiter::new(RedisLimiterConfig {
                url: "not a url".into(),
                ..RedisLimiterConfig::default()
            })
        })
        .unwrap_err();
    assert!(matches!(e, RedisLimiterError::Config(_)));
}

#[test]
fn reservation_guard_works_and_never_panics_without_a_runtime() {
    use moat_limits::ReservationGuard;
    let ns = Ns::new("guard");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lim = rpm(1);
    let (limiter, r) = rt.block_on(async {
        let l: Arc<dyn Limiter> = Arc::new(ns.limiter().await);
        // dropped inside the runtime: released by a spawned task
        let r = l.reserve("a", &lim, est(0), T0).await.unwrap();
        drop(ReservationGuard::new(l.clone(), r));
        let mut again = None;
        for _ in 0..100 {
            if let Ok(r) = l.reserve("a", &lim, est(0), T0).await {
                again = Some(r);
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (l, again.expect("released by the guard"))
    });
    // dropped on a thread without a runtime: cannot reach Redis, must not panic
    drop(ReservationGuard::new(limiter.clone(), r));
    drop(limiter);
    drop(rt);
}

/// A private `redis-server` on `port`, killed on drop.
struct Server(std::process::Child);

impl Server {
    fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server binary on PATH");
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
#[ignore = "starts and kills its own redis-server (binary needed): cargo test --features redis -- --ignored"]
async fn recovers_after_a_redis_restart() {
    let port = closed_port();
    let cfg = RedisLimiterConfig {
        url: format!("redis://127.0.0.1:{port}/"),
        key_prefix: "moat-test:restart:".to_owned(),
        timeout: Duration::from_millis(200),
        fail_mode: FailMode::Closed,
        ..RedisLimiterConfig::default()
    };
    async fn until_decided(l: &RedisLimiter, now: i64) -> Result<Reservation, Denied> {
        for _ in 0..200 {
            match l.reserve("a", &rpm(2), est(0), now).await {
                Err(d) if d.is_unavailable() => tokio::time::sleep(Duration::from_millis(25)).await,
                other => return other,
            }
        }
        panic!("redis never came back");
    }
    let server = Server::start(port);
    let l = RedisLimiter::new(cfg).unwrap();
    let r = until_decided(&l, T0).await.unwrap();
    l.settle(r, 0, T0).await;
    drop(server);
    assert!(l
        .reserve("a", &rpm(2), est(0), T0)
        .await
        .unwrap_err()
        .is_unavailable());
    // a fresh server (state and scripts gone): reconnects and reloads the scripts
    let _server = Server::start(port);
    let r = until_decided(&l, T0).await.unwrap();
    l.settle(r, 0, T0).await;
    assert!(until_decided(&l, T0).await.is_ok());
    assert!(until_decided(&l, T0).await.unwrap_err().limit == LimitKind::RequestsPerMinute);
}
