//! The replay pipeline: read → parse + extract features (parallel) → engine (in order) → write.

use std::borrow::Cow;
use std::path::Path;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use moat_detect::{AccountMeta, Api, Decision, Engine, Outcome, RequestFeatures, RequestView};
use moat_traffic::{
    parse_rfc3339_ms, AccountRecord, JsonlReader, JsonlWriter, LineReader, TrafficResponse,
};
use rayon::prelude::*;

use crate::{load_detect_config, ReplayOptions, ReplaySummary};

const CHUNK: usize = 4096;

/// The snapshot file's first line names the features (`{"features":[...]}`); each other
/// line is `{"line":N,"k":K,"block":B,"phi":[...]}`, where `line` is
/// the 0-based traffic line, `k` the account's request count at that line (1-based),
/// `block` the evidence block (`account`, `cluster`, `substream`, `principal`) and `phi`
/// its feature values in `moat_detect::Feature` order. Sampled at each account's requests
/// 1–8, then at 12, 16, 24, 32, 48, 64, … (×1.5 / ×4/3 steps) and at every 64th.
pub const SNAPSHOT_FORMAT: &str = "{line, k, block, phi}";

/// Whether an account's `k`-th request is sampled for a snapshot.
fn sampled(k: u32) -> bool {
    if k <= 8 || k.is_multiple_of(64) {
        return true;
    }
    // 12, 16, 24, 32, 48, 64, 96, 128, ...
    let p = 31 - k.leading_zeros();
    k == 1 << p || k == 3 << (p - 1)
}

/// One traffic line, ready for the engine.
enum Parsed {
    Exchange {
        ts_ms: i64,
        account: String,
        features: Box<RequestFeatures>,
        outcome: Outcome,
    },
    Malformed {
        line_no: u64,
        error: String,
    },
}

/// Borrowed view of one traffic line: the same required fields as
/// [`moat_traffic::TrafficRecord`], with the request parsed straight into the engine's
/// [`RequestView`] (no intermediate `serde_json::Value`).
#[derive(serde::Deserialize)]
struct LineView<'a> {
    #[serde(borrow)]
    ts: Cow<'a, str>,
    #[serde(borrow)]
    account: Cow<'a, str>,
    #[serde(borrow, default)]
    key: Cow<'a, str>,
    #[serde(borrow, default)]
    ip: Cow<'a, str>,
    #[serde(borrow, default)]
    user_agent: Cow<'a, str>,
    #[serde(borrow)]
    api: Cow<'a, str>,
    #[serde(borrow, default)]
    request: Option<RequestView<'a>>,
    #[serde(default)]
    response: TrafficResponse,
}

fn parse_line(line_no: u64, line: Result<String, moat_traffic::LineError>) -> Parsed {
    let malformed = |error: String| Parsed::Malformed { line_no, error };
    let line = match line {
        Ok(l) => l,
        Err(e) => return malformed(e.to_string()),
    };
    let rec: LineView<'_> = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => return malformed(format!("malformed JSON: {e}")),
    };
    let Some(ts_ms) = parse_rfc3339_ms(&rec.ts) else {
        return malformed(format!("bad timestamp {:?}", rec.ts));
    };
    let Some(api) = Api::from_wire(&rec.api) else {
        return malformed(format!("unknown api {:?}", rec.api));
    };
    let features = RequestFeatures::from_view(api, &rec.request.unwrap_or_default(), &rec.ip)
        .with_client(&rec.key, &rec.user_agent);
    let r = rec.response;
    Parsed::Exchange {
        ts_ms,
        account: rec.account.into_owned(),
        features: Box::new(features),
        outcome: Outcome::new(
            r.status,
            r.finish_reason.as_deref(),
            r.usage.input_tokens,
            r.usage.output_tokens,
        ),
    }
}

fn load_accounts(
    path: &Path,
    engine: &mut Engine,
    summary: &mut ReplaySummary,
) -> anyhow::Result<()> {
    let mut reader = JsonlReader::<AccountRecord>::open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    for (line_no, rec) in reader.by_ref() {
        match rec {
            Ok(r) => {
                summary.account_records += 1;
                engine.upsert_account(AccountMeta {
                    created_ms: r.created_ms(),
                    id: r.account,
                    tier: r.tier,
                    email_domain: r.email_domain,
                    country: r.country,
                    verified: r.verified,
                    allowlisted: r.allowlisted,
                });
            }
            Err(e) => {
                summary.malformed_account_records += 1;
                eprintln!("{} line {line_no}: {e}", path.display());
            }
        }
    }
    if let Some(e) = reader.io_error() {
        anyhow::bail!("reading {}: {e}", path.display());
    }
    Ok(())
}

