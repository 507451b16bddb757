//! The inference engine: GGUF models and Hugging Face safetensors checkpoints on Candle, with token-level
//! timestamps.
//!
//! [`Engine::load`] reads a GGUF file (checked first by [`gguf::read`]), builds its tokenizer and chat template
//! from the file's metadata, and puts the weights on a device. Given a checkpoint directory (or its `config.json`
//! or a `.safetensors` file in it) it loads the checkpoint instead, through [`hf`]: headers checked first, then
//! candle-transformers' non-quantized model, `tokenizer.json` and the chat template of `tokenizer_config.json`. [`Engine::generate`] runs greedy decoding with a KV
//! cache and records the instant each token id reached the host; it knows nothing of statistics, energy or JSON.
//!
//! Devices: CPU always; CUDA and Metal with the `cuda` and `metal` cargo features. A device that is not compiled
//! in gives [`EngineError::DeviceNotCompiled`], which says how to rebuild, so callers carry no `cfg`.
//!
//! Threads: Candle sizes its CPU thread pools once per process from `CANDLE_NUM_THREADS` / `RAYON_NUM_THREADS`.
//! [`configure_threads`] sets both and must run before the first tensor operation; a process measures one thread
//! count.

pub mod chat;
pub mod cpu;
pub mod gguf;
mod guard;
pub mod hf;
pub mod safetensors;
pub mod spm;
pub mod tokenizer;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;
use candle_core::{D, Device, Tensor};
use candle_transformers::models::{quantized_llama, quantized_qwen2, quantized_qwen3};
pub use meek_config::DeviceRequest;
use thiserror::Error;

pub use chat::{ChatTemplate, Message};
pub use gguf::{GgufInfo, SUPPORTED_ARCHITECTURES};
pub use tokenizer::{GgufTokenizer, TextTokenizer};

/// Engine name and version for result files.
pub const ENGINE: &str = "candle 0.11.1";

/// Why a model cannot be loaded or run.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The file cannot be opened.
    #[error("cannot open model file: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error, from `fs_err`, so its message names the file.
        source: std::io::Error,
    },
    /// Not a GGUF file, or a damaged header.
    #[error(
        "{path} is not a usable GGUF model file: {detail}. Check that the download completed and the file is a .gguf"
    )]
    NotGguf {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A safetensors file whose header is malformed or does not match the file.
    #[error(
        "{path} is not a usable safetensors file: {detail}. Check that the download completed and the file is a \
         .safetensors"
    )]
    BadSafetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The file is shorter than its own tensor table says.
    #[error(
        "{path} is truncated: tensor `{tensor}` ends at byte {needed} but the file has {size} bytes. \
         Delete it and download it again"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// First tensor found past the end.
        tensor: String,
        /// Bytes that tensor needs.
        needed: u64,
        /// Actual size.
        size: u64,
    },
    /// An architecture this build cannot run.
    #[error("{path}: architecture `{arch}` is not supported; supported: {}", SUPPORTED_ARCHITECTURES.join(", "))]
    UnsupportedArchitecture {
        /// The file.
        path: PathBuf,
        /// `general.architecture`.
        arch: String,
    },
    /// A Hugging Face checkpoint that is incomplete, damaged or inconsistent.
    #[error("{path}: {detail}")]
    Checkpoint {
        /// The directory or file at fault.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A checkpoint of a family this build cannot run from safetensors.
    #[error(
        "{path}: model_type `{model_type}` is not supported from safetensors; supported: {}",
        hf::SUPPORTED_MODEL_TYPES.join(", ")
    )]
    UnsupportedCheckpoint {
        /// `config.json`.
        path: PathBuf,
        /// Its `model_type`.
        model_type: String,
    },
    /// A supported architecture that the chosen device or kernels cannot run correctly.
    #[error("{path}: {detail}")]
    UnsupportedHere {
        /// The file.
        path: PathBuf,
        /// Why, and what to use instead.
        detail: String,
    },
    /// The tokenizer metadata cannot be used.
    #[error("{path}: {detail}")]
    Tokenizer {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The device is not compiled into this build.
    #[error(
        "device `{device}` is not available in this build: rebuild with `cargo build --release --features {feature}` \
         (or use `--device cpu`)"
    )]
    DeviceNotCompiled {
        /// The device asked for.
        device: String,
        /// The cargo feature that enables it.
        feature: &'static str,
    },
    /// The device is compiled in but cannot be opened.
    #[error("cannot open device `{device}`: {detail}")]
    DeviceUnavailable {
        /// The device asked for.
        device: String,
        /// Why.
        detail: String,
    },
    /// A prompt plus generation longer than the model can hold.
    #[error(
        "{model}: {needed} positions needed (prompt {prompt} + generation {n_gen}) but at most {max} are supported"
    )]
    TooLong {
        /// Model name.
        model: String,
        /// Prompt tokens.
        prompt: usize,
        /// Tokens to generate.
        n_gen: usize,
        /// Total.
        needed: usize,
        /// Limit.
        max: usize,
    },
    /// A tensor operation failed.
    #[error("{context}: {}", first_line(source))]
    Candle {
        /// What was being done.
        context: String,
        /// Candle's error.
        source: candle_core::Error,
    },
}

