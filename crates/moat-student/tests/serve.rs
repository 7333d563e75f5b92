//! The HTTP endpoint answers in the OpenAI chat-completion shape and rejects bad requests
//! with OpenAI-style error JSON.

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use moat_student::serve::{router, ServeState};
use moat_student::{ModelConfig, SampleOptions, Student, Vocab};
use serde_json::{json, Value};
use std::sync::Arc;

async fn start() -> String {
    let vocab = Vocab::build(["the cat sat on the mat. it did not move."], 50);
    let cfg = ModelConfig {
        vocab: vocab.len(),
        dim: 16,
        layers: 1,
        heads: 2,
        seq: 32,
    };
    let vm = VarMap::new();
    let model = Student::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    let opts = SampleOptions {
        max_tokens: 12,
        ..SampleOptions::default()
    };
    let state = Arc::new(ServeState::new(
        model,
        vocab,
        "student-test".into(),
        opts,
        1,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn chat_completion_in_openai_shape() {
    let base = start().await;
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({
            "model": "student-test",
            "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "the cat"}],
            "max_tokens": 5,
            "temperature": 0.5,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "student-test");
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(choice["message"]["content"].is_string());
    assert!(["stop", "length"].contains(&choice["finish_reason"].as_str().unwrap()));
    let completion = v["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(completion <= 5);
    assert_eq!(v["usage"]["prompt_tokens"], 2);
    assert_eq!(v["usage"]["total_tokens"].as_u64().unwrap(), 2 + completion);

    let models: Value = c
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "student-test");
}

#[tokio::test]
async fn bad_requests_get_openai_errors() {
    let base = start().await;
    let c = reqwest::Client::new();
    let cases = [
        (json!({"model": "m"}), "messages"),
        (
            json!({"model": "m", "messages": [{"role": "assistant", "content": "hi"}]}),
            "messages",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 9}),
            "temperature",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}),
            "max_tokens",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "stream": true}),
            "stream",
        ),
    ];
    for (body, param) in cases {
        let r = c
            .post(format!("{base}/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], param, "{body}");
    }
    let r = c
        .post(format!("{base}/v1/chat/completions"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"].is_string());
}
