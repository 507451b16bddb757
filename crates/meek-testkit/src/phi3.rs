//! A llama file rewritten in Phi-3's layout, for the tests of that family: `phi3.*` keys, q/k/v fused into
//! `attn_qkv`, gate and up into `ffn_up` (gate first), optionally with LongRoPE factors and an attention factor.

use candle_core::quantized::{QTensor, gguf_file::Value};
use candle_core::{Device, Tensor};

/// A GGUF's metadata, as [`crate::rewrite_gguf`] edits it.
type Metadata = Vec<(String, Value)>;
/// Its tensors.
type Tensors = Vec<(String, QTensor)>;

/// Rows of `parts` stacked into one matrix, in the first part's type.
fn fused(parts: &[&QTensor]) -> QTensor {
    let ws: Vec<Tensor> = parts
        .iter()
        .map(|t| {
            t.dequantize(&Device::Cpu)
                .expect("dequantize a test tensor")
        })
        .collect();
    QTensor::quantize(
        &Tensor::cat(&ws, 0).expect("stack test tensors"),
        parts[0].dtype(),
    )
    .expect("quantize a test tensor")
}

/// The edit for [`crate::rewrite_gguf`] that turns a llama file of `layers` layers into Phi-3's layout; with
/// `factors = Some((short, attn_factor, original_context))`, `short` become the LongRoPE short factors (the long
/// ones four times as large), with the attention factor and the original context where the long ones begin.
pub fn phi3_layout(
    layers: usize,
    factors: Option<(Vec<f32>, f32, u32)>,
) -> impl FnOnce(&mut Metadata, &mut Tensors) {
    move |md, tensors| {
        for (k, v) in md.iter_mut() {
            if let Some(rest) = k.strip_prefix("llama.") {
                *k = format!("phi3.{rest}");
            }
            if k == "general.architecture" {
                *v = Value::String("phi3".into());
            }
        }
        let take = |tensors: &mut Tensors, name: String| {
            let at = tensors
                .iter()
                .position(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("the llama file has no {name}"));
            tensors.remove(at).1
        };
        for l in 0..layers {
            let w = |s: &str| format!("blk.{l}.{s}.weight");
            let (q, k, v) = (
                take(tensors, w("attn_q")),
                take(tensors, w("attn_k")),
                take(tensors, w("attn_v")),
            );
            tensors.push((w("attn_qkv"), fused(&[&q, &k, &v])));
            let (g, u) = (take(tensors, w("ffn_gate")), take(tensors, w("ffn_up")));
            tensors.push((w("ffn_up"), fused(&[&g, &u])));
        }
        if let Some((short, attn_factor, original)) = factors {
            let mut set = |key: &str, v: Value| {
                md.retain(|(k, _)| k != key);
                md.push((key.to_string(), v));
            };
            set(
                "phi3.rope.scaling.original_context_length",
                Value::U32(original),
            );
            set("phi3.rope.scaling.attn_factor", Value::F32(attn_factor));
            let long: Vec<f32> = short.iter().map(|f| f * 4.0).collect();
            for (name, f) in [
                ("rope_factors_short.weight", short),
                ("rope_factors_long.weight", long),
            ] {
                let n = f.len();
                let t = Tensor::from_vec(f, n, &Device::Cpu).expect("factors tensor");
                tensors.push((
                    name.into(),
                    QTensor::quantize(&t, candle_core::quantized::GgmlDType::F32)
                        .expect("factors tensor"),
                ));
            }
        }
    }
}
