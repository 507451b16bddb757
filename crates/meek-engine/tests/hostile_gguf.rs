//! Crafted GGUF files (issue #18, item 2): each is refused by `load`, `load_tokenizer` and `inspect` with one line
//! naming the file and the key or tensor at fault, never a panic. Each case is the tiny model with one thing broken,
//! by rewriting its metadata ([`rewrite_gguf`]) or patching bytes of its tensor table.

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Value;
use fs_err as fs;
use meek_engine::{DeviceRequest, Engine};
use meek_testkit::{TinySpec, rewrite_gguf, write_tiny_llama};

fn tiny(dir: &Path) -> PathBuf {
    let p = dir.join("good.gguf");
    write_tiny_llama(&p, TinySpec::default()).unwrap();
    p
}

/// Every entry point that reads a GGUF refuses `path` with a message holding each of `want` and the file name.
fn refused(path: &Path, want: &[&str]) {
    let name = path.file_name().unwrap().to_str().unwrap();
    let errors = [
        Engine::load(path, DeviceRequest::Cpu).map(|_| ()),
        Engine::load_with(path, DeviceRequest::Cpu, meek_engine::Kernels::Candle).map(|_| ()),
        Engine::load_with(path, DeviceRequest::Cpu, meek_engine::Kernels::Tensors).map(|_| ()),
        meek_engine::load_tokenizer(path).map(|_| ()),
        meek_engine::inspect(path).map(|_| ()),
    ];
    for (i, r) in errors.into_iter().enumerate() {
        let err = match r {
            Ok(()) => panic!("{name}: entry point {i} accepted the file"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(name), "{name}: {err}");
        for w in want {
            assert!(err.contains(w), "{name}: want {w:?} in: {err}");
        }
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
    }
}

/// The tiny model with `edit` applied to its metadata (and tensors).
fn edited(
    dir: &Path,
    name: &str,
    edit: impl FnOnce(&mut Vec<(String, Value)>, &mut Vec<(String, candle_core::quantized::QTensor)>),
) -> PathBuf {
    let good = tiny(dir);
    let p = dir.join(name);
    rewrite_gguf(&good, &p, edit).unwrap();
    p
}

fn set(md: &mut Vec<(String, Value)>, key: &str, v: Value) {
    md.retain(|(k, _)| k != key);
    md.push((key.to_string(), v));
}

/// Where tensor `name`'s entry in the table keeps its dimension count (dimensions follow, then type and offset).
fn table_entry(bytes: &[u8], name: &str) -> usize {
    let mut pat = (name.len() as u64).to_le_bytes().to_vec();
    pat.extend_from_slice(name.as_bytes());
    bytes.windows(pat.len()).position(|w| w == pat).unwrap() + pat.len()
}

/// The tiny model with the table entry of tensor `name` patched by `patch(bytes, at)`.
fn patched(dir: &Path, file: &str, name: &str, patch: impl FnOnce(&mut Vec<u8>, usize)) -> PathBuf {
    let mut bytes = fs::read(tiny(dir)).unwrap();
    let at = table_entry(&bytes, name);
    patch(&mut bytes, at);
    let p = dir.join(file);
    fs::write(&p, bytes).unwrap();
    p
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Offset of the type field of the entry whose dimension count is at `at`.
fn type_at(b: &[u8], at: usize) -> usize {
    at + 4 + 8 * u32_at(b, at) as usize
}

#[test]
fn alignment_must_be_a_nonzero_power_of_two() {
    let dir = tempfile::tempdir().unwrap();
    for (file, v) in [
        ("align0.gguf", Value::U32(0)),
        ("align3.gguf", Value::U32(3)),
        ("align-neg.gguf", Value::I32(-32)),
        ("align64bit.gguf", Value::U64(32)),
    ] {
        let p = edited(dir.path(), file, |md, _| set(md, "general.alignment", v));
        refused(&p, &["general.alignment"]);
    }
}

#[test]
fn tensor_offsets_must_be_aligned_inside_the_file_and_apart() {
    let dir = tempfile::tempdir().unwrap();
    let off_by_one = patched(dir.path(), "offset.gguf", "blk.0.attn_q.weight", |b, at| {
        let o = type_at(b, at) + 4;
        let v = u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) + 1;
        b[o..o + 8].copy_from_slice(&v.to_le_bytes());
    });
    refused(
        &off_by_one,
        &["blk.0.attn_q.weight", "not a multiple of the alignment 32"],
    );
    // Two tensors at the same offset.
    let overlap = patched(
        dir.path(),
        "overlap.gguf",
        "blk.0.attn_q.weight",
        |b, at| {
            let o = type_at(b, at) + 4;
            b[o..o + 8].copy_from_slice(&0u64.to_le_bytes());
        },
    );
    refused(&overlap, &["overlap"]);
}

#[test]
fn tensor_shapes_and_types_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let zero = patched(dir.path(), "dim0.gguf", "token_embd.weight", |b, at| {
        b[at + 12..at + 20].copy_from_slice(&0u64.to_le_bytes());
    });
    refused(&zero, &["token_embd.weight", "dimension of 0"]);
    let norm0 = patched(dir.path(), "norm0.gguf", "output_norm.weight", |b, at| {
        b[at + 4..at + 12].copy_from_slice(&0u64.to_le_bytes());
    });
    refused(&norm0, &["output_norm.weight", "dimension of 0"]);
    let no_dims = patched(dir.path(), "ndims0.gguf", "output_norm.weight", |b, at| {
        b[at..at + 4].copy_from_slice(&0u32.to_le_bytes());
    });
    refused(&no_dims, &["output_norm.weight", "0 dimensions"]);
    let five = patched(dir.path(), "ndims5.gguf", "output_norm.weight", |b, at| {
        b[at..at + 4].copy_from_slice(&5u32.to_le_bytes());
    });
    refused(&five, &["output_norm.weight", "5 dimensions"]);
    let unknown = patched(dir.path(), "type.gguf", "output_norm.weight", |b, at| {
        let t = type_at(b, at);
        b[t..t + 4].copy_from_slice(&99u32.to_le_bytes());
    });
    refused(&unknown, &["output_norm.weight", "unknown ggml type 99"]);
    // A norm of another width than the embedding (read as it is, it would normalise the wrong elements).
    let narrow = edited(dir.path(), "narrow.gguf", |_, t| {
        let v = candle_core::Tensor::ones(32, candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap();
        let q =
            candle_core::quantized::QTensor::quantize(&v, candle_core::quantized::GgmlDType::F32)
                .unwrap();
        t.retain(|(n, _)| n != "blk.1.ffn_norm.weight");
        t.push(("blk.1.ffn_norm.weight".into(), q));
    });
    refused(&narrow, &["blk.1.ffn_norm.weight", "32 elements"]);
}

#[test]
fn duplicated_keys_and_tensor_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keys = edited(dir.path(), "dupkey.gguf", |md, _| {
        md.push(("general.name".into(), Value::String("again".into())));
    });
    refused(&keys, &["general.name", "twice"]);
    let tensors = edited(dir.path(), "duptensor.gguf", |_, t| {
        let again = t.iter().find(|(n, _)| n == "output_norm.weight").unwrap();
        let q = candle_core::quantized::QTensor::quantize(
            &again.1.dequantize(&candle_core::Device::Cpu).unwrap(),
            candle_core::quantized::GgmlDType::F32,
        )
        .unwrap();
        t.push(("output_norm.weight".into(), q));
    });
    refused(&tensors, &["output_norm.weight", "twice"]);
}

