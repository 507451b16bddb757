//! Measurement windows over the chosen sources, and the background sampler for the sources that need polling.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meek_schema::EnergyStatus;

use crate::estimate::Estimator;
use crate::{Clock, CpuTime, EnergySource, Env, Probe, Provenance, Reading, Scope, Unavailable};

type Shared = Arc<Mutex<Box<dyn EnergySource>>>;

/// A source as used by a meter (the estimate is the last component when present).
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    /// Backend id.
    pub source: String,
    /// How it obtains joules.
    pub provenance: Provenance,
    /// What it covers.
    pub scope: Scope,
    /// Domains summed.
    pub domains: Vec<String>,
    /// Its label.
    pub label: String,
    /// Background polling interval, when polled.
    pub poll: Option<Duration>,
}

/// The state of every source at one instant.
#[derive(Debug, Clone)]
pub struct Mark {
    at: f64,
    cpu: Option<f64>,
    readings: Vec<Result<Reading, String>>,
}

impl Mark {
    /// Seconds on the meter's clock.
    pub fn at(&self) -> f64 {
        self.at
    }
}

/// The energy between two marks.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Duration, seconds.
    pub seconds: f64,
    /// Process CPU-seconds (user + system) in the window.
    pub cpu_seconds: Option<f64>,
    /// Gross joules of every covered scope; `None` when a scope could not be read and nothing could stand in.
    pub joules: Option<f64>,
    /// `measured`, `estimated` (any part from the TDP model) or `proxy-only` (no joules).
    pub status: EnergyStatus,
    /// (component index, joules) of each contributing component.
    pub parts: Vec<(usize, f64)>,
    /// Wraps corrected and resets detected inside the window, per component index.
    pub wraps: Vec<(usize, u64)>,
    /// What went wrong (a sensor that failed, what stood in for it).
    pub notes: Vec<String>,
}

impl Window {
    /// Average watts, when there are joules.
    pub fn watts(&self) -> Option<f64> {
        self.joules
            .filter(|_| self.seconds > 0.0)
            .map(|j| j / self.seconds)
    }
}

/// Mean and spread of idle power measured before a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    /// Duration, seconds.
    pub seconds: f64,
    /// Mean watts.
    pub watts: f64,
    /// Sample standard deviation of the one-second means, watts.
    pub watts_stddev: f64,
    /// Status of its joules.
    pub status: EnergyStatus,
    /// Its label.
    pub label: String,
}

struct Sampler {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Sampler {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The chosen sources, read together at window edges; polled in the background where they need it.
pub struct Meter {
    sources: Vec<Shared>,
    components: Vec<Component>,
    estimate: Option<Estimator>,
    clock: Arc<dyn Clock>,
    cpu_time: Arc<dyn CpuTime>,
    unavailable: Vec<Unavailable>,
    _sampler: Option<Sampler>,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("components", &self.components)
            .finish()
    }
}

impl Meter {
    /// Takes the probed sources and starts the sampler thread when one of them needs polling.
    pub fn new(probe: Probe, env: &Env) -> Self {
        let unavailable = probe.unavailable();
        let mut components: Vec<Component> = probe
            .sources
            .iter()
            .map(|s| Component {
                source: s.id().to_string(),
                provenance: s.provenance(),
                scope: s.scope(),
                domains: s.domains(),
                label: s.label(),
                poll: s.poll_interval(),
            })
            .collect();
        if let Some(e) = &probe.estimate {
            components.push(Component {
                source: crate::estimate::ID.to_string(),
                provenance: Provenance::Estimated,
                scope: Scope::CpuPackage,
                domains: vec![format!("{} logical CPUs", e.logical_cpus)],
                label: e.label(),
                poll: None,
            });
        }
        let sources: Vec<Shared> = probe
            .sources
            .into_iter()
            .map(|s| Arc::new(Mutex::new(s)))
            .collect();
        let polled: Vec<(Shared, Duration)> = sources
            .iter()
            .filter_map(|s| {
                let p = s.lock().expect("source").poll_interval();
                p.map(|p| (s.clone(), p))
            })
            .collect();
        let sampler = (!polled.is_empty()).then(|| start_sampler(polled));
        Self {
            sources,
            components,
            estimate: probe.estimate,
            clock: env.clock.clone(),
            cpu_time: env.cpu_time.clone(),
            unavailable,
            _sampler: sampler,
        }
    }

    /// The sources in use; the estimate, when present, is last.
    pub fn components(&self) -> &[Component] {
        &self.components
    }

    /// Sources that could not be used.
    pub fn unavailable(&self) -> &[Unavailable] {
        &self.unavailable
    }

    /// The TDP model, when allowed.
    pub fn estimator(&self) -> Option<&Estimator> {
        self.estimate.as_ref()
    }

    /// Whether a sensor covers the CPU (otherwise the estimate stands for it, when allowed).
    pub(crate) fn cpu_covered(&self) -> bool {
        self.components[..self.sources.len()]
            .iter()
            .any(|c| matches!(c.scope, Scope::CpuPackage | Scope::Soc | Scope::Platform))
    }

    /// Reads the clock, the process CPU time and every source.
    pub fn mark(&self) -> Mark {
        let readings = self
            .sources
            .iter()
            .map(|s| {
                s.lock()
                    .map_err(|_| "a source panicked".to_string())
                    .and_then(|mut s| s.read().map_err(|e| e.to_string()))
            })
            .collect();
        Mark {
            at: self.clock.now(),
            cpu: self.cpu_time.cpu_seconds(),
            readings,
        }
    }

