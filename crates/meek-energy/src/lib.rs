//! Energy per token: sources, measurement windows, and an honestly labelled estimate where no sensor exists.
//!
//! **Sources.** Each backend implements [`EnergySource`]: a cumulative, wrap-corrected joule counter over one or
//! more non-overlapping domains of one [`Scope`]. [`probe`] tries the backends per scope in priority order and
//! keeps the first that works (see `docs` below); every backend that does not work is reported as an
//! [`Unavailable`] with the reason and how to enable it.
//!
//! | scope | backends, in order |
//! |---|---|
//! | CPU package | RAPL through powercap sysfs ([`rapl`]), the perf `power` PMU ([`perf`]), hwmon energy then power sensors ([`hwmon`]), then the TDP model ([`estimate`]) |
//! | NVIDIA GPU board | NVML's total-energy counter, NVML power sampling as fallback ([`nvml`]) |
//! | Apple SoC | IOReport through macmon (macOS only, [`apple`]); it covers the CPU, so no CPU source is added |
//!
//! **Windows.** A [`Meter`] owns the chosen sources and a background sampler thread for the sources that need
//! polling (counter wraps, power-only sensors). [`Meter::mark`] reads every source, the clock and the process CPU
//! time (`getrusage`); [`Meter::window`] turns two marks into joules. Callers bracket exactly the prefill, the
//! decode and each accuracy item with marks.
//!
//! **Honesty invariants.** A figure is `measured` only when every scope it covers came from a sensor or vendor
//! counter; any part from the TDP model makes it `estimated`, and the label names every source with its
//! provenance (`measured:rapl-powercap:package-0`, `estimated:tdp-model(...)`). A sensor that fails mid-run
//! degrades the windows it misses (to the estimate, or to no joules) with a note; it is never papered over.
//! Domains that overlap (psys ⊃ package ⊃ core) are never added.
//!
//! **Everything is injectable** ([`Env`]: the sysfs root, NVML, the clock, the CPU-time reader), so every path is
//! tested with fakes on machines without the hardware.
//!
//! References: Linux powercap and hwmon sysfs ABI; perf RAPL PMU; NVML `nvmlDeviceGetTotalEnergyConsumption`;
//! Zeus (ml-energy) windows; CodeCarbon methodology; Boavizta/Teads CPU power curve.

pub mod apple;
pub mod doctor;
pub mod estimate;
pub mod hwmon;
mod meter;
pub mod nvml;
pub mod perf;
pub mod rapl;
pub mod record;
pub mod sysfs;

use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;

pub use meter::{Component, Mark, Meter, Window};
pub use sysfs::{RootFs, SysFs};

/// Where a figure comes from, weakest last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Provenance {
    /// A hardware or firmware energy counter (RAPL, NVML energy, hwmon energy).
    Measured,
    /// Sampled power integrated over time (trapezoid rule).
    Integrated,
    /// A vendor's on-chip model (Apple IOReport).
    Modeled,
    /// meekbench's TDP model: process CPU time and a load-to-power curve.
    Estimated,
}

impl Provenance {
    /// Label prefix: `measured`, `integrated`, `modeled`, `estimated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Measured => "measured",
            Self::Integrated => "integrated",
            Self::Modeled => "modeled",
            Self::Estimated => "estimated",
        }
    }
}

/// What part of the machine a source covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// CPU package(s): cores, caches, uncore; not the DRAM chips.
    CpuPackage,
    /// A discrete GPU board, its memory included.
    GpuBoard,
    /// An Apple system on chip: CPU, GPU, ANE and DRAM.
    Soc,
    /// A whole-platform sensor (ACPI power meter): covers everything above.
    Platform,
}

impl Scope {
    /// Name in result files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CpuPackage => "cpu-package",
            Self::GpuBoard => "gpu-board",
            Self::Soc => "soc",
            Self::Platform => "platform",
        }
    }
}

/// A cumulative reading: joules since the source was opened, all its domains summed, wraps corrected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// Joules since the source was opened.
    pub joules: f64,
    /// Counter wraps corrected so far.
    pub wraps: u64,
    /// Counter resets (driver reload, counter going backwards implausibly) detected so far; the energy between
    /// the read before a reset and the reset is lost.
    pub resets: u64,
}

/// Why a source could not be read.
#[derive(Debug, Error)]
pub enum SourceError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A file held something else than a number.
    #[error("{path}: expected a number, found {content:?}")]
    Parse {
        /// The file.
        path: String,
        /// What it held.
        content: String,
    },
    /// Anything else (a library call failing).
    #[error("{0}")]
    Other(String),
}

