//! Runs a bench plan: fetch each model, measure it per thread count, write the result file after each run.
//!
//! Data flow: a [`Plan`] (built in `meek-config` from the config file and the command line, validated before
//! anything loads) says what to measure: models x thread counts x workload points and suites; [`BenchOptions`]
//! say how (progress, interrupt, resume). Each model file is fetched and verified by
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

pub mod answer;
pub mod children;
pub mod eval;
mod launch;
pub mod measure;
mod memory;
pub mod perplexity;
mod resume;
pub mod writer;

use std::path::{Path, PathBuf};

use meek_config::Plan;
use meek_schema::{
    BenchResult, ConfigRecord, Failure, MachineInfo, PlannedRun, RunStatus, SCHEMA_VERSION,
    ShardRecord, ToolInfo,
};
use thiserror::Error;

pub use children::kill_children;
pub use launch::{ChildProcess, InProcess, Launcher, child_main};
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

/// How a plan is carried out (as opposed to what it measures, which is the [`Plan`]'s).
#[derive(Debug, Clone, Default)]
pub struct BenchOptions {
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

/// Carries out `plan`, reporting progress lines through `log`.
pub fn run(
    plan: &Plan,
    opts: &BenchOptions,
    tool: ToolInfo,
    machine: MachineInfo,
    launcher: &dyn Launcher,
    log: &mut dyn FnMut(&str),
) -> Result<Outcome, BenchError> {
    meek_engine::check_compiled(plan.device)?;
    let stopped = || {
        opts.interrupt
            .as_ref()
            .is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst))
    };
    let order = plan.runs();
    let energy = EnergyRequest::new(plan.energy(), &machine);
    let (file, mut result) = match &opts.resume {
        Some(path) => {
            let resume_err = |detail: String| BenchError::Resume {
                path: path.clone(),
                detail,
            };
            let mut previous =
                meek_schema::read_file(path).map_err(|e| resume_err(e.to_string()))?;
            resume::check_resumable(&previous, plan, &machine, &tool).map_err(resume_err)?;
            let done = order
                .iter()
                .all(|&(m, t)| resume::complete_run(&previous, m, t).is_some());
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
            let (started_at, stamp) = now();
            let stem = Path::new(&plan.config.origin)
                .file_stem()
                .map_or_else(|| "bench".to_string(), |s| s.to_string_lossy().into_owned());
            // Reserve the result file first: an unwritable directory is found before anything is downloaded.
            let file = ResultFile::create(&plan.output, &stamp, &stem)?;
            let result = BenchResult {
                schema_version: SCHEMA_VERSION,
                status: RunStatus::Running,
                tool,
                machine,
                started_at,
                finished_at: None,
                config: ConfigRecord {
                    source: plan.config.origin.clone(),
                    sha256: plan.config.sha256.clone(),
                    text: plan.config.text.clone(),
                    overrides: plan.overrides.clone(),
                    lock: plan.config.lock.as_ref().map(|l| l.text.clone()),
                },
                runs: Vec::new(),
                failures: Vec::new(),
                shard: plan.shard.as_ref().map(|(s, mine)| {
                    let all = plan.all_runs();
                    ShardRecord {
                        index: s.index,
                        count: s.count,
                        plan_sha256: plan.sha256(),
                        planned_runs: all.len(),
                        runs: mine
                            .iter()
                            .map(|&i| PlannedRun {
                                index: i,
                                model: all[i].0.to_string(),
                                threads: all[i].1,
                            })
                            .collect(),
                    }
                }),
            };
            (file, result)
        }
    };
    let cache = plan
        .cache
        .clone()
        .unwrap_or_else(meek_hub::default_cache_dir);
    let fetcher = meek_hub::Fetcher::new(cache).with_progress(opts.progress);
    // Suites are read and checked before anything is measured: a bad suite leaves no `running` file with no runs
    // (a new file is removed again; a resumed one is left as it was).
    let suites = match eval::prepare(plan.suites(), &plan.config.origin, &fetcher) {
        Ok(s) => s,
        Err(e) => {
            file.discard();
            return Err(e);
        }
    };
    let texts = match perplexity::prepare(plan.perplexity(), &plan.config.origin) {
        Ok(t) => t,
        Err(e) => {
            file.discard();
            return Err(e);
        }
    };
    let longest_text = texts.iter().map(|t| t.context).max().unwrap_or(0);
    file.write(&result)?;
    'models: for spec in &plan.models {
        if stopped() {
            break;
        }
        let todo: Vec<usize> = plan
            .threads
            .iter()
            .copied()
            .filter(|&t| plan.measures(&spec.id, t))
            .filter(|&t| resume::complete_run(&result, &spec.id, t).is_none())
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
            && let Err(e) = memory::check_memory(
                &fetched.path,
                fetched.size_bytes,
                &plan.speed,
                &suites,
                longest_text,
            )
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
                device: plan.device.to_string(),
                threads: t,
                points: plan.speed.points(),
                warmup: plan.speed.warmup,
                repetitions: plan.speed.repetitions,
                seed: plan.speed.seed,
                progress: opts.progress,
                suites: suites.clone(),
                keep_outputs: !opts.no_outputs,
                energy: energy.clone(),
                perplexity: texts.clone(),
            };
            match launcher.launch(&req, &stopped) {
                Ok(mut run) => {
                    run.model.card = spec.card.as_ref().map(|c| meek_schema::ModelCard {
                        source: c.source.clone(),
                        training_tokens: c.training_tokens,
                        release_date: c.release_date.clone(),
                        licence: c.licence.clone(),
                        parameters: c.parameters,
                    });
                    let partial = run.partial;
                    resume::place_run(&mut result.runs, run, &order);
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
