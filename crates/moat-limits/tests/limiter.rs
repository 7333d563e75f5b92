//! Behavioural tests of the in-memory limiter through the public API.

use std::sync::Arc;
use std::time::Duration;

use moat_limits::{Denied, InMemoryConfig, InMemoryLimiter, LimitKind, Limiter, Limits};

mod common;
use common::{est, rpm, tpd, tpm, DAY, T0};

fn deny(l: &InMemoryLimiter, limits: &Limits, tokens: u64, now: i64) -> Denied {
    l.reserve_now("a", limits, est(tokens), now).unwrap_err()
}

#[test]
fn requests_per_minute_exact_boundary_and_retry_after() {
    let l = InMemoryLimiter::default();
    let lim = rpm(3);
    for _ in 0..3 {
        let r = l.reserve_now("a", &lim, est(0), T0).unwrap();
        l.settle_now(r, 0, T0);
    }
    let d = deny(&l, &lim, 0, T0);
    assert_eq!(d.limit, LimitKind::RequestsPerMinute);
    assert_eq!(d.limit_value, 3);
    assert_eq!(d.remaining, 0);
    assert!(!d.exceeds_limit);
    // one request refills every 20 s
    assert_eq!(d.retry_after, Duration::from_secs(20));
    assert_eq!(d.retry_after_secs(), 20);
    assert!(l.reserve_now("a", &lim, est(0), T0 + 19_999).is_err());
    let r = l.reserve_now("a", &lim, est(0), T0 + 20_000).unwrap();
    l.settle_now(r, 0, T0 + 20_000);
    // other accounts are independent
    assert!(l.reserve_now("b", &lim, est(0), T0).is_ok());
}

#[test]
fn tokens_per_minute_exact_boundary() {
    let l = InMemoryLimiter::default();
    let lim = tpm(1_000);
    let a = l.reserve_now("a", &lim, est(600), T0).unwrap();
    let b = l.reserve_now("a", &lim, est(400), T0).unwrap();
    let d = deny(&l, &lim, 1, T0);
    assert_eq!(
        (d.limit, d.limit_value, d.remaining),
        (LimitKind::TokensPerMinute, 1_000, 0)
    );
    // assumes in-flight settle at their estimate: 1 token refills in 60 ms
    assert_eq!(d.retry_after, Duration::from_millis(60));
    assert_eq!(d.retry_after_secs(), 1);
    l.settle_now(a, 600, T0);
    l.settle_now(b, 400, T0);
    assert!(l.reserve_now("a", &lim, est(1), T0 + 59).is_err());
    let r = l.reserve_now("a", &lim, est(1), T0 + 60).unwrap();
    l.settle_now(r, 1, T0 + 60);
    // continuous refill: after 30 s, 500 tokens are back (minus the one just used)
    assert_eq!(deny(&l, &lim, 501, T0 + 30_060).remaining, 500);
    assert!(l.reserve_now("a", &lim, est(500), T0 + 30_060).is_ok());
}

#[test]
fn held_capacity_does_not_refill_until_settled() {
    let l = InMemoryLimiter::default();
    let lim = tpm(100);
    let r = l.reserve_now("a", &lim, est(100), T0).unwrap();
    // long after a minute, the in-flight estimate still blocks
    assert!(l.reserve_now("a", &lim, est(1), T0 + 600_000).is_err());
    l.settle_now(r, 100, T0 + 600_000);
    // usage is charged at settle time and refills from there
    let d = deny(&l, &lim, 100, T0 + 630_000);
    assert_eq!((d.remaining, d.retry_after), (50, Duration::from_secs(30)));
    assert!(l.reserve_now("a", &lim, est(100), T0 + 660_000).is_ok());
}

#[test]
fn settle_refunds_unused_estimate() {
    let l = InMemoryLimiter::default();
    let lim = Limits {
        requests_per_minute: None,
        tokens_per_minute: Some(1_000),
        tokens_per_day: Some(5_000),
    };
    let r = l.reserve_now("a", &lim, est(1_000), T0).unwrap();
    l.settle_now(r, 200, T0);
    let d = deny(&l, &lim, 801, T0);
    assert_eq!((d.limit, d.remaining), (LimitKind::TokensPerMinute, 800));
    let r = l.reserve_now("a", &lim, est(800), T0).unwrap();
    l.settle_now(r, 800, T0);
    // day counter holds exactly the actual usage: 200 + 800
    let lim_day = tpd(5_000);
    assert_eq!(deny(&l, &lim_day, 4_001, T0).remaining, 4_000);
}

