//! The leaderboard: many result files from many machines, one entry per machine, model file, device, thread count
//! and compute kernel, ranked by a chosen figure, written as Markdown and CSV.
//!
//! Where several files measured one entry (a results repository collects repeats), every measurement is kept: the
//! entry's speed figures are the median of theirs with their range, so one noisy run neither hides nor decides
//! the entry, and its other figures (accuracy, energy, provenance) come from the newest file.
//!
//! Machines are grouped by what they are (CPU brand, architecture, cores, memory rounded to GiB, GPUs), never by
//! host name, so two identical machines share a group. Speed figures are taken at one workload point for all
//! entries (the point most files measured, unless one is asked for) and accuracy from one suite, so every number
//! in a column measures the same thing.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::str::FromStr;

use meek_render::escape::{self, MAX_CELL_CHARS, clip};
use meek_render::format::num;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::input::{Document, Loaded, Skipped};

/// The figure entries are ranked by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RankBy {
    /// Median decode tokens per second (higher first).
    Decode,
    /// Median prefill tokens per second (higher first).
    Prefill,
    /// Flexible accuracy on the suite (higher first).
    Accuracy,
    /// Joules per correct answer (lower first).
    JoulesPerCorrect,
    /// Dollars per correct answer (lower first); entries whose cost is in another currency are not ranked.
    UsdPerCorrect,
}

impl RankBy {
    /// Every choice, as written on the command line.
    pub const NAMES: [&'static str; 5] = [
        "decode",
        "prefill",
        "accuracy",
        "joules-per-correct",
        "usd-per-correct",
    ];

    /// Column heading of the figure.
    pub fn label(self) -> &'static str {
        match self {
            Self::Decode => "decode tok/s",
            Self::Prefill => "prefill tok/s",
            Self::Accuracy => "accuracy",
            Self::JoulesPerCorrect => "J per correct answer",
            Self::UsdPerCorrect => "$ per correct answer",
        }
    }

    fn higher_is_better(self) -> bool {
        matches!(self, Self::Decode | Self::Prefill | Self::Accuracy)
    }

    fn value(self, e: &Entry) -> Option<f64> {
        match self {
            Self::Decode => e.decode_tokens_per_second,
            Self::Prefill => e.prefill_tokens_per_second,
            Self::Accuracy => e.accuracy,
            Self::JoulesPerCorrect => e.joules_per_correct,
            Self::UsdPerCorrect => e.cost_per_correct.filter(|_| {
                e.currency
                    .as_deref()
                    .is_none_or(|c| c.eq_ignore_ascii_case("usd"))
            }),
        }
    }
}

impl FromStr for RankBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "decode" => Self::Decode,
            "prefill" => Self::Prefill,
            "accuracy" => Self::Accuracy,
            "joules-per-correct" => Self::JoulesPerCorrect,
            "usd-per-correct" => Self::UsdPerCorrect,
            _ => {
                return Err(format!(
                    "`{s}` is not a ranking; choose one of {}",
                    Self::NAMES.join(", ")
                ));
            }
        })
    }
}

/// What the leaderboard ranks and at which point.
#[derive(Debug, Clone)]
pub struct Options {
    /// The ranking figure.
    pub rank_by: RankBy,
    /// Workload point (prompt tokens, generated tokens) for speed figures; the most common one when `None`.
    pub point: Option<(usize, usize)>,
    /// Suite for accuracy figures; the most common one when `None`.
    pub suite: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            rank_by: RankBy::Decode,
            point: None,
            suite: None,
        }
    }
}

/// A machine, as grouped.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Machine {
    /// Short stable id derived from the fingerprint (`m-` and 8 hex digits).
    pub id: String,
    /// The machine in a few words.
    pub label: String,
    /// CPU brand.
    pub cpu: String,
    /// Architecture.
    pub arch: String,
    /// Physical cores, when known.
    pub physical_cores: Option<usize>,
    /// Logical processors.
    pub logical_cores: usize,
    /// Memory, GiB, rounded.
    pub memory_gib: u64,
    /// GPU names.
    pub gpus: Vec<String>,
    /// Operating systems seen in its files.
    pub os: String,
    /// Whether any of its files says it is virtualised.
    pub virtualized: Option<bool>,
}

