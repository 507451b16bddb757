//! Compare and leaderboard on fixture files from two made-up machines (`machine-a.json`, `machine-b.json`), real
//! files measured on the project's 2-vCPU EPYC (`real-epyc-2vcpu.json`, `meekbench-epyc-p16g8.json`), real
//! llama-bench output of the same GGUF file (`llama-bench-epyc.json`, `.jsonl`) and broken files (`bad/`).
//!
//! The Markdown and CSV are snapshot-tested with insta (`tests/snapshots/*.snap`). After a change, review and
//! accept the new output with `cargo insta review` (cargo-insta), or write it straight into the snapshots with
//! `INSTA_UPDATE=always cargo test -p meek-report` and review the diff. Where `CI` is set, a mismatch fails and
//! nothing is written. The site is opened in a real headless Chromium when one is installed (required when
//! `MEEKBENCH_REQUIRE_BROWSER=1`, as in CI).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fs_err as fs;
use meek_report::board::{self, RankBy};
use meek_report::compare::{self, Comparison, Metric};
use meek_report::energy_columns::{Energy, PointEnergy};
use meek_report::input::{self, Document, Loaded, SchemaCheck};
use meek_report::{site, svg};

const HOSTILE: &str = "<img src=x onerror=alert(1)>";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load(name: &str) -> Loaded {
    input::load(&fixtures().join(name), &SchemaCheck::new())
        .unwrap_or_else(|s| panic!("{}: {}", s.path, s.reason))
}

