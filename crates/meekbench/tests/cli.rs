//! End-to-end tests of the `meekbench` binary on tiny generated models, and the refusals of bad input.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use meek_testkit::{TinySpec, write_tiny_llama};
mod common;

use common::{read_json, schema, shape, stdout};
use predicates::prelude::*;
use predicates::str::contains;

fn meekbench() -> Command {
    let mut c = Command::cargo_bin("meekbench").unwrap();
    c.env_remove("HF_ENDPOINT");
    c
}

fn sha256(path: &Path) -> String {
    meek_hub::sha256_file(path).unwrap()
}

struct Fixture {
    dir: tempfile::TempDir,
    model: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("tiny.gguf");
        write_tiny_llama(&model, TinySpec::default()).unwrap();
        Self { dir, model }
    }

    /// A bench config for the fixture's model, pinned to its current hash, with `suites` (TOML) appended.
    fn config(&self, suites: &str) -> PathBuf {
        self.config_with_sha(&sha256(&self.model), suites)
    }

    fn config_with_sha(&self, sha: &str, suites: &str) -> PathBuf {
        let text = format!(
            "[run]\ndevice = \"cpu\"\nthreads = [1, 2]\noutput = \"{out}\"\ncache = \"{cache}\"\n\n\
             [[models]]\nid = \"tiny\"\nfile = \"tiny.gguf\"\nsha256 = \"{sha}\"\nsources = [{{ path = \"{model}\" }}]\n\n\
             [speed]\nprompt_tokens = [16]\ngen_tokens = [4, 6]\nwarmup = 1\nrepetitions = 2\n{suites}",
            out = self.out().display(),
            cache = self.dir.path().join("cache").display(),
            model = self.model.display(),
        );
        let p = self.dir.path().join("bench.toml");
        fs_err::write(&p, text).unwrap();
        p
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("results")
    }

    /// The result files (a bench in progress also keeps a `.NAME.lock` beside its file).
    fn results(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs_err::read_dir(self.out())
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// Runs `bench --quiet --json ARGS CONFIG`, expects success, returns the printed result.
fn bench_json(cfg: &Path, args: &[&str]) -> serde_json::Value {
    let out = stdout(
        meekbench()
            .args(["bench", "--quiet", "--json"])
            .args(args)
            .arg(cfg),
    );
    serde_json::from_slice(&out).unwrap()
}

/// Runs `bench --quiet ARGS CONFIG`, expects success, returns the result file it printed.
fn bench_path(cfg: &Path, args: &[&str]) -> PathBuf {
    let out = stdout(meekbench().args(["bench", "--quiet"]).args(args).arg(cfg));
    PathBuf::from(String::from_utf8(out).unwrap().trim())
}

#[test]
fn bench_on_a_tiny_model_writes_a_complete_valid_result() {
    let f = Fixture::new();
    let cfg = f.config("");
    let path = bench_path(&cfg, &[]);
    assert_eq!(
        f.results(),
        vec![path.clone()],
        "one result file, no temporary files left"
    );
    let v: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(&path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&v)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");

    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["status"], "complete");
    assert_eq!(v["tool"]["name"], "meekbench");
    assert!(v["machine"]["cpu"]["logical_cores"].as_u64().unwrap() >= 1);
    assert_eq!(v["config"]["sha256"].as_str().unwrap().len(), 64);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "one run per thread count");
    for (run, threads) in runs.iter().zip([1, 2]) {
        assert_eq!(run["threads"], threads);
        assert_eq!(run["device"], "cpu");
        assert_eq!(run["model"]["sha256"], sha256(&f.model));
        assert_eq!(run["model"]["architecture"], "llama");
        assert_eq!(run["model"]["quantization"], "Q4_1");
        assert!(run["memory_read_bytes_per_second"].as_f64().unwrap() > 1e8);
        assert!(run["load_seconds"].as_f64().unwrap() > 0.0);
        let speed = run["speed"].as_array().unwrap();
        assert_eq!(speed.len(), 2);
        for (p, n_gen) in speed.iter().zip([4, 6]) {
            assert_eq!(p["n_prompt"], 16);
            assert_eq!(p["n_gen"], n_gen);
            for key in [
                "ttft_ms",
                "prefill_tokens_per_second",
                "decode_tokens_per_second",
            ] {
                let s = &p[key];
                assert_eq!(s["samples"].as_array().unwrap().len(), 2, "{key}");
                let (min, med, max) = (
                    s["min"].as_f64().unwrap(),
                    s["median"].as_f64().unwrap(),
                    s["max"].as_f64().unwrap(),
                );
                assert!(0.0 < min && min <= med && med <= max, "{key}: {s}");
            }
            // prefill rate is n_prompt / TTFT, sample by sample
            let ttft = p["ttft_ms"]["samples"].as_array().unwrap();
            let pre = p["prefill_tokens_per_second"]["samples"]
                .as_array()
                .unwrap();
            for (t, r) in ttft.iter().zip(pre) {
                let expect = 16.0 / (t.as_f64().unwrap() / 1e3);
                assert!((expect - r.as_f64().unwrap()).abs() < 1e-6 * expect);
            }
            // (n_gen - 1) gaps per repetition
            assert_eq!(
                p["itl_ms"]["samples"].as_array().unwrap().len(),
                2 * (n_gen - 1)
            );
            assert!(p["itl_ms"]["p50"].as_f64().unwrap() <= p["itl_ms"]["p99"].as_f64().unwrap());
            assert!(p["peak_rss_bytes"].as_u64().unwrap() > 1 << 20);
            let bound = p["bandwidth_bound_tokens_per_second"].as_f64().unwrap();
            let fraction = p["bandwidth_bound_fraction"].as_f64().unwrap();
            assert!(
                (fraction * bound - p["decode_tokens_per_second"]["median"].as_f64().unwrap())
                    .abs()
                    < 1e-6 * bound
            );
        }
    }
}

#[test]
fn json_flag_prints_the_result_and_overrides_are_recorded() {
    let f = Fixture::new();
    let cfg = f.config("");
    let v = bench_json(&cfg, &["--threads", "1"]);
    assert_eq!(v["runs"].as_array().unwrap().len(), 1);
    assert_eq!(v["config"]["overrides"][0], "threads=[1]");
}

