//! meekbench's decoder on Candle tensors: the forward pass of the own CPU path ([`crate::cpu::decoder`]) for the
//! same families (llama, qwen2, qwen3, gemma2, gemma3, smollm3), written with Candle operations so that it runs on
//! any Candle device, CUDA and Metal above all, with the weights kept quantized on the device (Candle's `QMatMul`).
//!
//! candle-transformers' quantized models cannot be the GPU path: its Gemma 3 applies SiLU where Gemma uses GELU,
//! its llama ignores the llama3 rotary frequency factors (`rope_freqs.weight`) and linear rotary scaling, and each
//! family is a different model with its own reading of the file. This decoder reads a file with the CPU path's
//! [`Config::read`] and computes what the CPU path computes, operation for operation: the same rotary tables
//! (llama3 factors, linear scaling of the global layers, Gemma 3's local base, SmolLM3's layers without), the same
//! sliding-window mask (a key at distance `>= window` is hidden), Gemma 2's soft-caps, norms as stored (the
//! converter folded Gemma's `1 + w`), GELU (tanh) or SiLU, the embedding scaled by `sqrt(hidden)` for Gemma,
//! tied output. Activations are f32; matrices of every
//! GGUF type Candle supports run quantized (its CUDA kernels quantize activations to 8 bits as the CPU path does).
//! Attention groups query heads over their shared key/value head instead of copying keys per head. Only the
//! positions asked for leave the device: the last position's logits, or the arg-max alone for a greedy step.

use std::io::{Read, Seek};
use std::sync::Arc;

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::kv_cache::KvCache;

use crate::cpu::decoder::{Arch, Config, check_rope_factors, rope_table};

/// Positions the KV cache holds before it first grows (it grows by as many again).
const CACHE_BLOCK: usize = 512;

/// Projections of one input, as the file stores them: one matrix each, or one fused matrix (Phi-3's `attn_qkv` and
/// `ffn_up`) whose output is split into parts of the given widths.
enum Proj {
    Separate(Vec<QMatMul>),
    Fused(QMatMul, Vec<usize>),
}

impl Proj {
    /// Each projection of `x`, in order.
    fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        match self {
            Self::Separate(ws) => ws.iter().map(|w| w.forward(x)).collect(),
            Self::Fused(w, widths) => {
                let y = w.forward(x)?;
                let mut at = 0;
                widths
                    .iter()
                    .map(|&n| {
                        let part = y.narrow(D::Minus1, at, n)?.contiguous();
                        at += n;
                        part
                    })
                    .collect()
            }
        }
    }
}

struct Layer {
    attn_norm: Tensor,
    /// q, k, v.
    qkv: Proj,
    bias: Option<[Tensor; 3]>,
    qk_norm: Option<(Tensor, Tensor)>,
    wo: QMatMul,
    post_attn_norm: Option<Tensor>,
    ffn_norm: Tensor,
    /// gate, up.
    gate_up: Proj,
    down: QMatMul,
    post_ffn_norm: Option<Tensor>,
    window: Option<usize>,
    rotary: bool,
    cache: KvCache,
}

/// A decoder model on a Candle device, with its KV cache.
pub struct TensorDecoder {
    cfg: Config,
    /// The token embedding, dequantized for the lookup (f16 on GPUs, f32 on the CPU).
    embed: Tensor,
    /// The output matrix (`output.weight`, or the token embedding when tied), quantized.
    output: QMatMul,
    norm: Tensor,
    rope_factors: Option<Vec<f32>>,
    layers: Vec<Layer>,
    device: Device,
    /// Positions in the cache.
    len: usize,
}

impl std::fmt::Debug for TensorDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorDecoder")
            .field("cfg", &self.cfg)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// Why this decoder cannot run a file, or `None` when it can: the CPU path's checks of the model itself