/// machine-b.json with the energy records of `tests/data/machine-b-energy.json` attached to its runs, read from a
/// copy as any result file carrying energy records is.
fn machine_b_with_energy() -> Loaded {
    let mut v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(fixtures().join("machine-b.json")).unwrap())
            .unwrap();
    let records: Vec<serde_json::Value> = serde_json::from_str(
        &fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/machine-b-energy.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let runs = v["runs"].as_array_mut().unwrap();
    assert_eq!(runs.len(), records.len());
    for (run, energy) in runs.iter_mut().zip(records) {
        run["energy"] = energy;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("machine-b.json");
    fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
    input::load(&path, &SchemaCheck::new()).unwrap_or_else(|s| panic!("{}: {}", s.path, s.reason))
}

/// `s` as a regular expression that matches it literally (for insta's filters).
fn literally(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What differs between machines and checkouts in a report, each with the placeholder a snapshot holds instead
/// (as uv's `uv_snapshot!` filters its output): the fixture directory and the temporary directory. Reports read
/// no clock, so there are no timings to filter: one in a snapshot would be a bug.
fn filters() -> Vec<(String, &'static str)> {
    vec![
        (literally(&fixtures().display().to_string()), "fixtures"),
        (
            literally(&std::env::temp_dir().display().to_string()),
            "[TEMP]",
        ),
    ]
}

/// Asserts that `text` matches the insta snapshot `name` (under `tests/snapshots/`) after [`filters`].
macro_rules! report_snapshot {
    ($name:expr, $text:expr) => {{
        let text: &str = &$text;
        // insta compares without trailing whitespace; the reports end in exactly one line break.
        assert!(
            text.ends_with('\n') && !text.ends_with("\n\n") && !text.ends_with(" \n"),
            "{} does not end in exactly one line break",
            $name
        );
        let filters = filters();
        let filters: Vec<(&str, &str)> = filters.iter().map(|(f, to)| (f.as_str(), *to)).collect();
        insta::with_settings!({ filters => filters, omit_expression => true }, {
            insta::assert_snapshot!($name, text);
        });
    }};
}

/// Asserts that one of the comparison's notes holds every part.
fn assert_note(c: &Comparison, parts: &[&str]) {
    assert!(
        c.notes.iter().any(|n| parts.iter().all(|p| n.contains(p))),
        "no note with {parts:?}: {:?}",
        c.notes
    );
}

fn row(c: &Comparison, threads: usize, metric: Metric) -> &compare::Row {
    c.rows
        .iter()
        .find(|r| r.threads[0] == Some(threads) && r.metric == metric)
        .unwrap_or_else(|| panic!("no {metric:?} row at {threads} threads"))
}

#[test]
fn two_machines_compare_with_ratios_and_significance() {
    let c = compare::compare(
        &[load("machine-a.json"), load("machine-b.json")],
        &compare::Options::default(),
    )
    .unwrap();
    // Decode: A 143.5 tok/s (median) against B 206.1, with tight samples: clearly better.
    let decode = row(&c, 2, Metric::DecodeTokensPerSecond);
    assert_eq!(decode.point, "p128 g64");
    let v = decode.versus[1].as_ref().unwrap();
    assert!((v.estimate.unwrap() - 206.1 / 143.5).abs() < 1e-9);
    let [lo, hi] = v.ci95.unwrap();
    assert!(
        lo > 1.0 && lo < 206.1 / 143.5 && hi > 206.1 / 143.5,
        "{lo} {hi}"
    );
    assert_eq!((v.significant, v.verdict.as_str()), (Some(true), "better"));
    // Prefill: 386.0 against 388.0 with overlapping samples: no significant difference.
    let prefill = row(&c, 2, Metric::PrefillTokensPerSecond);
    let v = prefill.versus[1].as_ref().unwrap();
    assert_eq!(v.significant, Some(false));
    assert_eq!(v.verdict, "no significant difference");
    // Lower is better for latency: B's shorter inter-token gaps are "better".
    let itl = row(&c, 2, Metric::ItlP50Ms).versus[1].as_ref().unwrap();
    assert!(itl.estimate.unwrap() < 1.0 && itl.verdict == "better");
    // Accuracy: 8/24 against 10/24 is a difference of proportions, not significant with 24 items.
    let acc = row(&c, 2, Metric::AccuracyFlexible);
    assert_eq!(acc.suite.as_deref(), Some("reasoning"));
    let v = acc.versus[1].as_ref().unwrap();
    assert_eq!(v.contrast, "difference");
    assert!((v.estimate.unwrap() - 2.0 / 24.0).abs() < 1e-12);
    assert_eq!(v.significant, Some(false));
    // Single values get a ratio but no test.
    let rss = row(&c, 2, Metric::PeakRssMib).versus[1].as_ref().unwrap();
    assert_eq!((rss.significant, rss.ci95), (None, None));
    assert!(rss.verdict.starts_with("not tested"));
    // A's one-thread run has no partner (B measured 2 threads only, A measured two thread counts).
    let one = row(&c, 1, Metric::DecodeTokensPerSecond);
    assert_eq!(one.cells[1], None);
    assert_eq!(one.versus[1], None);
    // What differs is listed.
    let what: Vec<&str> = c.differences.iter().map(|d| d.what.as_str()).collect();
    for w in [
        "cpu",
        "memory",
        "gpus",
        "kernel",
        "tool commit",
        "build features",
        "os kernel",
    ] {
        assert!(what.contains(&w), "{w} missing from {what:?}");
    }
    let kernel = c.differences.iter().find(|d| d.what == "kernel").unwrap();
    assert_eq!(kernel.values, ["cpu-avx2", "cpu-avx512"]);
    // B's other models are reported as unmatched, not dropped silently.
    assert_eq!(c.unmatched.len(), 2, "{:?}", c.unmatched);
    assert!(c.unmatched.iter().any(|u| u.contains(HOSTILE)));
    // The same inputs give the same intervals.
    let again = compare::compare(
        &[load("machine-a.json"), load("machine-b.json")],
        &compare::Options::default(),
    )
    .unwrap();
    assert_eq!(
        serde_json::to_string(&c).unwrap(),
        serde_json::to_string(&again).unwrap()
    );
}

/// `l` with every run's energy set: per-repetition joules per decode token at (128, 64), scaled by `scale`.
fn with_point_energy(mut l: Loaded, status: &str, scale: f64) -> Loaded {
    let Document::Meekbench { result, energy } = &mut l.document else {
        panic!("a meekbench result")
    };
    *energy = result
        .runs
        .iter()
        .map(|_| {
            Some(Energy {
                status: Some(status.into()),
                label: Some(format!("{status}:fixture")),
                joules_per_decode_token: Some(0.5 * scale),
                points: vec![PointEnergy {
                    n_prompt: 128,
                    n_gen: 64,
                    joules_per_prefill_token: vec![],
                    joules_per_decode_token: [0.50, 0.52, 0.49, 0.51, 0.50]
                        .iter()
                        .map(|j| j * scale)
                        .collect(),
                }],
                ..Default::default()
            })
        })
        .collect();
    l
}

#[test]
fn energy_per_token_is_tested_and_its_provenance_flagged() {
    let a = with_point_energy(load("machine-a.json"), "estimated", 1.0);
    let b = with_point_energy(load("machine-b.json"), "measured", 0.7);
    let c = compare::compare(&[a, b], &compare::Options::default()).unwrap();
    let j = row(&c, 2, Metric::JoulesPerDecodeToken);
    assert_eq!(j.point, "p128 g64");
    let v = j.versus[1].as_ref().unwrap();
    assert!((v.estimate.unwrap() - 0.7).abs() < 1e-9);
    assert_eq!(v.verdict, "better", "fewer joules per token is better");
    let status = c
        .differences
        .iter()
        .find(|d| d.what == "energy status")
        .expect("energy status flagged");
    assert_eq!(status.values, ["estimated", "measured"]);
    assert!(c.differences.iter().any(|d| d.what == "energy provenance"));
}

#[test]
fn different_single_thread_counts_are_paired_and_flagged() {
    // A measured smollm2 at 1 thread only, B at 2 threads only: compared, with the threads flagged.
    let c = compare::compare(
        &[load("meekbench-epyc-p16g8.json"), load("machine-b.json")],
        &compare::Options::default(),
    )
    .unwrap();
    let threads = c
        .differences
        .iter()
        .find(|d| d.what == "threads")
        .expect("threads flagged");
    assert_eq!(threads.values, ["1", "2"]);
    let load_row = row(&c, 1, Metric::LoadSeconds);
    assert_eq!(load_row.threads, [Some(1), Some(2)]);
    assert!(load_row.cells[1].is_some());
    // Different workload points do not match.
    assert_eq!(row(&c, 1, Metric::DecodeTokensPerSecond).cells[1], None);
    assert!(c.notes.iter().any(|n| n.contains("debug build")));
}

/// machine-a.json with its two-thread run's p128 g64 point carrying the pool counts given, and that run's model.
fn machine_a_with_pool(regions: u64, contended: u64, reduced: u64) -> (Loaded, String) {
    let mut a = load("machine-a.json");
    let Document::Meekbench { result, .. } = &mut a.document else {
        panic!("a meekbench result")
    };
    let run = result.runs.iter_mut().find(|r| r.threads == 2).unwrap();
    let model = run.model.id.clone();
    let point = run
        .speed
        .iter_mut()
        .find(|p| (p.n_prompt, p.n_gen) == (128, 64))
        .unwrap();
    point.pool = Some(meek_schema::PoolRegions {
        regions,
        contended,
        reduced,
    });
    (a, model)
}

#[test]
fn a_run_measured_on_a_busy_machine_is_flagged() {
    // Counts out of order (a crafted file) say no more than all of the regions.
    let (a, model) = machine_a_with_pool(400, 100, 900);
    let c = compare::compare(&[a, load("machine-b.json")], &compare::Options::default()).unwrap();
    let busy = c
        .differences
        .iter()
        .find(|d| d.what == "busy machine")
        .expect("the busy run flagged");
    assert_eq!(
        busy.values,
        [
            "25% of parallel regions contended, 100% on fewer threads",
            "not recorded"
        ]
    );
    assert!(
        c.notes.iter().any(|n| n.contains(&format!(
            "A's {model} at 2 threads was measured on a busy machine"
        ))),
        "{:?}",
        c.notes
    );
    // A quiet pool record is nothing to say; threads beyond the CPUs, on a quiet machine, are not a neighbour.
    for (reduced, what) in [(0, None), (100, Some("threads beyond the CPUs or quota"))] {
        let (a, _) = machine_a_with_pool(400, 0, reduced);
        let c =
            compare::compare(&[a, load("machine-b.json")], &compare::Options::default()).unwrap();
        assert!(!c.differences.iter().any(|d| d.what == "busy machine"));
        assert!(c.notes.iter().all(|n| !n.contains("busy machine")));
        let excess = c
            .differences
            .iter()
            .find(|d| d.what == "threads beyond the CPUs or quota");
        assert_eq!(excess.map(|d| d.what.as_str()), what);
    }
}

/// A copy of a fixture whose thread-2 smollm2 run is also recorded on a GPU, with rates scaled by `gpu_speedup`.
fn with_gpu_run(name: &str, dir: &Path, gpu_speedup: f64) -> Loaded {
    let mut v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(fixtures().join(name)).unwrap()).unwrap();
    let runs = v["runs"].as_array_mut().unwrap();
    let cpu = runs
        .iter()
        .find(|r| r["threads"] == 2 && r["model"]["id"] == "smollm2-135m-instruct-q4_1")
        .unwrap()
        .clone();
    let mut gpu = cpu;
    gpu["device"] = "cuda:0".into();
    gpu["kernel"] = "candle-cuda".into();
    let speed = &mut gpu["speed"][0]["decode_tokens_per_second"];
    for k in ["median", "mean", "stddev", "min", "max"] {
        speed[k] = (speed[k].as_f64().unwrap() * gpu_speedup).into();
    }
    for x in speed["samples"].as_array_mut().unwrap() {
        *x = (x.as_f64().unwrap() * gpu_speedup).into();
    }
    // The GPU run first, so a partner chosen by order alone would be the wrong one.
    runs.insert(0, gpu);
    let path = dir.join(name);
    fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
    input::load(&path, &SchemaCheck::new()).unwrap_or_else(|s| panic!("{}", s.reason))
}

#[test]
fn runs_pair_by_device_and_kernel_before_order() {
    let dir = tempfile::tempdir().unwrap();
    let a = with_gpu_run("machine-a.json", dir.path(), 10.0);
    let b = with_gpu_run("machine-b.json", dir.path(), 10.0);
    let c = compare::compare(&[a, b], &compare::Options::default()).unwrap();
    let decode: Vec<f64> = c
        .rows
        .iter()
        .filter(|r| r.metric == Metric::DecodeTokensPerSecond && r.threads[0] == Some(2))
        .map(|r| r.versus[1].as_ref().unwrap().estimate.unwrap())
        .collect();
    // GPU against GPU and CPU against CPU: the same ratio both times, not 10x or 0.1x.
    assert_eq!(decode.len(), 2);
    for r in decode {
        assert!((r - 206.1 / 143.5).abs() < 1e-9, "{r}");
    }
}

#[test]
fn the_same_items_are_compared_in_pairs() {
    // The real file holds one and two threads, each answering the same 48 generated items identically.
    let dir = tempfile::tempdir().unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(fixtures().join("real-epyc-2vcpu.json")).unwrap())
            .unwrap();
    let mut files = Vec::new();
    for t in [1, 2] {
        let mut one = v.clone();
        one["runs"]
            .as_array_mut()
            .unwrap()
            .retain(|r| r["threads"] == t);
        let p = dir.path().join(format!("t{t}.json"));
        fs::write(&p, serde_json::to_string(&one).unwrap()).unwrap();
        files.push(input::load(&p, &SchemaCheck::new()).unwrap_or_else(|s| panic!("{}", s.reason)));
    }
    let c = compare::compare(&files, &compare::Options::default()).unwrap();
    let acc = row(&c, 1, Metric::AccuracyFlexible);
    assert_eq!(acc.threads, [Some(1), Some(2)]);
    let v = acc.versus[1].as_ref().unwrap();
    assert_eq!(v.test, Some("paired bootstrap over the same items"));
    assert_eq!(v.ci95, Some([0.0, 0.0]));
    assert_eq!(v.significant, Some(false));
    // Measured: 119.6 against 131.6 decode tok/s (medians), which the samples call significant.
    let decode = row(&c, 1, Metric::DecodeTokensPerSecond).versus[1]
        .as_ref()
        .unwrap();
    assert!((decode.estimate.unwrap() - 1.1).abs() < 0.01);
    assert_eq!(decode.verdict, "better");
}

