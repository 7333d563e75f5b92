//! OpenAI-compatible routes: `/v1/chat/completions`, `/v1/completions`, `/v1/models`.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::{ConnectInfo, Request, State},
    response::Response,
};

use crate::api::Api;
use crate::gateway::Gateway;
use crate::proxy::forward::proxy;

/// `POST /v1/chat/completions`
pub async fn chat(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    proxy(gw, Api::OpenAiChat, peer, parts, body).await
}

/// `POST /v1/completions`
pub async fn completions(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    proxy(gw, Api::OpenAiCompletions, peer, parts, body).await
}

/// `GET /v1/models` and `GET /v1/models/{id}`
pub async fn models(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    proxy(gw, Api::OpenAiModels, peer, parts, body).await
}
