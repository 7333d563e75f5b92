//! One request/response exchange as the gateway sees it.
//!
//! An [`Exchange`] is created when a request arrives and collects everything
//! the audit log and the metrics need. Whatever happens next (a rejection, an
//! upstream failure, a complete answer, or the client hanging up in the middle
//! of a stream) its `Drop` writes exactly one audit record (off the hot path,
//! through the batched [`moat_store::AuditHandle`]), updates the metrics, and
//! gives back or settles any limiter reservation still held.

use std::{net::IpAddr, sync::Arc, time::Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use moat_limits::Reservation;
use moat_store::{AuditRecord, AuthedKey};

use crate::api::Api;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::inspect::InspectOutcome;
use crate::metrics;
use crate::proxy::usage::Outcome;

/// Where the response is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before a response was produced.
    Pending,
    /// A stream is being relayed.
    Streaming,
    /// The response is complete (or was an error).
    Done,
}

/// Audit/metrics/limits guard for one exchange. See the module docs.
pub struct Exchange {
    gw: Arc<Gateway>,
    api: Api,
    started: Instant,
    ts: DateTime<Utc>,
    ip: Option<IpAddr>,
    user_agent: String,
    account: Option<String>,
    key_id: Option<String>,
    model: Option<String>,
    stream: bool,
    body: Bytes,
    status: u16,
    error: Option<&'static str>,
    decision: Option<serde_json::Value>,
    /// Detection features and account metadata, for the exchange event (`[bus]`).
    features: Option<Box<moat_detect::RequestFeatures>>,
    meta: moat_bus::EventMeta,
    outcome: Outcome,
    reservation: Option<Reservation>,
    phase: Phase,
}

impl Exchange {
    /// Starts recording an exchange.
    pub fn new(gw: Arc<Gateway>, api: Api, ip: Option<IpAddr>, user_agent: &str) -> Self {
        let mut ua = user_agent;
        if ua.len() > 512 {
            let mut end = 512;
            while !ua.is_char_boundary(end) {
                end -= 1;
            }
            ua = &ua[..end];
        }
        Self {
            gw,
            api,
            started: Instant::now(),
            ts: Utc::now(),
            ip,
            user_agent: ua.to_string(),
            account: None,
            key_id: None,
            model: None,
            stream: false,
            body: Bytes::new(),
            status: 0,
            error: None,
            decision: None,
            features: None,
            meta: moat_bus::EventMeta::default(),
            outcome: Outcome::default(),
            reservation: None,
            phase: Phase::Pending,
        }
    }

    /// The API of this exchange.
    pub fn api(&self) -> Api {
        self.api
    }

    /// Arrival time.
    pub fn ts(&self) -> DateTime<Utc> {
        self.ts
    }

    /// Time since arrival.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Records who is calling.
    pub fn set_key(&mut self, authed: &AuthedKey) {
        self.account = Some(authed.account.id.clone());
        self.key_id = Some(authed.key.id.clone());
        self.meta = moat_bus::EventMeta {
            created_ms: Some(authed.account.created_at.timestamp_millis()),
            verified: Some(authed.account.verified),
        };
    }

    /// Keeps the request's detection features for the exchange event.
    pub fn set_features(&mut self, f: Box<moat_detect::RequestFeatures>) {
        self.features = Some(f);
    }

    /// Records the request body (kept by reference count, no copy).
    pub fn set_body(&mut self, body: Bytes) {
        self.body = body;
    }

    /// Records the parsed request fields.
    pub fn set_request(&mut self, model: &str, stream: bool) {
        self.model = Some(model.to_string());
        self.stream = stream;
    }

    /// Attaches a detection decision to the record.
    pub fn set_decision(&mut self, decision: serde_json::Value) {
        self.decision = Some(decision);
    }

    /// The detection decision attached so far (the ladder adds its outcome to it).
    pub fn decision_mut(&mut self) -> Option<&mut serde_json::Value> {
        self.decision.as_mut()
    }

    /// Holds a limiter reservation until the exchange settles.
    pub fn hold(&mut self, r: Reservation) {
        self.reservation = Some(r);
    }

    /// The usage/text accumulator.
    pub fn outcome_mut(&mut self) -> &mut Outcome {
        &mut self.outcome
    }

    /// Marks the exchange as failed with `err` (rejection or upstream failure).
    /// Releases a held reservation in the background.
    pub fn fail(&mut self, err: &GatewayError) {
        self.status = err.status().as_u16();
        self.error = Some(err.code());
        if !err.from_upstream() {
            metrics::rejection(err.code());
        }
        self.phase = Phase::Done;
    }

    /// Marks a complete non-streamed answer with `status`, and settles the limiter.
    pub async fn completed(&mut self, status: u16) {
        self.status = status;
        self.phase = Phase::Done;
        self.settle().await;
    }

    /// Marks the start of a streamed answer.
    pub fn streaming(&mut self, status: u16) {
        self.status = status;
        self.phase = Phase::Streaming;
    }

    /// A stream reached its end. `upstream_error`: the upstream sent an error event.
    pub async fn stream_completed(&mut self, upstream_error: bool) {
        if upstream_error {
            self.error = Some("upstream_stream_error");
        }
        self.phase = Phase::Done;
        self.settle().await;
    }