#[test]
fn llama_bench_json_and_jsonl_compare_on_the_same_file() {
    for peer in ["llama-bench-epyc.json", "llama-bench-epyc.jsonl"] {
        let c = compare::compare(
            &[load("meekbench-epyc-p16g8.json"), load(peer)],
            &compare::Options::default(),
        )
        .unwrap();
        let pp = row(&c, 1, Metric::PrefillTokensPerSecond);
        assert_eq!(pp.point, "p16 g8 = pp16");
        let tg = row(&c, 1, Metric::DecodeTokensPerSecond);
        assert_eq!(tg.point, "p16 g8 = tg8");
        for r in [pp, tg] {
            let v = r.versus[1].as_ref().unwrap();
            assert!(
                v.ci95.is_some(),
                "{peer}: two samples per side are enough to test"
            );
            assert!(v.estimate.unwrap() > 0.0);
        }
        // No TTFT in llama-bench: shown, with nothing beside it.
        assert_eq!(row(&c, 1, Metric::TtftMs).cells[1], None);
        let matched_by = c
            .differences
            .iter()
            .find(|d| d.what == "model matched by")
            .unwrap();
        assert!(matched_by.values[1].contains("SmolLM2-135M-Instruct.Q4_1.gguf"));
        assert!(c.differences.iter().any(|d| d.what == "program"));
        assert!(c.notes.iter().any(|n| n.contains("tg<N>")));
        // llama-bench's tg8 starts from an empty cache, meekbench's decode after its 16-token prompt: matched, and
        // said.
        assert_note(&c, &["follows 16 cached tokens", "-d 16"]);
        // The same with llama-bench as the baseline: the advice is still meekbench's depth.
        let c = compare::compare(
            &[load(peer), load("meekbench-epyc-p16g8.json")],
            &compare::Options::default(),
        )
        .unwrap();
        assert_note(&c, &["follows 0 cached tokens", "-d 16"]);
    }
}

