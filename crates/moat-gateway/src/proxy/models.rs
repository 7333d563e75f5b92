//! `GET /v1/models` (the list, filtered to the key's models) and
//! `GET /v1/models/{id}` (one model, refused outside the key's scope).

use std::sync::Arc;

use axum::{
    body::Body,
    http::{header, HeaderValue, Method, StatusCode},
    response::Response,
};
use bytes::Bytes;
use moat_store::AuthedKey;
use serde_json::Value;

use crate::api::Api;
use crate::error::GatewayError;
use crate::exchange::Exchange;
use crate::gateway::Gateway;
use crate::proxy::forward::{send_checked, MAX_RESPONSE_BODY};
use crate::upstream::UpstreamBody;

/// Answers `path` (`/v1/models` or `/v1/models/{id}`) from the upstream.
pub(crate) async fn models(
    gw: &Arc<Gateway>,
    authed: &AuthedKey,
    ex: &mut Exchange,
    path: &str,
) -> Result<Response, GatewayError> {
    let u = &gw.upstream;
    // `url::Url` for the path: it percent-encodes the model id as a path segment.
    let mut url = reqwest::Url::parse(&u.uri(Api::OpenAiModels).to_string())
        .map_err(|e| GatewayError::Internal(format!("upstream models URL: {e}")))?;
    let one = path
        .strip_prefix(Api::OpenAiModels.path())
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|rest| !rest.is_empty());
    if let Some(raw) = one {
        let id = percent_decode(raw)
            .ok_or_else(|| GatewayError::InvalidRequest("invalid model id in path".into()))?;
        ex.set_request(&id, false);
        if !authed.key.allows_model(&id) {
            return Err(GatewayError::ModelNotAllowed(id));
        }
        if raw.split('/').any(|seg| seg == "." || seg == "..") {
            return Err(GatewayError::InvalidRequest(
                "invalid model id in path".into(),
            ));
        }
        let joined = format!("{}/{raw}", url.path());
        url.set_path(&joined);
    }
    let deadline = tokio::time::Instant::now() + gw.config.upstream.timeout;
    let uri = url
        .as_str()
        .parse()
        .map_err(|e| GatewayError::InvalidRequest(format!("invalid model id in path: {e}")))?;
    let req = u
        .request(Method::GET, uri)
        .header(header::ACCEPT, HeaderValue::from_static("application/json"))
        .body(UpstreamBody::default())
        .map_err(|e| GatewayError::Internal(format!("upstream request: {e}")))?;
    let resp = send_checked(req, deadline, gw, Api::OpenAiModels).await?;
    let status = resp.status();
    let mut bytes = u
        .read_body(resp, deadline, MAX_RESPONSE_BODY, false)
        .await?;
    if let (None, Some(allowed)) = (one, &authed.key.models) {
        let mut v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| GatewayError::UpstreamBadResponse(format!("models list: {e}")))?;
        if let Some(data) = v.get_mut("data").and_then(Value::as_array_mut) {
            data.retain(|m| {
                m.get("id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| allowed.iter().any(|a| a == id))
            });
        }
        bytes = Bytes::from(serde_json::to_vec(&v).unwrap_or_default());
    } else if !bytes.trim_ascii_start().starts_with(b"{")
        || serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err()
    {
        return Err(GatewayError::UpstreamBadResponse(
            "models answer is not a JSON object".into(),
        ));
    }
    ex.completed(status.as_u16()).await;
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = StatusCode::OK;
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(out)
}

/// Decodes `%XX` escapes of a URL path segment; `None` if invalid or not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn decodes_model_ids() {
        assert_eq!(
            percent_decode("meta-llama%2FLlama-3").as_deref(),
            Some("meta-llama/Llama-3")
        );
        assert_eq!(percent_decode("a/b").as_deref(), Some("a/b"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