/// The message of an error without the backtrace Candle appends when `RUST_BACKTRACE` is set.
pub(crate) fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

trait Ctx<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, EngineError>;
}

impl<T> Ctx<T> for candle_core::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, EngineError> {
        self.map_err(|source| EngineError::Candle {
            context: what(),
            source,
        })
    }
}

/// Sets the thread count of Candle's CPU pools. Call before the first tensor operation of the process.
pub fn configure_threads(n: usize) {
    // SAFETY: called at start-up, before any thread that reads the environment is spawned.
    unsafe {
        std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

/// Opens the device asked for: `Auto` tries CUDA, then Metal, then falls back to the CPU.
pub fn open_device(req: DeviceRequest) -> Result<(Device, String), EngineError> {
    let unavailable = |device: String, e: candle_core::Error| EngineError::DeviceUnavailable {
        device,
        detail: e.to_string(),
    };
    match req {
        DeviceRequest::Cpu => Ok((Device::Cpu, "cpu".into())),
        DeviceRequest::Cuda(n) => {
            check_compiled(req)?;
            Device::new_cuda(n)
                .map(|d| (d, format!("cuda:{n}")))
                .map_err(|e| unavailable(format!("cuda:{n}"), e))
        }
        DeviceRequest::Metal => {
            check_compiled(req)?;
            Device::new_metal(0)
                .map(|d| (d, "metal:0".into()))
                .map_err(|e| unavailable("metal".into(), e))
        }
        DeviceRequest::Auto => {
            if cfg!(feature = "cuda")
                && candle_core::utils::cuda_is_available()
                && let Ok(d) = Device::new_cuda(0)
            {
                return Ok((d, "cuda:0".into()));
            }
            if cfg!(feature = "metal")
                && candle_core::utils::metal_is_available()
                && let Ok(d) = Device::new_metal(0)
            {
                return Ok((d, "metal:0".into()));
            }
            Ok((Device::Cpu, "cpu".into()))
        }
    }
}

/// Cargo features of this engine build that change what it can run.
pub fn compiled_features() -> Vec<String> {
    let mut f = Vec::new();
    if cfg!(feature = "cuda") {
        f.push("cuda".to_string());
    }
    if cfg!(feature = "metal") {
        f.push("metal".to_string());
    }
    f
}

/// candle-transformers' quantized models of the families meekbench runs.
enum CandleModel {
    Llama(quantized_llama::ModelWeights),
    Qwen2(quantized_qwen2::ModelWeights),
    Qwen3(quantized_qwen3::ModelWeights),
}

impl CandleModel {
    fn load(
        arch: &str,
        content: gguf_file::Content,
        file: &mut std::fs::File,
        device: &Device,
    ) -> candle_core::Result<Self> {
        Ok(match arch {
            "qwen2" => Self::Qwen2(quantized_qwen2::ModelWeights::from_gguf(
                content, file, device,
            )?),
            "qwen3" => Self::Qwen3(quantized_qwen3::ModelWeights::from_gguf(
                content, file, device,
            )?),
            _ => Self::Llama(quantized_llama::ModelWeights::from_gguf(
                content, file, device,
            )?),
        })
    }

    fn clear_kv_cache(&mut self) {
        match self {
            Self::Llama(m) => m.clear_kv_cache(),
            Self::Qwen2(m) => m.clear_kv_cache(),
            Self::Qwen3(m) => m.clear_kv_cache(),
        }
    }

    fn forward(&mut self, x: &Tensor, pos: usize) -> candle_core::Result<Tensor> {
        match self {
            Self::Llama(m) => m.forward(x, pos),
            Self::Qwen2(m) => m.forward(x, pos),
            Self::Qwen3(m) => m.forward(x, pos),
        }
    }
}

enum Weights {
    /// candle-transformers' model: GPUs, and CPU files the own path cannot run.
    Candle(CandleModel),
    /// meekbench's CPU path.
    Cpu(cpu::decoder::Decoder),
    /// candle-transformers' non-quantized model of a safetensors checkpoint.
    Hf(Box<hf::HfModel>),
}

/// Which code runs the forward pass on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// meekbench's own CPU kernels where they support the file, else Candle's.
    Auto,
    /// Candle's (candle-transformers' model) always.
    Candle,
}

/// Receives each generated token as soon as its id is on the host.
pub trait TokenObserver {
    /// Token number `index` (0 is the one produced by the prompt) arrived at `at`.
    fn on_token(&mut self, index: usize, token: u32, at: Instant);
}

impl TokenObserver for () {
    fn on_token(&mut self, _: usize, _: u32, _: Instant) {}
}

impl<F: FnMut(usize, u32, Instant)> TokenObserver for F {
    fn on_token(&mut self, index: usize, token: u32, at: Instant) {
        self(index, token, at);
    }
}

/// How to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenOptions {
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// Stop at the end-of-sequence token (speed runs switch this off to generate exactly `max_new_tokens`).
    pub stop_at_eos: bool,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced its end-of-sequence token (included in `tokens`).
    Eos,
    /// `max_new_tokens` were generated.
    Length,
}

