//! Issue #17, "no silent skips": a GGUF that asks for a tensor or a computation the engine does not implement is
//! refused at load, on both forward passes, naming the tensor or key; neutral values of known keys load. The header
//! readers (`inspect`, `load_tokenizer`) still read such a file: only running it is refused.

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use meek_engine::{DeviceRequest, Engine, Kernels};
use meek_testkit::{TinySpec, rewrite_gguf, write_tiny_llama};

type Edit = Box<dyn FnOnce(&mut Vec<(String, Value)>, &mut Vec<(String, QTensor)>)>;

/// The tiny model of `arch` with `edit` applied.
fn edited(dir: &Path, arch: &'static str, name: &str, edit: Edit) -> PathBuf {
    let good = dir.join(format!("good-{arch}.gguf"));
    if !good.exists() {
        let spec = TinySpec {
            arch,
            ..TinySpec::default()
        };
        write_tiny_llama(&good, spec).unwrap();
    }
    let p = dir.join(name);
    rewrite_gguf(&good, &p, edit).unwrap();
    p
}

fn set(key: &'static str, v: Value) -> Edit {
    Box::new(move |md, _| {
        md.retain(|(k, _)| k != key);
        md.push((key.to_string(), v));
    })
}

fn add_tensor(name: &'static str, len: usize) -> Edit {
    Box::new(move |_, tensors| {
        let t = Tensor::ones(len, candle_core::DType::F32, &Device::Cpu).unwrap();
        tensors.push((
            name.to_string(),
            QTensor::quantize(&t, GgmlDType::F32).unwrap(),
        ));
    })
}

/// Loading refuses `path` on both kernels, with one line naming the file and each of `want`; the header readers
/// still accept it.
fn refused(path: &Path, want: &[&str]) {
    let name = path.file_name().unwrap().to_str().unwrap();
    for kernels in [Kernels::Auto, Kernels::Candle, Kernels::Tensors] {
        let err = match Engine::load_with(path, DeviceRequest::Cpu, kernels) {
            Ok(_) => panic!("{name}: {kernels:?} loaded the file"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(name), "{name}: {err}");
        for w in want {
            assert!(err.contains(w), "{name}: want {w:?} in: {err}");
        }
        assert!(err.contains("not implemented"), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
    }
    meek_engine::inspect(path).unwrap();
    meek_engine::load_tokenizer(path).unwrap();
}

fn loads(path: &Path) {
    if let Err(e) = Engine::load(path, DeviceRequest::Cpu) {
        panic!("{}: {e}", path.display());
    }
}

/// Loading `path` on the own CPU path and on the decoder on Candle tensors works; candle-transformers' path
/// refuses it in one line naming `want`.
fn own_path_only(path: &Path, want: &[&str]) {
    let name = path.file_name().unwrap().to_str().unwrap();
    loads(path);
    if let Err(e) = Engine::load_with(path, DeviceRequest::Cpu, Kernels::Tensors) {
        panic!("{name}: the decoder on tensors refused the file: {e}");
    }
    let err = match Engine::load_with(path, DeviceRequest::Cpu, Kernels::Candle) {
        Ok(_) => panic!("{name}: candle-transformers' path loaded the file"),
        Err(e) => e.to_string(),
    };
    for w in want.iter().chain(&["own decoders", name]) {
        assert!(err.contains(w), "{name}: want {w:?} in: {err}");
    }
    assert_eq!(err.lines().count(), 1, "{name}: {err}");
}

fn add_values(name: &'static str, values: Vec<f32>) -> Edit {
    Box::new(move |_, tensors| {
        let n = values.len();
        let t = Tensor::from_vec(values, n, &Device::Cpu).unwrap();
        tensors.push((
            name.to_string(),
            QTensor::quantize(&t, GgmlDType::F32).unwrap(),
        ));
    })
}

/// Greedy logits of the prompt `[5, 40, 77, 120]` and of one more token.
fn logits(path: &Path) -> Vec<f32> {
    let mut e = Engine::load(path, DeviceRequest::Cpu).unwrap();
    e.logits(&[5, 40, 77, 120, 9], 0).unwrap()
}

#[test]
fn llama3_rotary_factors_run_on_the_own_path_and_are_refused_on_candle() {
    let dir = tempfile::tempdir().unwrap();
    // The tiny llama's heads are 16 wide: 8 factors.
    let p = edited(
        dir.path(),
        "llama",
        "rope-freqs.gguf",
        add_values("rope_freqs.weight", vec![2.0; 8]),
    );
    own_path_only(
        &p,
        &["rope_freqs.weight", "llama3 rotary frequency factors"],
    );
    // Factors of 2 on every pair halve every angle, as linear scaling by 2 does; factors of 1 change nothing.
    let linear = edited(
        dir.path(),
        "llama",
        "linear2.gguf",
        set("llama.rope.scaling.factor", Value::F32(2.0)),
    );
    own_path_only(&linear, &["linear rotary scaling by a factor of 2"]);
    let ones = edited(
        dir.path(),
        "llama",
        "rope-ones.gguf",
        add_values("rope_freqs.weight", vec![1.0; 8]),
    );
    let plain = dir.path().join("good-llama.gguf");
    let (a, b, c, d) = (logits(&p), logits(&linear), logits(&ones), logits(&plain));
    let max_diff = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max)
    };
    assert!(
        max_diff(&a, &b) < 1e-4,
        "factors 2 vs linear 2: {}",
        max_diff(&a, &b)
    );
    assert!(
        max_diff(&c, &d) < 1e-6,
        "factors 1 vs none: {}",
        max_diff(&c, &d)
    );
    assert!(max_diff(&a, &d) > 1e-3, "the factors changed nothing");
    // The wrong number of factors, or one that is not positive, is refused naming the tensor.
    for (file, values) in [
        ("rope-short.gguf", vec![1.0; 4]),
        ("rope-zero.gguf", vec![0.0; 8]),
    ] {
        let bad = edited(
            dir.path(),
            "llama",
            file,
            add_values("rope_freqs.weight", values),
        );
        let err = Engine::load(&bad, DeviceRequest::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("rope_freqs.weight") && err.contains("8 finite positive factors"),
            "{err}"
        );
    }
    // In a file of another family llama.cpp would not read it either.
    let q = edited(
        dir.path(),
        "qwen2",
        "qwen-rope-freqs.gguf",
        add_values("rope_freqs.weight", vec![1.0; 8]),
    );
    refused(&q, &["rope_freqs.weight", "qwen2 files"]);
}

