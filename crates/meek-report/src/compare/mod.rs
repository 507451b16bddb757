//! Putting result files side by side: figures matched by model file, workload point, thread count and suite,
//! each with its ratio to the baseline (the first file) and whether the raw samples make the difference
//! significant, plus everything that differs between the runs.
//!
//! **Matching.** Two runs are of the same model when their files have the same SHA-256; llama-bench records no
//! hash, so its tests match on the file name (and the comparison says so). Runs match on equal thread counts;
//! when each side measured a model at exactly one thread count and those differ, the two are compared anyway and
//! the difference is flagged. Speed figures match on the workload point (prompt and generated tokens). A
//! llama-bench `pp<N>` test (prompt only) matches prefill at an N-token prompt, and `tg<N>` matches decode with N
//! generated tokens after as many cached tokens: meekbench decodes after its prompt, so `tg64` at depth 128
//! (`llama-bench -d 128`, as `scripts/peer-llama-bench.sh` runs it) is the counterpart of `p128 g64`. Where the
//! other file has `tg<N>` only at another depth (llama-bench's default is an empty cache), the nearest is matched
//! and a note says so: a longer cache costs attention on every token.
//!
//! **Significance.** For figures with raw samples on both sides (two or more each), a 95% percentile-bootstrap
//! interval of the ratio of medians (2000 resamples, fixed seed, so reruns print the same interval); the
//! difference is significant when the interval excludes 1. Accuracy is compared as a difference of proportions
//! (items resampled; in pairs by item id when both files answered the same items, which removes the variation
//! between items both runs share), significant when its interval excludes 0. Figures recorded as one number (peak memory, load
//! time, energy) get a ratio but no test.
//!
//! The work is split by job: `import` turns each file (a meekbench result or llama-bench output) into runs with
//! their figures, `matching` pairs the runs and figures of the inputs and tests each pair, and `render` writes
//! the comparison for a terminal or as Markdown.

use std::collections::BTreeMap;

use meek_stats::Sample;
use serde::Serialize;

mod import;
mod matching;
mod render;

pub use matching::compare;
pub use meek_render::format::num;
pub use render::{markdown, terminal};

/// Bootstrap resamples per figure.
pub const RESAMPLES: usize = 2000;
/// Samples per side above which no bootstrap is run (a file could hold millions; the test would take minutes).
pub const MAX_BOOTSTRAP_SAMPLES: usize = 5000;

/// Options of a comparison.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bootstrap resamples per figure.
    pub resamples: usize,
    /// Seed of the bootstrap's random stream.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            resamples: RESAMPLES,
            seed: 0x6d65_656b_6265_6e63,
        }
    }
}

/// A figure that can be compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Prompt tokens per second.
    PrefillTokensPerSecond,
    /// Generated tokens per second after the first.
    DecodeTokensPerSecond,
    /// llama-bench `pg` tests: prompt and generation in one rate.
    BlendedTokensPerSecond,
    /// Time to first token.
    TtftMs,
    /// Median inter-token latency.
    ItlP50Ms,
    /// Peak resident memory.
    PeakRssMib,
    /// Model load time.
    LoadSeconds,
    /// Flexible-extractor accuracy of a suite.
    AccuracyFlexible,
    /// Strict-extractor accuracy of a suite.
    AccuracyStrict,
    /// Decode rate while answering a suite.
    SuiteDecodeTokensPerSecond,
    /// Suite seconds per correct answer.
    SecondsPerCorrect,
    /// Joules per prefill token.
    JoulesPerPrefillToken,
    /// Joules per generated token.
    JoulesPerDecodeToken,
    /// Joules per correct answer.
    JoulesPerCorrect,
    /// Electricity cost per correct answer (in the file's currency, flagged when the files differ).
    CostPerCorrect,
    /// Mean loss on a perplexity text, nats per token (with its standard error as the spread).
    LossNatsPerToken,
    /// The same loss in bits per byte of the text.
    BitsPerByte,
}

