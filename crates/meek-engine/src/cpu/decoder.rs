//! Decoder-only transformer forward passes on plain buffers: llama (SmolLM2, Llama 3.x), qwen2, qwen3, gemma2,
//! gemma3 and smollm3.
//!
//! The families differ in a few switches, read from the GGUF metadata (`{arch}.*` keys):
//!
//! | | rotary pairs | q/k norm | q/k/v bias | extra norms | activation | embedding scale | sliding window |
//! |---|---|---|---|---|---|---|---|
//! | llama | interleaved `(2i, 2i+1)` | | | | SiLU | | |
//! | qwen2 | halves `(i, i+d/2)` | | yes | | SiLU | | |
//! | qwen3 | halves | yes | | | SiLU | | |
//! | gemma2 | halves | | | after attention and FFN | GELU (tanh) | `sqrt(hidden)` | even layers |
//! | gemma3 | halves | yes | | after attention and FFN | GELU (tanh) | `sqrt(hidden)` | 5 of 6 layers |
//! | smollm3 | interleaved, none on every 4th layer | | | | SiLU | | |
//! | phi3 | halves | | | | SiLU | | |
//!
//! Phi-3 and Phi-3.5 store q/k/v as one matrix (`attn_qkv`) and gate/up as one (`ffn_up`, gate first), split here
//! by rows at load; their LongRoPE factors divide the frequencies as llama3's do (`rope_factors_short.weight`, the
//! factors llama.cpp uses up to the original context; the positions a run may use stop there when the file also
//! has long factors), and `rope.scaling.attn_factor` multiplies the rotary table, so the attention scores by its
//! square. Their `attention.sliding_window`, which llama.cpp ignores, bounds the positions instead, so that both
//! agree with the model as trained.
//!
//! Gemma 2 also soft-caps the attention scores and the output logits (`cap * tanh(x / cap)`; 50 and 30 where the
//! file leaves them out, as llama.cpp), its window defaults to 4096 and its local layers rotate with the global base.
//!
//! Layout follows llama.cpp's conventions: matrices are `out x in`; the output matrix falls back to the token
//! embedding when absent (tied weights); gemma3's local layers use rotary base 10000 and see the last
//! `sliding_window` positions (a key at distance `>= window` is masked, as in llama.cpp and Hugging Face), its
//! global layers (every sixth) see everything with the file's rotary base. Norm weights are used as stored (the GGUF
//! converter already folded Gemma's `1 + w`). Generation computes the last position's logits only; a text's perplexity
//! those of a range of positions ([`Decoder::forward_rows`]).
//!
//! Rotary variants, as llama.cpp applies them: llama3 frequency factors (`rope_freqs.weight`, Llama 3.1 and 3.2)
//! divide each pair's frequency; linear scaling (`rope.scaling.type = linear`, factor `f`: Gemma 3 4B and up)
//! divides positions by `f` on the global layers. Everything else a file may ask of the rotary embedding is refused
//! by [`crate::gguf::coverage`] before this loads.

use std::io::{Read, Seek, SeekFrom};

use candle_core::Device;
use candle_core::quantized::gguf_file::Content;

use meek_kernels::{KernelPath, QActs, QMat, Shared, matmul, matmul_many};

use super::{EnginePool, format_of, parallel};

/// SmolLM3: every this-many-th layer (counting from 1) has no rotary embedding.
pub const SMOLLM3_NO_ROPE_STEP: usize = 4;
/// Gemma 2's window, soft-caps and their defaults where the file leaves them out (llama.cpp's).
pub const GEMMA2_WINDOW: usize = 4096;
/// Gemma 2's attention soft-cap where the file leaves it out.
pub const GEMMA2_ATTN_SOFTCAP: f32 = 50.0;
/// Gemma 2's final-logit soft-cap where the file leaves it out.
pub const GEMMA2_FINAL_SOFTCAP: f32 = 30.0;

/// The llama3 rotary frequency factors' tensor.
pub const ROPE_FREQS: &str = "rope_freqs.weight";
/// Phi-3's LongRoPE factors up to the original context, used as llama3's.
pub const ROPE_FACTORS_SHORT: &str = "rope_factors_short.weight";
/// Phi-3's LongRoPE factors beyond the original context (not used: the positions stop there).
pub const ROPE_FACTORS_LONG: &str = "rope_factors_long.weight";

/// Architectures this path runs (`general.architecture`).
pub const ARCHITECTURES: &[&str] = &[
    "llama", "qwen2", "qwen3", "gemma2", "gemma3", "smollm3", "phi3",
];

/// Model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama, SmolLM2, Mistral-style.
    Llama,
    /// Qwen2 and Qwen2.5 (biases on q, k, v).
    Qwen2,
    /// Qwen3 (q/k norms).
    Qwen3,
    /// Gemma 2 (sandwich norms, GELU, sliding windows on every other layer, soft-capped attention and logits).
    Gemma2,
    /// Gemma 3 (q/k norms, sandwich norms, GELU, sliding windows).
    Gemma3,
    /// SmolLM3 (llama without rotary embedding on every fourth layer).
    Smollm3,
    /// Phi-3 and Phi-3.5 (fused q/k/v and gate/up matrices, LongRoPE factors).
    Phi3,
}

impl Arch {
    /// The family of a `general.architecture` value.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "llama" => Self::Llama,
            "qwen2" => Self::Qwen2,
            "qwen3" => Self::Qwen3,
            "gemma2" => Self::Gemma2,
            "gemma3" => Self::Gemma3,
            "smollm3" => Self::Smollm3,
            "phi3" => Self::Phi3,
            _ => return None,
        })
    }

    /// The `general.architecture` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
            Self::Gemma2 => "gemma2",
            Self::Gemma3 => "gemma3",
            Self::Smollm3 => "smollm3",
            Self::Phi3 => "phi3",
        }
    }

    /// Rotary pairs as halves `(i, i + d/2)` (NeoX style) rather than interleaved.
    pub fn neox(self) -> bool {
        !matches!(self, Self::Llama | Self::Smollm3)
    }

    /// Gemma's computation: the embedding scaled by `sqrt(hidden)`, norms after attention and feed-forward too,
    /// GELU (tanh).
    pub fn gemma(self) -> bool {
        matches!(self, Self::Gemma2 | Self::Gemma3)
    }

    /// RMS norms on each query and key head.
    pub fn qk_norm(self) -> bool {
        matches!(self, Self::Qwen3 | Self::Gemma3)
    }

    /// The tensor of rotary frequency factors this family reads, when a file has it.
    pub fn rope_factors_tensor(self) -> &'static str {
        if self == Self::Phi3 {
            ROPE_FACTORS_SHORT
        } else {
            ROPE_FREQS
        }
    }
}

