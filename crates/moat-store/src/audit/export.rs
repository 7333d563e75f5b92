//! Reading the audit log back, and exporting it in the `DESIGN.md` traffic log format.
//!
//! [`Store::export_traffic`] writes one JSON line per exchange ([`moat_traffic::TrafficRecord`],
//! written with [`moat_traffic::JsonlWriter`], zstd when the path ends in `.zst`) in arrival
//! order (`ts`, then `seq`). Rows that cannot be represented in that format are **skipped and
//! counted** in [`ExportReport`] (never written as placeholder lines, since a replay expects
//! every line to be a real request):
//!
//! * rows without an account (requests refused before authentication: malformed or unknown
//!   keys): the traffic format requires an account;
//! * rows whose `api` is not one of `openai.chat`, `openai.completions`,
//!   `anthropic.messages` (e.g. `openai.models`);
//! * rows whose request body is not a JSON value (garbage, or truncated by the gateway's
//!   body-size limit for the audit log).
//!
//! Requests of authenticated accounts that were refused later (rate limits, detection blocks)
//! are exported, with their status.

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use moat_traffic::{AccountRecord, JsonlWriter, TrafficRecord, TrafficResponse, Usage};
use sqlx::Row;

use super::chain::{AuditRow, ROW_COLUMNS};
use super::AuditRecord;
use crate::db::Timed;
use crate::error::DbContext;
use crate::time::to_us;
use crate::{Store, StoreError};

const PAGE: i64 = 2_000;

/// What [`Store::export_traffic_report`] wrote and skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Lines written.
    pub written: u64,
    /// Rows without an account (refused before authentication).
    pub skipped_unauthenticated: u64,
    /// Rows of an API outside the traffic format (e.g. `openai.models`).
    pub skipped_other_api: u64,
    /// Rows whose request body is not JSON (garbage or truncated).
    pub skipped_non_json: u64,
}

impl ExportReport {
    /// Rows not exported, all reasons together.
    pub fn skipped(&self) -> u64 {
        self.skipped_unauthenticated + self.skipped_other_api + self.skipped_non_json
    }
}

const TRAFFIC_APIS: [&str; 3] = [
    moat_traffic::api::OPENAI_CHAT,
    moat_traffic::api::OPENAI_COMPLETIONS,
    moat_traffic::api::ANTHROPIC_MESSAGES,
];

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The traffic line for one audit record, or which skip counter applies.
fn to_traffic(rec: AuditRecord, report: &mut ExportReport) -> Option<TrafficRecord> {
    let Some(account) = rec.account else {
        report.skipped_unauthenticated += 1;
        return None;
    };
    if !TRAFFIC_APIS.contains(&rec.api.as_str()) {
        report.skipped_other_api += 1;
        return None;
    }
    let Ok(request) = serde_json::from_str::<serde_json::Value>(&rec.request_body) else {
        report.skipped_non_json += 1;
        return None;
    };
    Some(TrafficRecord {
        ts: rec.ts,
        account,
        key: rec.key_id.unwrap_or_default(),
        ip: rec.ip,
        user_agent: rec.user_agent,
        api: rec.api,
        request,
        response: TrafficResponse {
            status: rec.status,
            finish_reason: rec.finish_reason,
            usage: Usage {
                input_tokens: rec.input_tokens,
                output_tokens: rec.output_tokens,
            },
            text: rec.response_text,
        },
    })
}

impl Store {
    /// Audit records with `seq > after_seq`, in sequence order, at most `limit`.
    pub async fn read_audit(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<(i64, AuditRecord)>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ROW_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .timed(self, "reading audit log")
        .await?;
        rows.iter()
            .map(|r| {
                let row = AuditRow::from_sql(r)?;
                Ok((row.chain.seq, row.to_record(self.audit_keys())?))
            })
            .collect()
    }

    /// Number of rows in the audit log.
    pub async fn audit_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM audit_log")
            .fetch_one(self.pool())
            .timed(self, "counting audit records")
            .await?
            .try_get(0)
            .db("counting audit records")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Export exchanges with `since <= ts < until` to `out` (see the module docs); returns
    /// the number of lines written. Blocking file writes happen on the calling task; this is
    /// meant for the CLI, not the request path.
    pub async fn export_traffic(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        out: &Path,
    ) -> Result<u64, StoreError> {
        Ok(self.export_traffic_report(since, until, out).await?.written)
    }

    /// Like [`Store::export_traffic`], also reporting the skipped rows.
    pub async fn export_traffic_report(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        out: &Path,
    ) -> Result<ExportReport, StoreError> {
        let since_us = since.map_or(i64::MIN, to_us);
        let until_us = until.map_or(i64::MAX, to_us);
        let mut writer = JsonlWriter::create(out).map_err(io_err(out))?;
        let mut report = ExportReport::default();
        let (mut cursor_ts, mut cursor_seq) = (i64::MIN, i64::MIN);
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {ROW_COLUMNS} FROM audit_log \
                 WHERE ts_us >= $1 AND ts_us < $2 AND (ts_us, seq) > ($3, $4) \
                 ORDER BY ts_us, seq LIMIT $5"
            ))
            .bind(since_us)
            .bind(until_us)
            .bind(cursor_ts)
            .bind(cursor_seq)
            .bind(PAGE)
            .fetch_all(self.pool())
            .timed(self, "reading audit log for export")
            .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let row = AuditRow::from_sql(row)?;
                (cursor_ts, cursor_seq) = (row.chain.ts_us, row.chain.seq);
                if let Some(line) = to_traffic(row.to_record(self.audit_keys())?, &mut report) {
                    writer.write(&line).map_err(io_err(out))?;
                    report.written += 1;
                }
            }
        }
        writer.finish().map_err(io_err(out))?;
        if report
            != (ExportReport {
                written: report.written,
                ..Default::default()
            })
        {
            tracing::info!(
                ?report,
                "traffic export skipped rows that the traffic format cannot hold"
            );
        }
        Ok(report)
    }

    /// Export all accounts in the `accounts.jsonl` format (zstd when the path ends in `.zst`);
    /// returns the number of lines written.
    pub async fn export_accounts(&self, out: &Path) -> Result<u64, StoreError> {
        let accounts = self.list_accounts().await?;
        let mut writer = JsonlWriter::create(out).map_err(io_err(out))?;
        for a in &accounts {
            let line = AccountRecord {
                account: a.id.clone(),
                created: Some(a.created_at.to_rfc3339_opts(SecondsFormat::Secs, true)),
                tier: Some(a.tier.clone()),
                email_domain: a.email_domain.clone(),
                country: a.country.clone(),
                verified: Some(a.verified),
                allowlisted: false,
            };
            writer.write(&line).map_err(io_err(out))?;
        }
        writer.finish().map_err(io_err(out))?;
        Ok(accounts.len() as u64)
    }
}
