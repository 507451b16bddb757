//! Tiny Hugging Face checkpoints (safetensors, `config.json`, `tokenizer.json`, `tokenizer_config.json`) of each
//! family, and their conversion to GGUF the way llama.cpp's converter does it, so one model can be run both ways.

use std::path::Path;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use fs_err as fs;

use crate::Rng;
use crate::gguf::{CHAT_TEMPLATE, MERGES, SPECIALS, TinySpec, vocabulary, write_gguf};

/// Shape and format of a tiny Hugging Face checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct TinyCheckpoint {
    /// Family: `llama`, `qwen2`, `qwen3`, `gemma3` or `phi3`.
    pub arch: &'static str,
    /// Dtype of the stored weights (F32, F16 or BF16).
    pub dtype: candle_core::DType,
    /// Number of safetensors files (more than one writes `model.safetensors.index.json`).
    pub shards: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Attention heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Feed-forward size.
    pub ffn: usize,
    /// Size of one head when not `hidden / heads` (qwen3, gemma3).
    pub head_dim: Option<usize>,
    /// `max_position_embeddings`.
    pub context: usize,
    /// Sliding window of gemma3's local layers.
    pub window: usize,
    /// Seed of the weights.
    pub seed: u64,
    /// Whether `tokenizer_config.json` carries a chat template.
    pub chat_template: bool,
}

impl Default for TinyCheckpoint {
    fn default() -> Self {
        Self {
            arch: "llama",
            dtype: candle_core::DType::F32,
            shards: 1,
            layers: 2,
            hidden: 64,
            heads: 4,
            kv_heads: 2,
            ffn: 128,
            head_dim: None,
            context: 256,
            window: 8,
            seed: 1,
            chat_template: true,
        }
    }
}

impl TinyCheckpoint {
    fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden / self.heads)
    }

    /// The GGUF shape with the same sizes, for [`checkpoint_to_gguf`].
    pub fn gguf_spec(&self) -> TinySpec {
        TinySpec {
            layers: self.layers,
            hidden: self.hidden,
            heads: self.heads,
            kv_heads: self.kv_heads,
            ffn: self.ffn,
            context: self.context as u32,
            dtype: GgmlDType::F32,
            seed: self.seed,
            eos_boost: 1.0,
            chat_template: self.chat_template,
            arch: if self.arch == "phi3" {
                "llama"
            } else {
                self.arch
            },
            head_dim: self.head_dim,
            window: self.window as u32,
            ..TinySpec::default()
        }
    }
}

/// The tiny vocabulary as a Hugging Face `tokenizer.json` (byte-level BPE, SmolLM's digit splitting, the
/// special tokens at ids 0, 1, 2): the same ids as the tiny GGUF's tokenizer.
pub fn write_tiny_tokenizer_json(path: &Path) -> Result<(), String> {
    use tokenizers::models::bpe::BPE;
    let vocab: tokenizers::models::bpe::Vocab = vocabulary()
        .into_iter()
        .enumerate()
        .map(|(i, t)| (t, i as u32))
        .collect();
    let merges = MERGES
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| e.to_string())?;
    let mut t = tokenizers::Tokenizer::new(bpe);
    t.with_pre_tokenizer(Some(meek_engine::tokenizer::pre_tokenizer("smollm")?));
    t.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
    let specials: Vec<tokenizers::AddedToken> = SPECIALS
        .iter()
        .map(|s| tokenizers::AddedToken::from(s.to_string(), true))
        .collect();
    t.add_special_tokens(&specials);
    t.save(path, true).map_err(|e| e.to_string())
}

