//! Hugging Face checkpoints: a directory with `config.json`, `tokenizer.json`, `tokenizer_config.json` and the
//! weights in safetensors (one `model.safetensors`, or shards listed by `model.safetensors.index.json`), run through
//! candle-transformers' non-quantized models.
//!
//! Every safetensors header is checked by [`check_safetensors`] before a byte of weights is mapped: the header
//! length against the file size, the JSON, each tensor's dtype × shape against its `data_offsets`, offsets inside
//! the file and not overlapping. A sharded checkpoint must have every shard its index names, and every tensor the
//! index names must be in its shard.
//!
//! Gemma 3 runs on meekbench's own forward pass on Candle tensors ([`gemma3`]), because candle-transformers'
//! cannot run it correctly.
//!
//! Dtypes: the weights are loaded in the checkpoint's own dtype (bf16 or f16) on CUDA and Metal, and in f32 on the
//! CPU, where Candle's matrix products and attention in half precision are slow or missing for several of these
//! models (candle-transformers' Qwen 3 runs its CPU attention in f32 only). The dtype used is part of
//! [`crate::Engine::kernel`], e.g. `candle-cpu-f32`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{llama, phi3, qwen2, qwen3};
use fs_err as fs;
use serde_json::{Value, json};

use crate::{EngineError, GgufInfo};

mod gemma3;

/// Model families (`config.json` `model_type`) this build runs from safetensors.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &["llama", "qwen2", "qwen3", "gemma3_text", "phi3"];

/// One tensor of a safetensors file, as its header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// Tensor name.
    pub name: String,
    /// Safetensors dtype, e.g. `BF16`.
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Start of the data, in bytes from the start of the file.
    pub start: u64,
    /// End of the data (exclusive), in bytes from the start of the file.
    pub end: u64,
}

impl TensorEntry {
    /// Number of elements.
    pub fn elements(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }
}

/// Checks the header of a safetensors file against the file and returns its tensors, in the order of their data.
/// Errors name the file and, where one is at fault, the tensor.
pub fn check_safetensors(path: &Path) -> Result<Vec<TensorEntry>, String> {
    let header = crate::safetensors::read_header(path).map_err(|e| e.to_string())?;
    let mut entries = header
        .tensors
        .into_iter()
        .map(|t| {
            let shape = t
                .shape
                .iter()
                .map(|&d| usize::try_from(d))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    format!(
                        "{}: tensor `{}`: shape {:?} is too large",
                        path.display(),
                        t.name,
                        t.shape
                    )
                })?;
            Ok(TensorEntry {
                name: t.name,
                dtype: t.dtype,
                shape,
                start: t.range.start,
                end: t.range.end,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    entries.sort_by_key(|e| (e.start, e.end));
    Ok(entries)
}

/// The supported families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Llama,
    Qwen2,
    Qwen3,
    Gemma3,
    Phi3,
}

impl Family {
    /// The architecture name used in results (GGUF's `general.architecture` for the same family).
    fn arch(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
            Self::Gemma3 => "gemma3",
            Self::Phi3 => "phi3",
        }
    }
}

/// A checked checkpoint directory: its config, its shards and their tensors. No weight is loaded yet.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The directory.
    pub dir: PathBuf,
    /// `config.json`.
    pub config: Value,
    /// The safetensors files, in order.
    pub shards: Vec<PathBuf>,
    /// Every tensor of every shard.
    pub tensors: Vec<TensorEntry>,
    family: Family,
}

