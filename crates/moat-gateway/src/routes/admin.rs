//! Admin HTTP API (separate listener, `Authorization: Bearer <admin token>`):
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | `/admin/v1/accounts` | | `{"accounts":[...]}` |
//! | POST | `/admin/v1/accounts` | [`CreateAccount`] | 201, the account |
//! | GET | `/admin/v1/accounts/{id}` | | the account |
//! | POST | `/admin/v1/accounts/{id}/disable` | | the account (its keys are refused at once) |
//! | POST | `/admin/v1/accounts/{id}/enable` | | the account |
//! | PUT | `/admin/v1/accounts/{id}/limits` | `{"requests_per_minute","tokens_per_minute","tokens_per_day"}` (absent/null = `[limits]` default) | the account |
//! | GET | `/admin/v1/keys[?account=A]` | | `{"keys":[...]}` |
//! | POST | `/admin/v1/keys` | [`CreateKey`] | 201, `{"key":{...},"secret":"moat_..."}` |
//! | GET | `/admin/v1/keys/{id}` | | the key |
//! | POST | `/admin/v1/keys/{id}/revoke` | | the key |
//! | POST | `/admin/v1/keys/{id}/rotate` | [`RotateKey`] | 201, the new key and secret |
//! | GET | `/admin/v1/audit/verify` | | `{"ok":true,...}` |
//!
//!
//! The enforcement routes (`/admin/v1/risk`, `/admin/v1/clusters`, account overrides) are
//! listed in [`super::admin_enforce`]; `POST /admin/v1/watermark/detect` in
//! [`super::admin_watermark`].
//!
//! Errors: `{"error":{"message","code"}}` with 400/401/404/409/500.

use moat_bus::ControlMessage;
use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{Path, Query, Request, State},
    http::{header, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post, put},
    Json, Router,
};
use chrono::Utc;
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::gateway::Gateway;
use crate::ops::{self, CreateAccount, CreateKey, KeyView, OpsError, RotateKey};

/// Routes under `/admin/v1`, with the token check applied.
pub fn router(gw: Arc<Gateway>) -> axum::Router {
    Router::new()
        .route(
            "/admin/v1/accounts",
            get(list_accounts).post(create_account),
        )
        .route("/admin/v1/accounts/{id}", get(get_account))
        .route("/admin/v1/accounts/{id}/disable", post(disable_account))
        .route("/admin/v1/accounts/{id}/enable", post(enable_account))
        .route("/admin/v1/accounts/{id}/limits", put(set_limits))
        .route("/admin/v1/keys", get(list_keys).post(create_key))
        .route("/admin/v1/keys/{id}", get(get_key))
        .route("/admin/v1/keys/{id}/revoke", post(revoke_key))
        .route("/admin/v1/keys/{id}/rotate", post(rotate_key))
        .route("/admin/v1/audit/verify", get(verify_audit))
        .merge(super::admin_enforce::routes())
        .merge(super::admin_watermark::routes())
        .route_layer(middleware::from_fn_with_state(gw.clone(), require_token))
        .with_state(gw)
}

fn error(status: u16, code: &str, message: impl std::fmt::Display) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        Json(json!({"error": {"message": message.to_string(), "code": code}})),
    )
        .into_response()
}

impl IntoResponse for OpsError {
    fn into_response(self) -> Response {
        error(self.status(), self.code(), &self)
    }
}