/// One greedy generation with its timings.
#[derive(Debug, Clone)]
pub struct Generation {
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Generated ids, in order.
    pub tokens: Vec<u32>,
    /// When the prompt was handed to the model.
    pub started: Instant,
    /// When each generated id reached the host (same length as `tokens`).
    pub token_times: Vec<Instant>,
    /// Why it stopped.
    pub stop: StopReason,
}

impl Generation {
    /// Time to first token.
    pub fn ttft(&self) -> Duration {
        self.token_times[0] - self.started
    }

    /// Time from the first to the last generated token.
    pub fn decode_time(&self) -> Duration {
        self.token_times[self.token_times.len() - 1] - self.token_times[0]
    }

    /// Gaps between consecutive tokens.
    pub fn inter_token(&self) -> impl Iterator<Item = Duration> + '_ {
        self.token_times.windows(2).map(|w| w[1] - w[0])
    }
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

/// Reads the header of a GGUF file and builds its tokenizer, without loading weights (for `tokenize`).
pub fn load_tokenizer(
    path: &Path,
) -> Result<(TextTokenizer, Option<ChatTemplate>, GgufInfo), EngineError> {
    if hf::is_checkpoint(path) {
        let ck = hf::Checkpoint::open(path)?;
        let (tok, chat) = hf_tokenizer_and_template(&ck.dir)?;
        let stored = hf_dtype_bytes(&ck.dtype());
        return Ok((tok, chat, ck.info(stored)));
    }
    let (content, _) = gguf::read(path)?;
    let (tok, chat) = tokenizer_and_template(path, &content)?;
    Ok((tok, chat, gguf::info(&content)))
}

