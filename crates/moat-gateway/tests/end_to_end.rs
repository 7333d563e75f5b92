//! In-process end to end: demo upstream + gateway + SQLite store, driven with reqwest.

use std::path::Path;

use moat_gateway::{
    config::{Config, NoEnv},
    ops::{self, CreateAccount, CreateKey},
    ServeOptions,
};
use moat_store::Store;
use serde_json::{json, Value};

fn config(dir: &Path) -> Config {
    let src = format!(
        r#"
[server]
listen = "127.0.0.1:0"
max_body_bytes = 2048
[upstream]
base_url = "demo"
[store]
path = "{}"
[audit]
flush_interval = "10ms"
"#,
        dir.join("moat.db").display()
    );
    Config::parse(&src, "test.toml", dir, &NoEnv).expect("config")
}

/// Creates account `id` with one unrestricted key and returns the key's secret.
async fn account_with_key(store: &Store, id: &str) -> String {
    ops::create_account(
        store,
        CreateAccount {
            id: Some(id.into()),
            ..Default::default()
        },
    )
    .await
    .expect("account");
    ops::create_key(
        store,
        CreateKey {
            account: id.into(),
            ..Default::default()
        },
        chrono::Utc::now(),
    )
    .await
    .expect("key")
    .secret
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_streams_limits_bodies_and_audits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = moat_gateway::start(config(dir.path()), ServeOptions::default())
        .await
        .expect("start");
    let store = running.gateway.store.clone();
    let key = account_with_key(&store, "a1").await;
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let chat = format!("{base}/v1/chat/completions");

    // Non-streamed, with usage.
    let r = http
        .post(&chat)
        .bearer_auth(&key)
        .json(&json!({"model": "demo-echo", "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap_or(0) > 0);

    // Streamed without include_usage: the injected usage chunk is stripped.
    let r = http
        .post(&chat)
        .bearer_auth(&key)
        .json(&json!({"model": "demo-echo", "stream": true, "messages": [{"role": "user", "content": "s"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.headers()["x-accel-buffering"], "no");
    let text = r.text().await.expect("body");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(
        !text.contains("\"choices\":[]"),
        "usage chunk leaked: {text}"
    );

    // Body limit, declared and chunked.
    let big = "x".repeat(4096);
    let r = http
        .post(&chat)
        .bearer_auth(&key)
        .body(big.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 413);
    let chunks: Vec<Result<String, std::io::Error>> = vec![Ok(big.clone()), Ok(big)];
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let r = http
        .post(&chat)
        .bearer_auth(&key)
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "body_too_large");

    // Missing key, Anthropic format.
    let r = http
        .post(format!("{base}/v1/messages"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["code"], "missing_api_key");

    running.shutdown().await.expect("shutdown");

    // Every exchange is in the audit log, with stream usage.
    let store = Store::open(&dir.path().join("moat.db").to_string_lossy())
        .await
        .expect("reopen");
    assert!(store.verify_audit().await.expect("verify").is_ok());
    let rows = store.read_audit(0, 100).await.expect("read");
    let statuses: Vec<u16> = rows.iter().map(|(_, r)| r.status).collect();
    assert_eq!(statuses, vec![200, 200, 413, 413, 401]);
    let streamed = &rows[1].1;
    assert!(streamed.stream && streamed.output_tokens > 0 && streamed.input_tokens > 0);
    assert_eq!(streamed.finish_reason.as_deref(), Some("stop"));
}

/// A test inspector: blocks one model, tags every decision, counts outcomes.
#[derive(Default)]
struct TestInspector {
    observed: std::sync::Mutex<Vec<(String, u16, u64)>>,
}

impl moat_gateway::RequestInspector for TestInspector {
    fn inspect(&self, req: &moat_gateway::InspectRequest<'_>) -> moat_gateway::Inspection {
        moat_gateway::Inspection {
            block: (req.model == "blocked-model").then(|| "test rule".to_string()),
            decision: Some(
                json!({"action": if req.model == "blocked-model" { "block" } else { "allow" }}),
            ),
            features: None,
        }
    }

    fn observe(&self, o: &moat_gateway::InspectOutcome<'_>) {
        if let Ok(mut v) = self.observed.lock() {
            v.push((o.account.to_string(), o.status, o.output_tokens));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspector_hook_blocks_and_observes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inspector = std::sync::Arc::new(TestInspector::default());
    let opts = ServeOptions {
        inspector: Some(inspector.clone()),
        ..Default::default()
    };
    let running = moat_gateway::start(config(dir.path()), opts)
        .await
        .expect("start");
    let store = running.gateway.store.clone();
    let key = account_with_key(&store, "a2").await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/messages", running.addr);
    let send = |model: &'static str| {
        http.post(&url)
            .header("x-api-key", &key)
            .json(&json!({"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    assert_eq!(send("demo-echo").await.expect("send").status(), 200);
    let r = send("blocked-model").await.expect("send");
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "request_blocked");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("test rule"));
    running.shutdown().await.expect("shutdown");

    let observed = inspector.observed.lock().expect("lock").clone();
    assert_eq!(observed.len(), 2);
    assert_eq!((observed[0].1, observed[1].1), (200, 403));
    assert!(observed[0].2 > 0);
    let store = Store::open(&dir.path().join("moat.db").to_string_lossy())
        .await
        .expect("reopen");
    let rows = store.read_audit(0, 10).await.expect("read");
    assert_eq!(rows[1].1.decision, Some(json!({"action": "block"})));
    assert_eq!(rows[1].1.error.as_deref(), Some("request_blocked"));
}

/// Names of this process's threads (Linux: `/proc/self/task/*/comm`).
#[cfg(target_os = "linux")]
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("tasks")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

/// `server.threads = 3`: three serving threads share the port; new connections, streamed and
/// not, all get answers and all reach the audit log, and the threads stop on shutdown.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_threads_share_the_port_and_audit_every_exchange() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.server.threads = moat_gateway::config::ServingThreads::PerThread(3);
    let running = moat_gateway::start(cfg, ServeOptions::default())
        .await
        .expect("start");
    let serving = |names: &[String]| {
        names
            .iter()
            .filter(|n| n.starts_with("moat-serve-"))
            .count()
    };
    // A thread names itself once it runs: allow it a moment.
    for _ in 0..200 {
        if serving(&thread_names()) == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(serving(&thread_names()), 3, "{:?}", thread_names());
    let key = account_with_key(&running.gateway.store, "a3").await;
    let chat = format!("http://{}/v1/chat/completions", running.addr);
    let mut tasks = Vec::new();
    for i in 0..48 {
        // A client per request: a new connection each time, spread by the kernel.
        let (chat, key) = (chat.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let r = reqwest::Client::new()
                .post(&chat)
                .bearer_auth(&key)
                .json(&json!({"model": "demo-echo", "stream": i % 2 == 0,
                    "messages": [{"role": "user", "content": format!("hello {i}")}]}))
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 200);
            let body = r.text().await.expect("body");
            if i % 2 == 0 {
                assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
            } else {
                let v: Value = serde_json::from_str(&body).expect("json");
                let text = v["choices"][0]["message"]["content"].as_str().unwrap_or("");
                assert!(text.contains(&i.to_string()), "{body}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("request task");
    }
    running.shutdown().await.expect("shutdown");
    assert_eq!(serving(&thread_names()), 0, "{:?}", thread_names());

    let store = Store::open(&dir.path().join("moat.db").to_string_lossy())
        .await
        .expect("reopen");
    assert!(store.verify_audit().await.expect("verify").is_ok());
    let rows = store.read_audit(0, 100).await.expect("read");
    assert_eq!(rows.len(), 48);
    assert!(rows
        .iter()
        .all(|(_, r)| r.status == 200 && r.output_tokens > 0));
    assert_eq!(rows.iter().filter(|(_, r)| r.stream).count(), 24);
}