/// Sweeps from the command line, like llama-bench's `-p 8,16 -n 4 -r 2 -t 1,2`: the cartesian product of thread
/// counts and workload points, each its own entry, with the overrides recorded.
#[test]
fn command_line_sweeps_run_the_cartesian_product() {
    let f = Fixture::new();
    let cfg = f.config("");
    let v = bench_json(&cfg, &["-p", "8,16", "-n", "4", "-r", "2", "-t", "1,2"]);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(
        runs.iter()
            .map(|r| r["threads"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2]
    );
    for r in runs {
        let points: Vec<(u64, u64, u64)> = r["speed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["n_prompt"].as_u64().unwrap(),
                    p["n_gen"].as_u64().unwrap(),
                    p["repetitions"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(points, [(8, 4, 2), (16, 4, 2)]);
    }
    let overrides: Vec<&str> = v["config"]["overrides"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    for want in [
        "threads=[1, 2]",
        "prompt_tokens=[8, 16]",
        "gen_tokens=[4]",
        "repetitions=2",
    ] {
        assert!(overrides.contains(&want), "{want} not in {overrides:?}");
    }
    meekbench()
        .args(["bench", "--quiet", "-p", "0"])
        .arg(&cfg)
        .assert()
        .failure()
        .stderr(contains(
            "--prompt-tokens = 0 is out of range; it must be from 1",
        ));
    meekbench()
        .args(["bench", "--quiet", "-n", "1"])
        .arg(&cfg)
        .assert()
        .failure()
        .stderr(contains(
            "--gen-tokens = 1 is out of range; it must be from 2",
        ));
    // Issue #18: counts that once started 16k threads or asked for 240 TB are refused before anything loads.
    for (flag, value, said) in [
        ("--threads", "100000", "--threads = 100000 is out of range"),
        (
            "-r",
            "1000000000000",
            "--repetitions = 1000000000000 is out of range",
        ),
        (
            "-p",
            "100000000",
            "--prompt-tokens = 100000000 is out of range",
        ),
    ] {
        meekbench()
            .args(["bench", "--quiet", flag, value])
            .arg(&cfg)
            .timeout(std::time::Duration::from_secs(60))
            .assert()
            .failure()
            .stderr(contains(said));
    }
}

#[test]
fn config_errors_name_file_line_and_key() {
    let f = Fixture::new();
    let p = f.dir.path().join("typo.toml");
    fs_err::write(&p, "[run]\ndevise = \"cpu\"\n").unwrap();
    meekbench().arg("bench").arg(&p).assert().failure().stderr(
        contains("typo.toml")
            .and(contains("line 2"))
            .and(contains("devise")),
    );
    meekbench()
        .args(["bench", "/nonexistent/x.toml"])
        .assert()
        .failure()
        .stderr(contains("/nonexistent/x.toml"));
}

#[test]
fn wrong_hash_and_non_gguf_files_fail_clearly_and_keep_earlier_results() {
    let f = Fixture::new();
    fs_err::create_dir_all(f.out()).unwrap();
    let earlier = f.out().join("meekbench-earlier.json");
    fs_err::write(&earlier, "{\"earlier\": true}").unwrap();

    let cfg = f.config_with_sha(&"0".repeat(64), "");
    meekbench()
        .args(["bench", "--quiet"])
        .arg(&cfg)
        .assert()
        .failure()
        .stderr(contains("tiny").and(contains("sha256 mismatch")));

    // A file with the right hash that is not a model.
    fs_err::write(&f.model, b"definitely not a gguf file").unwrap();
    let cfg = f.config("");
    meekbench()
        .args(["bench", "--quiet"])
        .arg(&cfg)
        .assert()
        .failure()
        .stderr(contains("not a usable GGUF"));

    assert_eq!(
        fs_err::read_to_string(&earlier).unwrap(),
        "{\"earlier\": true}"
    );
    // Each failed bench still left a result file that records the failure.
    let files = f.results();
    assert_eq!(files.len(), 3, "{files:?}");
    for p in files.iter().filter(|p| **p != earlier) {
        let v: serde_json::Value =
            serde_json::from_str(&fs_err::read_to_string(p).unwrap()).unwrap();
        assert_eq!(v["status"], "complete");
        assert_eq!(v["failures"][0]["model"], "tiny");
        assert!(v["runs"].as_array().unwrap().is_empty());
    }
}

#[test]
fn devices_not_compiled_in_are_refused_before_anything_runs() {
    let f = Fixture::new();
    let cfg = f.config("");
    if !cfg!(feature = "cuda") {
        meekbench()
            .args(["bench", "--device", "cuda"])
            .arg(&cfg)
            .assert()
            .failure()
            .stderr(contains("--features cuda"));
    }
    meekbench()
        .args(["bench", "--device", "tpu"])
        .arg(&cfg)
        .assert()
        .code(2)
        .stderr(contains("unknown device"));
    assert!(f.results().is_empty());
}

#[test]
fn unwritable_output_is_refused_before_fetching() {
    let f = Fixture::new();
    let cfg = f.config("");
    let blocker = f.dir.path().join("file-not-dir");
    fs_err::write(&blocker, "x").unwrap();
    meekbench()
        .args(["bench", "--quiet", "--output"])
        .arg(blocker.join("sub"))
        .arg(&cfg)
        .assert()
        .failure()
        .stderr(
            contains("cannot write results")
                .and(contains("file-not-dir"))
                .and(contains("--output")),
        );
}

#[test]
fn tokenize_prints_ids_and_pieces() {
    let f = Fixture::new();
    let out = meekbench()
        .args(["tokenize", "--json"])
        .arg(&f.model)
        .arg("hello the 12")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let pieces: Vec<&str> = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["piece"].as_str().unwrap())
        .collect();
    assert_eq!(pieces, ["hello", " the", " ", "1", "2"]);
    meekbench()
        .args(["tokenize", "--chat"])
        .arg(&f.model)
        .arg("hi")
        .assert()
        .success()
        .stdout(contains("\"<|im_start|>\""));
    meekbench()
        .args(["tokenize", "no-such-model", "x"])
        .assert()
        .failure()
        .stderr(contains("no-such-model").and(contains("smollm2-135m-instruct-q4_1")));
}

#[test]
fn generate_prints_the_greedy_continuation() {
    let f = Fixture::new();
    let run = |args: &[&str]| {
        meekbench()
            .arg("generate")
            .args(args)
            .arg(&f.model)
            .arg("hello the")
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    };
    let v: serde_json::Value = serde_json::from_slice(&run(&["--json", "-n", "5"])).unwrap();
    let ids = v["ids"].as_array().unwrap();
    assert!(!ids.is_empty() && ids.len() <= 5, "{v}");
    assert_eq!(v["prompt_ids"].as_array().unwrap().len(), 2, "{v}");
    assert!(v["kernel"].as_str().unwrap().starts_with("cpu-"), "{v}");
    // Greedy: the same text every time, and the plain output is the JSON's text.
    let text = String::from_utf8(run(&["-n", "5"])).unwrap();
    assert_eq!(text.trim_end_matches('\n'), v["text"].as_str().unwrap());
    assert_eq!(run(&["-n", "5"]), text.as_bytes());
    let chat: serde_json::Value =
        serde_json::from_slice(&run(&["--json", "--chat", "-n", "3"])).unwrap();
    assert!(
        chat["prompt"].as_str().unwrap().starts_with("<|im_start|>"),
        "{chat}"
    );
    meekbench()
        .args(["generate"])
        .arg(&f.model)
        .arg("")
        .assert()
        .failure()
        .stderr(contains("no tokens"));
    meekbench()
        .args(["generate", "-n", "0"])
        .arg(&f.model)
        .arg("x")
        .assert()
        .failure();
}

#[test]
fn help_explains_the_commands() {
    meekbench().arg("--help").assert().success().stdout(
        contains("bench")
            .and(contains("tokenize"))
            .and(contains("schema")),
    );
    meekbench()
        .args(["bench", "--help"])
        .assert()
        .success()
        .stdout(contains("--threads").and(contains("configs/reasoning.toml")));
    meekbench()
        .arg("schema")
        .assert()
        .success()
        .stdout(contains("\"schema_version\""));
}

#[test]
fn suites_are_answered_scored_and_recorded() {
    let f = Fixture::new();
    // Room for the prompts: the tiny vocabulary spends about one token per byte.
    let spec = TinySpec {
        context: 2048,
        ..TinySpec::default()
    };
    write_tiny_llama(&f.model, spec).unwrap();
    let cfg = f.config("\n[[suites]]\nname = \"gen\"\nkind = \"generated\"\nfamilies = [\"arithmetic\", \"comparison\"]\n\
         steps = [1, 3]\nitems_per_level = 2\nshots = 1\nmax_new_tokens = 8\n",
    );
    let v = bench_json(&cfg, &["--threads", "1", "--no-outputs"]);
    let validator = jsonschema::validator_for(&schema()).unwrap();
    assert!(validator.is_valid(&v));
    let a = &v["runs"][0]["accuracy"][0];
    assert_eq!(a["suite"], "gen");
    assert_eq!(a["prompt_style"], "chat");
    assert_eq!(a["strict"]["n"], 8);
    let items = a["items"].as_array().unwrap();
    assert_eq!(items.len(), 8, "every item is recorded, right or wrong");
    for it in items {
        assert!(
            it.get("output").is_none(),
            "--no-outputs leaves the text out"
        );
        let g = it["generated_tokens"].as_u64().unwrap();
        assert!((1..=8).contains(&g));
        assert!(it["prompt_tokens"].as_u64().unwrap() > 10);
    }
    let steps: Vec<&str> = a["by_steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["1", "3"]);
    // The p-step model: measured at 3 steps beside acc(1)^3.
    let m = &a["step_model"];
    assert_eq!(m["base_steps"], 1);
    let p1 = m["points"][0]["measured"]["accuracy"].as_f64().unwrap();
    let p3 = m["points"][1]["predicted"].as_f64().unwrap();
    assert!((p3 - p1.powi(3)).abs() < 1e-9, "{m}");
}

#[test]
fn a_budget_sweep_answers_every_budget_into_one_file_and_prints_the_curve() {
    let f = Fixture::new();
    let spec = TinySpec {
        context: 2048,
        ..TinySpec::default()
    };
    write_tiny_llama(&f.model, spec).unwrap();
    let cfg = f.config(
        "\n[[suites]]\nname = \"gen\"\nkind = \"generated\"\nfamilies = [\"arithmetic\"]\n\
         steps = [1]\nitems_per_level = 2\nmax_new_tokens = [2, 5]\n",
    );
    let out = meekbench()
        .args(["bench", cfg.to_str().unwrap(), "--threads", "1"])
        .output()
        .unwrap();
    // The summary (on stderr) prints each budget and the curve.
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{summary}");
    assert!(summary.contains("accuracy against budget"), "{summary}");
    assert!(summary.contains("gen [5 tokens]"), "{summary}");
    let v: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(&f.results()[0]).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema()).unwrap();
    assert!(validator.is_valid(&v));
    let acc = v["runs"][0]["accuracy"].as_array().unwrap();
    let budgets: Vec<(u64, bool, usize)> = acc
        .iter()
        .map(|a| {
            (
                a["max_new_tokens"].as_u64().unwrap(),
                a["sweep"].as_bool().unwrap(),
                a["items"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(budgets, [(2, true, 2), (5, true, 2)]);
    for a in acc {
        let cap = a["max_new_tokens"].as_u64().unwrap();
        for it in a["items"].as_array().unwrap() {
            assert!(it["generated_tokens"].as_u64().unwrap() <= cap);
        }
    }
}

#[test]
fn base_models_without_a_chat_template_get_completion_prompts() {
    let f = Fixture::new();
    let spec = TinySpec {
        context: 2048,
        chat_template: false,
        ..TinySpec::default()
    };
    write_tiny_llama(&f.model, spec).unwrap();
    let cfg = f.config("\n[[suites]]\nname = \"base\"\nkind = \"generated\"\nfamilies = [\"sequence\"]\nsteps = [1]\nitems_per_level = 2\nshots = 2\nmax_new_tokens = 4\n");
    let v = bench_json(&cfg, &["--threads", "1"]);
    let a = &v["runs"][0]["accuracy"][0];
    assert_eq!(a["prompt_style"], "completion");
    assert_eq!(a["shots"], 2);
    assert_eq!(a["items"].as_array().unwrap().len(), 2);
}

#[test]
fn prompts_longer_than_the_context_are_scored_wrong_not_dropped() {
    let f = Fixture::new(); // 256 positions: a 1-shot chat prompt does not fit
    let cfg = f.config("\n[[suites]]\nname = \"long\"\nkind = \"generated\"\nfamilies = [\"word\"]\nsteps = [4]\nitems_per_level = 3\nshots = 1\n");
    let v = bench_json(&cfg, &["--threads", "1"]);
    let a = &v["runs"][0]["accuracy"][0];
    assert_eq!(a["flexible"]["n"], 3);
    for it in a["items"].as_array().unwrap() {
        assert_eq!(it["stop"], "prompt_too_long");
        assert_eq!(it["correct_flexible"], false);
    }
}

#[test]
fn a_broken_suite_file_is_named_before_anything_runs() {
    let f = Fixture::new();
    let suite = f.dir.path().join("suite.jsonl");
    fs_err::write(
        &suite,
        "{\"id\": 1, \"prompt\": \"2+2?\", \"answer\": 4}\n{\"id\": 2, \"prompt\": \"x\"}\n",
    )
    .unwrap();
    let cfg = f.config(&format!(
        "\n[[suites]]\nname = \"file\"\nkind = \"jsonl\"\nsource = {{ path = \"{}\" }}\n",
        suite.display()
    ));
    meekbench()
        .args(["bench", "--quiet"])
        .arg(&cfg)
        .assert()
        .failure()
        .stderr(
            contains("suite.jsonl:2:")
                .and(contains("answer"))
                .and(contains("suite `file`")),
        );
}

#[test]
fn project_places_measured_models_and_skips_bad_files() {
    let f = Fixture::new();
    let cfg = f.config("");
    let result = bench_path(&cfg, &["--threads", "1"]);
    let junk = f.dir.path().join("junk.json");
    fs_err::write(&junk, "{\"schema_version\": 99}").unwrap();
    let site = f.dir.path().join("projection");
    meekbench()
        .args(["project", "--out"])
        .arg(&site)
        .arg("--results")
        .arg(&result)
        .arg(&junk)
        .assert()
        .success()
        .stderr(
            contains("skipped")
                .and(contains("junk.json"))
                .and(contains("3.36 years").or(contains("peaks at 3.36"))),
        );
    let v: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(site.join("projection.json")).unwrap())
            .unwrap();
    assert_eq!(v["points"][0]["model"], "tiny");
    assert!(v["points"][0]["usd_per_token"].as_f64().unwrap() > 0.0);
    assert_eq!(v["skipped"].as_array().unwrap().len(), 1);
    let md = fs_err::read_to_string(site.join("report.md")).unwrap();
    // The run's own energy record is the basis (estimated on machines without a sensor), never an assumption.
    let basis = v["points"][0]["energy_basis"].as_str().unwrap();
    assert!(
        basis.starts_with("measured (measured:") || basis.starts_with("estimated (estimated:"),
        "{basis}"
    );
    assert!(
        md.contains("| tiny |") && !md.contains("assumed \\(30 W\\)"),
        "{md}"
    );
    for chart in [
        "loss-gap.svg",
        "accuracy-gap.svg",
        "tokens-to-distinguish.svg",
        "inference-gap.svg",
    ] {
        assert!(
            fs_err::read_to_string(site.join(chart))
                .unwrap()
                .starts_with("<svg")
        );
    }
}

/// Ctrl-C as a terminal sends it: SIGINT to the whole process group, while a measurement runs.
#[cfg(unix)]
#[test]
fn interrupt_keeps_what_was_measured_and_exits_130() {
    use std::os::unix::process::CommandExt;
    let f = Fixture::new();
    let cfg = f.config("");
    // Fast first thread count, then a long second one to interrupt.
    let text = fs_err::read_to_string(&cfg)
        .unwrap()
        .replace("repetitions = 2", "repetitions = 400");
    fs_err::write(&cfg, text).unwrap();
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("meekbench"))
        .args(["bench", "--quiet", "--threads", "1,2"])
        .arg(&cfg)
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first thread count's run is in the result file, then interrupt the second.
    let runs = || -> usize {
        f.results()
            .first()
            .and_then(|p| fs_err::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["runs"].as_array().map(Vec::len))
            .unwrap_or(0)
    };
    let start = std::time::Instant::now();
    while runs() == 0 && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: kill(2) with a negative pid signals the process group we created.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = f.results();
    assert_eq!(files.len(), 1);
    let v: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(&files[0]).unwrap()).unwrap();
    assert!(jsonschema::validator_for(&schema()).unwrap().is_valid(&v));
    assert_eq!(v["status"], "interrupted");
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs[0]["threads"], 1);
    assert!(runs[0].get("partial").is_none(), "the first run finished");
    // The run in progress finished its current repetition and was kept, marked partial (unless the signal came
    // before it had measured anything).
    assert!(runs.len() <= 2);
    if let Some(cut) = runs.get(1) {
        assert_eq!(cut["threads"], 2);
        assert_eq!(cut["partial"], true);
        for p in cut["speed"].as_array().unwrap() {
            let n = p["repetitions"].as_u64().unwrap();
            assert!((1..=400).contains(&n));
            assert_eq!(p["ttft_ms"]["samples"].as_array().unwrap().len() as u64, n);
        }
    }
    assert!(
        v.get("failures").is_none(),
        "an interrupt is not a failure: {v}"
    );
    assert!(v["finished_at"].is_string());

    // Resumed in place: the finished run is kept as it was, the cut one measured again in full.
    let out = stdout(
        meekbench()
            .args(["bench", "--quiet", "--threads", "1,2", "--resume"])
            .arg(&files[0]),
    );
    assert_eq!(
        String::from_utf8(out).unwrap().trim(),
        files[0].display().to_string()
    );
    assert_eq!(f.results(), files, "no new file");
    let w: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(w["status"], "complete");
    assert_eq!(w["runs"][0], runs[0]);
    assert_eq!(w["runs"][1]["threads"], 2);
    assert!(w["runs"][1].get("partial").is_none());
    assert_eq!(w["runs"][1]["speed"][1]["repetitions"], 400);
    assert_eq!(w["started_at"], v["started_at"]);
    // A complete file has nothing to resume, and other options are refused with what differs.
    meekbench()
        .args(["bench", "--quiet", "--threads", "1,2", "--resume"])
        .arg(&files[0])
        .assert()
        .failure()
        .stderr(contains("nothing to resume"));
}

#[test]
fn bad_config_and_result_files_are_named_and_nothing_is_lost() {
    let f = Fixture::new();
    let write = |name: &str, bytes: &[u8]| {
        let p = f.dir.path().join(name);
        fs_err::write(&p, bytes).unwrap();
        p
    };
    // Not UTF-8, and not TOML.
    let latin1 = write("latin1.toml", b"[run]\ndevice = \"caf\xe9\"\n");
    meekbench()
        .args(["bench", "--quiet"])
        .arg(&latin1)
        .assert()
        .code(1)
        .stderr(contains("latin1.toml").and(contains("UTF-8")));
    let broken = write("broken.toml", b"[run\ndevice = \"cpu\"\n");
    meekbench()
        .args(["bench", "--quiet"])
        .arg(&broken)
        .assert()
        .code(1)
        .stderr(contains("broken.toml").and(contains("line 1")));
    // Result files to resume: 100 MB of junk (refused unread), a newer layout, missing fields.
    let junk = f.dir.path().join("junk.json");
    fs_err::File::create(&junk)
        .unwrap()
        .set_len(100_000_000)
        .unwrap();
    let newer = write("newer.json", br#"{"schema_version": 2}"#);
    let missing = write(
        "missing.json",
        br#"{"schema_version": 1, "status": "interrupted"}"#,
    );
    for (file, want) in [
        (&junk, "larger than any result file"),
        (&newer, "upgrade meekbench"),
        (&missing, "missing field"),
    ] {
        let name = file.file_name().unwrap().to_str().unwrap();
        meekbench()
            .args(["bench", "--quiet", "--resume"])
            .arg(file)
            .assert()
            .code(1)
            .stderr(contains(name).and(contains(want)));
    }
    assert_eq!(fs_err::metadata(&junk).unwrap().len(), 100_000_000);
    assert_eq!(fs_err::read(&newer).unwrap(), br#"{"schema_version": 2}"#);
    assert!(f.results().is_empty(), "nothing was started");
}

#[test]
fn a_model_that_cannot_fit_in_memory_is_refused_before_loading() {
    let f = Fixture::new();
    // Wide KV heads (16 layers x 2 x 4 heads x 256 x 4 bytes = 128 KiB per position) and the longest prompt the
    // bounds allow (2^20 tokens): a KV cache of 128 GiB.
    let spec = TinySpec {
        context: 1 << 21,
        layers: 16,
        heads: 4,
        kv_heads: 4,
        head_dim: Some(256),
        ..TinySpec::default()
    };
    write_tiny_llama(&f.model, spec).unwrap();
    let cfg = f.config("");
    let text = fs_err::read_to_string(&cfg)
        .unwrap()
        .replace("prompt_tokens = [16]", "prompt_tokens = [1048576]");
    fs_err::write(&cfg, text).unwrap();
    meekbench()
        .args(["bench", "--quiet"])
        .arg(&cfg)
        .assert()
        .failure()
        .stderr(contains("GiB is available").and(contains("--ignore-memory-check")));
}

fn report_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../meek-report/tests/fixtures")
        .join(name)
}

#[test]
fn compare_shows_ratios_significance_and_differences() {
    let (a, b) = (
        report_fixture("machine-a.json"),
        report_fixture("machine-b.json"),
    );
    let out = String::from_utf8(stdout(meekbench().arg("compare").arg(&a).arg(&b))).unwrap();
    for want in [
        "decode tok/s",
        "B/A",
        "better",
        "no significant difference",
        "kernel",
        "cpu-avx512",
        "bootstrap",
    ] {
        assert!(out.contains(want), "{want} missing:\n{out}");
    }
    let json: serde_json::Value = serde_json::from_slice(&stdout(
        meekbench()
            .args(["compare", "--format", "json"])
            .arg(&a)
            .arg(&b),
    ))
    .unwrap();
    let decode = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["metric"] == "decode_tokens_per_second" && r["threads"][1] == 2)
        .expect("a matched decode row");
    assert_eq!(decode["versus"][1]["significant"], true);
    let md = String::from_utf8(stdout(
        meekbench()
            .args(["compare", "--format", "markdown"])
            .arg(&a)
            .arg(&b),
    ))
    .unwrap();
    assert!(md.contains("| model | threads | figure |"));
    assert!(!md.contains("<img"), "hostile names are escaped");
    // A llama-bench file of the same GGUF compares too.
    let out = String::from_utf8(stdout(
        meekbench()
            .arg("compare")
            .arg(report_fixture("meekbench-epyc-p16g8.json"))
            .arg(report_fixture("llama-bench-epyc.jsonl")),
    ))
    .unwrap();
    assert!(out.contains("p16 g8 = tg8"), "{out}");
}

#[test]
fn compare_refuses_one_file_and_names_unreadable_ones() {
    meekbench()
        .arg("compare")
        .arg(report_fixture("machine-a.json"))
        .assert()
        .code(2);
    meekbench()
        .arg("compare")
        .arg(report_fixture("machine-a.json"))
        .arg(report_fixture("bad/newer-schema.json"))
        .assert()
        .failure()
        .stderr(contains("newer-schema.json").and(contains("upgrade meekbench")));
}

#[test]
fn a_bench_result_compares_with_itself_without_significant_differences() {
    let f = Fixture::new();
    let path = bench_path(&f.config(""), &[]);
    let out = String::from_utf8(stdout(meekbench().arg("compare").arg(&path).arg(&path))).unwrap();
    assert!(out.contains("no significant difference"), "{out}");
    assert!(
        !out.lines()
            .any(|l| l.ends_with("  better") || l.ends_with("  worse")),
        "{out}"
    );
}

#[test]
fn leaderboard_writes_the_site_and_the_readme_and_skips_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    fs_err::create_dir_all(&results).unwrap();
    for f in ["machine-a.json", "machine-b.json", "bad/invalid.json"] {
        fs_err::copy(
            report_fixture(f),
            results.join(Path::new(f).file_name().unwrap()),
        )
        .unwrap();
    }
    let readme = dir.path().join("README.md");
    fs_err::write(
        &readme,
        "# x\n<!-- leaderboard:start -->\nold\n<!-- leaderboard:end -->\nend\n",
    )
    .unwrap();
    let site = dir.path().join("site");
    meekbench()
        .arg("leaderboard")
        .arg(&results)
        .arg("--out")
        .arg(&site)
        .args(["--rank-by", "accuracy", "--readme"])
        .arg(&readme)
        .assert()
        .success()
        .stderr(contains("skipped").and(contains("invalid.json")));
    for f in [
        "index.html",
        "leaderboard.md",
        "leaderboard.csv",
        "pareto.svg",
        "speed.svg",
        "steps.svg",
    ] {
        assert!(site.join(f).is_file(), "{f} missing");
    }
    let text = fs_err::read_to_string(&readme).unwrap();
    assert!(
        text.contains("Ranked by accuracy") && !text.contains("old") && text.ends_with("end\n")
    );
    // Nothing usable is an error; an unknown ranking is a usage error.
    meekbench()
        .arg("leaderboard")
        .arg(report_fixture("bad"))
        .arg("--out")
        .arg(dir.path().join("empty"))
        .assert()
        .failure()
        .stderr(contains("no usable result file"));
    meekbench()
        .args(["leaderboard", "x", "--out", "y", "--rank-by", "speed"])
        .assert()
        .code(2);
}

#[test]
fn leaderboard_check_fails_on_invalid_debug_and_unfinished_files() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    fs_err::create_dir_all(&good).unwrap();
    fs_err::copy(report_fixture("machine-a.json"), good.join("a.json")).unwrap();
    meekbench()
        .args(["leaderboard", "--check"])
        .arg(&good)
        .assert()
        .success()
        .stdout(contains("1 of 1 files pass"));
    let mut v: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(report_fixture("machine-a.json")).unwrap())
            .unwrap();
    v["tool"]["profile"] = "debug".into();
    fs_err::write(good.join("debug.json"), v.to_string()).unwrap();
    v["tool"]["profile"] = "release".into();
    v["status"] = "interrupted".into();
    fs_err::write(good.join("interrupted.json"), v.to_string()).unwrap();
    fs_err::copy(
        report_fixture("bad/invalid.json"),
        good.join("invalid.json"),
    )
    .unwrap();
    meekbench()
        .args(["leaderboard", "--check"])
        .arg(&good)
        .assert()
        .failure()
        .stdout(
            contains("1 of 4 files pass")
                .and(contains("FAIL"))
                .and(contains("debug build"))
                .and(contains("interrupted"))
                .and(contains("invalid.json")),
        );
    assert!(!dir.path().join("site").exists());
}

