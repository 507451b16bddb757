//! meekbench's own CPU path: model forward passes on plain buffers, over the quantized kernels of `meek-kernels`.
//!
//! Candle's CPU backend computes Q4_1 dot products with scalar code, has no blocked multiply for quantized prefill
//! without AVX512-VNNI, and allocates a tensor per operation, which for a 135M-parameter model costs more than the
//! arithmetic. This module keeps the weights in their GGUF block formats (repacked into interleaved groups of eight
//! rows where the kernels have them), quantizes activations once per multiply
//! ([`meek_kernels`]), runs every multiply and the attention on one thread pool ([`EnginePool`], sized by
//! `CANDLE_NUM_THREADS`), and
//! reuses preallocated buffers and a preallocated KV cache across tokens. Models whose tensors it cannot handle
//! fall back to candle-transformers.

pub mod decoder;

use candle_core::quantized::GgmlDType;
pub use meek_kernels::KernelPath;
use meek_kernels::{Format, Parallel};

/// The threads of the own path: meek-kernels' [`meek_kernels::Pool`] (a region any thread may claim chunks of,
/// which does not wait for a thread a busy machine has descheduled), sized by Candle's thread count
/// (`CANDLE_NUM_THREADS`, which each run sets); `MEEKBENCH_POOL=candle` uses Candle's persistent spinning barrier
/// pool instead, to compare the two. The multiplies and the attention run on it, never on a second pool competing
/// for the cores.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnginePool;

fn own_pool() -> Option<&'static meek_kernels::Pool> {
    static POOL: std::sync::OnceLock<Option<meek_kernels::Pool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        (std::env::var("MEEKBENCH_POOL").as_deref() != Ok("candle"))
            .then(|| meek_kernels::Pool::new(candle_core::utils::get_num_threads()))
    })
    .as_ref()
}

/// The own pool's regions so far that more than one thread could have run, how many while other processes used
/// CPUs its threads needed and how many on fewer threads ([`meek_kernels::Pool::counts`]); `None` on Candle's pool
/// and with one thread.
pub fn pool_counts() -> Option<meek_kernels::Counts> {
    own_pool().filter(|p| p.threads() > 1).map(|p| p.counts())
}

/// Which pool the own path runs on: `meek` or `candle`.
pub fn pool_name() -> &'static str {
    if own_pool().is_some() {
        "meek"
    } else {
        "candle"
    }
}

impl Parallel for EnginePool {
    fn run(&self, n: usize, f: &(dyn Fn(std::ops::Range<usize>) + Sync)) {
        match own_pool() {
            Some(pool) => pool.run(n, f),
            None => candle_core::utils::barrier_pool().execute_chunked(n, f),
        }
    }

    fn run_site(&self, site: u64, n: usize, f: &(dyn Fn(std::ops::Range<usize>) + Sync)) {
        match own_pool() {
            Some(pool) => pool.run_site(site, n, f),
            None => candle_core::utils::barrier_pool().execute_chunked(n, f),
        }
    }
}

/// Runs `f` over `0..n` split across the pool's threads.
pub fn parallel(n: usize, f: impl Fn(std::ops::Range<usize>) + Sync) {
    EnginePool.run(n, &f);
}

/// The kernels' format of a GGML type, when they support it.
pub fn format_of(t: GgmlDType) -> Option<Format> {
    use GgmlDType as G;
    match t {
        G::Q4_0 => Some(Format::Q4_0),
        G::Q4_1 => Some(Format::Q4_1),
        G::Q5_0 => Some(Format::Q5_0),
        G::Q5_1 => Some(Format::Q5_1),
        G::Q8_0 => Some(Format::Q8_0),
        G::Q4K => Some(Format::Q4K),
        G::Q6K => Some(Format::Q6K),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ggml_types_map_to_the_kernels_formats() {
        for (t, f) in [
            (GgmlDType::Q4_0, Format::Q4_0),
            (GgmlDType::Q4_1, Format::Q4_1),
            (GgmlDType::Q5_0, Format::Q5_0),
            (GgmlDType::Q5_1, Format::Q5_1),
            (GgmlDType::Q8_0, Format::Q8_0),
            (GgmlDType::Q4K, Format::Q4K),
            (GgmlDType::Q6K, Format::Q6K),
        ] {
            assert_eq!(format_of(t), Some(f));
            assert_eq!(t.block_size(), f.block_elems(), "{t:?}");
            assert_eq!(t.type_size(), f.block_bytes(), "{t:?}");
        }
        for t in [
            GgmlDType::F32,
            GgmlDType::F16,
            GgmlDType::Q5K,
            GgmlDType::Q8_1,
        ] {
            assert_eq!(format_of(t), None);
        }
    }
}