/// Hyper-parameters from the GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Family.
    pub arch: Arch,
    /// Transformer blocks.
    pub layers: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Size of one head.
    pub head_dim: usize,
    /// Feed-forward size.
    pub ffn: usize,
    /// RMS-norm epsilon.
    pub eps: f32,
    /// Rotary base (of the global layers).
    pub rope_base: f32,
    /// Rotary base of the sliding-window layers.
    pub rope_base_local: f32,
    /// Linear rotary scaling of the global layers: positions are multiplied by it (llama.cpp's `freq_scale`,
    /// `1 / rope.scaling.factor`; 1 when the file scales nothing). Gemma 3's local layers never scale.
    pub rope_scale: f32,
    /// Attention scale (`1 / sqrt(head_dim)`, Gemma 3 27B's `1 / sqrt(hidden / heads)`).
    pub attn_scale: f32,
    /// Sliding window of the local layers, when the family has them.
    pub window: Option<usize>,
    /// Attention scores soft-capped as `cap * tanh(score / cap)` before the softmax (Gemma 2).
    pub attn_softcap: Option<f32>,
    /// Output logits soft-capped likewise (Gemma 2).
    pub final_softcap: Option<f32>,
    /// Vocabulary size (rows of the output matrix).
    pub vocab: usize,
    /// Positions a run may use below the trained context, and why (Phi-3: its original context where the file
    /// has long LongRoPE factors, its sliding window).
    pub position_limit: Option<(usize, &'static str)>,
}

impl Config {
    /// The sliding window of layer `l`, `None` for a layer that sees every position.
    pub fn layer_window(&self, l: usize) -> Option<usize> {
        match (self.arch, self.window) {
            (Arch::Gemma3, Some(w))
                if !(l as u64 + 1).is_multiple_of(crate::gguf::coverage::GEMMA3_PATTERN) =>
            {
                Some(w)
            }
            // llama.cpp's pattern of 2: the even layers are local.
            (Arch::Gemma2, Some(w)) if l.is_multiple_of(2) => Some(w),
            _ => None,
        }
    }

    /// Whether layer `l` rotates its queries and keys (SmolLM3 leaves every fourth layer without, as llama.cpp's
    /// `n_no_rope_layer_step = 4`).
    pub fn layer_rotary(&self, l: usize) -> bool {
        !(self.arch == Arch::Smollm3 && (l + 1).is_multiple_of(SMOLLM3_NO_ROPE_STEP))
    }

    /// The hyper-parameters of a GGUF file of a supported family, from its metadata (the vocabulary from the
    /// token embedding's rows); shared by every decoder so that they read a file alike.
    pub fn read(content: &Content) -> Result<Self, String> {
        let arch = arch_of(content)?;
        let a = arch.name();
        let key = |k: &str| format!("{a}.{k}");
        let hidden = md_u(content, &key("embedding_length"))?;
        let heads = md_u(content, &key("attention.head_count"))?;
        if heads == 0 {
            return Err(format!("`{a}.attention.head_count` is 0"));
        }
        let vocab = content
            .tensor_infos
            .get("token_embd.weight")
            .ok_or("tensor `token_embd.weight` is missing")?
            .shape
            .dims2()
            .map_err(|e| format!("tensor `token_embd.weight`: {e}"))?
            .0;
        let rope_base = md_f(content, &key("rope.freq_base")).unwrap_or(10_000.0);
        let cfg = Self {
            arch,
            layers: md_u(content, &key("block_count"))?,
            hidden,
            heads,
            kv_heads: md_u(content, &key("attention.head_count_kv")).unwrap_or(heads),
            head_dim: md_u(content, &key("attention.key_length")).unwrap_or(hidden / heads),
            ffn: md_u(content, &key("feed_forward_length"))?,
            eps: md_f(content, &key("attention.layer_norm_rms_epsilon")).unwrap_or(1e-5),
            rope_base,
            // Gemma 3's local layers rotate with base 10,000 unless the file says; Gemma 2's with the global base.
            rope_base_local: md_f(content, &key("rope.freq_base_swa")).unwrap_or(
                if arch == Arch::Gemma2 {
                    rope_base
                } else {
                    10_000.0
                },
            ),
            rope_scale: crate::gguf::coverage::rope_scale(content, a),
            attn_scale: 0.0,
            window: match arch {
                Arch::Gemma3 => md_u(content, &key("attention.sliding_window")).ok(),
                Arch::Gemma2 => {
                    Some(md_u(content, &key("attention.sliding_window")).unwrap_or(GEMMA2_WINDOW))
                }
                _ => None,
            },
            attn_softcap: (arch == Arch::Gemma2).then(|| {
                md_f(content, &key("attn_logit_softcapping")).unwrap_or(GEMMA2_ATTN_SOFTCAP)
            }),
            final_softcap: (arch == Arch::Gemma2).then(|| {
                md_f(content, &key("final_logit_softcapping")).unwrap_or(GEMMA2_FINAL_SOFTCAP)
            }),
            vocab,
            position_limit: None,
        };
        if cfg.kv_heads == 0
            || !cfg.heads.is_multiple_of(cfg.kv_heads)
            || !cfg.head_dim.is_multiple_of(2)
        {
            return Err(format!(
                "{} query heads, {} key/value heads and a head size of {} do not make attention heads (query \
                 heads must be a multiple of key/value heads, the head size even)",
                cfg.heads, cfg.kv_heads, cfg.head_dim
            ));
        }
        for (what, cap) in [("attn", cfg.attn_softcap), ("final", cfg.final_softcap)] {
            if cap.is_some_and(|c| !(c.is_finite() && c > 0.0)) {
                return Err(format!(
                    "`{a}.{what}_logit_softcapping` must be a positive number"
                ));
            }
        }
        // Gemma 3 27B (62 layers) and Gemma 2 27B (46) scale queries by the hidden size per head, as llama.cpp and
        // gemma_pytorch do.
        let mut attn_scale = if (arch == Arch::Gemma3 && cfg.layers == 62)
            || (arch == Arch::Gemma2 && cfg.layers == 46)
        {
            1.0 / ((cfg.hidden / cfg.heads) as f32).sqrt()
        } else {
            1.0 / (cfg.head_dim as f32).sqrt()
        };
        let mut position_limit = None;
        if arch == Arch::Phi3 {
            // llama.cpp multiplies cos and sin by the factor, so queries and keys each by it.
            let factor = md_f(content, &key("rope.scaling.attn_factor")).unwrap_or(1.0);
            if !(factor.is_finite() && factor > 0.0) {
                return Err(format!(
                    "`{a}.rope.scaling.attn_factor` must be a positive number"
                ));
            }
            attn_scale *= factor * factor;
            let window = md_u(content, &key("attention.sliding_window"))
                .ok()
                .filter(|&w| w > 0)
                .map(|w| (w, "its sliding window (`phi3.attention.sliding_window`)"));
            let original = if content.tensor_infos.contains_key(ROPE_FACTORS_LONG) {
                let o = md_u(content, &key("rope.scaling.original_context_length")).map_err(|_| {
                    format!(
                        "`{ROPE_FACTORS_LONG}` needs `{a}.rope.scaling.original_context_length` (where the long \
                         factors begin)"
                    )
                })?;
                Some((
                    o,
                    "its original context, beyond which it uses LongRoPE long factors that meekbench does not \
                     implement",
                ))
            } else {
                None
            };
            position_limit = [window, original]
                .into_iter()
                .flatten()
                .min_by_key(|(n, _)| *n)
                .filter(|(n, _)| *n > 0);
        }
        Ok(Self {
            attn_scale,
            position_limit,
            ..cfg
        })
    }
}

