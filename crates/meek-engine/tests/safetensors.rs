//! Hugging Face checkpoints (safetensors, config.json, tokenizer.json) on tiny generated models: loading,
//! generation, agreement with independent implementations, sharding, and the refusal of lying files.

use std::path::Path;

use candle_core::DType;
use fs_err as fs;
use meek_engine::{DeviceRequest, Engine, EngineError, GenOptions, Kernels, Message};
use meek_testkit::{
    TinyCheckpoint, checkpoint_to_gguf, compare_logits, gemma3_reference, write_tiny_checkpoint,
};

fn spec(arch: &'static str) -> TinyCheckpoint {
    match arch {
        "qwen3" => TinyCheckpoint {
            arch,
            head_dim: Some(32),
            ..TinyCheckpoint::default()
        },
        "gemma3" => TinyCheckpoint {
            arch,
            layers: 6,
            head_dim: Some(32),
            window: 8,
            ..TinyCheckpoint::default()
        },
        _ => TinyCheckpoint {
            arch,
            ..TinyCheckpoint::default()
        },
    }
}

const FAMILIES: [&str; 5] = ["llama", "qwen2", "qwen3", "gemma3", "phi3"];

#[test]
fn every_family_loads_describes_itself_and_generates_deterministically() {
    let root = tempfile::tempdir().unwrap();
    for arch in FAMILIES {
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let dir = root.path().join(format!("{arch}-{dtype:?}"));
            let s = TinyCheckpoint {
                dtype,
                ..spec(arch)
            };
            write_tiny_checkpoint(&dir, s).unwrap();
            let mut e = Engine::load(&dir, DeviceRequest::Cpu).unwrap();
            let info = e.info().clone();
            assert_eq!(info.architecture, arch);
            assert_eq!(info.quantization, format!("{dtype:?}").to_uppercase());
            assert_eq!(info.context_length, Some(256));
            assert_eq!(e.max_positions(), 256);
            // Candle's CPU path runs in f32 whatever the checkpoint stores.
            assert_eq!(e.kernel(), "candle-cpu-f32");
            let hd = s.head_dim.unwrap_or(s.hidden / s.heads);
            assert_eq!(
                info.kv_bytes_per_position,
                Some((s.layers * 2 * s.kv_heads * hd * 4) as u64)
            );
            let prompt = e.synthetic_prompt(12, 3);
            let opts = GenOptions {
                max_new_tokens: 8,
                stop_at_eos: false,
            };
            let a = e.generate(&prompt, opts, &mut ()).unwrap();
            let b = e.generate(&prompt, opts, &mut ()).unwrap();
            assert_eq!(a.tokens.len(), 8);
            assert_eq!(a.tokens, b.tokens, "{arch} {dtype:?}: not deterministic");
            // The KV cache is used correctly: one step after a longer prompt equals the cached run.
            let c = e
                .generate(
                    &[prompt.clone(), a.tokens[..4].to_vec()].concat(),
                    GenOptions {
                        max_new_tokens: 1,
                        stop_at_eos: false,
                    },
                    &mut (),
                )
                .unwrap();
            assert_eq!(c.tokens[0], a.tokens[4], "{arch} {dtype:?}");
        }
    }
}

/// The path of a checkpoint can be the directory, its config.json, or its model.safetensors.
#[test]
fn a_checkpoint_is_named_by_its_directory_config_or_weights() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("m");
    write_tiny_checkpoint(&dir, spec("qwen2")).unwrap();
    let mut logits = Vec::new();
    for p in [
        dir.clone(),
        dir.join("config.json"),
        dir.join("model.safetensors"),
    ] {
        let mut e = Engine::load(&p, DeviceRequest::Cpu).unwrap();
        logits.push(e.logits(&[5, 6, 7], 0).unwrap());
    }
    assert_eq!(logits[0], logits[1]);
    assert_eq!(logits[0], logits[2]);
    let info = meek_engine::inspect(&dir).unwrap();
    assert_eq!(info.architecture, "qwen2");
    assert_eq!(info.name.as_deref(), Some("m"));
}