/// Writes a tiny random-weight checkpoint of `spec` into `dir`: `config.json`, `tokenizer.json`,
/// `tokenizer_config.json` and the weights (sharded with an index when `spec.shards > 1`). Norm weights and
/// biases are random, so a forward pass that ignores one shows. Deterministic for a given seed.
pub fn write_tiny_checkpoint(dir: &Path, spec: TinyCheckpoint) -> Result<(), String> {
    use serde_json::json;
    let e = |e: candle_core::Error| e.to_string();
    let dev = Device::Cpu;
    let vocab = vocabulary().len();
    let (h, f, hd) = (spec.hidden, spec.ffn, spec.head_dim());
    let (qd, kvd) = (spec.heads * hd, spec.kv_heads * hd);
    let arch = spec.arch;
    let gemma = arch == "gemma3";
    let mut rng = Rng::new(spec.seed);
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    let mut mat = |rows: usize, cols: usize, scale: f32| -> candle_core::Result<Tensor> {
        let data: Vec<f32> = (0..rows * cols).map(|_| rng.next_f32() * scale).collect();
        Tensor::from_vec(data, (rows, cols), &dev)
    };
    let mut vec_rng = Rng::new(spec.seed ^ 0xB1A5);
    // Gemma stores norm weights as offsets from 1.
    let center = if gemma { 0.0 } else { 1.0 };
    let mut vector = |n: usize, center: f32, spread: f32| -> candle_core::Result<Tensor> {
        let data: Vec<f32> = (0..n)
            .map(|_| center + spread * vec_rng.next_f32())
            .collect();
        Tensor::from_vec(data, n, &dev)
    };
    let s = 1.0 / (h as f32).sqrt();
    tensors.push((
        "model.embed_tokens.weight".into(),
        mat(vocab, h, 1.0).map_err(e)?,
    ));
    tensors.push((
        "model.norm.weight".into(),
        vector(h, center, 0.3).map_err(e)?,
    ));
    if !gemma {
        tensors.push(("lm_head.weight".into(), mat(vocab, h, 1.0).map_err(e)?));
    }
    for l in 0..spec.layers {
        let p = |n: &str| format!("model.layers.{l}.{n}");
        let mut push = |name: String, t: candle_core::Result<Tensor>| -> Result<(), String> {
            tensors.push((name, t.map_err(e)?));
            Ok(())
        };
        push(p("input_layernorm.weight"), vector(h, center, 0.3))?;
        push(p("post_attention_layernorm.weight"), vector(h, center, 0.3))?;
        let (q, k, v) = (mat(qd, h, s), mat(kvd, h, s), mat(kvd, h, s));
        let (gate, up) = (mat(f, h, s), mat(f, h, s));
        if arch == "phi3" {
            let qkv = Tensor::cat(&[q.map_err(e)?, k.map_err(e)?, v.map_err(e)?], 0);
            push(p("self_attn.qkv_proj.weight"), qkv)?;
            let gu = Tensor::cat(&[gate.map_err(e)?, up.map_err(e)?], 0);
            push(p("mlp.gate_up_proj.weight"), gu)?;
        } else {
            push(p("self_attn.q_proj.weight"), q)?;
            push(p("self_attn.k_proj.weight"), k)?;
            push(p("self_attn.v_proj.weight"), v)?;
            push(p("mlp.gate_proj.weight"), gate)?;
            push(p("mlp.up_proj.weight"), up)?;
        }
        push(
            p("self_attn.o_proj.weight"),
            mat(h, qd, 1.0 / (qd as f32).sqrt()),
        )?;
        push(
            p("mlp.down_proj.weight"),
            mat(h, f, 1.0 / (f as f32).sqrt()),
        )?;
        if arch == "qwen2" {
            for (n, d) in [("q_proj", qd), ("k_proj", kvd), ("v_proj", kvd)] {
                push(p(&format!("self_attn.{n}.bias")), vector(d, 0.0, 0.5))?;
            }
        }
        if arch == "qwen3" || gemma {
            push(p("self_attn.q_norm.weight"), vector(hd, center, 0.3))?;
            push(p("self_attn.k_norm.weight"), vector(hd, center, 0.3))?;
        }
        if gemma {
            push(
                p("pre_feedforward_layernorm.weight"),
                vector(h, center, 0.3),
            )?;
            push(
                p("post_feedforward_layernorm.weight"),
                vector(h, center, 0.3),
            )?;
        }
    }
    let tensors: Vec<(String, Tensor)> = tensors
        .into_iter()
        .map(|(n, t)| t.to_dtype(spec.dtype).map(|t| (n, t)))
        .collect::<candle_core::Result<_>>()
        .map_err(e)?;
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let shards = spec.shards.max(1);
    if shards == 1 {
        let map: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
        candle_core::safetensors::save(&map, dir.join("model.safetensors")).map_err(e)?;
    } else {
        let mut weight_map = serde_json::Map::new();
        let per = tensors.len().div_ceil(shards);
        for (i, chunk) in tensors.chunks(per).enumerate() {
            let name = format!("model-{:05}-of-{shards:05}.safetensors", i + 1);
            let map: std::collections::HashMap<String, Tensor> = chunk.iter().cloned().collect();
            for n in map.keys() {
                weight_map.insert(n.clone(), json!(name));
            }
            candle_core::safetensors::save(&map, dir.join(&name)).map_err(e)?;
        }
        let index = json!({"metadata": {}, "weight_map": weight_map});
        fs::write(dir.join("model.safetensors.index.json"), index.to_string())
            .map_err(|e| e.to_string())?;
    }
    let dtype_name = match spec.dtype {
        candle_core::DType::BF16 => "bfloat16",
        candle_core::DType::F16 => "float16",
        _ => "float32",
    };
    let mut config = json!({
        "vocab_size": vocab,
        "hidden_size": h,
        "intermediate_size": f,
        "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads,
        "max_position_embeddings": spec.context,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "tie_word_embeddings": gemma,
        "torch_dtype": dtype_name,
        "hidden_act": "silu",
    });
    let extra = match arch {
        "llama" => json!({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}),
        "qwen2" => json!({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"],
            "use_sliding_window": false}),
        "qwen3" => json!({"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"],
            "head_dim": hd, "attention_bias": false}),
        "phi3" => json!({"model_type": "phi3", "architectures": ["Phi3ForCausalLM"]}),
        "gemma3" => {
            let types: Vec<&str> = (0..spec.layers)
                .map(|i| {
                    if (i + 1) % 6 == 0 {
                        "full_attention"
                    } else {
                        "sliding_attention"
                    }
                })
                .collect();
            json!({"model_type": "gemma3_text", "architectures": ["Gemma3ForCausalLM"],
                "head_dim": hd, "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": hd,
                "rope_theta": 1_000_000.0, "rope_local_base_freq": 10000.0, "sliding_window": spec.window,
                "layer_types": types, "rope_scaling": null, "final_logit_softcapping": null,
                "attn_logit_softcapping": null, "attention_bias": false})
        }
        other => return Err(format!("no tiny checkpoint for `{other}`")),
    };
    if let (Some(c), Some(x)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(x.clone());
    }
    let write = |name: &str, v: &serde_json::Value| {
        fs::write(
            dir.join(name),
            serde_json::to_string_pretty(v).expect("serialises"),
        )
        .map_err(|e| e.to_string())
    };
    write("config.json", &config)?;
    let mut tc =
        json!({"bos_token": SPECIALS[1], "eos_token": SPECIALS[2], "add_bos_token": false});
    if spec.chat_template {
        tc["chat_template"] = json!(CHAT_TEMPLATE);
    }
    write("tokenizer_config.json", &tc)?;
    write_tiny_tokenizer_json(&dir.join("tokenizer.json"))
}

