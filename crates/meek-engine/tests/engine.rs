//! Loading, tokenizing and generation on tiny generated models, and the refusals for bad files.

use std::path::{Path, PathBuf};

use fs_err as fs;
use meek_engine::{DeviceRequest, Engine, EngineError, GenOptions, Message, StopReason};
use meek_testkit::{TinySpec, compare_logits, gemma3_reference, teacher_forced, write_tiny_llama};

fn tiny(dir: &Path, spec: TinySpec) -> PathBuf {
    let p = dir.join(format!("tiny-{}.gguf", spec.seed));
    write_tiny_llama(&p, spec).unwrap();
    p
}

#[test]
fn tiny_model_loads_and_describes_itself() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::load(&tiny(dir.path(), TinySpec::default()), DeviceRequest::Cpu).unwrap();
    let info = e.info();
    assert_eq!(info.architecture, "llama");
    assert_eq!(info.quantization, "Q4_1");
    assert_eq!(info.context_length, Some(256));
    assert_eq!(e.max_positions(), 256);
    assert_eq!(e.device_name(), "cpu");
    // 265 x 64 embedding and output + 2 norms per layer + final norm + 2 layers of (q, k, v, o, gate, up, down)
    let v = 3 + 256 + 6;
    let per_layer = 64 * 64 + 2 * 32 * 64 + 64 * 64 + 3 * 128 * 64 + 2 * 64;
    assert_eq!(info.n_params, (2 * v * 64 + 64 + 2 * per_layer) as u64);
}

#[test]
fn tokenizer_uses_merges_specials_and_no_prefix_space() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::load(&tiny(dir.path(), TinySpec::default()), DeviceRequest::Cpu).unwrap();
    let t = e.tokenizer();
    let ids = t.encode("hello the 12").unwrap();
    let pieces: Vec<&str> = ids.iter().map(|&i| t.piece(i).unwrap()).collect();
    // No space is prepended; digits are split one by one (smollm pre-tokenizer).
    assert_eq!(pieces, ["hello", "Ġthe", "Ġ", "1", "2"]);
    let ids = t.encode("<|im_start|>user\nhi<|im_end|>").unwrap();
    assert_eq!(ids[0], 1);
    assert_eq!(*ids.last().unwrap(), 2);
    for text in [
        "hello the 12",
        "naïve café, 東京 🙂",
        "  two  spaces\n\ttab",
        "<|im_start|>x<|im_end|>",
    ] {
        let ids = t.encode(text).unwrap();
        assert_eq!(
            t.decode(&ids, false).unwrap(),
            text,
            "round trip of {text:?}"
        );
    }
    assert_eq!(
        t.decode(&t.encode("<|im_start|>x").unwrap(), true).unwrap(),
        "x"
    );
}

#[test]
fn chat_template_comes_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::load(&tiny(dir.path(), TinySpec::default()), DeviceRequest::Cpu).unwrap();
    let text = e
        .chat_template()
        .expect("tiny model has a template")
        .render(&[Message::new("user", "hi")], true)
        .unwrap();
    assert!(
        text.ends_with("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"),
        "{text}"
    );
}

/// A stop string ends generation at the token whose text completes it: the same greedy tokens up to there.
#[test]
fn generation_stops_at_the_first_stop_string() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny(dir.path(), TinySpec::default());
    let mut e = Engine::load(&path, DeviceRequest::Cpu).unwrap();
    let prompt = e.synthetic_prompt(20, 7);
    let opts = GenOptions {
        max_new_tokens: 12,
        stop_at_eos: false,
    };
    let full = e.generate(&prompt, opts, &mut ()).unwrap();
    // The shortest prefix of the output with some text: its last character is the stop string.
    let (n, text) = (1..=full.tokens.len())
        .map(|n| (n, e.tokenizer().decode(&full.tokens[..n], true).unwrap()))
        .find(|(_, t)| !t.is_empty())
        .expect("the tiny model says something in 12 tokens");
    let last = text.chars().last().unwrap().to_string();
    let until = ["never in this output \u{1}".to_string(), last];
    let cut = e.generate_until(&prompt, opts, &until, &mut ()).unwrap();
    assert_eq!(cut.stop, StopReason::StopSequence(1));
    assert!(cut.tokens.len() <= n, "{} > {n}", cut.tokens.len());
    assert_eq!(cut.tokens[..], full.tokens[..cut.tokens.len()]);
    assert_eq!(cut.token_times.len(), cut.tokens.len());
    // No stop strings: the same as `generate`.
    let none = e.generate_until(&prompt, opts, &[], &mut ()).unwrap();
    assert_eq!(none.tokens, full.tokens);
}

