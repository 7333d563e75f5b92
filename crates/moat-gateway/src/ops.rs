//! Account and key operations shared by the CLI and the admin HTTP API:
//! request/response shapes and the parsing of expiries, scopes and CIDRs.

use chrono::{DateTime, SecondsFormat, Utc};
use moat_store::{Account, AccountLimits, KeyRecord, KeySpec, NewAccount, Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::config::{parse_cidr, parse_duration};

/// Input for creating an account.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    /// Account id; generated when absent.
    pub id: Option<String>,
    /// Display name (defaults to the id).
    pub name: Option<String>,
    /// Tier (default `"default"`).
    pub tier: Option<String>,
    /// E-mail domain.
    pub email_domain: Option<String>,
    /// ISO country code.
    pub country: Option<String>,
    /// Identity verified.
    #[serde(default)]
    pub verified: bool,
    /// Requests per minute for this account (overrides `[limits]`).
    pub requests_per_minute: Option<u32>,
    /// Tokens per minute.
    pub tokens_per_minute: Option<u64>,
    /// Tokens per day.
    pub tokens_per_day: Option<u64>,
}

/// Input for creating a key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Owning account.
    pub account: String,
    /// Lifetime (`"30d"`) or expiry time (RFC 3339).
    pub expires: Option<String>,
    /// Models the key may use; all when absent.
    pub models: Option<Vec<String>>,
    /// Whether logprobs may be requested.
    #[serde(default)]
    pub allow_logprobs: bool,
    /// Allowed client networks (CIDR); any when empty.
    #[serde(default)]
    pub ip_allow: Vec<String>,
    /// Label.
    pub name: Option<String>,
}

/// Input for rotating a key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// How long the old key keeps working (default `"24h"`).
    pub grace: Option<String>,
}

/// A key as shown to operators (never the secret).
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    /// Key id.
    pub id: String,
    /// Account id.
    pub account: String,
    /// Label.
    pub name: Option<String>,
    /// `active`, `revoked`, `expired` or `rotated`.
    pub status: &'static str,
    /// Creation time.
    pub created_at: String,
    /// Expiry, if any.
    pub expires_at: Option<String>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<String>,
    /// Allowed models; `null` = all.
    pub models: Option<Vec<String>>,
    /// Logprobs allowed.
    pub allow_logprobs: bool,
    /// Allowed client networks.
    pub ip_allow: Vec<String>,
    /// Successor after rotation.
    pub replaced_by: Option<String>,
}

/// A newly created key and its secret token (shown once).
#[derive(Debug, Clone, Serialize)]
pub struct NewKey {
    /// The key.
    pub key: KeyView,
    /// The token to give to the client; it cannot be recovered later.
    pub secret: String,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl KeyView {
    /// View of a stored key at time `now`.
    pub fn new(k: &KeyRecord, now: DateTime<Utc>) -> KeyView {
        let status = if k.is_revoked() {
            "revoked"
        } else if k.is_expired(now) {
            "expired"
        } else if k.replaced_by.is_some() {
            "rotated"
        } else {
            "active"
        };
        KeyView {
            id: k.id.clone(),
            account: k.account.clone(),
            name: k.name.clone(),
            status,
            created_at: ts(k.created_at),
            expires_at: k.expires_at.map(ts),
            revoked_at: k.revoked_at.map(ts),
            models: k.models.clone(),
            allow_logprobs: k.allow_logprobs,
            ip_allow: k.ip_allow.iter().map(|n| n.to_string()).collect(),
            replaced_by: k.replaced_by.clone(),
        }
    }
}

/// An operation's failure, with the HTTP status the admin API answers with.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// Bad input (400).
    #[error("{0}")]
    Invalid(String),
    /// No such account or key (404).
    #[error("{0}")]
    NotFound(String),
    /// Conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// Database failure (500).
    #[error("{0}")]
    Store(String),
}

impl OpsError {
    /// HTTP status for the admin API.
    pub fn status(&self) -> u16 {
        match self {
            OpsError::Invalid(_) => 400,
            OpsError::NotFound(_) => 404,
            OpsError::Conflict(_) => 409,
            OpsError::Store(_) => 500,
        }
    }

    /// Stable code for the admin API.
    pub fn code(&self) -> &'static str {
        match self {
            OpsError::Invalid(_) => "invalid_request",
            OpsError::NotFound(_) => "not_found",
            OpsError::Conflict(_) => "conflict",
            OpsError::Store(_) => "store_error",
        }
    }
}