/// A backend giving cumulative joules for one scope.
pub trait EnergySource: Send {
    /// Backend id, e.g. `rapl-powercap`.
    fn id(&self) -> &'static str;
    /// How its joules are obtained.
    fn provenance(&self) -> Provenance;
    /// What it covers.
    fn scope(&self) -> Scope;
    /// The domains it sums, e.g. `package-0`.
    fn domains(&self) -> Vec<String>;
    /// Reads the cumulative counter (polled sources also integrate here).
    fn read(&mut self) -> Result<Reading, SourceError>;
    /// `Some` when the source must be read at least this often between window edges (counter wraps, power
    /// sampling); the [`Meter`]'s sampler thread does that.
    fn poll_interval(&self) -> Option<Duration>;
    /// `provenance:id:domain+domain`.
    fn label(&self) -> String {
        format!(
            "{}:{}:{}",
            self.provenance().as_str(),
            self.id(),
            self.domains().join("+")
        )
    }
}

/// A source that could not be used, why, and how to enable it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// Backend id.
    pub source: &'static str,
    /// Why.
    pub reason: String,
    /// What the user can do.
    pub enable: Option<String>,
}

impl Unavailable {
    pub(crate) fn new(source: &'static str, reason: impl Into<String>) -> Self {
        Self {
            source,
            reason: reason.into(),
            enable: None,
        }
    }

    pub(crate) fn enable(mut self, how: impl Into<String>) -> Self {
        self.enable = Some(how.into());
        self
    }
}

impl From<&Unavailable> for meek_schema::UnavailableSource {
    fn from(u: &Unavailable) -> Self {
        Self {
            source: u.source.to_string(),
            reason: u.reason.clone(),
            enable: u.enable.clone(),
        }
    }
}

/// A monotonic clock in seconds (injectable for tests).
pub trait Clock: Send + Sync {
    /// Seconds since an arbitrary origin.
    fn now(&self) -> f64;
}

/// The real monotonic clock.
#[derive(Debug)]
pub struct RealClock(Instant);

impl Default for RealClock {
    fn default() -> Self {
        Self(Instant::now())
    }
}

impl Clock for RealClock {
    fn now(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// Process CPU time in seconds (injectable for tests).
pub trait CpuTime: Send + Sync {
    /// User + system CPU-seconds of this process so far, `None` where the OS does not say.
    fn cpu_seconds(&self) -> Option<f64>;
}

/// `getrusage(RUSAGE_SELF)`: exact, no sampling.
#[derive(Debug, Default)]
pub struct Rusage;

impl CpuTime for Rusage {
    fn cpu_seconds(&self) -> Option<f64> {
        #[cfg(unix)]
        {
            // SAFETY: getrusage writes one `rusage` into the zeroed struct we own.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: as above; RUSAGE_SELF is valid on every unix.
            if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
                return None;
            }
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
            Some(tv(ru.ru_utime) + tv(ru.ru_stime))
        }
        #[cfg(not(unix))]
        {
            None
        }
    }
}

/// Which sources a run may use (`[energy] sources` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SourceChoice {
    /// Every backend in priority order, the estimate last.
    #[default]
    Auto,
    /// Only these backend ids (and the estimate only when `estimate` is listed); an empty list means proxies only.
    Only(Vec<String>),
}

impl SourceChoice {
    /// Whether `id` may be used.
    pub fn allows(&self, id: &str) -> bool {
        match self {
            Self::Auto => true,
            Self::Only(ids) => ids.iter().any(|i| i == id),
        }
    }
}

/// Every backend id a configuration may name.
pub const SOURCE_IDS: &[&str] = &[
    rapl::ID,
    perf::ID,
    hwmon::ENERGY_ID,
    hwmon::POWER_ID,
    nvml::ID,
    apple::ID,
    estimate::ID,
];

/// What the run asks of the energy meter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// Allowed sources.
    pub sources: SourceChoice,
    /// TDP of the CPU for the estimate, overriding the table.
    pub tdp_watts: Option<f64>,
    /// The CUDA device the model runs on, whose board energy is counted; `None` for CPU and Metal runs.
    pub gpu: Option<usize>,
}

/// The processor as the estimate sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuIdentity {
    /// Marketing name from the OS.
    pub brand: String,
    /// Logical CPUs visible to this process.
    pub logical_cpus: usize,
}