/// Each family's logits against an implementation that shares no code with candle-transformers' non-quantized
/// models: llama, qwen2 and qwen3 against candle-transformers' quantized models on the same weights converted to
/// an F32 GGUF (q/k rows permuted for llama as llama.cpp's converter does), phi3 (fused projections) against the
/// llama GGUF of its split weights, gemma3 against a float64 reference. Prefill, then one token at a time.
#[test]
fn every_family_agrees_with_an_independent_implementation() {
    let root = tempfile::tempdir().unwrap();
    for arch in FAMILIES {
        for dtype in [DType::F32, DType::BF16] {
            let dir = root.path().join(format!("{arch}-{dtype:?}"));
            let s = TinyCheckpoint {
                dtype,
                seed: 7,
                ..spec(arch)
            };
            write_tiny_checkpoint(&dir, s).unwrap();
            let gguf = root.path().join(format!("{arch}-{dtype:?}.gguf"));
            checkpoint_to_gguf(&dir, s, &gguf).unwrap();
            let mut ours = Engine::load(&dir, DeviceRequest::Cpu).unwrap();
            let mut theirs = (arch != "gemma3")
                .then(|| Engine::load_with(&gguf, DeviceRequest::Cpu, Kernels::Candle).unwrap());
            let seq = ours.synthetic_prompt(24, 11);
            let (mut agree, mut worst, mut n) = (0, 0f32, 0);
            for i in 8..seq.len() {
                let a = if i == 8 {
                    ours.logits(&seq[..=i], 0).unwrap()
                } else {
                    ours.logits(&seq[i..=i], i).unwrap()
                };
                let b = match &mut theirs {
                    Some(t) if i == 8 => t.logits(&seq[..=i], 0).unwrap(),
                    Some(t) => t.logits(&seq[i..=i], i).unwrap(),
                    None => gemma3_reference(&gguf, &seq[..=i]),
                };
                let (d, same) = compare_logits(&a, &b);
                agree += usize::from(same);
                worst = worst.max(d);
                n += 1;
            }
            eprintln!(
                "{arch} {dtype:?}: top-1 agreed on {agree} of {n}, logits within {worst:.2e} of their range"
            );
            assert_eq!(agree, n, "{arch} {dtype:?}: top-1 agreed on {agree} of {n}");
            assert!(
                worst < 1e-3,
                "{arch} {dtype:?}: logits differ by {worst} of their range"
            );
        }
    }
}

#[test]
fn sharded_checkpoint_equals_the_single_file() {
    let root = tempfile::tempdir().unwrap();
    let (one, two) = (root.path().join("one"), root.path().join("two"));
    write_tiny_checkpoint(&one, spec("llama")).unwrap();
    write_tiny_checkpoint(
        &two,
        TinyCheckpoint {
            shards: 2,
            ..spec("llama")
        },
    )
    .unwrap();
    assert!(two.join("model.safetensors.index.json").is_file());
    assert!(two.join("model-00002-of-00002.safetensors").is_file());
    assert!(!two.join("model.safetensors").exists());
    let mut a = Engine::load(&one, DeviceRequest::Cpu).unwrap();
    let mut b = Engine::load(&two, DeviceRequest::Cpu).unwrap();
    assert_eq!(a.info().n_params, b.info().n_params);
    assert_eq!(a.info().n_tensors, b.info().n_tensors);
    let seq = a.synthetic_prompt(10, 1);
    assert_eq!(a.logits(&seq, 0).unwrap(), b.logits(&seq, 0).unwrap());
}

#[test]
fn tokenizer_json_gives_the_gguf_ids_and_the_template_comes_from_tokenizer_config() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("m");
    let s = spec("llama");
    write_tiny_checkpoint(&dir, s).unwrap();
    let gguf = root.path().join("m.gguf");
    checkpoint_to_gguf(&dir, s, &gguf).unwrap();
    let (hf, chat, info) = meek_engine::load_tokenizer(&dir).unwrap();
    let (gg, _, _) = meek_engine::load_tokenizer(&gguf).unwrap();
    assert_eq!(info.architecture, "llama");
    assert_eq!(hf.vocab_size(), gg.vocab_size());
    assert_eq!(
        (hf.bos(), hf.eos(), hf.adds_bos()),
        (Some(1), Some(2), false)
    );
    for id in 0..hf.vocab_size() as u32 {
        assert_eq!(hf.piece(id), gg.piece(id), "piece {id}");
        assert_eq!(hf.is_normal(id), gg.is_normal(id), "type of {id}");
    }
    for text in [
        "hello the 12",
        "naïve café, 東京 🙂",
        "  two  spaces\n\ttab",
        "<|im_start|>user\nhi<|im_end|>",
    ] {
        let ids = hf.encode(text).unwrap();
        assert_eq!(ids, gg.encode(text).unwrap(), "ids of {text:?}");
        assert_eq!(hf.decode(&ids, false).unwrap(), text);
    }
    assert_eq!(
        hf.decode(&hf.encode("<|im_start|>x").unwrap(), true)
            .unwrap(),
        "x"
    );
    let text = chat
        .expect("the tiny checkpoint has a template")
        .render(&[Message::new("user", "hi")], true)
        .unwrap();
    assert!(
        text.ends_with("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"),
        "{text}"
    );
    // A base model without a template, and a template in chat_template.jinja.
    let base = root.path().join("base");
    write_tiny_checkpoint(
        &base,
        TinyCheckpoint {
            chat_template: false,
            ..s
        },
    )
    .unwrap();
    assert!(meek_engine::load_tokenizer(&base).unwrap().1.is_none());
    fs::write(
        base.join("chat_template.jinja"),
        "[{{ messages[0].content }}]",
    )
    .unwrap();
    let t = meek_engine::load_tokenizer(&base).unwrap().1.unwrap();
    assert_eq!(
        t.render(&[Message::new("user", "x")], false).unwrap(),
        "[x]"
    );
}