/// One row of the leaderboard.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entry {
    /// Place by the ranking figure; `None` when the entry lacks it.
    pub rank: Option<usize>,
    /// Machine id (see [`Machine`]).
    pub machine: String,
    /// Machine label.
    pub machine_label: String,
    /// Model id.
    pub model: String,
    /// Model file name.
    pub model_file: String,
    /// SHA-256 of the model file.
    pub sha256: String,
    /// Dominant weight format.
    pub quantization: String,
    /// Parameters.
    pub n_params: u64,
    /// Device.
    pub device: String,
    /// Threads.
    pub threads: usize,
    /// Compute kernel.
    pub kernel: String,
    /// Median prefill tokens per second at the point.
    pub prefill_tokens_per_second: Option<f64>,
    /// Median decode tokens per second at the point.
    pub decode_tokens_per_second: Option<f64>,
    /// Median time to first token, ms, at the point.
    pub ttft_ms: Option<f64>,
    /// Peak resident memory at the point, MiB.
    pub peak_rss_mib: Option<f64>,
    /// Flexible accuracy on the suite.
    pub accuracy: Option<f64>,
    /// Its 95% Wilson interval.
    pub accuracy_ci95: Option<[f64; 2]>,
    /// Items answered.
    pub accuracy_n: Option<usize>,
    /// Flexible accuracy per step count: (steps, accuracy, items).
    pub by_steps: Vec<(String, f64, usize)>,
    /// Every budget of the suite when the run swept it, in the order measured: accuracy against what an answer
    /// cost (the test-time-compute curve). Empty without a sweep.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub budget_curve: Vec<BudgetPoint>,
    /// Suite seconds per correct answer.
    pub seconds_per_correct: Option<f64>,
    /// Mean loss on the run's first perplexity text, nats per token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_nats_per_token: Option<f64>,
    /// That text's workload name and context, e.g. `gsm8k-train-400 @512`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_text: Option<String>,
    /// Energy status (`measured`, `estimated`, `proxy-only`) when the file has energy figures.
    pub energy_status: Option<String>,
    /// Energy provenance label.
    pub energy_label: Option<String>,
    /// Joules per generated token.
    pub joules_per_decode_token: Option<f64>,
    /// Joules per correct answer.
    pub joules_per_correct: Option<f64>,
    /// Electricity cost per million generated tokens, in `currency`.
    pub cost_per_million_tokens: Option<f64>,
    /// Electricity cost per correct answer, in `currency`.
    pub cost_per_correct: Option<f64>,
    /// Currency of the cost figures (`None`: not stated, taken as USD).
    pub currency: Option<String>,
    /// Program version and commit.
    pub tool: String,
    /// Run status of the file (`complete`, `interrupted`, `running`).
    pub status: String,
    /// File the figures come from.
    pub source: String,
    /// When that bench started.
    pub started_at: String,
    /// How many files measured this same entry.
    pub measurements: usize,
    /// Range (lowest, highest) of the decode figures when several files measured the entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_range: Option<[f64; 2]>,
    /// Range of the prefill figures when several files measured the entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_range: Option<[f64; 2]>,
    /// Each file's figures when several measured the entry, oldest first (the newest [`MAX_REPEATS`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repeats: Vec<Measurement>,
    /// Share of the speed point's parallel regions that other processes contended, where any did (the most of
    /// every file that measured the entry): its speed measures a busy machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub busy: Option<f64>,
}

/// Duplicate runs listed at most (all are counted once regardless).
pub const MAX_DUPLICATES_LISTED: usize = 100;

/// Repeated measurements listed per entry at most (all are counted; result files are untrusted and many).
pub const MAX_REPEATS: usize = 64;

/// One file's speed figures for an entry that several files measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Measurement {
    /// File the figures come from.
    pub source: String,
    /// When that bench started.
    pub started_at: String,
    /// Program version and commit.
    pub tool: String,
    /// Median decode tokens per second at the point.
    pub decode_tokens_per_second: Option<f64>,
    /// Median prefill tokens per second at the point.
    pub prefill_tokens_per_second: Option<f64>,
    /// Median time to first token, ms, at the point.
    pub ttft_ms: Option<f64>,
}

impl Measurement {
    fn of(e: &Entry) -> Self {
        Self {
            source: e.source.clone(),
            started_at: e.started_at.clone(),
            tool: e.tool.clone(),
            decode_tokens_per_second: e.decode_tokens_per_second,
            prefill_tokens_per_second: e.prefill_tokens_per_second,
            ttft_ms: e.ttft_ms,
        }
    }
}

