//! Interrupting a bench between repetitions and items, and resuming it: the resumed file has the shape of an
//! uninterrupted one. Measured in this process ([`InProcess`]) on a tiny generated model; the interrupt is raised
//! by the launcher after a fixed number of the measurement's stop checks, so the cut falls at the same place on
//! every run.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use meek_config::{Overrides, Plan};
use meek_runner::{BenchError, BenchOptions, InProcess, Launcher, MeasureRequest, Outcome};
use meek_schema::{BenchResult, ModelRun, RunStatus, ToolInfo};
use meek_testkit::{TinySpec, write_tiny_llama};
use serde_json::{Value, json};

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spec = TinySpec {
            context: 2048,
            ..TinySpec::default()
        };
        write_tiny_llama(&dir.path().join("tiny.gguf"), spec).unwrap();
        Self { dir }
    }

    fn config_text(&self) -> String {
        let model = self.dir.path().join("tiny.gguf");
        format!(
            "[run]\ndevice = \"cpu\"\nthreads = [1, 2]\ncache = \"{cache}\"\n\n\
             [[models]]\nid = \"tiny\"\nfile = \"tiny.gguf\"\nsha256 = \"{sha}\"\nsources = [{{ path = \"{model}\" }}]\n\n\
             [speed]\nprompt_tokens = [16]\ngen_tokens = [4, 6]\nwarmup = 1\nrepetitions = 3\n\n\
             [[suites]]\nname = \"gen\"\nkind = \"generated\"\nfamilies = [\"arithmetic\"]\nsteps = [1]\n\
             items_per_level = 3\nshots = 0\nmax_new_tokens = 6\n",
            cache = self.dir.path().join("cache").display(),
            sha = meek_hub::sha256_file(&model).unwrap(),
            model = model.display(),
        )
    }

    fn config(&self) -> meek_config::LoadedConfig {
        meek_config::parse(&self.config_text(), "bench.toml").unwrap()
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn tool() -> ToolInfo {
    ToolInfo {
        name: "meekbench".into(),
        version: "0.0.0-test".into(),
        git_commit: None,
        features: vec![],
        target: "test".into(),
        rustc: "test".into(),
        profile: "test".into(),
        engine: "test".into(),
    }
}

/// Runs `cfg` with the command line's `overrides` (the output directory and thread counts these tests give).
fn bench(
    cfg: &meek_config::LoadedConfig,
    overrides: &Overrides,
    opts: &BenchOptions,
    launcher: &dyn Launcher,
) -> Result<Outcome, BenchError> {
    let plan = Plan::new(cfg, overrides, || 1).map_err(BenchError::Config)?;
    meek_runner::run(
        &plan,
        opts,
        tool(),
        meek_hw::machine(),
        launcher,
        &mut |_| {},
    )
}

fn out(dir: PathBuf) -> Overrides {
    Overrides {
        output: Some(dir),
        ..Overrides::default()
    }
}

/// Measures in process and raises the bench's interrupt at the measurement's `at`-th stop check (counted over
/// all launches), as a signal arriving during that repetition or item would.
struct InterruptAt {
    at: usize,
    checks: Cell<usize>,
    flag: Arc<AtomicBool>,
}

impl Launcher for InterruptAt {
    fn launch(&self, req: &MeasureRequest, stop: &dyn Fn() -> bool) -> Result<ModelRun, String> {
        let counting = || {
            self.checks.set(self.checks.get() + 1);
            if self.checks.get() == self.at {
                self.flag.store(true, Ordering::SeqCst);
            }
            stop()
        };
        InProcess.launch(req, &counting)
    }
}

/// Everything of a result but its timings and the moments it was taken.
fn shape(r: &BenchResult) -> Value {
    let runs: Vec<Value> = r
        .runs
        .iter()
        .map(|run| {
            let speed: Vec<Value> = run
                .speed
                .iter()
                .map(|p| {
                    json!([p.n_prompt, p.n_gen, p.warmup, p.repetitions, p.ttft_ms.samples.len(),
                           p.itl_ms.samples.len()])
                })
                .collect();
            let accuracy: Vec<Value> = run
                .accuracy
                .iter()
                .map(|a| {
                    let items: Vec<Value> = a
                        .items
                        .iter()
                        .map(|i| {
                            json!([i.id, i.expected, i.extracted_strict, i.extracted_flexible,
                                   i.correct_strict, i.correct_flexible, i.prompt_tokens,
                                   i.generated_tokens, i.stop, i.output])
                        })
                        .collect();
                    json!({"suite": a.suite, "strict": a.strict.correct, "flexible": a.flexible.correct,
                           "n": a.strict.n, "items": items})
                })
                .collect();
            json!({"model": run.model.id, "sha256": run.model.sha256, "threads": run.threads,
                   "device": run.device, "kernel": run.kernel, "partial": run.partial,
                   "speed": speed, "accuracy": accuracy})
        })
        .collect();
    json!({"schema_version": r.schema_version, "status": r.status, "config": [r.config.sha256, r.config.text],
           "runs": runs, "failures": r.failures})
}

fn read(path: &Path) -> BenchResult {
    meek_schema::read_file(path).unwrap()
}

#[test]
fn an_interrupted_and_resumed_bench_equals_an_uninterrupted_one() {
    let f = Fixture::new();
    let cfg = f.config();
    let whole = bench(
        &cfg,
        &out(f.out("whole")),
        &BenchOptions::default(),
        &InProcess,
    )
    .unwrap();
    assert_eq!(whole.result.status, RunStatus::Complete);

    // Per run: 8 repetition checks (2 points x (1 warm-up + 3)), 1 before the bandwidth probe, 1 before each of 3
    // items. Check 23 is the one before the second run's second item: it has finished its first item and stops.
    let flag = Arc::new(AtomicBool::new(false));
    let launcher = InterruptAt {
        at: 23,
        checks: Cell::new(0),
        flag: flag.clone(),
    };
    let opts = BenchOptions {
        interrupt: Some(flag),
        ..BenchOptions::default()
    };
    let cut = bench(&cfg, &out(f.out("cut")), &opts, &launcher).unwrap();
    assert_eq!(cut.result.status, RunStatus::Interrupted);
    let on_disk = read(&cut.path);
    assert!(
        on_disk == cut.result,
        "the file holds what was returned, bit for bit"
    );
    let runs = &on_disk.runs;
    assert_eq!(runs.len(), 2);
    assert!(!runs[0].partial && runs[1].partial);
    assert_eq!(runs[1].threads, 2);
    assert_eq!(runs[1].speed.len(), 2, "both points were measured in full");
    assert_eq!(
        runs[1].accuracy[0].items.len(),
        1,
        "the item in progress was finished"
    );
    assert!(runs[1].memory_read_bytes_per_second.is_some());

    let resumed = bench(
        &cfg,
        &Overrides::default(),
        &BenchOptions {
            resume: Some(cut.path.clone()),
            ..BenchOptions::default()
        },
        &InProcess,
    )
    .unwrap();
    assert_eq!(resumed.path, cut.path, "resumed in place");
    assert_eq!(
        f.out("cut").read_dir().unwrap().count(),
        1,
        "no other file, no temporary left"
    );
    let file = read(&resumed.path);
    assert_eq!(file.status, RunStatus::Complete);
    assert_eq!(shape(&file), shape(&whole.result));
    assert!(
        file.runs[0] == on_disk.runs[0],
        "the complete run was kept as measured, not measured again"
    );
    assert_eq!(file.started_at, on_disk.started_at);
    assert!(file.finished_at.is_some());
}

#[test]
fn an_interrupt_during_the_speed_points_keeps_the_finished_repetitions() {
    let f = Fixture::new();
    let cfg = f.config();
    let flag = Arc::new(AtomicBool::new(false));
    // Check 6 is before the second point's first measured repetition (point 1: checks 1-4; point 2: 5 = warm-up).
    let launcher = InterruptAt {
        at: 6,
        checks: Cell::new(0),
        flag: flag.clone(),
    };
    let opts = BenchOptions {
        interrupt: Some(flag),
        ..BenchOptions::default()
    };
    let overrides = Overrides {
        threads: Some(vec![1]),
        ..out(f.out("cut"))
    };
    let cut = bench(&cfg, &overrides, &opts, &launcher).unwrap();
    let run = &cut.result.runs[0];
    assert!(run.partial);
    assert_eq!(
        run.speed.len(),
        1,
        "a point with only its warm-up done is left out"
    );
    assert_eq!(run.speed[0].repetitions, 3);
    assert!(run.accuracy.is_empty());
    assert!(run.memory_read_bytes_per_second.is_none());
}

fn resume_error(
    cfg: &meek_config::LoadedConfig,
    file: &Path,
    threads: Option<Vec<usize>>,
) -> String {
    let opts = BenchOptions {
        resume: Some(file.to_path_buf()),
        ..BenchOptions::default()
    };
    let overrides = Overrides {
        threads,
        ..Overrides::default()
    };
    bench(cfg, &overrides, &opts, &InProcess)
        .unwrap_err()
        .to_string()
}

#[test]
fn resume_refuses_what_does_not_match_and_names_it() {
    let f = Fixture::new();
    let cfg = f.config();
    let overrides = Overrides {
        threads: Some(vec![1]),
        ..out(f.out("r"))
    };
    let done = bench(&cfg, &overrides, &BenchOptions::default(), &InProcess).unwrap();
    let file = done.path;
    let original = fs_err::read_to_string(&file).unwrap();

    let err = resume_error(&cfg, &file, Some(vec![1]));
    assert!(err.contains("nothing to resume"), "{err}");

    // The rest are refused whatever the file's status: mark it interrupted.
    let mut r = read(&file);
    r.status = RunStatus::Interrupted;
    r.runs[0].partial = true;
    let write = |r: &BenchResult| fs_err::write(&file, serde_json::to_string(r).unwrap()).unwrap();
    write(&r);

    let err = resume_error(&cfg, &file, None);
    assert!(
        err.contains("overrides [threads=[1]]") && err.contains("[none]"),
        "{err}"
    );

    let other = meek_config::parse(
        &f.config_text()
            .replace("repetitions = 3", "repetitions = 4"),
        "other.toml",
    )
    .unwrap();
    let err = resume_error(&other, &file, Some(vec![1]));
    assert!(
        err.contains("other.toml") && err.contains("leave CONFIG out"),
        "{err}"
    );

    let mut wrong = r.clone();
    wrong.runs[0].model.sha256 = "0".repeat(64);
    write(&wrong);
    let err = resume_error(&cfg, &file, Some(vec![1]));
    assert!(
        err.contains("model `tiny`") && err.contains(&"0".repeat(64)),
        "{err}"
    );

    let mut elsewhere = r.clone();
    elsewhere.machine.cpu.brand = "Some Other CPU".into();
    write(&elsewhere);
    let err = resume_error(&cfg, &file, Some(vec![1]));
    assert!(
        err.contains("another machine") && err.contains("Some Other CPU"),
        "{err}"
    );

    let newer = original.replacen("\"schema_version\": 1", "\"schema_version\": 7", 1);
    fs_err::write(&file, newer).unwrap();
    let err = resume_error(&cfg, &file, Some(vec![1]));
    assert!(
        err.contains("schema version 7") && err.contains(&file.display().to_string()),
        "{err}"
    );

    fs_err::write(&file, "\u{0}junk").unwrap();
    let err = resume_error(&cfg, &file, Some(vec![1]));
    assert!(err.contains("not a meekbench result file"), "{err}");

    // Every refusal left the file as it was: nothing measured is lost.
    assert_eq!(fs_err::read_to_string(&file).unwrap(), "\u{0}junk");
}