/// What a model file or checkpoint says about itself, without loading weights (sizes at the stored dtype).
pub fn inspect(path: &Path) -> Result<GgufInfo, EngineError> {
    if hf::is_checkpoint(path) {
        let ck = hf::Checkpoint::open(path)?;
        let stored = hf_dtype_bytes(&ck.dtype());
        return Ok(ck.info(stored));
    }
    let (content, _) = gguf::read(path)?;
    Ok(gguf::info(&content))
}

fn hf_dtype_bytes(dtype: &str) -> u64 {
    match dtype {
        "F64" => 8,
        "F16" | "BF16" => 2,
        _ => 4,
    }
}

fn hf_tokenizer_and_template(
    dir: &Path,
) -> Result<(TextTokenizer, Option<ChatTemplate>), EngineError> {
    let tok_err = |detail: String| EngineError::Tokenizer {
        path: dir.to_path_buf(),
        detail,
    };
    let tokenizer = TextTokenizer::from_hf_dir(dir).map_err(tok_err)?;
    let chat = match hf::chat_template_source(dir).map_err(tok_err)? {
        Some(src) => Some(
            ChatTemplate::new(
                &src,
                &tokenizer.token_text(tokenizer.bos()),
                &tokenizer.token_text(tokenizer.eos()),
            )
            .map_err(tok_err)?,
        ),
        None => None,
    };
    Ok((tokenizer, chat))
}

/// The tokenizer and chat template of a GGUF header that [`gguf::read`] (or [`gguf::read_from`]) accepted; `path`
/// names the file in errors.
pub fn tokenizer_and_template(
    path: &Path,
    content: &candle_core::quantized::gguf_file::Content,
) -> Result<(GgufTokenizer, Option<ChatTemplate>), EngineError> {
    let tok_err = |detail: String| EngineError::Tokenizer {
        path: path.to_path_buf(),
        detail,
    };
    let tokenizer = GgufTokenizer::from_gguf(content).map_err(tok_err)?;
    let chat = match content
        .metadata
        .get("tokenizer.chat_template")
        .and_then(|v| v.to_string().ok())
    {
        Some(src) => Some(
            ChatTemplate::new(
                src,
                &tokenizer.token_text(tokenizer.bos()),
                &tokenizer.token_text(tokenizer.eos()),
            )
            .map_err(tok_err)?,
        ),
        None => None,
    };
    Ok((tokenizer, chat))
}

impl Engine {
    /// Loads a GGUF model onto `device`, on meekbench's own CPU kernels where they apply, unless the environment
    /// says `MEEKBENCH_KERNELS=candle`; or a Hugging Face checkpoint (see [`Engine::load_with`]).
    pub fn load(path: &Path, device: DeviceRequest) -> Result<Self, EngineError> {
        let candle = std::env::var("MEEKBENCH_KERNELS").is_ok_and(|v| v == "candle");
        Self::load_with(
            path,
            device,
            if candle {
                Kernels::Candle
            } else {
                Kernels::Auto
            },
        )
    }