/// The llama3 rotary frequency factors of `rope_freqs.weight`, checked: half the head size of finite positive
/// divisors.
pub fn check_rope_factors(f: Vec<f32>, head_dim: usize, name: &str) -> Result<Vec<f32>, String> {
    if f.len() != head_dim / 2 || f.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(format!(
            "tensor `{name}` must hold {} finite positive factors (half the head size); it holds {} values, \
             or some are not positive",
            head_dim / 2,
            f.len()
        ));
    }
    Ok(f)
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: QMat,
    wk: QMat,
    wv: QMat,
    /// Biases of q, k, v (qwen2).
    bias: Option<[Vec<f32>; 3]>,
    /// RMS norms applied to each query and key head (qwen3, gemma3).
    qk_norm: Option<(Vec<f32>, Vec<f32>)>,
    wo: QMat,
    post_attn_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    gate: QMat,
    up: QMat,
    down: QMat,
    post_ffn_norm: Option<Vec<f32>>,
}

/// A decoder model ready to run on the CPU.
pub struct Decoder {
    path: KernelPath,
    cfg: Config,
    embed: QMat,
    output: Option<QMat>,
    norm: Vec<f32>,
    /// llama3 rotary frequency factors (`rope_freqs.weight`, `head_dim / 2` divisors of the frequencies).
    rope_factors: Option<Vec<f32>>,
    layers: Vec<Layer>,
    /// Per layer: keys then values, `capacity * kv_heads * head_dim` each.
    kv: Vec<(Vec<f32>, Vec<f32>)>,
    capacity: usize,
    logits: Vec<f32>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("cfg", &self.cfg)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

pub(crate) fn md_u(content: &Content, key: &str) -> Result<usize, String> {
    let v = content
        .metadata
        .get(key)
        .ok_or_else(|| format!("metadata key `{key}` is missing"))?;
    v.to_u32()
        .map(|x| x as usize)
        .or_else(|_| v.to_u64().map(|x| x as usize))
        .map_err(|e| format!("`{key}`: {e}"))
}

fn md_f(content: &Content, key: &str) -> Option<f32> {
    content.metadata.get(key).and_then(|v| v.to_f32().ok())
}

pub(crate) fn arch_of(content: &Content) -> Result<Arch, String> {
    let name = content
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .ok_or("metadata key `general.architecture` is missing")?;
    Arch::from_name(name).ok_or_else(|| format!("architecture `{name}`"))
}

/// Why this path cannot run a file (the engine then uses candle-transformers), or `None` when it can.
pub fn unsupported(content: &Content) -> Option<String> {
    if let Some(why) = model_unsupported(content) {
        return Some(why);
    }
    for (name, info) in &content.tensor_infos {
        let dims = info.shape.dims();
        if dims.len() == 2 && format_of(info.ggml_dtype).is_none() {
            return Some(format!("tensor {name} is {:?}", info.ggml_dtype));
        }
    }
    None
}

/// Why neither own decoder can run a file's model (whatever its tensor types), or `None`: an architecture they do
/// not know, a mixture of experts, a partial rotary embedding, value heads of another size than key heads.
pub fn model_unsupported(content: &Content) -> Option<String> {
    let arch = match arch_of(content) {
        Ok(a) => a,
        Err(e) => return Some(e),
    };
    let a = arch.name();
    if md_u(content, &format!("{a}.expert_count")).unwrap_or(0) > 1 {
        return Some("mixture of experts".into());
    }
    let heads = md_u(content, &format!("{a}.attention.head_count")).ok()?;
    let head_dim = md_u(content, &format!("{a}.attention.key_length"))
        .or_else(|_| md_u(content, &format!("{a}.embedding_length")).map(|h| h / heads.max(1)))
        .ok()?;
    if md_u(content, &format!("{a}.rope.dimension_count")).is_ok_and(|d| d != head_dim) {
        return Some("partial rotary embedding".into());
    }
    if md_u(content, &format!("{a}.attention.value_length")).is_ok_and(|d| d != head_dim) {
        return Some("value heads of another size than key heads".into());
    }
    None
}

impl Decoder {
    /// Loads the weights of a GGUF file of a supported family (the caller checked [`unsupported`]).
    pub fn load<R: Read + Seek>(
        content: &Content,
        reader: &mut R,
        path: KernelPath,
    ) -> Result<Self, String> {
        let cfg = Config::read(content)?;
        let (arch, hidden) = (cfg.arch, cfg.hidden);
        let embed = read_mat(content, reader, "token_embd.weight")?;
        let output = if content.tensor_infos.contains_key("output.weight") {
            Some(read_mat(content, reader, "output.weight")?)
        } else {
            None
        };
        let norm = read_vec(content, reader, "output_norm.weight")?;
        let factors = arch.rope_factors_tensor();
        let rope_factors = if content.tensor_infos.contains_key(factors) {
            Some(check_rope_factors(
                read_vec(content, reader, factors)?,
                cfg.head_dim,
                factors,
            )?)
        } else {
            None
        };
        let mut layers = Vec::with_capacity(cfg.layers);
        for l in 0..cfg.layers {
            let n = |s: &str| format!("blk.{l}.{s}.weight");
            let b = |s: &str| format!("blk.{l}.{s}.bias");
            let mut vec = |name: String| read_vec(content, reader, &name);
            let bias = if arch == Arch::Qwen2 {
                Some([vec(b("attn_q"))?, vec(b("attn_k"))?, vec(b("attn_v"))?])
            } else {
                None
            };
            let qk_norm = if arch.qk_norm() {
                Some((vec(n("attn_q_norm"))?, vec(n("attn_k_norm"))?))
            } else {
                None
            };
            let (post_attn_norm, post_ffn_norm) = if arch.gemma() {
                (
                    Some(vec(n("post_attention_norm"))?),
                    Some(vec(n("post_ffw_norm"))?),
                )
            } else {
                (None, None)
            };
            // Phi-3's fused matrices, split by rows (rows of a block format are whole blocks).
            let qkv = n("attn_qkv");
            let [wq, wk, wv] = if content.tensor_infos.contains_key(&qkv) {
                let kvd = cfg.kv_heads * cfg.head_dim;
                let [q, k, v] =
                    read_split(content, reader, &qkv, [cfg.heads * cfg.head_dim, kvd, kvd])?;
                [q, k, v]
            } else {
                [
                    read_mat(content, reader, &n("attn_q"))?,
                    read_mat(content, reader, &n("attn_k"))?,
                    read_mat(content, reader, &n("attn_v"))?,
                ]
            };
            let [gate, up] =
                if arch == Arch::Phi3 && !content.tensor_infos.contains_key(&n("ffn_gate")) {
                    read_split(content, reader, &n("ffn_up"), [cfg.ffn, cfg.ffn])?
                } else {
                    [
                        read_mat(content, reader, &n("ffn_gate"))?,
                        read_mat(content, reader, &n("ffn_up"))?,
                    ]
                };
            layers.push(Layer {
                attn_norm: read_vec(content, reader, &n("attn_norm"))?,
                wq,
                wk,
                wv,
                bias,
                qk_norm,
                wo: read_mat(content, reader, &n("attn_output"))?,
                post_attn_norm,
                ffn_norm: read_vec(content, reader, &n("ffn_norm"))?,
                gate,
                up,
                down: read_mat(content, reader, &n("ffn_down"))?,
                post_ffn_norm,
            });
        }
        let qd = cfg.heads * cfg.head_dim;
        let kvd = cfg.kv_heads * cfg.head_dim;
        for (l, layer) in layers.iter().enumerate() {
            let shapes = [
                ("attn_q", &layer.wq, qd, hidden),
                ("attn_k", &layer.wk, kvd, hidden),
                ("attn_v", &layer.wv, kvd, hidden),
                ("attn_output", &layer.wo, hidden, qd),
                ("ffn_gate", &layer.gate, cfg.ffn, hidden),
                ("ffn_up", &layer.up, cfg.ffn, hidden),
                ("ffn_down", &layer.down, hidden, cfg.ffn),
            ];
            for (name, m, rows, cols) in shapes {
                if (m.rows, m.cols) != (rows, cols) {
                    return Err(format!(
                        "tensor `blk.{l}.{name}.weight` is {}x{}, the metadata implies {rows}x{cols}",
                        m.rows, m.cols
                    ));
                }
            }
        }
        // Every multiplied matrix into the kernels' layout; the embedding too where it is the output matrix (the
        // largest multiply of a token; its rows are then read through `dequantize_row`).
        let embed = if output.is_none() {
            embed.interleaved(path)
        } else {
            embed
        };
        let output = output.map(|o| o.interleaved(path));
        let layers = layers
            .into_iter()
            .map(|l| Layer {
                wq: l.wq.interleaved(path),
                wk: l.wk.interleaved(path),
                wv: l.wv.interleaved(path),
                wo: l.wo.interleaved(path),
                gate: l.gate.interleaved(path),
                up: l.up.interleaved(path),
                down: l.down.interleaved(path),
                ..l
            })
            .collect();
        let vocab = output.as_ref().map_or(cfg.vocab, |o| o.rows);
        Ok(Self {
            path,
            cfg: Config { vocab, ..cfg },
            embed,
            output,
            norm,
            rope_factors,
            layers,
            kv: Vec::new(),
            capacity: 0,
            logits: vec![0.0; vocab],
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The kernel path in use.
    pub fn kernel_path(&self) -> KernelPath {
        self.path
    }

    /// Makes room in the KV cache for `positions` positions (kept across calls; grows only).
    pub fn reserve(&mut self, positions: usize) {
        if positions <= self.capacity {
            return;
        }
        let kv_dim = self.cfg.kv_heads * self.cfg.head_dim;
        for l in 0..self.cfg.layers {
            if self.kv.len() <= l {
                self.kv.push((Vec::new(), Vec::new()));
            }
            self.kv[l].0.resize(positions * kv_dim, 0.0);
            self.kv[l].1.resize(positions * kv_dim, 0.0);
        }
        self.capacity = positions;
    }

    /// Runs `tokens` at positions `pos..pos + tokens.len()` (earlier positions must be in the cache) and returns
    /// the logits of the last one.
    pub fn forward(&mut self, tokens: &[u32], pos: usize) -> &[f32] {
        let x = self.hidden(tokens, pos);
        let h = self.cfg.hidden;
        let last = &x[(tokens.len() - 1) * h..];
        let mut normed = vec![0f32; h];
        rms_norm(last, &self.norm, self.cfg.eps, &mut normed);
        let out = self.output.as_ref().unwrap_or(&self.embed);
        let mut lq = QActs::default();
        lq.quantize(&normed, h, &[out.fmt]);
        matmul(&EnginePool, self.path, out, &lq, &mut self.logits);
        if let Some(cap) = self.cfg.final_softcap {
            softcap(&mut self.logits, cap);
        }
        &self.logits
    }

    /// Runs `tokens` at positions `pos..` as [`forward`](Self::forward) does and hands `each` the logits of every
    /// token in `rows` (indices into `tokens`), in order: the teacher-forced predictions of a text, for its
    /// perplexity. The output matrix runs a block of rows at a time, so a 262k-entry vocabulary never needs
    /// rows x vocabulary floats at once.
    pub fn forward_rows(
        &mut self,
        tokens: &[u32],
        pos: usize,
        rows: std::ops::Range<usize>,
        each: &mut dyn FnMut(usize, &[f32]),
    ) {
        const BLOCK: usize = 16;
        assert!(rows.end <= tokens.len(), "rows within the tokens");
        let x = self.hidden(tokens, pos);
        let (h, vocab) = (self.cfg.hidden, self.logits.len());
        let out = self.output.as_ref().unwrap_or(&self.embed);
        let mut normed = vec![0f32; BLOCK * h];
        let mut logits = vec![0f32; BLOCK * vocab];
        let mut lq = QActs::default();
        let mut start = rows.start;
        while start < rows.end {
            let n = BLOCK.min(rows.end - start);
            rms_norm(
                &x[start * h..(start + n) * h],
                &self.norm,
                self.cfg.eps,
                &mut normed[..n * h],
            );
            lq.quantize(&normed[..n * h], h, &[out.fmt]);
            matmul(&EnginePool, self.path, out, &lq, &mut logits[..n * vocab]);
            if let Some(cap) = self.cfg.final_softcap {
                softcap(&mut logits[..n * vocab], cap);
            }
            for (i, row) in logits[..n * vocab].chunks_exact(vocab).enumerate() {
                each(start + i, row);
            }
            start += n;
        }
    }

    /// The residual stream after the last layer for `tokens` at positions `pos..`, `tokens.len()` rows of
    /// `hidden`, with the keys and values entered into the cache.
    fn hidden(&mut self, tokens: &[u32], pos: usize) -> Vec<f32> {
        let c = self.cfg.clone();
        let n = tokens.len();
        self.reserve(pos + n);
        let (h, kv_dim, qd) = (c.hidden, c.kv_heads * c.head_dim, c.heads * c.head_dim);
        let mut x = vec![0f32; n * h];
        for (t, &tok) in tokens.iter().enumerate() {
            self.embed
                .dequantize_row(tok as usize, &mut x[t * h..(t + 1) * h]);
        }
        if c.arch.gemma() {
            let s = (h as f32).sqrt();
            x.iter_mut().for_each(|v| *v *= s);
        }
        let (mut xn, mut xq) = (vec![0f32; n * h], QActs::default());
        let (mut q, mut k, mut v) = (
            vec![0f32; n * qd],
            vec![0f32; n * kv_dim],
            vec![0f32; n * kv_dim],
        );
        let (mut att, mut attq, mut o) = (vec![0f32; n * qd], QActs::default(), vec![0f32; n * h]);
        let (mut g, mut u, mut hq) = (
            vec![0f32; n * c.ffn],
            vec![0f32; n * c.ffn],
            QActs::default(),
        );
        let factors = self.rope_factors.as_deref();
        let global = rope_table(c.head_dim, c.rope_base, c.rope_scale, factors, pos, n);
        let local = (c.window.is_some())
            .then(|| rope_table(c.head_dim, c.rope_base_local, 1.0, None, pos, n));
        let neox = c.arch.neox();
        for (l, layer) in self.layers.iter().enumerate() {
            rms_norm(&x, &layer.attn_norm, c.eps, &mut xn);
            xq.quantize(&xn, h, &[layer.wq.fmt, layer.wk.fmt, layer.wv.fmt]);
            matmul_many(
                &EnginePool,
                self.path,
                &mut [
                    (&layer.wq, &mut q),
                    (&layer.wk, &mut k),
                    (&layer.wv, &mut v),
                ],
                &xq,
            );
            if let Some([bq, bk, bv]) = &layer.bias {
                add_rows(&mut q, bq);
                add_rows(&mut k, bk);
                add_rows(&mut v, bv);
            }
            if let Some((qn, kn)) = &layer.qk_norm {
                rms_norm_in_place(&mut q, qn, c.eps);
                rms_norm_in_place(&mut k, kn, c.eps);
            }
            // Sliding-window layers rotate with the local base, the others with the global one.
            let (cos, sin) = match (&local, c.layer_window(l)) {
                (Some(t), Some(_)) => t,
                _ => &global,
            };
            if c.layer_rotary(l) {
                rope(&mut q, c.head_dim, cos, sin, neox);
                rope(&mut k, c.head_dim, cos, sin, neox);
            }
            let (kc, vc) = &mut self.kv[l];
            kc[pos * kv_dim..(pos + n) * kv_dim].copy_from_slice(&k);
            vc[pos * kv_dim..(pos + n) * kv_dim].copy_from_slice(&v);
            attention(&c, c.layer_window(l), &q, kc, vc, pos, n, &mut att);
            attq.quantize(&att, qd, &[layer.wo.fmt]);
            matmul(&EnginePool, self.path, &layer.wo, &attq, &mut o);
            if let Some(w) = &layer.post_attn_norm {
                rms_norm_in_place(&mut o, w, c.eps);
            }
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            rms_norm(&x, &layer.ffn_norm, c.eps, &mut xn);
            xq.quantize(&xn, h, &[layer.gate.fmt, layer.up.fmt]);
            matmul_many(
                &EnginePool,
                self.path,
                &mut [(&layer.gate, &mut g), (&layer.up, &mut u)],
                &xq,
            );
            if c.arch.gemma() {
                g.iter_mut()
                    .zip(&u)
                    .for_each(|(a, b)| *a = gelu_fast(*a) * b);
            } else {
                g.iter_mut()
                    .zip(&u)
                    .for_each(|(a, b)| *a = *a / (1.0 + (-*a).exp()) * b);
            }
            hq.quantize(&g, c.ffn, &[layer.down.fmt]);
            matmul(&EnginePool, self.path, &layer.down, &hq, &mut o);
            if let Some(w) = &layer.post_ffn_norm {
                rms_norm_in_place(&mut o, w, c.eps);
            }
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
        }
        x
    }
}

/// GELU with the tanh approximation (Gemma's `gelu_pytorch_tanh`).
#[inline]
fn gelu_tanh(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // sqrt(2 / pi)
    0.5 * x * (1.0 + (C * (x + 0.044_715 * x * x * x)).tanh())
}

/// GELU through a table of every half-precision input, as ggml computes it (`GGML_GELU_FP16`): `tanh` per element
/// costs more than the rest of the feed-forward's element-wise work, and the table gives llama.cpp's exact values.
fn gelu_fast(x: f32) -> f32 {
    static TABLE: std::sync::OnceLock<Vec<half::f16>> = std::sync::OnceLock::new();
    if x <= -10.0 {
        return 0.0;
    }
    if x >= 10.0 {
        return x;
    }
    let table = TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| half::f16::from_f32(gelu_tanh(half::f16::from_bits(bits).to_f32())))
            .collect()
    });
    table[half::f16::from_f32(x).to_bits() as usize].to_f32()
}

/// `cap * tanh(x / cap)`, in place.
fn softcap(x: &mut [f32], cap: f32) {
    x.iter_mut().for_each(|v| *v = cap * (*v / cap).tanh());
}

/// Adds `b` to every row of `x`.
fn add_rows(x: &mut [f32], b: &[f32]) {
    for row in x.chunks_exact_mut(b.len()) {
        row.iter_mut().zip(b).for_each(|(a, b)| *a += b);
    }
}

/// RMS-normalizes every `w.len()`-sized piece of `x` (every head, for q/k norms) in place.
fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    let d = w.len();
    for row in x.chunks_exact_mut(d) {
        let ms = row.iter().map(|v| v * v).sum::<f32>() / d as f32;
        let scale = 1.0 / (ms + eps).sqrt();
        row.iter_mut().zip(w).for_each(|(v, w)| *v = *v * scale * w);
    }
}