/// The machine as the backends see it; tests replace each part.
#[derive(Clone)]
pub struct Env {
    /// The file system holding `/sys` (a temporary tree in tests).
    pub fs: Arc<dyn SysFs>,
    /// Opens NVML; the default loads `libnvidia-ml` at run time.
    pub nvml: Arc<dyn Fn() -> Result<Box<dyn nvml::NvmlApi>, String> + Send + Sync>,
    /// The processor.
    pub cpu: CpuIdentity,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The process CPU-time reader.
    pub cpu_time: Arc<dyn CpuTime>,
    /// Whether perf events may be opened (false in tests with a fake sysfs).
    pub perf_syscalls: bool,
    /// Whether macOS IOReport may be tried.
    pub ioreport: bool,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env").field("cpu", &self.cpu).finish()
    }
}

impl Env {
    /// This machine: `/sys`, the system's NVML, the real clock and `getrusage`.
    pub fn system(cpu: CpuIdentity) -> Self {
        Self {
            fs: Arc::new(RootFs::new("/")),
            nvml: Arc::new(|| nvml::RealNvml::open(None).map(|n| Box::new(n) as _)),
            cpu,
            clock: Arc::new(RealClock::default()),
            cpu_time: Arc::new(Rusage),
            perf_syscalls: true,
            ioreport: true,
        }
    }
}

/// What one backend said when probed.
#[derive(Debug, Clone)]
pub struct ProbeLine {
    /// Backend id.
    pub source: &'static str,
    /// The scope it would cover.
    pub scope: Scope,
    /// Its label when usable, or why not.
    pub outcome: Result<String, Unavailable>,
    /// Whether it was chosen for its scope.
    pub chosen: bool,
}

/// The result of probing: the chosen source per scope, the estimate, and what every backend said.
pub struct Probe {
    /// Chosen sources (one per scope), in scope order.
    pub sources: Vec<Box<dyn EnergySource>>,
    /// The TDP model, when allowed and possible: used for the CPU scope when no CPU source works, and as the
    /// fallback of a CPU source that fails mid-run.
    pub estimate: Option<estimate::Estimator>,
    /// Every backend tried, in order.
    pub lines: Vec<ProbeLine>,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field(
                "sources",
                &self.sources.iter().map(|s| s.label()).collect::<Vec<_>>(),
            )
            .field("estimate", &self.estimate)
            .field("lines", &self.lines)
            .finish()
    }
}

impl Probe {
    /// Backends that were tried and could not be used.
    pub fn unavailable(&self) -> Vec<Unavailable> {
        self.lines
            .iter()
            .filter_map(|l| l.outcome.as_ref().err().cloned())
            .collect()
    }
}

type Opener = fn(&Env) -> Result<Box<dyn EnergySource>, Unavailable>;

/// Tries the backends allowed by `settings`, per scope in priority order, and keeps the first that works.
pub fn probe(env: &Env, settings: &Settings) -> Probe {
    let mut lines = Vec::new();
    let mut sources: Vec<Box<dyn EnergySource>> = Vec::new();
    let mut try_scope = |scope: Scope, candidates: Vec<(&'static str, Opener)>, env: &Env| {
        let mut chosen = false;
        for (id, open) in candidates {
            if !settings.sources.allows(id) {
                continue;
            }
            if chosen {
                // A lower-priority backend for a scope already covered is not opened (it would overlap).
                continue;
            }
            match open(env) {
                Ok(s) => {
                    lines.push(ProbeLine {
                        source: id,
                        scope,
                        outcome: Ok(s.label()),
                        chosen: true,
                    });
                    sources.push(s);
                    chosen = true;
                }
                Err(u) => lines.push(ProbeLine {
                    source: id,
                    scope,
                    outcome: Err(u),
                    chosen: false,
                }),
            }
        }
        chosen
    };
    // Apple first: the SoC counters include the CPU, so a CPU source would count it twice.
    let soc = cfg!(target_os = "macos")
        && env.ioreport
        && try_scope(Scope::Soc, vec![(apple::ID, apple::open)], env);
    let cpu = soc
        || try_scope(
            Scope::CpuPackage,
            vec![
                (rapl::ID, rapl::open),
                (perf::ID, perf::open),
                (hwmon::ENERGY_ID, hwmon::open_energy),
                (hwmon::POWER_ID, hwmon::open_power),
            ],
            env,
        );
    // A platform sensor already counts the GPU.
    let platform = sources.iter().any(|s| s.scope() == Scope::Platform);
    if let Some(index) = settings.gpu
        && settings.sources.allows(nvml::ID)
        && !platform
    {
        match nvml::open(env, index) {
            Ok(s) => {
                lines.push(ProbeLine {
                    source: nvml::ID,
                    scope: Scope::GpuBoard,
                    outcome: Ok(s.label()),
                    chosen: true,
                });
                sources.push(s);
            }
            Err(u) => lines.push(ProbeLine {
                source: nvml::ID,
                scope: Scope::GpuBoard,
                outcome: Err(u),
                chosen: false,
            }),
        }
    }
    let estimate = (settings.sources.allows(estimate::ID) && !soc)
        .then(|| estimate::Estimator::new(&env.cpu, settings.tdp_watts, env.cpu_time.clone()))
        .and_then(|r| match r {
            Ok(e) => {
                lines.push(ProbeLine {
                    source: estimate::ID,
                    scope: Scope::CpuPackage,
                    outcome: Ok(e.label()),
                    chosen: !cpu,
                });
                Some(e)
            }
            Err(u) => {
                lines.push(ProbeLine {
                    source: estimate::ID,
                    scope: Scope::CpuPackage,
                    outcome: Err(u),
                    chosen: false,
                });
                None
            }
        });
    Probe {
        sources,
        estimate,
        lines,
    }
}