#[test]
fn settle_charges_usage_beyond_estimate() {
    let l = InMemoryLimiter::default();
    let lim = Limits {
        requests_per_minute: None,
        tokens_per_minute: Some(1_000),
        tokens_per_day: Some(10_000),
    };
    let r = l.reserve_now("a", &lim, est(100), T0).unwrap();
    l.settle_now(r, 1_500, T0);
    let d = deny(&l, &lim, 1, T0);
    assert_eq!((d.limit, d.remaining), (LimitKind::TokensPerMinute, 0));
    // 501 token-units above capacity at 1000/min -> 30 060 ms
    assert_eq!(d.retry_after, Duration::from_millis(30_060));
    assert!(l.reserve_now("a", &lim, est(1), T0 + 30_059).is_err());
    let r = l.reserve_now("a", &lim, est(1), T0 + 30_060).unwrap();
    l.settle_now(r, 1, T0 + 30_060);
    assert_eq!(deny(&l, &tpd(10_000), 10_000, T0).remaining, 10_000 - 1_501);
}

#[test]
fn release_returns_capacity() {
    let l = InMemoryLimiter::default();
    let lim = Limits {
        requests_per_minute: Some(1),
        tokens_per_minute: Some(1_000),
        tokens_per_day: Some(1_000),
    };
    let r = l.reserve_now("a", &lim, est(1_000), T0).unwrap();
    assert_eq!(deny(&l, &lim, 0, T0).limit, LimitKind::RequestsPerMinute);
    l.release_now(r, T0 + 1);
    // everything is back: request slot, minute tokens, day tokens
    let r = l.reserve_now("a", &lim, est(1_000), T0 + 1).unwrap();
    l.release_now(r, T0 + 2);
    // settle with 0 keeps the request counted but returns the tokens
    let r = l.reserve_now("a", &lim, est(1_000), T0 + 2).unwrap();
    l.settle_now(r, 0, T0 + 2);
    let d = deny(&l, &lim, 1_000, T0 + 2);
    assert_eq!(d.limit, LimitKind::RequestsPerMinute);
    assert_eq!(deny(&l, &tpm(1_000), 1_001, T0 + 2).remaining, 1_000);
}

#[test]
fn day_window_rollover() {
    let l = InMemoryLimiter::default();
    let lim = tpd(1_000);
    let late = T0 + DAY - 1_000; // 23:59:59.000
    let r = l.reserve_now("a", &lim, est(1_000), late).unwrap();
    let d = deny(&l, &lim, 1, late);
    assert_eq!(d.limit, LimitKind::TokensPerDay);
    assert_eq!(d.retry_after, Duration::from_secs(1));
    assert_eq!(
        deny(&l, &lim, 1, late + 999).retry_after,
        Duration::from_millis(1)
    );
    // new UTC day: fresh quota
    let r2 = l.reserve_now("a", &lim, est(1_000), T0 + DAY).unwrap();
    // settling yesterday's reservation lands in yesterday: today's count is untouched
    l.settle_now(r, 10, T0 + DAY);
    let d = deny(&l, &lim, 1, T0 + DAY);
    assert_eq!(d.remaining, 0);
    assert_eq!(d.retry_after, Duration::from_millis(DAY as u64));
    l.settle_now(r2, 400, T0 + DAY + 5);
    assert_eq!(deny(&l, &lim, 601, T0 + DAY + 5).remaining, 600);
}

#[test]
fn longest_wait_is_reported_and_nothing_is_charged_on_denial() {
    let l = InMemoryLimiter::default();
    let lim = Limits {
        requests_per_minute: Some(60),
        tokens_per_minute: Some(100),
        tokens_per_day: Some(150),
    };
    let r = l.reserve_now("a", &lim, est(100), T0).unwrap();
    l.settle_now(r, 100, T0);
    // tpm wants 6 s, tpd wants until midnight
    let d = deny(&l, &lim, 60, T0 + 1_000);
    assert_eq!(d.limit, LimitKind::TokensPerDay);
    assert_eq!(d.retry_after, Duration::from_millis((DAY - 1_000) as u64));
    // a denial charged nothing: 50 tokens still fit today once the minute allows
    let d = deny(&l, &lim, 50, T0 + 1_000);
    assert_eq!(d.limit, LimitKind::TokensPerMinute);
    assert_eq!(d.retry_after, Duration::from_secs(29));
    assert!(l.reserve_now("a", &lim, est(50), T0 + 30_000).is_ok());
}

