//! Versioned last-value-per-account buckets: verdicts (workers → replicas) and summaries
//! (workers → workers).

use async_nats::jetstream::kv::{Operation, Store};
use futures::{Stream, StreamExt};
use moat_detect::{AccountSummary, Action, ExternalView};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{Bus, BusError};

/// A worker's verdict on one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictRecord {
    /// Account id.
    pub account: String,
    /// The worker that owns the account.
    pub worker: u32,
    /// What the worker's engine concluded (apply with `Engine::set_external`).
    pub view: ExternalView,
    /// The action the view implies for a strongly extraction-like request (for operators).
    pub action: Action,
    /// Wall-clock time of the update, ms since the epoch.
    pub updated_ms: i64,
}

/// A worker's summary of one of its accounts, for the cross-account linker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRecord {
    /// The worker that owns the account.
    pub worker: u32,
    /// The summary.
    pub summary: AccountSummary,
}

/// The bucket key of an account: the id itself when it is a valid key, else `h.` + hex.
pub fn kv_key(account: &str) -> String {
    let valid = !account.is_empty()
        && !account.starts_with("h.")
        && !account.starts_with('.')
        && !account.ends_with('.')
        && !account.contains("..")
        && account
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'.' | b'/'));
    if valid {
        account.to_string()
    } else {
        format!("h.{}", hex::encode(account))
    }
}

/// The account id of a bucket key made by [`kv_key`].
pub fn account_of_key(key: &str) -> Option<String> {
    match key.strip_prefix("h.") {
        Some(h) => hex::decode(h).ok().and_then(|b| String::from_utf8(b).ok()),
        None => Some(key.to_string()),
    }
}

/// A typed bucket of records keyed by account.
#[derive(Clone)]
struct Bucket {
    store: Store,
}

impl Bucket {
    async fn open(bus: &Bus, name: &str) -> Result<Bucket, BusError> {
        bus.ensure().await?;
        let store = bus
            .jetstream()
            .get_key_value(name)
            .await
            .map_err(|e| BusError::js("opening a bucket", e))?;
        Ok(Bucket { store })
    }

    async fn put<T: Serialize>(&self, account: &str, value: &T) -> Result<(), BusError> {
        let bytes = serde_json::to_vec(value).map_err(|e| BusError::js("encoding", e))?;
        self.store
            .put(kv_key(account), bytes.into())
            .await
            .map_err(|e| BusError::js("writing a bucket entry", e))?;
        Ok(())
    }

    /// Current values first, then every change; deletions yield `None`.
    async fn watch<T: DeserializeOwned + Send + 'static>(
        &self,
        what: &'static str,
    ) -> Result<impl Stream<Item = Result<(String, Option<T>), BusError>> + Send, BusError> {
        let w = self
            .store
            .watch_with_history(">")
            .await
            .map_err(|e| BusError::js("watching a bucket", e))?;
        Ok(w.map(move |entry| {
            let e = entry.map_err(|e| BusError::js("watching a bucket", e))?;
            match e.operation {
                Operation::Put => serde_json::from_slice::<T>(&e.value)
                    .map(|v| (e.key, Some(v)))
                    .map_err(|source| BusError::Decode { what, source }),
                Operation::Delete | Operation::Purge => Ok((e.key, None)),
            }
        }))
    }
}

/// Account verdicts.
#[derive(Clone)]
pub struct Verdicts(Bucket);

impl std::fmt::Debug for Verdicts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verdicts")
    }
}

impl Verdicts {
    /// Opens (creating if needed) the verdict bucket.
    pub async fn open(bus: &Bus) -> Result<Verdicts, BusError> {
        Ok(Verdicts(
            Bucket::open(bus, &bus.config().verdict_bucket).await?,
        ))
    }

    /// Writes an account's verdict.
    pub async fn put(&self, v: &VerdictRecord) -> Result<(), BusError> {
        self.0.put(&v.account, v).await
    }

    /// Every account's current verdict, then every change, as `(bucket key, verdict)`.
    pub async fn watch(
        &self,
    ) -> Result<
        impl Stream<Item = Result<(String, Option<VerdictRecord>), BusError>> + Send,
        BusError,
    > {
        self.0.watch("verdict").await
    }
}

/// Account summaries.
#[derive(Clone)]
pub struct Summaries(Bucket);

impl std::fmt::Debug for Summaries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Summaries")
    }
}

impl Summaries {
    /// Opens (creating if needed) the summary bucket.
    pub async fn open(bus: &Bus) -> Result<Summaries, BusError> {
        Ok(Summaries(
            Bucket::open(bus, &bus.config().summary_bucket).await?,
        ))
    }

    /// Writes an account's summary.
    pub async fn put(&self, s: &SummaryRecord) -> Result<(), BusError> {
        self.0.put(&s.summary.account, s).await
    }

    /// Every account's current summary, then every change.
    pub async fn watch(
        &self,
    ) -> Result<
        impl Stream<Item = Result<(String, Option<SummaryRecord>), BusError>> + Send,
        BusError,
    > {
        self.0.watch("summary").await
    }
}

#[cfg(test)]
mod tests {
    use super::kv_key;

    #[test]
    fn keys_are_readable_when_possible_and_unambiguous() {
        assert_eq!(kv_key("acct_0042"), "acct_0042");
        assert_eq!(kv_key("org-7.team"), "org-7.team");
        assert_eq!(kv_key("a b"), "h.612062");
        assert_eq!(kv_key("h.x"), "h.682e78");
        assert_eq!(kv_key(""), "h.");
        assert_eq!(kv_key("a..b"), format!("h.{}", hex::encode("a..b")));
        for a in ["acct_1", "a b", "h.x", "ünï", "a..b"] {
            assert_eq!(super::account_of_key(&kv_key(a)).as_deref(), Some(a));
        }
    }
}