/// A safetensors file from a header (JSON) and a data section.
fn raw_safetensors(path: &Path, header: &str, data_len: usize) {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(std::iter::repeat_n(0u8, data_len));
    fs::write(path, bytes).unwrap();
}

fn refusal(path: &Path) -> String {
    let e = Engine::load(path, DeviceRequest::Cpu).unwrap_err();
    assert!(
        matches!(
            e,
            EngineError::Checkpoint { .. } | EngineError::UnsupportedCheckpoint { .. }
        ),
        "{e:?}"
    );
    e.to_string()
}

#[test]
fn lying_headers_and_missing_shards_are_refused_with_the_file_and_tensor_named() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("m");
    write_tiny_checkpoint(&dir, spec("llama")).unwrap();
    let weights = dir.join("model.safetensors");
    let good = fs::read(&weights).unwrap();

    // A header length beyond the file.
    let mut bad = good.clone();
    bad[..8].copy_from_slice(&(good.len() as u64).to_le_bytes());
    fs::write(&weights, &bad).unwrap();
    let msg = refusal(&dir);
    assert!(
        msg.contains("model.safetensors") && msg.contains("header claims"),
        "{msg}"
    );

    // data_offsets that do not match dtype x shape.
    raw_safetensors(
        &weights,
        r#"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}"#,
        24,
    );
    let msg = refusal(&dir);
    assert!(
        msg.contains("tensor `a`") && msg.contains("is 24 bytes"),
        "{msg}"
    );

    // Overlapping tensors.
    raw_safetensors(
        &weights,
        r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[8,16]}}"#,
        16,
    );
    let msg = refusal(&dir);
    assert!(
        msg.contains("`a`") && msg.contains("`b`") && msg.contains("overlap"),
        "{msg}"
    );

    // Data past the end of the file (truncated download).
    raw_safetensors(
        &weights,
        r#"{"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}"#,
        16,
    );
    let msg = refusal(&dir);
    assert!(
        msg.contains("tensor `a`") && msg.contains("truncated"),
        "{msg}"
    );

    // Not JSON.
    raw_safetensors(&weights, "{not json", 0);
    assert!(refusal(&dir).contains("not JSON"));

    // A well-formed file that lacks a tensor the model needs.
    raw_safetensors(
        &weights,
        r#"{"model.norm.weight":{"dtype":"F32","shape":[64],"data_offsets":[0,256]}}"#,
        256,
    );
    let msg = refusal(&dir);
    assert!(msg.contains("model.embed_tokens.weight"), "{msg}");

    // A missing shard, and a shard that lacks a tensor the index puts there.
    let sharded = root.path().join("sharded");
    write_tiny_checkpoint(
        &sharded,
        TinyCheckpoint {
            shards: 2,
            ..spec("qwen2")
        },
    )
    .unwrap();
    let second = sharded.join("model-00002-of-00002.safetensors");
    let kept = fs::read(&second).unwrap();
    fs::remove_file(&second).unwrap();
    let msg = refusal(&sharded);
    assert!(
        msg.contains("model-00002-of-00002.safetensors") && msg.contains("missing"),
        "{msg}"
    );
    fs::write(&second, kept).unwrap();
    let index = sharded.join("model.safetensors.index.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&index).unwrap()).unwrap();
    v["weight_map"]["model.extra.weight"] = "model-00001-of-00002.safetensors".into();
    fs::write(&index, v.to_string()).unwrap();
    let msg = refusal(&sharded);
    assert!(msg.contains("model.extra.weight"), "{msg}");

    // An unsupported family lists the supported ones.
    let other = root.path().join("other");
    write_tiny_checkpoint(&other, spec("llama")).unwrap();
    let cfg = other.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&cfg).unwrap()).unwrap();
    v["model_type"] = "mamba".into();
    fs::write(&cfg, v.to_string()).unwrap();
    let msg = refusal(&other);
    assert!(
        msg.contains("mamba") && msg.contains("qwen3") && msg.contains("gemma3_text"),
        "{msg}"
    );

    // No config.json at all.
    let empty = root.path().join("empty");
    fs::create_dir(&empty).unwrap();
    assert!(refusal(&empty).contains("config.json"));
}

