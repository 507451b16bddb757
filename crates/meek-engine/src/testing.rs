//! Tiny generated models for tests: a GGUF of a few hundred kilobytes with random weights and a real byte-level
//! BPE vocabulary, chat template and special tokens, so loading, tokenizing and generation run in milliseconds.
//! The architecture is llama by default; qwen2 (q/k/v biases), qwen3 (q/k norms) and gemma3 (q/k norms, sandwich
//! norms, key length apart from hidden / heads, sliding windows) add their tensors and metadata. Norm weights and
//! biases are random too, so a forward pass that ignores one of them shows. Deterministic for a given seed.

use std::path::Path;

pub use candle_core::DType;
pub use candle_core::quantized::GgmlDType;
use candle_core::quantized::{QTensor, gguf_file};
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
    /// `general.architecture`: `llama`, `qwen2`, `qwen3` or `gemma3`.
    pub arch: &'static str,
    /// Size of one attention head when it is not `hidden / heads` (`{arch}.attention.key_length`).
    pub head_dim: Option<usize>,
    /// Sliding window of gemma3's local layers.
    pub window: u32,
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

/// Writes a tiny GGUF of `spec.arch` (llama unless set) to `path`.
pub fn write_tiny_llama(path: &Path, spec: TinySpec) -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let tokens = vocabulary();
    let vocab = tokens.len();
    let head_dim = spec.head_dim.unwrap_or(spec.hidden / spec.heads);
    let (qd, kvd) = (spec.heads * head_dim, spec.kv_heads * head_dim);
    let arch = spec.arch;
    let mut rng = Rng(spec.seed);
    let mut mat =
        |rows: usize, cols: usize, scale: f32, dtype: GgmlDType| -> candle_core::Result<QTensor> {
            let data: Vec<f32> = (0..rows * cols).map(|_| rng.next_f32() * scale).collect();
            QTensor::quantize(&Tensor::from_vec(data, (rows, cols), &dev)?, dtype)
        };
    let mut vec_rng = Rng(spec.seed ^ 0xB1A5);
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
        if arch == "gemma3" {
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
    let tokens = vocabulary();
    let vocab = tokens.len();
    let arch = spec.arch;
    use gguf_file::Value as V;
    let strs = |v: &[String]| V::Array(v.iter().map(|s| V::String(s.clone())).collect());
    let types: Vec<V> = (0..vocab)
        .map(|i| V::I32(if i < SPECIALS.len() { 3 } else { 1 }))
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
    if arch == "gemma3" {
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
        md.push((
            "tokenizer.chat_template".into(),
            V::String(CHAT_TEMPLATE.into()),
        ));
    }
    let md_refs: Vec<(&str, &V)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(path)?;
    gguf_file::write(&mut f, &md_refs, &t_refs)
}

/// Rewrites the GGUF at `src` to `dst` with `edit` applied to its metadata and tensors (sorted by name), for tests
/// of crafted files: a key changed, added twice or removed, a tensor replaced.
pub fn rewrite_gguf(
    src: &Path,
    dst: &Path,
    edit: impl FnOnce(&mut Vec<(String, gguf_file::Value)>, &mut Vec<(String, QTensor)>),
) -> candle_core::Result<()> {
    let mut f = std::fs::File::open(src)?;
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
    let mut out = std::fs::File::create(dst)?;
    gguf_file::write(&mut out, &md_refs, &t_refs)
}

