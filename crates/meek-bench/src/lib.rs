//! Runs a bench plan: fetch each model, measure it per thread count, write the result file after each run.
//!
//! Data flow: a validated [`meek_config::LoadedConfig`] and command-line [`BenchOptions`] give the plan (models x
//! thread counts x workload points), resolved before anything loads. Each model file is fetched and verified by
//! `meek-hub`; each (model, thread count) is measured by a [`Launcher`], normally a child process of the
//! meekbench binary (Candle fixes its thread pools once per process, so one process measures one thread
//! count honestly, and a crash in one measurement cannot take the others down). The result file is rewritten
//! atomically after every run, so whatever was measured survives an interruption.
//!
//! Interrupts: the user's Ctrl-C or SIGTERM sets [`BenchOptions::interrupt`]. The measuring child (which receives
//! the terminal's SIGINT itself, and is sent one by the parent otherwise) finishes the repetition or accuracy item
//! in progress and returns the run as it stands, marked `partial`; the parent records it and writes the file with
//! status `interrupted`. [`BenchOptions::resume`] continues such a file in place: it checks that the schema,
//! configuration, overrides, machine and model hashes match, keeps every complete run, measures partial and failed
//! ones again and the rest for the first time, and writes runs in plan order, so the finished file has the same
//! shape as one from an uninterrupted bench.

