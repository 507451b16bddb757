//! `meekbench bench`: builds the plan from the config and the flags, installs the interrupt handler, runs the
//! plan with a child process per measurement, and prints the summary.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use meek_config::{Overrides, Plan};
use meek_schema::ToolInfo;

use super::load_config;
use crate::cli::BenchArgs;
use crate::summary;

/// This build, as recorded in every result file.
pub fn tool_info() -> ToolInfo {
    let commit = env!("MEEKBENCH_GIT_COMMIT");
    ToolInfo {
        name: "meekbench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        git_commit: (!commit.is_empty()).then(|| commit.to_string()),
        features: meek_engine::compiled_features(),
        target: env!("MEEKBENCH_TARGET").into(),
        rustc: env!("MEEKBENCH_RUSTC").into(),
        profile: env!("MEEKBENCH_PROFILE").into(),
        engine: meek_engine::ENGINE.into(),
    }
}

/// Runs a bench; exit status 130 when interrupted, failure when a measurement failed.
pub fn bench(args: BenchArgs) -> Result<ExitCode> {
    let cfg = match (&args.resume, &args.config) {
        // Resuming without CONFIG: the config recorded in the result file, as it was run.
        (Some(file), None) => {
            let previous = meek_schema::read_file(file)
                .with_context(|| format!("cannot resume {}", file.display()))?;
            let lock = previous
                .config
                .lock
                .as_deref()
                .map(|text| {
                    let origin = format!("the lock recorded in {}", file.display());
                    meek_config::LoadedLock::parse(text, &origin)
                })
                .transpose()
                .map_err(anyhow::Error::msg)?;
            meek_config::parse_locked(&previous.config.text, &previous.config.source, lock)
                .with_context(|| format!("cannot resume {}: its recorded config", file.display()))?
        }
        _ => load_config(args.config.as_deref())?,
    };
    // Models that name a hub revision without sha256 are pinned by the lock (or resolved and locked now).
    let config_file = if args.resume.is_some() && args.config.is_none() {
        None
    } else {
        args.config.as_deref()
    };
    let cfg = super::lock::ensure_pinned(
        cfg,
        config_file,
        args.locked,
        args.cache.as_deref(),
        &args.models,
    )?;
    let tool = tool_info();
    let progress = !args.quiet;
    if progress && tool.profile == "debug" {
        eprintln!(
            "warning: this is a debug build; its numbers are far below what the hardware does. Use `cargo run --release`."
        );
    }
    let overrides = Overrides {
        output: args.output,
        device: args.device,
        threads: args.threads,
        prompt_tokens: args.prompt_tokens,
        gen_tokens: args.gen_tokens,
        repetitions: args.repetitions,
        cache: args.cache,
        models: args.models,
        shard: args.shard,
    };
    let machine = meek_hw::machine();
    let logical = machine.cpu.logical_cores;
    let plan = Plan::new(&cfg, &overrides, || {
        meek_hw::physical_cores().unwrap_or(logical)
    })
    .map_err(anyhow::Error::msg)?;
    // Ctrl-C (or SIGTERM) stops the bench after writing what was measured, with status "interrupted" and exit
    // status 130; the measurement in progress finishes its current repetition or item and is kept as a partial
    // run. A second Ctrl-C exits at once.
    let interrupt = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = interrupt.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
            // Exiting skips destructors: end the measuring child first (it dies with us on Linux anyway).
            meek_runner::kill_children();
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupted: finishing the current repetition and writing what was measured (Ctrl-C again to quit \
             at once)"
        );
    })
    .context("cannot install the Ctrl-C handler")?;
    let opts = meek_runner::BenchOptions {
        progress,
        no_outputs: args.no_outputs,
        ignore_memory_check: args.ignore_memory_check,
        interrupt: Some(interrupt),
        resume: args.resume,
    };
    let launcher = meek_runner::ChildProcess {
        program: std::env::current_exe().context("cannot find the meekbench executable")?,
        args: vec!["measure-child".into()],
    };
    let mut log = |line: &str| {
        if progress {
            eprintln!("{line}");
        }
    };
    let outcome = meek_runner::run(&plan, &opts, tool, machine, &launcher, &mut log)?;
    if progress {
        eprintln!();
        eprint!("{}", summary::table(&outcome.result));
        eprintln!("\nresult written to {}", outcome.path.display());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome.result)?);
    } else if args.quiet {
        println!("{}", outcome.path.display());
    }
    if outcome.result.status == meek_schema::RunStatus::Interrupted {
        eprintln!(
            "interrupted; what was measured is in {}; continue with `meekbench bench --resume {}`",
            outcome.path.display(),
            outcome.path.display()
        );
        return Ok(ExitCode::from(130));
    }
    let failures = &outcome.result.failures;
    if !failures.is_empty() {
        let list: Vec<String> = failures
            .iter()
            .map(|f| format!("  {}: {}", f.model, f.error))
            .collect();
        bail!(
            "{} measurement(s) failed; what was measured is in {}\n{}",
            failures.len(),
            outcome.path.display(),
            list.join("\n")
        );
    }
    Ok(ExitCode::SUCCESS)
}
