//! Anthropic-compatible route: `/v1/messages`.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::{ConnectInfo, Request, State},
    response::Response,
};

use crate::api::Api;
use crate::gateway::Gateway;
use crate::proxy::forward::proxy;

/// `POST /v1/messages`
pub async fn messages(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    proxy(gw, Api::AnthropicMessages, peer, parts, body).await
}
