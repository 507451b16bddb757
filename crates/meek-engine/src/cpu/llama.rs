//! The llama-architecture forward pass (SmolLM2, Llama 3.x) on plain buffers.
//!
//! Layout follows llama.cpp's GGUF conventions: matrices are `out x in`, rotary embeddings rotate interleaved
//! pairs `(2i, 2i + 1)` of each head ("NORM" in llama.cpp), the output matrix falls back to the token embedding
//! when absent (tied weights). Only the last position's logits are computed.

use std::io::{Read, Seek, SeekFrom};

use candle_core::Device;
use candle_core::quantized::gguf_file::Content;

use super::quant::{self, Format, KernelPath, Q8Block, QK};
use super::{QMat, Shared, matmul, matmul_many, parallel};

/// Hyper-parameters from the GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
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
    /// Rotary base.
    pub rope_base: f32,
    /// Vocabulary size (rows of the output matrix).
    pub vocab: usize,
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: QMat,
    wk: QMat,
    wv: QMat,
    wo: QMat,
    ffn_norm: Vec<f32>,
    gate: QMat,
    up: QMat,
    down: QMat,
}

/// A llama model ready to run on the CPU.
pub struct Llama {
    path: KernelPath,
    cfg: Config,
    embed: QMat,
    output: Option<QMat>,
    norm: Vec<f32>,
    layers: Vec<Layer>,
    /// Per layer: keys then values, `capacity * kv_heads * head_dim` each.
    kv: Vec<(Vec<f32>, Vec<f32>)>,
    capacity: usize,
    logits: Vec<f32>,
}

