//! `moat audit checkpoint | checkpoints export | keygen | import`, and opening the store with
//! the audit encryption keys.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use moat_store::{
    AuditKeyring, AuditRecord, AuditWriter, AuditWriterConfig, CheckpointSigner, Store,
};
use moat_traffic::JsonlReader;

use crate::cli::Cli;
use crate::commands::{config_path, load_config, open_store, print_json};

/// Environment variable with audit keys, `id=HEX[,id=HEX…]` (the last is active unless
/// `MOAT_AUDIT_ACTIVE_KEY` names another). Takes precedence over `[audit.encryption]`.
pub const KEYS_ENV: &str = "MOAT_AUDIT_KEYS";
/// Environment variable naming the active key of `MOAT_AUDIT_KEYS`.
pub const ACTIVE_ENV: &str = "MOAT_AUDIT_ACTIVE_KEY";

/// The audit keyring from `MOAT_AUDIT_KEYS`, else from the config's `[audit.encryption]` (when
/// a config file is there), else none.
pub(crate) fn keyring(cli: &Cli) -> anyhow::Result<Option<AuditKeyring>> {
    if let Ok(spec) = std::env::var(KEYS_ENV) {
        let mut ring = AuditKeyring::from_spec(&spec).context(KEYS_ENV)?;
        if let Ok(active) = std::env::var(ACTIVE_ENV) {
            ring.set_active(&active).context(ACTIVE_ENV)?;
        }
        return Ok(Some(ring));
    }
    if cli.db.is_some() && !config_path(cli).exists() {
        return Ok(None);
    }
    let cfg = load_config(cli)?;
    cfg.audit
        .encryption
        .as_ref()
        .map(|e| e.load_keyring().context("[audit.encryption]"))
        .transpose()
}

/// The store, with the audit keys when configured.
pub(crate) async fn open_keyed_store(cli: &Cli) -> anyhow::Result<Store> {
    let store = open_store(cli).await?;
    Ok(match keyring(cli)? {
        Some(k) => store.with_audit_keys(k),
        None => store,
    })
}

/// `moat audit checkpoint`.
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// Ed25519 signing key file (64 hex digits, from `moat audit keygen`).
    #[arg(long, env = "MOAT_CHECKPOINT_KEY")]
    pub key: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `moat audit checkpoints export`.
#[derive(Debug, Args)]
pub struct CheckpointsExportArgs {
    /// Output JSON file.
    #[arg(long)]
    pub out: PathBuf,
}

/// `moat audit keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Secret key file to create (mode 0600); the public key goes to FILE.pub.
    #[arg(long)]
    pub out: PathBuf,
}

/// `moat audit import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Traffic log (.jsonl or .jsonl.zst, the DESIGN.md format).
    #[arg(long)]
    pub traffic: PathBuf,
    /// `decisions.jsonl` written by `moat replay` over the same traffic file: line i's
    /// decision is stored with record i.
    #[arg(long)]
    pub decisions: Option<PathBuf>,
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o
        .open(path)
        .with_context(|| format!("creating {} (it must not exist)", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Make a checkpoint signing key pair.
pub(crate) fn keygen(a: &KeygenArgs) -> anyhow::Result<ExitCode> {
    let s = CheckpointSigner::generate();
    write_private(&a.out, &format!("{}\n", s.secret_hex()))?;
    let mut pub_path = a.out.clone().into_os_string();
    pub_path.push(".pub");
    std::fs::write(&pub_path, format!("{}\n", s.public_hex()))
        .with_context(|| format!("writing {}", Path::new(&pub_path).display()))?;
    println!(
        "signing key: {} (keep secret)\npublic key:  {} ({})",
        a.out.display(),
        Path::new(&pub_path).display(),
        s.public_hex()
    );
    Ok(ExitCode::SUCCESS)
}

/// Sign the current chain head.
pub(crate) async fn checkpoint(store: &Store, a: &CheckpointArgs) -> anyhow::Result<ExitCode> {
    let signer = CheckpointSigner::from_file(&a.key)?;
    let cp = store.audit_checkpoint(&signer).await?;
    if a.json {
        print_json(&cp);
    } else {
        println!(
            "checkpoint: log {} seq {} head {} at {}\npublic key {}\nsignature {}",
            cp.log_id, cp.seq, cp.head_hash, cp.ts, cp.public_key, cp.signature
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Write every checkpoint as a JSON array.
pub(crate) async fn export_checkpoints(
    store: &Store,
    a: &CheckpointsExportArgs,
) -> anyhow::Result<ExitCode> {
    let cps = store.audit_checkpoints().await?;
    std::fs::write(&a.out, serde_json::to_string_pretty(&cps)?)
        .with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!("exported {} checkpoints to {}", cps.len(), a.out.display());
    Ok(ExitCode::SUCCESS)
}

/// Write a traffic log through the audit writer (same batching, chaining and encryption as the
/// gateway), with the replay's decisions when given.
pub(crate) async fn import(store: &Store, a: &ImportArgs) -> anyhow::Result<ExitCode> {
    let traffic = a.traffic.clone();
    let decisions = a.decisions.clone();
    let (audit, task) = AuditWriter::spawn(
        store.clone(),
        AuditWriterConfig {
            batch_size: 1024,
            // Above the import's own backpressure threshold (20k), so no overflow warnings.
            channel_capacity: 25_000,
            ..Default::default()
        },
    );
    let read = tokio::task::spawn_blocking(move || -> anyhow::Result<(u64, u64)> {
        let mut reader = JsonlReader::<moat_traffic::TrafficRecord>::open(&traffic)
            .with_context(|| format!("opening {}", traffic.display()))?;
        let mut dec = decisions
            .as_ref()
            .map(|p| {
                JsonlReader::<serde_json::Value>::open(p)
                    .with_context(|| format!("opening {}", p.display()))
            })
            .transpose()?;
        let (mut n, mut bad) = (0u64, 0u64);
        for (line_no, line) in reader.by_ref() {
            let decision = match dec.as_mut() {
                Some(d) => match d.next() {
                    Some((_, Ok(v))) => Some(v),
                    Some((k, Err(e))) => bail!("decisions line {k}: {e}"),
                    None => {
                        bail!("decisions file has fewer lines than the traffic (line {line_no})")
                    }
                },
                None => None,
            };
            let Ok(t) = line else {
                bad += 1;
                continue;
            };
            // Backpressure: the writer's queue is unbounded; keep at most ~20k records in memory.
            while audit.stats().queued > 20_000 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            audit.record(AuditRecord {
                ts: t.ts,
                account: Some(t.account),
                key_id: Some(t.key),
                ip: t.ip,
                user_agent: t.user_agent,
                api: t.api,
                model: t
                    .request
                    .get("model")
                    .and_then(|m| m.as_str())
                    .map(String::from),
                stream: t
                    .request
                    .get("stream")
                    .and_then(|s| s.as_bool())
                    .unwrap_or(false),
                request_body: t.request.to_string(),
                status: t.response.status,
                finish_reason: t.response.finish_reason,
                input_tokens: t.response.usage.input_tokens,
                output_tokens: t.response.usage.output_tokens,
                response_text: t.response.text,
                latency_ms: 0,
                error: None,
                decision,
            });
            n += 1;
        }
        if let Some(e) = reader.io_error() {
            bail!("reading {}: {e}", traffic.display());
        }
        Ok((n, bad))
    })
    .await?;
    let stats = task.shutdown().await;
    let (n, bad) = read?;
    eprintln!(
        "imported {n} exchanges ({bad} malformed lines skipped); written {}, lost {}",
        stats.written, stats.lost
    );
    Ok(if stats.lost == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
