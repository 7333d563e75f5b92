//! Enforcement overrides: an account's action pinned by an operator (allowlist, block,
//! challenge, a forced action) or by the gateway when the detection engine escalated it to a
//! persistent action (`challenge`, `block`). Table `account_enforcement` (migration 0002).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::Timed;
use crate::time::{from_us, now, to_us};
use crate::{Store, StoreError};

/// Actions an override may pin (the ladder of `DESIGN.md`).
pub const OVERRIDE_ACTIONS: [&str; 5] = ["allow", "throttle", "degrade", "challenge", "block"];

/// An account's pinned action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnforcementOverride {
    /// Account id.
    pub account: String,
    /// `allow`, `throttle`, `degrade`, `challenge` or `block`.
    pub action: String,
    /// Who set it: `operator` or `engine`.
    pub source: String,
    /// Free-text reason (operator note, or the engine's reasons).
    pub reason: Option<String>,
    /// When it was set.
    pub set_at: DateTime<Utc>,
}

fn from_row(r: &AnyRow) -> Result<EnforcementOverride, StoreError> {
    let get = |e: sqlx::Error| StoreError::Db {
        op: "reading enforcement override",
        source: e,
    };
    Ok(EnforcementOverride {
        account: r.try_get("account_id").map_err(get)?,
        action: r.try_get("action").map_err(get)?,
        source: r.try_get("source").map_err(get)?,
        reason: r.try_get("reason").map_err(get)?,
        set_at: from_us(r.try_get("set_at").map_err(get)?, "account_enforcement")?,
    })
}

impl Store {
    /// Pins `account`'s action (replacing any previous override).
    pub async fn set_enforcement(
        &self,
        account: &str,
        action: &str,
        source: &str,
        reason: Option<&str>,
    ) -> Result<EnforcementOverride, StoreError> {
        if !OVERRIDE_ACTIONS.contains(&action) {
            return Err(StoreError::Invalid {
                field: "action",
                reason: format!("expected one of {OVERRIDE_ACTIONS:?}, got {action:?}"),
            });
        }
        if self.get_account(account).await?.is_none() {
            return Err(StoreError::AccountNotFound(account.to_string()));
        }
        let at = now();
        sqlx::query(
            "INSERT INTO account_enforcement (account_id, action, source, reason, set_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (account_id) DO UPDATE SET action = excluded.action, \
             source = excluded.source, reason = excluded.reason, set_at = excluded.set_at",
        )
        .bind(account)
        .bind(action)
        .bind(source)
        .bind(reason)
        .bind(to_us(at))
        .execute(self.pool())
        .timed(self, "setting enforcement override")
        .await?;
        Ok(EnforcementOverride {
            account: account.to_string(),
            action: action.to_string(),
            source: source.to_string(),
            reason: reason.map(str::to_string),
            set_at: at,
        })
    }

    /// Removes `account`'s override (the engine decides again); whether there was one.
    pub async fn clear_enforcement(&self, account: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM account_enforcement WHERE account_id = $1")
            .bind(account)
            .execute(self.pool())
            .timed(self, "clearing enforcement override")
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// `account`'s override, if any.
    pub async fn get_enforcement(
        &self,
        account: &str,
    ) -> Result<Option<EnforcementOverride>, StoreError> {
        let row = sqlx::query(
            "SELECT account_id, action, source, reason, set_at FROM account_enforcement \
             WHERE account_id = $1",
        )
        .bind(account)
        .fetch_optional(self.pool())
        .timed(self, "reading enforcement override")
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every override, oldest first.
    pub async fn list_enforcement(&self) -> Result<Vec<EnforcementOverride>, StoreError> {
        let rows = sqlx::query(
            "SELECT account_id, action, source, reason, set_at FROM account_enforcement \
             ORDER BY set_at, account_id",
        )
        .fetch_all(self.pool())
        .timed(self, "listing enforcement overrides")
        .await?;
        rows.iter().map(from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::{NewAccount, Store};

    #[tokio::test]
    async fn overrides_round_trip() {
        let s = Store::open("sqlite::memory:").await.unwrap();
        let a = s
            .create_account(NewAccount {
                id: Some("acct_x".into()),
                name: "x".into(),
                tier: "free".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(s.get_enforcement(&a.id).await.unwrap().is_none());
        s.set_enforcement(&a.id, "block", "engine", Some("r"))
            .await
            .unwrap();
        let o = s
            .set_enforcement(&a.id, "allow", "operator", None)
            .await
            .unwrap();
        assert_eq!(s.get_enforcement(&a.id).await.unwrap(), Some(o));
        assert_eq!(s.list_enforcement().await.unwrap().len(), 1);
        assert!(s
            .set_enforcement(&a.id, "nope", "operator", None)
            .await
            .is_err());
        assert!(s
            .set_enforcement("acct_none", "block", "operator", None)
            .await
            .is_err());
        assert!(s.clear_enforcement(&a.id).await.unwrap());
        assert!(!s.clear_enforcement(&a.id).await.unwrap());
    }
}
