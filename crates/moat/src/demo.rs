//! `moat demo`: the quickstart. A SQLite file, a demo account and key, and the gateway with
//! every protection on in front of a local upstream: the real SmolLM2-135M model through the
//! embedded backend when it is available (`scripts/fetch-model`), else the templated demo
//! upstream (not a model). Also `moat demo-upstream`, the demo upstream on its own.

use std::{path::Path, process::ExitCode};

use anyhow::Context;
use chrono::Utc;
use moat_gateway::{
    config::{Config, LogConfig, LogFormat},
    ops::{self, CreateAccount, CreateKey},
    ServeOptions,
};
use moat_store::Store;

use crate::cli::{DemoArgs, DemoUpstream, DemoUpstreamArgs};

const DEMO_ACCOUNT: &str = "demo";

/// Runs the quickstart gateway until Ctrl-C.
pub(crate) async fn demo(a: &DemoArgs) -> anyhow::Result<ExitCode> {
    let db = a.demo_db.to_string_lossy().into_owned();
    let upstream = choose_upstream(a)?;
    let src = format!(
        "[server]\nlisten = \"{}\"\n\n{}\n[store]\npath = {:?}\n\n[limits]\nrequests_per_minute = 600\n",
        a.listen,
        upstream.config(),
        db
    );
    let cfg = Config::parse(
        &src,
        "<demo>",
        Path::new(""),
        &moat_gateway::config::ProcessEnv,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    moat_gateway::logging::init(&cfg.log);

    let store = Store::open(&db)
        .await
        .with_context(|| format!("opening {db}"))?;
    if store.get_account(DEMO_ACCOUNT).await?.is_none() {
        ops::create_account(
            &store,
            CreateAccount {
                id: Some(DEMO_ACCOUNT.into()),
                name: Some("Demo account".into()),
                tier: Some("free".into()),
                ..Default::default()
            },
        )
        .await?;
    }
    let key = ops::create_key(
        &store,
        CreateKey {
            account: DEMO_ACCOUNT.into(),
            name: Some("demo".into()),
            ..Default::default()
        },
        Utc::now(),
    )
    .await?;
    store.close().await;

    let running = moat_gateway::start(cfg, ServeOptions::default()).await?;
    let base = format!("http://{}", running.addr);
    let k = &key.secret;
    let (what, model) = (upstream.describe(), upstream.model_id());
    println!(
        r#"
moat demo
=========
The gateway is listening on {base} in front of {what}.
Database: {db} (account "{DEMO_ACCOUNT}"; a new key is created on every run)

API key (shown once): {k}

OpenAI SDK (Python):
    from openai import OpenAI
    client = OpenAI(base_url="{base}/v1", api_key="{k}")
    r = client.chat.completions.create(model="{model}", messages=[{{"role": "user", "content": "hello"}}])
    print(r.choices[0].message.content, r.usage)

Anthropic SDK (Python):
    from anthropic import Anthropic
    client = Anthropic(base_url="{base}", api_key="{k}")
    r = client.messages.create(model="{model}", max_tokens=64, messages=[{{"role": "user", "content": "hello"}}])
    print(r.content[0].text, r.usage)

curl:
    curl -s {base}/v1/chat/completions -H "Authorization: Bearer {k}" \
      -H "content-type: application/json" \
      -d '{{"model":"{model}","messages":[{{"role":"user","content":"hello"}}]}}'

Audit log: moat --db {db} audit verify | moat --db {db} audit export --out traffic.jsonl
Press Ctrl-C to stop.
"#
    );
    running
        .run_until(moat_gateway::server::shutdown_signal())
        .await?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the demo upstream alone (tests, benchmarks).
pub(crate) async fn demo_upstream(a: &DemoUpstreamArgs) -> anyhow::Result<ExitCode> {
    moat_gateway::logging::init(&LogConfig {
        format: LogFormat::Pretty,
        level: "info".into(),
    });
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    eprintln!(
        "moat demo upstream (templated text, NOT a model) listening on http://{}",
        listener.local_addr()?
    );
    moat_demo_upstream::serve(
        listener,
        moat_demo_upstream::DemoOptions {
            required_key: a.require_key.clone(),
        },
        moat_gateway::server::shutdown_signal(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// The upstream the demo runs in front of.
enum Upstream {
    /// The embedded backend serving a GGUF model in-process.
    Model(std::path::PathBuf),
    /// The templated demo upstream (not a model).
    Demo,
}

const MODEL_ID: &str = "smollm2-135m";

impl Upstream {
    fn config(&self) -> String {
        match self {
            Upstream::Model(path) => format!(
                "[upstream]\nbase_url = \"embedded\"\ntimeout = \"300s\"\n\n[upstream.embedded]\nmodel = {:?}\nmodel_id = \"{MODEL_ID}\"\nmax_tokens = 256\n",
                path.to_string_lossy()
            ),
            Upstream::Demo => "[upstream]\nbase_url = \"demo\"\n".into(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Upstream::Model(path) => format!(
                "a REAL MODEL, {} (embedded backend, CPU; answers take a few seconds)",
                path.display()
            ),
            Upstream::Demo => "moat's DEMO UPSTREAM.\nThe demo upstream is NOT a model: it answers \
                 with templated text that echoes your prompt.\nFor a real model: scripts/fetch-model, \
                 then run moat demo again"
                .into(),
        }
    }

    fn model_id(&self) -> &'static str {
        match self {
            Upstream::Model(_) => MODEL_ID,
            Upstream::Demo => "demo-echo",
        }
    }
}

/// `--upstream auto` takes the model when this build has the embedded backend and the file
/// exists; `model` insists on it; `demo` never uses it.
fn choose_upstream(a: &DemoArgs) -> anyhow::Result<Upstream> {
    let embedded = cfg!(feature = "embedded");
    let present = a.model.is_file();
    match a.upstream {
        DemoUpstream::Demo => Ok(Upstream::Demo),
        DemoUpstream::Model if !embedded => anyhow::bail!(
            "this moat was built without the `embedded` feature (the in-process model backend); \
             rebuild with `cargo build --release -p moat --features embedded`"
        ),
        DemoUpstream::Model if !present => anyhow::bail!(
            "{} is absent: run scripts/fetch-model (or pass --model PATH)",
            a.model.display()
        ),
        DemoUpstream::Auto if !(embedded && present) => Ok(Upstream::Demo),
        _ => Ok(Upstream::Model(std::path::absolute(&a.model)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(upstream: DemoUpstream, model: &str) -> DemoArgs {
        DemoArgs {
            listen: "127.0.0.1:0".parse().unwrap(),
            demo_db: "x.db".into(),
            upstream,
            model: model.into(),
        }
    }

    #[test]
    fn upstream_choice() {
        let missing = "/nonexistent/model.gguf";
        assert!(matches!(
            choose_upstream(&args(DemoUpstream::Auto, missing)),
            Ok(Upstream::Demo)
        ));
        assert!(matches!(
            choose_upstream(&args(DemoUpstream::Demo, missing)),
            Ok(Upstream::Demo)
        ));
        assert!(choose_upstream(&args(DemoUpstream::Model, missing)).is_err());
        let file = std::env::temp_dir().join("moat-demo-test-model.gguf");
        std::fs::write(&file, b"x").unwrap();
        let f = file.to_str().unwrap();
        let auto = choose_upstream(&args(DemoUpstream::Auto, f)).unwrap();
        assert_eq!(
            matches!(auto, Upstream::Model(_)),
            cfg!(feature = "embedded")
        );
        // The generated config parses.
        for u in [auto, Upstream::Demo] {
            let src = format!("{}\n[store]\npath = \"x.db\"\n", u.config());
            Config::parse(&src, "<t>", Path::new(""), &moat_gateway::config::NoEnv)
                .map_err(|e| e.to_string())
                .unwrap();
        }
    }
}