/// ([`crate::cpu::decoder::model_unsupported`]), without its list of tensor types (Candle's quantized matmul takes
/// every GGUF type).
pub fn unsupported(content: &Content) -> Option<String> {
    crate::cpu::decoder::model_unsupported(content)
}

fn err(name: &str) -> impl Fn(candle_core::Error) -> String + '_ {
    move |e| format!("tensor `{name}`: {e}")
}

fn qtensor<R: Read + Seek>(
    content: &Content,
    reader: &mut R,
    name: &str,
    device: &Device,
) -> std::result::Result<QTensor, String> {
    if !content.tensor_infos.contains_key(name) {
        return Err(format!("tensor `{name}` is missing"));
    }
    crate::guard::no_panic(&format!("reading tensor `{name}`"), || {
        content.tensor(reader, name, device)
    })?
    .map_err(err(name))
}

fn matrix<R: Read + Seek>(
    content: &Content,
    reader: &mut R,
    name: &str,
    rows: usize,
    cols: usize,
    device: &Device,
) -> std::result::Result<QMatMul, String> {
    let q = qtensor(content, reader, name, device)?;
    let dims = q.shape().dims().to_vec();
    if dims != [rows, cols] {
        return Err(format!(
            "tensor `{name}` is {dims:?}, the metadata implies [{rows}, {cols}]"
        ));
    }
    QMatMul::from_arc(Arc::new(q)).map_err(err(name))
}

fn vector<R: Read + Seek>(
    content: &Content,
    reader: &mut R,
    name: &str,
    len: usize,
    device: &Device,
) -> std::result::Result<Tensor, String> {
    let t = qtensor(content, reader, name, device)?
        .dequantize(device)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_dtype(DType::F32))
        .map_err(err(name))?;
    if t.elem_count() != len {
        return Err(format!(
            "tensor `{name}` holds {} values, the metadata implies {len}",
            t.elem_count()
        ));
    }
    Ok(t)
}

