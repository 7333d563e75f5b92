//! Accounts (organisations): metadata used by detection and per-account limits.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{get_bool, Timed};
use crate::time::{from_us, now, to_us};
use crate::{Store, StoreError};

/// Per-account limits; `None` means "use the gateway's tier default / no limit".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLimits {
    /// Requests per minute.
    pub requests_per_minute: Option<u32>,
    /// Input + output tokens per minute.
    pub tokens_per_minute: Option<u64>,
    /// Input + output tokens per UTC day.
    pub tokens_per_day: Option<u64>,
}

/// What is needed to create an account.
#[derive(Clone, Debug, Default)]
pub struct NewAccount {
    /// Account id; generated (`acct_` + 12 base62 characters) when `None`.
    pub id: Option<String>,
    /// Human-readable name.
    pub name: String,
    /// Pricing / trust tier, e.g. "free", "pro", "enterprise".
    pub tier: String,
    /// Domain of the account's e-mail address, if known.
    pub email_domain: Option<String>,
    /// ISO country code, if known.
    pub country: Option<String>,
    /// Whether the customer's identity was verified.
    pub verified: bool,
    /// Per-account limit overrides.
    pub limits: AccountLimits,
}

/// A stored account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Account id (`acct_…`).
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Pricing / trust tier.
    pub tier: String,
    /// Domain of the account's e-mail address, if known.
    pub email_domain: Option<String>,
    /// ISO country code, if known.
    pub country: Option<String>,
    /// Whether the customer's identity was verified.
    pub verified: bool,
    /// A disabled account's keys are refused ([`crate::AuthError::AccountDisabled`]).
    pub disabled: bool,
    /// Per-account limit overrides.
    pub limits: AccountLimits,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

const ACCOUNT_COLUMNS: &str = "id, name, tier, email_domain, country, verified, disabled, \
     requests_per_minute, tokens_per_minute, tokens_per_day, created_at";

/// Generate a random public id with the given prefix (12 base62 characters, ≈ 71 bits).
pub(crate) fn random_id(prefix: &str) -> String {
    use rand::distributions::Alphanumeric;
    use rand::Rng;
    let tail: String = rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(12)
        .map(char::from)
        .collect();
    format!("{prefix}{tail}")
}

fn opt_u64_to_i64(v: Option<u64>, field: &'static str) -> Result<Option<i64>, StoreError> {
    v.map(|v| {
        i64::try_from(v).map_err(|_| StoreError::Invalid {
            field,
            reason: format!("{v} is too large"),
        })
    })
    .transpose()
}

fn opt_i64_to_u64(v: Option<i64>, field: &str) -> Result<Option<u64>, StoreError> {
    v.map(|v| {
        u64::try_from(v).map_err(|_| StoreError::Corrupt {
            table: "accounts",
            reason: format!("negative {field}: {v}"),
        })
    })
    .transpose()
}