#[test]
fn hyper_parameters_that_divide_or_size_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, Value, &str); 9] = [
        (
            "heads0.gguf",
            "llama.attention.head_count",
            Value::U32(0),
            "is 0",
        ),
        (
            "kv0.gguf",
            "llama.attention.head_count_kv",
            Value::U32(0),
            "is 0",
        ),
        (
            "kv3.gguf",
            "llama.attention.head_count_kv",
            Value::U32(3),
            "does not divide",
        ),
        (
            "hidden0.gguf",
            "llama.embedding_length",
            Value::U32(0),
            "is 0",
        ),
        (
            "heads6.gguf",
            "llama.attention.head_count",
            Value::U32(6),
            "not a multiple",
        ),
        (
            "blocks.gguf",
            "llama.block_count",
            Value::U32(1),
            "belongs to block 1",
        ),
        (
            "blocks-huge.gguf",
            "llama.block_count",
            Value::U64(1 << 40),
            "limit",
        ),
        (
            "context0.gguf",
            "llama.context_length",
            Value::U32(0),
            "is 0",
        ),
        (
            "rope.gguf",
            "llama.rope.dimension_count",
            Value::U32(17),
            "even",
        ),
    ];
    for (file, key, v, want) in cases {
        let p = edited(dir.path(), file, |md, _| set(md, key, v));
        refused(&p, &[key, want]);
    }
    let neg = edited(dir.path(), "negative.gguf", |md, _| {
        set(md, "llama.attention.head_count", Value::I32(-4))
    });
    refused(
        &neg,
        &["llama.attention.head_count", "non-negative integer"],
    );
}

#[test]
fn vocabularies_and_special_ids_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let n = meek_testkit::vocabulary().len();
    let empty = edited(dir.path(), "empty-vocab.gguf", |md, _| {
        set(md, "tokenizer.ggml.tokens", Value::Array(vec![]));
        set(md, "tokenizer.ggml.token_type", Value::Array(vec![]));
    });
    refused(&empty, &["tokenizer.ggml.tokens", "empty"]);
    let no_text = edited(dir.path(), "no-text.gguf", |md, _| {
        set(
            md,
            "tokenizer.ggml.token_type",
            Value::Array(vec![Value::I32(3); n]),
        );
    });
    refused(&no_text, &["tokenizer.ggml.token_type", "ordinary"]);
    let short = edited(dir.path(), "types.gguf", |md, _| {
        set(
            md,
            "tokenizer.ggml.token_type",
            Value::Array(vec![Value::I32(1); n - 1]),
        );
    });
    refused(&short, &["tokenizer.ggml.token_type", "entries for"]);
    for key in [
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.padding_token_id",
    ] {
        let p = edited(dir.path(), "special.gguf", |md, _| {
            set(md, key, Value::U32(n as u32))
        });
        refused(&p, &[key, "outside the vocabulary"]);
    }
    let merges = edited(dir.path(), "merges.gguf", |md, _| {
        set(
            md,
            "tokenizer.ggml.merges",
            Value::Array(vec![Value::String("nospace".into())]),
        );
    });
    refused(&merges, &["tokenizer.ggml.merges", "separated by a space"]);
    // One token fewer than the embedding has rows.
    let fewer = edited(dir.path(), "fewer.gguf", |md, _| {
        let mut tokens = meek_testkit::vocabulary();
        tokens.pop();
        set(
            md,
            "tokenizer.ggml.tokens",
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        );
        set(
            md,
            "tokenizer.ggml.token_type",
            Value::Array(vec![Value::I32(1); n - 1]),
        );
    });
    refused(&fewer, &["token_embd.weight", "rows"]);
}