impl Metric {
    /// Short name with its unit.
    pub fn label(self) -> &'static str {
        match self {
            Self::PrefillTokensPerSecond => "prefill tok/s",
            Self::DecodeTokensPerSecond => "decode tok/s",
            Self::BlendedTokensPerSecond => "prompt+gen tok/s",
            Self::TtftMs => "TTFT ms",
            Self::ItlP50Ms => "inter-token p50 ms",
            Self::PeakRssMib => "peak RSS MiB",
            Self::LoadSeconds => "load s",
            Self::AccuracyFlexible => "accuracy (flexible)",
            Self::AccuracyStrict => "accuracy (strict)",
            Self::SuiteDecodeTokensPerSecond => "answer decode tok/s",
            Self::SecondsPerCorrect => "s per correct",
            Self::JoulesPerPrefillToken => "J per prefill token",
            Self::JoulesPerDecodeToken => "J per decode token",
            Self::JoulesPerCorrect => "J per correct",
            Self::CostPerCorrect => "cost per correct",
            Self::LossNatsPerToken => "loss nats/token",
            Self::BitsPerByte => "bits per byte",
        }
    }

    /// Whether a larger value is better.
    pub fn higher_is_better(self) -> bool {
        matches!(
            self,
            Self::PrefillTokensPerSecond
                | Self::DecodeTokensPerSecond
                | Self::BlendedTokensPerSecond
                | Self::AccuracyFlexible
                | Self::AccuracyStrict
                | Self::SuiteDecodeTokensPerSecond
        )
    }

    fn is_accuracy(self) -> bool {
        matches!(self, Self::AccuracyFlexible | Self::AccuracyStrict)
    }
}

/// A measured value as recorded.
#[derive(Debug, Clone, PartialEq)]
enum Measured {
    /// Repeated measurement (the median is the figure).
    Samples(Vec<f64>),
    /// One number.
    Single(f64),
    /// Correct answers out of n (the proportion is the figure).
    Outcomes {
        correct: usize,
        n: usize,
        /// Each item's id and whether it was right, when the file lists every item (for a paired test).
        items: Option<Vec<(String, bool)>>,
    },
}

#[derive(Debug, Clone)]
struct Figure {
    metric: Metric,
    n_prompt: usize,
    n_gen: usize,
    depth: usize,
    /// A llama-bench isolated test (`pp` or `tg`): only the dimension it measures must match.
    isolated: bool,
    suite: Option<String>,
    value: Measured,
}

impl Figure {
    fn point(&self) -> String {
        if self.suite.is_some() {
            return String::new();
        }
        if self.isolated {
            let d = if self.depth > 0 {
                format!(" d{}", self.depth)
            } else {
                String::new()
            };
            return match self.metric {
                Metric::PrefillTokensPerSecond => format!("pp{}{d}", self.n_prompt),
                _ => format!("tg{}{d}", self.n_gen),
            };
        }
        if self.metric == Metric::LoadSeconds {
            return String::new();
        }
        format!("p{} g{}", self.n_prompt, self.n_gen)
    }

    /// Tokens in the cache before the figure's work: a llama-bench test's depth; a meekbench decode also follows
    /// its prompt.
    fn context(&self) -> usize {
        match (self.isolated, self.metric) {
            (false, Metric::DecodeTokensPerSecond) => self.depth + self.n_prompt,
            _ => self.depth,
        }
    }

    fn matches(&self, o: &Figure) -> bool {
        self.matches_at_some_context(o) && self.context() == o.context()
    }

    /// [`Figure::matches`] but for the cache length, which only an isolated test's counterpart may differ in.
    fn matches_at_some_context(&self, o: &Figure) -> bool {
        if self.metric != o.metric || self.suite != o.suite {
            return false;
        }
        if self.suite.is_some() || self.metric == Metric::LoadSeconds {
            return true;
        }
        if self.isolated || o.isolated {
            return match self.metric {
                Metric::PrefillTokensPerSecond => self.n_prompt == o.n_prompt,
                Metric::DecodeTokensPerSecond => self.n_gen == o.n_gen,
                _ => false,
            };
        }
        (self.n_prompt, self.n_gen, self.depth) == (o.n_prompt, o.n_gen, o.depth)
    }