/// A counter of `unit` joules that wraps at `range` (when known): accumulates deltas, corrects single wraps, and
/// tells a reset (a drop no wrap can explain at a plausible power) from a wrap.
#[derive(Debug, Clone)]
pub(crate) struct WrapCounter {
    last: u64,
    last_at: f64,
    range: Option<u64>,
    /// Joules per counter unit.
    unit: f64,
    /// Largest plausible power, watts: a wrap implying more is a reset.
    max_watts: f64,
    total: f64,
    wraps: u64,
    resets: u64,
}

impl WrapCounter {
    pub(crate) fn new(first: u64, at: f64, range: Option<u64>, unit: f64, max_watts: f64) -> Self {
        Self {
            last: first,
            last_at: at,
            range,
            unit,
            max_watts,
            total: 0.0,
            wraps: 0,
            resets: 0,
        }
    }

    /// Takes a new raw value read at `at` seconds.
    pub(crate) fn update(&mut self, raw: u64, at: f64) -> Reading {
        let dt = (at - self.last_at).max(1e-3);
        if raw >= self.last {
            self.total += (raw - self.last) as f64 * self.unit;
        } else {
            let wrapped = self
                .range
                .filter(|&r| raw <= r && self.last <= r)
                .map(|r| (r - self.last + raw) as f64 * self.unit);
            match wrapped {
                Some(j) if j / dt <= self.max_watts => {
                    self.total += j;
                    self.wraps += 1;
                }
                // A drop no single wrap explains at a plausible power: the counter restarted (driver reload,
                // firmware reset). Count from zero; what happened between the last read and the reset is lost.
                _ => {
                    self.total += raw as f64 * self.unit;
                    self.resets += 1;
                }
            }
        }
        self.last = raw;
        self.last_at = at;
        self.reading()
    }

    pub(crate) fn reading(&self) -> Reading {
        Reading {
            joules: self.total,
            wraps: self.wraps,
            resets: self.resets,
        }
    }
}

/// Feeds each of `counters` its new raw value (`raws`, in the same order) read at `at` seconds, and sums their
/// readings: a source's reading over all its domains.
pub(crate) fn update_all<'a>(
    counters: impl Iterator<Item = &'a mut WrapCounter>,
    raws: Vec<u64>,
    at: f64,
) -> Reading {
    let mut total = Reading {
        joules: 0.0,
        wraps: 0,
        resets: 0,
    };
    for (c, raw) in counters.zip(raws) {
        let r = c.update(raw, at);
        total.joules += r.joules;
        total.wraps += r.wraps;
        total.resets += r.resets;
    }
    total
}

/// Integrates sampled power with the trapezoid rule.
#[derive(Debug, Clone, Default)]
pub(crate) struct PowerIntegrator {
    last: Option<(f64, f64)>,
    total: f64,
}

impl PowerIntegrator {
    /// Adds a sample of `watts` taken at `at` seconds; returns the joules so far.
    pub(crate) fn sample(&mut self, watts: f64, at: f64) -> f64 {
        if let Some((t0, w0)) = self.last
            && at > t0
        {
            self.total += 0.5 * (w0 + watts) * (at - t0);
        }
        self.last = Some((at, watts));
        self.total
    }
}

#[cfg(test)]
mod tests;
