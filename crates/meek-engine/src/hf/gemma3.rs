//! Gemma 3 (text) on Candle tensors, written from Hugging Face's `Gemma3ForCausalLM`.
//!
//! candle-transformers 0.11.1 has a non-quantized Gemma 3, but it cannot serve here: its full-attention layers
//! append non-contiguous values to their KV cache, which fails on the first prompt of any model with a global
//! layer (every real Gemma 3); its sliding-window mask lets a query see one key more than Hugging Face's
//! (`i - j <= window` instead of `< window`); and it scales attention by the head size, ignoring
//! `query_pre_attn_scalar`. This model follows the reference: norms `x / rms(x) * (1 + w)` computed in f32,
//! embeddings scaled by `sqrt(hidden)`, q/k norms, rotary embeddings with the local base on sliding layers,
//! sandwich norms around attention and the GELU (tanh) feed-forward, tied output, optional soft-capping.

use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::Deserialize;

/// The keys of `config.json` this model reads (defaults filled by the loader).
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_local_base_freq: f64,
    pub query_pre_attn_scalar: f64,
    pub sliding_window: usize,
    pub sliding_window_pattern: usize,
    pub final_logit_softcapping: Option<f64>,
    pub attn_logit_softcapping: Option<f64>,
    pub attention_bias: bool,
}

/// An RMS norm with Gemma's `1 + w` scale, computed in f32.
struct Norm {
    scale: Tensor,
    eps: f64,
}

