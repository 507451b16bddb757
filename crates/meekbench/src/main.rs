//! meekbench: measures what it really costs to run small open language models on local hardware.
//!
//! This file parses the command line and dispatches; `cli` holds the flags, `commands/` one module per group of
//! subcommands, and every decision lives in a library crate (see ARCHITECTURE.md).

mod cli;
mod commands;
mod summary;
mod sweep;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use cli::{Cli, Command};
use commands::{bench, doctor, lock, merge, models, reports};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Bench(args) => bench::bench(args),
        Command::Tokenize(args) => models::tokenize(args),
        Command::Generate(args) => models::generate(args),
        Command::Models(args) => models::models(args),
        Command::Lock(args) => lock::lock(args),
        Command::Digest(args) => models::digest(args),
        Command::Project(args) => reports::project(args),
        Command::Compare(args) => reports::compare(args),
        Command::Leaderboard(args) => reports::leaderboard(args),
        Command::Merge(args) => merge::merge(args),
        Command::Doctor(args) => doctor::doctor(args),
        Command::Schema => {
            print!("{}", meek_schema::json_schema());
            Ok(ExitCode::SUCCESS)
        }
        Command::MeasureChild { request, result } => {
            // Ctrl-C reaches this process too (same process group), or the parent forwards its interrupt: finish
            // the repetition or item in progress and hand back what was measured.
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = stop.clone();
            ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::SeqCst))
                .context("cannot install the Ctrl-C handler")?;
            let stopped = || stop.load(std::sync::atomic::Ordering::SeqCst);
            Ok(ExitCode::from(
                meek_runner::child_main(&request, &result, &stopped) as u8,
            ))
        }
    }
}