/// A float64 Gemma 3 forward pass written from the model's definition (Hugging Face's `Gemma3ForCausalLM`, with
/// the GGUF converter's folded norms), on dequantized weights: the independent check of the own gemma3 path
/// (candle-transformers 0.11.1's quantized Gemma 3 cannot serve: it applies SiLU where Gemma uses GELU).
pub fn gemma3_reference(path: &Path, tokens: &[u32]) -> Vec<f32> {
    let mut f = std::fs::File::open(path).unwrap();
    let c = gguf_file::Content::read(&mut f).unwrap();
    let u = |k: &str| c.metadata[k].to_u32().unwrap() as usize;
    let (hidden, heads, kvh, hd, ffn, layers, window) = (
        u("gemma3.embedding_length"),
        u("gemma3.attention.head_count"),
        u("gemma3.attention.head_count_kv"),
        u("gemma3.attention.key_length"),
        u("gemma3.feed_forward_length"),
        u("gemma3.block_count"),
        u("gemma3.attention.sliding_window"),
    );
    let eps = f64::from(
        c.metadata["gemma3.attention.layer_norm_rms_epsilon"]
            .to_f32()
            .unwrap(),
    );
    let mut w = |name: &str| -> Vec<f64> {
        c.tensor(&mut f, name, &Device::Cpu)
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect()
    };
    let matvec = |m: &[f64], x: &[f64]| -> Vec<f64> {
        m.chunks_exact(x.len())
            .map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum())
            .collect()
    };
    let rms = |x: &[f64], g: &[f64]| -> Vec<f64> {
        let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
        let s = 1.0 / (ms + eps).sqrt();
        x.iter().zip(g).map(|(v, g)| v * s * g).collect()
    };
    let rope = |x: &mut [f64], pos: usize, base: f64| {
        let half = hd / 2;
        for i in 0..half {
            let theta = pos as f64 / base.powf(2.0 * i as f64 / hd as f64);
            let (a, b) = (x[i], x[i + half]);
            x[i] = a * theta.cos() - b * theta.sin();
            x[i + half] = a * theta.sin() + b * theta.cos();
        }
    };
    let gelu = |x: f64| {
        0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
    };
    let embed = w("token_embd.weight");
    let n = tokens.len();
    let mut xs: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&t| {
            embed[t as usize * hidden..(t as usize + 1) * hidden]
                .iter()
                .map(|v| v * (hidden as f64).sqrt())
                .collect()
        })
        .collect();
    for l in 0..layers {
        let p = |s: &str| format!("blk.{l}.{s}.weight");
        let (wq, wk, wv, wo) = (
            w(&p("attn_q")),
            w(&p("attn_k")),
            w(&p("attn_v")),
            w(&p("attn_output")),
        );
        let (qn, kn) = (w(&p("attn_q_norm")), w(&p("attn_k_norm")));
        let (an, pan, fnm, pfn) = (
            w(&p("attn_norm")),
            w(&p("post_attention_norm")),
            w(&p("ffn_norm")),
            w(&p("post_ffw_norm")),
        );
        let (wg, wu, wd) = (w(&p("ffn_gate")), w(&p("ffn_up")), w(&p("ffn_down")));
        let local = (l + 1) % 6 != 0;
        let base = if local { 10_000.0 } else { 1_000_000.0 };
        let mut qs = Vec::new();
        let mut ks = Vec::new();
        let mut vs = Vec::new();
        for (t, x) in xs.iter().enumerate() {
            let xn = rms(x, &an);
            let mut q = matvec(&wq, &xn);
            let mut k = matvec(&wk, &xn);
            for h in q.chunks_exact_mut(hd) {
                let normed = rms(h, &qn);
                h.copy_from_slice(&normed);
                rope(h, t, base);
            }
            for h in k.chunks_exact_mut(hd) {
                let normed = rms(h, &kn);
                h.copy_from_slice(&normed);
                rope(h, t, base);
            }
            qs.push(q);
            ks.push(k);
            vs.push(matvec(&wv, &xn));
        }
        for t in 0..n {
            let mut att = vec![0f64; heads * hd];
            for h in 0..heads {
                let g = h / (heads / kvh);
                let visible: Vec<usize> = (0..=t).filter(|&j| !local || t - j < window).collect();
                let scores: Vec<f64> = visible
                    .iter()
                    .map(|&j| {
                        (0..hd)
                            .map(|d| qs[t][h * hd + d] * ks[j][g * hd + d])
                            .sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = e.iter().sum();
                for (&j, e) in visible.iter().zip(&e) {
                    for d in 0..hd {
                        att[h * hd + d] += e / total * vs[j][g * hd + d];
                    }
                }
            }
            let o = rms(&matvec(&wo, &att), &pan);
            xs[t].iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            let xn = rms(&xs[t], &fnm);
            let hmid: Vec<f64> = matvec(&wg, &xn)
                .into_iter()
                .zip(matvec(&wu, &xn))
                .map(|(g, u)| gelu(g) * u)
                .collect();
            let d = rms(&matvec(&wd, &hmid), &pfn);
            xs[t].iter_mut().zip(&d).for_each(|(a, b)| *a += b);
        }
        let _ = ffn;
    }
    let last = rms(&xs[n - 1], &w("output_norm.weight"));
    matvec(&w("output.weight"), &last)
        .into_iter()
        .map(|v| v as f32)
        .collect()
}

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
    t.with_pre_tokenizer(Some(crate::tokenizer::pre_tokenizer("smollm")?));
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
    let mut rng = Rng(spec.seed);
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    let mut mat = |rows: usize, cols: usize, scale: f32| -> candle_core::Result<Tensor> {
        let data: Vec<f32> = (0..rows * cols).map(|_| rng.next_f32() * scale).collect();
        Tensor::from_vec(data, (rows, cols), &dev)
    };
    let mut vec_rng = Rng(spec.seed ^ 0xB1A5);
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
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
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
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string())
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
        std::fs::write(
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
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
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