impl Norm {
    fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let w = vb.get(dim, "weight")?.to_dtype(DType::F32)?;
        Ok(Self {
            scale: (w + 1.0)?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let x = x.to_dtype(DType::F32)?;
        let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
        x.broadcast_div(&(ms + self.eps)?.sqrt()?)?
            .broadcast_mul(&self.scale)?
            .to_dtype(dtype)
    }
}

fn linear(vb: &VarBuilder, bias: bool, out: usize, inp: usize, name: &str) -> Result<Linear> {
    let vb = vb.pp(name);
    let w = vb.get((out, inp), "weight")?;
    let b = if bias {
        Some(vb.get(out, "bias")?)
    } else {
        None
    };
    Ok(Linear::new(w, b))
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: Norm,
    k_norm: Norm,
    input_norm: Norm,
    post_attn_norm: Norm,
    pre_ffn_norm: Norm,
    post_ffn_norm: Norm,
    gate: Linear,
    up: Linear,
    down: Linear,
    /// Sliding-window layer (local rotary base) or global.
    sliding: bool,
    /// Cached keys and values (batch, kv heads, positions, head size) and the position of the first.
    cache: Option<(Tensor, Tensor, usize)>,
}

/// The model with its KV cache.
pub struct Model {
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Norm,
    cfg: Config,
    inv_freq_local: Vec<f32>,
    inv_freq_global: Vec<f32>,
    dtype: DType,
    device: Device,
}

fn inv_freq(base: f64, dim: usize) -> Vec<f32> {
    (0..dim)
        .step_by(2)
        .map(|i| (1.0 / base.powf(i as f64 / dim as f64)) as f32)
        .collect()
}

impl Model {
    /// Builds the model from the weights under `model.`.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let vm = vb.pp("model");
        let (h, hd) = (cfg.hidden_size, cfg.head_dim);
        let (qd, kvd) = (cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd);
        let eps = cfg.rms_norm_eps;
        let embed = vm.get((cfg.vocab_size, h), "embed_tokens.weight")?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let vl = vm.pp(format!("layers.{i}"));
            let va = vl.pp("self_attn");
            let vf = vl.pp("mlp");
            let b = cfg.attention_bias;
            layers.push(Layer {
                q: linear(&va, b, qd, h, "q_proj")?,
                k: linear(&va, b, kvd, h, "k_proj")?,
                v: linear(&va, b, kvd, h, "v_proj")?,
                o: linear(&va, b, h, qd, "o_proj")?,
                q_norm: Norm::new(hd, eps, va.pp("q_norm"))?,
                k_norm: Norm::new(hd, eps, va.pp("k_norm"))?,
                input_norm: Norm::new(h, eps, vl.pp("input_layernorm"))?,
                post_attn_norm: Norm::new(h, eps, vl.pp("post_attention_layernorm"))?,
                pre_ffn_norm: Norm::new(h, eps, vl.pp("pre_feedforward_layernorm"))?,
                post_ffn_norm: Norm::new(h, eps, vl.pp("post_feedforward_layernorm"))?,
                gate: linear(&vf, false, cfg.intermediate_size, h, "gate_proj")?,
                up: linear(&vf, false, cfg.intermediate_size, h, "up_proj")?,
                down: linear(&vf, false, h, cfg.intermediate_size, "down_proj")?,
                sliding: !(i + 1).is_multiple_of(cfg.sliding_window_pattern.max(1)),
                cache: None,
            });
        }
        Ok(Self {
            embed,
            layers,
            norm: Norm::new(h, eps, vm.pp("norm"))?,
            inv_freq_local: inv_freq(cfg.rope_local_base_freq, hd),
            inv_freq_global: inv_freq(cfg.rope_theta, hd),
            cfg: cfg.clone(),
            dtype: vb.dtype(),
            device: vb.device().clone(),
        })
    }

    /// Forgets every cached position.
    pub fn clear_kv_cache(&mut self) {
        for l in &mut self.layers {
            l.cache = None;
        }
    }

    /// cos and sin of positions `pos..pos + n` for one rotary base, in the model's dtype.
    fn rotary(&self, inv: &[f32], pos: usize, n: usize) -> Result<(Tensor, Tensor)> {
        let angles: Vec<f32> = (pos..pos + n)
            .flat_map(|p| inv.iter().map(move |f| p as f32 * f))
            .collect();
        let t = Tensor::from_vec(angles, (n, inv.len()), &self.device)?;
        Ok((
            t.cos()?.to_dtype(self.dtype)?,
            t.sin()?.to_dtype(self.dtype)?,
        ))
    }

    /// Additive mask for queries at `pos..pos + n` over keys at `start..pos + n`.
    fn mask(&self, pos: usize, n: usize, start: usize, window: Option<usize>) -> Result<Tensor> {
        let keys = pos + n - start;
        let data: Vec<f32> = (0..n)
            .flat_map(|i| {
                let q = pos + i;
                (0..keys).map(move |j| {
                    let k = start + j;
                    let visible = k <= q && window.is_none_or(|w| q - k < w);
                    if visible { 0.0 } else { f32::NEG_INFINITY }
                })
            })
            .collect();
        Tensor::from_vec(data, (1, 1, n, keys), &self.device)
    }

    /// Logits of the last of `ids` (batch of one), run at positions `pos..`.
    pub fn forward(&mut self, ids: &Tensor, pos: usize) -> Result<Tensor> {
        let (b, n) = ids.dims2()?;
        let cfg = &self.cfg;
        let (nh, nkv, hd) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        );
        let mut x = candle_nn::Embedding::new(self.embed.clone(), cfg.hidden_size).forward(ids)?;
        x = (x * (cfg.hidden_size as f64).sqrt())?;
        let local = self.rotary(&self.inv_freq_local, pos, n)?;
        let global = self.rotary(&self.inv_freq_global, pos, n)?;
        let scale = cfg.query_pre_attn_scalar.powf(-0.5);
        let window = cfg.sliding_window;
        let soft_attn = cfg.attn_logit_softcapping;
        let mut masks: [Option<(usize, Tensor)>; 2] = [None, None];
        for li in 0..self.layers.len() {
            let sliding = self.layers[li].sliding;
            let start = self.layers[li].cache.as_ref().map_or(pos, |c| c.2);
            let kind = usize::from(sliding);
            let mask = match &masks[kind] {
                Some((s, m)) if *s == start => m.clone(),
                _ => {
                    let m = self
                        .mask(pos, n, start, sliding.then_some(window))?
                        .to_dtype(DType::F32)?;
                    masks[kind] = Some((start, m.clone()));
                    m
                }
            };
            let l = &mut self.layers[li];
            let (cos, sin) = if sliding { &local } else { &global };
            let residual = x.clone();
            let h = l.input_norm.forward(&x)?;
            let heads = |t: Tensor, count: usize| -> Result<Tensor> {
                t.reshape((b, n, count, hd))?.transpose(1, 2)?.contiguous()
            };
            let q = heads(l.q.forward(&h)?, nh)?;
            let k = heads(l.k.forward(&h)?, nkv)?;
            let v = heads(l.v.forward(&h)?, nkv)?;
            let q = candle_nn::rotary_emb::rope(&l.q_norm.forward(&q)?.contiguous()?, cos, sin)?;
            let k = candle_nn::rotary_emb::rope(&l.k_norm.forward(&k)?.contiguous()?, cos, sin)?;
            let (k, v) = match l.cache.take() {
                Some((ck, cv, _)) => (Tensor::cat(&[&ck, &k], 2)?, Tensor::cat(&[&cv, &v], 2)?),
                None => (k, v),
            };
            // A sliding layer keeps only the keys a later query can still see.
            let total = k.dim(2)?;
            let keep = if sliding { total.min(window) } else { total };
            let first = pos + n - keep;
            l.cache = Some((
                k.narrow(2, total - keep, keep)?.contiguous()?,
                v.narrow(2, total - keep, keep)?.contiguous()?,
                first,
            ));
            let rep = nh / nkv;
            let k = candle_transformers::utils::repeat_kv(k, rep)?.contiguous()?;
            let v = candle_transformers::utils::repeat_kv(v, rep)?.contiguous()?;
            let mut scores = (q
                .to_dtype(DType::F32)?
                .matmul(&k.to_dtype(DType::F32)?.t()?)?
                * scale)?;
            if let Some(c) = soft_attn {
                scores = ((scores / c)?.tanh()? * c)?;
            }
            let probs = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&mask)?)?;
            let att = probs
                .matmul(&v.to_dtype(DType::F32)?)?
                .to_dtype(self.dtype)?
                .transpose(1, 2)?
                .reshape((b, n, nh * hd))?;
            let o = l.post_attn_norm.forward(&l.o.forward(&att)?)?;
            x = (residual + o)?;
            let residual = x.clone();
            let h = l.pre_ffn_norm.forward(&x)?;
            let m = (l.gate.forward(&h)?.gelu()? * l.up.forward(&h)?)?;
            let m = l.post_ffn_norm.forward(&l.down.forward(&m)?)?;
            x = (residual + m)?;
        }
        let last = self.norm.forward(&x.narrow(1, n - 1, 1)?)?;
        let mut logits = last.broadcast_matmul(&self.embed.t()?)?;
        if let Some(c) = cfg.final_logit_softcapping {
            logits = ((logits / c)?.tanh()? * c)?;
        }
        Ok(logits)
    }
}
