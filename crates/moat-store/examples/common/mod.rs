//! What the store examples share: a realistic audit record.

use moat_store::AuditRecord;

/// Audit record number `i`: a chat exchange of about 1 KB of prompt and answer, 50 accounts.
pub fn record(i: usize) -> AuditRecord {
    let prompt = format!("Explain step {i} of the proof in detail. ").repeat(30);
    AuditRecord {
        ts: chrono::DateTime::from_timestamp(1_770_000_000 + i as i64, 0).unwrap_or_default(),
        account: Some(format!("acct_{}", i % 50)),
        key_id: Some(format!("key_{}", i % 50)),
        ip: "198.51.100.7".into(),
        user_agent: "OpenAI/Python 1.51.0".into(),
        api: "openai.chat".into(),
        model: Some("m".into()),
        stream: false,
        request_body: format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"{prompt}"}}],"max_tokens":512}}"#
        ),
        status: 200,
        finish_reason: Some("stop".into()),
        input_tokens: 300,
        output_tokens: 250,
        response_text: Some("The answer follows from the lemma. ".repeat(28)),
        latency_ms: 40,
        error: None,
        decision: Some(
            serde_json::json!({"action":"allow","risk":0.01,"reasons":[],"cluster":null}),
        ),
    }
}