    /// Loads a model onto `device` with the kernels asked for: a GGUF file, or a Hugging Face checkpoint (a
    /// directory, or its `config.json` or a `.safetensors` file in it), which always runs on Candle tensors
    /// (candle-transformers' non-quantized models, or [`hf`]'s own Gemma 3) whatever `kernels` says.
    pub fn load_with(
        path: &Path,
        device: DeviceRequest,
        kernels: Kernels,
    ) -> Result<Self, EngineError> {
        if hf::is_checkpoint(path) {
            return Self::load_checkpoint(path, device);
        }
        let (content, mut file) = gguf::read(path)?;
        let info = gguf::info(&content);
        if !SUPPORTED_ARCHITECTURES.contains(&info.architecture.as_str()) {
            return Err(EngineError::UnsupportedArchitecture {
                path: path.to_path_buf(),
                arch: info.architecture,
            });
        }
        let (tokenizer, chat) = tokenizer_and_template(path, &content)?;
        let (device, device_name) = open_device(device)?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        // The own CPU path unless Candle's is asked for or the file needs what the own path lacks.
        let cpu_ok = device.is_cpu()
            && kernels == Kernels::Auto
            && cpu::decoder::unsupported(&content).is_none();
        let (weights, kernel) = if cpu_ok {
            let path_kind = cpu::KernelPath::detect();
            let model =
                cpu::decoder::Decoder::load(&content, &mut file, path_kind).map_err(|detail| {
                    EngineError::NotGguf {
                        path: path.to_path_buf(),
                        detail,
                    }
                })?;
            (Weights::Cpu(model), path_kind.name().to_string())
        } else {
            if info.architecture == "gemma3" {
                let why = cpu::decoder::unsupported(&content)
                    .unwrap_or_else(|| format!("device {device_name}, kernels {kernels:?}"));
                return Err(EngineError::UnsupportedHere {
                    path: path.to_path_buf(),
                    detail: format!(
                        "gemma3 runs only on meekbench's own CPU path, which cannot take this file here ({why}): \
                         candle-transformers 0.11.1's quantized Gemma 3 applies SiLU where Gemma uses GELU, so its \
                         outputs would be wrong. Use --device cpu without MEEKBENCH_KERNELS=candle"
                    ),
                });
            }
            let model = guard::no_panic("loading the weights", || {
                CandleModel::load(&info.architecture, content, &mut file, &device)
            })
            .map_err(|detail| EngineError::NotGguf {
                path: path.to_path_buf(),
                detail,
            })?
            .ctx(|| format!("loading the weights of {}", path.display()))?;
            (
                Weights::Candle(model),
                format!("candle-{}", device_name.split(':').next().unwrap_or("cpu")),
            )
        };
        // The own CPU path sizes its rotary table and KV cache per run, up to the trained context;
        // candle-transformers' model has a fixed rotary table of MAX_SEQ_LEN positions.
        let trained = info.context_length.unwrap_or(quantized_llama::MAX_SEQ_LEN);
        let max_positions = match weights {
            Weights::Candle(_) => trained.min(quantized_llama::MAX_SEQ_LEN),
            Weights::Cpu(_) | Weights::Hf(_) => trained,
        };
        Ok(Self {
            weights,
            tokenizer,
            chat,
            device,
            device_name,
            info,
            max_positions,
            name,
            kernel,
        })
    }

