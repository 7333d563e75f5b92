//! API keys: creation, listing, revocation and rotation. See the crate docs for the token
//! format and why only a SHA-256 hash of the secret is stored.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::accounts::random_id;
use crate::db::{get_bool, Timed};
use crate::time::{from_us, from_us_opt, now, to_us};
use crate::{Store, StoreError};

/// Prefix of every token.
pub(crate) const TOKEN_PREFIX: &str = "moat_";
/// Prefix of every key id.
pub(crate) const KEY_ID_PREFIX: &str = "key_";
/// Length of the random part of a key id.
pub(crate) const KEY_ID_RANDOM_LEN: usize = 12;
/// Length of the secret (base62 characters; 43 × log2(62) ≈ 256 bits).
pub(crate) const SECRET_LEN: usize = 43;

/// Scopes and options of a new key.
#[derive(Clone, Debug, Default)]
pub struct KeySpec {
    /// The key stops working at this time; `None` = never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Models the key may use; `None` = all models.
    pub models: Option<Vec<String>>,
    /// Whether the key may request log-probabilities.
    pub allow_logprobs: bool,
    /// Client networks the key may be used from; empty = any address.
    pub ip_allow: Vec<IpNet>,
    /// Optional label.
    pub name: Option<String>,
}

/// A stored API key (never the secret).
#[derive(Clone, Serialize)]
pub struct KeyRecord {
    /// Public key id (`key_…`), part of the token.
    pub id: String,
    /// Owning account id.
    pub account: String,
    /// Optional label.
    pub name: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry; `None` = never. Rotation sets it to the end of the grace period.
    pub expires_at: Option<DateTime<Utc>>,
    /// Revocation time; a revoked key is refused.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Models the key may use; `None` = all.
    pub models: Option<Vec<String>>,
    /// Whether log-probabilities may be requested.
    pub allow_logprobs: bool,
    /// Allowed client networks; empty = any.
    pub ip_allow: Vec<IpNet>,
    /// Id of the key that replaced this one by rotation, if any.
    pub replaced_by: Option<String>,
    /// SHA-256 of (key id, 0x00, secret). Crate-private: never serialised or printed.
    #[serde(skip)]
    pub(crate) secret_hash: [u8; 32],
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("id", &self.id)
            .field("account", &self.account)
            .field("name", &self.name)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .field("models", &self.models)
            .field("allow_logprobs", &self.allow_logprobs)
            .field("ip_allow", &self.ip_allow)
            .field("replaced_by", &self.replaced_by)
            .finish_non_exhaustive()
    }
}

impl PartialEq for KeyRecord {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.account == other.account
            && self.name == other.name
            && self.created_at == other.created_at
            && self.expires_at == other.expires_at
            && self.revoked_at == other.revoked_at
            && self.models == other.models
            && self.allow_logprobs == other.allow_logprobs
            && self.ip_allow == other.ip_allow
            && self.replaced_by == other.replaced_by
    }
}

impl KeyRecord {
    /// Whether the key may be used for `model` (scope check; the gateway enforces it).
    pub fn allows_model(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|models| models.iter().any(|m| m == model))
    }

    /// Whether `ip` is inside the allowlist (always true when the list is empty).
    pub fn allows_ip(&self, ip: Option<IpAddr>) -> bool {
        if self.ip_allow.is_empty() {
            return true;
        }
        match ip {
            Some(ip) => {
                let ip = canonical_ip(ip);
                self.ip_allow.iter().any(|net| net.contains(&ip))
            }
            None => false,
        }
    }

    /// Whether the key is expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|t| now >= t)
    }

    /// Whether the key is revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, as seen on dual-stack sockets) are matched
/// as the IPv4 address.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// SHA-256 over (key id, 0x00, secret). Binding the id means a hash copied onto another key
/// row does not authenticate that key.
pub(crate) fn hash_secret(key_id: &str, secret: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(key_id.as_bytes());
    h.update([0u8]);
    h.update(secret.as_bytes());
    h.finalize().into()
}

