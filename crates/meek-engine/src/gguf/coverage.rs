//! What a GGUF file asks of the forward pass, against what the engine implements.
//!
//! A GGUF names its computation by its tensors and its `{arch}.*` keys: a Llama 3.1 file adds `rope_freqs.weight`
//! (the llama3 rotary frequency factors), a Qwen2.5 long-context file `qwen2.rope.scaling.type = "yarn"`, a Gemma 2
//! file `final_logit_softcapping`. A loader that reads only the tensors and keys it knows runs such a file without a
//! word, and every token then comes from another model than the file's. So [`check`] goes the other way round:
//! every tensor and every key of the file's architecture must be one the engine reads (or one that provably does
//! not change the computation, such as `context_length`, or a neutral value, such as a rotary scaling factor of 1);
//! anything else refuses the load naming the tensor or key, and what it is for when that is known.
//!
//! The names and defaults are llama.cpp's (`src/llama-arch.cpp`, `src/llama-model.cpp`), the reference this engine
//! is checked against. Both forward passes (meekbench's own and candle-transformers') read the same set, except the
//! mixture-of-experts tensors, which only candle-transformers' llama reads (the own path then hands the file over).

use candle_core::quantized::gguf_file::{Content, Value};

use crate::cpu::decoder::{Arch, ROPE_FACTORS_LONG, ROPE_FACTORS_SHORT, ROPE_FREQS, arch_of, md_u};

/// Keys (after `{arch}.`) that the engine reads, or that do not change the computation of the families it runs.
const READ_KEYS: &[&str] = &[
    "vocab_size",
    "context_length",
    "embedding_length",
    "block_count",
    "feed_forward_length",
    "attention.head_count",
    "attention.head_count_kv",
    "attention.key_length",
    "attention.value_length",
    "attention.layer_norm_rms_epsilon",
    "rope.dimension_count",
    "rope.freq_base",
    // Whether the model was fine-tuned at a scaled context: informs, computes nothing.
    "rope.scaling.finetuned",
    // Used only by YaRN, which is refused below.
    "rope.scaling.original_context_length",
];

/// Keys that only Gemma 3 files may carry (the own path reads them).
const GEMMA3_KEYS: &[&str] = &["attention.sliding_window", "rope.freq_base_swa"];

/// Keys that only Gemma 2 files may carry (the own path reads them; the soft-caps must be positive).
const GEMMA2_KEYS: &[&str] = &[
    "attention.sliding_window",
    "rope.freq_base_swa",
    "attn_logit_softcapping",
    "final_logit_softcapping",
];

/// Keys that only Phi-3 files may carry (the own path reads them: the attention factor multiplies the scores by its
/// square, the window bounds the positions a run may use).
const PHI3_KEYS: &[&str] = &["attention.sliding_window", "rope.scaling.attn_factor"];

/// Mixture-of-experts keys of llama files (Mixtral), which candle-transformers' llama reads.
const MOE_KEYS: &[&str] = &["expert_count", "expert_used_count"];

/// What known keys that the engine does not implement are for, to say so in the refusal.
const KNOWN_KEYS: &[(&str, &str)] = &[
    (
        "attn_logit_softcapping",
        "attention logit soft-capping (Gemma 2)",
    ),
    (
        "final_logit_softcapping",
        "final logit soft-capping (Gemma 2)",
    ),
    ("attention.sliding_window", "sliding-window attention"),
    (
        "attention.sliding_window_pattern",
        "a sliding-window layer pattern",
    ),
    (
        "rope.freq_base_swa",
        "a separate rotary base for sliding-window layers",
    ),
    ("attention.scale", "a non-standard attention scale"),
    (
        "attention.layer_norm_epsilon",
        "LayerNorm (the engine implements RMSNorm)",
    ),
    ("attention.causal", "non-causal attention"),
    ("attention.max_alibi_bias", "ALiBi position biases"),
    ("attention.clamp_kqv", "clamped q/k/v activations"),
    ("logit_scale", "scaled output logits"),
    ("embedding_scale", "a scaled token embedding"),
    ("residual_scale", "scaled residuals"),
    ("pooling_type", "pooled outputs (an embedding model)"),
    ("rope.dimension_sections", "multi-section rotary embedding"),
    ("expert_count", "a mixture of experts"),
    ("expert_used_count", "a mixture of experts"),
    ("expert_shared_count", "shared experts"),
    ("expert_weights_scale", "scaled expert weights"),
    ("expert_weights_norm", "normalised expert weights"),
    ("expert_gating_func", "an expert gating function"),
    ("use_parallel_residual", "parallel residual blocks"),
];