/// The energy contract over a whole result: every object with a joules figure and a status has a non-empty label,
/// is `estimated` whenever its label names an estimate, and is never `proxy-only` with joules. Returns how many
/// such objects there were.
fn energy_contract(v: &serde_json::Value, at: &str) -> usize {
    match v {
        serde_json::Value::Object(o) => {
            let mut n = 0;
            let joules = o.iter().any(|(k, x)| k.contains("joules") && !x.is_null());
            if joules && o.contains_key("status") && o.contains_key("label") {
                let label = o["label"].as_str().unwrap();
                let status = o["status"].as_str().unwrap();
                assert!(!label.is_empty(), "{at}: joules without a label");
                if label.split('+').any(|p| p.starts_with("estimated:")) {
                    assert_eq!(status, "estimated", "{at}: an estimate labelled {status}");
                }
                assert_ne!(status, "proxy-only", "{at}: joules in a proxy-only record");
                n += 1;
            }
            n + o
                .iter()
                .map(|(k, x)| energy_contract(x, &format!("{at}.{k}")))
                .sum::<usize>()
        }
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| energy_contract(x, &format!("{at}[{i}]")))
            .sum(),
        _ => 0,
    }
}

#[test]
fn every_run_carries_labelled_energy_proxies_and_cost() {
    let f = Fixture::new();
    let spec = TinySpec {
        context: 2048,
        ..TinySpec::default()
    };
    write_tiny_llama(&f.model, spec).unwrap();
    let cfg = f.config(
        "\n[[suites]]\nname = \"gen\"\nkind = \"generated\"\nfamilies = [\"arithmetic\"]\nsteps = [1]\n\
         items_per_level = 3\nshots = 0\nmax_new_tokens = 6\n\n\
         [energy]\nprice_per_kwh = 0.25\ncurrency = \"EUR\"\nidle_baseline_seconds = 1\n",
    );
    let v = bench_json(&cfg, &["--threads", "1"]);
    let validator = jsonschema::validator_for(&schema()).unwrap();
    assert!(validator.is_valid(&v));
    // Run, two speed points and the suite: four labelled records with joules.
    assert_eq!(energy_contract(&v, "result"), 4);
    let e = &v["runs"][0]["energy"];
    let status = e["status"].as_str().unwrap();
    // Measured on a machine with a readable sensor, estimated on one without (CI, VMs); never anything else.
    assert!(matches!(status, "measured" | "estimated"), "{e}");
    if e["components"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["provenance"] == "estimated")
    {
        assert_eq!(status, "estimated");
        assert_eq!(
            e["estimate"]["curve"].as_str().unwrap().split(':').next(),
            Some("teads")
        );
    }
    for key in [
        "joules_per_prefill_token",
        "joules_per_decode_token",
        "joules_per_answer",
        "average_watts",
    ] {
        assert!(e[key].as_f64().unwrap() > 0.0, "{key}: {e}");
    }
    assert!(e["baseline"]["watts"].as_f64().unwrap() >= 0.0);
    assert!(e["baseline"]["seconds"].as_f64().unwrap() >= 0.9);
    assert_eq!(e["cost"]["currency"], "EUR");
    let per_m = e["cost"]["per_million_decode_tokens"].as_f64().unwrap();
    let jpt = e["joules_per_decode_token"].as_f64().unwrap();
    assert!((per_m - jpt * 1e6 / 3.6e6 * 0.25).abs() < 1e-9 * per_m.max(1.0));
    let p = &e["proxies"];
    assert!(p["cpu_seconds_per_decode_token"].as_f64().unwrap() > 0.0);
    assert!(p["flops_per_token"].as_f64().unwrap() > 0.0);
    assert!(p["weight_bytes_per_token"].as_u64().unwrap() > 0);
    let point = &v["runs"][0]["speed"][0]["energy"];
    assert_eq!(
        point["joules_per_decode_token"]["samples"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "one figure per repetition"
    );
    let suite = &v["runs"][0]["accuracy"][0];
    let items = suite["items"].as_array().unwrap();
    let sum: f64 = items.iter().map(|i| i["joules"].as_f64().unwrap()).sum();
    let total = suite["energy"]["joules"].as_f64().unwrap();
    assert!(
        (sum - total).abs() < 1e-9 * total.max(1.0),
        "{sum} vs {total}"
    );
}

#[test]
fn energy_sources_none_leaves_proxies_only() {
    let f = Fixture::new();
    let cfg = f.config("\n[energy]\nsources = \"none\"\nprice_per_kwh = 0.3\n");
    let v = bench_json(&cfg, &["--threads", "1"]);
    assert_eq!(energy_contract(&v, "result"), 0);
    let e = &v["runs"][0]["energy"];
    assert_eq!(e["status"], "proxy-only");
    assert_eq!(e["label"], "proxy-only");
    assert!(e.get("joules_per_decode_token").is_none() && e.get("cost").is_none());
    assert!(
        e["proxies"]["cpu_seconds_per_decode_token"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(v["runs"][0]["speed"][0]["energy"]["status"], "proxy-only");
}

#[test]
fn doctor_says_what_can_be_measured() {
    let out = stdout(meekbench().args(["doctor", "--read", "0"]));
    let text = String::from_utf8(out).unwrap();
    for id in ["rapl-powercap", "rapl-perf", "hwmon-energy", "tdp-model"] {
        assert!(text.contains(id), "{id} missing from:\n{text}");
    }
    assert!(text.contains("a bench here reports:"), "{text}");
    // What the CPU pool sees, where the kernel has counters.
    #[cfg(target_os = "linux")]
    assert!(text.contains("CPUs this process may run on:"), "{text}");
}

/// A Hugging Face checkpoint directory as a `path` source, pinned by its digest: benched end to end, tokenized,
/// and refused once a shard changes.
#[test]
fn a_safetensors_checkpoint_directory_is_benched_end_to_end() {
    use meek_testkit::{TinyCheckpoint, write_tiny_checkpoint};
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("tiny-qwen2");
    write_tiny_checkpoint(
        &ck,
        TinyCheckpoint {
            arch: "qwen2",
            dtype: meek_testkit::DType::BF16,
            shards: 2,
            // Room for the suite's prompts: the tiny vocabulary spends about one token per byte.
            context: 1024,
            ..TinyCheckpoint::default()
        },
    )
    .unwrap();
    let digest = String::from_utf8(stdout(meekbench().arg("digest").arg(&ck)))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(digest, meek_hub::checkpoint_digest(&ck).unwrap());
    let out = dir.path().join("results");
    let cfg = dir.path().join("bench.toml");
    let write_cfg = |sha: &str| {
        fs_err::write(
            &cfg,
            format!(
                "[run]\ndevice = \"cpu\"\nthreads = [1]\noutput = \"{}\"\ncache = \"{}\"\n\n\
                 [[models]]\nid = \"tiny-st\"\nfile = \"config.json\"\nsha256 = \"{sha}\"\n\
                 sources = [{{ path = \"{}\" }}]\n\n\
                 [speed]\nprompt_tokens = [8]\ngen_tokens = [3]\nwarmup = 0\nrepetitions = 2\n\n\
                 [[suites]]\nname = \"gen\"\nkind = \"generated\"\nfamilies = [\"arithmetic\"]\nsteps = [1]\n\
                 items_per_level = 2\nshots = 0\nmax_new_tokens = 4\n",
                out.display(),
                dir.path().join("cache").display(),
                ck.display()
            ),
        )
        .unwrap();
    };
    write_cfg(&digest);
    let v = bench_json(&cfg, &[]);
    assert_eq!(v["status"], "complete");
    assert!(v["failures"].as_array().is_none_or(Vec::is_empty), "{v}");
    let run = &v["runs"][0];
    assert_eq!(run["model"]["architecture"], "qwen2");
    assert_eq!(run["model"]["quantization"], "BF16");
    assert_eq!(run["model"]["sha256"], digest.as_str());
    assert_eq!(run["kernel"], "candle-cpu-f32");
    let speed = &run["speed"][0];
    assert_eq!(speed["n_prompt"], 8);
    assert_eq!(
        speed["decode_tokens_per_second"]["samples"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // The suite is prompted through the chat template of tokenizer_config.json.
    let a = &run["accuracy"][0];
    assert_eq!(a["prompt_style"], "chat");
    assert_eq!(a["items"].as_array().unwrap().len(), 2);
    assert!(a["items"][0]["prompt_tokens"].as_u64().unwrap() > 10);
    let validator = jsonschema::validator_for(&schema()).unwrap();
    assert!(validator.is_valid(&v));

    let tok: serde_json::Value = serde_json::from_slice(&stdout(
        meekbench()
            .args(["tokenize", "--json"])
            .arg(&ck)
            .arg("hello the 12"),
    ))
    .unwrap();
    let pieces: Vec<&str> = tok["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["piece"].as_str().unwrap())
        .collect();
    assert_eq!(pieces, ["hello", " the", " ", "1", "2"]);

    // A changed shard no longer matches the pinned digest: the model fails, named, with the new digest.
    let shard = ck.join("model-00002-of-00002.safetensors");
    let mut bytes = fs_err::read(&shard).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs_err::write(&shard, bytes).unwrap();
    meekbench()
        .args(["bench", "--quiet"])
        .arg(&cfg)
        .assert()
        .failure()
        .stderr(
            contains("tiny-st")
                .and(contains("sha256 mismatch for checkpoint"))
                .and(contains(meek_hub::checkpoint_digest(&ck).unwrap())),
        );
}

/// Issue #18, item 1: a shared config whose hub source names a file outside the cache once deleted that file (the
/// corrupt-blob clean-up) or emptied it (hf-hub's `.no_exist` marker). It is refused before any file operation:
/// the victim is untouched and no result file, cache or hub cache folder is made.
#[test]
fn a_config_naming_a_file_outside_the_cache_is_refused_before_touching_anything() {
    let f = Fixture::new();
    let victim = f.dir.path().join("notes.txt");
    fs_err::write(&victim, "my notes").unwrap();
    let sha = sha256(&victim);
    for source in [
        format!(
            "{{ hub = \"o/n\", revision = \"0123456789abcdef0123456789abcdef01234567\", file = \"{}\" }}",
            victim.display()
        ),
        format!(
            "{{ hub = \"o/n\", revision = \"main\", file = \"../../../../../../..{}\" }}",
            victim.display()
        ),
        format!(
            "{{ hub = \"o/n\", revision = \"../../../../../../..{}\" }}",
            victim.display()
        ),
    ] {
        let cfg = f.dir.path().join("shared.toml");
        fs_err::write(
            &cfg,
            format!(
                "[run]\noutput = \"{out}\"\ncache = \"{cache}\"\n[[models]]\nid = \"m\"\nfile = \"m.gguf\"\n\
                 sha256 = \"{sha}\"\nsources = [{source}]\n",
                out = f.out().display(),
                cache = f.dir.path().join("cache").display(),
            ),
        )
        .unwrap();
        meekbench()
            .args(["bench", "--quiet"])
            .arg(&cfg)
            .env("HF_HOME", f.dir.path().join("hf"))
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .assert()
            .failure()
            .stderr(contains("shared.toml").and(contains("`models[0].sources[0]`")));
        assert_eq!(fs_err::read_to_string(&victim).unwrap(), "my notes");
        for made in ["results", "cache", "hf"] {
            assert!(!f.dir.path().join(made).exists(), "{made} was created");
        }
    }
}

/// Issue #18, item 10: a suite that cannot be read fails the bench before anything is measured, and leaves no
/// `running` result file with no runs behind.
#[test]
fn a_bad_suite_leaves_no_result_file() {
    let f = Fixture::new();
    let suite = f.dir.path().join("suite.jsonl");
    fs_err::write(&suite, "{\"id\": \"a\", \"prompt\": \"1+1\"}\nnot json\n").unwrap();
    let cfg = f.config(&format!(
        "\n[[suites]]\nname = \"s\"\nkind = \"jsonl\"\nsource = {{ path = \"{}\" }}\n",
        suite.display()
    ));
    meekbench()
        .args(["bench", "--quiet"])
        .arg(&cfg)
        .assert()
        .failure()
        .stderr(contains("suite.jsonl"));
    assert!(f.results().is_empty(), "{:?}", f.results());
}

/// A config naming a hub branch without sha256: `bench --locked` refuses it, `lock` pins it (and `--check` sees the
/// lock up to date while the branch moves), `lock --update` moves the pin, `bench --locked` then measures the
/// locked commit's file and records the commit, the SHA-256 and the lock; `models` shows the size and fit.
#[test]
fn lock_pins_a_hub_branch_and_bench_measures_the_locked_file() {
    use meek_testkit::hub::{FakeHub, sha256_hex};
    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    let dir = tempfile::tempdir().unwrap();
    let model = |seed: u64| {
        let p = dir.path().join(format!("seed{seed}.gguf"));
        write_tiny_llama(
            &p,
            TinySpec {
                seed,
                ..TinySpec::default()
            },
        )
        .unwrap();
        fs_err::read(&p).unwrap()
    };
    let (v1, v2) = (model(1), model(2));
    let hub = FakeHub::start();
    hub.commit("owner/tiny-GGUF", "main", A, &[("tiny.gguf", &v1)], true);
    let cfg = dir.path().join("mid.toml");
    fs_err::write(
        &cfg,
        format!(
            "[run]\ndevice = \"cpu\"\nthreads = [1]\noutput = \"{out}\"\ncache = \"{cache}\"\n\n\
             [[models]]\nid = \"tiny\"\nfile = \"tiny.gguf\"\nsources = [{{ hub = \"owner/tiny-GGUF\", revision = \"main\" }}]\n\n\
             [speed]\nprompt_tokens = [16]\ngen_tokens = [4]\nwarmup = 0\nrepetitions = 1\n",
            out = dir.path().join("results").display(),
            cache = dir.path().join("cache").display(),
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut c = meekbench();
        c.env("HF_ENDPOINT", &hub.endpoint)
            .env("HF_HUB_CACHE", dir.path().join("hf"))
            .env_remove("HF_HUB_OFFLINE")
            .env_remove("HF_TOKEN")
            .args(args)
            .arg(&cfg);
        c
    };
    run(&["bench", "--quiet", "--locked"])
        .assert()
        .failure()
        .stderr(
            contains("--locked")
                .and(contains("meekbench lock"))
                .and(contains("models[0] (tiny)")),
        );
    run(&["lock"]).assert().success().stdout(contains(
        "tiny: pinned hub:owner/tiny-GGUF@main -> commit aaaaaaaaaaaa",
    ));
    let lock = dir.path().join("mid.lock");
    let text = fs_err::read_to_string(&lock).unwrap();
    assert!(
        text.contains(&sha256_hex(&v1)) && text.contains(A),
        "{text}"
    );
    run(&["models"])
        .assert()
        .success()
        .stdout(contains("locked").and(contains("tok/s")));

    // main moves: the lock holds (and is up to date) until --update moves it.
    hub.commit("owner/tiny-GGUF", "main", B, &[("tiny.gguf", &v2)], true);
    run(&["lock", "--check"])
        .assert()
        .success()
        .stdout(contains("up to date"));
    run(&["lock", "--update"])
        .assert()
        .success()
        .stdout(contains(
            "moved from commit aaaaaaaaaaaa to bbbbbbbbbbbb (another file)",
        ));
    run(&["lock", "--check"]).assert().success();

    let out = stdout(&mut run(&["bench", "--quiet", "--json", "--locked"]));
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let m = &v["runs"][0]["model"];
    assert_eq!(m["sha256"], sha256_hex(&v2));
    assert_eq!(m["source"], format!("hub:owner/tiny-GGUF@{B}"));
    assert!(v["config"]["lock"].as_str().unwrap().contains(B));
    run(&["models"])
        .assert()
        .success()
        .stdout(contains("verified"));

    // A lock edited by hand so that it no longer matches the config is refused with --locked, naming what moved.
    fs_err::write(
        &lock,
        fs_err::read_to_string(&lock)
            .unwrap()
            .replace("file = \"tiny.gguf\"", "file = \"old.gguf\""),
    )
    .unwrap();
    run(&["bench", "--quiet", "--locked"])
        .assert()
        .failure()
        .stderr(contains("no longer matches").and(contains("old.gguf")));
}

#[test]
fn shards_merged_equal_one_bench_of_the_whole_plan() {
    let f = Fixture::new();
    let cfg = f.config("\n[[suites]]\nname = \"base\"\nkind = \"generated\"\nfamilies = [\"sequence\"]\nsteps = [1]\nitems_per_level = 2\nshots = 2\nmax_new_tokens = 4\n");
    let whole = bench_path(&cfg, &[]);
    let parts: Vec<PathBuf> = (0..2)
        .map(|i| {
            let out = f.dir.path().join(format!("shard{i}"));
            bench_path(
                &cfg,
                &["--shard", &format!("{i}/2"), "-o", out.to_str().unwrap()],
            )
        })
        .collect();
    let read = read_json;
    for (i, p) in parts.iter().enumerate() {
        let v = read(p);
        assert_eq!(v["shard"]["index"], i);
        assert_eq!(v["runs"].as_array().unwrap().len(), 1, "one run each");
    }
    // Too many shards, a shard that does not exist: clear errors before anything runs.
    meekbench()
        .args(["bench", "--quiet", "--shard", "0/3"])
        .arg(&cfg)
        .assert()
        .failure()
        .stderr(contains("cannot be split into 3 shards"));
    meekbench()
        .args(["bench", "--shard", "2/2"])
        .arg(&cfg)
        .assert()
        .code(2);
    let merged = f.dir.path().join("merged.json");
    // A missing shard, a repeated one, and a file that is no shard are refused.
    for (inputs, want) in [
        (vec![&parts[0]], "every part once"),
        (vec![&parts[0], &parts[0]], "both shard 0/2"),
        (vec![&parts[0], &whole], "not a shard"),
    ] {
        meekbench()
            .arg("merge")
            .args(inputs)
            .arg("-o")
            .arg(&merged)
            .assert()
            .failure()
            .stderr(contains(want));
    }
    meekbench()
        .arg("merge")
        .args([&parts[1], &parts[0]])
        .arg("-o")
        .arg(&merged)
        .assert()
        .success();
    let validator = jsonschema::validator_for(&schema()).unwrap();
    assert!(validator.is_valid(&read(&merged)));
    // The same runs, points and answers as one bench of the whole plan; only the timings differ.
    let (m, w) = (read(&merged), read(&whole));
    assert_eq!(shape(&m), shape(&w));
    assert!(m.get("shard").is_none());
    assert_eq!(m["config"]["sha256"], w["config"]["sha256"]);
    assert_eq!(m["status"], "complete");
    // An existing output is not overwritten.
    meekbench()
        .arg("merge")
        .args(&parts)
        .arg("-o")
        .arg(&merged)
        .assert()
        .failure()
        .stderr(contains("exists"));
    // A shard from another machine: refused, or kept with its own machine record when allowed.
    let mut other = read(&parts[1]);
    other["machine"]["cpu"]["brand"] = "Other CPU".into();
    let other_path = f.dir.path().join("other.json");
    fs_err::write(&other_path, other.to_string()).unwrap();
    let mixed = f.dir.path().join("mixed.json");
    meekbench()
        .arg("merge")
        .args([&parts[0], &other_path])
        .arg("-o")
        .arg(&mixed)
        .assert()
        .failure()
        .stderr(contains("another machine"));
    meekbench()
        .args(["merge", "--allow-mixed-machines"])
        .args([&parts[0], &other_path])
        .arg("-o")
        .arg(&mixed)
        .assert()
        .success();
    let v = read(&mixed);
    let machines: Vec<&serde_json::Value> = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["machine"]["cpu"]["brand"])
        .collect();
    assert_eq!(machines.iter().filter(|b| **b == "Other CPU").count(), 1);
}