#[test]
fn generation_is_greedy_deterministic_and_timed() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny(dir.path(), TinySpec::default());
    let mut e = Engine::load(&path, DeviceRequest::Cpu).unwrap();
    let prompt = e.synthetic_prompt(20, 7);
    assert_eq!(prompt.len(), 20);
    assert!(prompt.iter().all(|&i| e.tokenizer().is_normal(i)));
    assert_eq!(prompt, e.synthetic_prompt(20, 7));
    assert_ne!(prompt, e.synthetic_prompt(20, 8));
    let opts = GenOptions {
        max_new_tokens: 12,
        stop_at_eos: false,
    };
    let mut seen = Vec::new();
    let mut obs = |i: usize, t: u32, _| seen.push((i, t));
    let a = e.generate(&prompt, opts, &mut obs).unwrap();
    assert_eq!(a.tokens.len(), 12);
    assert_eq!(a.token_times.len(), 12);
    assert_eq!(a.stop, StopReason::Length);
    assert_eq!(
        seen,
        a.tokens.iter().copied().enumerate().collect::<Vec<_>>()
    );
    assert!(a.token_times.windows(2).all(|w| w[0] <= w[1]));
    assert!(a.token_times[0] >= a.started);
    assert_eq!(a.inter_token().count(), 11);
    // The KV cache is reset between generations: the same prompt gives the same tokens.
    let b = e.generate(&prompt, opts, &mut ()).unwrap();
    assert_eq!(a.tokens, b.tokens);
    // The KV cache matters: generating with the cache equals re-running the full sequence each step.
    let c = e
        .generate(
            &[prompt.clone(), a.tokens[..5].to_vec()].concat(),
            GenOptions {
                max_new_tokens: 1,
                stop_at_eos: false,
            },
            &mut (),
        )
        .unwrap();
    assert_eq!(c.tokens[0], a.tokens[5]);
}

#[test]
fn eos_stops_generation_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TinySpec {
        eos_boost: 3.0,
        ..TinySpec::default()
    };
    let mut e = Engine::load(&tiny(dir.path(), spec), DeviceRequest::Cpu).unwrap();
    // Find a prompt whose greedy continuation contains EOS (id 2) within 40 tokens, if any seed gives one.
    let opts = GenOptions {
        max_new_tokens: 40,
        stop_at_eos: false,
    };
    let eos = e.tokenizer().eos().unwrap();
    let found = (0..200u64).find_map(|seed| {
        let p = e.synthetic_prompt(8, seed);
        let g = e.generate(&p, opts, &mut ()).unwrap();
        g.tokens
            .iter()
            .position(|&t| t == eos)
            .map(|pos| (p, pos, g.tokens.len()))
    });
    let (prompt, pos, len) = found.expect("random tiny model emits EOS for some prompt");
    assert_eq!(
        len, 40,
        "without EOS stop, exactly max_new_tokens are generated"
    );
    let g = e
        .generate(
            &prompt,
            GenOptions {
                stop_at_eos: true,
                ..opts
            },
            &mut (),
        )
        .unwrap();
    assert_eq!(g.stop, StopReason::Eos);
    assert_eq!(g.tokens.len(), pos + 1);
}