    /// A stream broke off (upstream failure or idle timeout).
    pub async fn stream_failed(&mut self, err: &GatewayError) {
        tracing::warn!(api = self.api.name(), code = err.code(), error = %err, "stream failed midway");
        self.error = Some(err.code());
        self.phase = Phase::Done;
        self.settle().await;
    }

    /// Tokens to charge: the upstream's numbers, or estimates where it gave none.
    fn tokens_used(&self) -> (u64, u64) {
        let input = self
            .outcome
            .input_tokens
            .unwrap_or_else(|| moat_limits::estimate_prompt_tokens(self.body.len()));
        let output = self.outcome.output_tokens.unwrap_or(
            self.outcome
                .text_events
                .max(self.outcome.text_bytes.div_ceil(4)),
        );
        (input, output)
    }

    fn generated_anything(&self) -> bool {
        self.outcome.output_tokens.is_some()
            || self.outcome.text_bytes > 0
            || self.outcome.input_tokens.is_some()
    }

    /// Settles (or releases, when nothing was generated) the reservation now. A remote
    /// limiter (Redis) settles in the background, so the only limiter round trip on the
    /// request path is the reservation.
    pub async fn settle(&mut self) {
        if let Some(r) = self.reservation.take() {
            let now = Utc::now().timestamp_millis();
            let used = self.generated_anything().then(|| {
                let (i, o) = self.tokens_used();
                i + o
            });
            let limiter = self.gw.limiter.clone();
            let finish = async move {
                match used {
                    Some(n) => limiter.settle(r, n, now).await,
                    None => limiter.release(r, now).await,
                }
            };
            if self.gw.redis_limiter.is_some() {
                tokio::spawn(finish);
            } else {
                finish.await;
            }
        }
    }

    fn record(&mut self) {
        if self.phase == Phase::Streaming {
            self.error = Some("client_disconnected");
        } else if self.phase == Phase::Pending && self.status == 0 {
            self.status = 499;
            self.error = Some("client_disconnected");
        }
        // Anything still held: settle/release in the background (Drop cannot await).
        if let Some(r) = self.reservation.take() {
            let limiter = self.gw.limiter.clone();
            let now = Utc::now().timestamp_millis();
            let used = self.generated_anything().then(|| {
                let (i, o) = self.tokens_used();
                i + o
            });
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    match used {
                        Some(n) => limiter.settle(r, n, now).await,
                        None => limiter.release(r, now).await,
                    }
                });
            }
        }
        let latency = self.started.elapsed();
        // Upstream numbers where given; estimates where a stream broke off early.
        let (input, output) = if self.generated_anything() {
            self.tokens_used()
        } else {
            (0, 0)
        };
        metrics::request(self.api, self.status, latency, input, output);
        if let (Some(inspector), Some(account)) = (&self.gw.inspector, &self.account) {
            inspector.observe(&InspectOutcome {
                account,
                status: self.status,
                input_tokens: input,
                output_tokens: output,
                finish_reason: self.outcome.finish_reason.as_deref(),
            });
        }
        tracing::debug!(
            api = self.api.name(),
            status = self.status,
            account = self.account.as_deref().unwrap_or(""),
            key_id = self.key_id.as_deref().unwrap_or(""),
            error = self.error.unwrap_or(""),
            input_tokens = input,
            output_tokens = output,
            latency_ms = latency.as_millis() as u64,
            "exchange"
        );
        self.publish_event(input, output);
        let cfg = &self.gw.config.audit;
        let body = if self.body.len() > cfg.request_body_max_bytes {
            let mut end = cfg.request_body_max_bytes;
            while end > 0 && (self.body[end] & 0xC0) == 0x80 {
                end -= 1;
            }
            String::from_utf8_lossy(&self.body[..end]).into_owned()
        } else {
            String::from_utf8_lossy(&self.body).into_owned()
        };
        let rec = AuditRecord {
            ts: self.ts,
            account: self.account.take(),
            key_id: self.key_id.take(),
            ip: self.ip.map(|i| i.to_string()).unwrap_or_default(),
            user_agent: std::mem::take(&mut self.user_agent),
            api: self.api.name().to_string(),
            model: self.model.take(),
            stream: self.stream,
            request_body: body,
            status: self.status,
            finish_reason: self.outcome.finish_reason.take(),
            input_tokens: input,
            output_tokens: output,
            response_text: (!self.outcome.text.is_empty())
                .then(|| std::mem::take(&mut self.outcome.text)),
            latency_ms: latency.as_millis() as u64,
            error: self.error.map(str::to_string),
            decision: self.decision.take(),
        };
        self.gw.audit.record(rec);
    }
}

impl Exchange {
    /// Publishes the exchange for the detector workers (`[bus]`), when the engine scored it.
    fn publish_event(&mut self, input_tokens: u64, output_tokens: u64) {
        let (Some(so), Some(features), Some(account)) =
            (&self.gw.scale_out, self.features.take(), &self.account)
        else {
            return;
        };
        so.publish(moat_bus::ExchangeEvent {
            replica: so.replica().to_string(),
            seq: so.next_seq(),
            ts_us: self.ts.timestamp_micros(),
            account: account.clone(),
            meta: std::mem::take(&mut self.meta),
            features: *features,
            outcome: moat_bus::EventOutcome {
                status: self.status,
                finish_reason: self.outcome.finish_reason.clone(),
                input_tokens,
                output_tokens,
            },
        });
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.record();
    }
}
