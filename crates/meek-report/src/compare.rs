//! Putting result files side by side: figures matched by model file, workload point, thread count and suite,
//! each with its ratio to the baseline (the first file) and whether the raw samples make the difference
//! significant, plus everything that differs between the runs.
//!
//! **Matching.** Two runs are of the same model when their files have the same SHA-256; llama-bench records no
//! hash, so its tests match on the file name (and the comparison says so). Runs match on equal thread counts;
//! when each side measured a model at exactly one thread count and those differ, the two are compared anyway and
//! the difference is flagged. Speed figures match on the workload point (prompt and generated tokens). A
//! llama-bench `pp<N>` test (prompt only) matches prefill at an N-token prompt, and `tg<N>` (generation from an
//! empty context) matches decode with N generated tokens, as `scripts/peer-llama-bench.sh` compares them.
//!
//! **Significance.** For figures with raw samples on both sides (two or more each), a 95% percentile-bootstrap
//! interval of the ratio of medians (2000 resamples, fixed seed, so reruns print the same interval); the
//! difference is significant when the interval excludes 1. Accuracy is compared as a difference of proportions
//! (items resampled; in pairs by item id when both files answered the same items, which removes the variation
//! between items both runs share), significant when its interval excludes 0. Figures recorded as one number (peak memory, load
//! time, energy) get a ratio but no test.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use meek_render::escape::{self, clip};
pub use meek_render::format::num;
use meek_stats::{Contrast, Sample, Statistic};
use serde::Serialize;

