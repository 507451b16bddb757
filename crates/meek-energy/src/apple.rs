//! Apple Silicon SoC energy from IOReport's "Energy Model" counters, without sudo, through macmon (macOS only).
//!
//! macmon's `Sampler::get_metrics(ms)` blocks for the interval and returns the average power of the CPU clusters,
//! GPU, ANE and DRAM over exactly the time since its previous call. A dedicated thread calls it back to back, so
//! the intervals leave no gap, and integrates `Σ P_i × Δt_i`; a read between two samples adds the last power
//! times the time since the last sample (kept monotonic). The values are Apple's on-chip model, so they are
//! labelled `modeled:`. powermetrics (which needs sudo) is not used.
//!
//! The integration ([`SocEnergy`]) is platform-independent and tested with a fake sampler; only the macmon
//! sampler is compiled on macOS alone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::{Clock, EnergySource, Env, Provenance, Reading, Scope, SourceError, Unavailable};

/// Backend id.
pub const ID: &str = "ioreport";
/// Sampling interval, milliseconds.
pub const INTERVAL_MS: u32 = 500;

/// A blocking power sampler: returns the average watts since its previous call, after waiting `interval_ms`.
pub trait SocSampler {
    /// Average watts over the time since the previous call.
    fn sample(&mut self, interval_ms: u32) -> Result<f64, String>;
}

#[derive(Debug, Default)]
struct Shared {
    total: f64,
    last_end: f64,
    last_watts: f64,
    last_value: f64,
    error: Option<String>,
}

/// Integrates a [`SocSampler`] running on its own thread.
pub struct SocEnergy {
    shared: Arc<Mutex<Shared>>,
    clock: Arc<dyn Clock>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    domains: Vec<String>,
}

impl SocEnergy {
    /// Starts the sampling thread; `make` builds the sampler on that thread (macmon's is not `Send`).
    pub fn start<F>(
        make: F,
        clock: Arc<dyn Clock>,
        interval_ms: u32,
        domains: Vec<String>,
    ) -> Result<Self, String>
    where
        F: FnOnce() -> Result<Box<dyn SocSampler>, String> + Send + 'static,
    {
        let shared = Arc::new(Mutex::new(Shared {
            last_end: clock.now(),
            ..Shared::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let thread = {
            let (shared, stop, clock) = (shared.clone(), stop.clone(), clock.clone());
            std::thread::Builder::new()
                .name("meek-energy-soc".into())
                .spawn(move || {
                    let mut sampler = match make() {
                        Ok(s) => {
                            shared.lock().expect("soc state").last_end = clock.now();
                            let _ = tx.send(Ok(()));
                            s
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    while !stop.load(Ordering::Relaxed) {
                        let w = sampler.sample(interval_ms);
                        let now = clock.now();
                        let mut s = shared.lock().expect("soc state");
                        match w {
                            Ok(w) => {
                                let dt = (now - s.last_end).max(0.0);
                                s.total += w * dt;
                                s.last_end = now;
                                s.last_watts = w;
                            }
                            Err(e) => {
                                s.error = Some(e);
                                break;
                            }
                        }
                    }
                })
                .map_err(|e| format!("cannot start the sampling thread: {e}"))?
        };
        match rx.recv() {
            Ok(Ok(())) => Ok(Self {
                shared,
                clock,
                stop,
                thread: Some(thread),
                domains,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err("the sampling thread ended before starting".into()),
        }
    }
}

impl Drop for SocEnergy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // The sampler returns within one interval.
            let _ = t.join();
        }
    }
}

impl EnergySource for SocEnergy {
    fn id(&self) -> &'static str {
        ID
    }
    fn provenance(&self) -> Provenance {
        Provenance::Modeled
    }
    fn scope(&self) -> Scope {
        Scope::Soc
    }
    fn domains(&self) -> Vec<String> {
        self.domains.clone()
    }
    fn read(&mut self) -> Result<Reading, SourceError> {
        let now = self.clock.now();
        let mut s = self.shared.lock().expect("soc state");
        if let Some(e) = &s.error {
            return Err(SourceError::Other(format!(
                "IOReport sampling stopped: {e}"
            )));
        }
        let value = (s.total + s.last_watts * (now - s.last_end).max(0.0)).max(s.last_value);
        s.last_value = value;
        Ok(Reading {
            joules: value,
            wraps: 0,
            resets: 0,
        })
    }
    fn poll_interval(&self) -> Option<Duration> {
        // The sampling thread integrates on its own.
        None
    }
}

/// Opens IOReport through macmon (macOS on Apple Silicon).
pub fn open(env: &Env) -> Result<Box<dyn EnergySource>, Unavailable> {
    #[cfg(target_os = "macos")]
    {
        SocEnergy::start(
            || {
                macmon::Sampler::new()
                    .map(|s| Box::new(Macmon(s)) as Box<dyn SocSampler>)
                    .map_err(|e| format!("IOReport (macmon) could not start: {e}"))
            },
            env.clock.clone(),
            INTERVAL_MS,
            vec!["cpu".into(), "gpu".into(), "ane".into(), "dram".into()],
        )
        .map(|s| Box::new(s) as _)
        .map_err(|e| {
            Unavailable::new(ID, e)
                .enable("IOReport energy needs macOS on Apple Silicon; no sudo is needed")
        })
    }
    #[cfg(not(target_os = "macos"))]
    {
        let _ = env;
        Err(Unavailable::new(ID, "IOReport exists on macOS only"))
    }
}

#[cfg(target_os = "macos")]
struct Macmon(macmon::Sampler);

#[cfg(target_os = "macos")]
impl SocSampler for Macmon {
    fn sample(&mut self, interval_ms: u32) -> Result<f64, String> {
        self.0
            .get_metrics(interval_ms)
            .map(|m| f64::from(m.cpu_power + m.gpu_power + m.ane_power + m.ram_power))
            .map_err(|e| e.to_string())
    }
}