#[test]
fn estimate_larger_than_limit_is_flagged() {
    let l = InMemoryLimiter::default();
    let d = deny(&l, &tpm(100), 101, T0);
    assert!(d.exceeds_limit);
    assert_eq!((d.remaining, d.retry_after), (100, Duration::from_secs(60)));
    let d = deny(&l, &tpd(100), 101, T0 + 1_000);
    assert!(d.exceeds_limit);
    assert_eq!(d.limit, LimitKind::TokensPerDay);
    // refused first contact does not create state
    assert!(l.is_empty());
}

#[test]
fn unlimited_always_admits() {
    let l = InMemoryLimiter::default();
    for i in 0..1_000 {
        let r = l
            .reserve_now("a", &Limits::UNLIMITED, est(u64::MAX / 2), T0 + i)
            .unwrap();
        l.settle_now(r, u64::MAX / 2, T0 + i);
    }
}

#[test]
fn clock_going_backwards_is_harmless() {
    let l = InMemoryLimiter::default();
    let lim = Limits {
        requests_per_minute: Some(1),
        tokens_per_minute: None,
        tokens_per_day: Some(10),
    };
    let r = l.reserve_now("a", &lim, est(10), T0 + DAY).unwrap();
    l.settle_now(r, 10, T0 + DAY);
    assert!(l.reserve_now("a", &lim, est(0), T0).is_err());
    assert!(l.reserve_now("a", &lim, est(1), T0 + DAY + 60_000).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reservations_admit_exactly_the_limit() {
    for (limits, cost, n) in [
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
    ] {
        let limiter: Arc<dyn Limiter> = Arc::new(InMemoryLimiter::default());
        let barrier = Arc::new(tokio::sync::Barrier::new(200));
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let limiter = limiter.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    limiter.reserve("acct", &limits, est(cost), T0).await
                })
            })
            .collect();
        let mut ok = Vec::new();
        let mut denied = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(r) => ok.push(r),
                Err(_) => denied += 1,
            }
        }
        assert_eq!(ok.len() as u64, n, "{limits:?}");
        assert_eq!(denied, 200 - n);
        // releasing everything concurrently gives back all capacity
        let rel: Vec<_> = ok
            .into_iter()
            .map(|r| {
                let limiter = limiter.clone();
                tokio::spawn(async move { limiter.release(r, T0).await })
            })
            .collect();
        for t in rel {
            t.await.unwrap();
        }
        let r = limiter.reserve("acct", &limits, est(cost * n), T0).await;
        assert!(r.is_ok(), "{limits:?}");
    }
}

#[test]
fn eviction_keeps_memory_bounded() {
    let cfg = InMemoryConfig {
        shards: 4,
        max_accounts: 64,
        sweep_interval_ms: 1_000,
    };
    let l = InMemoryLimiter::new(cfg);
    assert_eq!(l.capacity(), 64);
    let lim = Limits {
        requests_per_minute: Some(100),
        tokens_per_minute: Some(1_000),
        tokens_per_day: None,
    };
    // 10 000 distinct accounts, each idle again 600 ms after its request
    for i in 0..10_000i64 {
        let now = T0 + i * 100;
        let r = l
            .reserve_now(&format!("acct-{i}"), &lim, est(100), now)
            .unwrap();
        l.settle_now(r, 1, now);
        assert!(l.len() <= 64);
    }
    let s = l.eviction_stats();
    // at most 6 accounts are busy at any time: no shard ever had to drop one
    assert_eq!(s.forced, 0, "{s:?}");
    assert!(s.idle > 9_900, "{s:?}");
    // everything idle can be swept losslessly
    assert!(l.evict_idle(T0 + 2_000_000) > 0);
    assert!(l.is_empty());
}

