//! The memory check before a model loads: a model that cannot fit is refused with what it needs, instead of
//! swapping the machine to a halt or being killed halfway through a bench.

use std::path::Path;

use crate::eval;

/// Refuses a model that will not fit: weights (their file size; a checkpoint's weights in f32), the KV cache at the longest sequence the plan
/// runs, and a margin for activations, the bandwidth probe and the process itself, against available memory.
pub(crate) fn check_memory(
    path: &Path,
    file_bytes: u64,
    speed: &meek_config::SpeedSection,
    suites: &[eval::PreparedSuite],
    perplexity_context: usize,
) -> Result<(), String> {
    let info = meek_engine::inspect(path).map_err(|e| e.to_string())?;
    // A safetensors checkpoint is held in f32 on the CPU, whatever it stores (see `meek_engine::hf`).
    let file_bytes = if meek_engine::hf::is_checkpoint(path) {
        file_bytes.max(info.n_params * 4)
    } else {
        file_bytes
    };
    let positions = speed
        .points()
        .iter()
        .map(|(p, g)| p + g)
        .chain(suites.iter().map(|s| {
            info.context_length
                .unwrap_or(4096)
                .min(s.max_new_tokens + s.max_thinking_tokens.map_or(0, |t| t + 8) + 4096)
        }))
        .chain([perplexity_context])
        .max()
        .unwrap_or(0) as u64;
    let kv = info.kv_bytes_per_position.unwrap_or(0) * positions;
    let needed = file_bytes + kv + (512 << 20);
    let available = meek_hw::available_memory();
    if available > 0 && needed > available {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        return Err(format!(
            "needs about {:.1} GiB (weights {:.1} GiB + KV cache for {positions} positions {:.1} GiB + 0.5 GiB), but only \
             {:.1} GiB is available; free memory, shorten the workload, or pass --ignore-memory-check",
            gib(needed),
            gib(file_bytes),
            gib(kv),
            gib(available)
        ));
    }
    Ok(())
}