#[test]
fn llama_bench_generation_at_the_prompts_depth_is_the_same_point() {
    let mut tests: Vec<serde_json::Value> = serde_json::from_str(
        &fs::read_to_string(fixtures().join("llama-bench-epyc.json")).unwrap(),
    )
    .unwrap();
    for t in &mut tests {
        if t["n_prompt"] == 0 {
            t["n_depth"] = 16.into();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let peer = dir.path().join("llama-bench-d16.json");
    fs::write(&peer, serde_json::to_string(&tests).unwrap()).unwrap();
    let peer = input::load(&peer, &SchemaCheck::new()).unwrap();
    let c = compare::compare(
        &[load("meekbench-epyc-p16g8.json"), peer],
        &compare::Options::default(),
    )
    .unwrap();
    assert_eq!(
        row(&c, 1, Metric::DecodeTokensPerSecond).point,
        "p16 g8 = tg8 d16"
    );
    assert_eq!(
        row(&c, 1, Metric::PrefillTokensPerSecond).point,
        "p16 g8 = pp16"
    );
    assert!(
        !c.notes.iter().any(|n| n.contains("follows")),
        "{:?}",
        c.notes
    );
}

#[test]
fn compare_needs_two_inputs() {
    let e = compare::compare(&[load("machine-a.json")], &compare::Options::default()).unwrap_err();
    assert!(e.to_string().contains("at least two"));
}

#[test]
fn compare_markdown_snapshot_escapes_hostile_names() {
    let c = compare::compare(
        &[load("machine-b.json"), load("machine-a.json")],
        &compare::Options::default(),
    )
    .unwrap();
    let md = compare::markdown(&c);
    assert!(md.contains("&lt;img src=x onerror=alert\\(1\\)&gt;"));
    assert!(!md.contains("<img"));
    report_snapshot!("compare-a-b.md", md);
    let json: serde_json::Value = serde_json::to_value(&c).unwrap();
    assert_eq!(json["inputs"].as_array().unwrap().len(), 2);
    assert!(json["rows"][0]["cells"].is_array());
}

fn fixture_board(rank_by: RankBy) -> board::Board {
    let (mut loaded, skipped) = input::load_all(&[fixtures()]);
    // Replace machine-b with the same file carrying energy figures.
    loaded.retain(|l| !l.path.ends_with("machine-b.json"));
    loaded.push(machine_b_with_energy());
    board::build(
        &loaded,
        skipped,
        &board::Options {
            rank_by,
            ..Default::default()
        },
    )
}

#[test]
fn a_leaderboard_entry_measured_on_a_busy_machine_is_listed() {
    // A crafted file's counts out of order say no more than all of the regions.
    let (a, model) = machine_a_with_pool(400, 900, 0);
    let b = board::build(&[a], Vec::new(), &board::Options::default());
    let busy: Vec<&board::Entry> = b.entries.iter().filter(|e| e.busy.is_some()).collect();
    assert_eq!(busy.len(), 1);
    assert_eq!(busy[0].busy, Some(1.0));
    let md = board::markdown(&b);
    assert!(md.contains("Measured on a busy machine"), "{md}");
    assert!(
        md.contains(&format!("- {} on ", model.replace('_', "\\_"))),
        "{md}"
    );
    assert!(
        md.contains("2 threads: 100% of the parallel regions"),
        "{md}"
    );
    // The site marks the row beside its thread count, the CSV gives the share.
    let html = site::html(&b, &[]);
    assert!(
        html.contains(r#"<span class="badge busy" title="other processes used CPUs these threads needed during 100% of the parallel regions"#),
        "{html}"
    );
    let csv = board::csv(&b);
    assert!(csv.lines().next().unwrap().ends_with(",busy"));
    assert_eq!(
        csv.lines().filter(|l| l.ends_with(",1")).count(),
        1,
        "{csv}"
    );
    // Without pool records there is no such section.
    let b = board::build(
        &[load("machine-a.json")],
        Vec::new(),
        &board::Options::default(),
    );
    assert!(!board::markdown(&b).contains("busy machine"));
    assert!(!site::html(&b, &[]).contains("busy machine"));
}

#[test]
fn leaderboard_groups_ranks_and_skips_bad_files() {
    let b = fixture_board(RankBy::Decode);
    assert_eq!(b.point, Some((128, 64)));
    assert_eq!(b.suite.as_deref(), Some("reasoning"));
    // Three machines: A, B and the real EPYC; the debug-build file is skipped.
    assert_eq!(b.machines.len(), 3);
    assert_eq!(b.entries.len(), 7);
    let decode: Vec<f64> = b
        .entries
        .iter()
        .map(|e| e.decode_tokens_per_second.unwrap())
        .collect();
    assert!(decode.windows(2).all(|w| w[0] >= w[1]), "{decode:?}");
    assert_eq!(b.entries[0].rank, Some(1));
    let reasons: Vec<(String, String)> = b
        .skipped
        .iter()
        .map(|s| (board::file_label(&s.path), s.reason.clone()))
        .collect();
    let why = |f: &str| {
        reasons
            .iter()
            .find(|(n, _)| n == f)
            .unwrap_or_else(|| panic!("{f} not skipped: {reasons:?}"))
            .1
            .clone()
    };
    assert!(why("newer-schema.json").contains("newer"));
    assert!(why("invalid.json").contains("/runs/0/threads"));
    assert!(why("not-json.json").contains("not JSON"));
    assert!(why("llama-bench-epyc.json").contains("compare"));
    assert!(why("meekbench-epyc-p16g8.json").contains("debug build"));
    // Energy is read where present.
    assert!(b.has_energy());
    let qwen = b
        .entries
        .iter()
        .find(|e| e.model.starts_with("qwen"))
        .unwrap();
    assert_eq!(qwen.joules_per_decode_token, Some(1.2));
    assert_eq!(qwen.energy_status.as_deref(), Some("measured"));
}

#[test]
fn leaderboard_ranks_by_cost_lowest_first_and_leaves_unknown_last() {
    let b = fixture_board(RankBy::JoulesPerCorrect);
    let ranked: Vec<f64> = b
        .entries
        .iter()
        .filter_map(|e| e.joules_per_correct)
        .collect();
    assert_eq!(ranked, [410.0, 700.0, 900.0]);
    assert_eq!(
        b.entries[3].rank, None,
        "entries without the figure are unranked"
    );
    let b = fixture_board(RankBy::Accuracy);
    assert!(b.entries[0].model.starts_with("qwen"));
}

#[test]
fn leaderboard_markdown_and_csv_snapshots() {
    let b = fixture_board(RankBy::Decode);
    let md = board::markdown(&b);
    let csv = board::csv(&b);
    // Hostile text is inert in both.
    assert!(md.contains("&lt;img src=x onerror=alert\\(1\\)&gt;") && !md.contains("<img"));
    assert!(csv.contains(",'=cmd|'/C calc'!A0.gguf,"), "formula defused");
    for line in csv.lines() {
        assert!(
            !line.split(',').any(|f| f.starts_with('=')),
            "formula cell: {line}"
        );
    }
    let header = csv.lines().next().unwrap().split(',').count();
    assert!(csv.lines().all(|l| l.split(',').count() >= header));
    report_snapshot!("leaderboard.md", md);
    report_snapshot!("leaderboard.csv", csv);
}

#[test]
fn oversize_and_missing_files_are_skipped_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("huge.json");
    fs::File::create(&big)
        .unwrap()
        .set_len(input::MAX_FILE_BYTES + 1)
        .unwrap();
    fs::copy(fixtures().join("machine-a.json"), dir.path().join("a.json")).unwrap();
    let (loaded, skipped) =
        input::load_all(&[dir.path().to_path_buf(), dir.path().join("gone.json")]);
    assert_eq!(loaded.len(), 1);
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    let b = board::build(&loaded, skipped, &board::Options::default());
    assert_eq!(b.entries.len(), 2);
    assert_eq!(b.skipped.len(), 2);
}

#[test]
fn charts_escape_text_and_draw_the_frontier() {
    let b = fixture_board(RankBy::Decode);
    let charts = svg::charts(&b);
    assert_eq!(charts.len(), 4);
    assert!(
        charts[3].svg.contains("No entry swept"),
        "no fixture sweeps its budget"
    );
    for c in &charts {
        assert!(
            c.svg.starts_with("<svg") && c.svg.ends_with("</svg>"),
            "{}",
            c.name
        );
        assert!(!c.svg.contains("<img") && !c.svg.contains("NaN") && !c.svg.contains("inf"));
    }
    let pareto = &charts[0].svg;
    assert!(pareto.contains("class=\"frontier\""));
    assert!(pareto.contains("joules per generated token"));
    assert!(
        pareto.contains("&lt;img src=x onerror=alert("),
        "label escaped (and clipped)"
    );
    // Frontier of (J/token, accuracy): B-smollm2 (0.35, 41.7%) and B-qwen (1.2, 62.5%); the hostile entry
    // (0.5, 20.8%) is dominated.
    assert_eq!(pareto.matches("(frontier)").count(), 2);
}

/// machine-a.json with its first run's suite answered at three budgets (a sweep), each with its own accuracy,
/// seconds and joules per answer.
fn machine_a_swept(dir: &Path) -> Loaded {
    let mut v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(fixtures().join("machine-a.json")).unwrap())
            .unwrap();
    let base = v["runs"][0]["accuracy"][0].clone();
    let swept: Vec<serde_json::Value> = [
        (16, 0.25, 0.5, 4.0),
        (32, 0.4, 1.0, 8.0),
        (96, 0.5, 2.5, 20.0),
    ]
    .into_iter()
    .map(|(budget, acc, secs, joules)| {
        let mut a = base.clone();
        a["max_new_tokens"] = budget.into();
        a["sweep"] = true.into();
        a["flexible"]["accuracy"] = acc.into();
        a["seconds_per_answer"] = secs.into();
        a["energy"] = serde_json::json!({
            "status": "estimated", "label": "estimated (TDP model)",
            "joules": joules * 10.0, "joules_per_answer": joules, "cpu_seconds_per_answer": secs
        });
        a
    })
    .collect();
    v["runs"][0]["accuracy"] = swept.into();
    let path = dir.join("machine-a-swept.json");
    fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
    input::load(&path, &SchemaCheck::new()).unwrap_or_else(|s| panic!("{}: {}", s.path, s.reason))
}

#[test]
fn a_budget_sweep_is_one_curve_per_entry_and_compares_by_budget() {
    let dir = tempfile::tempdir().unwrap();
    let swept = machine_a_swept(dir.path());
    let b = board::build(
        std::slice::from_ref(&swept),
        vec![],
        &board::Options::default(),
    );
    // The most common key is one budget; the entry carries the whole curve.
    let e = b
        .entries
        .iter()
        .find(|e| !e.budget_curve.is_empty())
        .unwrap();
    let budgets: Vec<&str> = e.budget_curve.iter().map(|p| p.budget.as_str()).collect();
    assert_eq!(budgets, ["16 tokens", "32 tokens", "96 tokens"]);
    assert_eq!(e.budget_curve[2].joules_per_answer, Some(20.0));
    let chart = svg::charts(&b).pop().unwrap();
    assert_eq!(chart.name, "budget");
    assert!(chart.svg.contains("joules per answer"), "{}", chart.caption);
    assert_eq!(chart.svg.matches("class=\"point\"").count(), 3);
    assert!(chart.svg.contains("96 tokens, accuracy 50.0%"));
    // A suite's name picks its first budget; its key another.
    let pick = |suite: &str| {
        let b = board::build(
            std::slice::from_ref(&swept),
            vec![],
            &board::Options {
                suite: Some(suite.into()),
                ..Default::default()
            },
        );
        // The swept run's entry (machine-a's other run answered the suite once).
        b.entries
            .iter()
            .find(|e| !e.budget_curve.is_empty())
            .and_then(|e| e.accuracy)
            .unwrap()
    };
    let name = swept_suite_name(&swept);
    assert_eq!(pick(&name), 0.25);
    assert_eq!(pick(&format!("{name} [32 tokens]")), 0.4);
    // compare tells the budgets apart.
    let c = compare::compare(
        &[swept.clone(), swept.clone()],
        &compare::Options::default(),
    )
    .unwrap();
    let suites: std::collections::BTreeSet<String> =
        c.rows.iter().filter_map(|r| r.suite.clone()).collect();
    for budget in [16, 32, 96] {
        assert!(
            suites.contains(&format!("{name} [{budget} tokens]")),
            "{suites:?}"
        );
    }
}

/// A hostile file sweeping 500 budgets is drawn with at most `MAX_BUDGETS` points.
#[test]
fn a_result_with_hundreds_of_budgets_is_drawn_capped() {
    let dir = tempfile::tempdir().unwrap();
    let mut v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(fixtures().join("machine-a.json")).unwrap())
            .unwrap();
    let base = v["runs"][0]["accuracy"][0].clone();
    let swept: Vec<serde_json::Value> = (1..=500)
        .map(|budget| {
            let mut a = base.clone();
            a["max_new_tokens"] = budget.into();
            a["sweep"] = true.into();
            a
        })
        .collect();
    v["runs"][0]["accuracy"] = swept.into();
    let path = dir.path().join("many.json");
    fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
    let l = input::load(&path, &SchemaCheck::new()).unwrap_or_else(|s| panic!("{}", s.reason));
    let b = board::build(&[l], vec![], &board::Options::default());
    let e = b
        .entries
        .iter()
        .find(|e| !e.budget_curve.is_empty())
        .unwrap();
    assert_eq!(e.budget_curve.len(), board::MAX_BUDGETS);
    let chart = svg::charts(&b).pop().unwrap();
    assert_eq!(
        chart.svg.matches("class=\"point\"").count(),
        board::MAX_BUDGETS
    );
}

