//! Tiny GGUF models: the vocabulary and chat template they carry, the writer of random-weight files of each
//! family, and the rewriter that crafts broken files from a good one.

use std::path::Path;

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use fs_err as fs;
use meek_engine::tokenizer::bytes_to_unicode;

use crate::Rng;

/// Shape of the tiny model.
#[derive(Debug, Clone, Copy)]
pub struct TinySpec {
    /// Transformer blocks.
    pub layers: usize,
    /// Hidden size (a multiple of 32).
    pub hidden: usize,
    /// Attention heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Feed-forward size (a multiple of 32).
    pub ffn: usize,
    /// Context length written into the metadata.
    pub context: u32,
    /// Weight format of the matrices.
    pub dtype: GgmlDType,
    /// Seed of the weights.
    pub seed: u64,
    /// Factor on the end-of-sequence row of the output matrix: above 1 the model ends its answers sooner (not for
    /// gemma2, whose output matrix is the embedding).
    pub eos_boost: f32,
    /// Whether the file carries a chat template (false: a base model, prompted by completion).
    pub chat_template: bool,
    /// `general.architecture`: `llama`, `qwen2`, `qwen3`, `gemma2`, `gemma3` or `smollm3`.
    pub arch: &'static str,
    /// Size of one attention head when it is not `hidden / heads` (`{arch}.attention.key_length`).
    pub head_dim: Option<usize>,
    /// Sliding window of gemma2's and gemma3's local layers.
    pub window: u32,
    /// A reasoning model: the vocabulary gains `<think>` and `</think>` (user-defined tokens, as in Qwen3's and
    /// DeepSeek-R1's files) and the chat template is [`THINKING_TEMPLATE`].
    pub thinking: bool,
    /// Factor on the `</think>` row of the output matrix (with `thinking`): above 1 the model closes its thought
    /// sooner.
    pub think_boost: f32,
}

impl Default for TinySpec {
    fn default() -> Self {
        Self {
            layers: 2,
            hidden: 64,
            heads: 4,
            kv_heads: 2,
            ffn: 128,
            context: 256,
            dtype: GgmlDType::Q4_1,
            seed: 1,
            eos_boost: 1.0,
            chat_template: true,
            arch: "llama",
            head_dim: None,
            window: 8,
            thinking: false,
            think_boost: 1.0,
        }
    }
}

/// The SmolLM2 chat template, which the tiny model carries.
pub const CHAT_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// The chat template of tiny reasoning models: SmolLM2's turns, and a generation prompt that opens a thinking block
/// (`<think>\n`, as DeepSeek-R1's template does) unless `enable_thinking` is false, when it writes an empty closed one
/// (as Qwen3's does).
pub const THINKING_TEMPLATE: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\n\n</think>\n\n' }}{% else %}{{ '<think>\n' }}{% endif %}{% endif %}";

/// The thinking tags of tiny reasoning models, after the merges.
pub const THINK_TOKENS: [&str; 2] = ["<think>", "</think>"];

/// Special tokens of the tiny vocabulary, at ids 0, 1, 2.
pub const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// Merges of the tiny vocabulary, in rank order (byte-level forms: `Ġ` is a space).
pub const MERGES: [(&str, &str); 6] = [
    ("h", "e"),
    ("l", "l"),
    ("Ġ", "t"),
    ("Ġt", "he"),
    ("he", "ll"),
    ("hell", "o"),
];

/// The tiny vocabulary: specials, the 256 byte symbols, then one token per merge.
pub fn vocabulary() -> Vec<String> {
    let mut tokens: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
    tokens.extend(bytes_to_unicode().iter().map(|c| c.to_string()));
    tokens.extend(MERGES.iter().map(|(a, b)| format!("{a}{b}")));
    tokens
}

/// The vocabulary of `spec`: [`vocabulary`], then [`THINK_TOKENS`] for reasoning models.
pub fn vocabulary_of(spec: &TinySpec) -> Vec<String> {
    let mut tokens = vocabulary();
    if spec.thinking {
        tokens.extend(THINK_TOKENS.iter().map(|s| s.to_string()));
    }
    tokens
}