use crate::ReportError;
use crate::input::{Document, Loaded};

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

    fn matches(&self, o: &Figure) -> bool {
        if self.metric != o.metric || self.suite != o.suite {
            return false;
        }
        if self.suite.is_some() || self.metric == Metric::LoadSeconds {
            return true;
        }
        if self.isolated || o.isolated {
            if self.depth != o.depth {
                return false;
            }
            return match self.metric {
                Metric::PrefillTokensPerSecond => self.n_prompt == o.n_prompt,
                Metric::DecodeTokensPerSecond => self.n_gen == o.n_gen,
                _ => false,
            };
        }
        (self.n_prompt, self.n_gen, self.depth) == (o.n_prompt, o.n_gen, o.depth)
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

fn paired_items(m: &Measured) -> Option<&[(String, bool)]> {
    match m {
        Measured::Outcomes { items: Some(v), .. } => Some(v),
        _ => None,
    }
}

/// The outcomes of both sides in one item order, when both answered exactly the same items (unique ids).
fn align(a: &[(String, bool)], b: &[(String, bool)]) -> Option<(Vec<f64>, Vec<f64>)> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let index: BTreeMap<&str, bool> = b.iter().map(|(id, ok)| (id.as_str(), *ok)).collect();
    let unique: BTreeSet<&str> = a.iter().map(|(id, _)| id.as_str()).collect();
    if index.len() != b.len() || unique.len() != a.len() {
        return None;
    }
    let one = |ok: bool| if ok { 1.0 } else { 0.0 };
    let mut xa = Vec::with_capacity(a.len());
    let mut xb = Vec::with_capacity(a.len());
    for (id, ok) in a {
        xa.push(one(*ok));
        xb.push(one(*index.get(id.as_str())?));
    }
    Some((xa, xb))
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

fn samples(v: &[f64]) -> Option<Measured> {
    (!v.is_empty() && v.iter().all(|x| x.is_finite())).then(|| Measured::Samples(v.to_vec()))
}

fn single(x: f64) -> Option<Measured> {
    x.is_finite().then_some(Measured::Single(x))
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

fn from_meekbench(l: &Loaded) -> Option<(Source, Input)> {
    let Document::Meekbench { result, energy } = &l.document else {
        return None;
    };
    let r = result;
    let m = &r.machine;
    let gpus: Vec<String> = m.gpus.iter().map(|g| clip(&g.name, 60)).collect();
    let cores = match m.cpu.physical_cores {
        Some(p) => format!("{p} cores / {} threads", m.cpu.logical_cores),
        None => format!("{} threads", m.cpu.logical_cores),
    };
    let mut attrs = BTreeMap::new();
    let program = format!("meekbench {}", clip(&r.tool.version, 40));
    attrs.insert("program", program.clone());
    if let Some(c) = &r.tool.git_commit {
        attrs.insert("tool commit", clip(c, 40));
    }
    attrs.insert("build profile", clip(&r.tool.profile, 20));
    attrs.insert(
        "build features",
        if r.tool.features.is_empty() {
            "none".into()
        } else {
            clip(&r.tool.features.join(","), 80)
        },
    );
    attrs.insert("engine", clip(&r.tool.engine, 60));
    attrs.insert("target", clip(&r.tool.target, 60));
    attrs.insert("config sha256", clip(&r.config.sha256, 12));
    attrs.insert("cpu", clip(&m.cpu.brand, 80));
    attrs.insert("cores", cores.clone());
    attrs.insert("memory", gib(m.memory_bytes));
    attrs.insert(
        "gpus",
        if gpus.is_empty() {
            "none".into()
        } else {
            gpus.join(", ")
        },
    );
    attrs.insert("os", clip(&m.os, 60));
    attrs.insert("os kernel", clip(&m.kernel, 60));
    if let Some(v) = m.virtualized {
        attrs.insert("virtualized", v.to_string());
    }
    attrs.insert("status", format!("{:?}", r.status).to_lowercase());
    let mut entries = Vec::new();
    for (i, run) in r.runs.iter().enumerate() {
        let mut ea = BTreeMap::new();
        ea.insert("device", clip(&run.device, 40));
        ea.insert("kernel", clip(&run.kernel, 40));
        ea.insert("threads", run.threads.to_string());
        let e = energy.get(i).cloned().flatten();
        if let Some(e) = &e {
            if let Some(s) = &e.status {
                ea.insert("energy status", s.clone());
            }
            if let Some(s) = &e.label {
                ea.insert("energy provenance", s.clone());
            }
            if e.cost_per_correct.is_some() || e.cost_per_million_tokens.is_some() {
                ea.insert(
                    "currency",
                    e.currency.clone().unwrap_or_else(|| "USD".into()),
                );
            }
        }
        let mut figures = Vec::new();
        let mut push = |metric, n_prompt, n_gen, suite: Option<String>, value: Option<Measured>| {
            if let Some(value) = value {
                figures.push(Figure {
                    metric,
                    n_prompt,
                    n_gen,
                    depth: 0,
                    isolated: false,
                    suite,
                    value,
                });
            }
        };
        for p in &run.speed {
            let (np, ng) = (p.n_prompt, p.n_gen);
            push(
                Metric::PrefillTokensPerSecond,
                np,
                ng,
                None,
                samples(&p.prefill_tokens_per_second.samples),
            );
            push(
                Metric::DecodeTokensPerSecond,
                np,
                ng,
                None,
                samples(&p.decode_tokens_per_second.samples),
            );
            push(Metric::TtftMs, np, ng, None, samples(&p.ttft_ms.samples));
            push(Metric::ItlP50Ms, np, ng, None, samples(&p.itl_ms.samples));
            push(
                Metric::PeakRssMib,
                np,
                ng,
                None,
                single(p.peak_rss_bytes as f64 / f64::from(1u32 << 20)),
            );
        }
        push(Metric::LoadSeconds, 0, 0, None, single(run.load_seconds));
        if let Some(e) = &e {
            // Per-repetition joules at each point when the file has them (tested like the rates), else the
            // run's one figure beside its first point.
            for (k, p) in run.speed.iter().enumerate() {
                let (np, ng) = (p.n_prompt, p.n_gen);
                let pe = e.points.iter().find(|q| (q.n_prompt, q.n_gen) == (np, ng));
                let pick = |per_point: Option<&Vec<f64>>, run_level: Option<f64>| {
                    per_point
                        .and_then(|v| samples(v))
                        .or_else(|| (k == 0).then_some(run_level).flatten().and_then(single))
                };
                push(
                    Metric::JoulesPerPrefillToken,
                    np,
                    ng,
                    None,
                    pick(
                        pe.map(|q| &q.joules_per_prefill_token),
                        e.joules_per_prefill_token,
                    ),
                );
                push(
                    Metric::JoulesPerDecodeToken,
                    np,
                    ng,
                    None,
                    pick(
                        pe.map(|q| &q.joules_per_decode_token),
                        e.joules_per_decode_token,
                    ),
                );
            }
        }
        for (k, s) in run.accuracy.iter().enumerate() {
            let suite = Some(clip(&s.suite, 80));
            let outcomes = |sc: &meek_schema::Score, strict: bool| {
                // Item list usable for pairing only when it agrees with the score.
                let items: Vec<(String, bool)> = s
                    .items
                    .iter()
                    .map(|it| {
                        let ok = if strict {
                            it.correct_strict
                        } else {
                            it.correct_flexible
                        };
                        (it.id.clone(), ok)
                    })
                    .collect();
                let consistent =
                    items.len() == sc.n && items.iter().filter(|(_, ok)| *ok).count() == sc.correct;
                (sc.correct <= sc.n).then_some(Measured::Outcomes {
                    correct: sc.correct,
                    n: sc.n,
                    items: consistent.then_some(items),
                })
            };
            push(
                Metric::AccuracyFlexible,
                0,
                0,
                suite.clone(),
                outcomes(&s.flexible, false),
            );
            push(
                Metric::AccuracyStrict,
                0,
                0,
                suite.clone(),
                outcomes(&s.strict, true),
            );
            if let Some(d) = &s.decode_tokens_per_second {
                push(
                    Metric::SuiteDecodeTokensPerSecond,
                    0,
                    0,
                    suite.clone(),
                    samples(&d.samples),
                );
            }
            push(
                Metric::SecondsPerCorrect,
                0,
                0,
                suite.clone(),
                s.seconds_per_correct.and_then(single),
            );
            if k == 0
                && let Some(e) = &e
            {
                push(
                    Metric::JoulesPerCorrect,
                    0,
                    0,
                    suite.clone(),
                    e.joules_per_correct.and_then(single),
                );
                push(
                    Metric::CostPerCorrect,
                    0,
                    0,
                    suite.clone(),
                    e.cost_per_correct.and_then(single),
                );
            }
        }
        entries.push(Entry {
            model: ModelKey {
                sha256: Some(clip(&run.model.sha256, 64)),
                file: clip(&run.model.file, 120),
                name: clip(&run.model.id, escape::MAX_CELL_CHARS),
            },
            threads: run.threads,
            attrs: ea,
            figures,
        });
    }
    let input = Input {
        name: String::new(),
        path: meek_schema::shown(&l.path),
        program: format!(
            "{program}{}",
            r.tool
                .git_commit
                .as_deref()
                .map(|c| format!(" ({})", clip(c, 24)))
                .unwrap_or_default()
        ),
        machine: format!(
            "{}, {cores}, {}",
            clip(&m.cpu.brand, 60),
            gib(m.memory_bytes)
        ) + &if gpus.is_empty() {
            String::new()
        } else {
            format!(", {}", gpus.join(", "))
        },
    };
    Some((Source { attrs, entries }, input))
}

fn from_llama_bench(l: &Loaded) -> Option<(Source, Input)> {
    let Document::LlamaBench(tests) = &l.document else {
        return None;
    };
    let first = tests.first()?;
    let opt = |s: &Option<String>| s.as_deref().map(|s| clip(s, 80)).unwrap_or_default();
    let program = format!(
        "llama-bench (llama.cpp build {}, commit {})",
        first.build_number.unwrap_or(0),
        opt(&first.build_commit)
    );
    let mut attrs = BTreeMap::new();
    attrs.insert("program", program.clone());
    attrs.insert("cpu", opt(&first.cpu_info));
    let gpu = opt(&first.gpu_info);
    attrs.insert(
        "gpus",
        if gpu.is_empty() {
            "none".into()
        } else {
            gpu.clone()
        },
    );
    let mut entries: Vec<Entry> = Vec::new();
    for t in tests {
        let mut ea = BTreeMap::new();
        let backends = opt(&t.backends);
        ea.insert(
            "device",
            if backends.is_empty() || backends.eq_ignore_ascii_case("cpu") {
                "cpu".to_string()
            } else {
                format!("{backends} (ngl {})", t.n_gpu_layers.unwrap_or(0))
            },
        );
        ea.insert(
            "kernel",
            format!(
                "llama.cpp {}",
                if backends.is_empty() { "?" } else { &backends }
            ),
        );
        ea.insert("threads", t.n_threads.to_string());
        if let (Some(b), Some(u)) = (t.n_batch, t.n_ubatch) {
            ea.insert("batch", format!("{b}/{u}"));
        }
        let metric = match (t.n_prompt, t.n_gen) {
            (_, 0) => Metric::PrefillTokensPerSecond,
            (0, _) => Metric::DecodeTokensPerSecond,
            _ => Metric::BlendedTokensPerSecond,
        };
        let value = t
            .samples_ts
            .as_deref()
            .and_then(samples)
            .or_else(|| single(t.avg_ts))?;
        let figure = Figure {
            metric,
            n_prompt: t.n_prompt,
            n_gen: t.n_gen,
            depth: t.n_depth,
            isolated: metric != Metric::BlendedTokensPerSecond,
            suite: None,
            value,
        };
        let file = clip(t.file_name(), 120);
        let existing = entries
            .iter_mut()
            .find(|e| e.model.file == file && e.threads == t.n_threads && e.attrs == ea);
        match existing {
            Some(e) => e.figures.push(figure),
            None => entries.push(Entry {
                model: ModelKey {
                    sha256: None,
                    name: file.clone(),
                    file,
                },
                threads: t.n_threads,
                attrs: ea,
                figures: vec![figure],
            }),
        }
    }
    let input = Input {
        name: String::new(),
        path: meek_schema::shown(&l.path),
        program,
        machine: if gpu.is_empty() {
            opt(&first.cpu_info)
        } else {
            format!("{}, {gpu}", opt(&first.cpu_info))
        },
    };
    Some((Source { attrs, entries }, input))
}

fn versus(metric: Metric, a: &Figure, b: &Figure, opts: &Options, seed: u64) -> Versus {
    let (ca, cb) = (a.cell(), b.cell());
    let accuracy = metric.is_accuracy();
    let estimate = if accuracy {
        Some(cb.value - ca.value)
    } else if ca.value > 0.0 {
        Some(cb.value / ca.value)
    } else {
        None
    };
    let as_sample = |m: &Measured| -> Option<Sample> {
        match m {
            Measured::Samples(v) => Sample::new(v.clone()).ok(),
            Measured::Outcomes { correct, n, .. } => Sample::new(
                (0..*n)
                    .map(|i| if i < *correct { 1.0 } else { 0.0 })
                    .collect(),
            )
            .ok(),
            Measured::Single(_) => None,
        }
    };
    let contrast = if accuracy { "difference" } else { "ratio" };
    let untested = |why: &str| Versus {
        contrast,
        estimate,
        ci95: None,
        significant: None,
        verdict: format!("not tested: {why}"),
        test: None,
    };
    let verdict_of = |lo: f64, hi: f64, none: f64| {
        let significant = lo > none || hi < none;
        let verdict = if !significant {
            "no significant difference"
        } else if (lo > none) == metric.higher_is_better() {
            "better"
        } else {
            "worse"
        };
        (significant, verdict.to_string())
    };
    // The same items answered on both sides: a paired test, which is not fooled by how hard the items are.
    if let (Some(pa), Some(pb)) = (paired_items(&a.value), paired_items(&b.value))
        && let Some((xa, xb)) = align(pa, pb)
        && let Some((lo, hi)) =
            meek_stats::bootstrap_paired_difference_ci95(&xa, &xb, opts.resamples, seed)
    {
        let (significant, verdict) = verdict_of(lo, hi, 0.0);
        return Versus {
            contrast,
            estimate,
            ci95: Some([lo, hi]),
            significant: Some(significant),
            verdict,
            test: Some("paired bootstrap over the same items"),
        };
    }
    let (Some(sa), Some(sb)) = (as_sample(&a.value), as_sample(&b.value)) else {
        return untested("one value per side");
    };
    if sa.len().max(sb.len()) > MAX_BOOTSTRAP_SAMPLES {
        return untested("too many samples");
    }
    let (stat, contrast_kind, none) = if accuracy {
        (Statistic::Mean, Contrast::Difference, 0.0)
    } else {
        (Statistic::Median, Contrast::Ratio, 1.0)
    };
    let Some((lo, hi)) =
        meek_stats::bootstrap_ci95(&sa, &sb, stat, contrast_kind, opts.resamples, seed)
    else {
        return untested(if sa.len() < 2 || sb.len() < 2 {
            "fewer than two samples"
        } else {
            "baseline is zero"
        });
    };
    let (significant, verdict) = verdict_of(lo, hi, none);
    Versus {
        contrast,
        estimate,
        ci95: Some([lo, hi]),
        significant: Some(significant),
        verdict,
        test: Some(if accuracy {
            "bootstrap of the difference of proportions"
        } else {
            "bootstrap of the ratio of medians"
        }),
    }
}

fn input_name(i: usize) -> String {
    let letter = (b'A' + (i % 26) as u8) as char;
    if i < 26 {
        letter.to_string()
    } else {
        format!("{letter}{}", i / 26)
    }
}

/// Compares `inputs` (at least two); the first is the baseline.
pub fn compare(inputs: &[Loaded], opts: &Options) -> Result<Comparison, ReportError> {
    if inputs.len() < 2 {
        return Err(ReportError::TooFewInputs(inputs.len()));
    }
    let mut sources = Vec::new();
    let mut described = Vec::new();
    for (i, l) in inputs.iter().enumerate() {
        let (s, mut input) = from_meekbench(l)
            .or_else(|| from_llama_bench(l))
            .ok_or_else(|| ReportError::Empty(meek_schema::shown(&l.path)))?;
        input.name = input_name(i);
        sources.push(s);
        described.push(input);
    }
    let n = sources.len();
    let mut differences = BTreeSet::new();
    // File-level differences: shown when two inputs record different values.
    let keys: BTreeSet<&'static str> = sources
        .iter()
        .flat_map(|s| s.attrs.keys().copied())
        .collect();
    for k in keys {
        let values: Vec<Option<&String>> = sources.iter().map(|s| s.attrs.get(k)).collect();
        let distinct: BTreeSet<&String> = values.iter().flatten().copied().collect();
        if distinct.len() > 1 {
            differences.insert(Difference {
                what: k.to_string(),
                scope: "all runs".into(),
                values: values
                    .iter()
                    .map(|v| v.map_or("-".to_string(), |s| s.to_string()))
                    .collect(),
            });
        }
    }
    let mut notes = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        let name = &described[i].name;
        if s.attrs.get("build profile").is_some_and(|p| p != "release") {
            notes.push(format!(
                "{name} was measured by a {} build; its speed figures are far below what the machine does",
                s.attrs["build profile"]
            ));
        }
        if s.attrs.get("status").is_some_and(|p| p != "complete") {
            notes.push(format!(
                "{name} is {}: not every planned figure was measured",
                s.attrs["status"]
            ));
        }
    }
    let any_llama = inputs
        .iter()
        .any(|l| matches!(l.document, Document::LlamaBench(_)));
    if any_llama {
        notes.push(
            "llama-bench figures: a pp<N> test processes a prompt with no generation and is matched with prefill \
             at an N-token prompt; a tg<N> test generates from an empty context and is matched with decode of N \
             tokens; llama-bench records no file hash, so its tests match on the model's file name. The median of \
             llama-bench's samples is shown (llama-bench itself prints their mean)."
                .to_string(),
        );
    }
    let mut rows = Vec::new();
    let mut matched: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    let base = &sources[0];
    for e in &base.entries {
        // Partner entry in each other input.
        let mut partners: Vec<Option<&Entry>> = vec![Some(e)];
        for (j, s) in sources.iter().enumerate().skip(1) {
            let same: Vec<(usize, &Entry, bool)> = s
                .entries
                .iter()
                .enumerate()
                .filter_map(|(k, o)| e.model.same(&o.model).map(|h| (k, o, h)))
                .collect();
            // Among runs at the same thread count, prefer the same device, then the same kernel (a file may hold
            // one model on the CPU and on a GPU).
            let score = |o: &Entry| {
                (
                    o.attrs.get("device") == e.attrs.get("device"),
                    o.attrs.get("kernel") == e.attrs.get("kernel"),
                )
            };
            let mut exact: Vec<&(usize, &Entry, bool)> = same
                .iter()
                .filter(|(_, o, _)| o.threads == e.threads)
                .collect();
            exact.sort_by_key(|(k, o, _)| (std::cmp::Reverse(score(o)), *k));
            let base_threads: BTreeSet<usize> = base
                .entries
                .iter()
                .filter(|b| b.model.same(&e.model).is_some())
                .map(|b| b.threads)
                .collect();
            let other_threads: BTreeSet<usize> = same.iter().map(|(_, o, _)| o.threads).collect();
            let chosen = exact.first().copied().or_else(|| {
                // Each side measured this model at one thread count, and they differ: compare, and flag it.
                (base_threads.len() == 1 && other_threads.len() == 1)
                    .then(|| {
                        same.iter()
                            .max_by_key(|(k, o, _)| (score(o), std::cmp::Reverse(*k)))
                    })
                    .flatten()
            });
            let Some(&(k, o, by_hash)) = chosen else {
                partners.push(None);
                continue;
            };
            matched[j].insert(k);
            let mut vals = vec!["-".to_string(); n];
            if !by_hash {
                vals[0] = e.model.sha256.clone().map_or_else(
                    || e.model.file.clone(),
                    |h| format!("sha256 {}", clip(&h, 12)),
                );
                vals[j] = format!("file name {}", o.model.file);
                differences.insert(Difference {
                    what: "model matched by".into(),
                    scope: e.model.name.clone(),
                    values: vals.clone(),
                });
            }
            let keys: BTreeSet<&&str> = e.attrs.keys().chain(o.attrs.keys()).collect();
            for k in keys {
                let (va, vb) = (e.attrs.get(*k), o.attrs.get(*k));
                if va != vb {
                    let mut vals = vec!["-".to_string(); n];
                    vals[0] = va.cloned().unwrap_or_else(|| "not recorded".into());
                    vals[j] = vb.cloned().unwrap_or_else(|| "not recorded".into());
                    differences.insert(Difference {
                        what: k.to_string(),
                        scope: e.model.name.clone(),
                        values: vals,
                    });
                }
            }
            partners.push(Some(o));
        }
        for f in &e.figures {
            let found: Vec<Option<&Figure>> = partners
                .iter()
                .enumerate()
                .map(|(j, p)| {
                    if j == 0 {
                        Some(f)
                    } else {
                        p.and_then(|o| o.figures.iter().find(|g| f.matches(g)))
                    }
                })
                .collect();
            let vs: Vec<Option<Versus>> = found
                .iter()
                .enumerate()
                .map(|(j, g)| {
                    if j == 0 {
                        return None;
                    }
                    g.map(|g| versus(f.metric, f, g, opts, opts.seed))
                })
                .collect();
            let point = found
                .iter()
                .flatten()
                .map(|g| g.point())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join(" = ");
            rows.push(Row {
                model: e.model.name.clone(),
                threads: partners.iter().map(|p| p.map(|p| p.threads)).collect(),
                metric: f.metric,
                label: f.metric.label().to_string(),
                point,
                suite: f.suite.clone(),
                higher_is_better: f.metric.higher_is_better(),
                cells: found.iter().map(|g| g.map(Figure::cell)).collect(),
                versus: vs,
            });
        }
    }
    let mut unmatched = Vec::new();
    for (j, s) in sources.iter().enumerate().skip(1) {
        for (k, o) in s.entries.iter().enumerate() {
            if !matched[j].contains(&k) {
                unmatched.push(format!(
                    "{}: {} with {} threads has no counterpart in {}",
                    described[j].name, o.model.name, o.threads, described[0].name
                ));
            }
        }
    }
    unmatched.dedup();
    Ok(Comparison {
        inputs: described,
        differences: differences.into_iter().collect(),
        notes,
        rows,
        unmatched,
        method: format!(
            "ratio = input / baseline (A) of medians; 95% interval by percentile bootstrap ({} resamples, \
             fixed seed) of the ratio of medians, significant when it excludes 1; accuracy: difference of \
             proportions, items resampled (in pairs when both files answered the same items), significant when \
             the interval excludes 0. better/worse take the \
             figure's direction into account (tokens/s: higher is better; ms, bytes, joules, $: lower is better).",
            opts.resamples
        ),
    })
}

fn cell_text(metric: Metric, c: &Option<Cell>) -> String {
    match c {
        None => "-".into(),
        Some(c) if metric.is_accuracy() => format!("{:.1}% of {}", 100.0 * c.value, c.n),
        Some(c) => match c.spread {
            Some(s) => format!("{} ± {}", num(c.value), num(s)),
            None => num(c.value),
        },
    }
}

fn versus_text(v: &Option<Versus>) -> (String, String, String) {
    let Some(v) = v else {
        return ("-".into(), String::new(), String::new());
    };
    let pct = v.contrast == "difference";
    let f = |x: f64| {
        if pct {
            format!("{:+.1} pts", 100.0 * x)
        } else {
            format!("{x:.3}")
        }
    };
    (
        v.estimate.map_or_else(|| "-".into(), f),
        v.ci95
            .map_or_else(String::new, |[lo, hi]| format!("[{}, {}]", f(lo), f(hi))),
        v.verdict.clone(),
    )
}

/// The comparison's table: header and rows of text cells.
fn grid(c: &Comparison) -> (Vec<String>, Vec<Vec<String>>) {
    let mut head = vec![
        "model".to_string(),
        "threads".into(),
        "figure".into(),
        "point / suite".into(),
    ];
    for i in &c.inputs {
        head.push(i.name.clone());
    }
    for i in c.inputs.iter().skip(1) {
        let a = &c.inputs[0].name;
        head.push(format!("{}/{a}", i.name));
        head.push(format!("{} 95% CI", i.name));
        head.push(format!("{} vs {a}", i.name));
    }
    let mut rows = Vec::new();
    for r in &c.rows {
        let threads: BTreeSet<usize> = r.threads.iter().flatten().copied().collect();
        let threads = threads
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" vs ");
        let mut cells = vec![
            r.model.clone(),
            threads,
            r.label.clone(),
            r.suite.clone().unwrap_or_else(|| r.point.clone()),
        ];
        for cell in &r.cells {
            cells.push(cell_text(r.metric, cell));
        }
        for v in r.versus.iter().skip(1) {
            let (e, ci, verdict) = versus_text(v);
            cells.extend([e, ci, verdict]);
        }
        rows.push(cells);
    }
    (head, rows)
}