fn swept_suite_name(l: &Loaded) -> String {
    match &l.document {
        Document::Meekbench { result, .. } => result.runs[0].accuracy[0].suite.clone(),
        _ => unreachable!(),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The site in a real browser.

fn find_browser() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MEEKBENCH_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in [
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Runs headless Chromium on `page` and returns (DOM after scripts, stderr), killing it after two minutes.
fn dump_dom(browser: &Path, page: &Path) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", dir.path().display()))
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let (out, err) = (read(Box::new(out)), read(Box::new(err)));
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within two minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (out.join().unwrap(), err.join().unwrap())
}

/// Console lines of the page (Chromium logs every console message and CSP violation as `CONSOLE`).
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect()
}

const CAPTURE: &str = "window.__errors = [];\
window.addEventListener('error', function (e) { window.__errors.push('error: ' + e.message); });\
document.addEventListener('securitypolicyviolation', function (e) { window.__errors.push('csp: ' + e.violatedDirective); });";

const CHECK: &str = r#"(function () {
  var out = {};
  var t = document.getElementById('board');
  var heads = t.tHead.rows[0].cells;
  function col(name) {
    for (var i = 0; i < heads.length; i++) { if (heads[i].textContent.trim() === name) { return i; } }
    return -1;
  }
  function values(i) {
    return Array.prototype.map.call(t.tBodies[0].rows, function (r) { return r.cells[i].getAttribute('data-v'); });
  }
  out.rows = t.tBodies[0].rows.length;
  out.charts = document.querySelectorAll('figure svg').length;
  out.points = document.querySelectorAll('svg circle.point').length;
  out.bars = document.querySelectorAll('svg rect.bar').length;
  out.frontier = document.querySelectorAll('svg path.frontier').length;
  var p = col('prefill tok/s');
  var button = heads[p].querySelector('button');
  button.click();
  out.first = { sort: heads[p].getAttribute('aria-sort'), values: values(p) };
  button.click();
  out.second = { sort: heads[p].getAttribute('aria-sort'), values: values(p) };
  var m = col('model');
  heads[m].querySelector('button').click();
  out.models = Array.prototype.map.call(t.tBodies[0].rows, function (r) { return r.cells[m].firstChild.textContent; });
  out.imgs = document.getElementsByTagName('img').length;
  out.hostile = Array.prototype.some.call(document.querySelectorAll('td.model'), function (td) {
    return td.firstChild.textContent === '<img src=x onerror=alert(1)>';
  });
  out.box = document.getElementById('chart-pareto').getBoundingClientRect().height;
  out.errors = window.__errors;
  var pre = document.createElement('pre');
  pre.id = 'selftest';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();"#;

fn csp_hash(script: &str) -> String {
    use sha2::Digest;
    format!(
        "'sha256-{}'",
        meek_report::escape::base64(&sha2::Sha256::digest(script.as_bytes()))
    )
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[test]
fn site_works_in_a_real_browser() {
    let Some(browser) = find_browser() else {
        if std::env::var_os("MEEKBENCH_REQUIRE_BROWSER").is_some_and(|v| v == "1") {
            panic!(
                "MEEKBENCH_REQUIRE_BROWSER=1 but no chromium found on PATH (install Debian's `chromium`, or set \
                 MEEKBENCH_CHROMIUM)"
            );
        }
        eprintln!("skipped: no chromium on PATH; the site was not checked in a browser");
        return;
    };
    let b = fixture_board(RankBy::Decode);
    let dir = tempfile::tempdir().unwrap();
    let written = site::write(&b, dir.path()).unwrap();
    // To look at the page this test checks (it has energy columns, which real files get once they carry energy).
    if let Some(keep) = std::env::var_os("MEEKBENCH_KEEP_TEST_SITE") {
        site::write(&b, Path::new(&keep)).unwrap();
    }
    assert_eq!(written.len(), site::FILES.len());
    let index = dir.path().join("index.html");
    let page = fs::read_to_string(&index).unwrap();

    // 1. The page as published: renders, and logs nothing (no errors, no CSP violations).
    let (dom, stderr) = dump_dom(&browser, &index);
    assert!(dom.contains("meekbench leaderboard"), "page did not render");
    assert!(
        console_lines(&stderr).is_empty(),
        "console output: {:?}",
        console_lines(&stderr)
    );

    // 2. The same page with a test script after its own (both allowed by adding their hashes to the policy):
    //    charts present, sorting works, hostile text stays text.
    let test_page = page
        .replacen("<head>", &format!("<head>\n<script>{CAPTURE}</script>"), 1)
        .replacen(
            "script-src '",
            &format!("script-src {} {} '", csp_hash(CAPTURE), csp_hash(CHECK)),
            1,
        )
        .replacen("</body>", &format!("<script>{CHECK}</script>\n</body>"), 1);
    let test_path = dir.path().join("test.html");
    fs::write(&test_path, test_page).unwrap();
    let (dom, stderr) = dump_dom(&browser, &test_path);
    assert!(
        console_lines(&stderr).is_empty(),
        "console output: {:?}",
        console_lines(&stderr)
    );
    let start = dom
        .find("<pre id=\"selftest\">")
        .expect("the test script ran")
        + "<pre id=\"selftest\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    let out: serde_json::Value = serde_json::from_str(&unescape(&dom[start..end])).unwrap();
    assert_eq!(out["errors"], serde_json::json!([]), "{out}");
    assert_eq!(out["rows"], 7);
    assert_eq!(out["charts"], 4, "Pareto, speed, steps and budget charts");
    assert_eq!(
        out["points"], 3,
        "one point per entry with accuracy and joules per token"
    );
    assert_eq!(out["bars"], 14, "decode and prefill per entry");
    assert_eq!(out["frontier"], 1);
    assert!(out["box"].as_f64().unwrap() > 200.0, "the chart has a size");
    let nums = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().parse().unwrap())
            .collect()
    };
    assert_eq!(out["first"]["sort"], "descending");
    let first = nums(&out["first"]["values"]);
    assert!(first.windows(2).all(|w| w[0] >= w[1]), "{first:?}");
    assert_eq!(out["second"]["sort"], "ascending");
    let second = nums(&out["second"]["values"]);
    assert!(second.windows(2).all(|w| w[0] <= w[1]), "{second:?}");
    assert_ne!(first, second, "a click changed the order");
    let models: Vec<&str> = out["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        models[0], "smollm2-135m-instruct-q4_1",
        "text sorts descending first"
    );
    assert_eq!(out["imgs"], 0, "no element was made from a file's text");
    assert_eq!(out["hostile"], true, "the hostile name shows as text");
}