/// Median of the figures present, and their range.
fn median_range(xs: impl Iterator<Item = Option<f64>>) -> Option<(f64, [f64; 2])> {
    let mut v: Vec<f64> = xs.flatten().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = match n {
        0 => return None,
        _ if n % 2 == 1 => v[n / 2],
        _ => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    };
    Some((median, [v[0], v[n - 1]]))
}

impl Entry {
    /// Folds the repeated measurements into the entry's figures (see the module's documentation).
    fn settle(&mut self) {
        if self.repeats.len() < 2 {
            self.repeats.clear();
            return;
        }
        self.repeats.sort_by(|a, b| a.started_at.cmp(&b.started_at));
        let cut = self.repeats.len().saturating_sub(MAX_REPEATS);
        self.repeats.drain(..cut);
        let all = &self.repeats;
        if let Some((m, r)) = median_range(all.iter().map(|x| x.decode_tokens_per_second)) {
            self.decode_tokens_per_second = Some(m);
            self.decode_range = Some(r);
        }
        if let Some((m, r)) = median_range(all.iter().map(|x| x.prefill_tokens_per_second)) {
            self.prefill_tokens_per_second = Some(m);
            self.prefill_range = Some(r);
        }
        if let Some((m, _)) = median_range(all.iter().map(|x| x.ttft_ms)) {
            self.ttft_ms = Some(m);
        }
    }
}

/// Budgets drawn per entry at most (a config sweeps at most 64; a result file is untrusted).
pub const MAX_BUDGETS: usize = 64;

/// One budget of a swept suite.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BudgetPoint {
    /// The budget in words (`256 tokens`, `think 1024 + 256 tokens`).
    pub budget: String,
    /// Flexible accuracy.
    pub accuracy: f64,
    /// Its 95% Wilson interval.
    pub ci95: [f64; 2],
    /// Mean generated tokens per answer.
    pub tokens_per_answer: f64,
    /// Mean seconds per answer.
    pub seconds_per_answer: f64,
    /// Joules per answer (gross), when the file has them.
    pub joules_per_answer: Option<f64>,
}

/// The leaderboard.
#[derive(Debug, Clone, Serialize)]
pub struct Board {
    /// The ranking figure.
    pub rank_by: RankBy,
    /// Workload point of the speed figures.
    pub point: Option<(usize, usize)>,
    /// Suite of the accuracy figures.
    pub suite: Option<String>,
    /// Machines, in order of first appearance in the ranking.
    pub machines: Vec<Machine>,
    /// Entries, ranked.
    pub entries: Vec<Entry>,
    /// Result files used.
    pub files: usize,
    /// Files not used, and why.
    pub skipped: Vec<Skipped>,
    /// Runs found twice (the same measurement in two files, such as a shard and the merge of its plan), each
    /// counted once: which run, and the two files.
    pub duplicates: Vec<String>,
}

/// What tells one measurement from another: where it ran and everything the run recorded (the model, every speed
/// sample, every answer, the energy), which two benches never repeat to the last bit. A file copied, or a shard and
/// the merged file it went into, give the same digest; an edited copy does not.
fn measurement_digest(machine: &str, run: &meek_schema::ModelRun) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(machine.as_bytes());
    h.update([0]);
    h.update(serde_json::to_vec(run).unwrap_or_default());
    h.finalize().into()
}

fn machine_of(m: &meek_schema::MachineInfo) -> Machine {
    let memory_gib = (m.memory_bytes as f64 / f64::from(1u32 << 30)).round() as u64;
    let mut gpus: Vec<String> = m.gpus.iter().map(|g| clip(&g.name, 80)).collect();
    gpus.sort();
    let cpu = clip(&m.cpu.brand, 100);
    let arch = clip(&m.cpu.arch, 20);
    // The SIMD flags (they choose the kernels) and the CPU's model numbers tell apart machines a VM names alike;
    // files written before meekbench recorded the model number keep only the flags.
    let mut flags: Vec<String> = m.cpu.flags.iter().take(64).map(|f| clip(f, 20)).collect();
    flags.sort();
    flags.dedup();
    let model = m
        .cpu
        .model
        .as_deref()
        .map_or_else(String::new, |x| clip(x, 60));
    let fingerprint = format!(
        "{cpu}\n{arch}\n{:?}\n{}\n{memory_gib}\n{}\n{}\n{model}",
        m.cpu.physical_cores,
        m.cpu.logical_cores,
        gpus.join("\n"),
        flags.join(" ")
    );
    let hash = Sha256::digest(fingerprint.as_bytes());
    let id = format!(
        "m-{:02x}{:02x}{:02x}{:02x}",
        hash[0], hash[1], hash[2], hash[3]
    );
    let cores = match m.cpu.physical_cores {
        Some(p) if p != m.cpu.logical_cores => format!("{p}C/{}T", m.cpu.logical_cores),
        _ => format!("{} cores", m.cpu.logical_cores),
    };
    let mut label = format!("{cpu} · {cores} · {memory_gib} GiB");
    for g in &gpus {
        let _ = write!(label, " · {g}");
    }
    Machine {
        id,
        label,
        cpu,
        arch,
        physical_cores: m.cpu.physical_cores,
        logical_cores: m.cpu.logical_cores,
        memory_gib,
        gpus,
        os: clip(&m.os, 80),
        virtualized: m.virtualized,
    }
}