pub(crate) fn account_from_row(row: &AnyRow) -> Result<Account, StoreError> {
    let get = |e: sqlx::Error| StoreError::Corrupt {
        table: "accounts",
        reason: e.to_string(),
    };
    let rpm: Option<i64> = row.try_get("requests_per_minute").map_err(get)?;
    Ok(Account {
        id: row.try_get("id").map_err(get)?,
        name: row.try_get("name").map_err(get)?,
        tier: row.try_get("tier").map_err(get)?,
        email_domain: row.try_get("email_domain").map_err(get)?,
        country: row.try_get("country").map_err(get)?,
        verified: get_bool(row, "verified").map_err(get)?,
        disabled: get_bool(row, "disabled").map_err(get)?,
        limits: AccountLimits {
            requests_per_minute: rpm
                .map(|v| {
                    u32::try_from(v).map_err(|_| StoreError::Corrupt {
                        table: "accounts",
                        reason: format!("requests_per_minute out of range: {v}"),
                    })
                })
                .transpose()?,
            tokens_per_minute: opt_i64_to_u64(
                row.try_get("tokens_per_minute").map_err(get)?,
                "tokens_per_minute",
            )?,
            tokens_per_day: opt_i64_to_u64(
                row.try_get("tokens_per_day").map_err(get)?,
                "tokens_per_day",
            )?,
        },
        created_at: from_us(row.try_get("created_at").map_err(get)?, "accounts")?,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl Store {
    /// Create an account. Fails with [`StoreError::AccountExists`] if the id is taken.
    pub async fn create_account(&self, new: NewAccount) -> Result<Account, StoreError> {
        let id = match new.id {
            Some(id) if id.trim().is_empty() => {
                return Err(StoreError::Invalid {
                    field: "account id",
                    reason: "empty".into(),
                })
            }
            Some(id) => id,
            None => random_id("acct_"),
        };
        let account = Account {
            id,
            name: new.name,
            tier: new.tier,
            email_domain: new.email_domain,
            country: new.country,
            verified: new.verified,
            disabled: false,
            limits: new.limits,
            created_at: now(),
        };
        let result = sqlx::query(
            "INSERT INTO accounts (id, name, tier, email_domain, country, verified, disabled, \
             requests_per_minute, tokens_per_minute, tokens_per_day, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&account.id)
        .bind(&account.name)
        .bind(&account.tier)
        .bind(&account.email_domain)
        .bind(&account.country)
        .bind(account.verified)
        .bind(account.disabled)
        .bind(account.limits.requests_per_minute.map(i64::from))
        .bind(opt_u64_to_i64(
            account.limits.tokens_per_minute,
            "tokens_per_minute",
        )?)
        .bind(opt_u64_to_i64(
            account.limits.tokens_per_day,
            "tokens_per_day",
        )?)
        .bind(to_us(account.created_at))
        .execute(self.pool())
        .timed(self, "inserting account")
        .await;
        match result {
            Ok(_) => Ok(account),
            Err(StoreError::Db { source, .. }) if is_unique_violation(&source) => {
                Err(StoreError::AccountExists(account.id))
            }
            Err(e) => Err(e),
        }
    }

    /// All accounts, ordered by id.
    pub async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY id"
        ))
        .fetch_all(self.pool())
        .timed(self, "listing accounts")
        .await?;
        rows.iter().map(account_from_row).collect()
    }

    /// One account, or `None` if no account has this id.
    pub async fn get_account(&self, id: &str) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .timed(self, "reading account")
        .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    /// Enable or disable an account. Keys of a disabled account are refused at
    /// authentication (after at most the authenticator's cache TTL in other processes; call
    /// [`crate::KeyAuthenticator::invalidate_all`] in this one).
    pub async fn set_account_disabled(
        &self,
        id: &str,
        disabled: bool,
    ) -> Result<Account, StoreError> {
        let done = sqlx::query("UPDATE accounts SET disabled = $1 WHERE id = $2")
            .bind(disabled)
            .bind(id)
            .execute(self.pool())
            .timed(self, "updating account")
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::AccountNotFound(id.to_string()));
        }
        self.get_account(id)
            .await?
            .ok_or_else(|| StoreError::AccountNotFound(id.to_string()))
    }

    /// Replace an account's limit overrides.
    pub async fn set_account_limits(
        &self,
        id: &str,
        limits: AccountLimits,
    ) -> Result<Account, StoreError> {
        let done = sqlx::query(
            "UPDATE accounts SET requests_per_minute = $1, tokens_per_minute = $2, \
             tokens_per_day = $3 WHERE id = $4",
        )
        .bind(limits.requests_per_minute.map(i64::from))
        .bind(opt_u64_to_i64(
            limits.tokens_per_minute,
            "tokens_per_minute",
        )?)
        .bind(opt_u64_to_i64(limits.tokens_per_day, "tokens_per_day")?)
        .bind(id)
        .execute(self.pool())
        .timed(self, "updating account limits")
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::AccountNotFound(id.to_string()));
        }
        self.get_account(id)
            .await?
            .ok_or_else(|| StoreError::AccountNotFound(id.to_string()))
    }
}