#[test]
fn check_safetensors_lists_tensors_in_data_order() {
    let root = tempfile::tempdir().unwrap();
    let p = root.path().join("t.safetensors");
    raw_safetensors(
        &p,
        r#"{"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[2,2],"data_offsets":[16,24]},"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
        24,
    );
    let entries = meek_engine::hf::check_safetensors(&p).unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let header = 8 + entries[0].start - 8;
    assert_eq!(entries[1].end - entries[1].start, 8);
    assert_eq!(entries[0].start, header);
    assert_eq!(entries[1].elements(), 4);
}

/// Without `add_bos_token` in tokenizer_config.json, BOS comes first when tokenizer.json's post-processor adds it
/// (Llama 3's layout), once, and not again from the post-processor.
#[test]
fn bos_follows_the_post_processor_when_tokenizer_config_is_silent() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("m");
    write_tiny_checkpoint(&dir, spec("llama")).unwrap();
    let (t, _, _) = meek_engine::load_tokenizer(&dir).unwrap();
    assert!(!t.adds_bos());
    let tc = dir.join("tokenizer_config.json");
    let mut v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&tc).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("add_bos_token");
    fs::write(&tc, v.to_string()).unwrap();
    let tj = dir.join("tokenizer.json");
    let mut v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&tj).unwrap()).unwrap();
    v["post_processor"] = serde_json::json!({
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [1], "tokens": ["<|im_start|>"]}}
    });
    fs::write(&tj, v.to_string()).unwrap();
    let (t, _, _) = meek_engine::load_tokenizer(&dir).unwrap();
    assert!(t.adds_bos());
    let ids = t.encode("hello").unwrap();
    assert_eq!(ids.first(), Some(&1));
    assert_eq!(ids.iter().filter(|&&i| i == 1).count(), 1, "{ids:?}");
    let e = Engine::load(&dir, DeviceRequest::Cpu).unwrap();
    assert_eq!(e.synthetic_prompt(5, 1)[0], 1);
}

/// Configurations the models would run wrongly are refused at load, saying why.
#[test]
fn configurations_that_would_run_wrongly_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, serde_json::Value, &str); 5] = [
        (
            "gemma3",
            "rope_scaling",
            serde_json::json!({"rope_type": "linear", "factor": 8.0}),
            "rope_scaling",
        ),
        (
            "gemma3",
            "layer_types",
            serde_json::json!([
                "sliding_attention",
                "full_attention",
                "full_attention",
                "sliding_attention",
                "sliding_attention",
                "full_attention"
            ]),
            "layer_types",
        ),
        (
            "qwen2",
            "use_sliding_window",
            serde_json::json!(true),
            "use_sliding_window",
        ),
        ("llama", "head_dim", serde_json::json!(8), "head_dim"),
        (
            "gemma3",
            "model_type",
            serde_json::json!("gemma3"),
            "multimodal",
        ),
    ];
    for (i, (arch, key, value, expect)) in cases.into_iter().enumerate() {
        let dir = root.path().join(i.to_string());
        write_tiny_checkpoint(&dir, spec(arch)).unwrap();
        let cfg = dir.join("config.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&cfg).unwrap()).unwrap();
        v[key] = value;
        if key == "model_type" {
            v["text_config"] = serde_json::json!({});
            v["architectures"] = serde_json::json!(["Gemma3ForConditionalGeneration"]);
        }
        fs::write(&cfg, v.to_string()).unwrap();
        let msg = refusal(&dir);
        assert!(msg.contains(expect), "{arch} {key}: {msg}");
    }
}
