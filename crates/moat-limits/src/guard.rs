//! Drop-safe ownership of a [`Reservation`].
//!
//! axum drops a handler's future (and a response body stream) when the client
//! disconnects, so a bare [`Reservation`] held there would leak: its per-minute
//! hold never drains. [`ReservationGuard`] finishes the reservation on drop.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::limiter::Limiter;
use crate::types::Reservation;

/// Current wall-clock time as unix milliseconds (the `now_ms` the limiter expects).
pub fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Owns a [`Reservation`] and guarantees it is settled or released exactly once.
///
/// If dropped unfinished, it settles with the usage last passed to
/// [`record_usage`](Self::record_usage), or releases when none was recorded
/// (nothing generated). That clean-up runs on the current tokio runtime
/// (`tokio::spawn`), or inline when there is none and the limiter completes
/// without suspending (the in-memory one always does).
pub struct ReservationGuard {
    limiter: Arc<dyn Limiter>,
    reservation: Option<Reservation>,
    used: Option<u64>,
}

impl std::fmt::Debug for ReservationGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReservationGuard")
            .field("reservation", &self.reservation)
            .field("used", &self.used)
            .finish_non_exhaustive()
    }
}

impl ReservationGuard {
    /// Take ownership of `reservation`, obtained from `limiter`.
    pub fn new(limiter: Arc<dyn Limiter>, reservation: Reservation) -> Self {
        ReservationGuard {
            limiter,
            reservation: Some(reservation),
            used: None,
        }
    }

    /// The guarded reservation.
    pub fn reservation(&self) -> &Reservation {
        self.reservation
            .as_ref()
            .expect("reservation present until finished")
    }

    /// Record the tokens consumed so far (e.g. while streaming); used if the
    /// guard is dropped without [`settle`](Self::settle).
    pub fn record_usage(&mut self, tokens_so_far: u64) {
        self.used = Some(tokens_so_far);
    }

    /// Settle with the real usage.
    pub async fn settle(mut self, actual_tokens: u64, now_ms: i64) {
        if let Some(r) = self.reservation.take() {
            self.limiter.settle(r, actual_tokens, now_ms).await;
        }
    }

    /// Release in full (nothing generated).
    pub async fn release(mut self, now_ms: i64) {
        if let Some(r) = self.reservation.take() {
            self.limiter.release(r, now_ms).await;
        }
    }
}

impl Drop for ReservationGuard {
    fn drop(&mut self) {
        let Some(r) = self.reservation.take() else {
            return;
        };
        let limiter = self.limiter.clone();
        let used = self.used;
        let now = unix_now_ms();
        let finish = async move {
            match used {
                Some(u) => limiter.settle(r, u, now).await,
                None => limiter.release(r, now).await,
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(finish);
            }
            Err(_) => {
                let mut finish = pin!(finish);
                // A limiter that suspends cannot be driven without a runtime;
                // then the reservation leaks (its day charge and minute hold stay).
                if finish
                    .as_mut()
                    .poll(&mut Context::from_waker(Waker::noop()))
                    .is_pending()
                {
                    // dropping the pending future abandons the clean-up
                }
            }
        }
    }
}