#[test]
fn too_long_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::load(&tiny(dir.path(), TinySpec::default()), DeviceRequest::Cpu).unwrap();
    let p = e.synthetic_prompt(250, 1);
    let err = e
        .generate(
            &p,
            GenOptions {
                max_new_tokens: 10,
                stop_at_eos: false,
            },
            &mut (),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::TooLong {
                needed: 260,
                max: 256,
                ..
            }
        ),
        "{err}"
    );
}

/// A GGUF v3 file with no metadata and one F32 tensor `w` of `dims`, followed by 64 bytes of data.
fn one_tensor_gguf(dims: &[u64]) -> Vec<u8> {
    let mut v = [
        b"GGUF".as_slice(),
        &3u32.to_le_bytes(),
        &1u64.to_le_bytes(),
        &0u64.to_le_bytes(),
        &1u64.to_le_bytes(),
        b"w",
        &(dims.len() as u32).to_le_bytes(),
    ]
    .concat();
    for d in dims {
        v.extend_from_slice(&d.to_le_bytes());
    }
    v.extend_from_slice(&0u32.to_le_bytes()); // F32
    v.extend_from_slice(&0u64.to_le_bytes()); // offset
    v.resize(v.len().next_multiple_of(32) + 64, 0);
    v
}

#[test]
fn bad_files_are_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let good = tiny(dir.path(), TinySpec::default());
    let bytes = fs::read(&good).unwrap();
    let write = |name: &str, data: &[u8]| {
        let p = dir.path().join(name);
        fs::write(&p, data).unwrap();
        p
    };
    let cases = [
        (write("empty.gguf", b""), "too short"),
        (
            write("magic.gguf", &[b"LLAM", &bytes[4..]].concat()),
            "GGUF magic",
        ),
        (
            write("truncated.gguf", &bytes[..bytes.len() - 100]),
            "truncated",
        ),
        (write("header.gguf", &bytes[..64]), "unreadable header"),
        // Absurd counts and lengths are refused without allocating them.
        (
            write(
                "counts.gguf",
                &[
                    b"GGUF".as_slice(),
                    &3u32.to_le_bytes(),
                    &(1u64 << 40).to_le_bytes(),
                    &(1u64 << 40).to_le_bytes(),
                    &[0u8; 64],
                ]
                .concat(),
            ),
            "exceeds",
        ),
        (
            write(
                "string.gguf",
                &[
                    b"GGUF".as_slice(),
                    &3u32.to_le_bytes(),
                    &1u64.to_le_bytes(),
                    &1u64.to_le_bytes(),
                    &(1u64 << 50).to_le_bytes(),
                    &[b'x'; 64],
                ]
                .concat(),
            ),
            "exceeds",
        ),
        // Tensor sizes beyond the file, and a shape whose byte count overflows 64 bits: refused, not wrapped.
        (
            write("shape.gguf", &one_tensor_gguf(&[1 << 40, 1 << 40])),
            "truncated",
        ),
        (
            write("beyond.gguf", &one_tensor_gguf(&[1 << 20])),
            "truncated",
        ),
        (dir.path().join("missing.gguf"), "cannot open"),
    ];
    for (path, want) in cases {
        let err = Engine::load(&path, DeviceRequest::Cpu)
            .unwrap_err()
            .to_string();
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(err.contains(want) && err.contains(name), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "one line, no backtrace: {err}");
    }
    // An architecture the engine cannot run is refused before any weight is read.
    let mut arch = bytes.clone();
    let at = arch.windows(5).position(|w| w == b"llama").unwrap();
    arch[at..at + 5].copy_from_slice(b"mamba");
    let err = Engine::load(&write("arch.gguf", &arch), DeviceRequest::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`mamba` is not supported") && err.contains("llama"),
        "{err}"
    );
}