#[test]
fn idle_eviction_is_lossless_and_spares_busy_accounts() {
    let l = InMemoryLimiter::new(InMemoryConfig {
        shards: 1,
        max_accounts: 8,
        sweep_interval_ms: 0,
    });
    let lim = Limits {
        requests_per_minute: Some(1),
        tokens_per_minute: None,
        tokens_per_day: Some(100),
    };
    // in flight: must survive sweeps however old
    let busy = l.reserve_now("busy", &lim, est(10), T0).unwrap();
    // day usage not yet expired: must survive too
    let r = l.reserve_now("daily", &lim, est(60), T0).unwrap();
    l.settle_now(r, 60, T0);
    assert_eq!(l.evict_idle(T0 + 120_000), 0);
    assert_eq!(deny_acct(&l, "daily", &lim, 41, T0 + 120_000).remaining, 40);
    l.settle_now(busy, 10, T0 + 120_000);
    // next UTC day: both idle, both dropped without losing anything
    assert_eq!(l.evict_idle(T0 + DAY + 60_000), 2);
}

fn deny_acct(l: &InMemoryLimiter, a: &str, lim: &Limits, tokens: u64, now: i64) -> Denied {
    l.reserve_now(a, lim, est(tokens), now).unwrap_err()
}

#[test]
fn forced_eviction_when_full_and_stale_settle_is_ignored() {
    let l = InMemoryLimiter::new(InMemoryConfig {
        shards: 1,
        max_accounts: 2,
        sweep_interval_ms: 0,
    });
    let lim = rpm(1);
    let a = l.reserve_now("a", &lim, est(0), T0).unwrap();
    let _b = l.reserve_now("b", &lim, est(0), T0 + 1).unwrap();
    // shard full of busy accounts: the least recently seen one goes
    let _c = l.reserve_now("c", &lim, est(0), T0 + 2).unwrap();
    assert_eq!(l.len(), 2);
    assert_eq!(l.eviction_stats().forced, 1);
    // "a" starts fresh; settling its old reservation must not touch the new state
    let a2 = l.reserve_now("a", &lim, est(0), T0 + 3).unwrap();
    l.release_now(a, T0 + 3);
    assert!(l.reserve_now("a", &lim, est(0), T0 + 3).is_err());
    l.release_now(a2, T0 + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_releases_or_settles_on_drop() {
    use moat_limits::{unix_now_ms, ReservationGuard};
    let mem = Arc::new(InMemoryLimiter::default());
    let limiter: Arc<dyn Limiter> = mem.clone();
    let lim = Limits {
        requests_per_minute: Some(1),
        tokens_per_minute: None,
        tokens_per_day: Some(1_000),
    };
    let now = unix_now_ms();
    // dropped with nothing recorded: released in full (request slot included)
    let r = limiter.reserve("g", &lim, est(1_000), now).await.unwrap();
    drop(ReservationGuard::new(limiter.clone(), r));
    let mut ok = None;
    for _ in 0..100 {
        if let Ok(r) = limiter.reserve("g", &lim, est(1_000), now).await {
            ok = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // dropped after recording usage: settled with it (request stays counted);
    // 700 more tokens fit the day only once the 1 000 estimate became 300
    let mut g = ReservationGuard::new(limiter.clone(), ok.expect("released by the guard"));
    g.record_usage(300);
    drop(g);
    for _ in 0..100 {
        let d = limiter.reserve("g", &lim, est(700), now).await.unwrap_err();
        if d.limit == LimitKind::RequestsPerMinute {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let d = limiter.reserve("g", &lim, est(700), now).await.unwrap_err();
    assert_eq!(d.limit, LimitKind::RequestsPerMinute);
    let day = mem
        .reserve_now("g", &tpd(1_000), est(701), now)
        .unwrap_err();
    assert_eq!(day.remaining, 700);
}

#[test]
fn guard_without_runtime_finishes_inline() {
    use moat_limits::ReservationGuard;
    let limiter: Arc<dyn Limiter> = Arc::new(InMemoryLimiter::default());
    let lim = rpm(1);
    let r = block_ready(limiter.reserve("x", &lim, est(0), T0)).unwrap();
    drop(ReservationGuard::new(limiter.clone(), r));
    assert!(block_ready(limiter.reserve("x", &lim, est(0), T0)).is_ok());
}

/// Drive a future that never suspends.
fn block_ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("suspended"),
    }
}