/// Writes a tiny GGUF of `spec.arch` (llama unless set) to `path`.
pub fn write_tiny_llama(path: &Path, spec: TinySpec) -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let tokens = vocabulary_of(&spec);
    let close = tokens.len() - 1;
    let vocab = tokens.len();
    let head_dim = spec.head_dim.unwrap_or(spec.hidden / spec.heads);
    let (qd, kvd) = (spec.heads * head_dim, spec.kv_heads * head_dim);
    let arch = spec.arch;
    let mut rng = Rng::new(spec.seed);
    let mut mat =
        |rows: usize, cols: usize, scale: f32, dtype: GgmlDType| -> candle_core::Result<QTensor> {
            let data: Vec<f32> = (0..rows * cols).map(|_| rng.next_f32() * scale).collect();
            QTensor::quantize(&Tensor::from_vec(data, (rows, cols), &dev)?, dtype)
        };
    let mut vec_rng = Rng::new(spec.seed ^ 0xB1A5);
    // Norm weights near 1 (exactly 1 for llama, as before), biases near 0.
    let mut vector = |n: usize, center: f32, spread: f32| -> candle_core::Result<QTensor> {
        let data: Vec<f32> = (0..n)
            .map(|_| center + spread * vec_rng.next_f32())
            .collect();
        QTensor::quantize(&Tensor::from_vec(data, n, &dev)?, GgmlDType::F32)
    };
    let spread = if arch == "llama" { 0.0 } else { 0.3 };
    let mut tensors: Vec<(String, QTensor)> = vec![
        (
            "token_embd.weight".into(),
            mat(vocab, spec.hidden, 1.0, GgmlDType::Q8_0)?,
        ),
        (
            "output_norm.weight".into(),
            vector(spec.hidden, 1.0, spread)?,
        ),
    ];
    let mut out_rng = Rng::new(spec.seed ^ 0x5EED);
    let out: Vec<f32> = (0..vocab * spec.hidden)
        .map(|i| {
            out_rng.next_f32()
                * if i / spec.hidden == 2 {
                    spec.eos_boost
                } else if spec.thinking && i / spec.hidden == close {
                    spec.think_boost
                } else {
                    1.0
                }
        })
        .collect();
    let out = Tensor::from_vec(out, (vocab, spec.hidden), &dev)?;
    // Gemma 2 files are always tied (llama.cpp refuses one with an output matrix of its own).
    if arch != "gemma2" {
        tensors.push((
            "output.weight".into(),
            QTensor::quantize(&out, GgmlDType::Q8_0)?,
        ));
    }
    let s = 1.0 / (spec.hidden as f32).sqrt();
    for l in 0..spec.layers {
        let p = |n: &str| format!("blk.{l}.{n}.weight");
        tensors.push((p("attn_norm"), vector(spec.hidden, 1.0, spread)?));
        tensors.push((p("attn_q"), mat(qd, spec.hidden, s, spec.dtype)?));
        tensors.push((p("attn_k"), mat(kvd, spec.hidden, s, spec.dtype)?));
        tensors.push((p("attn_v"), mat(kvd, spec.hidden, s, spec.dtype)?));
        if arch == "qwen2" {
            for (n, d) in [("attn_q", qd), ("attn_k", kvd), ("attn_v", kvd)] {
                tensors.push((format!("blk.{l}.{n}.bias"), vector(d, 0.0, 0.5)?));
            }
        }
        if arch == "qwen3" || arch == "gemma3" {
            tensors.push((p("attn_q_norm"), vector(head_dim, 1.0, spread)?));
            tensors.push((p("attn_k_norm"), vector(head_dim, 1.0, spread)?));
        }
        tensors.push((
            p("attn_output"),
            mat(spec.hidden, qd, 1.0 / (qd as f32).sqrt(), spec.dtype)?,
        ));
        if arch == "gemma3" || arch == "gemma2" {
            tensors.push((p("post_attention_norm"), vector(spec.hidden, 1.0, spread)?));
            tensors.push((p("post_ffw_norm"), vector(spec.hidden, 1.0, spread)?));
        }
        tensors.push((p("ffn_norm"), vector(spec.hidden, 1.0, spread)?));
        tensors.push((p("ffn_gate"), mat(spec.ffn, spec.hidden, s, spec.dtype)?));
        tensors.push((p("ffn_up"), mat(spec.ffn, spec.hidden, s, spec.dtype)?));
        tensors.push((
            p("ffn_down"),
            mat(
                spec.hidden,
                spec.ffn,
                1.0 / (spec.ffn as f32).sqrt(),
                spec.dtype,
            )?,
        ));
    }
    write_gguf(path, spec, head_dim, &tensors)
}

