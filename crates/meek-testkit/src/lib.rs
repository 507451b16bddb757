//! Tiny generated models for tests: a GGUF of a few hundred kilobytes with random weights and a real byte-level
//! BPE vocabulary, chat template and special tokens, so loading, tokenizing and generation run in milliseconds.
//! The architecture is llama by default; qwen2 (q/k/v biases), qwen3 (q/k norms) and gemma3 (q/k norms, sandwich
//! norms, key length apart from hidden / heads, sliding windows) add their tensors and metadata. Norm weights and
//! biases are random too, so a forward pass that ignores one of them shows. Deterministic for a given seed.
//!
//! Also tiny Hugging Face checkpoints and their conversion to GGUF ([`write_tiny_checkpoint`],
//! [`checkpoint_to_gguf`]), and a float64 Gemma 3 forward pass to check the engine against
//! ([`gemma3_reference`]).
//!
//! Dev-only: used through `[dev-dependencies]` (and by the `meek-fuzz` tool), never by a crate that ships in the
//! `meekbench` binary. It depends on candle-core directly, since it writes GGUF and safetensors files with
//! Candle's writers, and on meek-engine for the tokenizer tables the tiny vocabulary shares with it.

mod checkpoint;
mod gguf;
pub mod hub;
mod peer;
mod phi3;
mod reference;

pub use candle_core::DType;
pub use candle_core::quantized::GgmlDType;
pub use checkpoint::{
    TinyCheckpoint, checkpoint_to_gguf, write_tiny_checkpoint, write_tiny_tokenizer_json,
};
pub use gguf::{
    CHAT_TEMPLATE, MERGES, SPECIALS, THINK_TOKENS, THINKING_TEMPLATE, TinySpec, rewrite_gguf,
    vocabulary, vocabulary_of, write_gguf, write_tiny_llama,
};
pub use peer::peer_bin;
pub use phi3::phi3_layout;
pub use reference::gemma3_reference;

/// `n` values in `[-1, 1)` from a fixed linear congruential stream (Knuth's MMIX constants, the top 31 bits of
/// each state), for the kernel tests and benchmarks: the same seed gives the same values. (meek-kernels' own unit
/// tests keep a copy, since meek-kernels is below this crate.)
pub fn random_values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Two logit vectors of the same length: the largest |a - b| relative to the largest |b|, and whether the
/// arg-maxes agree.
pub fn compare_logits(a: &[f32], b: &[f32]) -> (f32, bool) {
    let top = |v: &[f32]| {
        v.iter()
            .enumerate()
            .max_by(|x, y| x.1.total_cmp(y.1))
            .unwrap()
            .0
    };
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    (diff / scale, top(a) == top(b))
}

/// The random weights' stream: SplitMix64 (meek-stats' generator) mapped to `[-1, 1)` with 24 bits.
struct Rng(meek_stats::SplitMix64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(meek_stats::SplitMix64::new(seed))
    }

    fn next_f32(&mut self) -> f32 {
        (self.0.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// Two engines on the same sequence, teacher-forced: a prefill of `seq[..=first]`, then one token at a time to the
/// end. Returns how many positions' top-1 choices agree, the number of positions, and the largest logit
/// difference relative to `b`'s largest logit ([`compare_logits`]).
pub fn teacher_forced(
    a: &mut meek_engine::Engine,
    b: &mut meek_engine::Engine,
    seq: &[u32],
    first: usize,
) -> (usize, usize, f32) {
    let (mut same, mut worst) = (0, 0f32);
    for i in first..seq.len() {
        let (x, y) = if i == first {
            (
                a.logits(&seq[..=i], 0).unwrap(),
                b.logits(&seq[..=i], 0).unwrap(),
            )
        } else {
            (
                a.logits(&seq[i..=i], i).unwrap(),
                b.logits(&seq[i..=i], i).unwrap(),
            )
        };
        let (d, top) = compare_logits(&x, &y);
        same += usize::from(top);
        worst = worst.max(d);
    }
    (same, seq.len().saturating_sub(first), worst)
}