impl std::fmt::Debug for Llama {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llama")
            .field("cfg", &self.cfg)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn md_u(content: &Content, key: &str) -> Result<usize, String> {
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

/// Why this path cannot run a file (the engine then uses candle-transformers), or `None` when it can.
pub fn unsupported(content: &Content) -> Option<String> {
    if md_u(content, "llama.expert_count").unwrap_or(0) > 1 {
        return Some("mixture of experts".into());
    }
    for (name, info) in &content.tensor_infos {
        let dims = info.shape.dims();
        if dims.len() == 2 && Format::from_ggml(info.ggml_dtype).is_none() {
            return Some(format!("tensor {name} is {:?}", info.ggml_dtype));
        }
    }
    let head_dim = md_u(content, "llama.embedding_length").ok()?
        / md_u(content, "llama.attention.head_count").ok()?;
    if md_u(content, "llama.rope.dimension_count").is_ok_and(|d| d != head_dim) {
        return Some("partial rotary embedding".into());
    }
    None
}

impl Llama {
    /// Loads the weights of a llama GGUF (the caller checked [`unsupported`]).
    pub fn load<R: Read + Seek>(
        content: &Content,
        reader: &mut R,
        path: KernelPath,
    ) -> Result<Self, String> {
        let hidden = md_u(content, "llama.embedding_length")?;
        let heads = md_u(content, "llama.attention.head_count")?;
        let embed = read_mat(content, reader, "token_embd.weight")?;
        let cfg = Config {
            layers: md_u(content, "llama.block_count")?,
            hidden,
            heads,
            kv_heads: md_u(content, "llama.attention.head_count_kv").unwrap_or(heads),
            head_dim: hidden / heads,
            ffn: md_u(content, "llama.feed_forward_length")?,
            eps: md_f(content, "llama.attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            rope_base: md_f(content, "llama.rope.freq_base").unwrap_or(10_000.0),
            vocab: embed.rows,
        };
        let output = if content.tensor_infos.contains_key("output.weight") {
            Some(read_mat(content, reader, "output.weight")?)
        } else {
            None
        };
        let norm = read_vec(content, reader, "output_norm.weight")?;
        let mut layers = Vec::with_capacity(cfg.layers);
        for l in 0..cfg.layers {
            let n = |s: &str| format!("blk.{l}.{s}.weight");
            layers.push(Layer {
                attn_norm: read_vec(content, reader, &n("attn_norm"))?,
                wq: read_mat(content, reader, &n("attn_q"))?,
                wk: read_mat(content, reader, &n("attn_k"))?,
                wv: read_mat(content, reader, &n("attn_v"))?,
                wo: read_mat(content, reader, &n("attn_output"))?,
                ffn_norm: read_vec(content, reader, &n("ffn_norm"))?,
                gate: read_mat(content, reader, &n("ffn_gate"))?,
                up: read_mat(content, reader, &n("ffn_up"))?,
                down: read_mat(content, reader, &n("ffn_down"))?,
            });
        }
        let vocab = output.as_ref().map_or(cfg.vocab, |o| o.rows);
        Ok(Self {
            path,
            cfg: Config { vocab, ..cfg },
            embed,
            output,
            norm,
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
        let c = self.cfg.clone();
        let n = tokens.len();
        self.reserve(pos + n);
        let (h, kv_dim, qd) = (c.hidden, c.kv_heads * c.head_dim, c.heads * c.head_dim);
        let mut x = vec![0f32; n * h];
        for (t, &tok) in tokens.iter().enumerate() {
            quant::dequantize_row(
                self.embed.fmt,
                self.embed.row(tok as usize),
                &mut x[t * h..(t + 1) * h],
            );
        }
        let blocks = |cols: usize| vec![Q8Block::default(); n * cols / QK];
        let (mut xn, mut xq) = (vec![0f32; n * h], blocks(h));
        let (mut q, mut k, mut v) = (
            vec![0f32; n * qd],
            vec![0f32; n * kv_dim],
            vec![0f32; n * kv_dim],
        );
        let (mut att, mut attq, mut o) = (vec![0f32; n * qd], blocks(qd), vec![0f32; n * h]);
        let (mut g, mut u, mut hq) = (vec![0f32; n * c.ffn], vec![0f32; n * c.ffn], blocks(c.ffn));
        let (cos, sin) = rope_table(&c, pos, n);
        for (l, layer) in self.layers.iter().enumerate() {
            rms_norm(&x, &layer.attn_norm, c.eps, &mut xn);
            quantize(&xn, h, &mut xq);
            matmul_many(
                self.path,
                &mut [
                    (&layer.wq, &mut q),
                    (&layer.wk, &mut k),
                    (&layer.wv, &mut v),
                ],
                &xq,
                n,
            );
            rope(&mut q, c.head_dim, &cos, &sin);
            rope(&mut k, c.head_dim, &cos, &sin);
            let (kc, vc) = &mut self.kv[l];
            kc[pos * kv_dim..(pos + n) * kv_dim].copy_from_slice(&k);
            vc[pos * kv_dim..(pos + n) * kv_dim].copy_from_slice(&v);
            attention(&c, &q, kc, vc, pos, n, &mut att);
            quantize(&att, qd, &mut attq);
            matmul(self.path, &layer.wo, &attq, n, &mut o);
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            rms_norm(&x, &layer.ffn_norm, c.eps, &mut xn);
            quantize(&xn, h, &mut xq);
            matmul_many(
                self.path,
                &mut [(&layer.gate, &mut g), (&layer.up, &mut u)],
                &xq,
                n,
            );
            g.iter_mut()
                .zip(&u)
                .for_each(|(a, b)| *a = *a / (1.0 + (-*a).exp()) * b);
            quantize(&g, c.ffn, &mut hq);
            matmul(self.path, &layer.down, &hq, n, &mut o);
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
        }
        let last = &x[(n - 1) * h..];
        let mut normed = vec![0f32; h];
        rms_norm(last, &self.norm, c.eps, &mut normed);
        let mut lq = vec![Q8Block::default(); h / QK];
        quant::quantize_row(&normed, &mut lq);
        let out = self.output.as_ref().unwrap_or(&self.embed);
        matmul(self.path, out, &lq, 1, &mut self.logits);
        &self.logits
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

fn read_mat<R: Read + Seek>(content: &Content, reader: &mut R, name: &str) -> Result<QMat, String> {
    let info = content
        .tensor_infos
        .get(name)
        .ok_or_else(|| format!("tensor `{name}` is missing"))?;
    let fmt = Format::from_ggml(info.ggml_dtype)
        .ok_or_else(|| format!("tensor `{name}` is {:?}", info.ggml_dtype))?;
    let (rows, cols) = info
        .shape
        .dims2()
        .map_err(|e| format!("tensor `{name}`: {e}"))?;
    QMat::new(fmt, rows, cols, read_bytes(content, reader, name)?)
        .map_err(|e| format!("tensor `{name}`: {e}"))
}

fn read_vec<R: Read + Seek>(
    content: &Content,
    reader: &mut R,
    name: &str,
) -> Result<Vec<f32>, String> {
    let t = content
        .tensor(reader, name, &Device::Cpu)
        .and_then(|q| q.dequantize(&Device::Cpu))
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>());
    t.map_err(|e| format!("tensor `{name}`: {e}"))
}

fn quantize(x: &[f32], cols: usize, out: &mut [Q8Block]) {
    let bpr = cols / QK;
    for (row, o) in x.chunks_exact(cols).zip(out.chunks_exact_mut(bpr)) {
        quant::quantize_row(row, o);
    }
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

/// cos and sin for positions `pos..pos + n`, `head_dim / 2` each.
fn rope_table(c: &Config, pos: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
    let half = c.head_dim / 2;
    let mut cos = Vec::with_capacity(n * half);
    let mut sin = Vec::with_capacity(n * half);
    for p in pos..pos + n {
        for i in 0..half {
            let theta = (p as f32) / c.rope_base.powf(2.0 * i as f32 / c.head_dim as f32);
            cos.push(theta.cos());
            sin.push(theta.sin());
        }
    }
    (cos, sin)
}

/// Rotates interleaved pairs of every head of every token in `x` (`n` rows of whole heads).
fn rope(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
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
                let (a, b) = (head[2 * i], head[2 * i + 1]);
                head[2 * i] = a * c[i] - b * s[i];
                head[2 * i + 1] = a * s[i] + b * c[i];
            }
        }
    }
}

/// `Σ a_i b_i` with eight partial sums, a shape the compiler vectorizes.
#[inline]
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
#[inline]
fn axpy(w: f32, x: &[f32], y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(a, b)| *a += w * b);
}

/// Causal grouped-query attention of `n` new queries at positions `pos..` over the cache.
fn attention(c: &Config, q: &[f32], kc: &[f32], vc: &[f32], pos: usize, n: usize, out: &mut [f32]) {
    let (hd, kv_dim, qd) = (c.head_dim, c.kv_heads * c.head_dim, c.heads * c.head_dim);
    let group = c.heads / c.kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let dst = Shared(out.as_mut_ptr());
    let work = |range: std::ops::Range<usize>| {
        let mut scores = vec![0f32; pos + n];
        let mut acc = vec![0f32; hd];
        for item in range {
            let (t, head) = (item / c.heads, item % c.heads);
            let kvh = head / group;
            let qv = &q[t * qd + head * hd..t * qd + (head + 1) * hd];
            let len = pos + t + 1;
            let mut max = f32::NEG_INFINITY;
            for (j, s) in scores[..len].iter_mut().enumerate() {
                let kv = &kc[j * kv_dim + kvh * hd..j * kv_dim + (kvh + 1) * hd];
                *s = dot_f32(qv, kv) * scale;
                max = max.max(*s);
            }
            let mut total = 0f32;
            for s in &mut scores[..len] {
                *s = (*s - max).exp();
                total += *s;
            }
            acc.fill(0.0);
            for (j, s) in scores[..len].iter().enumerate() {
                let vv = &vc[j * kv_dim + kvh * hd..j * kv_dim + (kvh + 1) * hd];
                axpy(s / total, vv, &mut acc);
            }
            for (d, a) in acc.iter().enumerate() {
                // SAFETY: each (token, head) item owns its own `hd` outputs.
                unsafe { dst.write(t * qd + head * hd + d, *a) };
            }
        }
    };
    // One short query (decoding) is not worth waking the threads for.
    if n == 1 && pos < 256 {
        work(0..c.heads);
    } else {
        parallel(n * c.heads, work);
    }
}