#[test]
fn the_untouched_tiny_model_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let p = edited(dir.path(), "same.gguf", |_, _| {});
    Engine::load(&p, DeviceRequest::Cpu).unwrap();
    meek_engine::load_tokenizer(&p).unwrap();
}

/// Phi-3 files broken where only that family looks (issue #17): both decoders refuse each with one line naming the
/// tensor or key, never a panic.
#[test]
fn phi3_files_are_checked() {
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};
    type Edit = dyn Fn(&mut Vec<(String, Value)>, &mut Vec<(String, QTensor)>);
    let dir = tempfile::tempdir().unwrap();
    let good = tiny(dir.path());
    let layers = TinySpec::default().layers;
    let phi3 = |name: &str, factors: Option<(Vec<f32>, f32, u32)>, edit: &Edit| {
        let mid = dir.path().join(format!("{name}.mid.gguf"));
        rewrite_gguf(&good, &mid, meek_testkit::phi3_layout(layers, factors)).unwrap();
        let p = dir.path().join(name);
        rewrite_gguf(&mid, &p, |md, t| edit(md, t)).unwrap();
        p
    };
    let eight = || (0..8).map(|i| 1.0 + i as f32).collect::<Vec<f32>>();
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            phi3("qkv-rows.gguf", None, &|_, tensors| {
                let (_, t) = tensors
                    .iter_mut()
                    .find(|(n, _)| n == "blk.0.attn_qkv.weight")
                    .unwrap();
                let w = t.dequantize(&Device::Cpu).unwrap();
                let (rows, cols) = (w.dims()[0] - 32, w.dims()[1]);
                let kept: Vec<f32> =
                    w.flatten_all().unwrap().to_vec1().unwrap()[..rows * cols].to_vec();
                let kept = Tensor::from_vec(kept, (rows, cols), &Device::Cpu).unwrap();
                *t = QTensor::quantize(&kept, t.dtype()).unwrap();
            }),
            "blk.0.attn_qkv.weight",
        ),
        (
            phi3("no-original.gguf", Some((eight(), 1.19, 64)), &|md, _| {
                md.retain(|(k, _)| k != "phi3.rope.scaling.original_context_length");
            }),
            "original_context_length",
        ),
        (
            phi3("attn-factor.gguf", Some((eight(), 1.19, 64)), &|md, _| {
                set(md, "phi3.rope.scaling.attn_factor", Value::F32(f32::NAN));
            }),
            "attn_factor",
        ),
        (
            phi3(
                "short-factors.gguf",
                Some((eight(), 1.19, 64)),
                &|_, tensors| {
                    let t = Tensor::from_vec(vec![1f32; 5], 5, &Device::Cpu).unwrap();
                    for (n, q) in tensors.iter_mut() {
                        if n == "rope_factors_short.weight" {
                            *q = QTensor::quantize(&t, GgmlDType::F32).unwrap();
                        }
                    }
                },
            ),
            "rope_factors_short.weight",
        ),
    ];
    for (path, want) in cases {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        for kernels in [meek_engine::Kernels::Auto, meek_engine::Kernels::Tensors] {
            let err = Engine::load_with(&path, DeviceRequest::Cpu, kernels)
                .map(|_| ())
                .expect_err(&format!("{name} ({kernels:?}) was accepted"))
                .to_string();
            assert!(
                err.contains(&name) && err.contains(want),
                "{name} ({kernels:?}): {err}"
            );
            assert!(
                !err.contains("panicked") && err.lines().count() == 1,
                "{err}"
            );
        }
    }
    // The long factors belong to Phi-3 only: a llama file with them is refused by name.
    let llama = edited(dir.path(), "llama-long.gguf", |_, tensors| {
        let t = Tensor::from_vec(vec![1f32; 8], 8, &Device::Cpu).unwrap();
        tensors.push((
            "rope_factors_long.weight".into(),
            QTensor::quantize(&t, GgmlDType::F32).unwrap(),
        ));
    });
    let err = Engine::load(&llama, DeviceRequest::Cpu)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rope_factors_long.weight") && err.contains("LongRoPE"),
        "{err}"
    );
}