fn checkpoint_err(path: &Path, detail: impl Into<String>) -> EngineError {
    EngineError::Checkpoint {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

fn read_json(path: &Path) -> Result<Value, EngineError> {
    let text = fs::read_to_string(path).map_err(|source| EngineError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| checkpoint_err(path, format!("not valid JSON: {e}")))
}

/// Whether `path` names a Hugging Face checkpoint (a directory, a `.json` or a `.safetensors` file) rather than
/// a GGUF file.
pub fn is_checkpoint(path: &Path) -> bool {
    path.is_dir()
        || path.extension().is_some_and(|e| {
            e.eq_ignore_ascii_case("json") || e.eq_ignore_ascii_case("safetensors")
        })
}

/// The checkpoint directory of `path`: the directory itself, or the one holding the named file.
pub fn checkpoint_dir(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }
}

impl Checkpoint {
    /// Reads `config.json`, finds the shards and checks every header. `path` is the directory or a file in it.
    pub fn open(path: &Path) -> Result<Self, EngineError> {
        let dir = checkpoint_dir(path);
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(checkpoint_err(
                &dir,
                "no config.json: a Hugging Face checkpoint directory needs config.json, tokenizer.json and the \
                 weights (model.safetensors or model.safetensors.index.json with its shards)",
            ));
        }
        let config = read_json(&config_path)?;
        let family = family_of(&config_path, &config)?;
        let index_path = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        let named_file = path.is_file()
            && path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
        let mut tensors = Vec::new();
        let shards = if named_file && !index_path.is_file() {
            vec![path.to_path_buf()]
        } else if index_path.is_file() {
            let index = read_json(&index_path)?;
            let map = index
                .get("weight_map")
                .and_then(Value::as_object)
                .ok_or_else(|| checkpoint_err(&index_path, "no `weight_map` object"))?;
            let mut shards: Vec<String> = Vec::new();
            for (tensor, file) in map {
                let file = file.as_str().ok_or_else(|| {
                    checkpoint_err(
                        &index_path,
                        format!("tensor `{tensor}`: shard is not a string"),
                    )
                })?;
                if file.contains('/') || file.contains('\\') || file.starts_with('.') {
                    return Err(checkpoint_err(
                        &index_path,
                        format!("tensor `{tensor}`: shard `{file}` is not a plain file name"),
                    ));
                }
                if !shards.iter().any(|s| s == file) {
                    shards.push(file.to_string());
                }
            }
            shards.sort();
            let mut paths = Vec::with_capacity(shards.len());
            for s in &shards {
                let p = dir.join(s);
                if !p.is_file() {
                    return Err(checkpoint_err(
                        &index_path,
                        format!(
                            "shard `{s}` is missing from {} ({} shards listed); download it again",
                            dir.display(),
                            shards.len()
                        ),
                    ));
                }
                let entries = check_safetensors(&p).map_err(|d| checkpoint_err(&p, d))?;
                for (tensor, file) in map {
                    if file.as_str() == Some(s.as_str())
                        && !entries.iter().any(|e| &e.name == tensor)
                    {
                        return Err(checkpoint_err(
                            &index_path,
                            format!(
                                "tensor `{tensor}` is listed in shard `{s}`, which does not hold it"
                            ),
                        ));
                    }
                }
                tensors.extend(entries);
                paths.push(p);
            }
            paths
        } else if single.is_file() {
            vec![single]
        } else {
            return Err(checkpoint_err(
                &dir,
                "no weights: neither model.safetensors nor model.safetensors.index.json is there",
            ));
        };
        if tensors.is_empty() {
            for p in &shards {
                tensors.extend(check_safetensors(p).map_err(|d| checkpoint_err(p, d))?);
            }
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = tensors.iter().find(|t| !seen.insert(t.name.as_str())) {
            return Err(checkpoint_err(
                &dir,
                format!("tensor `{}` is stored twice", dup.name),
            ));
        }
        Ok(Self {
            dir,
            config,
            shards,
            tensors,
            family,
        })
    }

    /// The architecture name, e.g. `qwen2`.
    pub fn architecture(&self) -> &'static str {
        self.family.arch()
    }

    /// The dtype most weights are stored in, e.g. `BF16`.
    pub fn dtype(&self) -> String {
        let mut by: BTreeMap<&str, u64> = BTreeMap::new();
        for t in &self.tensors {
            *by.entry(t.dtype.as_str()).or_default() += t.elements();
        }
        by.into_iter()
            .max_by_key(|(_, n)| *n)
            .map_or_else(|| "none".to_string(), |(d, _)| d.to_string())
    }

    fn usize(&self, key: &str) -> Option<usize> {
        self.config
            .get(key)
            .and_then(Value::as_u64)
            .and_then(|v| usize::try_from(v).ok())
    }

    /// Whether the output matrix is the embedding matrix.
    fn tied(&self) -> bool {
        !self.tensors.iter().any(|t| t.name == "lm_head.weight")
    }

    /// What the checkpoint says about itself, with weights and KV cache counted at `bytes_per_weight` (the dtype
    /// the engine holds them in).
    pub fn info(&self, bytes_per_weight: u64) -> GgufInfo {
        let n_params: u64 = self.tensors.iter().map(TensorEntry::elements).sum();
        let tied = self.tied();
        let weight_bytes_per_token = self
            .tensors
            .iter()
            .map(|t| {
                let bytes = t.elements() * bytes_per_weight;
                if t.name == "model.embed_tokens.weight" && !tied {
                    bytes / t.shape.first().copied().unwrap_or(1).max(1) as u64
                } else {
                    bytes
                }
            })
            .sum();
        // The token embedding, as in GGUF files: a separate output matrix counts as non-embedding weights.
        let embedding_params: u64 = self
            .tensors
            .iter()
            .filter(|t| t.name.ends_with("embed_tokens.weight"))
            .map(TensorEntry::elements)
            .sum();
        let heads = self.usize("num_attention_heads");
        let head_dim = heads.and_then(|h| {
            self.usize("head_dim")
                .or_else(|| Some(self.usize("hidden_size")? / h.max(1)))
        });
        let kv_bytes_per_position = (|| {
            let layers = self.usize("num_hidden_layers")? as u64;
            let kv = self.usize("num_key_value_heads").unwrap_or(heads?.max(1)) as u64;
            Some(layers * 2 * kv * head_dim? as u64 * bytes_per_weight)
        })();
        let name = self
            .config
            .get("_name_or_path")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .or_else(|| {
                self.dir
                    .canonicalize()
                    .ok()
                    .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            });
        GgufInfo {
            architecture: self.architecture().to_string(),
            name,
            quantization: self.dtype(),
            n_params,
            context_length: self.usize("max_position_embeddings"),
            n_tensors: self.tensors.len(),
            weight_bytes_per_token,
            kv_bytes_per_position,
            non_embedding_params: n_params - embedding_params,
            n_layer: self.usize("num_hidden_layers").map(|v| v as u64),
            attention_width: heads.map(|h| (h * head_dim.unwrap_or(0)) as u64),
        }
    }
}

