//! This replica's links to the others and to the detector workers (`[bus]`).
//!
//! * Every authenticated exchange that the detection engine scored is published, once it is
//!   complete, as a [`moat_bus::ExchangeEvent`] (features, not prompts) for the `moat detect`
//!   workers ([`ScaleOut::publish`]; the request path only pushes onto a bounded queue).
//! * Worker verdicts (the account's assessment over *all* its traffic, on every replica) are
//!   watched and installed into this replica's inline engine
//!   ([`crate::inspect::RequestInspector::set_external`]): each request is then decided on the
//!   higher of what this replica saw and what the workers concluded, with the request's own
//!   content signals acting inline as before.
//! * Changes made here that other replicas cache (a revoked key, a disabled account, an
//!   override) are announced on the control subject; changes announced by others drop the
//!   matching cache entries here at once. Every such cache also expires on its own TTL
//!   (`[auth] cache_ttl`), so a lost message costs staleness, not correctness.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use moat_bus::{
    Bus, Control, ControlMessage, EventPublisher, ExchangeEvent, PublisherHealth, Verdicts,
};

use crate::config::BusSettings;
use crate::gateway::Gateway;

/// The links. See the module docs.
#[derive(Debug)]
pub struct ScaleOut {
    replica: String,
    bus: Bus,
    publisher: EventPublisher,
    control: Control,
    verdicts_applied: std::sync::atomic::AtomicU64,
    last_verdict: parking_lot::Mutex<Option<VerdictLag>>,
}

/// When the newest verdict was published by its worker and installed here.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerdictLag {
    /// The account.
    pub account: String,
    /// The worker's wall clock when it published the verdict, ms since the epoch.
    pub published_ms: i64,
    /// This replica's wall clock when it installed it, ms since the epoch.
    pub applied_ms: i64,
}

impl ScaleOut {
    /// Connects (in the background if NATS is down: the gateway serves meanwhile and reports
    /// itself degraded) and starts the event publisher.
    pub async fn connect(s: &BusSettings) -> anyhow::Result<ScaleOut> {
        let bus = Bus::connect(s.bus.clone(), false).await?;
        Ok(ScaleOut {
            replica: s.replica.clone(),
            publisher: EventPublisher::spawn(bus.clone()),
            control: Control::new(bus.clone()),
            bus,
            verdicts_applied: Default::default(),
            last_verdict: Default::default(),
        })
    }

    /// This replica's id.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// The next event sequence number of this replica.
    pub fn next_seq(&self) -> u64 {
        self.publisher.next_seq()
    }

    /// Queues an exchange event (never blocks; dropped and counted when the queue is full).
    pub fn publish(&self, ev: ExchangeEvent) {
        self.publisher.publish(ev);
    }

    /// Tells the other replicas about a change made here (in the background).
    pub fn announce(&self, msg: ControlMessage) {
        let a = self.announcer();
        tokio::spawn(async move { a.send(msg).await });
    }

    /// A handle that announces changes from a task of its own.
    pub fn announcer(&self) -> Announcer {
        Announcer {
            control: self.control.clone(),
            origin: self.replica.clone(),
        }
    }

    /// The publisher's state, for `/healthz`.
    pub fn health(&self) -> PublisherHealth {
        self.publisher.health()
    }

    /// Worker verdicts installed since start.
    pub fn verdicts_applied(&self) -> u64 {
        self.verdicts_applied
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The newest verdict installed: its account, and when it was published and applied.
    pub fn last_verdict(&self) -> Option<VerdictLag> {
        self.last_verdict.lock().clone()
    }

    fn applied(&self, account: &str, published_ms: i64) {
        let now = chrono::Utc::now().timestamp_millis();
        self.verdicts_applied
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        metrics::counter!("moat_worker_verdicts_applied_total").increment(1);
        metrics::histogram!("moat_worker_verdict_lag_seconds")
            .record((now - published_ms).max(0) as f64 / 1000.0);
        *self.last_verdict.lock() = Some(VerdictLag {
            account: account.to_string(),
            published_ms,
            applied_ms: now,
        });
    }

    /// Starts the control-message and verdict watchers for `gw` (they hold a weak reference
    /// and stop with the gateway).
    pub fn spawn_watchers(gw: &Arc<Gateway>) {
        let Some(so) = gw.scale_out.as_ref() else {
            return;
        };
        let weak = Arc::downgrade(gw);
        let control = so.control.clone();
        let me = so.replica.clone();
        tokio::spawn(retrying("control messages", move || {
            let weak = weak.clone();
            let control = control.clone();
            let me = me.clone();
            async move {
                let mut msgs = Box::pin(control.subscribe().await?);
                while let Some((origin, msg)) = msgs.next().await {
                    let Some(gw) = weak.upgrade() else {
                        return Ok(());
                    };
                    if origin != me {
                        apply_control(&gw, &msg);
                    }
                }
                anyhow::bail!("the control subscription ended")
            }
        }));
        let weak = Arc::downgrade(gw);
        let bus = so.bus.clone();
        tokio::spawn(retrying("worker verdicts", move || {
            let weak = weak.clone();
            let bus = bus.clone();
            async move {
                let verdicts = Verdicts::open(&bus).await?;
                let mut feed = Box::pin(verdicts.watch().await?);
                while let Some(item) = feed.next().await {
                    let Some(gw) = weak.upgrade() else {
                        return Ok(());
                    };
                    match item {
                        Ok((_, Some(v))) => {
                            if let Some(i) = &gw.inspector {
                                i.set_external(&v.account, Some(v.view));
                                if let Some(so) = &gw.scale_out {
                                    so.applied(&v.account, v.updated_ms);
                                }
                            }
                        }
                        Ok((key, None)) => {
                            if let (Some(i), Some(account)) =
                                (&gw.inspector, moat_bus::account_of_key(&key))
                            {
                                i.set_external(&account, None);
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "skipping a verdict"),
                    }
                }
                anyhow::bail!("the verdict watch ended")
            }
        }));
    }

    /// Waits (at most `timeout`) for queued events to be acknowledged; whether they were.
    pub async fn flush(&self, timeout: Duration) -> bool {
        self.publisher.flush(timeout).await
    }
}

/// Sends control messages on behalf of this replica.
#[derive(Debug, Clone)]
pub struct Announcer {
    control: Control,
    origin: String,
}

impl Announcer {
    /// Sends `msg`; a failure is logged (the others pick the change up within their cache TTL).
    pub async fn send(&self, msg: ControlMessage) {
        if let Err(e) = self.control.send(&self.origin, &msg).await {
            tracing::warn!(error = %e, ?msg, "announcing a change to the other replicas failed; they pick it up within [auth] cache_ttl");
        }
    }
}

/// Applies another replica's change to this replica's caches.
fn apply_control(gw: &Gateway, msg: &ControlMessage) {
    tracing::debug!(?msg, "change announced by another replica");
    match msg {
        ControlMessage::KeyChanged { key_id } => gw.auth.invalidate(key_id),
        ControlMessage::AccountChanged { .. } => gw.auth.invalidate_all(),
        ControlMessage::OverrideChanged { account } => gw.enforcer.forget_override(account),
    }
    metrics::counter!("moat_control_messages_applied_total").increment(1);
}

/// Runs `task` again (with backoff) whenever it fails, until it returns `Ok`.
async fn retrying<F, Fut>(what: &'static str, task: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        match task().await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "{what}: retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
