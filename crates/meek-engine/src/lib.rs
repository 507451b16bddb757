//! The inference engine: GGUF models and Hugging Face safetensors checkpoints on Candle, with token-level
//! timestamps.
//!
//! [`Engine::load`] reads a GGUF file (checked first by [`gguf::read`]), builds its tokenizer and chat template
//! from the file's metadata, and puts the weights on a device. Given a checkpoint directory (or its `config.json`
//! or a `.safetensors` file in it) it loads the checkpoint instead, through [`hf`]: headers checked first, then
//! candle-transformers' non-quantized model, `tokenizer.json` and the chat template of `tokenizer_config.json`.
//! [`Engine::generate`] runs greedy decoding with a KV cache and records the instant each token id reached the host; it knows nothing of statistics, energy or JSON.
//!
//! Devices: CPU always; CUDA and Metal with the `cuda` and `metal` cargo features. A device that is not compiled
//! in gives [`EngineError::DeviceNotCompiled`], which says how to rebuild, so callers carry no `cfg`.
//!
//! Threads: Candle sizes its CPU thread pools once per process from `CANDLE_NUM_THREADS` / `RAYON_NUM_THREADS`.
//! [`configure_threads`] sets both and must run before the first tensor operation; a process measures one thread
//! count.
//!
//! Files: `error.rs` (why loading or running fails), `device.rs` (devices and threads), `load.rs` (reading models
//! and their tokenizers), `generate.rs` (generation and its timings); this file holds the [`Engine`] itself.

pub mod chat;
pub mod cpu;
mod device;
mod error;
mod generate;
pub mod gguf;
mod guard;
pub mod hf;
mod load;
pub mod safetensors;
pub mod spm;
pub mod tensor;
pub mod tokenizer;

use candle_core::Device;
pub use meek_config::DeviceRequest;

pub use chat::{ChatTemplate, Message};
pub use device::{check_compiled, compiled_features, configure_threads, open_device};
pub use error::EngineError;
pub(crate) use error::{Ctx, first_line, open_model_file};
pub use generate::{
    GenOptions, Generation, StopReason, Thinking, ThinkingTrace, TokenObserver, argmax, nll_of,
};
pub use gguf::{GgufInfo, SUPPORTED_ARCHITECTURES};
use load::CandleModel;
pub use load::{Kernels, inspect, load_tokenizer, tokenizer_and_template};
/// What the CPU pool sees of other processes and limits (for `doctor`).
pub use meek_kernels::{CpuRoom, cpu_room};
pub use tokenizer::{GgufTokenizer, TextTokenizer};

/// Engine name and version for result files.
pub const ENGINE: &str = "candle 0.11.1";

/// The weights of a loaded model, on whichever code runs them.
enum Weights {
    /// candle-transformers' model: GPUs, and CPU files the own path cannot run.
    Candle(CandleModel),
    /// meekbench's CPU path.
    Cpu(cpu::decoder::Decoder),
    /// candle-transformers' non-quantized model of a safetensors checkpoint.
    Hf(Box<hf::HfModel>),
    /// meekbench's decoder on Candle tensors: GPUs, and the CPU when asked for.
    Tensor(Box<tensor::TensorDecoder>),
}

/// A loaded model ready to generate.
pub struct Engine {
    weights: Weights,
    tokenizer: GgufTokenizer,
    chat: Option<ChatTemplate>,
    device: Device,
    device_name: String,
    info: GgufInfo,
    max_positions: usize,
    /// Where `max_positions` comes from, for the refusal.
    max_positions_why: &'static str,
    name: String,
    kernel: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("name", &self.name)
            .field("device", &self.device_name)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Which code computes the forward pass: `cpu-avx2` / `cpu-portable` (meekbench's kernels),
    /// `tensors-cuda` / `tensors-metal` / `tensors-cpu` (meekbench's decoder on Candle tensors, [`tensor`]),
    /// `candle-cpu` / `candle-cuda` / `candle-metal` (candle-transformers' quantized models of GGUF files) or
    /// `candle-cpu-f32` / `candle-cuda-bf16` / ... (its non-quantized models of safetensors, with the dtype used).
    pub fn kernel(&self) -> &str {
        &self.kernel
    }

    /// The CPU pool's regions so far, how many while the machine was contended and how many on fewer threads
    /// ([`cpu::pool_counts`]), where this engine runs on meekbench's own CPU path with more than one thread.
    pub fn pool_counts(&self) -> Option<meek_kernels::Counts> {
        self.kernel
            .starts_with("cpu-")
            .then(cpu::pool_counts)
            .flatten()
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The chat template, when the model has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat.as_ref()
    }

    /// What the file says about itself.
    pub fn info(&self) -> &GgufInfo {
        &self.info
    }

    /// The device name, e.g. `cpu` or `cuda:0`.
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// Longest prompt plus generation this engine runs for the model.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }
}