/// Plain-text table for a terminal.
pub fn terminal(c: &Comparison) -> String {
    let mut s = String::from("inputs:\n");
    for i in &c.inputs {
        let _ = writeln!(
            s,
            "  {}  {}  {}  [{}]",
            i.name,
            clip(&i.path, 120),
            i.program,
            i.machine
        );
    }
    if !c.differences.is_empty() {
        s.push_str("\ndifferences between the runs (read these before the figures):\n");
        let w = c
            .differences
            .iter()
            .map(|d| d.what.chars().count())
            .max()
            .unwrap_or(0);
        for d in &c.differences {
            let vals: Vec<String> = d
                .values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.as_str() != "-")
                .map(|(i, v)| format!("{}={v}", c.inputs[i].name))
                .collect();
            let _ = writeln!(s, "  {:<w$}  {}  ({})", d.what, vals.join("  "), d.scope);
        }
    }
    for n in &c.notes {
        let _ = writeln!(s, "\nnote: {n}");
    }
    let (head, rows) = grid(c);
    let widths: Vec<usize> = (0..head.len())
        .map(|k| {
            rows.iter()
                .map(|r| r[k].chars().count())
                .chain([head[k].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    s.push('\n');
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (k, cell) in cells.iter().enumerate() {
            let pad = widths[k] - cell.chars().count();
            if k >= 4 && !cell.starts_with(char::is_alphabetic) {
                l.push_str(&" ".repeat(pad));
                l.push_str(cell);
            } else {
                l.push_str(cell);
                l.push_str(&" ".repeat(pad));
            }
            l.push_str("  ");
        }
        l.trim_end().to_string()
    };
    let _ = writeln!(s, "{}", line(&head));
    let _ = writeln!(
        s,
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  ")
    );
    for r in &rows {
        let _ = writeln!(s, "{}", line(r));
    }
    for u in &c.unmatched {
        let _ = writeln!(s, "unmatched: {u}");
    }
    let _ = writeln!(s, "\n{}", c.method);
    s
}

/// GitHub-flavoured Markdown, every text from the files escaped.
pub fn markdown(c: &Comparison) -> String {
    let md = escape::markdown;
    let mut s = String::from("| input | file | program | machine |\n|---|---|---|---|\n");
    for i in &c.inputs {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            i.name,
            md(&i.path),
            md(&i.program),
            md(&i.machine)
        );
    }
    if !c.differences.is_empty() {
        s.push_str("\n**Differences between the runs**\n\n| what | scope |");
        for i in &c.inputs {
            let _ = write!(s, " {} |", i.name);
        }
        s.push_str("\n|---|---|");
        s.push_str(&"---|".repeat(c.inputs.len()));
        s.push('\n');
        for d in &c.differences {
            let _ = write!(s, "| {} | {} |", md(&d.what), md(&d.scope));
            for v in &d.values {
                let _ = write!(s, " {} |", md(v));
            }
            s.push('\n');
        }
    }
    for n in &c.notes {
        let _ = write!(s, "\n> {}\n", md(n));
    }
    let (head, rows) = grid(c);
    s.push('\n');
    let _ = writeln!(
        s,
        "| {} |",
        head.iter().map(|h| md(h)).collect::<Vec<_>>().join(" | ")
    );
    let _ = writeln!(s, "|{}", "---|".repeat(head.len()));
    for r in &rows {
        let _ = writeln!(
            s,
            "| {} |",
            r.iter().map(|h| md(h)).collect::<Vec<_>>().join(" | ")
        );
    }
    for u in &c.unmatched {
        let _ = writeln!(s, "\n- unmatched: {}", md(u));
    }
    let _ = writeln!(s, "\n{}", md(&c.method));
    s
}
