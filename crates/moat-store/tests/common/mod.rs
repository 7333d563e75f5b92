#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use moat_store::{AccountLimits, AuditRecord, NewAccount, Store};
use tempfile::TempDir;

/// A store in a fresh temporary directory (the directory lives as long as the returned guard).
pub async fn temp_store() -> (TempDir, Store, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moat.db").to_str().unwrap().to_string();
    let store = Store::open(&path).await.unwrap();
    (dir, store, path)
}

pub fn new_account(id: &str) -> NewAccount {
    NewAccount {
        id: Some(id.to_string()),
        name: format!("{id} Inc."),
        tier: "free".into(),
        email_domain: Some("example.com".into()),
        country: Some("US".into()),
        verified: false,
        limits: AccountLimits::default(),
    }
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 14, 5, 9).unwrap() + chrono::Duration::milliseconds(312)
}

pub fn record(i: u64) -> AuditRecord {
    AuditRecord {
        ts: t0() + chrono::Duration::milliseconds(i as i64 * 1000),
        account: Some("acct_a".into()),
        key_id: Some("key_aaaaaaaaaaaa".into()),
        ip: "198.51.100.17".into(),
        user_agent: "OpenAI/Python 1.51.0".into(),
        api: "openai.chat".into(),
        model: Some("m".into()),
        stream: i % 2 == 0,
        request_body: format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"question {i}"}}],"max_tokens":512}}"#
        ),
        status: 200,
        finish_reason: Some("stop".into()),
        input_tokens: 10 + i,
        output_tokens: 20 + i,
        response_text: Some(format!("answer {i}")),
        latency_ms: 5,
        error: None,
        decision: Some(serde_json::json!({"action": "allow", "risk": 0.01})),
    }
}

/// A raw connection to the database file, bypassing the store (for tampering).
pub async fn raw(path: &str) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    sqlx::SqliteConnection::connect(&format!("sqlite:{path}"))
        .await
        .unwrap()
}
