//! Admin API of the enforcement ladder (same listener and token as [`super::admin`]):
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | `/admin/v1/risk[?limit=N]` | | `{"shadow":bool,"accounts":[...]}` ranked by risk (live engine) |
//! | GET | `/admin/v1/clusters` | | `{"clusters":[...]}` |
//! | GET | `/admin/v1/clusters/{id}` | | one cluster |
//! | GET | `/admin/v1/enforcement` | | `{"overrides":[...]}` (persisted) |
//! | POST | `/admin/v1/accounts/{id}/allow` | `{"reason"}` (optional) | the override: the engine never restricts the account |
//! | POST | `/admin/v1/accounts/{id}/block` | `{"reason"}` | the override: 403 `account_blocked` |
//! | POST | `/admin/v1/accounts/{id}/challenge` | `{"reason"}` | the override: 403 `account_verification_required` |
//! | POST | `/admin/v1/accounts/{id}/unblock` | | `{"override":null}`: the engine decides again |
//!
//! Overrides made here take effect at once in this gateway.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use moat_detect::Action;
use serde::Deserialize;
use serde_json::json;

use crate::enforce::report::{clusters, rank, AccountRisk};
use crate::gateway::Gateway;
use crate::ops::OpsError;

/// The routes (without the token layer: [`super::admin::router`] adds them before it).
pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/admin/v1/risk", get(risk))
        .route("/admin/v1/clusters", get(list_clusters))
        .route("/admin/v1/clusters/{id}", get(get_cluster))
        .route("/admin/v1/enforcement", get(list_overrides))
        .route("/admin/v1/accounts/{id}/allow", post(allow))
        .route("/admin/v1/accounts/{id}/block", post(block))
        .route("/admin/v1/accounts/{id}/challenge", post(challenge))
        .route("/admin/v1/accounts/{id}/unblock", post(unblock))
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: Option<String>,
}

async fn ranked(gw: &Gateway) -> Result<Vec<AccountRisk>, OpsError> {
    let reports = gw
        .inspector
        .as_ref()
        .map(|i| i.account_reports())
        .unwrap_or_default();
    let overrides = gw.store.list_enforcement().await?;
    Ok(rank(reports, &gw.enforcer.current_actions(), overrides))
}

async fn risk(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<Limit>,
) -> Result<Response, OpsError> {
    let mut r = ranked(&gw).await?;
    r.truncate(q.limit.unwrap_or(usize::MAX));
    Ok(Json(json!({"shadow": gw.enforcer.config().shadow, "accounts": r})).into_response())
}

async fn list_clusters(State(gw): State<Arc<Gateway>>) -> Result<Response, OpsError> {
    Ok(Json(json!({"clusters": clusters(&ranked(&gw).await?)})).into_response())
}

async fn get_cluster(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
) -> Result<Response, OpsError> {
    clusters(&ranked(&gw).await?)
        .into_iter()
        .find(|c| c.cluster == id)
        .map(|c| Json(c).into_response())
        .ok_or_else(|| OpsError::NotFound(format!("cluster {id:?} not found")))
}

async fn list_overrides(State(gw): State<Arc<Gateway>>) -> Result<Response, OpsError> {
    Ok(Json(json!({"overrides": gw.store.list_enforcement().await?})).into_response())
}

async fn pin(
    gw: &Gateway,
    id: &str,
    action: Option<Action>,
    body: &Bytes,
) -> Result<Response, OpsError> {
    let r: Reason = if body.iter().all(u8::is_ascii_whitespace) {
        Reason::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| OpsError::Invalid(format!("invalid JSON body: {e}")))?
    };
    let o = gw
        .enforcer
        .set_override(gw, id, action, r.reason.as_deref())
        .await?;
    Ok(Json(json!({"account": id, "override": o})).into_response())
}

async fn allow(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, OpsError> {
    pin(&gw, &id, Some(Action::Allow), &body).await
}

async fn block(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, OpsError> {
    pin(&gw, &id, Some(Action::Block), &body).await
}

async fn challenge(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, OpsError> {
    pin(&gw, &id, Some(Action::Challenge), &body).await
}

async fn unblock(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, OpsError> {
    pin(&gw, &id, None, &body).await
}
