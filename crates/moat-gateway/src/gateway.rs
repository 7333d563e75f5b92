//! The shared state of a running gateway.

use std::sync::Arc;

use moat_limits::{Limiter, Limits};
use moat_store::{Account, AuditHandle, KeyAuthenticator, Store};

use crate::config::Config;
use crate::inspect::RequestInspector;

use crate::upstream::Upstream;

/// Everything a request handler needs. Shared as `Arc<Gateway>`.
pub struct Gateway {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// The database.
    pub store: Store,
    /// Cached key lookups.
    pub auth: KeyAuthenticator,
    /// Per-account limits.
    pub limiter: Arc<dyn Limiter>,
    /// Audit log intake.
    pub audit: AuditHandle,
    /// The upstream model server.
    pub upstream: Upstream,
    /// Optional request inspection (detection engine).
    pub inspector: Option<Arc<dyn RequestInspector>>,
    /// The enforcement ladder (overrides, throttles, degradation, shadow mode).
    pub enforcer: crate::enforce::Enforcer,
    /// The text watermark policy (`[watermark]`).
    pub watermark: crate::watermark::Watermarker,
    /// Links to the other replicas and the detector workers (`[bus]`), if any.
    pub scale_out: Option<crate::scale_out::ScaleOut>,
    /// The Redis limiter, when it is the limiter (for health reports).
    pub redis_limiter: Option<Arc<moat_limits::RedisLimiter>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("upstream", &self.upstream.base)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Tells the other replicas (if any) about a change made here that they cache.
    pub fn announce(&self, msg: moat_bus::ControlMessage) {
        if let Some(so) = &self.scale_out {
            so.announce(msg);
        }
    }

    /// The limits that apply to `account`: its own, falling back to the configured defaults.
    pub fn limits_for(&self, account: &Account) -> Limits {
        let d = &self.config.limits;
        let a = &account.limits;
        Limits {
            requests_per_minute: a
                .requests_per_minute
                .or_else(|| d.requests_per_minute.map(|v| v.min(u32::MAX as u64) as u32)),
            tokens_per_minute: a.tokens_per_minute.or(d.tokens_per_minute),
            tokens_per_day: a.tokens_per_day.or(d.tokens_per_day),
        }
    }
}