fn read_bytes<R: Read + Seek>(
    content: &Content,
    reader: &mut R,
    name: &str,
) -> Result<Vec<u8>, String> {
    let info = content
        .tensor_infos
        .get(name)
        .ok_or_else(|| format!("tensor `{name}` is missing"))?;
    let elems = info.shape.elem_count();
    let size = elems / info.ggml_dtype.block_size() * info.ggml_dtype.type_size();
    let mut buf = vec![0u8; size];
    reader
        .seek(SeekFrom::Start(content.tensor_data_offset + info.offset))
        .and_then(|_| reader.read_exact(&mut buf))
        .map_err(|e| format!("reading tensor `{name}`: {e}"))?;
    Ok(buf)
}

/// A matrix tensor's block format, rows and columns.
fn mat_shape(
    content: &Content,
    name: &str,
) -> Result<(meek_kernels::Format, usize, usize), String> {
    let info = content
        .tensor_infos
        .get(name)
        .ok_or_else(|| format!("tensor `{name}` is missing"))?;
    let fmt = format_of(info.ggml_dtype)
        .ok_or_else(|| format!("tensor `{name}` is {:?}", info.ggml_dtype))?;
    let (rows, cols) = info
        .shape
        .dims2()
        .map_err(|e| format!("tensor `{name}`: {e}"))?;
    Ok((fmt, rows, cols))
}