    /// The figure in `others` that matches this one; failing that, a decode test at the nearest other cache length
    /// (flagged by the caller), never a prefill at another one.
    fn counterpart<'a>(&self, others: &'a [Figure]) -> Option<&'a Figure> {
        others.iter().find(|g| self.matches(g)).or_else(|| {
            others
                .iter()
                .filter(|g| {
                    self.metric == Metric::DecodeTokensPerSecond && self.matches_at_some_context(g)
                })
                .min_by_key(|g| g.context().abs_diff(self.context()))
        })
    }

    fn cell(&self) -> Cell {
        match &self.value {
            Measured::Samples(v) => {
                let s = Sample::new(v.clone()).expect("checked when built");
                Cell {
                    value: s.median(),
                    spread: (v.len() > 1).then(|| s.stddev()),
                    n: v.len(),
                }
            }
            Measured::Single(x) => Cell {
                value: *x,
                spread: None,
                n: 1,
            },
            Measured::Outcomes { correct, n, .. } => Cell {
                value: if *n == 0 {
                    0.0
                } else {
                    *correct as f64 / *n as f64
                },
                spread: None,
                n: *n,
            },
        }
    }
}

#[derive(Debug, Clone)]
struct ModelKey {
    sha256: Option<String>,
    file: String,
    name: String,
}

impl ModelKey {
    /// `Some(true)` when the same file by hash, `Some(false)` when only the file names match.
    fn same(&self, o: &ModelKey) -> Option<bool> {
        match (&self.sha256, &o.sha256) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b).then_some(true),
            _ => (self.file == o.file).then_some(false),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    model: ModelKey,
    threads: usize,
    attrs: BTreeMap<&'static str, String>,
    figures: Vec<Figure>,
}

#[derive(Debug, Clone)]
struct Source {
    attrs: BTreeMap<&'static str, String>,
    entries: Vec<Entry>,
}

/// One compared input.
#[derive(Debug, Clone, Serialize)]
pub struct Input {
    /// `A`, `B`, ... in the order given; `A` is the baseline.
    pub name: String,
    /// The file.
    pub path: String,
    /// The program that wrote it, with its version.
    pub program: String,
    /// The machine, in a few words.
    pub machine: String,
}

/// One figure across the inputs.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Model name (of the baseline run).
    pub model: String,
    /// Thread count of each input's run (`None` where the input has no matching run).
    pub threads: Vec<Option<usize>>,
    /// Which figure.
    pub metric: Metric,
    /// Its name and unit.
    pub label: String,
    /// Workload point (`p128 g64`, llama-bench `pp128` / `tg64`), empty for suite and load figures.
    pub point: String,
    /// Suite, for accuracy figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    /// Whether larger is better.
    pub higher_is_better: bool,
    /// The figure in each input, in input order.
    pub cells: Vec<Option<Cell>>,
    /// Each input against the baseline (`None` for the baseline itself and where the input has no figure).
    pub versus: Vec<Option<Versus>>,
}

/// A figure as measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Cell {
    /// The median of the samples, the proportion correct, or the single value.
    pub value: f64,
    /// Sample standard deviation when there are repeated samples.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spread: Option<f64>,
    /// Samples (or items) behind the value.
    pub n: usize,
}

/// One input's figure against the baseline's.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Versus {
    /// `ratio` (this / baseline) or `difference` (this - baseline, for accuracy).
    pub contrast: &'static str,
    /// The ratio or difference of the figures; absent when the baseline is 0 for a ratio.
    pub estimate: Option<f64>,
    /// 95% bootstrap interval of the contrast, when both sides have samples to resample.
    pub ci95: Option<[f64; 2]>,
    /// Whether the interval excludes no change (`None` when not tested).
    pub significant: Option<bool>,
    /// In words: `better`, `worse`, `no significant difference`, or why it was not tested.
    pub verdict: String,
    /// The test behind the interval, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<&'static str>,
}

/// Something that differs between the inputs.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Difference {
    /// What differs (`threads`, `kernel`, `tool commit`, ...).
    pub what: String,
    /// `all runs`, or the model the difference concerns.
    pub scope: String,
    /// The value in each input (`-` where not recorded or not involved).
    pub values: Vec<String>,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The inputs; the first is the baseline.
    pub inputs: Vec<Input>,
    /// What differs between the runs.
    pub differences: Vec<Difference>,
    /// Remarks that qualify the figures.
    pub notes: Vec<String>,
    /// The figures.
    pub rows: Vec<Row>,
    /// Runs of the other inputs that nothing in the baseline matched.
    pub unmatched: Vec<String>,
    /// How significance was decided.
    pub method: String,
}