/// Tensors (after `blk.N.`) of every layer of every family the engine runs.
const LAYER_TENSORS: &[&str] = &[
    "attn_norm.weight",
    "attn_q.weight",
    "attn_k.weight",
    "attn_v.weight",
    "attn_output.weight",
    "ffn_norm.weight",
    "ffn_gate.weight",
    "ffn_up.weight",
    "ffn_down.weight",
];

/// What known tensors that the engine does not implement are for.
const KNOWN_TENSORS: &[(&str, &str)] = &[
    (
        "rope_freqs.weight",
        "llama3 rotary frequency factors (Llama 3.1, 3.2 and their distills)",
    ),
    (
        "rope_factors_long.weight",
        "LongRoPE rotary factors (Phi-3, Phi-3.5, Phi-4-mini)",
    ),
    (
        "rope_factors_short.weight",
        "LongRoPE rotary factors (Phi-3, Phi-3.5, Phi-4-mini)",
    ),
    ("attn_qkv.weight", "a fused q/k/v projection (Phi-3)"),
    ("attn_q.bias", "attention biases"),
    ("attn_k.bias", "attention biases"),
    ("attn_v.bias", "attention biases"),
    ("attn_output.bias", "an attention output bias"),
    ("ffn_up.bias", "feed-forward biases"),
    ("ffn_down.bias", "feed-forward biases"),
    ("ffn_gate.bias", "feed-forward biases"),
    ("attn_q_norm.weight", "q/k norms"),
    ("attn_k_norm.weight", "q/k norms"),
    ("post_attention_norm.weight", "sandwich norms"),
    ("post_ffw_norm.weight", "sandwich norms"),
    ("attn_rot_embd", "a stored rotary table"),
    ("ffn_gate_inp.weight", "a mixture of experts"),
    ("ffn_gate_exps.weight", "a mixture of experts"),
    ("ffn_up_exps.weight", "a mixture of experts"),
    ("ffn_down_exps.weight", "a mixture of experts"),
    ("ffn_gate_shexp.weight", "shared experts"),
    ("output_norm.bias", "LayerNorm biases"),
    ("attn_norm.bias", "LayerNorm biases"),
    ("ffn_norm.bias", "LayerNorm biases"),
];

/// Layer tensors that only some families carry.
fn family_tensors(arch: Arch, moe: bool) -> &'static [&'static str] {
    match arch {
        Arch::Llama if moe => &[
            "ffn_gate_inp.weight",
            "ffn_gate_exps.weight",
            "ffn_up_exps.weight",
            "ffn_down_exps.weight",
        ],
        Arch::Llama => &[],
        Arch::Qwen2 => &["attn_q.bias", "attn_k.bias", "attn_v.bias"],
        Arch::Qwen3 => &["attn_q_norm.weight", "attn_k_norm.weight"],
        Arch::Gemma3 => &[
            "attn_q_norm.weight",
            "attn_k_norm.weight",
            "post_attention_norm.weight",
            "post_ffw_norm.weight",
        ],
        Arch::Gemma2 => &["post_attention_norm.weight", "post_ffw_norm.weight"],
        Arch::Smollm3 => &[],
        Arch::Phi3 => &["attn_qkv.weight"],
    }
}

/// Local (sliding-window) layers per global one in Gemma 3, the only pattern the own path implements.
pub const GEMMA3_PATTERN: u64 = 6;
/// Gemma 2's pattern: local and global layers alternate, the first local.
pub const GEMMA2_PATTERN: u64 = 2;