pub mod children;
pub mod eval;
pub mod measure;
pub mod writer;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use meek_config::{DeviceRequest, LoadedConfig, Threads};
use meek_schema::{
    BenchResult, ConfigRecord, Failure, MachineInfo, ModelRun, RunStatus, SCHEMA_VERSION, ToolInfo,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use children::kill_children;
pub use measure::{EnergyRequest, MeasureRequest, measure, measure_until};
pub use writer::ResultFile;

/// Why a bench could not run (as opposed to one model failing, which is recorded and the bench goes on).
#[derive(Debug, Error)]
pub enum BenchError {
    /// The configuration or a command-line override makes no sense.
    #[error("{0}")]
    Config(String),
    /// The result file cannot be written.
    #[error("cannot write results to {path}: {detail}")]
    Output {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The engine refused the model or the device.
    #[error(transparent)]
    Engine(#[from] meek_engine::EngineError),
    /// A measurement produced no usable figure.
    #[error("measurement failed: {0}")]
    Measurement(String),
    /// A result file cannot be resumed: unreadable, or measured with something else than what is asked now.
    #[error("cannot resume {path}: {detail}")]
    Resume {
        /// The result file.
        path: PathBuf,
        /// What differs, and what to do.
        detail: String,
    },
}

/// Command-line choices that override the configuration.
#[derive(Debug, Clone, Default)]
pub struct BenchOptions {
    /// Result directory instead of `run.output`.
    pub output: Option<PathBuf>,
    /// Device instead of `run.device`.
    pub device: Option<DeviceRequest>,
    /// Thread counts instead of `run.threads`.
    pub threads: Option<Vec<usize>>,
    /// Prompt lengths instead of `speed.prompt_tokens`.
    pub prompt_tokens: Option<Vec<usize>>,
    /// Generation lengths instead of `speed.gen_tokens`.
    pub gen_tokens: Option<Vec<usize>>,
    /// Measured repetitions per point instead of `speed.repetitions`.
    pub repetitions: Option<usize>,
    /// Model cache directory instead of `run.cache` / the default.
    pub cache: Option<PathBuf>,
    /// Only these model ids (all when empty).
    pub models: Vec<String>,
    /// Progress bars and status lines on standard error.
    pub progress: bool,
    /// Leave the generated texts out of the accuracy records.
    pub no_outputs: bool,
    /// Measure even when the model seems not to fit in the available memory.
    pub ignore_memory_check: bool,
    /// Set (by a signal handler) when the user asks to stop: the bench then writes what it measured with
    /// status `interrupted` and returns.
    pub interrupt: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Continue this partial result file (status `interrupted` or `running`, or with failures) in place instead of
    /// starting a new one.
    pub resume: Option<PathBuf>,
}

/// Runs one measurement and returns its result or the error message shown to the user.
pub trait Launcher {
    /// Measures `req`. Once `stop` says yes, the measurement finishes the repetition or item in progress and
    /// returns what it has, marked `partial` (or an error when it had nothing yet).
    fn launch(&self, req: &MeasureRequest, stop: &dyn Fn() -> bool) -> Result<ModelRun, String>;
}

/// Measures in this process (tests; a single thread count). The thread count is recorded but Candle's pools keep
/// whatever size they got first.
#[derive(Debug, Default)]
pub struct InProcess;

impl Launcher for InProcess {
    fn launch(&self, req: &MeasureRequest, stop: &dyn Fn() -> bool) -> Result<ModelRun, String> {
        measure_until(req, stop).map_err(|e| e.to_string())
    }
}

/// Measures in a child process: `program args... REQUEST.json RESULT.json`, with the thread count in
/// `CANDLE_NUM_THREADS` and `RAYON_NUM_THREADS`. The child runs [`child_main`]. When `stop` says yes while the
/// child runs, the child is sent SIGINT (once): a terminal's Ctrl-C reaches it directly, a SIGTERM sent to the
/// parent alone does not.
#[derive(Debug, Clone)]
pub struct ChildProcess {
    /// Program to run (normally the meekbench binary itself).
    pub program: PathBuf,
    /// Arguments before the two file names (normally the hidden measuring subcommand).
    pub args: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ChildOutcome {
    Ok(Box<ModelRun>),
    Error(String),
}

impl Launcher for ChildProcess {
    fn launch(&self, req: &MeasureRequest, stop: &dyn Fn() -> bool) -> Result<ModelRun, String> {
        // Request folders of benches killed with -9 are removed first.
        let tmp = std::env::temp_dir();
        meek_hub::temporaries::sweep(&tmp, "meekbench-request");
        let dir = tempfile::Builder::new()
            .prefix(&meek_hub::temporaries::prefix("meekbench-request"))
            .tempdir_in(&tmp)
            .map_err(|e| format!("cannot create a temporary folder: {e}"))?;
        let request = dir.path().join("request.json");
        let result = dir.path().join("result.json");
        let text = serde_json::to_string(req).expect("request serialises");
        std::fs::write(&request, text).map_err(|e| format!("{}: {e}", request.display()))?;
        let mut guarded = children::spawn(
            Command::new(&self.program)
                .args(&self.args)
                .arg(&request)
                .arg(&result)
                .env("CANDLE_NUM_THREADS", req.threads.to_string())
                .env("RAYON_NUM_THREADS", req.threads.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null()),
        )
        .map_err(|e| format!("cannot start {}: {e}", self.program.display()))?;
        let mut signalled = false;
        let status = loop {
            match guarded.child().try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => return Err(format!("waiting for the measuring process: {e}")),
            }
            if !signalled && stop() {
                signalled = true;
                interrupt_child(guarded.child());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        guarded.exited();
        match std::fs::read_to_string(&result)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
        {
            Some(ChildOutcome::Ok(run)) => Ok(*run),
            Some(ChildOutcome::Error(e)) => Err(e),
            None => Err(format!(
                "the measuring process ended with {status} and left no result"
            )),
        }
    }
}

/// Asks a measuring child to stop after its current repetition or item.
#[cfg(unix)]
fn interrupt_child(child: &std::process::Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on the pid of a child we have not yet reaped (so it cannot have been reused).
        unsafe { libc::kill(pid, libc::SIGINT) };
    }
}

/// Asks a measuring child to stop: elsewhere the console's Ctrl-C reaches it directly; nothing more to do.
#[cfg(not(unix))]
fn interrupt_child(_child: &std::process::Child) {}

/// Body of the measuring child process: reads the request, measures (asking `stop` before each repetition and
/// accuracy item), writes the outcome. Returns the exit code.
pub fn child_main(request: &Path, result: &Path, stop: &dyn Fn() -> bool) -> i32 {
    let outcome = match std::fs::read_to_string(request)
        .map_err(|e| format!("{}: {e}", request.display()))
        .and_then(|t| {
            serde_json::from_str::<MeasureRequest>(&t).map_err(|e| format!("bad request: {e}"))
        }) {
        Ok(req) => match measure_until(&req, stop) {
            Ok(run) => ChildOutcome::Ok(Box::new(run)),
            Err(e) => ChildOutcome::Error(e.to_string()),
        },
        Err(e) => ChildOutcome::Error(e),
    };
    let code = i32::from(matches!(outcome, ChildOutcome::Error(_)));
    let text = serde_json::to_string(&outcome).expect("outcome serialises");
    if std::fs::write(result, text).is_err() {
        return 2;
    }
    code
}

/// Refuses a model that will not fit: weights (their file size; a checkpoint's weights in f32), the KV cache at the longest sequence the plan
/// runs, and a margin for activations, the bandwidth probe and the process itself, against available memory.
fn check_memory(
    path: &Path,
    file_bytes: u64,
    speed: &meek_config::SpeedSection,
    suites: &[eval::PreparedSuite],
) -> Result<(), String> {
    let info = meek_engine::inspect(path).map_err(|e| e.to_string())?;
    // A safetensors checkpoint is held in f32 on the CPU, whatever it stores (see `meek_engine::hf`).
    let file_bytes = if meek_engine::hf::is_checkpoint(path) {
        file_bytes.max(info.n_params * 4)
    } else {
        file_bytes
    };
    let positions = speed
        .points()
        .iter()
        .map(|(p, g)| p + g)
        .chain(suites.iter().map(|s| {
            info.context_length
                .unwrap_or(4096)
                .min(s.max_new_tokens + 4096)
        }))
        .max()
        .unwrap_or(0) as u64;
    let kv = info.kv_bytes_per_position.unwrap_or(0) * positions;
    let needed = file_bytes + kv + (512 << 20);
    let available = meek_hw::available_memory();
    if available > 0 && needed > available {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        return Err(format!(
            "needs about {:.1} GiB (weights {:.1} GiB + KV cache for {positions} positions {:.1} GiB + 0.5 GiB), but only \
             {:.1} GiB is available; free memory, shorten the workload, or pass --ignore-memory-check",
            gib(needed),
            gib(file_bytes),
            gib(kv),
            gib(available)
        ));
    }
    Ok(())
}

/// What a finished (or interrupted) bench produced.
#[derive(Debug)]
pub struct Outcome {
    /// The result as written.
    pub result: BenchResult,
    /// Where it was written.
    pub path: PathBuf,
}

/// The current time as RFC 3339 UTC, and a compact form for file names.
pub fn now() -> (String, String) {
    let t = time::OffsetDateTime::now_utc();
    let rfc = t
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats");
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    (rfc, stamp)
}

/// Runs the bench described by `cfg` and `opts`, reporting progress lines through `log`.
pub fn run(
    cfg: &LoadedConfig,
    opts: &BenchOptions,
    tool: ToolInfo,
    machine: MachineInfo,
    launcher: &dyn Launcher,
    log: &mut dyn FnMut(&str),
) -> Result<Outcome, BenchError> {
    let c = &cfg.config;
    let device = opts.device.unwrap_or(c.run.device);
    meek_engine::check_compiled(device)?;
    let threads = match (&opts.threads, &c.run.threads) {
        (Some(t), _) | (None, Threads::List(t)) => t.clone(),
        (None, Threads::Auto) => {
            vec![meek_hw::physical_cores().unwrap_or(machine.cpu.logical_cores)]
        }
    };
    // The same bounds as the config's, checked before anything is fetched.
    let flag = meek_config::limits::Origin::Flag;
    meek_config::limits::THREADS
        .check_list(&threads, flag)
        .map_err(BenchError::Config)?;
    let models: Vec<_> = c
        .models
        .iter()
        .filter(|m| opts.models.is_empty() || opts.models.contains(&m.id))
        .collect();
    if let Some(unknown) = opts
        .models
        .iter()
        .find(|id| !c.models.iter().any(|m| &m.id == *id))
    {
        let known: Vec<&str> = c.models.iter().map(|m| m.id.as_str()).collect();
        return Err(BenchError::Config(format!(
            "no model `{unknown}` in {}; it has: {}",
            cfg.origin,
            known.join(", ")
        )));
    }
    let mut overrides = Vec::new();
    if let Some(o) = &opts.output {
        overrides.push(format!("output={}", o.display()));
    }
    if let Some(d) = opts.device {
        overrides.push(format!("device={d}"));
    }
    if let Some(t) = &opts.threads {
        overrides.push(format!("threads={t:?}"));
    }
    // The speed grid with the command line's lists in place of the config's (a list is a sweep, like llama-bench's
    // `-p 128,512 -n 64`).
    let mut speed = c.speed.clone();
    // The same bounds as the config.
    for (name, given, field, bound) in [
        (
            "prompt_tokens",
            &opts.prompt_tokens,
            &mut speed.prompt_tokens,
            meek_config::limits::PROMPT_TOKENS,
        ),
        (
            "gen_tokens",
            &opts.gen_tokens,
            &mut speed.gen_tokens,
            meek_config::limits::GEN_TOKENS,
        ),
    ] {
        if let Some(v) = given {
            bound.check_list(v, flag).map_err(BenchError::Config)?;
            overrides.push(format!("{name}={v:?}"));
            *field = v.clone();
        }
    }
    if let Some(r) = opts.repetitions {
        meek_config::limits::REPETITIONS
            .check(r, flag)
            .map_err(BenchError::Config)?;
        overrides.push(format!("repetitions={r}"));
        speed.repetitions = r;
    }
    if !opts.models.is_empty() {
        overrides.push(format!("models={}", opts.models.join(",")));
    }
    let stopped = || {
        opts.interrupt
            .as_ref()
            .is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst))
    };
    // Every (model, thread count) in the order measured; result runs are kept in this order.
    let plan: Vec<(&str, usize)> = models
        .iter()
        .flat_map(|m| threads.iter().map(move |&t| (m.id.as_str(), t)))
        .collect();
    let energy = EnergyRequest::new(&c.energy, &machine);
    let (file, mut result) = match &opts.resume {
        Some(path) => {
            let resume_err = |detail: String| BenchError::Resume {
                path: path.clone(),
                detail,
            };
            let mut previous =
                meek_schema::read_file(path).map_err(|e| resume_err(e.to_string()))?;
            check_resumable(&previous, cfg, &overrides, &machine, &tool).map_err(resume_err)?;
            let done = plan
                .iter()
                .all(|&(m, t)| complete_run(&previous, m, t).is_some());
            if done && previous.failures.is_empty() {
                return Err(resume_err(
                    "every planned run in it is complete; there is nothing to resume".into(),
                ));
            }
            previous.status = RunStatus::Running;
            previous.finished_at = None;
            // Locked before anything is measured: a second bench on the same file is refused here.
            let file = ResultFile::open(path)?;
            (file, previous)
        }
        None => {
            let out_dir = opts.output.clone().unwrap_or_else(|| c.run.output.clone());
            let (started_at, stamp) = now();
            let stem = Path::new(&cfg.origin)
                .file_stem()
                .map_or_else(|| "bench".to_string(), |s| s.to_string_lossy().into_owned());
            // Reserve the result file first: an unwritable directory is found before anything is downloaded.
            let file = ResultFile::create(&out_dir, &stamp, &stem)?;
            let result = BenchResult {
                schema_version: SCHEMA_VERSION,
                status: RunStatus::Running,
                tool,
                machine,
                started_at,
                finished_at: None,
                config: ConfigRecord {
                    source: cfg.origin.clone(),
                    sha256: cfg.sha256.clone(),
                    text: cfg.text.clone(),
                    overrides,
                },
                runs: Vec::new(),
                failures: Vec::new(),
            };
            (file, result)
        }
    };
    let cache = opts
        .cache
        .clone()
        .or_else(|| c.run.cache.clone())
        .unwrap_or_else(meek_hub::default_cache_dir);
    let fetcher = meek_hub::Fetcher::new(cache).with_progress(opts.progress);
    // Suites are read and checked before anything is measured: a bad suite leaves no `running` file with no runs
    // (a new file is removed again; a resumed one is left as it was).
    let suites = match eval::prepare(cfg, &fetcher) {
        Ok(s) => s,
        Err(e) => {
            file.discard();
            return Err(e);
        }
    };
    file.write(&result)?;
    'models: for spec in models {
        if stopped() {
            break;
        }
        let todo: Vec<usize> = threads
            .iter()
            .copied()
            .filter(|&t| complete_run(&result, &spec.id, t).is_none())
            .collect();
        if todo.is_empty() {
            continue;
        }
        // A failure recorded by an earlier attempt is replaced by this one's outcome.
        result.failures.retain(|f| f.model != spec.id);
        log(&format!("model {}: fetching {}", spec.id, spec.file));
        let fetched = match fetcher.fetch(spec) {
            Ok(f) => f,
            Err(e) => {
                log(&format!("model {}: {e}", spec.id));
                result.failures.push(Failure {
                    model: spec.id.clone(),
                    error: e.to_string(),
                });
                file.write(&result)?;
                continue;
            }
        };
        log(&format!(
            "model {}: {} ({})",
            spec.id,
            fetched.path.display(),
            fetched.source
        ));
        if !opts.ignore_memory_check
            && let Err(e) = check_memory(&fetched.path, fetched.size_bytes, &c.speed, &suites)
        {
            log(&format!("model {}: {e}", spec.id));
            result.failures.push(Failure {
                model: spec.id.clone(),
                error: e,
            });
            file.write(&result)?;
            continue;
        }
        for t in todo {
            if stopped() {
                break 'models;
            }
            let req = MeasureRequest {
                model_id: spec.id.clone(),
                path: fetched.path.clone(),
                sha256: spec.sha256.clone(),
                size_bytes: fetched.size_bytes,
                source: fetched.source.clone(),
                device: device.to_string(),
                threads: t,
                points: speed.points(),
                warmup: speed.warmup,
                repetitions: speed.repetitions,
                seed: speed.seed,
                progress: opts.progress,
                suites: suites.clone(),
                keep_outputs: !opts.no_outputs,
                energy: energy.clone(),
            };
            match launcher.launch(&req, &stopped) {
                Ok(run) => {
                    let partial = run.partial;
                    place_run(&mut result.runs, run, &plan);
                    if partial {
                        file.write(&result)?;
                        break 'models;
                    }
                }
                // Stopped by the user's interrupt before it had anything to keep: not a failure.
                Err(_) if stopped() => break 'models,
                Err(e) => {
                    log(&format!("model {} with {t} threads: {e}", spec.id));
                    result.failures.push(Failure {
                        model: spec.id.clone(),
                        error: format!("threads={t}: {e}"),
                    });
                }
            }
            file.write(&result)?;
        }
    }
    result.status = if stopped() || result.runs.iter().any(|r| r.partial) {
        RunStatus::Interrupted
    } else {
        RunStatus::Complete
    };
    result.finished_at = Some(now().0);
    file.write(&result)?;
    Ok(Outcome {
        result,
        path: file.path().to_path_buf(),
    })
}

/// The complete (not partial) run of `model` with `threads` in `result`, if any.
fn complete_run<'a>(result: &'a BenchResult, model: &str, threads: usize) -> Option<&'a ModelRun> {
    result
        .runs
        .iter()
        .find(|r| r.model.id == model && r.threads == threads && !r.partial)
}

