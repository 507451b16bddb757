//! NVIDIA GPU board energy through NVML, loaded at run time (`libnvidia-ml.so.1` / `nvml.dll`) by nvml-wrapper:
//! a binary on a machine without the driver runs, and reports NVML as unavailable with the loader's reason.
//!
//! The total-energy counter (`nvmlDeviceGetTotalEnergyConsumption`, mJ since the driver loaded, Volta and newer)
//! is read at the window edges. It updates every 20-100 ms, so between updates the last sampled power times the
//! time since the update fills in (Zeus's approach), kept monotonic. Where the counter is not supported (older
//! GPUs) or reads zero (it never moves on some virtual GPUs), power (`nvmlDeviceGetPowerUsage`, mW) is sampled
//! every 100 ms and integrated instead, labelled `integrated:`. A counter that goes backwards (driver reload) is
//! a reset: counting restarts from the new value.
//!
//! Window edges are read after the generated token id reached the host, which waits for the device: the GPU's
//! work of the window is done when its end is read.

use std::sync::Arc;
use std::time::Duration;

use crate::{
    Clock, EnergySource, Env, PowerIntegrator, Provenance, Reading, Scope, SourceError,
    Unavailable, WrapCounter,
};

/// Backend id.
pub const ID: &str = "nvml";
/// Power sampling interval.
pub const POWER_POLL: Duration = Duration::from_millis(100);

/// Why an NVML query failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NvmlFailure {
    /// The device does not support the query.
    NotSupported,
    /// Anything else.
    Other(String),
}

impl std::fmt::Display for NvmlFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotSupported => f.write_str("not supported by this GPU"),
            Self::Other(e) => f.write_str(e),
        }
    }
}

/// The NVML calls meekbench uses (a fake in tests).
pub trait NvmlApi: Send {
    /// Number of GPUs.
    fn device_count(&self) -> Result<u32, NvmlFailure>;
    /// Device name.
    fn name(&self, index: u32) -> Result<String, NvmlFailure>;
    /// Total energy since the driver loaded, millijoules.
    fn total_energy_mj(&self, index: u32) -> Result<u64, NvmlFailure>;
    /// Board power, milliwatts.
    fn power_mw(&self, index: u32) -> Result<u32, NvmlFailure>;
}

/// The real NVML.
pub struct RealNvml {
    nvml: nvml_wrapper::Nvml,
}

fn failure(e: nvml_wrapper::error::NvmlError) -> NvmlFailure {
    match e {
        nvml_wrapper::error::NvmlError::NotSupported => NvmlFailure::NotSupported,
        e => NvmlFailure::Other(e.to_string()),
    }
}

impl RealNvml {
    /// Loads the library (from `lib_path` when given) and initialises it.
    pub fn open(lib_path: Option<&std::path::Path>) -> Result<Self, String> {
        let nvml = match lib_path {
            Some(p) => nvml_wrapper::Nvml::builder().lib_path(p.as_os_str()).init(),
            None => nvml_wrapper::Nvml::init(),
        };
        nvml.map(|nvml| Self { nvml })
            .map_err(|e| format!("NVML could not be loaded: {e}"))
    }
}

impl NvmlApi for RealNvml {
    fn device_count(&self) -> Result<u32, NvmlFailure> {
        self.nvml.device_count().map_err(failure)
    }
    fn name(&self, index: u32) -> Result<String, NvmlFailure> {
        self.nvml
            .device_by_index(index)
            .and_then(|d| d.name())
            .map_err(failure)
    }
    fn total_energy_mj(&self, index: u32) -> Result<u64, NvmlFailure> {
        self.nvml
            .device_by_index(index)
            .and_then(|d| d.total_energy_consumption())
            .map_err(failure)
    }
    fn power_mw(&self, index: u32) -> Result<u32, NvmlFailure> {
        self.nvml
            .device_by_index(index)
            .and_then(|d| d.power_usage())
            .map_err(failure)
    }
}

/// Opens GPU `index` through the environment's NVML.
pub fn open(env: &Env, index: usize) -> Result<Box<dyn EnergySource>, Unavailable> {
    let api = (env.nvml)().map_err(|e| {
        Unavailable::new(ID, e).enable(
            "install the NVIDIA driver (it provides libnvidia-ml.so.1 / nvml.dll); no root is needed",
        )
    })?;
    open_with(api, env.clock.clone(), index).map(|s| Box::new(s) as _)
}