fn read_mat<R: Read + Seek>(content: &Content, reader: &mut R, name: &str) -> Result<QMat, String> {
    let (fmt, rows, cols) = mat_shape(content, name)?;
    QMat::new(fmt, rows, cols, read_bytes(content, reader, name)?)
        .map_err(|e| format!("tensor `{name}`: {e}"))
}

/// A fused matrix split by rows into `N` matrices of `rows` rows each (Phi-3's `attn_qkv` and `ffn_up`); the
/// file's rows must add up to them.
fn read_split<R: Read + Seek, const N: usize>(
    content: &Content,
    reader: &mut R,
    name: &str,
    rows: [usize; N],
) -> Result<[QMat; N], String> {
    let (fmt, total, cols) = mat_shape(content, name)?;
    if total != rows.iter().sum::<usize>() || !cols.is_multiple_of(fmt.block_elems()) {
        return Err(format!(
            "tensor `{name}` is {total}x{cols}, the metadata implies {}x{cols} (rows {rows:?} fused)",
            rows.iter().sum::<usize>()
        ));
    }
    let bytes = read_bytes(content, reader, name)?;
    let row_bytes = cols / fmt.block_elems() * fmt.block_bytes();
    let mut at = 0;
    let mut out = Vec::with_capacity(N);
    for r in rows {
        let part = bytes
            .get(at..at + r * row_bytes)
            .ok_or_else(|| format!("tensor `{name}` holds fewer bytes than its shape"))?;
        out.push(
            QMat::new(fmt, r, cols, part.to_vec()).map_err(|e| format!("tensor `{name}`: {e}"))?,
        );
        at += r * row_bytes;
    }
    out.try_into()
        .map_err(|_| format!("tensor `{name}`: split into the wrong number of parts"))
}