/// Converts a tiny checkpoint written by [`write_tiny_checkpoint`] into an F32 GGUF the way llama.cpp's
/// converter does: GGUF tensor names, llama's q/k rows permuted for interleaved rotary embeddings, Gemma's norm
/// weights stored as `1 + w`, fused phi3 projections split (the result is a llama GGUF).
pub fn checkpoint_to_gguf(dir: &Path, spec: TinyCheckpoint, path: &Path) -> Result<(), String> {
    let e = |e: candle_core::Error| e.to_string();
    let dev = Device::Cpu;
    let mut all = std::collections::HashMap::new();
    for entry in fs::read_dir(dir).map_err(|e| e.to_string())? {
        let p = entry.map_err(|e| e.to_string())?.path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            all.extend(candle_core::safetensors::load(&p, &dev).map_err(e)?);
        }
    }
    let hd = spec.head_dim();
    let (qd, kvd) = (spec.heads * hd, spec.kv_heads * hd);
    let gemma = spec.arch == "gemma3";
    let interleaved = spec.arch == "llama" || spec.arch == "phi3";
    let get = |n: &str| -> Result<Tensor, String> {
        all.get(n)
            .ok_or_else(|| format!("no tensor {n}"))?
            .to_dtype(candle_core::DType::F32)
            .map_err(e)
    };
    let norm =
        |t: Tensor| -> Result<Tensor, String> { if gemma { (t + 1.0).map_err(e) } else { Ok(t) } };
    // llama.cpp's `permute`: rows of each head reordered from halves to interleaved pairs.
    let permute = |t: Tensor, heads: usize| -> Result<Tensor, String> {
        if !interleaved {
            return Ok(t);
        }
        let (rows, cols) = t.dims2().map_err(e)?;
        t.reshape((heads, 2, rows / heads / 2, cols))
            .and_then(|t| t.transpose(1, 2))
            .and_then(|t| t.reshape((rows, cols)))
            .map_err(e)
    };
    let mut out: Vec<(String, Tensor)> = vec![
        (
            "token_embd.weight".into(),
            get("model.embed_tokens.weight")?,
        ),
        (
            "output_norm.weight".into(),
            norm(get("model.norm.weight")?)?,
        ),
        (
            "output.weight".into(),
            if gemma {
                get("model.embed_tokens.weight")?
            } else {
                get("lm_head.weight")?
            },
        ),
    ];
    for l in 0..spec.layers {
        let src = |n: &str| get(&format!("model.layers.{l}.{n}"));
        let dst = |n: &str| format!("blk.{l}.{n}");
        let (q, k, v, gate, up) = if spec.arch == "phi3" {
            let qkv = src("self_attn.qkv_proj.weight")?;
            let gu = src("mlp.gate_up_proj.weight")?;
            (
                qkv.narrow(0, 0, qd).map_err(e)?,
                qkv.narrow(0, qd, kvd).map_err(e)?,
                qkv.narrow(0, qd + kvd, kvd).map_err(e)?,
                gu.narrow(0, 0, spec.ffn).map_err(e)?,
                gu.narrow(0, spec.ffn, spec.ffn).map_err(e)?,
            )
        } else {
            (
                src("self_attn.q_proj.weight")?,
                src("self_attn.k_proj.weight")?,
                src("self_attn.v_proj.weight")?,
                src("mlp.gate_proj.weight")?,
                src("mlp.up_proj.weight")?,
            )
        };
        out.push((
            dst("attn_norm.weight"),
            norm(src("input_layernorm.weight")?)?,
        ));
        out.push((dst("attn_q.weight"), permute(q, spec.heads)?));
        out.push((dst("attn_k.weight"), permute(k, spec.kv_heads)?));
        out.push((dst("attn_v.weight"), v));
        out.push((dst("attn_output.weight"), src("self_attn.o_proj.weight")?));
        out.push((dst("ffn_gate.weight"), gate));
        out.push((dst("ffn_up.weight"), up));
        out.push((dst("ffn_down.weight"), src("mlp.down_proj.weight")?));
        if spec.arch == "qwen2" {
            for n in ["q", "k", "v"] {
                out.push((
                    dst(&format!("attn_{n}.bias")),
                    src(&format!("self_attn.{n}_proj.bias"))?,
                ));
            }
        }
        if spec.arch == "qwen3" || gemma {
            out.push((
                dst("attn_q_norm.weight"),
                norm(src("self_attn.q_norm.weight")?)?,
            ));
            out.push((
                dst("attn_k_norm.weight"),
                norm(src("self_attn.k_norm.weight")?)?,
            ));
        }
        let post_attn = norm(src("post_attention_layernorm.weight")?)?;
        if gemma {
            out.push((dst("post_attention_norm.weight"), post_attn));
            out.push((
                dst("ffn_norm.weight"),
                norm(src("pre_feedforward_layernorm.weight")?)?,
            ));
            out.push((
                dst("post_ffw_norm.weight"),
                norm(src("post_feedforward_layernorm.weight")?)?,
            ));
        } else {
            out.push((dst("ffn_norm.weight"), post_attn));
        }
    }
    let q: Vec<(String, QTensor)> = out
        .into_iter()
        .map(|(n, t)| {
            // A fresh tensor: `quantize` reads the storage from its start, and narrowed views start elsewhere.
            let dims = t.dims().to_vec();
            t.flatten_all()
                .and_then(|f| f.to_vec1::<f32>())
                .and_then(|v| Tensor::from_vec(v, dims, &dev))
                .and_then(|t| QTensor::quantize(&t, GgmlDType::F32))
                .map(|q| (n, q))
        })
        .collect::<candle_core::Result<_>>()
        .map_err(e)?;
    write_gguf(path, spec.gguf_spec(), hd, &q).map_err(e)
}