/// Every string a file can carry, made hostile, must come out inert in every format.
#[test]
fn hostile_strings_everywhere_stay_inert() {
    let nasty = [
        "<script>alert(1)</script>",
        "a|b`c`*d*_e_[f](javascript:alert(1))",
        "=HYPERLINK(\"http://x\")",
        "quote\"apos'amp&lt",
        "ctl\u{0}\u{7}\u{1b}[31mred\nnew\rline",
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, bad) in nasty.iter().enumerate() {
        let mut v: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(fixtures().join("machine-a.json")).unwrap())
                .unwrap();
        v["machine"]["cpu"]["brand"] = format!("{bad} cpu{i}").into();
        v["machine"]["os"] = (*bad).into();
        v["machine"]["gpus"] = serde_json::json!([{ "name": bad }]);
        v["tool"]["version"] = (*bad).into();
        v["tool"]["git_commit"] = (*bad).into();
        for run in v["runs"].as_array_mut().unwrap() {
            run["model"]["id"] = (*bad).into();
            run["model"]["quantization"] = (*bad).into();
            run["device"] = (*bad).into();
            run["kernel"] = (*bad).into();
            let acc = &mut run["accuracy"][0];
            acc["suite"] = (*bad).into();
            acc["by_steps"][0]["key"] = (*bad).into();
        }
        let p = dir.path().join(format!("{i}.json"));
        fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
        files.push(input::load(&p, &SchemaCheck::new()).unwrap_or_else(|s| panic!("{}", s.reason)));
    }
    let skipped = vec![input::Skipped {
        path: nasty.join("/"),
        reason: nasty.join(" "),
    }];
    let b = board::build(&files, skipped, &board::Options::default());
    assert_eq!(b.entries.len(), 2 * nasty.len());
    let site_dir = dir.path().join("site");
    site::write(&b, &site_dir).unwrap();
    let html = fs::read_to_string(site_dir.join("index.html")).unwrap();
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only the page's own script"
    );
    assert!(!html.contains("<img") && !html.contains("javascript:alert(1)\">"));
    assert!(!html.contains('\u{0}') && !html.contains('\u{1b}'));
    for chart in ["pareto.svg", "speed.svg", "steps.svg"] {
        let svg = fs::read_to_string(site_dir.join(chart)).unwrap();
        assert!(!svg.contains("<script"), "{chart}");
        assert!(
            !svg.chars().any(|c| c.is_control() && c != '\n'),
            "{chart}: control characters make XML ill-formed"
        );
    }
    // Markdown: every table row keeps the header's number of cells (unescaped pipes).
    let md = board::markdown(&b);
    let cells = |line: &str| {
        let mut n = 0;
        let mut escaped = false;
        for c in line.chars() {
            match c {
                '\\' if !escaped => escaped = true,
                '|' if !escaped => n += 1,
                _ => escaped = false,
            }
        }
        n
    };
    let rows: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
    assert!(rows.len() > 2);
    assert!(rows.iter().all(|r| cells(r) == cells(rows[0])), "{md}");
    assert!(!md.contains("<script"));
    let bytes = md.as_bytes();
    for (i, &c) in bytes.iter().enumerate() {
        if c == b'`' {
            assert!(i > 0 && bytes[i - 1] == b'\\', "unescaped backtick at {i}");
        }
    }
    assert!(!md.contains("](javascript"), "links cannot form");
    // CSV: no field starts a formula; every record has the header's field count when parsed with quotes.
    let csv = board::csv(&b);
    let records = parse_csv(&csv);
    let width = records[0].len();
    assert!(records.iter().all(|r| r.len() == width));
    for r in &records[1..] {
        for f in r {
            assert!(!f.starts_with(['=', '+', '@']), "formula field {f:?}");
        }
    }
    // Compare output in every format.
    let c = compare::compare(&files[..2], &compare::Options::default()).unwrap();
    let md = compare::markdown(&c);
    assert!(!md.contains("<script") && !md.contains("](javascript"));
    let term = compare::terminal(&c);
    assert!(
        !term.contains('\u{1b}'),
        "no terminal escape sequences from a file"
    );
}

