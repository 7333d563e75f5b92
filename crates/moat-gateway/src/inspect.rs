//! The seam where request inspection (the detection engine) plugs into the
//! request pipeline. It runs after authentication and scope checks, before
//! rate limits and forwarding, and sees every completed exchange afterwards.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use moat_store::{Account, KeyRecord};

use crate::api::Api;

/// What an inspector sees of a request.
#[derive(Debug)]
pub struct InspectRequest<'a> {
    /// Arrival time.
    pub ts: DateTime<Utc>,
    /// The caller's account.
    pub account: &'a Account,
    /// The key used.
    pub key: &'a KeyRecord,
    /// Client address.
    pub ip: Option<IpAddr>,
    /// Client user agent.
    pub user_agent: &'a str,
    /// Which API.
    pub api: Api,
    /// Requested model.
    pub model: &'a str,
    /// The request body exactly as sent.
    pub body: &'a [u8],
    /// The body in the detection engine's view, parsed once by the gateway (which refused
    /// bodies that do not fit it); `None` from callers that did not parse it.
    pub view: Option<&'a moat_detect::RequestView<'a>>,
}

/// An inspector's verdict on one request.
#[derive(Debug, Default)]
pub struct Inspection {
    /// Refuse the request (HTTP 403 `request_blocked`) with this reason.
    pub block: Option<String>,
    /// Decision to store in the audit record (e.g. `{"action":"allow","risk":0.02}`).
    pub decision: Option<serde_json::Value>,
    /// The request's detection features, published to the detector workers with the
    /// exchange when several replicas run (`[bus]`).
    pub features: Option<Box<moat_detect::RequestFeatures>>,
}

/// What an inspector learns when an exchange ends.
#[derive(Debug)]
pub struct InspectOutcome<'a> {
    /// Account id.
    pub account: &'a str,
    /// HTTP status returned.
    pub status: u16,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Finish reason, if any.
    pub finish_reason: Option<&'a str>,
}

/// Hook for request inspection (detection). Implementations must be fast and
/// must not block: they run on the request path.
pub trait RequestInspector: Send + Sync + 'static {
    /// Decides on a request before it is forwarded.
    fn inspect(&self, req: &InspectRequest<'_>) -> Inspection;
    /// Learns the outcome of every exchange of an authenticated account, refused
    /// ones included (status 4xx), once its response is complete.
    fn observe(&self, _outcome: &InspectOutcome<'_>) {}
    /// The inspector's current per-account reports (risk, verdict, cluster, reasons), for
    /// the admin API; empty when it keeps none.
    fn account_reports(&self) -> Vec<moat_detect::AccountReport> {
        Vec::new()
    }
    /// Installs (or removes) what the detector workers concluded about `account` over its
    /// traffic on every replica; later requests are decided on the higher of the two.
    fn set_external(&self, _account: &str, _view: Option<moat_detect::ExternalView>) {}
}
