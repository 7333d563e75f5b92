//! The in-process HTTP service: the OpenAI and Anthropic API shapes over one [`Model`].
//!
//! Routes (the same as an upstream model server): `POST /v1/chat/completions`,
//! `POST /v1/completions`, `GET /v1/models`, `GET /v1/models/{id}`, `POST /v1/messages`,
//! `GET /healthz`.
//!
//! **Concurrency**: one generation at a time per model. Requests wait in a bounded queue
//! (`BackendConfig::queue`) and a dedicated OS thread owns the model and runs them in order;
//! the matrix work runs on the model's own thread pool, never on the async executor. A request
//! whose client has gone away is cancelled at its next token.

mod anthropic;
mod openai;

use crate::generate::{Delta, GenOutput, GenRequest, Model};
use crate::watermark::SamplerMark;
use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Configuration of the embedded backend.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// Path of the GGUF model file.
    pub model_path: PathBuf,
    /// The model id reported by `/v1/models` (requests may name any model; it is echoed).
    pub model_id: String,
    /// Worker threads for the matrix work (0 = all cores).
    pub threads: usize,
    /// Expand quantised weights to f32 at load (faster on portable builds, more memory).
    pub dequantize: bool,
    /// Requests waiting for the model beyond the one running; more wait for a queue slot.
    pub queue: usize,
    /// `max_tokens` when an OpenAI request omits it.
    pub default_max_tokens: usize,
    /// The sampler watermark applied to every generation, if any.
    pub watermark: Option<SamplerMark>,
    /// When set, requests must carry this key (`Authorization: Bearer` or `x-api-key`).
    pub required_key: Option<String>,
}

impl BackendConfig {
    /// Defaults for a model file: id from the file stem, all cores, queue 64, 256 tokens.
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        let model_path = model_path.into();
        let model_id = model_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "embedded".into());
        Self {
            model_path,
            model_id,
            threads: 0,
            dequantize: true,
            queue: 64,
            default_max_tokens: 256,
            watermark: None,
            required_key: None,
        }
    }
}

/// What the model thread reports for one job.
pub(crate) enum Event {
    /// Generation is starting; the prompt length in tokens.
    Started(usize),
    Delta(Delta),
    Done(Result<GenOutput, String>),
}

struct Job {
    req: GenRequest,
    events: mpsc::UnboundedSender<Event>,
}

#[derive(Clone)]
pub(crate) struct AppState {
    jobs: mpsc::Sender<Job>,
    pub(crate) model_id: Arc<str>,
    pub(crate) default_max_tokens: usize,
    required_key: Option<Arc<str>>,
}

impl AppState {
    /// Queues a generation; the receiver yields deltas then exactly one `Done`.
    pub(crate) async fn submit(
        &self,
        req: GenRequest,
    ) -> Result<mpsc::UnboundedReceiver<Event>, String> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.jobs
            .send(Job { req, events: tx })
            .await
            .map_err(|_| "the model worker has stopped".to_string())?;
        Ok(rx)
    }

    /// Runs a generation to completion (non-streaming).
    pub(crate) async fn complete(&self, req: GenRequest) -> Result<GenOutput, String> {
        let mut rx = self.submit(req).await?;
        while let Some(ev) = rx.recv().await {
            if let Event::Done(r) = ev {
                return r;
            }
        }
        Err("the model worker dropped the request".into())
    }
}

/// Loads the model and starts the service on `127.0.0.1:0`. Returns the bound address and the
/// server task. The model is loaded on a blocking thread; generation runs on a dedicated one.
pub async fn spawn_backend(cfg: BackendConfig) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let path = cfg.model_path.clone();
    let (threads, mark, deq) = (cfg.threads, cfg.watermark.clone(), cfg.dequantize);
    let model = tokio::task::spawn_blocking(move || Model::load_with(&path, threads, mark, deq))
        .await
        .context("model loader panicked")??;
    let (jobs, rx) = mpsc::channel::<Job>(cfg.queue.max(1));
    let (ready_tx, ready_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("moat-backend-model".into())
        .spawn(move || worker(model, rx, ready_tx))
        .context("starting the model thread")?;
    ready_rx.await.context("model thread failed to start")?;
    let state = AppState {
        jobs,
        model_id: cfg.model_id.clone().into(),
        default_max_tokens: cfg.default_max_tokens,
        required_key: cfg.required_key.clone().map(Into::into),
    };
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let app = router(state);
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "embedded backend stopped");
        }
    });
    tracing::info!(%addr, model = %cfg.model_path.display(), "embedded model backend listening");
    Ok((addr, handle))
}

fn worker(mut model: Model, mut rx: mpsc::Receiver<Job>, ready: oneshot::Sender<()>) {
    let _ = ready.send(());
    while let Some(job) = rx.blocking_recv() {
        if job.events.is_closed() {
            continue; // the client left while queued
        }
        let events = job.events.clone();
        let res = model.encode_prompt(&job.req.prompt).and_then(|ids| {
            let _ = events.send(Event::Started(ids.len()));
            model.generate_from_ids(ids, &job.req, move |d| events.send(Event::Delta(d)).is_ok())
        });
        let _ = job
            .events
            .send(Event::Done(res.map_err(|e| format!("{e:#}"))));
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{*id}", get(openai::model))
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/messages", post(anthropic::messages))
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            check_key,
        ))
        .with_state(state)
}

async fn check_key(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(key) = &st.required_key {
        let h = req.headers();
        let bearer = h
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let xkey = h.get("x-api-key").and_then(|v| v.to_str().ok());
        if req.uri().path() != "/healthz" && bearer != Some(key) && xkey != Some(key) {
            let body = serde_json::json!({"error": {"message": "invalid upstream key",
                "type": "authentication_error"}});
            return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
        }
    }
    next.run(req).await
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A short random id with a prefix (`chatcmpl-…`, `msg_…`).
pub(crate) fn new_id(prefix: &str) -> String {
    use rand::Rng;
    let n: u128 = rand::thread_rng().gen();
    format!("{prefix}{:024x}", n & ((1u128 << 96) - 1))
}

/// A stop-sequence list from a JSON string or array of strings.
pub(crate) fn stop_list(v: Option<&serde_json::Value>) -> Vec<String> {
    match v {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Message content as text: a string, or the concatenated `text` of content parts/blocks.
pub(crate) fn content_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}
