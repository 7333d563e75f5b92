//! The backend-independent limiter interface.

use crate::types::{Denied, Estimate, Limits, Reservation};

/// Per-account rate limiter with estimate-then-settle accounting.
///
/// Protocol for one request:
/// 1. [`reserve`](Self::reserve) before forwarding: 1 request + the estimate.
/// 2. Exactly one of
///    * [`settle`](Self::settle) with the real usage once it is known
///      (refunds or charges the difference; the request slot stays used), or
///    * [`release`](Self::release) when nothing was generated (upstream error,
///      client gone before the first token); everything is given back.
///      Call `settle(r, 0, now)` instead to keep the request counted.
///
/// Each step is a single atomic read-modify-write of one account's state, so
/// a shared-store backend (Redis, Postgres) implements each as one script or
/// one `UPDATE ... RETURNING`. The clock is an argument (`now_ms`, unix
/// milliseconds, UTC) so behaviour is deterministic and replicas can share it.
#[async_trait::async_trait]
pub trait Limiter: Send + Sync + 'static {
    /// Atomically check all configured limits and, if every one admits the
    /// request, charge all of them; otherwise charge nothing and report the
    /// binding limit.
    async fn reserve(
        &self,
        account: &str,
        limits: &Limits,
        estimate: Estimate,
        now_ms: i64,
    ) -> Result<Reservation, Denied>;

    /// Finish a reservation with the real token usage (prompt + completion).
    async fn settle(&self, reservation: Reservation, actual_tokens: u64, now_ms: i64);

    /// Give a reservation back in full (request slot and tokens).
    async fn release(&self, reservation: Reservation, now_ms: i64);
}
