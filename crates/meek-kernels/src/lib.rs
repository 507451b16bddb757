//! meekbench's quantized CPU kernels, on plain buffers and without Candle: GGML block formats and their dot
//! products against 8-bit-quantized activations, and the matrix multiplies built on them.
//!
//! Candle's CPU backend computes Q4_1 dot products with scalar code, has no blocked multiply for quantized prefill
//! without AVX512-VNNI, and allocates a tensor per operation, which for a 135M-parameter model costs more than the
//! arithmetic. These kernels keep the weights in their GGUF block formats ([`QMat`]; the layouts are described at
//! [`Format`]), repacked at load into groups of eight interleaved rows on the x86 paths ([`QMat::interleaved`],
//! the layout described in `interleave.rs`), and quantize the activations once per multiply ([`QActs`]) into
//! [`Q8Block`]s (32 signed bytes, a scale and their sum), the scheme llama.cpp calls Q8_1, or [`Q8KBlock`]s for the
//! K-quants, so each weight block costs integer dot products. Each dot product has a portable version and SIMD
//! versions chosen at run time ([`KernelPath`]).
//!
//! Threads: the multiplies share their rows out through the [`Parallel`] trait, so they run on the caller's pool
//! (meek-engine passes [`Pool`], which keeps going when a neighbour process takes a core; Candle's barrier pool
//! with `MEEKBENCH_POOL=candle`); [`Serial`] runs them on the calling thread.
//!
//! Files, one job each: `format.rs` (block formats), `interleave.rs` (matrices repacked in groups of eight rows),
//! `acts.rs` (activation quantization), `path.rs` (choosing the path), `portable.rs` and `x86.rs` (the kernels),
//! `dispatch.rs` (from a path to its kernel), `matmul.rs` (the tiled multiplies), `parallel.rs` (the pool hook)
//! and `pool.rs` (the pool).

mod acts;
mod dispatch;
mod format;
mod interleave;
mod load;
mod matmul;
mod parallel;
mod path;
mod pool;
mod portable;
mod quota;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use acts::{Q8Block, Q8KBlock, quantize_row, quantize_row_k};
pub use dispatch::{
    X8Acts, dot, dot_k, dot_x8, dot4, dot4_k, tile, tile_acts, tile_acts_x8, tile_k,
};
pub use format::{Format, QK, QK_K};
pub use interleave::{
    X8_ROWS, dequantize_x8, dot_x8_portable, dot32_x8_portable, interleaves, x8_bytes,
};
pub use load::{CpuRoom, cpu_room};
pub use matmul::{Layout, QActs, QMat, Shared, matmul, matmul_many};
pub use parallel::{Parallel, Serial};
pub use path::KernelPath;
pub use pool::{Counts, Pool};
pub use portable::{dequantize_row, dot_k_portable, dot_portable};

/// Random values in `[-1, 1)` from a fixed linear congruential stream, for the unit tests.
#[cfg(test)]
mod testutil {
    pub fn random(n: usize, seed: u64) -> Vec<f32> {
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
}