/// A minimal RFC 4180 reader for the test: quoted fields, doubled quotes, line breaks inside quotes.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    records
}

/// Issue #20: three files measuring the same entry are all kept: the entry's speed is their median with their
/// range, each file's figures are listed, and accuracy and provenance come from the newest.
#[test]
fn repeated_measurements_of_one_entry_show_their_median_and_spread() {
    let dir = tempfile::tempdir().unwrap();
    let base: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(fixtures().join("machine-a.json")).unwrap())
            .unwrap();
    let mut loaded = Vec::new();
    // (start, decode scale): the newest file is the slowest, so "newest only" would rank it by 0.5x.
    for (i, (start, scale)) in [
        ("2026-01-01T00:00:00Z", 1.0),
        ("2026-03-01T00:00:00Z", 0.5),
        ("2026-02-01T00:00:00Z", 1.2),
    ]
    .into_iter()
    .enumerate()
    {
        let mut v = base.clone();
        v["started_at"] = start.into();
        for run in v["runs"].as_array_mut().unwrap() {
            for p in run["speed"].as_array_mut().unwrap() {
                let d = &mut p["decode_tokens_per_second"];
                for k in ["median", "mean", "min", "max"] {
                    d[k] = (d[k].as_f64().unwrap() * scale).into();
                }
                for x in d["samples"].as_array_mut().unwrap() {
                    *x = (x.as_f64().unwrap() * scale).into();
                }
            }
        }
        let path = dir.path().join(format!("repeat-{i}.json"));
        fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
        loaded.push(
            input::load(&path, &SchemaCheck::new()).unwrap_or_else(|s| panic!("{}", s.reason)),
        );
    }
    let once = board::build(&loaded[..1], Vec::new(), &board::Options::default());
    let b = board::build(&loaded, Vec::new(), &board::Options::default());
    assert_eq!(
        b.entries.len(),
        once.entries.len(),
        "one entry per machine and model, not one per file"
    );
    for (e, o) in b.entries.iter().zip(&once.entries) {
        let d = o.decode_tokens_per_second.unwrap();
        assert_eq!(e.measurements, 3);
        assert!(
            (e.decode_tokens_per_second.unwrap() - d).abs() < 1e-9,
            "the median, 1.0x"
        );
        let [lo, hi] = e.decode_range.unwrap();
        assert!((lo - 0.5 * d).abs() < 1e-9 && (hi - 1.2 * d).abs() < 1e-9);
        let starts: Vec<&str> = e.repeats.iter().map(|m| m.started_at.as_str()).collect();
        assert_eq!(
            starts,
            [
                "2026-01-01T00:00:00Z",
                "2026-02-01T00:00:00Z",
                "2026-03-01T00:00:00Z"
            ]
        );
        assert_eq!(e.source, "repeat-1.json", "provenance from the newest file");
        assert_eq!(e.accuracy, o.accuracy);
    }
    let md = board::markdown(&b);
    assert!(md.contains(" files) |"), "{md}");
    let csv = board::csv(&b);
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .contains(",decode_min,decode_max,prefill_min,prefill_max,")
    );
    let html = site::html(&b, &[]);
    assert!(html.contains("median of 3 files"));

    // The same file twice (a copy, or a shard beside the merge it went into) is one measurement, not a repeat.
    let copy = dir.path().join("copy-of-repeat-0.json");
    fs::copy(dir.path().join("repeat-0.json"), &copy).unwrap();
    loaded.push(input::load(&copy, &SchemaCheck::new()).unwrap_or_else(|s| panic!("{}", s.reason)));
    let again = board::build(&loaded, Vec::new(), &board::Options::default());
    assert_eq!(again.entries, b.entries);
    assert_eq!(again.duplicates.len(), b.entries.len());
    assert!(
        again.duplicates[0]
            .contains("copy-of-repeat-0.json is the same measurement as in repeat-0.json")
    );
    assert!(board::markdown(&again).contains("Found twice"));
}

