//! Independent reference implementations to check the engine's own forward passes against.

use std::path::Path;

use candle_core::Device;
use candle_core::quantized::gguf_file;
use fs_err as fs;

/// A float64 Gemma 3 forward pass written from the model's definition (Hugging Face's `Gemma3ForCausalLM`, with
/// the GGUF converter's folded norms), on dequantized weights: the independent check of the own gemma3 path
/// (candle-transformers 0.11.1's quantized Gemma 3 cannot serve: it applies SiLU where Gemma uses GELU).
pub fn gemma3_reference(path: &Path, tokens: &[u32]) -> Vec<f32> {
    let mut f = fs::File::open(path).unwrap();
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
