//! Loading: a GGUF file (header checked, tokenizer and chat template from its metadata, weights on the own CPU path
//! or candle-transformers' quantized models) or a Hugging Face checkpoint, and the header-only readings of either
//! (tokenizer, summary) that need no weights.

use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::{quantized_llama, quantized_qwen2, quantized_qwen3};
use meek_config::DeviceRequest;

use crate::{
    ChatTemplate, Ctx, Engine, EngineError, GgufInfo, GgufTokenizer, SUPPORTED_ARCHITECTURES,
    TextTokenizer, Weights, cpu, gguf, guard, hf, open_device,
};

/// candle-transformers' quantized models of the families meekbench runs.
pub(crate) enum CandleModel {
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

    pub(crate) fn clear_kv_cache(&mut self) {
        match self {
            Self::Llama(m) => m.clear_kv_cache(),
            Self::Qwen2(m) => m.clear_kv_cache(),
            Self::Qwen3(m) => m.clear_kv_cache(),
        }
    }

    pub(crate) fn forward(&mut self, x: &Tensor, pos: usize) -> candle_core::Result<Tensor> {
        match self {
            Self::Llama(m) => m.forward(x, pos),
            Self::Qwen2(m) => m.forward(x, pos),
            Self::Qwen3(m) => m.forward(x, pos),
        }
    }
}

/// Why a model holds as many positions as it does, when nothing narrower applies.
const TRAINED_CONTEXT: &str = "the model's trained context, or the engine's table where smaller";

/// Which code runs the forward pass on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// meekbench's own CPU kernels where they support the file, else Candle's.
    Auto,
    /// Candle's (candle-transformers' model) always.
    Candle,
    /// meekbench's decoder on Candle tensors ([`crate::tensor`]) on every device, the CPU too (what GPUs run,
    /// checked where there is none).
    Tensors,
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
    /// Loads a GGUF model onto `device`, on meekbench's own CPU kernels where they apply (on a GPU its decoder on
    /// Candle tensors), unless the environment says `MEEKBENCH_KERNELS=candle` (candle-transformers' models) or
    /// `MEEKBENCH_KERNELS=tensors` (the decoder on Candle tensors, the CPU too); or a Hugging Face checkpoint (see
    /// [`Engine::load_with`]).
    pub fn load(path: &Path, device: DeviceRequest) -> Result<Self, EngineError> {
        let kernels = match std::env::var("MEEKBENCH_KERNELS").as_deref() {
            Ok("candle") => Kernels::Candle,
            Ok("tensors") => Kernels::Tensors,
            _ => Kernels::Auto,
        };
        Self::load_with(path, device, kernels)
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
        gguf::coverage::check(&content).map_err(|detail| EngineError::UnsupportedHere {
            path: path.to_path_buf(),
            detail,
        })?;
        let (tokenizer, chat) = tokenizer_and_template(path, &content)?;
        let position_limit = cpu::decoder::Config::read(&content)
            .ok()
            .and_then(|c| c.position_limit);
        let (device, device_name) = open_device(device)?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        // The own CPU path unless Candle's is asked for or the file needs what the own path lacks.
        let cpu_ok = device.is_cpu()
            && kernels == Kernels::Auto
            && cpu::decoder::unsupported(&content).is_none();
        // On a GPU (or when asked for), meekbench's decoder on Candle tensors where it takes the file.
        let tensors_ok = ((!device.is_cpu() && kernels == Kernels::Auto)
            || kernels == Kernels::Tensors)
            && crate::tensor::unsupported(&content).is_none();
        let (weights, kernel) = if tensors_ok {
            let model = guard::no_panic("loading the weights", || {
                crate::tensor::TensorDecoder::load(&content, &mut file, &device)
            })
            .and_then(|r| r)
            .map_err(|detail| EngineError::NotGguf {
                path: path.to_path_buf(),
                detail,
            })?;
            (
                Weights::Tensor(Box::new(model)),
                format!("tensors-{}", device_name.split(':').next().unwrap_or("cpu")),
            )
        } else if cpu_ok {
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
            // Neither own decoder takes the file here: say why, for what candle-transformers would get wrong.
            let why = || {
                let own = if device.is_cpu() {
                    cpu::decoder::unsupported(&content)
                } else {
                    crate::tensor::unsupported(&content)
                };
                own.unwrap_or_else(|| format!("device {device_name}, kernels {kernels:?}"))
            };
            let candle_wrong = match info.architecture.as_str() {
                "gemma3" => Some("its quantized Gemma 3 applies SiLU where Gemma uses GELU"),
                "gemma2" => Some("it has no quantized Gemma 2"),
                "smollm3" => Some(
                    "it has no quantized SmolLM3, and its llama would rotate every fourth layer too",
                ),
                "phi3" => Some(
                    "meekbench does not load Phi-3 GGUF files into its quantized phi3, which reads no LongRoPE factors",
                ),
                _ => None,
            };
            if let Some(wrong) = candle_wrong {
                return Err(EngineError::UnsupportedHere {
                    path: path.to_path_buf(),
                    detail: format!(
                        "{} runs only on meekbench's own decoders (its CPU path, and its decoder on Candle tensors \
                         on GPUs), which cannot take this file here ({}): candle-transformers 0.11.1 cannot serve \
                         instead, {wrong}, so its outputs would be wrong. Leave MEEKBENCH_KERNELS unset",
                        info.architecture,
                        why()
                    ),
                });
            }
            if let Some(what) = gguf::coverage::own_path_only(&content) {
                return Err(EngineError::UnsupportedHere {
                    path: path.to_path_buf(),
                    detail: format!(
                        "the file asks for {what}, which only meekbench's own decoders implement, and they cannot \
                         take this file here ({}); candle-transformers' quantized llama would run without it and \
                         every token would be wrong. Leave MEEKBENCH_KERNELS unset",
                        why()
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
            Weights::Cpu(_) | Weights::Hf(_) | Weights::Tensor(_) => trained,
        };
        // Positions the file's model is only right within (Phi-3: its window, its original context where it has
        // long LongRoPE factors), so that a longer run is refused instead of computed otherwise.
        let (max_positions, max_positions_why) = match position_limit {
            Some((n, why)) if n < max_positions => (n, why),
            _ => (max_positions, TRAINED_CONTEXT),
        };
        Ok(Self {
            weights,
            tokenizer,
            chat,
            device,
            device_name,
            info,
            max_positions,
            max_positions_why,
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
            max_positions_why: TRAINED_CONTEXT,
            name,
            kernel,
        })
    }
}