/// A perplexity text's loss compares like any figure: one row per text and context, lower is better.
#[test]
fn perplexity_losses_are_compared_per_text() {
    let dir = tempfile::tempdir().unwrap();
    let with_loss = |name: &str, nll: f64| {
        let mut v: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(fixtures().join(name)).unwrap()).unwrap();
        for run in v["runs"].as_array_mut().unwrap() {
            run["perplexity"] = serde_json::json!([{
                "name": "prose", "text_sha256": "ab".repeat(32), "text_bytes": 1000, "context": 512, "chunks": 8,
                "bos": true, "tokens_scored": 2040, "nll_mean": nll, "nll_stderr": 0.05,
                "perplexity": nll.exp(), "perplexity_ci95": [(nll - 0.1).exp(), (nll + 0.1).exp()],
                "bits_per_byte": nll / 2.0, "seconds": 6.0, "tokens_per_second": 680.0
            }]);
        }
        let path = dir.path().join(name);
        fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
        input::load(&path, &SchemaCheck::new()).unwrap_or_else(|s| panic!("{}", s.reason))
    };
    let c = compare::compare(
        &[
            with_loss("machine-a.json", 2.0),
            with_loss("machine-b.json", 1.5),
        ],
        &compare::Options::default(),
    )
    .unwrap();
    let r = row(&c, 2, Metric::LossNatsPerToken);
    assert!(!r.higher_is_better);
    assert!(
        r.suite
            .as_deref()
            .unwrap()
            .starts_with("perplexity prose, context 512 (abababababab)")
    );
    assert_eq!(r.cells[0].as_ref().unwrap().value, 2.0);
    assert!((r.versus[1].as_ref().unwrap().estimate.unwrap() - 0.75).abs() < 1e-12);
    assert!(c.rows.iter().any(|r| r.metric == Metric::BitsPerByte));
    assert!(compare::markdown(&c).contains("loss nats/token"));
}
