//! The cluster recipes of `scripts/fleet/`, run for real where the tools are installed: a Slurm job array on a
//! one-node cluster that the test starts from Debian's packages (`local-cluster.sh`), and the Kubernetes
//! manifests checked against the API's own schemas. A missing tool skips its test with a message, or fails it
//! where `MEEKBENCH_REQUIRE_SLURM=1` / `MEEKBENCH_REQUIRE_K8S_VALIDATE=1` (as in CI).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use meek_testkit::{TinySpec, write_tiny_llama};
mod common;

use common::{read_json, shape};

fn fleet(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/fleet")
        .join(rel)
}

fn required(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| v == "1")
}

fn found(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .any(|d| d.join(program).is_file())
}

/// Output of a command that must succeed, with its standard error shown when it does not.
fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A one-node Slurm cluster in a directory; stopped when dropped, also when the test fails.
struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    fn start(dir: PathBuf) -> Self {
        run_ok(
            Command::new(fleet("slurm/local-cluster.sh"))
                .arg("start")
                .arg(&dir),
        );
        Cluster { dir }
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("slurm.conf")
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", self.conf());
        c
    }

    /// Waits (at most `limit`) for a job to reach a final state and returns it.
    fn wait(&self, job: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let out = run_ok(self.command("scontrol").args(["show", "job", "-o", job]));
            // An array job shows one line per task; the job is final when every task is.
            let states: Vec<&str> = out
                .split_whitespace()
                .filter_map(|w| w.strip_prefix("JobState="))
                .collect();
            let final_state =
                |s: &&str| !matches!(*s, "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING");
            if !states.is_empty() && states.iter().all(final_state) {
                return states.join(",");
            }
            assert!(
                start.elapsed() < limit,
                "job {job} not done after {limit:?}: {out}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn logs(&self) -> String {
        ["slurmctld.log", "slurmd.log"]
            .iter()
            .map(|f| {
                let text = fs_err::read_to_string(self.dir.join(f)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                format!(
                    "--- {f}\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(fleet("slurm/local-cluster.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

/// Every `*.out` file under `dir`: the jobs' own logs, for a failure message.
fn job_outputs(dir: &Path) -> String {
    let mut s = String::new();
    for e in fs_err::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().extension().is_some_and(|x| x == "out") {
            s += &format!(
                "--- {}\n{}\n",
                e.path().display(),
                fs_err::read_to_string(e.path()).unwrap_or_default()
            );
        }
    }
    s
}

#[test]
fn a_slurm_array_of_two_shards_merges_into_one_bench_of_the_whole_plan() {
    if !(found("slurmctld") && found("slurmd") && found("munged") && found("sbatch")) {
        assert!(
            !required("MEEKBENCH_REQUIRE_SLURM"),
            "MEEKBENCH_REQUIRE_SLURM=1 but Slurm is not installed (apt-get install slurmctld slurmd munge slurm-client)"
        );
        eprintln!(
            "skipped: Slurm is not installed (apt-get install slurmctld slurmd munge slurm-client)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Two models, so that the plan has two runs at the task's one thread.
    let mut models = String::new();
    for (i, seed) in [(0, 7), (1, 8)] {
        let path = dir.join(format!("tiny{i}.gguf"));
        write_tiny_llama(
            &path,
            TinySpec {
                seed,
                ..TinySpec::default()
            },
        )
        .unwrap();
        models += &format!(
            "[[models]]\nid = \"tiny{i}\"\nfile = \"tiny{i}.gguf\"\nsha256 = \"{}\"\nsources = [{{ path = \"{}\" }}]\n\n",
            meek_hub::sha256_file(&path).unwrap(),
            path.display()
        );
    }
    let config = dir.join("plan.toml");
    fs_err::write(
        &config,
        format!(
            "[run]\ndevice = \"cpu\"\nthreads = [2]\n\n{models}\
             [speed]\nprompt_tokens = [16]\ngen_tokens = [4]\nwarmup = 1\nrepetitions = 2\n\n\
             [[suites]]\nname = \"base\"\nkind = \"generated\"\nfamilies = [\"sequence\"]\nsteps = [1]\n\
             items_per_level = 2\nshots = 2\nmax_new_tokens = 4\n"
        ),
    )
    .unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_meekbench"));
    let cache = dir.join("cache");

    let cluster = Cluster::start(dir.join("slurm"));
    let results = dir.join("results");
    let out = run_ok(
        cluster
            .command("bash")
            .arg(fleet("slurm/submit.sh"))
            .args(["--results"])
            .arg(&results)
            .args(["--run", "t"])
            .arg(&config)
            .args(["2", "--cpus-per-task=1", "--time=10"])
            .env("MEEKBENCH_BIN", &bin)
            .env("MEEKBENCH_CACHE", &cache)
            // The leaderboard leaves out a debug build's files, as this test binary's may be.
            .env("MEEKBENCH_LEADERBOARD", "0"),
    );
    // "array job A (2 shards), merge job M; results in ..."
    let words: Vec<&str> = out.split_whitespace().collect();
    let (array, merge) = (words[2], words[7].trim_end_matches(';'));
    let limit = Duration::from_secs(240);
    let array_state = cluster.wait(array, limit);
    let merge_state = cluster.wait(merge, limit);
    assert!(
        array_state.split(',').all(|s| s == "COMPLETED") && merge_state == "COMPLETED",
        "array {array_state}, merge {merge_state}\n{}{}",
        job_outputs(&results),
        cluster.logs()
    );

    let run_dir = results.join("t");
    let merged = read_json(&run_dir.join("merged.json"));
    for i in 0..2 {
        let shard: Vec<PathBuf> = fs_err::read_dir(run_dir.join(format!("shard-{i}")))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        assert_eq!(shard.len(), 1, "one result file per shard");
        let v = read_json(&shard[0]);
        assert_eq!(v["shard"]["index"], i);
        assert_eq!(v["shard"]["count"], 2);
        assert_eq!(v["runs"][0]["threads"], 1, "threads from --cpus-per-task");
    }

    // The same plan on one machine, unsharded, at the task's thread count.
    let whole = run_ok(
        Command::new(&bin)
            .args(["bench", "--quiet", "--threads", "1", "-o"])
            .arg(dir.join("whole"))
            .arg(&config)
            .env("MEEKBENCH_CACHE", &cache),
    );
    let whole = read_json(Path::new(whole.trim()));
    assert_eq!(shape(&merged), shape(&whole));
    assert_eq!(merged["runs"].as_array().unwrap().len(), 2);
    assert_eq!(merged["config"]["sha256"], whole["config"]["sha256"]);
    assert_eq!(merged["status"], "complete");

    // A task run again (requeued, or the array submitted again under the same name) leaves a complete shard
    // as it is, and continues one that was interrupted.
    let task = |i: usize| {
        let mut c = Command::new("bash");
        c.arg(fleet("slurm/bench.sbatch"))
            .env("MEEKBENCH_CONFIG", &config)
            .env("MEEKBENCH_RESULTS", &results)
            .env("MEEKBENCH_RUN", "t")
            .env("MEEKBENCH_FLEET", fleet(""))
            .env("MEEKBENCH_BIN", &bin)
            .env("MEEKBENCH_CACHE", &cache)
            .env("SLURM_ARRAY_JOB_ID", array)
            .env("SLURM_ARRAY_TASK_ID", i.to_string())
            .env("SLURM_ARRAY_TASK_COUNT", "2")
            .env("SLURM_ARRAY_TASK_MIN", "0")
            .env("SLURM_ARRAY_TASK_MAX", "1")
            .env("SLURM_CPUS_PER_TASK", "1");
        c
    };
    assert!(run_ok(&mut task(0)).contains("already complete"));
    // A file a killed task left empty is set aside and the shard measured afresh.
    let shard0: PathBuf = fs_err::read_dir(run_dir.join("shard-0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap();
    let kept = fs_err::read(&shard0).unwrap();
    fs_err::write(&shard0, "").unwrap();
    assert!(run_ok(&mut task(0)).contains("is empty"));
    let fresh: Vec<PathBuf> = fs_err::read_dir(run_dir.join("shard-0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json") && fs_err::metadata(p).unwrap().len() > 0
        })
        .collect();
    assert_eq!(fresh.len(), 1);
    assert_eq!(read_json(&fresh[0])["status"], "complete");
    fs_err::remove_file(&fresh[0]).unwrap();
    fs_err::write(&shard0, kept).unwrap();
    let shard1: PathBuf = fs_err::read_dir(run_dir.join("shard-1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap();
    let mut cut = read_json(&shard1);
    cut["status"] = "interrupted".into();
    cut["runs"] = serde_json::json!([]);
    fs_err::write(&shard1, serde_json::to_string_pretty(&cut).unwrap()).unwrap();
    assert!(run_ok(&mut task(1)).contains("resuming"));
    let resumed = read_json(&shard1);
    assert_eq!(resumed["status"], "complete");
    let again = shape(&resumed);
    assert_eq!(again.len(), 1);
    assert!(
        shape(&merged).contains(&again[0]),
        "the same run measured again"
    );
}

/// The array task refuses an array that does not run 0..N-1, before it measures anything.
#[test]
fn a_slurm_array_with_a_gap_is_refused() {
    let out = Command::new("bash")
        .arg(fleet("slurm/bench.sbatch"))
        .env("MEEKBENCH_CONFIG", "plan.toml")
        .env("MEEKBENCH_RESULTS", "results")
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_JOB_ID", "5")
        .env("SLURM_ARRAY_TASK_COUNT", "2")
        .env("SLURM_ARRAY_TASK_MIN", "1")
        .env("SLURM_ARRAY_TASK_MAX", "2")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be 0-1 without gaps"));
}

/// `kubernetes-validate` (PyPI), which checks manifests offline against the API's own OpenAPI schemas: `kubectl
/// --dry-run=client` cannot, as it asks a server for the API's resources even then.
fn kubernetes_validate() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MEEKBENCH_KUBERNETES_VALIDATE") {
        return Some(PathBuf::from(p));
    }
    found("kubernetes-validate").then(|| PathBuf::from("kubernetes-validate"))
}

fn validate(tool: &Path, file: &Path) {
    // 1.29: the first release with backoffLimitPerIndex on by default; 1.37: the newest the tool knows.
    for version in ["1.29.0", "1.37.0"] {
        let out = Command::new(tool)
            .args(["--strict", "--no-warn", "-k", version])
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} is not valid for Kubernetes {version}:\n{}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_kubernetes_manifests_are_valid_and_render_the_plan() {
    let Some(tool) = kubernetes_validate() else {
        assert!(
            !required("MEEKBENCH_REQUIRE_K8S_VALIDATE"),
            "MEEKBENCH_REQUIRE_K8S_VALIDATE=1 but kubernetes-validate is not installed (pip install \
             kubernetes-validate, or set MEEKBENCH_KUBERNETES_VALIDATE)"
        );
        eprintln!(
            "skipped: kubernetes-validate is not installed (pip install kubernetes-validate)"
        );
        return;
    };
    validate(&tool, &fleet("k8s/bench-job.yaml"));
    validate(&tool, &fleet("k8s/merge-job.yaml"));

    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("Mid_Plan.toml");
    let text = "[run]\nthreads = \"auto\"\n\n[[models]]\nid = \"m\"\n  # indented: kept as it is\n";
    fs_err::write(&config, text).unwrap();
    fs_err::write(tmp.path().join("Mid_Plan.lock"), "version = 1\n").unwrap();
    let render = |args: &[&str]| {
        run_ok(
            Command::new("bash")
                .arg(fleet("k8s/run.sh"))
                .args(args)
                .current_dir(tmp.path()),
        )
    };
    let rendered = render(&[
        "render",
        "Mid_Plan.toml",
        "3",
        "--gpu",
        "--class",
        "gpu-h100",
    ]);
    let file = tmp.path().join("rendered.yaml");
    fs_err::write(&file, &rendered).unwrap();
    validate(&tool, &file);
    // The run's name from the config's, the shard count in both places, the GPU option on, the config and its
    // lock in the ConfigMap line by line.
    for want in [
        "name: meekbench-bench-mid-plan\n",
        "  completions: 3 ",
        "              value: \"3\"\n",
        "            - name: MEEKBENCH_DEVICE\n",
        "              nvidia.com/gpu: 1\n",
        "        meekbench/class: gpu-h100\n",
        "  name: meekbench-config-mid-plan\n",
        "immutable: true\n",
        "            name: meekbench-config-mid-plan\n",
        "  bench.toml: |2+\n    [run]\n    threads = \"auto\"\n\n    [[models]]\n    id = \"m\"\n      # indented",
        "  bench.lock: |2+\n    version = 1\n",
    ] {
        assert!(
            rendered.contains(want),
            "rendered manifests lack {want:?}:\n{rendered}"
        );
    }
    assert!(!rendered.contains("example") && !rendered.lines().any(|l| l.starts_with("#gpu")));
    let merge = render(&[
        "render-merge",
        "--run",
        "mid-plan",
        "--image",
        "registry.example/meekbench:1",
    ]);
    fs_err::write(&file, &merge).unwrap();
    validate(&tool, &file);
    assert!(merge.contains("image: registry.example/meekbench:1\n"));

    // A file without a final newline keeps it so ("strip" chomping); one with carriage returns is refused.
    fs_err::write(&config, "[run]\nthreads = 1").unwrap();
    assert!(
        render(&["render", "Mid_Plan.toml", "2"])
            .contains("  bench.toml: |2-\n    [run]\n    threads = 1\n  bench.lock: |2+\n")
    );
    fs_err::write(&config, "[run]\r\nthreads = 1\r\n").unwrap();
    let crlf = Command::new("bash")
        .arg(fleet("k8s/run.sh"))
        .args(["render", "Mid_Plan.toml", "2"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(crlf.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&crlf.stderr).contains("carriage returns"));
    fs_err::write(&config, text).unwrap();

    // A name Kubernetes would refuse (a pod's host name is the Job's name and index, 63 characters at most), or
    // one that would break the manifests, is refused before anything.
    let long = "a".repeat(41);
    for bad in ["Mid", "a;b", "x/../y", "-a", long.as_str()] {
        let out = Command::new("bash")
            .arg(fleet("k8s/run.sh"))
            .args(["render", "Mid_Plan.toml", "2", "--run", bad])
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--run {bad}");
    }
}