/// Puts `run` into `runs` in plan order, replacing an earlier (partial) run of the same model and thread count.
/// Runs outside the plan stay where they are, at the end.
fn place_run(runs: &mut Vec<ModelRun>, run: ModelRun, plan: &[(&str, usize)]) {
    let rank = |r: &ModelRun| {
        plan.iter()
            .position(|&(m, t)| m == r.model.id && t == r.threads)
            .unwrap_or(usize::MAX)
    };
    runs.retain(|r| !(r.model.id == run.model.id && r.threads == run.threads));
    let mine = rank(&run);
    let at = runs
        .iter()
        .position(|r| rank(r) > mine)
        .unwrap_or(runs.len());
    runs.insert(at, run);
}

/// Why `previous` cannot be continued with `cfg` and `overrides` on this machine, if it cannot.
fn check_resumable(
    previous: &BenchResult,
    cfg: &LoadedConfig,
    overrides: &[String],
    machine: &MachineInfo,
    tool: &ToolInfo,
) -> Result<(), String> {
    if previous.schema_version != SCHEMA_VERSION {
        return Err(format!(
            "it has result schema version {}, this meekbench writes {SCHEMA_VERSION}; start a new bench",
            previous.schema_version
        ));
    }
    if previous.config.sha256 != cfg.sha256 {
        return Err(format!(
            "it was measured with config {} (sha256 {}), not {} (sha256 {}); resume with the same config, or \
             leave CONFIG out to use the one recorded in the file",
            previous.config.source, previous.config.sha256, cfg.origin, cfg.sha256
        ));
    }
    // The output directory is the file's own; every other override changes what is measured.
    let relevant = |o: &[String]| -> Vec<String> {
        o.iter()
            .filter(|o| !o.starts_with("output="))
            .cloned()
            .collect()
    };
    let (was, now) = (relevant(&previous.config.overrides), relevant(overrides));
    if was != now {
        let show = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(" ")
            }
        };
        return Err(format!(
            "it was measured with the command-line overrides [{}], this command gives [{}]; pass the same \
             --device, --threads and --model options",
            show(&was),
            show(&now)
        ));
    }
    for run in &previous.runs {
        match cfg.config.models.iter().find(|m| m.id == run.model.id) {
            Some(m) if m.sha256 == run.model.sha256 => {}
            Some(m) => {
                return Err(format!(
                    "model `{}` was measured from a file with sha256 {}, the config pins {}",
                    run.model.id, run.model.sha256, m.sha256
                ));
            }
            None => {
                return Err(format!(
                    "it holds model `{}`, which the config does not name",
                    run.model.id
                ));
            }
        }
    }
    let build = |t: &ToolInfo| {
        format!(
            "{} {} ({}, {}, features [{}])",
            t.name,
            t.version,
            t.profile,
            t.engine,
            t.features.join(", ")
        )
    };
    if build(&previous.tool) != build(tool) {
        return Err(format!(
            "it was measured with {}, this is {}; finish it with that build or start a new bench",
            build(&previous.tool),
            build(tool)
        ));
    }
    let (a, b) = (&previous.machine.cpu, &machine.cpu);
    if a.brand != b.brand || a.logical_cores != b.logical_cores || previous.machine.os != machine.os
    {
        return Err(format!(
            "it was measured on another machine ({}, {} logical cores, {}); this one is {}, {} logical cores, {}",
            a.brand, a.logical_cores, previous.machine.os, b.brand, b.logical_cores, machine.os
        ));
    }
    Ok(())
}