    /// Loads a Hugging Face checkpoint: headers and config checked, tokenizer and template read, then the
    /// weights mapped at the dtype [`hf::compute_dtype`] picks for the device.
    fn load_checkpoint(path: &Path, device: DeviceRequest) -> Result<Self, EngineError> {
        let ck = hf::Checkpoint::open(path)?;
        let (tokenizer, chat) = hf_tokenizer_and_template(&ck.dir)?;
        let (device, device_name) = open_device(device)?;
        let dtype = hf::compute_dtype(&ck.dtype(), &device);
        let model = hf::HfModel::load(&ck, &device, dtype)?;
        let info = ck.info(dtype.size_in_bytes() as u64);
        let name = ck
            .dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| ck.dir.display().to_string());
        let kernel = format!(
            "candle-{}-{}",
            device_name.split(':').next().unwrap_or("cpu"),
            dtype.as_str()
        );
        // candle-transformers' models size their rotary tables to max_position_embeddings.
        let max_positions = info.context_length.unwrap_or(4096);
        Ok(Self {
            weights: Weights::Hf(Box::new(model)),
            tokenizer,
            chat,
            device,
            device_name,
            info,
            max_positions,
            name,
            kernel,
        })
    }

    /// Which code computes the forward pass: `cpu-avx2` / `cpu-portable` (meekbench's kernels),
    /// `candle-cpu` / `candle-cuda` / `candle-metal` (candle-transformers' quantized models of GGUF files) or
    /// `candle-cpu-f32` / `candle-cuda-bf16` / ... (its non-quantized models of safetensors, with the dtype used).
    pub fn kernel(&self) -> &str {
        &self.kernel
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

    /// `n` token ids for a speed run: BOS first when the model adds one, then ordinary tokens drawn uniformly
    /// with a fixed seed (like llama-bench's random prompts, so no tokenizer work is timed and no cache can hit).
    pub fn synthetic_prompt(&self, n: usize, seed: u64) -> Vec<u32> {
        let tok = &self.tokenizer;
        let normal: Vec<u32> = (0..tok.vocab_size() as u32)
            .filter(|&i| tok.is_normal(i))
            .collect();
        // SplitMix64: small, good enough to pick token ids (the seed offset keeps the prompts of earlier versions).
        let mut rng = meek_stats::SplitMix64::new(seed ^ 0x9E37_79B9_7F4A_7C15);
        let mut ids = Vec::with_capacity(n);
        if tok.adds_bos()
            && let Some(b) = tok.bos()
        {
            ids.push(b);
        }
        // The header check refuses a vocabulary without ordinary tokens; should one come through anyway (a
        // checkpoint's tokenizer.json), the prompt falls back to every id rather than divide by zero.
        let pool: Vec<u32> = if normal.is_empty() {
            (0..tok.vocab_size() as u32).collect()
        } else {
            normal
        };
        while ids.len() < n && !pool.is_empty() {
            ids.push(pool[(rng.next_u64() % pool.len() as u64) as usize]);
        }
        ids.truncate(n);
        ids
    }

    /// Greedy generation from `prompt` (token ids), starting from an empty KV cache.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        opts: GenOptions,
        observer: &mut dyn TokenObserver,
    ) -> Result<Generation, EngineError> {
        let needed = prompt.len() + opts.max_new_tokens;
        if prompt.is_empty() || opts.max_new_tokens == 0 || needed > self.max_positions {
            return Err(EngineError::TooLong {
                model: self.name.clone(),
                prompt: prompt.len(),
                n_gen: opts.max_new_tokens,
                needed,
                max: self.max_positions,
            });
        }
        if let Weights::Cpu(m) = &mut self.weights {
            // The whole run's KV cache up front: no reallocation between tokens.
            m.reserve(needed);
        }
        let eos = self.tokenizer.eos();
        let mut tokens = Vec::with_capacity(opts.max_new_tokens);
        let mut times = Vec::with_capacity(opts.max_new_tokens);
        let started = Instant::now();
        let mut next = self.step(prompt, 0)?;
        let mut stop = StopReason::Length;
        loop {
            let at = Instant::now();
            observer.on_token(tokens.len(), next, at);
            tokens.push(next);
            times.push(at);
            if opts.stop_at_eos && Some(next) == eos {
                stop = StopReason::Eos;
                break;
            }
            if tokens.len() == opts.max_new_tokens {
                break;
            }
            let pos = prompt.len() + tokens.len() - 1;
            next = self.step(&[next], pos)?;
        }
        Ok(Generation {
            prompt_tokens: prompt.len(),
            tokens,
            started,
            token_times: times,
            stop,
        })
    }
}

