//! `moat evidence` (build a pack from the audit log) and `moat evidence verify DIR`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use chrono::Utc;
use clap::{Args, Subcommand};
use moat_evidence::{ActionEvent, EvidencePack, PackInput, PriceTable, Selection};

use crate::cli::Cli;
use crate::commands::print_json;

/// `moat evidence`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EvidenceArgs {
    #[command(subcommand)]
    pub cmd: Option<EvidenceCmd>,
    /// Build the pack for the accounts of this detection cluster.
    #[arg(long, conflicts_with = "accounts")]
    pub cluster: Option<String>,
    /// Build the pack for these accounts (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub accounts: Vec<String>,
    /// Start: RFC 3339 time, or a duration ago (e.g. 30d).
    #[arg(long)]
    pub since: Option<String>,
    /// End (exclusive): RFC 3339 time, or a duration ago.
    #[arg(long)]
    pub until: Option<String>,
    /// Output directory (index.html, evidence.json, timeline.svg).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Price table (TOML or JSON; per model, per million tokens). Default: USD 3 / 15.
    #[arg(long)]
    pub prices: Option<PathBuf>,
    /// Clone-verification report (JSON from `moat verify`) to embed.
    #[arg(long)]
    pub verify_report: Option<PathBuf>,
}

/// `moat evidence verify`.
#[derive(Debug, Subcommand)]
pub enum EvidenceCmd {
    /// Check a pack without the database: chain, checkpoint signature, bodies, totals.
    Verify {
        /// Pack directory (or its evidence.json).
        dir: PathBuf,
        /// Public key file (hex) the checkpoint must be signed with; without it the key
        /// embedded in the pack is used (and said so).
        #[arg(long)]
        pubkey: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `moat evidence …`.
pub async fn run(cli: &Cli, a: &EvidenceArgs) -> anyhow::Result<ExitCode> {
    match &a.cmd {
        Some(EvidenceCmd::Verify { dir, pubkey, json }) => verify(dir, pubkey.as_deref(), *json),
        None => build(cli, a).await,
    }
}

fn verify(dir: &Path, pubkey: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let file = if dir.is_dir() {
        dir.join("evidence.json")
    } else {
        dir.to_path_buf()
    };
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let pack: EvidencePack = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an evidence pack", file.display()))?;
    let key = pubkey
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display())))
        .transpose()?;
    match moat_evidence::verify(&pack, key.as_deref().map(str::trim)) {
        Ok(o) => {
            if json {
                print_json(&serde_json::json!({
                    "ok": true, "links": o.links, "records": o.records, "bodies": o.bodies,
                    "checkpoint_seq": o.checkpoint_seq, "key_source": o.key_source, "public_key": o.public_key,
                }));
            } else {
                println!(
                    "OK: {} chain links recomputed ({} records in full, {} bodies matched their digests), \
                     reaching the checkpoint at seq {}; totals recomputed from the records.",
                    o.links, o.records, o.bodies, o.checkpoint_seq
                );
                if o.key_source == "given" {
                    println!(
                        "Signature verified with the given public key {}.",
                        o.public_key
                    );
                } else {
                    println!(
                        "Signature verified with the public key embedded in the pack ({}): compare it \
                         with the key the operator published, or pass --pubkey.",
                        o.public_key
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if json {
                print_json(&serde_json::json!({"ok": false, "error": e}));
            }
            eprintln!("FAILED: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn build(cli: &Cli, a: &EvidenceArgs) -> anyhow::Result<ExitCode> {
    let Some(out) = &a.out else {
        bail!("--out DIR is required (or use `moat evidence verify DIR`)");
    };
    let store = crate::audit::open_keyed_store(cli).await?;
    let r = build_with(&store, a, out).await;
    store.close().await;
    r
}

async fn build_with(
    store: &moat_store::Store,
    a: &EvidenceArgs,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    let (since, until) = crate::commands::time_window(a.since.as_deref(), a.until.as_deref())?;
    let accounts: BTreeSet<String> = match &a.cluster {
        Some(c) => store.audit_cluster_accounts(c).await?.into_iter().collect(),
        None => a.accounts.iter().cloned().collect(),
    };
    if accounts.is_empty() {
        bail!(match &a.cluster {
            Some(c) => format!("no audit record names cluster {c:?}"),
            None => "give --cluster C or --accounts A,B".into(),
        });
    }
    let selection = Selection {
        cluster: a.cluster.clone(),
        accounts: accounts.iter().cloned().collect(),
        since_us: since.map(|t| t.timestamp_micros()),
        until_us: until.map(|t| t.timestamp_micros()),
    };
    let Some((lo, hi)) = store
        .audit_seq_range(
            &accounts,
            selection.since_us.unwrap_or(i64::MIN),
            selection.until_us.unwrap_or(i64::MAX),
        )
        .await?
    else {
        bail!("no audit records for these accounts in this time range");
    };
    let checkpoint = store
        .audit_checkpoints()
        .await?
        .into_iter()
        .filter(|c| c.seq >= hi)
        .min_by_key(|c| c.seq)
        .with_context(|| {
            format!("no signed checkpoint covers seq {hi} yet: run `moat audit checkpoint --key FILE` first")
        })?;
    let span = store
        .audit_span(lo, checkpoint.seq, |r| {
            selection.matches(r.account.as_deref(), r.ts_us)
        })
        .await?;
    let overrides = store
        .list_enforcement()
        .await?
        .into_iter()
        .filter(|o| accounts.contains(&o.account))
        .map(|o| ActionEvent {
            ts: o
                .set_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            account: o.account,
            action: o.action,
            source: o.source,
            seq: None,
            detail: o.reason.unwrap_or_default(),
        })
        .collect();
    let prices = match &a.prices {
        Some(p) => PriceTable::load(p).map_err(anyhow::Error::msg)?,
        None => PriceTable::default(),
    };
    let verify_report = a
        .verify_report
        .as_ref()
        .map(|p| -> anyhow::Result<serde_json::Value> {
            let t =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&t).with_context(|| format!("{} is not JSON", p.display()))
        })
        .transpose()?;
    let pack = moat_evidence::build(PackInput {
        selection,
        span,
        checkpoint,
        overrides,
        prices,
        verify_report,
        generated_at: now,
    });
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let write = |name: &str, text: &str| {
        std::fs::write(out.join(name), text)
            .with_context(|| format!("writing {}", out.join(name).display()))
    };
    write("evidence.json", &serde_json::to_string(&pack)?)?;
    write("index.html", &moat_evidence::html::render(&pack))?;
    write(
        "timeline.svg",
        &moat_evidence::html::timeline_svg(&pack.timeline),
    )?;
    let unreadable = pack
        .proof
        .span
        .links
        .iter()
        .filter(|l| matches!(l, moat_store::SpanLink::Row(e) if e.request_body.is_none()))
        .count();
    if unreadable > 0 {
        eprintln!(
            "note: {unreadable} records are encrypted under keys not configured here: their bodies are left out \
             (the chain still verifies through their digests)"
        );
    }
    eprintln!(
        "evidence pack for {} accounts, {} exchanges (seq {}..{}, checkpoint seq {}) written to {}",
        pack.accounts.len(),
        pack.totals.exchanges,
        pack.proof.first_seq,
        hi,
        pack.proof.checkpoint.seq,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
