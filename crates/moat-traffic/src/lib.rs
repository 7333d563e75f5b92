//! The moat traffic log format (see `DESIGN.md`, "Traffic log format").
//!
//! One exchange per line ([`TrafficRecord`]), in arrival order, JSON Lines, plain or
//! zstd-compressed (`.zst`). Account metadata lives in a separate JSON Lines file, one
//! [`AccountRecord`] per line.
//!
//! * [`TrafficRecord`] / [`AccountRecord`]: serde types. Unknown fields are ignored and
//!   optional fields may be missing.
//! * [`LineReader`]: reads raw lines (plain or `.zst`) with their 1-based line numbers.
//! * [`JsonlReader`]: parses each line into a record and yields
//!   `(line_number, Result<record, LineError>)`, so malformed lines can be reported by
//!   number and counted while reading goes on.
//! * [`JsonlWriter`]: writes records as JSON Lines, zstd-compressed when the path ends in
//!   `.zst`.
//!
//! ```no_run
//! use moat_traffic::{JsonlReader, TrafficRecord};
//! for (line, rec) in JsonlReader::<TrafficRecord>::open("traffic.jsonl.zst").unwrap() {
//!     match rec {
//!         Ok(r) => println!("{line}: {} {}", r.account, r.api),
//!         Err(e) => eprintln!("line {line}: {e}"),
//!     }
//! }
//! ```

#![warn(missing_docs)]

mod reader;
mod record;
mod time;
mod writer;

pub use reader::{open_maybe_zstd, JsonlReader, LineError, LineReader};
pub use record::{AccountRecord, TrafficRecord, TrafficResponse, Usage};
pub use time::{format_rfc3339_ms, parse_rfc3339_ms};
pub use writer::JsonlWriter;

/// Wire names of the three supported APIs (the `api` field).
pub mod api {
    /// OpenAI chat completions (`/v1/chat/completions`).
    pub const OPENAI_CHAT: &str = "openai.chat";
    /// OpenAI legacy completions (`/v1/completions`).
    pub const OPENAI_COMPLETIONS: &str = "openai.completions";
    /// Anthropic messages (`/v1/messages`).
    pub const ANTHROPIC_MESSAGES: &str = "anthropic.messages";
}