/// Refuses a file that asks for a tensor or a computation the engine does not implement; `Ok` when everything in
/// it is read or provably neutral. Files of architectures the engine does not run are refused before this.
pub fn check(content: &Content) -> Result<(), String> {
    let arch = arch_of(content)?;
    let prefix = format!("{}.", arch.name());
    let moe =
        arch == Arch::Llama && md_u(content, &format!("{prefix}expert_count")).unwrap_or(0) > 1;
    let mut keys: Vec<&String> = content
        .metadata
        .keys()
        .filter(|k| k.starts_with(&prefix))
        .collect();
    keys.sort();
    for key in keys {
        check_key(content, arch, key, &key[prefix.len()..])?;
    }
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let family = family_tensors(arch, moe);
    for name in names {
        check_tensor(arch, family, name)?;
    }
    Ok(())
}

fn check_key(content: &Content, arch: Arch, key: &str, rest: &str) -> Result<(), String> {
    let value = &content.metadata[key];
    if READ_KEYS.contains(&rest)
        || (arch == Arch::Gemma3 && GEMMA3_KEYS.contains(&rest))
        || (arch == Arch::Gemma2 && GEMMA2_KEYS.contains(&rest))
        || (arch == Arch::Phi3 && PHI3_KEYS.contains(&rest))
        || (arch == Arch::Llama && MOE_KEYS.contains(&rest))
    {
        return Ok(());
    }
    let neutral = match rest {
        // llama.cpp's default type is `linear`; with a factor of 1 (or 0, "unset") it scales nothing.
        "rope.scaling.type" => {
            matches!(value.to_string().map(String::as_str), Ok("none" | "linear"))
        }
        // Linear scaling is implemented by the own path at any factor (see `own_path_only` for the other path).
        "rope.scaling.factor" | "rope.scale_linear" => {
            value.to_f32().is_ok_and(|f| f == 0.0 || f == 1.0)
                || (linear(content, arch.name())
                    && value.to_f32().is_ok_and(|f| f.is_finite() && f >= 1.0))
        }
        "rope.scaling.attn_factor" => value.to_f32().is_ok_and(|f| f == 1.0),
        "attention.causal" => value.to_bool().is_ok_and(|c| c),
        "attn_logit_softcapping" | "final_logit_softcapping" => {
            value.to_f32().is_ok_and(|f| f == 0.0)
        }
        "expert_count" => value.to_u32().is_ok_and(|n| n <= 1),
        "attention.sliding_window_pattern" if arch == Arch::Gemma3 => {
            pattern_is_standard(content, value, "gemma3", GEMMA3_PATTERN)
        }
        "attention.sliding_window_pattern" if arch == Arch::Gemma2 => {
            pattern_is_standard(content, value, "gemma2", GEMMA2_PATTERN)
        }
        _ => false,
    };
    if neutral {
        return Ok(());
    }
    let what = KNOWN_KEYS
        .iter()
        .find(|(k, _)| *k == rest)
        .map_or(String::new(), |(_, w)| format!(" ({w})"));
    let scaling = if rest == "rope.scaling.type" || rest.starts_with("rope.scaling.") {
        " (rotary scaling: none, llama3 frequency factors and linear with a factor of at least 1 are implemented)"
    } else {
        ""
    };
    Err(format!(
        "metadata key `{key}` = {}{what}{scaling} is not implemented by meekbench's engine; it changes the \
         computation, so the file is refused rather than run without it",
        show(value)
    ))
}

/// The linear rotary scale of a file of architecture `a` (positions are multiplied by it): `1 / factor`, read as
/// llama.cpp reads it (`rope.scaling.factor`, else the older `rope.scale_linear`; 0 or absent: 1). Only meaningful
/// after [`check`] accepted the file.
pub fn rope_scale(content: &Content, a: &str) -> f32 {
    linear_factor(content, a).map_or(1.0, |f| 1.0 / f)
}