impl Engine {
    /// Logits of the last of `tokens`, run at positions `pos..` (0 starts a new sequence), for checks such as
    /// teacher-forced agreement between engines.
    pub fn logits(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>, EngineError> {
        match &mut self.weights {
            Weights::Cpu(m) => {
                m.reserve(pos + tokens.len());
                Ok(m.forward(tokens, pos).to_vec())
            }
            Weights::Candle(m) => candle_logits(m, &self.device, tokens, pos)
                .and_then(|l| l.to_vec1::<f32>())
                .ctx(|| "logits".into()),
            Weights::Hf(m) => hf_logits(m, &self.device, tokens, pos)
                .and_then(|l| l.to_vec1::<f32>())
                .ctx(|| "logits".into()),
        }
    }

    /// The bare engine loop's unit: runs `tokens` at positions `pos..` (0 starts a new sequence with an empty cache)
    /// and returns the greedy next id, with no clock reads or bookkeeping (benchmarks compare [`generate`] with
    /// it to show what measuring costs).
    ///
    /// [`generate`]: Self::generate
    pub fn greedy_step(&mut self, tokens: &[u32], pos: usize) -> Result<u32, EngineError> {
        self.step(tokens, pos)
    }

    /// Runs `tokens` at position `pos` (0 starts a new sequence with an empty cache) and returns the greedy next id.
    fn step(&mut self, tokens: &[u32], pos: usize) -> Result<u32, EngineError> {
        let what = || {
            if pos == 0 {
                format!("prefill of {} tokens", tokens.len())
            } else {
                format!("decode step at position {pos}")
            }
        };
        match &mut self.weights {
            Weights::Cpu(m) => {
                m.reserve(pos + tokens.len());
                Ok(argmax(m.forward(tokens, pos)))
            }
            // The arg-max is copied to the host, which waits for the device: the clock read after it is honest
            // on asynchronous GPUs too.
            Weights::Candle(m) => candle_logits(m, &self.device, tokens, pos)
                .and_then(|l| l.argmax(D::Minus1))
                .and_then(|t| t.to_scalar::<u32>())
                .ctx(what),
            Weights::Hf(m) => hf_logits(m, &self.device, tokens, pos)
                .and_then(|l| l.argmax(D::Minus1))
                .and_then(|t| t.to_scalar::<u32>())
                .ctx(what),
        }
    }
}

/// Index of the largest value (the first one on ties, like `argmax` in Candle and llama.cpp's greedy sampler).
fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// candle-transformers' forward pass (the cache cleared at a new sequence): the last position's logits, on the device.
fn candle_logits(
    m: &mut CandleModel,
    device: &Device,
    tokens: &[u32],
    pos: usize,
) -> candle_core::Result<Tensor> {
    if pos == 0 {
        m.clear_kv_cache();
    }
    let input = Tensor::new(tokens, device)?.unsqueeze(0)?;
    let logits = m.forward(&input, pos)?.squeeze(0)?;
    if logits.rank() == 2 {
        logits.get(logits.dim(0)? - 1)
    } else {
        Ok(logits)
    }
}

/// candle-transformers' non-quantized forward pass (the cache cleared at a new sequence): the last position's
/// logits as f32, on the device.
fn hf_logits(
    m: &mut hf::HfModel,
    device: &Device,
    tokens: &[u32],
    pos: usize,
) -> candle_core::Result<Tensor> {
    if pos == 0 {
        m.clear_kv_cache(device)?;
    }
    let input = Tensor::new(tokens, device)?.unsqueeze(0)?;
    m.forward(&input, pos)
}

/// Refuses a device that this build cannot open at all, before anything is downloaded or loaded.
pub fn check_compiled(req: DeviceRequest) -> Result<(), EngineError> {
    match req {
        DeviceRequest::Cuda(n) if !cfg!(feature = "cuda") => Err(EngineError::DeviceNotCompiled {
            device: format!("cuda:{n}"),
            feature: "cuda",
        }),
        DeviceRequest::Metal if !cfg!(feature = "metal") => Err(EngineError::DeviceNotCompiled {
            device: "metal".into(),
            feature: "metal",
        }),
        _ => Ok(()),
    }
}