fn family_of(path: &Path, config: &Value) -> Result<Family, EngineError> {
    let model_type = config
        .get("model_type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let archs: Vec<&str> = config
        .get("architectures")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    Ok(match model_type {
        "llama" => Family::Llama,
        "qwen2" => Family::Qwen2,
        "qwen3" => Family::Qwen3,
        "gemma3_text" => Family::Gemma3,
        // A multimodal Gemma 3 keeps its text model under `text_config` and `language_model.`: not this loader.
        "gemma3" if archs.contains(&"Gemma3ForCausalLM") && config.get("text_config").is_none() => {
            Family::Gemma3
        }
        "phi3" => Family::Phi3,
        other => {
            return Err(EngineError::UnsupportedCheckpoint {
                path: path.to_path_buf(),
                model_type: if other.is_empty() {
                    format!("(none; architectures {archs:?})")
                } else if other == "gemma3" {
                    "gemma3 (the multimodal Gemma3ForConditionalGeneration)".into()
                } else {
                    other.to_string()
                },
            });
        }
    })
}

/// Fills the keys Hugging Face's config classes default and candle-transformers' configs require.
fn with_defaults(config: &Value, defaults: Value) -> Value {
    let mut c = config.clone();
    if let (Some(obj), Value::Object(d)) = (c.as_object_mut(), defaults) {
        for (k, v) in d {
            if obj.get(&k).is_none_or(Value::is_null) {
                obj.insert(k, v);
            }
        }
    }
    c
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, v: Value) -> Result<T, EngineError> {
    serde_json::from_value(v).map_err(|e| checkpoint_err(path, format!("config.json: {e}")))
}

/// candle-transformers' model of one family, with its KV cache.
#[allow(clippy::large_enum_variant)]
pub(crate) enum HfModel {
    Llama {
        model: llama::Llama,
        cache: llama::Cache,
        config: llama::Config,
        dtype: DType,
    },
    Qwen2(qwen2::ModelForCausalLM),
    Qwen3(qwen3::ModelForCausalLM),
    Gemma3(gemma3::Model),
    Phi3(phi3::Model),
}

/// The dtype the weights are held in on `device` for a checkpoint stored in `stored`.
pub fn compute_dtype(stored: &str, device: &Device) -> DType {
    match (device.is_cpu(), stored) {
        (true, _) => DType::F32,
        (false, "BF16") => DType::BF16,
        (false, "F16") => DType::F16,
        _ => DType::F32,
    }
}

impl HfModel {
    /// Builds the model of `ck` on `device` with weights in `dtype`.
    pub(crate) fn load(
        ck: &Checkpoint,
        device: &Device,
        dtype: DType,
    ) -> Result<Self, EngineError> {
        let cfg_path = ck.dir.join("config.json");
        let c = &ck.config;
        let refuse = |detail: String| checkpoint_err(&cfg_path, detail);
        let hidden = ck.usize("hidden_size").unwrap_or(0);
        let heads = ck.usize("num_attention_heads").unwrap_or(0).max(1);
        let layers = ck.usize("num_hidden_layers").unwrap_or(0);
        let ctx = |e: candle_core::Error| EngineError::Candle {
            context: format!("loading the weights of {}", ck.dir.display()),
            source: e,
        };
        // SAFETY: every shard's header was checked against its file by `Checkpoint::open`; the files must not
        // change while mapped, as for any memory-mapped model.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&ck.shards, dtype, device) }
            .map_err(ctx)?;
        Ok(match ck.family {
            Family::Llama => {
                if ck.usize("head_dim").is_some_and(|d| d != hidden / heads) {
                    return Err(refuse(
                        "head_dim differs from hidden_size / num_attention_heads, which candle-transformers' \
                         llama cannot run"
                            .into(),
                    ));
                }
                let lc: llama::LlamaConfig = parse(
                    &cfg_path,
                    with_defaults(
                        c,
                        json!({"rms_norm_eps": 1e-6, "max_position_embeddings": 2048}),
                    ),
                )?;
                let config = lc.into_config(false);
                check_llama_tensors(ck, &config).map_err(|d| checkpoint_err(&ck.dir, d))?;
                let model = llama::Llama::load(vb, &config).map_err(ctx)?;
                let cache = llama::Cache::new(true, dtype, &config, device).map_err(ctx)?;
                Self::Llama {
                    model,
                    cache,
                    config,
                    dtype,
                }
            }
            Family::Qwen2 => {
                let cfg: qwen2::Config = parse(
                    &cfg_path,
                    with_defaults(
                        c,
                        json!({
                            "sliding_window": ck.usize("max_position_embeddings").unwrap_or(32768),
                            "max_window_layers": layers,
                            "use_sliding_window": false,
                            "tie_word_embeddings": false,
                            "rope_theta": 10000.0,
                            "rms_norm_eps": 1e-6,
                            "hidden_act": "silu",
                        }),
                    ),
                )?;
                if cfg.use_sliding_window {
                    return Err(refuse(
                        "use_sliding_window is true, which candle-transformers' qwen2 does not apply".into(),
                    ));
                }
                Self::Qwen2(qwen2::ModelForCausalLM::new(&cfg, vb).map_err(ctx)?)
            }
            Family::Qwen3 => {
                let cfg: qwen3::Config = parse(
                    &cfg_path,
                    with_defaults(
                        c,
                        json!({
                            "head_dim": hidden / heads,
                            "attention_bias": false,
                            "max_window_layers": layers,
                            "use_sliding_window": false,
                            "tie_word_embeddings": false,
                            "rope_theta": 10000.0,
                            "rms_norm_eps": 1e-6,
                            "hidden_act": "silu",
                        }),
                    ),
                )?;
                if cfg.use_sliding_window {
                    return Err(refuse(
                        "use_sliding_window is true, which candle-transformers' qwen3 does not apply".into(),
                    ));
                }
                Self::Qwen3(qwen3::ModelForCausalLM::new(&cfg, vb).map_err(ctx)?)
            }
            Family::Gemma3 => {
                if c.get("rope_scaling").is_some_and(|v| !v.is_null()) {
                    return Err(refuse(
                        "rope_scaling is set (the larger Gemma 3 models scale their global rotary embeddings), \
                         which this Gemma 3 does not implement yet"
                            .into(),
                    ));
                }
                let pattern = sliding_window_pattern(c, layers).map_err(refuse)?;
                let mut cfg = with_defaults(
                    c,
                    json!({
                        "attention_bias": false,
                        "head_dim": 256,
                        "hidden_activation": "gelu_pytorch_tanh",
                        "rms_norm_eps": 1e-6,
                        "rope_theta": 1_000_000.0,
                        "rope_local_base_freq": 10_000.0,
                        "query_pre_attn_scalar": 256,
                        "sliding_window": 4096,
                        "max_position_embeddings": 131_072,
                    }),
                );
                cfg["sliding_window_pattern"] = json!(pattern);
                let cfg: gemma3::Config = parse(&cfg_path, cfg)?;
                Self::Gemma3(gemma3::Model::new(&cfg, vb).map_err(ctx)?)
            }
            Family::Phi3 => {
                let cfg: phi3::Config = parse(
                    &cfg_path,
                    with_defaults(
                        c,
                        json!({"hidden_act": "silu", "rope_theta": 10000.0, "rms_norm_eps": 1e-5}),
                    ),
                )?;
                Self::Phi3(phi3::Model::new(&cfg, vb).map_err(ctx)?)
            }
        })
    }

    /// Starts a new sequence.
    pub(crate) fn clear_kv_cache(&mut self, device: &Device) -> candle_core::Result<()> {
        match self {
            Self::Llama {
                cache,
                config,
                dtype,
                ..
            } => {
                *cache = llama::Cache::new(true, *dtype, config, device)?;
            }
            Self::Qwen2(m) => m.clear_kv_cache(),
            Self::Qwen3(m) => m.clear_kv_cache(),
            Self::Gemma3(m) => m.clear_kv_cache(),
            Self::Phi3(m) => m.clear_kv_cache(),
        }
        Ok(())
    }

    /// Logits of the last position, as f32, for a batch of one.
    pub(crate) fn forward(&mut self, x: &Tensor, pos: usize) -> candle_core::Result<Tensor> {
        let logits = match self {
            Self::Llama { model, cache, .. } => model.forward(x, pos, cache)?,
            Self::Qwen2(m) => m.forward(x, pos)?,
            Self::Qwen3(m) => m.forward(x, pos)?,
            Self::Gemma3(m) => m.forward(x, pos)?,
            Self::Phi3(m) => m.forward(x, pos)?,
        };
        logits.flatten_all()?.to_dtype(DType::F32)
    }
}

/// Gemma 3's local:global layer pattern: `sliding_window_pattern`, or the period of `layer_types`.
fn sliding_window_pattern(c: &Value, layers: usize) -> Result<usize, String> {
    if let Some(p) = c.get("sliding_window_pattern").and_then(Value::as_u64) {
        return Ok(p as usize);
    }
    if let Some(types) = c.get("layer_types").and_then(Value::as_array) {
        let types: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
        let period = types
            .iter()
            .position(|t| *t == "full_attention")
            .map_or(layers + 1, |i| i + 1);
        let expected = |i: usize| {
            if (i + 1).is_multiple_of(period) {
                "full_attention"
            } else {
                "sliding_attention"
            }
        };
        if types.len() != layers || types.iter().enumerate().any(|(i, t)| *t != expected(i)) {
            return Err(format!(
                "layer_types is not a repeating pattern of sliding layers then one full layer: {types:?}"
            ));
        }
        return Ok(period);
    }
    Ok(c.get("_sliding_window_pattern")
        .and_then(Value::as_u64)
        .map_or(6, |p| p as usize))
}

/// candle-transformers' llama panics on a missing or misshapen tensor: check them all first.
fn check_llama_tensors(ck: &Checkpoint, cfg: &llama::Config) -> Result<(), String> {
    let shapes: HashMap<&str, &[usize]> = ck
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice()))
        .collect();
    let (h, f, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let hd = h / cfg.num_attention_heads.max(1);
    let kv = cfg.num_key_value_heads * hd;
    let mut want: Vec<(String, Vec<usize>)> = vec![
        ("model.embed_tokens.weight".into(), vec![v, h]),
        ("model.norm.weight".into(), vec![h]),
    ];
    if !cfg.tie_word_embeddings {
        want.push(("lm_head.weight".into(), vec![v, h]));
    }
    for l in 0..cfg.num_hidden_layers {
        let p = |n: &str| format!("model.layers.{l}.{n}.weight");
        want.extend([
            (p("input_layernorm"), vec![h]),
            (p("post_attention_layernorm"), vec![h]),
            (p("self_attn.q_proj"), vec![h, h]),
            (p("self_attn.k_proj"), vec![kv, h]),
            (p("self_attn.v_proj"), vec![kv, h]),
            (p("self_attn.o_proj"), vec![h, h]),
            (p("mlp.gate_proj"), vec![f, h]),
            (p("mlp.up_proj"), vec![f, h]),
            (p("mlp.down_proj"), vec![h, f]),
        ]);
    }
    for (name, shape) in want {
        match shapes.get(name.as_str()) {
            None => return Err(format!("tensor `{name}` is missing")),
            Some(s) if *s != shape.as_slice() => {
                return Err(format!(
                    "tensor `{name}` has shape {s:?}, config.json implies {shape:?}"
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The chat template of a checkpoint: `chat_template` in `tokenizer_config.json` (a string, or the `default` of a
/// list of named templates), else the file `chat_template.jinja`; `None` for a base model without one.
pub fn chat_template_source(dir: &Path) -> Result<Option<String>, String> {
    let tc_path = dir.join("tokenizer_config.json");
    if let Ok(text) = fs::read_to_string(&tc_path) {
        let tc: Value =
            serde_json::from_str(&text).map_err(|e| format!("tokenizer_config.json: {e}"))?;
        match tc.get("chat_template") {
            Some(Value::String(s)) => return Ok(Some(s.clone())),
            Some(Value::Array(list)) => {
                let named = |n: &str| {
                    list.iter().find_map(|t| {
                        (t.get("name").and_then(Value::as_str) == Some(n))
                            .then(|| t.get("template").and_then(Value::as_str))
                            .flatten()
                    })
                };
                return named("default").map(|s| Some(s.to_string())).ok_or_else(|| {
                    "tokenizer_config.json: `chat_template` is a list without a `default` template".to_string()
                });
            }
            Some(Value::Null) | None => {}
            Some(_) => {
                return Err(
                    "tokenizer_config.json: `chat_template` is neither a string nor a list".into(),
                );
            }
        }
    }
    match fs::read_to_string(dir.join("chat_template.jinja")) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("chat_template.jinja: {e}")),
    }
}