fn random_secret() -> String {
    use rand::distributions::Alphanumeric;
    use rand::Rng;
    rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(SECRET_LEN)
        .map(char::from)
        .collect()
}

/// Build the token shown to the user.
pub(crate) fn format_token(key_id: &str, secret: &str) -> String {
    format!("{TOKEN_PREFIX}{key_id}_{secret}")
}

const KEY_COLUMNS: &str = "id, account_id, name, secret_hash, created_at, expires_at, \
     revoked_at, models, allow_logprobs, ip_allow, replaced_by";

fn corrupt(reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table: "api_keys",
        reason: reason.to_string(),
    }
}

pub(crate) fn key_from_row(row: &AnyRow) -> Result<KeyRecord, StoreError> {
    let hash_hex: String = row.try_get("secret_hash").map_err(corrupt)?;
    let mut secret_hash = [0u8; 32];
    hex::decode_to_slice(&hash_hex, &mut secret_hash).map_err(corrupt)?;
    let models: Option<String> = row.try_get("models").map_err(corrupt)?;
    let models = models
        .map(|m| serde_json::from_str::<Vec<String>>(&m))
        .transpose()
        .map_err(corrupt)?;
    let ip_allow: String = row.try_get("ip_allow").map_err(corrupt)?;
    let ip_allow: Vec<String> = serde_json::from_str(&ip_allow).map_err(corrupt)?;
    let ip_allow = ip_allow
        .iter()
        .map(|s| s.parse::<IpNet>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(corrupt)?;
    Ok(KeyRecord {
        id: row.try_get("id").map_err(corrupt)?,
        account: row.try_get("account_id").map_err(corrupt)?,
        name: row.try_get("name").map_err(corrupt)?,
        created_at: from_us(row.try_get("created_at").map_err(corrupt)?, "api_keys")?,
        expires_at: from_us_opt(row.try_get("expires_at").map_err(corrupt)?, "api_keys")?,
        revoked_at: from_us_opt(row.try_get("revoked_at").map_err(corrupt)?, "api_keys")?,
        models,
        allow_logprobs: get_bool(row, "allow_logprobs").map_err(corrupt)?,
        ip_allow,
        replaced_by: row.try_get("replaced_by").map_err(corrupt)?,
        secret_hash,
    })
}

async fn insert_key<'e, E>(store: &Store, exec: E, key: &KeyRecord) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let models = key.models.as_ref().map(serde_json::to_string).transpose()?;
    let ip_allow: Vec<String> = key.ip_allow.iter().map(|n| n.to_string()).collect();
    sqlx::query(&format!(
        "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&key.id)
    .bind(&key.account)
    .bind(&key.name)
    .bind(hex::encode(key.secret_hash))
    .bind(to_us(key.created_at))
    .bind(key.expires_at.map(to_us))
    .bind(key.revoked_at.map(to_us))
    .bind(models)
    .bind(key.allow_logprobs)
    .bind(serde_json::to_string(&ip_allow)?)
    .bind(&key.replaced_by)
    .execute(exec)
    .timed(store, "inserting API key")
    .await?;
    Ok(())
}

/// A fresh key record (with its secret) for `account` with the given scopes.
fn new_key(account: &str, spec: KeySpec) -> (KeyRecord, String) {
    let id = random_id(KEY_ID_PREFIX);
    let secret = random_secret();
    let record = KeyRecord {
        secret_hash: hash_secret(&id, &secret),
        id,
        account: account.to_string(),
        name: spec.name,
        created_at: now(),
        expires_at: spec.expires_at,
        revoked_at: None,
        models: spec.models,
        allow_logprobs: spec.allow_logprobs,
        ip_allow: spec.ip_allow,
        replaced_by: None,
    };
    let token = format_token(&record.id, &secret);
    (record, token)
}

impl Store {
    /// Create a key for `account`. Returns the record and the token
    /// (`moat_<key id>_<secret>`), which is shown once and cannot be recovered.
    pub async fn create_key(
        &self,
        account: &str,
        spec: KeySpec,
    ) -> Result<(KeyRecord, String), StoreError> {
        if self.get_account(account).await?.is_none() {
            return Err(StoreError::AccountNotFound(account.to_string()));
        }
        let (record, token) = new_key(account, spec);
        insert_key(self, self.pool(), &record).await?;
        Ok((record, token))
    }

    /// Keys of one account, or of all accounts, ordered by account then creation time.
    pub async fn list_keys(&self, account: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        let by_account = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE account_id = $1 \
             ORDER BY account_id, created_at, id"
        );
        let all = format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY account_id, created_at, id");
        let query = match account {
            Some(account) => sqlx::query(&by_account).bind(account),
            None => sqlx::query(&all),
        };
        let rows = query
            .fetch_all(self.pool())
            .timed(self, "listing API keys")
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// One key by id, or `None`.
    pub async fn get_key(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"))
            .bind(key_id)
            .fetch_optional(self.pool())
            .timed(self, "reading API key")
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// Revoke a key (idempotent: revoking twice keeps the first revocation time).
    /// Call [`crate::KeyAuthenticator::invalidate`] afterwards in this process.
    pub async fn revoke_key(&self, key_id: &str) -> Result<KeyRecord, StoreError> {
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(to_us(now()))
            .bind(key_id)
            .execute(self.pool())
            .timed(self, "revoking API key")
            .await?;
        self.get_key(key_id)
            .await?
            .ok_or_else(|| StoreError::KeyNotFound(key_id.to_string()))
    }

    /// Rotate a key: create a new key for the same account with the same scopes (models,
    /// logprobs, IP allowlist, name, expiry), and make the old key expire at `now + grace`
    /// (or keep its earlier expiry). Returns the new key and its token. Refused for revoked,
    /// expired or already-rotated keys. Call [`crate::KeyAuthenticator::invalidate`] with
    /// the old id afterwards in this process.
    pub async fn rotate_key(
        &self,
        key_id: &str,
        grace: std::time::Duration,
    ) -> Result<(KeyRecord, String), StoreError> {
        let grace = chrono::Duration::from_std(grace).map_err(|e| StoreError::Invalid {
            field: "grace",
            reason: e.to_string(),
        })?;
        let mut tx = self.begin_write("starting rotation").await?;
        // The key's row stays locked until commit, so two replicas cannot rotate it twice.
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1{}",
            self.dialect().for_update()
        ))
        .bind(key_id)
        .fetch_optional(&mut *tx)
        .timed(self, "reading API key")
        .await?;
        let old = row
            .as_ref()
            .map(key_from_row)
            .transpose()?
            .ok_or_else(|| StoreError::KeyNotFound(key_id.to_string()))?;
        let state_err = |reason| StoreError::KeyState {
            id: key_id.to_string(),
            action: "rotated",
            reason,
        };
        let now = now();
        if old.is_revoked() {
            return Err(state_err("it is revoked"));
        }
        if old.is_expired(now) {
            return Err(state_err("it is expired"));
        }
        if old.replaced_by.is_some() {
            return Err(state_err("it was already rotated"));
        }
        let spec = KeySpec {
            expires_at: old.expires_at,
            models: old.models.clone(),
            allow_logprobs: old.allow_logprobs,
            ip_allow: old.ip_allow.clone(),
            name: old.name.clone(),
        };
        let (new, token) = new_key(&old.account, spec);
        insert_key(self, &mut *tx, &new).await?;
        let grace_end = now
            .checked_add_signed(grace)
            .ok_or_else(|| StoreError::Invalid {
                field: "grace",
                reason: "too large".into(),
            })?;
        let old_expiry = old.expires_at.map_or(grace_end, |t| t.min(grace_end));
        sqlx::query("UPDATE api_keys SET expires_at = $1, replaced_by = $2 WHERE id = $3")
            .bind(to_us(old_expiry))
            .bind(&new.id)
            .bind(key_id)
            .execute(&mut *tx)
            .timed(self, "expiring rotated API key")
            .await?;
        tx.commit().timed(self, "committing rotation").await?;
        Ok((new, token))
    }
}
