//! The HTTP service over the real model (skipped when the GGUF is absent).
#![cfg(feature = "embedded")]

use moat_backend::{spawn_backend, BackendConfig};
use serde_json::{json, Value};
use std::path::PathBuf;

fn model_path() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(moat_backend::DEFAULT_MODEL_PATH);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED: {} is absent; run scripts/fetch-model",
            p.display()
        );
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_openai_and_anthropic_shapes() {
    let Some(path) = model_path() else { return };
    let mut cfg = BackendConfig::new(path);
    cfg.model_id = "smol".into();
    cfg.required_key = Some("upstream-key".into());
    let (addr, _task) = spawn_backend(cfg).await.unwrap();
    let base = format!("http://{addr}");
    let c = reqwest::Client::new();

    let r = c.get(format!("{base}/v1/models")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r: Value = c
        .get(format!("{base}/v1/models"))
        .bearer_auth("upstream-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"][0]["id"], "smol");

    let q = json!([{"role": "user", "content": "What is 2+2?"}]);
    let r: Value = c
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("upstream-key")
        .json(&json!({"model": "m", "messages": q, "max_tokens": 12, "temperature": 0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = r["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains('4'), "{r}");
    assert_eq!(r["model"], "m");
    let usage = &r["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    // Streaming chat: the concatenated deltas equal the non-streamed text.
    let body = c
        .post(format!("{base}/v1/chat/completions"))
        .header("x-api-key", "upstream-key")
        .json(
            &json!({"messages": q, "max_tokens": 12, "temperature": 0, "stream": true,
            "stream_options": {"include_usage": true}}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut streamed = String::new();
    let mut saw_usage = false;
    for line in body.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if line == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(line).unwrap();
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            streamed.push_str(t);
        }
        saw_usage |= v["usage"]["completion_tokens"].is_u64();
    }
    assert_eq!(streamed, text);
    assert!(saw_usage && body.trim_end().ends_with("data: [DONE]"));

    // Anthropic, streaming.
    let body = c
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", "upstream-key")
        .json(
            &json!({"model": "m", "messages": q, "max_tokens": 12, "temperature": 0,
            "stream": true}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("event: message_start") && body.contains("event: message_stop"));
    // Anthropic requires max_tokens.
    let r = c
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", "upstream-key")
        .json(&json!({"messages": q}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
}