#[test]
fn devices_not_compiled_in_say_how_to_rebuild() {
    if !cfg!(feature = "cuda") {
        let err = meek_engine::open_device(DeviceRequest::Cuda(0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
    if !cfg!(feature = "metal") {
        let err = meek_engine::open_device(DeviceRequest::Metal)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--features metal"), "{err}");
    }
    let (_, name) = meek_engine::open_device(DeviceRequest::Auto).unwrap();
    assert!(!name.is_empty());
}

/// meekbench's CPU kernels against candle-transformers' model on the same file: teacher-forced top-1 agreement
/// and close logits.
#[test]
fn own_cpu_path_agrees_with_candle_transformers() {
    use meek_engine::Kernels;
    let dir = tempfile::tempdir().unwrap();
    for dtype in [
        candle_core::quantized::GgmlDType::Q4_1,
        candle_core::quantized::GgmlDType::Q4_0,
        candle_core::quantized::GgmlDType::Q8_0,
    ] {
        let path = tiny(
            dir.path(),
            TinySpec {
                dtype,
                seed: dtype as u64 + 10,
                ..TinySpec::default()
            },
        );
        let mut ours = Engine::load_with(&path, DeviceRequest::Cpu, Kernels::Auto).unwrap();
        let mut theirs = Engine::load_with(&path, DeviceRequest::Cpu, Kernels::Candle).unwrap();
        assert!(ours.kernel().starts_with("cpu-"), "{}", ours.kernel());
        assert_eq!(theirs.kernel(), "candle-cpu");
        let seq = ours.synthetic_prompt(48, 3);
        // Prefill of 16 tokens, then one token at a time.
        let (agree, _, worst) = teacher_forced(&mut ours, &mut theirs, &seq, 16);
        assert!(
            agree >= 30,
            "{dtype:?}: top-1 agreed on {agree} of 32 positions"
        );
        assert!(
            worst < 0.05,
            "{dtype:?}: logits differ by {worst} of their range"
        );
    }
}

#[test]
fn weight_bytes_per_token_count_each_matrix_once_and_one_embedding_row() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::load(&tiny(dir.path(), TinySpec::default()), DeviceRequest::Cpu).unwrap();
    // Q8_0: 34 bytes per 32 weights; Q4_1: 20; F32: 4 per weight. The tiny model has an untied output matrix.
    let v = 3 + 256 + 6;
    let q41 = |n: usize| n / 32 * 20;
    let per_layer = q41(64 * 64) * 2 + q41(32 * 64) * 2 + q41(128 * 64) * 3 + 2 * 64 * 4;
    let expected = 64 / 32 * 34 + v * 64 / 32 * 34 + 64 * 4 + 2 * per_layer;
    assert_eq!(e.info().weight_bytes_per_token, expected as u64);
}

/// qwen2 (biases) and qwen3 (q/k norms, a head size apart from hidden / heads): the own CPU path against
/// candle-transformers' models on the same tiny files.
#[test]
fn qwen_families_agree_with_candle_transformers() {
    use meek_engine::Kernels;
    let dir = tempfile::tempdir().unwrap();
    for (arch, head_dim, dtype) in [
        ("qwen2", None, candle_core::quantized::GgmlDType::Q8_0),
        ("qwen2", None, candle_core::quantized::GgmlDType::Q4_0),
        ("qwen3", Some(32), candle_core::quantized::GgmlDType::Q8_0),
        ("qwen3", Some(32), candle_core::quantized::GgmlDType::Q5_0),
    ] {
        let path = dir.path().join(format!("{arch}-{dtype:?}.gguf"));
        write_tiny_llama(
            &path,
            TinySpec {
                arch,
                head_dim,
                dtype,
                seed: 21,
                ..TinySpec::default()
            },
        )
        .unwrap();
        let mut ours = Engine::load_with(&path, DeviceRequest::Cpu, Kernels::Auto).unwrap();
        let mut theirs = Engine::load_with(&path, DeviceRequest::Cpu, Kernels::Candle).unwrap();
        assert_eq!(ours.info().architecture, arch);
        assert!(ours.kernel().starts_with("cpu-"), "{}", ours.kernel());
        let seq = ours.synthetic_prompt(32, 5);
        let (agree, _, worst) = teacher_forced(&mut ours, &mut theirs, &seq, 12);
        assert!(
            agree >= 18,
            "{arch} {dtype:?}: top-1 agreed on {agree} of 20"
        );
        assert!(
            worst < 0.05,
            "{arch} {dtype:?}: logits differ by {worst} of their range"
        );
    }
}

/// gemma3 on the own CPU path against the float64 reference: six layers (five local with a window of 8, one
/// global), a head size apart from hidden / heads, 24 positions so the window slides; prefill then decode.
#[test]
fn gemma3_agrees_with_a_float64_reference() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in [
        candle_core::quantized::GgmlDType::Q8_0,
        candle_core::quantized::GgmlDType::Q5_0,
    ] {
        let path = dir.path().join(format!("gemma3-{dtype:?}.gguf"));
        write_tiny_llama(
            &path,
            TinySpec {
                arch: "gemma3",
                layers: 6,
                head_dim: Some(32),
                window: 8,
                dtype,
                seed: 33,
                ..TinySpec::default()
            },
        )
        .unwrap();
        let mut e = Engine::load(&path, DeviceRequest::Cpu).unwrap();
        assert_eq!(e.info().architecture, "gemma3");
        assert!(e.kernel().starts_with("cpu-"), "{}", e.kernel());
        let seq = e.synthetic_prompt(24, 9);
        let (mut agree, mut worst) = (0, 0f32);
        for i in 10..seq.len() {
            let ours = if i == 10 {
                e.logits(&seq[..=i], 0).unwrap()
            } else {
                e.logits(&seq[i..=i], i).unwrap()
            };
            let (d, same) = compare_logits(&ours, &gemma3_reference(&path, &seq[..=i]));
            agree += usize::from(same);
            worst = worst.max(d);
        }
        assert!(agree >= 12, "{dtype:?}: top-1 agreed on {agree} of 14");
        assert!(
            worst < 0.05,
            "{dtype:?}: logits differ by {worst} of their range"
        );
    }
}

/// A text's per-token losses from one pass over all positions (the CPU path's `forward_rows`) equal those from
/// decoding the positions one at a time with the cache (the path of candle-transformers' models, and of
/// generation), for every family the own path runs, with the 16-row blocks of the output matrix crossed.
#[test]
fn token_losses_from_one_pass_equal_those_of_one_position_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    for arch in ["llama", "qwen3", "gemma3"] {
        let spec = TinySpec {
            arch,
            seed: 11,
            ..TinySpec::default()
        };
        let mut e = Engine::load(&tiny(dir.path(), spec), DeviceRequest::Cpu).unwrap();
        let tokens = e
            .tokenizer()
            .encode(
                "Natalia sold clips to 48 of her friends in April, and then half as many in May.",
            )
            .unwrap();
        let first = 5;
        let all = e.token_nll(&tokens, first).unwrap();
        assert_eq!(all.len(), tokens.len() - 1 - first, "{arch}");
        assert!(all.len() > 16, "crosses a block of rows");
        let mut one = Vec::new();
        let mut logits = e.logits(&tokens[..=first], 0).unwrap();
        for i in first..tokens.len() - 1 {
            if i > first {
                logits = e.logits(&tokens[i..=i], i).unwrap();
            }
            one.push(meek_engine::nll_of(&logits, tokens[i + 1]));
        }
        for (i, (a, b)) in all.iter().zip(&one).enumerate() {
            assert!(a.is_finite() && *a > 0.0, "{arch} position {i}: {a}");
            assert!((a - b).abs() < 1e-4, "{arch} position {i}: {a} vs {b}");
        }
        assert!(e.token_nll(&tokens[..3], 2).unwrap().is_empty());
    }
    // Certain and impossible targets.
    assert_eq!(meek_engine::nll_of(&[0.0, 100.0], 1), 0.0);
    assert_eq!(meek_engine::nll_of(&[0.0, 1.0], 7), f64::INFINITY);
    assert!((meek_engine::nll_of(&[1.0, 1.0], 0) - std::f64::consts::LN_2).abs() < 1e-12);
}
