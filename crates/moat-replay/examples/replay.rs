//! Development driver with the same flags as `moat replay`:
//!
//! ```text
//! cargo run --release -p moat-replay --example replay -- \
//!     --traffic ../shared/traffic/dev/traffic.jsonl.zst \
//!     --accounts ../shared/traffic/dev/accounts.jsonl --out /tmp/r1 [--config moat.toml]
//! ```

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut opts = moat_replay::ReplayOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .map(PathBuf::from)
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--traffic" => opts.traffic = value()?,
            "--accounts" => opts.accounts = value()?,
            "--out" => opts.out = value()?,
            "--config" => opts.config = Some(value()?),
            "--snapshots" => opts.snapshots = Some(value()?),
            other => anyhow::bail!(
                "unknown flag {other}; usage: --traffic F --accounts F --out DIR [--config F]"
            ),
        }
    }
    anyhow::ensure!(
        !opts.traffic.as_os_str().is_empty()
            && !opts.accounts.as_os_str().is_empty()
            && !opts.out.as_os_str().is_empty(),
        "usage: --traffic F --accounts F --out DIR [--config F]"
    );
    let s = moat_replay::run(&opts)?;
    eprintln!(
        "replayed {} exchanges ({} malformed) from {} accounts in {:.2}s: {:.0} exchanges/s, state {} bytes/account fixed, ~{:.0} bytes/account with indexes",
        s.lines,
        s.malformed,
        s.accounts,
        s.seconds,
        s.exchanges_per_second,
        s.account_state_bytes,
        s.state_bytes_per_account
    );
    eprintln!("actions: {:?}", s.actions);
    eprintln!(
        "accounts with several principals add {} bytes each",
        moat_detect::Engine::principal_table_bytes()
    );
    Ok(())
}