fn read_vec<R: Read + Seek>(
    content: &Content,
    reader: &mut R,
    name: &str,
) -> Result<Vec<f32>, String> {
    let t = crate::guard::no_panic(&format!("reading tensor `{name}`"), || {
        content
            .tensor(reader, name, &Device::Cpu)
            .and_then(|q| q.dequantize(&Device::Cpu))
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
    })?;
    t.map_err(|e| format!("tensor `{name}`: {e}"))
}

fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let h = w.len();
    for (row, o) in x.chunks_exact(h).zip(out.chunks_exact_mut(h)) {
        let ms = row.iter().map(|v| v * v).sum::<f32>() / h as f32;
        let scale = 1.0 / (ms + eps).sqrt();
        for ((o, v), w) in o.iter_mut().zip(row).zip(w) {
            *o = v * scale * w;
        }
    }
}

/// cos and sin for positions `pos..pos + n`, `head_dim / 2` each: angle `scale * p * base^(-2i / head_dim) /
/// factors[i]`, as ggml's rotary embedding computes it without YaRN (`freq_scale`, `freq_factors`).
pub(crate) fn rope_table(
    head_dim: usize,
    base: f32,
    scale: f32,
    factors: Option<&[f32]>,
    pos: usize,
    n: usize,
) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    let mut cos = Vec::with_capacity(n * half);
    let mut sin = Vec::with_capacity(n * half);
    for p in pos..pos + n {
        for i in 0..half {
            let factor = factors.map_or(1.0, |f| f[i]);
            let theta = scale * (p as f32) / base.powf(2.0 * i as f32 / head_dim as f32) / factor;
            cos.push(theta.cos());
            sin.push(theta.sin());
        }
    }
    (cos, sin)
}