/// Writes a GGUF of `spec`'s shape and the tiny vocabulary with the given tensors (GGUF names).
pub fn write_gguf(
    path: &Path,
    spec: TinySpec,
    head_dim: usize,
    tensors: &[(String, QTensor)],
) -> candle_core::Result<()> {
    let tokens = vocabulary_of(&spec);
    let vocab = tokens.len();
    let arch = spec.arch;
    use gguf_file::Value as V;
    let strs = |v: &[String]| V::Array(v.iter().map(|s| V::String(s.clone())).collect());
    let types: Vec<V> = (0..vocab)
        .map(|i| {
            V::I32(if i < SPECIALS.len() {
                3
            } else if spec.thinking && i >= vocab - THINK_TOKENS.len() {
                4
            } else {
                1
            })
        })
        .collect();
    let merges: Vec<String> = MERGES.iter().map(|(a, b)| format!("{a} {b}")).collect();
    let key = |k: &str| format!("{arch}.{k}");
    let mut md: Vec<(String, V)> = vec![
        ("general.architecture".into(), V::String(arch.into())),
        (
            "general.name".into(),
            V::String(format!("meekbench tiny {arch}")),
        ),
        (key("block_count"), V::U32(spec.layers as u32)),
        (key("context_length"), V::U32(spec.context)),
        (key("embedding_length"), V::U32(spec.hidden as u32)),
        (key("feed_forward_length"), V::U32(spec.ffn as u32)),
        (key("attention.head_count"), V::U32(spec.heads as u32)),
        (key("attention.head_count_kv"), V::U32(spec.kv_heads as u32)),
        (key("rope.dimension_count"), V::U32(head_dim as u32)),
        (
            key("rope.freq_base"),
            V::F32(if arch == "gemma3" {
                1_000_000.0
            } else {
                10000.0
            }),
        ),
        (key("attention.layer_norm_rms_epsilon"), V::F32(1e-5)),
    ];
    if spec.head_dim.is_some() || arch == "gemma3" {
        md.push((key("attention.key_length"), V::U32(head_dim as u32)));
        md.push((key("attention.value_length"), V::U32(head_dim as u32)));
    }
    if arch == "gemma3" || arch == "gemma2" {
        md.push((key("attention.sliding_window"), V::U32(spec.window)));
    }
    let tokenizer: Vec<(&str, V)> = vec![
        ("tokenizer.ggml.model", V::String("gpt2".into())),
        ("tokenizer.ggml.pre", V::String("smollm".into())),
        ("tokenizer.ggml.tokens", strs(&tokens)),
        ("tokenizer.ggml.token_type", V::Array(types)),
        ("tokenizer.ggml.merges", strs(&merges)),
        ("tokenizer.ggml.bos_token_id", V::U32(1)),
        ("tokenizer.ggml.eos_token_id", V::U32(2)),
        ("tokenizer.ggml.add_bos_token", V::Bool(false)),
    ];
    md.extend(tokenizer.into_iter().map(|(k, v)| (k.to_string(), v)));
    if spec.chat_template {
        let template = if spec.thinking {
            THINKING_TEMPLATE
        } else {
            CHAT_TEMPLATE
        };
        md.push(("tokenizer.chat_template".into(), V::String(template.into())));
    }
    let md_refs: Vec<(&str, &V)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = fs::File::create(path)?;
    gguf_file::write(&mut f, &md_refs, &t_refs)
}

/// Rewrites the GGUF at `src` to `dst` with `edit` applied to its metadata and tensors (sorted by name), for tests
/// of crafted files: a key changed, added twice or removed, a tensor replaced.
pub fn rewrite_gguf(
    src: &Path,
    dst: &Path,
    edit: impl FnOnce(&mut Vec<(String, gguf_file::Value)>, &mut Vec<(String, QTensor)>),
) -> candle_core::Result<()> {
    let mut f = fs::File::open(src)?;
    let content = gguf_file::Content::read(&mut f)?;
    let mut md: Vec<(String, gguf_file::Value)> = content.metadata.clone().into_iter().collect();
    md.sort_by(|a, b| a.0.cmp(&b.0));
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors = Vec::new();
    for name in names {
        tensors.push((name.clone(), content.tensor(&mut f, name, &Device::Cpu)?));
    }
    edit(&mut md, &mut tensors);
    let md_refs: Vec<(&str, &gguf_file::Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out = fs::File::create(dst)?;
    gguf_file::write(&mut out, &md_refs, &t_refs)
}
