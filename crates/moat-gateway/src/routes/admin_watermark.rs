//! `POST /admin/v1/watermark/detect`: tests texts for the text watermark with every key of the
//! keyring.
//!
//! Body: `{"text": "..."}` → `{"results": [KeyResult…], "verdict": Verdict}`, or
//! `{"texts": ["...", …]}` → `{"texts": [{"results","verdict"}…], "pooled": {"results",
//! "verdict", "texts"}}` where `pooled` scores all texts together (positions deduplicated
//! across texts, [`moat_mark::Accumulator`]). Field meanings: [`crate::watermark_detect`].
//! 404 `watermark_keys_missing` when no key is available.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::State,
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::gateway::Gateway;
use crate::ops::OpsError;
use crate::watermark_detect::{detect_text, verdict, KeyResult};

/// The watermark routes (the token layer is added by [`super::admin::router`]).
pub fn routes() -> Router<Arc<Gateway>> {
    Router::new().route("/admin/v1/watermark/detect", post(detect))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DetectRequest {
    text: Option<String>,
    texts: Option<Vec<String>>,
}

fn one(text: &str, ring: &moat_mark::Keyring, cfg: moat_mark::MarkConfig) -> Value {
    let results = detect_text(text, ring, cfg);
    json!({"verdict": verdict(&results), "results": results})
}

async fn detect(State(gw): State<Arc<Gateway>>, body: Bytes) -> Result<Response, OpsError> {
    let req: DetectRequest = serde_json::from_slice(&body)
        .map_err(|e| OpsError::Invalid(format!("invalid JSON body: {e}")))?;
    let Some((ring, cfg)) = gw.watermark.detection_keys() else {
        return Err(OpsError::NotFound(
            "watermark_keys_missing: no text watermark key is configured".into(),
        ));
    };
    let (ring, cfg) = (ring.clone(), cfg);
    let out = match (req.text, req.texts) {
        (Some(t), None) => tokio::task::spawn_blocking(move || one(&t, &ring, cfg)).await,
        (None, Some(ts)) => {
            tokio::task::spawn_blocking(move || {
                let mut acc = moat_mark::Accumulator::new(ring.clone(), cfg);
                let each: Vec<Value> = ts
                    .iter()
                    .map(|t| {
                        acc.add(t);
                        one(t, &ring, cfg)
                    })
                    .collect();
                let pooled: Vec<KeyResult> = acc.detections().iter().map(KeyResult::text).collect();
                json!({"texts": each, "pooled": {"verdict": verdict(&pooled), "results": pooled,
                   "texts": ts.len()}})
            })
            .await
        }
        _ => {
            return Err(OpsError::Invalid(
                "give exactly one of \"text\" or \"texts\"".into(),
            ))
        }
    };
    out.map(|v| Json(v).into_response())
        .map_err(|e| OpsError::Invalid(format!("detection failed: {e}")))
}