/// The linear rotary factor as the file states it, when it scales (above 0, type linear); see [`rope_scale`].
fn linear_factor(content: &Content, a: &str) -> Option<f32> {
    let get = |k: &str| {
        content
            .metadata
            .get(&format!("{a}.{k}"))
            .and_then(|v| v.to_f32().ok())
    };
    get("rope.scaling.factor")
        .or_else(|| get("rope.scale_linear"))
        .filter(|&f| f > 0.0 && f != 1.0 && linear(content, a))
}

/// Whether the file's rotary scaling type is `linear` (llama.cpp's default when the key is absent).
fn linear(content: &Content, a: &str) -> bool {
    content
        .metadata
        .get(&format!("{a}.rope.scaling.type"))
        .and_then(|v| v.to_string().ok())
        .is_none_or(|t| t == "linear")
}

/// What a file accepted by [`check`] asks that only meekbench's own CPU path implements (candle-transformers'
/// quantized llama reads neither llama3 frequency factors nor rotary scaling, and would run without them), or
/// `None`.
pub fn own_path_only(content: &Content) -> Option<String> {
    let arch = arch_of(content).ok()?;
    if content.tensor_infos.contains_key(ROPE_FREQS) {
        return Some(format!("`{ROPE_FREQS}` (llama3 rotary frequency factors)"));
    }
    linear_factor(content, arch.name()).map(|f| format!("linear rotary scaling by a factor of {f}"))
}

/// Whether an `{a}.attention.sliding_window_pattern` asks for the pattern the own path implements: the number
/// `pattern`, or the per-layer array llama.cpp writes for it (`true` for a local layer: every layer but each
/// `pattern`-th, as llama.cpp's `set_swa_pattern`: Gemma 3 five local to one global, Gemma 2 alternating).
fn pattern_is_standard(content: &Content, value: &Value, a: &str, pattern: u64) -> bool {
    match value {
        Value::Array(layers) => {
            let n = content
                .metadata
                .get(&format!("{a}.block_count"))
                .and_then(|v| v.to_u32().ok())
                .map_or(0, |n| n as usize);
            layers.len() == n
                && layers.iter().enumerate().all(|(l, v)| {
                    v.to_bool()
                        .is_ok_and(|local| local != (l as u64 + 1).is_multiple_of(pattern))
                })
        }
        v => v.to_u32().is_ok_and(|n| u64::from(n) == pattern),
    }
}

fn check_tensor(arch: Arch, family: &[&str], name: &str) -> Result<(), String> {
    // Gemma 2's output matrix is always the embedding: llama.cpp refuses a file with its own.
    if matches!(name, "token_embd.weight" | "output_norm.weight")
        || (name == "output.weight" && arch != Arch::Gemma2)
        || (arch == Arch::Llama && name == ROPE_FREQS)
        || (arch == Arch::Phi3 && matches!(name, ROPE_FACTORS_SHORT | ROPE_FACTORS_LONG))
    {
        return Ok(());
    }
    let layer_part = name
        .strip_prefix("blk.")
        .and_then(|r| r.split_once('.'))
        .filter(|(n, _)| n.parse::<u32>().is_ok())
        .map(|(_, rest)| rest);
    if let Some(rest) = layer_part
        && (LAYER_TENSORS.contains(&rest) || family.contains(&rest))
    {
        return Ok(());
    }
    let bare = layer_part.unwrap_or(name);
    let what = KNOWN_TENSORS
        .iter()
        .find(|(k, _)| *k == bare || bare.starts_with(&format!("{k}.")))
        .map_or(String::new(), |(_, w)| format!(" ({w})"));
    Err(format!(
        "tensor `{name}`{what} is not implemented by meekbench's engine for {} files; the file is refused rather \
         than run without it",
        arch.name()
    ))
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{:?}", s.chars().take(64).collect::<String>()),
        Value::Array(a) => format!("an array of {}", a.len()),
        other => format!("{other:?}").chars().take(64).collect(),
    }
}
