//! moat-gateway: the HTTP gateway in front of a model server.
//!
//! It serves the OpenAI (`/v1/chat/completions`, `/v1/completions`,
//! `/v1/models`) and Anthropic (`/v1/messages`) APIs, authenticates API keys,
//! enforces key scopes and per-account limits, relays answers (streamed event
//! by event), and records every exchange in the audit log. See [`server::serve`].

pub mod api;
pub mod client_addr;
pub mod config;
pub mod detection;
pub mod embedded;
pub mod enforce;
pub mod error;
pub mod exchange;
pub mod gateway;
pub mod inspect;
pub mod logging;
pub mod metrics;
pub mod ops;
pub mod proxy;
pub mod routes;
pub mod scale_out;
pub mod server;
mod serving;
pub mod tls;
pub mod upstream;
pub mod watermark;
pub mod watermark_detect;
pub mod watermark_json;

pub use api::Api;
pub use config::Config;
pub use error::{Flavor, GatewayError};
pub use gateway::Gateway;
pub use inspect::{InspectOutcome, InspectRequest, Inspection, RequestInspector};
pub use server::{serve, start, Running, ServeOptions};
