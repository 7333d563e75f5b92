//! `moat replay`: runs the detection engine offline over a traffic log.
//!
//! Contract (`DESIGN.md`, "Replay contract"): reads the traffic log (plain or `.zst`) and
//! `accounts.jsonl`, optionally a `moat.toml` whose `[detect]` table overrides the
//! engine thresholds (unknown keys are rejected), and writes
//!
//! * `OUT/decisions.jsonl`: exactly one line per input line, in the same order
//!   (`{"action":..,"risk":..,"reasons":[..],"cluster":null|"cl_N"}`); a malformed line
//!   gets an `allow` line, is reported on stderr with its line number and counted;
//! * `OUT/accounts.jsonl`: one line per account at the end.
//!
//! Lines are parsed and their features extracted in parallel (rayon, in chunks) on a
//! reader thread, while the engine is fed strictly in input order on the calling thread.

#![warn(missing_docs)]

mod config;
mod pipeline;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use config::load_detect_config;
pub use pipeline::{run, SNAPSHOT_FORMAT};

/// What to replay and where to write the results.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Traffic log (`.jsonl` or `.jsonl.zst`).
    pub traffic: PathBuf,
    /// Account metadata (`accounts.jsonl`, plain or `.zst`).
    pub accounts: PathBuf,
    /// Output directory (created if missing).
    pub out: PathBuf,
    /// Optional `moat.toml`; its `[detect]` table overrides engine thresholds.
    pub config: Option<PathBuf>,
    /// Research: also write the feature values behind a sample of each account's decisions
    /// to this file (JSON Lines; see [`pipeline::SNAPSHOT_FORMAT`]), for fitting weights.
    pub snapshots: Option<PathBuf>,
}

/// Counts and timings of a replay.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReplaySummary {
    /// Traffic lines read (= lines written to `decisions.jsonl`).
    pub lines: u64,
    /// Malformed traffic lines (answered `allow`).
    pub malformed: u64,
    /// Account metadata lines loaded.
    pub account_records: u64,
    /// Malformed account metadata lines (skipped).
    pub malformed_account_records: u64,
    /// Accounts in `accounts.jsonl` of the output.
    pub accounts: u64,
    /// Decisions per action.
    pub actions: BTreeMap<String, u64>,
    /// Wall-clock seconds of the whole replay.
    pub seconds: f64,
    /// Traffic lines per second.
    pub exchanges_per_second: f64,
    /// Approximate engine state bytes per account at the end, including each account's
    /// share of the cross-account index and the account-id map.
    pub state_bytes_per_account: f64,
    /// Fixed-size per-account state in bytes (counters, sketches, rings).
    pub account_state_bytes: u64,
}
