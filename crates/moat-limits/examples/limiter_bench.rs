//! Micro benchmark: nanoseconds per reserve + settle pair.
//!
//! Run with `cargo run --release -p moat-limits --example limiter_bench`.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use moat_limits::{Estimate, InMemoryLimiter, Limiter, Limits};

const ITERS: u64 = 2_000_000;

fn limits() -> Limits {
    // generous limits: every reservation is admitted, all three checks run
    Limits {
        requests_per_minute: Some(u32::MAX),
        tokens_per_minute: Some(1 << 40),
        tokens_per_day: Some(1 << 50),
    }
}

/// Poll a future that never suspends (the in-memory limiter never does).
fn now_or_never<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("in-memory limiter never suspends"),
    }
}

fn loop_inherent(l: &InMemoryLimiter, account: &str, iters: u64) {
    let lim = limits();
    for i in 0..iters {
        let now = 1_795_392_000_000 + (i / 1_000) as i64;
        let r = l
            .reserve_now(black_box(account), &lim, Estimate { tokens: 1_500 }, now)
            .unwrap();
        l.settle_now(r, black_box(700), now);
    }
}

fn loop_dyn(l: &dyn Limiter, account: &str, iters: u64) {
    let lim = limits();
    for i in 0..iters {
        let now = 1_795_392_000_000 + (i / 1_000) as i64;
        let r = now_or_never(l.reserve(black_box(account), &lim, Estimate { tokens: 1_500 }, now))
            .unwrap();
        now_or_never(l.settle(r, black_box(700), now));
    }
}

/// Run `f` on `threads` threads at once; report ns per pair per thread.
fn run(name: &str, threads: usize, f: impl Fn(usize) + Send + Sync + 'static) {
    let f = Arc::new(f);
    f(0); // warm up: create the accounts
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let f = f.clone();
            std::thread::spawn(move || f(t))
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let ns = start.elapsed().as_nanos() as f64 / ITERS as f64;
    println!(
        "{name:<44} {threads} thread(s): {ns:7.1} ns per reserve+settle per thread, {:6.2} M pairs/s total",
        threads as f64 * 1e3 / ns
    );
}

fn main() {
    let accounts = ["account-0", "account-1"];
    for threads in [1, 2] {
        let l = Arc::new(InMemoryLimiter::default());
        run("inherent, one account per thread", threads, {
            let l = l.clone();
            move |t| loop_inherent(&l, accounts[t], ITERS)
        });
        let l = Arc::new(InMemoryLimiter::default());
        run("inherent, all threads on one account", threads, {
            let l = l.clone();
            move |_| loop_inherent(&l, accounts[0], ITERS)
        });
        let l: Arc<dyn Limiter> = Arc::new(InMemoryLimiter::default());
        run("Arc<dyn Limiter>, one account per thread", threads, {
            let l = l.clone();
            move |t| loop_dyn(&*l, accounts[t], ITERS)
        });
    }
}
