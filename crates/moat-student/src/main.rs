//! `moat-student`: train, sample and serve a tiny word-level LM (see the crate docs).

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use moat_student::serve::{router, ServeState};
use moat_student::{
    generate_batch, read_corpus, train, SampleOptions, Student, TrainOptions, Vocab,
};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "moat-student",
    about = "Tiny word-level LM for the watermark radioactivity test"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train a student from scratch on a corpus (JSON Lines with a "text" field per document).
    Train {
        #[arg(long)]
        corpus: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1000)]
        steps: usize,
        #[arg(long, default_value_t = 128)]
        dim: usize,
        #[arg(long, default_value_t = 2)]
        layers: usize,
        #[arg(long, default_value_t = 4)]
        heads: usize,
        #[arg(long, default_value_t = 64)]
        seq: usize,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Vocabulary size (most frequent tokens; the rest is <unk>).
        #[arg(long, default_value_t = 6000)]
        vocab: usize,
        #[arg(long, default_value_t = 3e-3)]
        lr: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 50)]
        log_every: usize,
    },
    /// Sample continuations of prompts (JSON Lines with "text", or plain lines) to JSON Lines.
    Generate {
        #[arg(long)]
        model: PathBuf,
        /// Prompts file; omit and use --prompt for one prompt.
        #[arg(long)]
        prompts: Option<PathBuf>,
        #[arg(long)]
        prompt: Option<String>,
        #[command(flatten)]
        sample: SampleArgs,
        /// Rows decoded together.
        #[arg(long, default_value_t = 64)]
        batch: usize,
    },
    /// Serve the OpenAI chat completions API (non-streaming) on 127.0.0.1.
    Serve {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value_t = 8090)]
        port: u16,
        /// Model name reported by the API.
        #[arg(long, default_value = "student")]
        name: String,
        #[command(flatten)]
        sample: SampleArgs,
        /// Concurrent generations.
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
    },
}

#[derive(clap::Args, Clone)]
struct SampleArgs {
    /// Default maximum tokens (words and punctuation) per answer.
    #[arg(long, default_value_t = 200)]
    max_tokens: usize,
    /// Default temperature (0 = greedy).
    #[arg(long, default_value_t = 0.7)]
    temperature: f64,
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl SampleArgs {
    fn options(&self) -> SampleOptions {
        SampleOptions {
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_k: self.top_k,
            seed: self.seed,
        }
    }
}

fn load(dir: &std::path::Path) -> Result<(Student, Vocab)> {
    Ok((Student::load(dir)?, Vocab::load(&dir.join("vocab.json"))?))
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().cmd {
        Cmd::Train {
            corpus,
            out,
            steps,
            dim,
            layers,
            heads,
            seq,
            batch,
            vocab,
            lr,
            seed,
            log_every,
        } => {
            let docs = read_corpus(&corpus)?;
            let o = TrainOptions {
                steps,
                dim,
                layers,
                heads,
                seq,
                batch,
                vocab,
                lr,
                seed,
                log_every,
            };
            let r = train(&docs, &out, &o)?;
            println!("{}", serde_json::to_string(&r)?);
        }
        Cmd::Generate {
            model,
            prompts,
            prompt,
            sample,
            batch,
        } => {
            let (m, v) = load(&model)?;
            let list = match (prompts, prompt) {
                (Some(p), _) => read_corpus(&p)?,
                (None, Some(p)) => vec![p],
                (None, None) => anyhow::bail!("give --prompts FILE or --prompt TEXT"),
            };
            let gens = generate_batch(&m, &v, &list, &sample.options(), batch)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for (p, g) in list.iter().zip(gens) {
                let line = serde_json::json!({"prompt": p, "text": g.text, "tokens": g.tokens, "stopped": g.stopped});
                writeln!(out, "{line}")?;
            }
        }
        Cmd::Serve {
            model,
            port,
            name,
            sample,
            concurrency,
        } => {
            let (m, v) = load(&model)?;
            let state = Arc::new(ServeState::new(m, v, name, sample.options(), concurrency));
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?;
                tracing::info!(%addr, "moat-student serving /v1/chat/completions");
                axum::serve(listener, router(state)).await?;
                anyhow::Ok(())
            })?;
        }
    }
    Ok(())
}
