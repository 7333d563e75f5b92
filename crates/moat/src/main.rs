//! `moat`: the command-line front end. Thin: parses arguments and calls the
//! library crates (moat-gateway, moat-store, moat-replay).

mod audit;
mod cli;
mod commands;
mod demo;
mod enforce;
mod evidence;
mod mark;
mod verify;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc (per-thread free lists) instead of glibc malloc: cheaper for the many short-lived
/// allocations of a proxied request (measured in BENCHMARKS.md, "Gateway").
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("moat: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(commands::run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("moat: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