/// Runs a replay (see the crate docs for the contract).
pub fn run(opts: &ReplayOptions) -> anyhow::Result<ReplaySummary> {
    let start = Instant::now();
    let cfg = match &opts.config {
        Some(p) => load_detect_config(p)?,
        None => Default::default(),
    };
    let mut engine = Engine::new(cfg);
    let mut summary = ReplaySummary::default();
    load_accounts(&opts.accounts, &mut engine, &mut summary)?;

    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let mut decisions = JsonlWriter::create(opts.out.join("decisions.jsonl"))?;
    let lines = LineReader::open(&opts.traffic)
        .with_context(|| format!("opening {}", opts.traffic.display()))?;

    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} replay {human_pos} exchanges ({per_sec}) {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );

    // reader thread: read chunks of lines, parse them in parallel, send in order
    let (tx, rx) = mpsc::sync_channel::<anyhow::Result<Vec<Parsed>>>(4);
    let reader = std::thread::spawn(move || {
        let mut lines = lines;
        loop {
            let mut chunk = Vec::with_capacity(CHUNK);
            let mut failed = None;
            while chunk.len() < CHUNK {
                match lines.next_line() {
                    Ok(Some(l)) => chunk.push(l),
                    Ok(None) => break,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            let done = chunk.len() < CHUNK;
            if !chunk.is_empty() {
                let parsed: Vec<Parsed> = chunk
                    .into_par_iter()
                    .map(|(n, l)| parse_line(n, l))
                    .collect();
                if tx.send(Ok(parsed)).is_err() {
                    return;
                }
            }
            if let Some(e) = failed {
                let _ = tx.send(Err(anyhow::Error::from(e).context("reading traffic")));
                return;
            }
            if done {
                return;
            }
        }
    });

    let mut snapshots = match &opts.snapshots {
        Some(p) => {
            let mut w = JsonlWriter::create(p)?;
            let names: Vec<&str> = moat_detect::Feature::ALL.map(|f| f.name()).to_vec();
            w.write(&serde_json::json!({ "features": names }))?;
            Some((w, std::collections::HashMap::<String, u32>::new()))
        }
        None => None,
    };
    let mut buf = Vec::with_capacity(256);
    let mut counts = [0u64; 5];
    for chunk in rx {
        let chunk = chunk?;
        for p in &chunk {
            let d = match p {
                Parsed::Exchange {
                    ts_ms,
                    account,
                    features,
                    outcome,
                } => {
                    let k = snapshots.as_mut().map(|(_, seen)| {
                        let k = seen.entry(account.clone()).or_insert(0);
                        *k += 1;
                        *k
                    });
                    let sample = k.is_some_and(sampled);
                    if snapshots.is_some() {
                        engine.keep_snapshots(sample);
                    }
                    let d = engine.decide_features(*ts_ms, account, features);
                    engine.settle(account, outcome);
                    if let (Some((w, _)), true) = (snapshots.as_mut(), sample) {
                        for s in engine.take_snapshot() {
                            let phi: Vec<f64> =
                                s.phi.iter().map(|x| (x * 1e4).round() / 1e4).collect();
                            w.write(&serde_json::json!({
                                "line": summary.lines,
                                "k": k,
                                "block": s.block,
                                "phi": phi,
                            }))?;
                        }
                    }
                    d
                }
                Parsed::Malformed { line_no, error } => {
                    summary.malformed += 1;
                    bar.suspend(|| eprintln!("{} line {line_no}: {error}", opts.traffic.display()));
                    Decision::allow()
                }
            };
            counts[d.action as usize] += 1;
            buf.clear();
            serde_json::to_writer(&mut buf, &d)?;
            decisions.write_raw_line(std::str::from_utf8(&buf)?)?;
            summary.lines += 1;
        }
        bar.inc(chunk.len() as u64);
    }
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader thread panicked"))?;
    decisions.finish()?;
    if let Some((w, _)) = snapshots {
        w.finish()?;
    }
    bar.finish_and_clear();

    let mut accounts = JsonlWriter::create(opts.out.join("accounts.jsonl"))?;
    for r in engine.account_reports() {
        accounts.write(&r)?;
        summary.accounts += 1;
    }
    accounts.finish()?;

    for a in [
        moat_detect::Action::Allow,
        moat_detect::Action::Throttle,
        moat_detect::Action::Degrade,
        moat_detect::Action::Challenge,
        moat_detect::Action::Block,
    ] {
        summary
            .actions
            .insert(a.as_str().to_string(), counts[a as usize]);
    }
    summary.seconds = start.elapsed().as_secs_f64();
    summary.exchanges_per_second = summary.lines as f64 / summary.seconds.max(1e-9);
    summary.state_bytes_per_account = engine.state_bytes_per_account();
    summary.account_state_bytes = Engine::account_state_bytes() as u64;
    Ok(summary)
}