/// Opens GPU `index` on `api`: the energy counter when it works, power sampling otherwise.
pub fn open_with(
    api: Box<dyn NvmlApi>,
    clock: Arc<dyn Clock>,
    index: usize,
) -> Result<NvmlEnergy, Unavailable> {
    let i = u32::try_from(index).map_err(|_| Unavailable::new(ID, "GPU index out of range"))?;
    let count = api
        .device_count()
        .map_err(|e| Unavailable::new(ID, format!("NVML device count: {e}")))?;
    if i >= count {
        return Err(Unavailable::new(
            ID,
            format!("GPU {index} asked for, NVML sees {count}"),
        ));
    }
    let now = clock.now();
    let power = api.power_mw(i);
    let mode = match api.total_energy_mj(i) {
        Ok(0) => None,
        Ok(first) => Some(first),
        Err(NvmlFailure::NotSupported) => None,
        Err(e) => {
            return Err(Unavailable::new(
                ID,
                format!("GPU {index} energy counter: {e}"),
            ));
        }
    };
    let mut integrator = PowerIntegrator::default();
    let last_watts = match (&mode, power) {
        (_, Ok(mw)) => {
            integrator.sample(f64::from(mw) * 1e-3, now);
            f64::from(mw) * 1e-3
        }
        (Some(_), Err(_)) => 0.0,
        (None, Err(e)) => {
            return Err(Unavailable::new(
                ID,
                format!(
                    "GPU {index}: the energy counter is {} and power readings fail ({e})",
                    if matches!(api.total_energy_mj(i), Ok(0)) {
                        "stuck at zero"
                    } else {
                        "not supported"
                    }
                ),
            ));
        }
    };
    Ok(NvmlEnergy {
        api,
        clock,
        index: i,
        counter: mode.map(|first| CounterState {
            counter: WrapCounter::new(first, now, None, 1e-3, 5000.0),
            counted: 0.0,
            changed_at: now,
            last_value: 0.0,
        }),
        integrator,
        last_watts,
    })
}

struct CounterState {
    counter: WrapCounter,
    /// Counter joules at its last change.
    counted: f64,
    /// When it last changed.
    changed_at: f64,
    /// Last value returned (kept monotonic).
    last_value: f64,
}

/// One GPU's board energy.
pub struct NvmlEnergy {
    api: Box<dyn NvmlApi>,
    clock: Arc<dyn Clock>,
    index: u32,
    counter: Option<CounterState>,
    integrator: PowerIntegrator,
    last_watts: f64,
}

impl NvmlEnergy {
    /// Whether the energy counter is used (otherwise power is integrated).
    pub fn uses_counter(&self) -> bool {
        self.counter.is_some()
    }
}

impl EnergySource for NvmlEnergy {
    fn id(&self) -> &'static str {
        if self.counter.is_some() {
            "nvml-energy"
        } else {
            "nvml-power"
        }
    }
    fn provenance(&self) -> Provenance {
        if self.counter.is_some() {
            Provenance::Measured
        } else {
            Provenance::Integrated
        }
    }
    fn scope(&self) -> Scope {
        Scope::GpuBoard
    }
    fn domains(&self) -> Vec<String> {
        vec![format!("gpu{}", self.index)]
    }
    fn read(&mut self) -> Result<Reading, SourceError> {
        let now = self.clock.now();
        let power = self.api.power_mw(self.index);
        if let Ok(mw) = power {
            self.last_watts = f64::from(mw) * 1e-3;
        }
        match &mut self.counter {
            None => {
                let mw = power.map_err(|e| {
                    SourceError::Other(format!("NVML power of GPU {}: {e}", self.index))
                })?;
                Ok(Reading {
                    joules: self.integrator.sample(f64::from(mw) * 1e-3, now),
                    wraps: 0,
                    resets: 0,
                })
            }
            Some(c) => {
                let raw = self.api.total_energy_mj(self.index).map_err(|e| {
                    SourceError::Other(format!("NVML energy counter of GPU {}: {e}", self.index))
                })?;
                let r = c.counter.update(raw, now);
                if r.joules != c.counted {
                    c.counted = r.joules;
                    c.changed_at = now;
                }
                // Between counter updates, the last power times the time since the update.
                let value = (c.counted + self.last_watts * (now - c.changed_at)).max(c.last_value);
                c.last_value = value;
                Ok(Reading {
                    joules: value,
                    wraps: r.wraps,
                    resets: r.resets,
                })
            }
        }
    }
    fn poll_interval(&self) -> Option<Duration> {
        Some(POWER_POLL)
    }
}