    /// The energy between `a` and a later mark `b`.
    pub fn window(&self, a: &Mark, b: &Mark) -> Window {
        let seconds = (b.at - a.at).max(0.0);
        let cpu_seconds = a.cpu.zip(b.cpu).map(|(x, y)| (y - x).max(0.0));
        let mut parts = Vec::new();
        let mut wraps = Vec::new();
        let mut notes = Vec::new();
        let mut missing = false;
        let mut estimated = false;
        let estimate_index = self.sources.len();
        let estimate = |notes: &mut Vec<String>| -> Option<f64> {
            let e = self.estimate.as_ref()?;
            match cpu_seconds {
                Some(c) => Some(e.joules(c, seconds)),
                None => {
                    notes.push("the process CPU time could not be read for the estimate".into());
                    None
                }
            }
        };
        for (i, c) in self.components[..self.sources.len()].iter().enumerate() {
            match (&a.readings[i], &b.readings[i]) {
                (Ok(x), Ok(y)) => {
                    parts.push((i, (y.joules - x.joules).max(0.0)));
                    let w = (y.wraps + y.resets).saturating_sub(x.wraps + x.resets);
                    if w > 0 {
                        wraps.push((i, w));
                    }
                    if y.resets > x.resets {
                        notes.push(format!(
                            "{}: the counter was reset (driver reload?); energy between the last read and the \
                             reset is missing",
                            c.label
                        ));
                    }
                }
                (Err(e), _) | (_, Err(e)) => {
                    let stand_in = (c.scope == Scope::CpuPackage)
                        .then(|| estimate(&mut notes))
                        .flatten();
                    match stand_in {
                        Some(j) => {
                            notes.push(format!("{} failed ({e}); the estimate stands in", c.label));
                            parts.push((estimate_index, j));
                            estimated = true;
                        }
                        None => {
                            notes.push(format!(
                                "{} failed ({e}); no joules for this window",
                                c.label
                            ));
                            missing = true;
                        }
                    }
                }
            }
        }
        if !self.cpu_covered() && self.estimate.is_some() {
            match estimate(&mut notes) {
                Some(j) => {
                    parts.push((estimate_index, j));
                    estimated = true;
                }
                // The CPU is in scope but neither measured nor estimable: no joules rather than a partial sum.
                None => missing = true,
            }
        }
        let (joules, status) = if missing || parts.is_empty() {
            (None, EnergyStatus::ProxyOnly)
        } else if estimated {
            (
                Some(parts.iter().map(|p| p.1).sum()),
                EnergyStatus::Estimated,
            )
        } else {
            (
                Some(parts.iter().map(|p| p.1).sum()),
                EnergyStatus::Measured,
            )
        };
        if missing {
            parts.clear();
        }
        Window {
            seconds,
            cpu_seconds,
            joules,
            status,
            parts,
            wraps,
            notes,
        }
    }

    /// The label of a window's parts, joined with `+` (`proxy-only` when none).
    pub fn label_of(&self, parts: &[(usize, f64)]) -> String {
        let mut idx: Vec<usize> = parts.iter().map(|p| p.0).collect();
        idx.sort_unstable();
        idx.dedup();
        if idx.is_empty() {
            return "proxy-only".into();
        }
        idx.iter()
            .map(|&i| self.components[i].label.clone())
            .collect::<Vec<_>>()
            .join("+")
    }

    /// Measures idle power for `seconds` (whole seconds, each a window), sleeping in this thread.
    pub fn idle_baseline(&self, seconds: f64) -> Option<Baseline> {
        self.idle_baseline_with(seconds, &|d| std::thread::sleep(d))
    }

    /// As [`Meter::idle_baseline`], with the sleep injected (tests advance a fake clock instead).
    pub fn idle_baseline_with(&self, seconds: f64, sleep: &dyn Fn(Duration)) -> Option<Baseline> {
        if seconds <= 0.0 {
            return None;
        }
        let n = seconds.ceil().max(1.0) as usize;
        let step = seconds / n as f64;
        let mut watts = Vec::with_capacity(n);
        let mut total = (0.0, 0.0);
        let mut status = EnergyStatus::Measured;
        let mut parts = Vec::new();
        let mut a = self.mark();
        for _ in 0..n {
            sleep(Duration::from_secs_f64(step));
            let b = self.mark();
            let w = self.window(&a, &b);
            let (Some(j), Some(p)) = (w.joules, w.watts()) else {
                return None;
            };
            watts.push(p);
            total.0 += j;
            total.1 += w.seconds;
            status = status.worst(w.status);
            parts.extend(w.parts);
            a = b;
        }
        let mean = total.0 / total.1.max(1e-9);
        let sd = meek_stats::Sample::new(watts)
            .map(|s| meek_stats::describe(&s).stddev)
            .unwrap_or(0.0);
        Some(Baseline {
            seconds: total.1,
            watts: mean,
            watts_stddev: sd,
            status,
            label: self.label_of(&parts),
        })
    }
}

fn start_sampler(polled: Vec<(Shared, Duration)>) -> Sampler {
    let interval = polled
        .iter()
        .map(|p| p.1)
        .min()
        .unwrap_or(Duration::from_secs(1));
    let (tx, rx) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("meek-energy-sampler".into())
        .spawn(move || {
            // Each source is read on its own schedule; errors surface at the window edges.
            let mut due: Vec<Duration> = polled.iter().map(|p| p.1).collect();
            let mut elapsed = Duration::ZERO;
            loop {
                match rx.recv_timeout(interval) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                elapsed += interval;
                for (i, (s, every)) in polled.iter().enumerate() {
                    if elapsed >= due[i] {
                        if let Ok(mut s) = s.lock() {
                            let _ = s.read();
                        }
                        due[i] = elapsed + *every;
                    }
                }
            }
        })
        .ok();
    Sampler {
        stop: Some(tx),
        thread,
    }
}
