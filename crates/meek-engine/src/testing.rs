//! Tiny generated models for tests: a llama-architecture GGUF of a few hundred kilobytes with random weights and
//! a real byte-level BPE vocabulary, chat template and special tokens, so loading, tokenizing and generation run
//! in milliseconds. Deterministic for a given seed.

use std::path::Path;

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};

use crate::tokenizer::bytes_to_unicode;

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
    /// Factor on the end-of-sequence row of the output matrix: above 1 the model ends its answers sooner.
    pub eos_boost: f32,
    /// Whether the file carries a chat template (false: a base model, prompted by completion).
    pub chat_template: bool,
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
        }
    }
}

/// The SmolLM2 chat template, which the tiny model carries.
pub const CHAT_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

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

struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// Writes a tiny llama GGUF to `path`.
pub fn write_tiny_llama(path: &Path, spec: TinySpec) -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let tokens = vocabulary();
    let vocab = tokens.len();
    let head_dim = spec.hidden / spec.heads;
    let mut rng = Rng(spec.seed);
    let mut mat =
        |rows: usize, cols: usize, scale: f32, dtype: GgmlDType| -> candle_core::Result<QTensor> {
            let data: Vec<f32> = (0..rows * cols).map(|_| rng.next_f32() * scale).collect();
            QTensor::quantize(&Tensor::from_vec(data, (rows, cols), &dev)?, dtype)
        };
    let ones = |n: usize| -> candle_core::Result<QTensor> {
        QTensor::quantize(
            &Tensor::ones(n, candle_core::DType::F32, &dev)?,
            GgmlDType::F32,
        )
    };
    let mut tensors: Vec<(String, QTensor)> = vec![
        (
            "token_embd.weight".into(),
            mat(vocab, spec.hidden, 1.0, GgmlDType::Q8_0)?,
        ),
        ("output_norm.weight".into(), ones(spec.hidden)?),
    ];
    let mut out_rng = Rng(spec.seed ^ 0x5EED);
    let out: Vec<f32> = (0..vocab * spec.hidden)
        .map(|i| {
            out_rng.next_f32()
                * if i / spec.hidden == 2 {
                    spec.eos_boost
                } else {
                    1.0
                }
        })
        .collect();
    let out = Tensor::from_vec(out, (vocab, spec.hidden), &dev)?;
    tensors.push((
        "output.weight".into(),
        QTensor::quantize(&out, GgmlDType::Q8_0)?,
    ));
    let s = 1.0 / (spec.hidden as f32).sqrt();
    for l in 0..spec.layers {
        let p = |n: &str| format!("blk.{l}.{n}.weight");
        tensors.push((p("attn_norm"), ones(spec.hidden)?));
        tensors.push((p("attn_q"), mat(spec.hidden, spec.hidden, s, spec.dtype)?));
        tensors.push((
            p("attn_k"),
            mat(spec.kv_heads * head_dim, spec.hidden, s, spec.dtype)?,
        ));
        tensors.push((
            p("attn_v"),
            mat(spec.kv_heads * head_dim, spec.hidden, s, spec.dtype)?,
        ));
        tensors.push((
            p("attn_output"),
            mat(spec.hidden, spec.hidden, s, spec.dtype)?,
        ));
        tensors.push((p("ffn_norm"), ones(spec.hidden)?));
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
    use gguf_file::Value as V;
    let strs = |v: &[String]| V::Array(v.iter().map(|s| V::String(s.clone())).collect());
    let types: Vec<V> = (0..vocab)
        .map(|i| V::I32(if i < SPECIALS.len() { 3 } else { 1 }))
        .collect();
    let merges: Vec<String> = MERGES.iter().map(|(a, b)| format!("{a} {b}")).collect();
    let mut md: Vec<(&str, V)> = vec![
        ("general.architecture", V::String("llama".into())),
        ("general.name", V::String("meekbench tiny llama".into())),
        ("llama.block_count", V::U32(spec.layers as u32)),
        ("llama.context_length", V::U32(spec.context)),
        ("llama.embedding_length", V::U32(spec.hidden as u32)),
        ("llama.feed_forward_length", V::U32(spec.ffn as u32)),
        ("llama.attention.head_count", V::U32(spec.heads as u32)),
        (
            "llama.attention.head_count_kv",
            V::U32(spec.kv_heads as u32),
        ),
        ("llama.rope.dimension_count", V::U32(head_dim as u32)),
        ("llama.rope.freq_base", V::F32(10000.0)),
        ("llama.attention.layer_norm_rms_epsilon", V::F32(1e-5)),
        ("tokenizer.ggml.model", V::String("gpt2".into())),
        ("tokenizer.ggml.pre", V::String("smollm".into())),
        ("tokenizer.ggml.tokens", strs(&tokens)),
        ("tokenizer.ggml.token_type", V::Array(types)),
        ("tokenizer.ggml.merges", strs(&merges)),
        ("tokenizer.ggml.bos_token_id", V::U32(1)),
        ("tokenizer.ggml.eos_token_id", V::U32(2)),
        ("tokenizer.ggml.add_bos_token", V::Bool(false)),
    ];
    if spec.chat_template {
        md.push(("tokenizer.chat_template", V::String(CHAT_TEMPLATE.into())));
    }
    let md_refs: Vec<(&str, &V)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(path)?;
    gguf_file::write(&mut f, &md_refs, &t_refs)
}
