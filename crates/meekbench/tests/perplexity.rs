//! Perplexity workloads (`[[perplexity]]`) end to end on tiny generated models: the figures in the result file,
//! the refusals, and agreement with llama.cpp's `llama-perplexity` on the same file and text where the peer is
//! built (`scripts/peer-llama-bench.sh build`; otherwise that test passes with a message, unless
//! `MEEKBENCH_REQUIRE_PEER=1`).

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use meek_testkit::{TinySpec, write_tiny_llama};
mod common;

use common::{read_json, schema};

fn text() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/perplexity/gsm8k-train-400.txt")
}

/// A config measuring `model` once, tiny speed point, with the perplexity tables `ppl` (TOML).
fn config(dir: &Path, model: &Path, ppl: &str) -> PathBuf {
    let cfg = dir.join("ppl.toml");
    fs_err::write(
        &cfg,
        format!(
            "[run]\ndevice = \"cpu\"\nthreads = [1]\noutput = \"{out}\"\ncache = \"{cache}\"\n\n\
             [[models]]\nid = \"tiny\"\nfile = \"tiny.gguf\"\nsha256 = \"{sha}\"\nsources = [{{ path = \"{model}\" }}]\n\n\
             [speed]\nprompt_tokens = [8]\ngen_tokens = [2]\nwarmup = 0\nrepetitions = 1\n\n{ppl}",
            out = dir.join("results").display(),
            cache = dir.join("cache").display(),
            sha = meek_hub::sha256_file(model).unwrap(),
            model = model.display(),
        ),
    )
    .unwrap();
    cfg
}

fn meekbench() -> Command {
    Command::cargo_bin("meekbench").unwrap()
}

#[test]
fn a_perplexity_workload_is_scored_into_the_result_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    write_tiny_llama(&model, TinySpec::default()).unwrap();
    let cfg = config(
        dir.path(),
        &model,
        &format!(
            "[[perplexity]]\nname = \"prose\"\ntext = \"{}\"\ncontext = 64\nchunks = 3\n",
            text().display()
        ),
    );
    let out = meekbench().args(["bench"]).arg(&cfg).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(
        shown.contains("perplexity (scored as llama-perplexity does"),
        "{shown}"
    );
    let file = fs_err::read_dir(dir.path().join("results"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap();
    let v = read_json(&file);
    assert!(jsonschema::validator_for(&schema()).unwrap().is_valid(&v));
    let p = &v["runs"][0]["perplexity"][0];
    assert_eq!(p["name"], "prose");
    assert_eq!(p["context"], 64);
    assert_eq!(p["chunks"], 3);
    assert_eq!(p["tokens_scored"], 3 * (64 - 32 - 1));
    assert_eq!(
        p["text_sha256"].as_str().unwrap(),
        meek_hub::sha256_file(&text()).unwrap()
    );
    let (nll, ppl) = (
        p["nll_mean"].as_f64().unwrap(),
        p["perplexity"].as_f64().unwrap(),
    );
    assert!(nll > 0.0 && (ppl - nll.exp()).abs() < 1e-9 * ppl);
    let [lo, hi] = [0, 1].map(|i| p["perplexity_ci95"][i].as_f64().unwrap());
    assert!(lo < ppl && ppl < hi);
    assert!(p["bits_per_byte"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_text_too_short_for_its_context_is_refused_before_anything_is_measured() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    write_tiny_llama(&model, TinySpec::default()).unwrap();
    let short = dir.path().join("short.txt");
    fs_err::write(&short, "A few words only.\n").unwrap();
    let cfg = config(
        dir.path(),
        &model,
        &format!(
            "[[perplexity]]\nname = \"short\"\ntext = \"{}\"\ncontext = 64\n",
            short.display()
        ),
    );
    let out = meekbench()
        .args(["bench", "--quiet", "--json"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["runs"].as_array().unwrap().is_empty(),
        "no speed measured for nothing"
    );
    let why = v["failures"][0]["error"].as_str().unwrap();
    assert!(
        why.contains("perplexity `short`") && why.contains("needs at least 128"),
        "{why}"
    );

    // A text that is not UTF-8: refused before the bench starts, naming the file, and no result file is made.
    let files = || {
        fs_err::read_dir(dir.path().join("results"))
            .unwrap()
            .count()
    };
    let before = files();
    fs_err::write(&short, b"caf\xe9\n").unwrap();
    let out = meekbench()
        .args(["bench", "--quiet"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("short.txt") && err.contains("not UTF-8"),
        "{err}"
    );
    assert_eq!(files(), before);
}

/// llama.cpp's binaries, or `None` (with a message) when they are not built.
fn peer() -> Option<PathBuf> {
    meek_testkit::peer_bin("llama-perplexity")
}

/// `llama-perplexity`'s final estimate on `model` and the text. Its log is written by a thread of its own, which
/// now and then loses the last lines at exit (status 0, no estimate): such a run is repeated, up to three times.
fn llama_perplexity(bin: &Path, model: &Path, context: usize, chunks: usize) -> f64 {
    let mut log = String::new();
    for _ in 0..3 {
        let out = Command::new(bin.join("llama-perplexity"))
            .arg("-m")
            .arg(model)
            .arg("-f")
            .arg(text())
            .args(["-c", &context.to_string(), "-b", &context.to_string()])
            .args(["--chunks", &chunks.to_string(), "-t", "2"])
            .output()
            .unwrap();
        assert!(out.status.success(), "llama-perplexity: {}", out.status);
        log = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        if let Some(at) = log.find("Final estimate: PPL = ") {
            return log[at + 22..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
        }
    }
    panic!("no final estimate from llama-perplexity in three runs:\n{log}")
}

/// Issue #15: meekbench's perplexity equals llama-perplexity's on the same file and text within 1%, for each
/// family the own path runs (measured on the real files too: SmolLM2-135M 5.656 vs 5.654, Gemma 3 270M 5.936 vs
/// 5.974 over 8 chunks of 512; see the README).
#[test]
fn perplexity_agrees_with_llama_perplexity() {
    let Some(bin) = peer() else { return };
    let dir = tempfile::tempdir().unwrap();
    for arch in ["llama", "qwen2", "qwen3", "gemma3"] {
        let model = dir.path().join("tiny.gguf");
        write_tiny_llama(
            &model,
            TinySpec {
                arch,
                window: 64,
                ..TinySpec::default()
            },
        )
        .unwrap();
        let cfg = config(
            dir.path(),
            &model,
            &format!(
                "[[perplexity]]\nname = \"prose\"\ntext = \"{}\"\ncontext = 128\nchunks = 4\n",
                text().display()
            ),
        );
        let out = meekbench()
            .args(["bench", "--quiet", "--json", "-o"])
            .arg(dir.path().join(arch))
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let ours = v["runs"][0]["perplexity"][0]["perplexity"]
            .as_f64()
            .unwrap();
        let theirs = llama_perplexity(&bin, &model, 128, 4);
        let gap = (ours / theirs - 1.0).abs();
        eprintln!(
            "{arch}: meekbench {ours:.4}, llama-perplexity {theirs:.4} ({:.2}%)",
            100.0 * gap
        );
        assert!(
            gap < 0.01,
            "{arch}: meekbench {ours} vs llama-perplexity {theirs}"
        );
    }
}