fn most_common<K: Ord + Clone>(items: impl Iterator<Item = K>) -> Option<K> {
    let mut counts: BTreeMap<K, usize> = BTreeMap::new();
    for k in items {
        *counts.entry(k).or_default() += 1;
    }
    // Highest count; among equals, the smallest key (BTreeMap order), so the choice is deterministic.
    let best = counts.values().copied().max()?;
    counts.into_iter().find(|(_, c)| *c == best).map(|(k, _)| k)
}

/// Builds the leaderboard from loaded files. llama-bench files and debug builds are listed as skipped (the
/// first carries no accuracy or machine description, the second measures an unoptimised build).
pub fn build(loaded: &[Loaded], mut skipped: Vec<Skipped>, opts: &Options) -> Board {
    let mut results = Vec::new();
    for l in loaded {
        match &l.document {
            Document::Meekbench { result, .. } if result.tool.profile == "debug" => {
                skipped.push(Skipped::new(
                    &l.path,
                    "measured by a debug build, whose speed says little about the machine",
                ));
            }
            Document::Meekbench { result, energy } => results.push((l, result, energy)),
            Document::LlamaBench(_) => skipped.push(Skipped::new(
                &l.path,
                "llama-bench output has no accuracy or machine description; use it with `meekbench compare`",
            )),
        }
    }
    let point = opts.point.or_else(|| {
        most_common(results.iter().flat_map(|(_, r, _)| {
            r.runs
                .iter()
                .flat_map(|run| run.speed.iter().map(|p| (p.n_prompt, p.n_gen)))
        }))
    });
    let suite = opts.suite.clone().or_else(|| {
        most_common(results.iter().flat_map(|(_, r, _)| {
            r.runs
                .iter()
                .flat_map(|run| run.accuracy.iter().map(|a| a.key()))
        }))
    });
    let mut machines: BTreeMap<String, Machine> = BTreeMap::new();
    // Key: machine, model hash, device, threads, kernel.
    let mut entries: BTreeMap<(String, String, String, usize, String), Entry> = BTreeMap::new();
    let mut seen: BTreeMap<[u8; 32], String> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for (l, r, energy) in &results {
        let file_machine = machine_of(&r.machine);
        let source = l
            .path
            .file_name()
            .map_or_else(|| meek_schema::shown(&l.path), meek_schema::shown);
        for (i, run) in r.runs.iter().enumerate() {
            // A merged file of shards from several machines gives each run its own.
            let m = run
                .machine
                .as_ref()
                .map_or_else(|| file_machine.clone(), machine_of);
            match seen.entry(measurement_digest(&m.id, run)) {
                std::collections::btree_map::Entry::Occupied(first) => {
                    if duplicates.len() < MAX_DUPLICATES_LISTED {
                        duplicates.push(format!(
                            "{} at {} threads in {} is the same measurement as in {}; counted once",
                            clip(&run.model.id, MAX_CELL_CHARS),
                            run.threads,
                            clip(&source, MAX_CELL_CHARS),
                            first.get()
                        ));
                    }
                    continue;
                }
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(clip(&source, MAX_CELL_CHARS));
                }
            }
            let e = energy.get(i).cloned().flatten().unwrap_or_default();
            let sp =
                point.and_then(|(p, g)| run.speed.iter().find(|s| (s.n_prompt, s.n_gen) == (p, g)));
            // An entry's key (`gsm8k [256 tokens]` for one budget of a sweep), else the suite's name (its first
            // budget).
            let acc = suite.as_ref().and_then(|s| {
                (run.accuracy.iter().find(|a| &a.key() == s))
                    .or_else(|| run.accuracy.iter().find(|a| &a.suite == s))
            });
            let finite = |x: f64| x.is_finite().then_some(x);
            let budget_curve: Vec<BudgetPoint> = acc
                .filter(|a| a.sweep)
                .map(|chosen| {
                    run.accuracy
                        .iter()
                        .filter(|a| a.sweep && a.suite == chosen.suite)
                        .filter(|a| a.flexible.accuracy.is_finite())
                        .take(MAX_BUDGETS)
                        .map(|a| BudgetPoint {
                            budget: a.budget_label(),
                            accuracy: a.flexible.accuracy,
                            ci95: a.flexible.ci95,
                            tokens_per_answer: a.mean_generated_tokens,
                            seconds_per_answer: a.seconds_per_answer,
                            joules_per_answer: a
                                .energy
                                .as_ref()
                                .and_then(|e| e.joules_per_answer)
                                .and_then(finite),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut by_steps: Vec<(String, f64, usize)> = acc
                .map(|a| {
                    a.by_steps
                        .iter()
                        .filter(|g| g.flexible.n > 0)
                        .map(|g| (clip(&g.key, 20), g.flexible.accuracy, g.flexible.n))
                        .collect()
                })
                .unwrap_or_default();
            by_steps.sort_by(|a, b| {
                let n = |s: &str| s.parse::<f64>().unwrap_or(f64::INFINITY);
                n(&a.0).total_cmp(&n(&b.0)).then_with(|| a.0.cmp(&b.0))
            });
            let entry = Entry {
                rank: None,
                machine: m.id.clone(),
                machine_label: m.label.clone(),
                model: clip(&run.model.id, MAX_CELL_CHARS),
                model_file: clip(&run.model.file, MAX_CELL_CHARS),
                sha256: clip(&run.model.sha256, 64),
                quantization: clip(&run.model.quantization, 20),
                n_params: run.model.n_params,
                device: clip(&run.device, 40),
                threads: run.threads,
                kernel: clip(&run.kernel, 40),
                prefill_tokens_per_second: sp
                    .and_then(|s| finite(s.prefill_tokens_per_second.median)),
                decode_tokens_per_second: sp
                    .and_then(|s| finite(s.decode_tokens_per_second.median)),
                ttft_ms: sp.and_then(|s| finite(s.ttft_ms.median)),
                peak_rss_mib: sp.map(|s| s.peak_rss_bytes as f64 / f64::from(1u32 << 20)),
                accuracy: acc.and_then(|a| finite(a.flexible.accuracy)),
                accuracy_ci95: acc.map(|a| a.flexible.ci95),
                accuracy_n: acc.map(|a| a.flexible.n),
                by_steps,
                budget_curve,
                seconds_per_correct: acc.and_then(|a| a.seconds_per_correct).and_then(finite),
                loss_nats_per_token: run.perplexity.first().and_then(|p| finite(p.nll_mean)),
                loss_text: run
                    .perplexity
                    .first()
                    .map(|p| clip(&format!("{} @{}", p.name, p.context), 60)),
                energy_status: e.status.clone(),
                energy_label: e.label.clone(),
                joules_per_decode_token: e.joules_per_decode_token,
                joules_per_correct: e.joules_per_correct,
                cost_per_million_tokens: e.cost_per_million_tokens,
                cost_per_correct: e.cost_per_correct,
                currency: e.currency.clone(),
                tool: format!(
                    "{} {}{}",
                    clip(&r.tool.name, 20),
                    clip(&r.tool.version, 20),
                    r.tool
                        .git_commit
                        .as_deref()
                        .map(|c| format!(" ({})", clip(c, 24)))
                        .unwrap_or_default()
                ),
                status: format!("{:?}", r.status).to_lowercase(),
                source: clip(&source, MAX_CELL_CHARS),
                started_at: clip(&r.started_at, 40),
                measurements: 1,
                decode_range: None,
                prefill_range: None,
                repeats: Vec::new(),
                busy: sp.and_then(|s| s.pool).and_then(|p| p.busy()),
            };
            let key = (
                m.id.clone(),
                entry.sha256.clone(),
                entry.device.clone(),
                entry.threads,
                entry.kernel.clone(),
            );
            match entries.get_mut(&key) {
                Some(old) => {
                    let n = old.measurements + 1;
                    let mut repeats = std::mem::take(&mut old.repeats);
                    if repeats.is_empty() {
                        repeats.push(Measurement::of(old));
                    }
                    repeats.push(Measurement::of(&entry));
                    // Keep the list bounded while reading: the newest stay (settle keeps the newest of them).
                    if repeats.len() > 2 * MAX_REPEATS {
                        repeats.sort_by(|a, b| b.started_at.cmp(&a.started_at));
                        repeats.truncate(MAX_REPEATS);
                    }
                    let busy = [old.busy, entry.busy]
                        .into_iter()
                        .flatten()
                        .reduce(f64::max);
                    if entry.started_at > old.started_at {
                        *old = entry;
                    }
                    old.busy = busy;
                    old.measurements = n;
                    old.repeats = repeats;
                }
                None => {
                    entries.insert(key, entry);
                }
            }
            machines.entry(m.id.clone()).or_insert(m);
        }
    }
    let mut entries: Vec<Entry> = entries.into_values().collect();
    for e in &mut entries {
        e.settle();
    }
    let by = opts.rank_by;
    entries.sort_by(|a, b| {
        let (x, y) = (by.value(a), by.value(b));
        let primary = match (x, y) {
            (Some(x), Some(y)) if by.higher_is_better() => y.total_cmp(&x),
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        primary
            .then_with(|| {
                let d = |e: &Entry| e.decode_tokens_per_second.unwrap_or(-1.0);
                d(b).total_cmp(&d(a))
            })
            .then_with(|| a.model.cmp(&b.model))
            .then_with(|| a.machine.cmp(&b.machine))
            .then_with(|| a.threads.cmp(&b.threads))
    });
    let mut place = 0;
    for e in &mut entries {
        if by.value(e).is_some() {
            place += 1;
            e.rank = Some(place);
        }
    }
    let mut order: Vec<Machine> = Vec::new();
    for e in &entries {
        if !order.iter().any(|m| m.id == e.machine)
            && let Some(m) = machines.get(&e.machine)
        {
            order.push(m.clone());
        }
    }
    Board {
        rank_by: by,
        point,
        suite: suite.map(|s| clip(&s, 80)),
        machines: order,
        entries,
        files: results.len(),
        skipped,
        duplicates,
    }
}

impl Board {
    /// Whether any entry carries energy figures.
    pub fn has_energy(&self) -> bool {
        self.entries.iter().any(|e| {
            e.joules_per_decode_token.is_some()
                || e.joules_per_correct.is_some()
                || e.cost_per_correct.is_some()
        })
    }

    /// One line saying what is ranked and where the figures come from.
    pub fn caption(&self) -> String {
        let point = self.point.map_or_else(
            || "no speed figures".into(),
            |(p, g)| format!("prompt {p} / generation {g} tokens"),
        );
        let suite = self.suite.as_deref().map_or_else(
            || "no accuracy suite".into(),
            |s| format!("suite \"{s}\" (flexible extractor)"),
        );
        format!(
            "Ranked by {}; speed at {point}; accuracy on {suite}; {} result files, {} machines, {} entries.",
            self.rank_by.label(),
            self.files,
            self.machines.len(),
            self.entries.len()
        )
    }
}

/// Cost per correct answer as shown: the number, with the currency when it is not US dollars.
pub fn cost_text(e: &Entry) -> Option<String> {
    let v = e.cost_per_correct?;
    Some(match e.currency.as_deref() {
        Some(c) if !c.eq_ignore_ascii_case("usd") => format!("{} {c}", num(v)),
        _ => num(v),
    })
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), num)
}

/// A speed figure, with the range and count of the files behind it when several measured the entry:
/// `31.2 (29.8–33.0, 3 files)`, or `(..., newest 64 of 200 files)` beyond [`MAX_REPEATS`].
pub fn spread(v: Option<f64>, range: Option<[f64; 2]>, used: usize, files: usize) -> String {
    match (v, range) {
        (Some(x), Some([lo, hi])) if used < files => format!(
            "{} ({}–{}, newest {used} of {files} files)",
            num(x),
            num(lo),
            num(hi)
        ),
        (Some(x), Some([lo, hi])) => format!("{} ({}–{}, {files} files)", num(x), num(lo), num(hi)),
        _ => opt(v),
    }
}

/// The leaderboard as GitHub-flavoured Markdown (ready to paste into a README).
pub fn markdown(b: &Board) -> String {
    let md = escape::markdown;
    let mut s = String::new();
    let _ = writeln!(s, "{}\n", md(&b.caption()));
    let energy = b.has_energy();
    let loss = b.entries.iter().any(|e| e.loss_nats_per_token.is_some());
    s.push_str("| # | model | machine | device | threads | decode tok/s | prefill tok/s | TTFT ms | accuracy |");
    if loss {
        s.push_str(" loss nats/token |");
    }
    if energy {
        s.push_str(" J/token | J/correct | $/correct | energy |");
    }
    s.push_str("\n|---:|---|---|---|---:|---:|---:|---:|---:|");
    if loss {
        s.push_str("---:|");
    }
    if energy {
        s.push_str("---:|---:|---:|---|");
    }
    s.push('\n');
    for e in &b.entries {
        let acc = match (e.accuracy, e.accuracy_n) {
            (Some(a), Some(n)) => format!("{:.1}% (n={n})", 100.0 * a),
            _ => "-".into(),
        };
        let _ = write!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            e.rank.map_or_else(|| "-".into(), |r| r.to_string()),
            md(&e.model),
            md(&format!("{} ({})", e.machine_label, e.machine)),
            md(&format!("{} {}", e.device, e.kernel)),
            e.threads,
            spread(
                e.decode_tokens_per_second,
                e.decode_range,
                e.repeats.len(),
                e.measurements
            ),
            spread(
                e.prefill_tokens_per_second,
                e.prefill_range,
                e.repeats.len(),
                e.measurements
            ),
            opt(e.ttft_ms),
            acc
        );
        if loss {
            let _ = write!(
                s,
                " {} |",
                match (e.loss_nats_per_token, &e.loss_text) {
                    (Some(l), Some(t)) => format!("{l:.4} ({})", md(t)),
                    _ => "-".into(),
                }
            );
        }
        if energy {
            let _ = write!(
                s,
                " {} | {} | {} | {} |",
                opt(e.joules_per_decode_token),
                opt(e.joules_per_correct),
                md(&cost_text(e).unwrap_or_else(|| "-".into())),
                md(e.energy_status.as_deref().unwrap_or("-"))
            );
        }
        s.push('\n');
    }
    if !energy {
        s.push_str("\nNo result file here carries energy figures, so there are no joule or dollar columns.\n");
    }
    let busy: Vec<&Entry> = b.entries.iter().filter(|e| e.busy.is_some()).collect();
    if !busy.is_empty() {
        let _ = writeln!(
            s,
            "\nMeasured on a busy machine (other processes used CPUs the threads needed; the speed measures them \
             too):\n"
        );
        for e in busy {
            let _ = writeln!(
                s,
                "- {} on {}, {} threads: {:.0}% of the parallel regions",
                md(&e.model),
                md(&e.machine_label),
                e.threads,
                100.0 * e.busy.unwrap_or(0.0)
            );
        }
    }
    if !b.duplicates.is_empty() {
        let _ = writeln!(s, "\nFound twice:\n");
        for d in &b.duplicates {
            let _ = writeln!(s, "- {}", md(d));
        }
    }
    if !b.skipped.is_empty() {
        let _ = writeln!(s, "\nSkipped {} file(s):\n", b.skipped.len());
        for k in &b.skipped {
            let _ = writeln!(
                s,
                "- {}: {}",
                md(&file_label(&k.path)),
                md(&clip(&k.reason, 300))
            );
        }
    }
    s
}

/// A path shown in a report: its file name only, so a report does not publish the directory layout it was built
/// in.
pub fn file_label(path: &str) -> String {
    let name = Path::new(path)
        .file_name()
        .map_or_else(|| path.to_string(), |f| f.to_string_lossy().into_owned());
    clip(&name, MAX_CELL_CHARS)
}

/// The leaderboard as CSV (RFC 4180, one header line, every entry with every column).
pub fn csv(b: &Board) -> String {
    let c = escape::csv;
    let mut s = String::from(
        "rank,model,model_file,sha256,quantization,n_params,machine,machine_label,device,threads,kernel,\
         n_prompt,n_gen,prefill_tokens_per_second,decode_tokens_per_second,ttft_ms,peak_rss_mib,suite,accuracy,\
         accuracy_ci95_low,accuracy_ci95_high,accuracy_n,seconds_per_correct,energy_status,energy_label,\
         joules_per_decode_token,joules_per_correct,cost_per_million_tokens,cost_per_correct,currency,tool,status,source,\
         started_at,measurements,decode_min,decode_max,prefill_min,prefill_max,loss_nats_per_token,loss_text,busy\n",
    );
    let f = |v: Option<f64>| v.map_or_else(String::new, |x| x.to_string());
    let t = |v: &Option<String>| v.as_deref().map_or_else(String::new, c);
    for e in &b.entries {
        let cols = [
            e.rank.map_or_else(String::new, |r| r.to_string()),
            c(&e.model),
            c(&e.model_file),
            c(&e.sha256),
            c(&e.quantization),
            e.n_params.to_string(),
            c(&e.machine),
            c(&e.machine_label),
            c(&e.device),
            e.threads.to_string(),
            c(&e.kernel),
            b.point.map_or_else(String::new, |p| p.0.to_string()),
            b.point.map_or_else(String::new, |p| p.1.to_string()),
            f(e.prefill_tokens_per_second),
            f(e.decode_tokens_per_second),
            f(e.ttft_ms),
            f(e.peak_rss_mib),
            if e.accuracy.is_some() {
                t(&b.suite)
            } else {
                String::new()
            },
            f(e.accuracy),
            f(e.accuracy_ci95.map(|c| c[0])),
            f(e.accuracy_ci95.map(|c| c[1])),
            e.accuracy_n.map_or_else(String::new, |n| n.to_string()),
            f(e.seconds_per_correct),
            t(&e.energy_status),
            t(&e.energy_label),
            f(e.joules_per_decode_token),
            f(e.joules_per_correct),
            f(e.cost_per_million_tokens),
            f(e.cost_per_correct),
            t(&e.currency),
            c(&e.tool),
            c(&e.status),
            c(&e.source),
            c(&e.started_at),
            e.measurements.to_string(),
            f(e.decode_range.map(|r| r[0])),
            f(e.decode_range.map(|r| r[1])),
            f(e.prefill_range.map(|r| r[0])),
            f(e.prefill_range.map(|r| r[1])),
            f(e.loss_nats_per_token),
            t(&e.loss_text),
            f(e.busy),
        ];
        s.push_str(&cols.join(","));
        s.push('\n');
    }
    s
}

/// Replaces the text between `<!-- leaderboard:start -->` and `<!-- leaderboard:end -->` in `doc` with
/// `content`; `None` when the markers are missing or out of order.
pub fn splice(doc: &str, content: &str) -> Option<String> {
    const START: &str = "<!-- leaderboard:start -->";
    const END: &str = "<!-- leaderboard:end -->";
    let a = doc.find(START)? + START.len();
    let b = a + doc[a..].find(END)?;
    Some(format!(
        "{}\n{}\n{}",
        &doc[..a],
        content.trim_end(),
        &doc[b..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_a_vm_names_alike_are_told_apart_by_flags_and_model() {
        let r = meek_schema::from_json(include_str!("../tests/fixtures/machine-a.json")).unwrap();
        let a = r.machine.clone();
        let mut b = a.clone();
        b.cpu
            .flags
            .retain(|f| f != "avxvnni" && !f.starts_with("avx512"));
        b.cpu.flags.push("sse4.2".into());
        let mut c = a.clone();
        c.cpu.model = Some("x86 family 25 model 17 stepping 1".into());
        let (ma, mb, mc) = (machine_of(&a), machine_of(&b), machine_of(&c));
        assert_eq!(ma.label, mb.label);
        assert_ne!(ma.id, mb.id);
        assert_ne!(ma.id, mc.id);
        let mut shuffled = a.clone();
        shuffled.cpu.flags.reverse();
        assert_eq!(
            machine_of(&shuffled).id,
            ma.id,
            "flag order does not matter"
        );
    }

    #[test]
    fn rank_names_round_trip() {
        for n in RankBy::NAMES {
            let r: RankBy = n.parse().unwrap();
            assert_eq!(serde_json::to_value(r).unwrap(), n);
        }
        assert!(
            "speed"
                .parse::<RankBy>()
                .unwrap_err()
                .contains("decode, prefill")
        );
    }

    #[test]
    fn splice_replaces_between_markers_only() {
        let doc = "intro\n<!-- leaderboard:start -->\nold\n<!-- leaderboard:end -->\nrest\n";
        assert_eq!(
            splice(doc, "new table\n").unwrap(),
            "intro\n<!-- leaderboard:start -->\nnew table\n<!-- leaderboard:end -->\nrest\n"
        );
        assert_eq!(splice("no markers", "x"), None);
        assert_eq!(
            splice("<!-- leaderboard:end --> <!-- leaderboard:start -->", "x"),
            None
        );
    }

    #[test]
    fn most_common_breaks_ties_by_order() {
        assert_eq!(
            most_common([(2, 1), (1, 1), (2, 1), (1, 1)].into_iter()),
            Some((1, 1))
        );
        assert_eq!(most_common(std::iter::empty::<u8>()), None);
    }
}