impl From<StoreError> for OpsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AccountNotFound(_) | StoreError::KeyNotFound(_) => {
                OpsError::NotFound(e.to_string())
            }
            StoreError::AccountExists(_) | StoreError::KeyState { .. } => {
                OpsError::Conflict(e.to_string())
            }
            StoreError::Invalid { .. } => OpsError::Invalid(e.to_string()),
            other => OpsError::Store(other.to_string()),
        }
    }
}

/// Parses an expiry: a lifetime from `now` (`"30d"`, `"12h"`) or an RFC 3339 time.
pub fn parse_expiry(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, OpsError> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = parse_duration(s).map_err(|e| {
        OpsError::Invalid(format!("expires: {e}; use e.g. 30d or an RFC 3339 time"))
    })?;
    let d = chrono::Duration::from_std(d)
        .map_err(|_| OpsError::Invalid("expires: too far in the future".into()))?;
    now.checked_add_signed(d)
        .ok_or_else(|| OpsError::Invalid("expires: too far in the future".into()))
}

/// Parses a time bound for exports: RFC 3339, or a duration meaning "that long ago".
pub fn parse_since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, OpsError> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = parse_duration(s)
        .map_err(|e| OpsError::Invalid(format!("{e}; use an RFC 3339 time or e.g. 24h")))?;
    let d = chrono::Duration::from_std(d)
        .map_err(|_| OpsError::Invalid("duration too large".into()))?;
    now.checked_sub_signed(d)
        .ok_or_else(|| OpsError::Invalid("duration too large".into()))
}

/// Creates an account.
pub async fn create_account(store: &Store, req: CreateAccount) -> Result<Account, OpsError> {
    if let Some(id) = &req.id {
        if id.is_empty()
            || id.len() > 128
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            return Err(OpsError::Invalid(format!(
                "account id {id:?}: use 1-128 characters from [A-Za-z0-9_.-]"
            )));
        }
    }
    let name = req
        .name
        .clone()
        .or_else(|| req.id.clone())
        .unwrap_or_default();
    Ok(store
        .create_account(NewAccount {
            id: req.id,
            name,
            tier: req.tier.unwrap_or_else(|| "default".into()),
            email_domain: req.email_domain,
            country: req.country,
            verified: req.verified,
            limits: AccountLimits {
                requests_per_minute: req.requests_per_minute,
                tokens_per_minute: req.tokens_per_minute,
                tokens_per_day: req.tokens_per_day,
            },
        })
        .await?)
}

/// Creates a key; returns it with its secret token.
pub async fn create_key(
    store: &Store,
    req: CreateKey,
    now: DateTime<Utc>,
) -> Result<NewKey, OpsError> {
    let expires_at = req
        .expires
        .as_deref()
        .map(|e| parse_expiry(e, now))
        .transpose()?;
    let mut ip_allow = Vec::with_capacity(req.ip_allow.len());
    for c in &req.ip_allow {
        ip_allow.push(parse_cidr(c).map_err(|e| OpsError::Invalid(format!("ip_allow: {e}")))?);
    }
    let models = req.models.map(|ms| {
        ms.into_iter()
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect::<Vec<_>>()
    });
    if models.as_ref().is_some_and(Vec::is_empty) {
        return Err(OpsError::Invalid(
            "models: give at least one model, or omit it to allow all".into(),
        ));
    }
    let spec = KeySpec {
        expires_at,
        models,
        allow_logprobs: req.allow_logprobs,
        ip_allow,
        name: req.name,
    };
    let (rec, secret) = store.create_key(&req.account, spec).await?;
    Ok(NewKey {
        key: KeyView::new(&rec, now),
        secret,
    })
}

/// Rotates a key: a new key with the same scopes; the old one works for `grace` more.
pub async fn rotate_key(
    store: &Store,
    id: &str,
    req: RotateKey,
    now: DateTime<Utc>,
) -> Result<NewKey, OpsError> {
    let grace = parse_duration(req.grace.as_deref().unwrap_or("24h"))
        .map_err(|e| OpsError::Invalid(format!("grace: {e}")))?;
    let (rec, secret) = store.rotate_key(id, grace).await?;
    Ok(NewKey {
        key: KeyView::new(&rec, now),
        secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_parses_durations_and_times() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            ts(parse_expiry("30d", now).unwrap()),
            "2026-01-31T00:00:00Z"
        );
        assert_eq!(
            ts(parse_expiry("2026-02-01T00:00:00Z", now).unwrap()),
            "2026-02-01T00:00:00Z"
        );
        assert!(parse_expiry("soon", now).is_err());
        assert_eq!(ts(parse_since("24h", now).unwrap()), "2025-12-31T00:00:00Z");
    }
}