#[test]
fn unknown_and_unread_tensors_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    // A bias the llama path would not add.
    let p = edited(
        dir.path(),
        "llama",
        "q-bias.gguf",
        add_tensor("blk.0.attn_q.bias", 64),
    );
    refused(
        &p,
        &["blk.0.attn_q.bias", "attention biases", "llama files"],
    );
    // A tensor nobody knows.
    let p = edited(
        dir.path(),
        "llama",
        "unknown.gguf",
        add_tensor("blk.1.attn_gate.weight", 64),
    );
    refused(&p, &["blk.1.attn_gate.weight"]);
    // Gemma 3's sandwich norms in a qwen3 file.
    let p = edited(
        dir.path(),
        "qwen3",
        "sandwich.gguf",
        add_tensor("blk.0.post_ffw_norm.weight", 64),
    );
    refused(&p, &["blk.0.post_ffw_norm.weight", "qwen3 files"]);
}

#[test]
fn keys_that_change_the_computation_are_refused_unless_neutral() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, &'static str, Edit, Vec<&str>)> = vec![
        (
            "yarn.gguf",
            "llama",
            set("llama.rope.scaling.type", Value::String("yarn".into())),
            vec!["llama.rope.scaling.type", "\"yarn\"", "rotary scaling"],
        ),
        (
            "linear-half.gguf",
            "llama",
            set("llama.rope.scaling.factor", Value::F32(0.5)),
            vec!["llama.rope.scaling.factor"],
        ),
        // Hostile factors: not a number, infinite, negative, a string.
        (
            "linear-nan.gguf",
            "llama",
            set("llama.rope.scaling.factor", Value::F32(f32::NAN)),
            vec!["llama.rope.scaling.factor"],
        ),
        (
            "linear-inf.gguf",
            "gemma3",
            set("gemma3.rope.scaling.factor", Value::F32(f32::INFINITY)),
            vec!["gemma3.rope.scaling.factor"],
        ),
        (
            "linear-neg.gguf",
            "qwen2",
            set("qwen2.rope.scale_linear", Value::F32(-4.0)),
            vec!["qwen2.rope.scale_linear"],
        ),
        (
            "linear-text.gguf",
            "llama",
            set("llama.rope.scaling.factor", Value::String("8".into())),
            vec!["llama.rope.scaling.factor"],
        ),
        (
            "none8.gguf",
            "qwen3",
            Box::new(
                |md: &mut Vec<(String, Value)>, _: &mut Vec<(String, QTensor)>| {
                    md.push((
                        "qwen3.rope.scaling.type".into(),
                        Value::String("none".into()),
                    ));
                    md.push(("qwen3.rope.scaling.factor".into(), Value::F32(8.0)));
                },
            ),
            vec!["qwen3.rope.scaling.factor"],
        ),
        (
            "swa.gguf",
            "llama",
            set("llama.attention.sliding_window", Value::U32(4096)),
            vec!["llama.attention.sliding_window", "sliding-window attention"],
        ),
        (
            "softcap.gguf",
            "gemma3",
            set("gemma3.final_logit_softcapping", Value::F32(30.0)),
            vec!["gemma3.final_logit_softcapping", "soft-capping"],
        ),
        (
            "pattern4.gguf",
            "gemma3",
            set("gemma3.attention.sliding_window_pattern", Value::U32(4)),
            vec!["gemma3.attention.sliding_window_pattern"],
        ),
        (
            "made-up.gguf",
            "qwen2",
            set("qwen2.attention.temperature_scale", Value::F32(0.5)),
            vec!["qwen2.attention.temperature_scale"],
        ),
    ];
    for (file, arch, edit, want) in cases {
        let p = edited(dir.path(), arch, file, edit);
        refused(&p, &want);
    }
}