/// Rotates pairs of every head of every token in `x` (`n` rows of whole heads): interleaved `(2i, 2i + 1)`, or
/// with `neox` the halves `(i, i + head_dim / 2)`.
fn rope(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32], neox: bool) {
    let half = head_dim / 2;
    let n = cos.len() / half;
    let row = x.len() / n;
    for t in 0..n {
        let (c, s) = (
            &cos[t * half..(t + 1) * half],
            &sin[t * half..(t + 1) * half],
        );
        for head in x[t * row..(t + 1) * row].chunks_exact_mut(head_dim) {
            for i in 0..half {
                let (ia, ib) = if neox {
                    (i, i + half)
                } else {
                    (2 * i, 2 * i + 1)
                };
                let (a, b) = (head[ia], head[ib]);
                head[ia] = a * c[i] - b * s[i];
                head[ib] = a * s[i] + b * c[i];
            }
        }
    }
}

/// `Σ a_i b_i` with eight partial sums, a shape the compiler vectorizes (with AVX2 and FMA inside
/// [`scores_avx2`] / [`mix_avx2`]).
#[inline(always)]
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `y += w x`.
#[inline(always)]
fn axpy(w: f32, x: &[f32], y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(a, b)| *a += w * b);
}

/// Attention scores of one query against keys `first..len` of the cache (`kv_dim` apart, this head's `hd` values at
/// `off`), scaled; returns the largest.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn scores_body(
    qv: &[f32],
    kc: &[f32],
    kv_dim: usize,
    off: usize,
    first: usize,
    scale: f32,
    scores: &mut [f32],
) -> f32 {
    let hd = qv.len();
    let mut max = f32::NEG_INFINITY;
    for (j, s) in scores.iter_mut().enumerate().skip(first) {
        *s = dot_f32(qv, &kc[j * kv_dim + off..j * kv_dim + off + hd]) * scale;
        max = max.max(*s);
    }
    max
}