impl TensorDecoder {
    /// Loads the weights of a GGUF file of a supported family onto `device` (the caller checked [`unsupported`]
    /// and the file's coverage).
    pub fn load<R: Read + Seek>(
        content: &Content,
        reader: &mut R,
        device: &Device,
    ) -> std::result::Result<Self, String> {
        let cfg = Config::read(content)?;
        let (h, hd) = (cfg.hidden, cfg.head_dim);
        let (qd, kvd) = (cfg.heads * hd, cfg.kv_heads * hd);
        let embed_q = Arc::new(qtensor(content, reader, "token_embd.weight", device)?);
        if embed_q.shape().dims() != [cfg.vocab, h] {
            return Err(format!(
                "tensor `token_embd.weight` is {:?}, the metadata implies [{}, {h}]",
                embed_q.shape().dims(),
                cfg.vocab
            ));
        }
        // The lookup table in f16 on a GPU (half the memory of f32: 0.6 GB for Gemma 3's 262k x 1152; the values
        // are quantized to far fewer bits anyway), f32 on the CPU.
        let lookup = if device.is_cpu() {
            DType::F32
        } else {
            DType::F16
        };
        let embed = embed_q
            .dequantize(device)
            .and_then(|t| t.to_dtype(lookup))
            .map_err(err("token_embd.weight"))?;
        let output = if content.tensor_infos.contains_key("output.weight") {
            let q = qtensor(content, reader, "output.weight", device)?;
            let rows = q.shape().dims().first().copied().unwrap_or(0);
            if q.shape().dims() != [rows, h] || rows == 0 {
                return Err(format!(
                    "tensor `output.weight` is {:?}, the metadata implies [vocabulary, {h}]",
                    q.shape().dims()
                ));
            }
            QMatMul::from_arc(Arc::new(q)).map_err(err("output.weight"))?
        } else {
            QMatMul::from_arc(embed_q).map_err(err("token_embd.weight"))?
        };
        let norm = vector(content, reader, "output_norm.weight", h, device)?;
        let factors = cfg.arch.rope_factors_tensor();
        let rope_factors = if content.tensor_infos.contains_key(factors) {
            let f = vector(content, reader, factors, hd / 2, &Device::Cpu)?
                .to_vec1::<f32>()
                .map_err(err(factors))?;
            Some(check_rope_factors(f, hd, factors)?)
        } else {
            None
        };
        let mut layers = Vec::with_capacity(cfg.layers);
        for l in 0..cfg.layers {
            let w = |s: &str| format!("blk.{l}.{s}.weight");
            let b = |s: &str| format!("blk.{l}.{s}.bias");
            let mut mat = |s: &str, rows, cols| matrix(content, reader, &w(s), rows, cols, device);
            // Phi-3 fuses q/k/v and gate/up: one matrix each, whose outputs are split.
            let qkv = if content.tensor_infos.contains_key(&w("attn_qkv")) {
                Proj::Fused(mat("attn_qkv", qd + 2 * kvd, h)?, vec![qd, kvd, kvd])
            } else {
                Proj::Separate(vec![
                    mat("attn_q", qd, h)?,
                    mat("attn_k", kvd, h)?,
                    mat("attn_v", kvd, h)?,
                ])
            };
            let wo = mat("attn_output", h, qd)?;
            let fused_ffn =
                cfg.arch == Arch::Phi3 && !content.tensor_infos.contains_key(&w("ffn_gate"));
            let gate_up = if fused_ffn {
                Proj::Fused(mat("ffn_up", 2 * cfg.ffn, h)?, vec![cfg.ffn, cfg.ffn])
            } else {
                Proj::Separate(vec![
                    mat("ffn_gate", cfg.ffn, h)?,
                    mat("ffn_up", cfg.ffn, h)?,
                ])
            };
            let down = mat("ffn_down", h, cfg.ffn)?;
            let mut vec = |name: String, len| vector(content, reader, &name, len, device);
            let bias = if cfg.arch == Arch::Qwen2 {
                Some([
                    vec(b("attn_q"), qd)?,
                    vec(b("attn_k"), kvd)?,
                    vec(b("attn_v"), kvd)?,
                ])
            } else {
                None
            };
            let qk_norm = if cfg.arch.qk_norm() {
                Some((vec(w("attn_q_norm"), hd)?, vec(w("attn_k_norm"), hd)?))
            } else {
                None
            };
            let (post_attn_norm, post_ffn_norm) = if cfg.arch.gemma() {
                (
                    Some(vec(w("post_attention_norm"), h)?),
                    Some(vec(w("post_ffw_norm"), h)?),
                )
            } else {
                (None, None)
            };
            layers.push(Layer {
                attn_norm: vec(w("attn_norm"), h)?,
                ffn_norm: vec(w("ffn_norm"), h)?,
                qkv,
                bias,
                qk_norm,
                wo,
                post_attn_norm,
                gate_up,
                down,
                post_ffn_norm,
                window: cfg.layer_window(l),
                rotary: cfg.layer_rotary(l),
                cache: KvCache::new(2, CACHE_BLOCK),
            });
        }
        Ok(Self {
            cfg,
            embed,
            output,
            norm,
            rope_factors,
            layers,
            device: device.clone(),
            len: 0,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Forgets every cached position.
    pub fn clear_kv_cache(&mut self) {
        for l in &mut self.layers {
            l.cache.reset();
        }
        self.len = 0;
    }

    /// cos and sin of positions `pos..pos + n`, `(n, head_dim / 2)` each: the CPU path's table, on the device.
    fn rotary(
        &self,
        base: f32,
        scale: f32,
        factors: Option<&[f32]>,
        pos: usize,
        n: usize,
    ) -> Result<(Tensor, Tensor)> {
        let half = self.cfg.head_dim / 2;
        let (cos, sin) = rope_table(self.cfg.head_dim, base, scale, factors, pos, n);
        Ok((
            Tensor::from_vec(cos, (n, half), &self.device)?,
            Tensor::from_vec(sin, (n, half), &self.device)?,
        ))
    }

    /// The additive mask of queries at `pos..pos + n` over keys `0..pos + n`, `(n, keys)`, or `None` when every
    /// key is visible (one query and no window that hides any).
    fn mask(&self, pos: usize, n: usize, window: Option<usize>) -> Result<Option<Tensor>> {
        let keys = pos + n;
        if n == 1 && window.is_none_or(|w| keys <= w) {
            return Ok(None);
        }
        let data: Vec<f32> = (0..n)
            .flat_map(|i| {
                let q = pos + i;
                (0..keys).map(move |k| {
                    let visible = k <= q && window.is_none_or(|w| q - k < w);
                    if visible { 0.0 } else { f32::NEG_INFINITY }
                })
            })
            .collect();
        Tensor::from_vec(data, (n, keys), &self.device).map(Some)
    }

    /// The final hidden states of `tokens` at positions `pos..` (0 starts a new sequence; otherwise the cache must
    /// hold exactly `pos` positions), `(1, n, hidden)`, with their keys and values cached.
    fn hidden(&mut self, tokens: &[u32], pos: usize) -> Result<Tensor> {
        if pos == 0 {
            self.clear_kv_cache();
        } else if pos != self.len {
            candle_core::bail!(
                "position {pos} does not follow the {} cached positions",
                self.len
            );
        }
        if let Some(t) = tokens.iter().find(|&&t| t as usize >= self.cfg.vocab) {
            candle_core::bail!(
                "token id {t} is outside the embedding's {} rows",
                self.cfg.vocab
            );
        }
        let c = self.cfg.clone();
        let n = tokens.len();
        let (nh, nkv, hd) = (c.heads, c.kv_heads, c.head_dim);
        let rep = nh / nkv;
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = self
            .embed
            .index_select(&ids, 0)?
            .to_dtype(DType::F32)?
            .unsqueeze(0)?;
        if c.arch.gemma() {
            x = (x * f64::from((c.hidden as f32).sqrt()))?;
        }
        let global = self.rotary(
            c.rope_base,
            c.rope_scale,
            self.rope_factors.as_deref(),
            pos,
            n,
        )?;
        let local = match c.window {
            Some(_) => Some(self.rotary(c.rope_base_local, 1.0, None, pos, n)?),
            None => None,
        };
        let full_mask = self.mask(pos, n, None)?;
        let window_mask = match c.window {
            Some(w) => self.mask(pos, n, Some(w))?,
            None => None,
        };
        let neox = c.arch.neox();
        for l in &mut self.layers {
            let xn = candle_nn::ops::rms_norm(&x, &l.attn_norm, c.eps)?;
            let [mut q, mut k, mut v]: [Tensor; 3] = l
                .qkv
                .forward(&xn)?
                .try_into()
                .map_err(|_| candle_core::Error::Msg("q/k/v projections".into()))?;
            if let Some([bq, bk, bv]) = &l.bias {
                q = q.broadcast_add(bq)?;
                k = k.broadcast_add(bk)?;
                v = v.broadcast_add(bv)?;
            }
            let heads = |t: Tensor, count: usize| -> Result<Tensor> {
                t.reshape((1, n, count, hd))?.transpose(1, 2)?.contiguous()
            };
            let (mut q, mut k, v) = (heads(q, nh)?, heads(k, nkv)?, heads(v, nkv)?);
            if let Some((qn, kn)) = &l.qk_norm {
                q = candle_nn::ops::rms_norm(&q, qn, c.eps)?;
                k = candle_nn::ops::rms_norm(&k, kn, c.eps)?;
            }
            let (cos, sin) = match (&local, l.window) {
                (Some(t), Some(_)) => t,
                _ => &global,
            };
            let rope = if neox {
                candle_nn::rotary_emb::rope
            } else {
                candle_nn::rotary_emb::rope_i
            };
            let (q, k) = if l.rotary {
                (
                    rope(&q.contiguous()?, cos, sin)?,
                    rope(&k.contiguous()?, cos, sin)?,
                )
            } else {
                (q, k)
            };
            let (k, v) = l.cache.append(&k, &v)?;
            let (k, v) = (k.contiguous()?, v.contiguous()?);
            let keys = pos + n;
            // Query heads grouped by their key/value head: (1, kv heads, rep * n, head size).
            let qg = q.reshape((1, nkv, rep * n, hd))?;
            let mut scores = (qg.matmul(&k.t()?)? * f64::from(c.attn_scale))?;
            if let Some(cap) = c.attn_softcap {
                scores = softcap(&scores, cap)?;
            }
            let mask = if l.window.is_some() {
                &window_mask
            } else {
                &full_mask
            };
            let scores = match mask {
                Some(m) => scores
                    .reshape((1, nkv, rep, n, keys))?
                    .broadcast_add(m)?
                    .reshape((1, nkv, rep * n, keys))?,
                None => scores,
            };
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let att = probs
                .matmul(&v)?
                .reshape((1, nh, n, hd))?
                .transpose(1, 2)?
                .reshape((1, n, nh * hd))?;
            let mut o = l.wo.forward(&att)?;
            if let Some(w) = &l.post_attn_norm {
                o = candle_nn::ops::rms_norm(&o, w, c.eps)?;
            }
            x = (x + o)?;
            let xn = candle_nn::ops::rms_norm(&x, &l.ffn_norm, c.eps)?;
            let [g, u]: [Tensor; 2] = l
                .gate_up
                .forward(&xn)?
                .try_into()
                .map_err(|_| candle_core::Error::Msg("gate/up projections".into()))?;
            let g = if c.arch.gemma() {
                g.gelu()?
            } else {
                candle_nn::ops::silu(&g)?
            };
            let mut m = l.down.forward(&(g * u)?)?;
            if let Some(w) = &l.post_ffn_norm {
                m = candle_nn::ops::rms_norm(&m, w, c.eps)?;
            }
            x = (x + m)?;
        }
        self.len = pos + n;
        Ok(x)
    }

    /// The logits of the last of `tokens` at positions `pos..`, `(vocab,)` on the device.
    pub fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Tensor> {
        if tokens.is_empty() {
            candle_core::bail!("no tokens to run");
        }
        let x = self.hidden(tokens, pos)?;
        let n = tokens.len();
        let last = candle_nn::ops::rms_norm(&x.narrow(1, n - 1, 1)?, &self.norm, self.cfg.eps)?;
        self.logits(&last)?.flatten_all()
    }

    /// The logits of every one of `tokens` at positions `pos..`, `(n, vocab)` on the device: a text's
    /// teacher-forced predictions in one pass.
    pub fn forward_all(&mut self, tokens: &[u32], pos: usize) -> Result<Tensor> {
        if tokens.is_empty() {
            candle_core::bail!("no tokens to run");
        }
        let x = self.hidden(tokens, pos)?;
        let x = candle_nn::ops::rms_norm(&x, &self.norm, self.cfg.eps)?;
        self.logits(&x)?.squeeze(0)
    }

    /// The output matrix on normed hidden states, soft-capped where the family caps them.
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let logits = self.output.forward(x)?;
        match self.cfg.final_softcap {
            Some(cap) => softcap(&logits, cap),
            None => Ok(logits),
        }
    }

    /// The greedy next id after `tokens` at positions `pos..`; only the id leaves the device, which waits for it.
    pub fn greedy(&mut self, tokens: &[u32], pos: usize) -> Result<u32> {
        self.forward(tokens, pos)?
            .argmax(D::Minus1)?
            .to_scalar::<u32>()
    }
}

/// `cap * tanh(x / cap)`.
fn softcap(x: &Tensor, cap: f32) -> Result<Tensor> {
    (x / f64::from(cap))?.tanh()? * f64::from(cap)
}