#[test]
fn neutral_values_and_read_keys_load() {
    let dir = tempfile::tempdir().unwrap();
    let p = edited(
        dir.path(),
        "llama",
        "neutral.gguf",
        Box::new(|md, _| {
            for (k, v) in [
                ("llama.rope.scaling.type", Value::String("none".into())),
                ("llama.rope.scaling.factor", Value::F32(1.0)),
                ("llama.rope.scaling.finetuned", Value::Bool(false)),
                ("llama.attention.causal", Value::Bool(true)),
                ("llama.vocab_size", Value::U32(265)),
            ] {
                md.push((k.to_string(), v));
            }
        }),
    );
    loads(&p);
    // Gemma 3's pattern as a number or as llama.cpp's per-layer array (the tiny model has 2 layers: both local),
    // and its sliding-window rotary base, which the own path reads.
    for (file, edit) in [
        (
            "pattern6.gguf",
            set("gemma3.attention.sliding_window_pattern", Value::U32(6)),
        ),
        (
            "pattern-array.gguf",
            set(
                "gemma3.attention.sliding_window_pattern",
                Value::Array(vec![Value::Bool(true), Value::Bool(true)]),
            ),
        ),
        (
            "swa-base.gguf",
            set("gemma3.rope.freq_base_swa", Value::F32(10_000.0)),
        ),
    ] {
        loads(&edited(dir.path(), "gemma3", file, edit));
    }
    let p = edited(
        dir.path(),
        "gemma3",
        "pattern-wrong-array.gguf",
        set(
            "gemma3.attention.sliding_window_pattern",
            Value::Array(vec![Value::Bool(true), Value::Bool(false)]),
        ),
    );
    refused(&p, &["gemma3.attention.sliding_window_pattern"]);
    // A window of 0 has no meaning llama.cpp and Hugging Face agree on: refused by name.
    let p = edited(
        dir.path(),
        "gemma3",
        "window0.gguf",
        set("gemma3.attention.sliding_window", Value::U32(0)),
    );
    let err = Engine::load(&p, DeviceRequest::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("`gemma3.attention.sliding_window` is 0"),
        "{err}"
    );
}