/// Constant-time check of `Authorization: Bearer <admin token>`.
async fn require_token(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let Some(expected) = gw.config.server.admin_token.as_ref() else {
        return error(503, "admin_disabled", "no admin token configured");
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let ok: bool = presented
        .as_bytes()
        .ct_eq(expected.expose().as_bytes())
        .into();
    if !ok {
        crate::metrics::rejection("admin_unauthorized");
        return error(401, "unauthorized", "missing or wrong admin token");
    }
    next.run(req).await
}

fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, OpsError> {
    let src: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(src).map_err(|e| OpsError::Invalid(format!("invalid JSON body: {e}")))
}

async fn list_accounts(State(gw): State<Arc<Gateway>>) -> Result<Response, OpsError> {
    let accounts = gw.store.list_accounts().await?;
    Ok(Json(json!({ "accounts": accounts })).into_response())
}

async fn create_account(State(gw): State<Arc<Gateway>>, body: Bytes) -> Result<Response, OpsError> {
    let req: CreateAccount = parse_json(&body)?;
    let account = ops::create_account(&gw.store, req).await?;
    Ok((StatusCode::CREATED, Json(account)).into_response())
}

async fn get_account(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
) -> Result<Response, OpsError> {
    match gw.store.get_account(&id).await? {
        Some(a) => Ok(Json(a).into_response()),
        None => Err(OpsError::NotFound(format!("account {id:?} not found"))),
    }
}

async fn set_disabled(gw: &Gateway, id: &str, disabled: bool) -> Result<Response, OpsError> {
    let a = gw.store.set_account_disabled(id, disabled).await?;
    // Cached entries hold the account: drop them so the change applies at once.
    gw.auth.invalidate_all();
    gw.announce(ControlMessage::AccountChanged {
        account: id.to_string(),
    });
    tracing::info!(account = %id, disabled, "account updated");
    Ok(Json(a).into_response())
}

async fn disable_account(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
) -> Result<Response, OpsError> {
    set_disabled(&gw, &id, true).await
}

async fn enable_account(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
) -> Result<Response, OpsError> {
    set_disabled(&gw, &id, false).await
}

async fn set_limits(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, OpsError> {
    let limits: moat_store::AccountLimits = parse_json(&body)?;
    let a = gw.store.set_account_limits(&id, limits).await?;
    gw.auth.invalidate_all();
    gw.announce(ControlMessage::AccountChanged {
        account: id.to_string(),
    });
    tracing::info!(account = %id, "account limits updated");
    Ok(Json(a).into_response())
}

#[derive(Deserialize)]
struct KeyQuery {
    account: Option<String>,
}

async fn list_keys(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<KeyQuery>,
) -> Result<Response, OpsError> {
    let now = Utc::now();
    let keys: Vec<KeyView> = gw
        .store
        .list_keys(q.account.as_deref())
        .await?
        .iter()
        .map(|k| KeyView::new(k, now))
        .collect();
    Ok(Json(json!({ "keys": keys })).into_response())
}

async fn create_key(State(gw): State<Arc<Gateway>>, body: Bytes) -> Result<Response, OpsError> {
    let req: CreateKey = parse_json(&body)?;
    let new = ops::create_key(&gw.store, req, Utc::now()).await?;
    Ok((StatusCode::CREATED, Json(new)).into_response())
}

async fn get_key(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
) -> Result<Response, OpsError> {
    match gw.store.get_key(&id).await? {
        Some(k) => Ok(Json(KeyView::new(&k, Utc::now())).into_response()),
        None => Err(OpsError::NotFound(format!("API key {id:?} not found"))),
    }
}

async fn revoke_key(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
) -> Result<Response, OpsError> {
    let k = gw.store.revoke_key(&id).await?;
    gw.auth.invalidate(&id);
    gw.announce(ControlMessage::KeyChanged { key_id: id.clone() });
    tracing::info!(key_id = %id, "API key revoked");
    Ok(Json(KeyView::new(&k, Utc::now())).into_response())
}

async fn rotate_key(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, OpsError> {
    let req: RotateKey = parse_json(&body)?;
    let new = ops::rotate_key(&gw.store, &id, req, Utc::now()).await?;
    gw.auth.invalidate(&id);
    gw.announce(ControlMessage::KeyChanged { key_id: id.clone() });
    tracing::info!(key_id = %id, new_key_id = %new.key.id, "API key rotated");
    Ok((StatusCode::CREATED, Json(new)).into_response())
}

async fn verify_audit(State(gw): State<Arc<Gateway>>) -> Result<Response, OpsError> {
    let r = gw.store.verify_audit().await?;
    let status = if r.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    Ok((
        status,
        Json(json!({
            "ok": r.is_ok(),
            "records": r.records,
            "last_seq": r.last_seq,
            "head_hash": r.head_hash,
            "broken": r.broken.as_ref().map(|b| json!({"seq": b.seq, "reason": b.reason.to_string()})),
        })),
    )
        .into_response())
}