/// `acc = Σ_j w_j v_j` over values `first..` of the cache.
#[inline(always)]
fn mix_body(weights: &[f32], vc: &[f32], kv_dim: usize, off: usize, first: usize, acc: &mut [f32]) {
    let hd = acc.len();
    let value = |j: usize| &vc[j * kv_dim + off..j * kv_dim + off + hd];
    // 32 outputs at a time summed in registers over every value, then stored once.
    let whole = hd / 32 * 32;
    for b in (0..whole).step_by(32) {
        let mut r = [0f32; 32];
        for (j, &w) in weights.iter().enumerate().skip(first) {
            let v = &value(j)[b..b + 32];
            for k in 0..32 {
                r[k] += w * v[k];
            }
        }
        acc[b..b + 32].copy_from_slice(&r);
    }
    if whole < hd {
        let rest = &mut acc[whole..];
        rest.fill(0.0);
        for (j, &w) in weights.iter().enumerate().skip(first) {
            axpy(w, &value(j)[whole..], rest);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn scores_avx2(
    qv: &[f32],
    kc: &[f32],
    kv_dim: usize,
    off: usize,
    first: usize,
    scale: f32,
    scores: &mut [f32],
) -> f32 {
    use std::arch::x86_64::*;
    let hd = qv.len();
    if !hd.is_multiple_of(8) {
        return scores_body(qv, kc, kv_dim, off, first, scale, scores);
    }
    // [`scores_body`]'s arithmetic in the same order (products added lane by lane over the 8-value chunks, the
    // lanes summed first to last; no fused multiply-add), four keys at a time: four independent chains instead of
    // one, which the compiler does not find on its own.
    let len = scores.len();
    let key = |j: usize| &kc[j * kv_dim + off..j * kv_dim + off + hd];
    let lanes = |v: __m256| {
        let mut l = [0f32; 8];
        // SAFETY: `l` holds eight f32.
        unsafe { _mm256_storeu_ps(l.as_mut_ptr(), v) };
        l.iter().sum::<f32>()
    };
    let mut max = f32::NEG_INFINITY;
    let mut j = first;
    while j + 4 <= len {
        let k = [key(j), key(j + 1), key(j + 2), key(j + 3)];
        let mut acc = [_mm256_setzero_ps(); 4];
        for c in (0..hd).step_by(8) {
            // SAFETY: `c + 8 <= hd`, the length of the query and of each key.
            let x = unsafe { _mm256_loadu_ps(qv.as_ptr().add(c)) };
            for (a, k) in acc.iter_mut().zip(&k) {
                // SAFETY: as above.
                let y = unsafe { _mm256_loadu_ps(k.as_ptr().add(c)) };
                *a = _mm256_add_ps(*a, _mm256_mul_ps(x, y));
            }
        }
        for (i, a) in acc.into_iter().enumerate() {
            let s = lanes(a) * scale;
            scores[j + i] = s;
            max = max.max(s);
        }
        j += 4;
    }
    // The last keys, fewer than four: the portable loop from there.
    max.max(scores_body(qv, kc, kv_dim, off, j, scale, scores))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn mix_avx2(weights: &[f32], vc: &[f32], kv_dim: usize, off: usize, first: usize, acc: &mut [f32]) {
    mix_body(weights, vc, kv_dim, off, first, acc)
}

/// Whether the AVX2+FMA attention loops can run (checked once).
fn attention_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Cache positions below which one query's attention runs on the calling thread alone.
const SERIAL_DECODE_ATTENTION: usize = 32;

/// Causal grouped-query attention of `n` new queries at positions `pos..` over the cache; with a `window`, a query
/// sees only the keys less than `window` positions back.
#[allow(clippy::too_many_arguments)]
fn attention(
    c: &Config,
    window: Option<usize>,
    q: &[f32],
    kc: &[f32],
    vc: &[f32],
    pos: usize,
    n: usize,
    out: &mut [f32],
) {
    let (hd, kv_dim, qd) = (c.head_dim, c.kv_heads * c.head_dim, c.heads * c.head_dim);
    let group = c.heads / c.kv_heads;
    let scale = c.attn_scale;
    let dst = Shared::new(out);
    let avx2 = attention_avx2();
    let work = |range: std::ops::Range<usize>| {
        let mut scores = vec![0f32; pos + n];
        let mut acc = vec![0f32; hd];
        for item in range {
            let (t, head) = (item / c.heads, item % c.heads);
            let off = (head / group) * hd;
            let qv = &q[t * qd + head * hd..t * qd + (head + 1) * hd];
            let len = pos + t + 1;
            let first = window.map_or(0, |w| len.saturating_sub(w));
            let s = &mut scores[..len];
            let mut max = if avx2 {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the CPU has AVX2 and FMA (checked by `attention_avx2`).
                unsafe {
                    scores_avx2(qv, kc, kv_dim, off, first, scale, s)
                }
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!()
            } else {
                scores_body(qv, kc, kv_dim, off, first, scale, s)
            };
            if let Some(cap) = c.attn_softcap {
                softcap(&mut s[first..], cap);
                max = s[first..].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            }
            let mut total = 0f32;
            for v in &mut s[first..] {
                *v = (*v - max).exp();
                total += *v;
            }
            let inv = 1.0 / total;
            s[first..].iter_mut().for_each(|v| *v *= inv);
            if avx2 {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                unsafe {
                    mix_avx2(s, vc, kv_dim, off, first, &mut acc)
                }
            } else {
                mix_body(s, vc, kv_dim, off, first, &mut acc);
            }
            for (d, a) in acc.iter().enumerate() {
                // SAFETY: each (token, head) item owns its own `hd` outputs.
                unsafe { dst.write(t * qd + head * hd + d, *a) };
            }
        }
    };
    // A query over a short cache (the first tokens of a decode) is not worth a region; past that the other threads,
    // which would wait for the next multiply meanwhile, take heads.
    if n == 1 && pos < SERIAL_DECODE_ATTENTION {
        work(0..c.heads);
    } else if n == 1 {
        // By key-value head, each with its group of query heads: a thread reads only its heads' part of the cache.
        parallel(c.kv_heads, |kv: std::ops::Range<usize>| {
            work(kv.start * group..kv.end * group)
        });
    } else {
        parallel(n * c.heads, work);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meek_testkit::random_values;

    /// The AVX2 score loop (four keys at a time) gives exactly the portable loop's scores and maximum, at head
    /// sizes it takes and one it leaves to the portable loop, over lengths that leave one to three keys over, from
    /// a window's first key.
    #[test]
    fn scores_avx2_equals_the_portable_loop() {
        if !attention_avx2() {
            return;
        }
        for hd in [8, 64, 256, 12] {
            let kv_dim = 2 * hd;
            for (len, first) in [(1, 0), (7, 0), (33, 5), (64, 61)] {
                let q = random_values(hd, 1);
                let kc = random_values(len * kv_dim, 2);
                let (mut a, mut b) = (vec![0f32; len], vec![0f32; len]);
                let ma = scores_body(&q, &kc, kv_dim, hd, first, 0.125, &mut a);
                // SAFETY: the CPU has AVX2 and FMA (checked above).
                let mb = unsafe { scores_avx2(&q, &kc, kv_dim, hd, first, 0.125, &mut b) };
                assert_eq!(a[first..], b[first..], "hd {hd}, len {len}");
                assert_eq!(ma, mb, "hd {hd}, len {len}");
            }
        }
    }

    /// The value mix, 32 outputs at a time with the rest one by one, equals the plain sum of weighted values.
    #[test]
    fn mix_equals_the_weighted_sum() {
        for hd in [8, 64, 80, 256] {
            let (kv_dim, len, first) = (3 * hd, 21, 4);
            let w = random_values(len, 3);
            let vc = random_values(len * kv_dim, 4);
            let mut acc = vec![1f32; hd];
            mix_body(&w, &vc, kv_dim, hd, first, &mut acc);
            let mut want = vec![0f32; hd];
            for (j, &wj) in w.iter().enumerate().skip(first) {
                for (d, o) in want.iter_mut().enumerate() {
                    *o += wj * vc[j * kv_dim + hd + d];
                }
            }
            assert_eq!(acc, want, "hd {hd}");
        }
    }
}
