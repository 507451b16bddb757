//! hwmon sensors under `/sys/class/hwmon/hwmonN/`: cumulative energy (`energyN_input`, µJ) or power
//! (`powerN_average` / `powerN_input`, µW) integrated by polling.
//!
//! Only sensors whose meaning is known are used, so nothing is added twice:
//! - energy: the out-of-tree `amd_energy` and `zenergy` drivers' socket counters (`Esocket*` labels); their
//!   `Ecore*` counters lie inside the socket and are left out;
//! - power: `zenpower`'s SVI2 core and SoC rails (CPU package), and ACPI `power_meter` (the whole platform,
//!   which then stands for every scope).
//!
//! Other hwmon sensors (GPU drivers, i915's `energy1_input`) cover other parts and are not used for the CPU.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::sysfs::{SysFs, is_permission, read_line, read_u64};
use crate::{
    Clock, EnergySource, Env, PowerIntegrator, Provenance, Reading, Scope, SourceError,
    Unavailable, WrapCounter, update_all,
};

/// Backend id of cumulative energy sensors.
pub const ENERGY_ID: &str = "hwmon-energy";
/// Backend id of power sensors.
pub const POWER_ID: &str = "hwmon-power";
/// Where the sensors are.
pub const HWMON: &str = "/sys/class/hwmon";
/// Power sensors are sampled this often.
pub const POWER_POLL: Duration = Duration::from_millis(200);

const ENABLE: &str = "hwmon energy counters need the out-of-tree `zenergy` (AMD Zen) driver, or `amd_energy`; some \
     drivers make them root-only: `sudo chmod o+r /sys/class/hwmon/hwmon*/energy*_input`";

struct Sensor {
    label: String,
    path: PathBuf,
}

/// (driver name, directory, sensors of `kind` with their labels) for every hwmon device.
fn scan(fs: &dyn SysFs, kind: &str) -> Vec<(String, String, Vec<Sensor>)> {
    let mut out = Vec::new();
    for dev in fs.list(Path::new(HWMON)).unwrap_or_default() {
        let dir = Path::new(HWMON).join(&dev);
        let name = read_line(fs, &dir.join("name")).unwrap_or_default();
        let files = fs.list(&dir).unwrap_or_default();
        let mut sensors = Vec::new();
        for f in &files {
            let Some(rest) = f.strip_prefix(kind) else {
                continue;
            };
            let (n, suffix) = rest.split_at(rest.bytes().take_while(u8::is_ascii_digit).count());
            if n.is_empty() {
                continue;
            }
            let chosen = match kind {
                "energy" => suffix == "_input",
                // Prefer the driver's average over the instantaneous value.
                _ => {
                    suffix == "_average"
                        || (suffix == "_input" && !files.contains(&format!("{kind}{n}_average")))
                }
            };
            if chosen {
                let label = read_line(fs, &dir.join(format!("{kind}{n}_label")))
                    .unwrap_or_else(|| format!("{kind}{n}"));
                sensors.push(Sensor {
                    label,
                    path: dir.join(f),
                });
            }
        }
        if !sensors.is_empty() {
            out.push((name, dev, sensors));
        }
    }
    out
}

fn unavailable_read(id: &'static str, e: &SourceError) -> Unavailable {
    let u = Unavailable::new(id, e.to_string());
    if is_permission(e) {
        u.enable(ENABLE)
    } else {
        u
    }
}

/// Socket energy counters of `amd_energy` / `zenergy`.
pub fn open_energy(env: &Env) -> Result<Box<dyn EnergySource>, Unavailable> {
    let fs = env.fs.as_ref();
    let found = scan(fs, "energy");
    let now = env.clock.now();
    for (name, _, sensors) in &found {
        if !matches!(name.as_str(), "amd_energy" | "zenergy") {
            continue;
        }
        let mut counters = Vec::new();
        for s in sensors.iter().filter(|s| s.label.starts_with("Esocket")) {
            let first = read_u64(fs, &s.path).map_err(|e| unavailable_read(ENERGY_ID, &e))?;
            counters.push((
                format!("{name}/{}", s.label),
                s.path.clone(),
                WrapCounter::new(first, now, None, 1e-6, 1500.0),
            ));
        }
        if !counters.is_empty() {
            return Ok(Box::new(HwmonEnergy {
                fs: env.fs.clone(),
                clock: env.clock.clone(),
                counters,
            }));
        }
    }
    let seen: Vec<String> = found.iter().map(|(n, d, _)| format!("{d} ({n})")).collect();
    Err(Unavailable::new(
        ENERGY_ID,
        if seen.is_empty() {
            "no hwmon energy sensor".to_string()
        } else {
            format!(
                "no CPU socket energy sensor among the hwmon energy sensors of {}",
                seen.join(", ")
            )
        },
    )
    .enable(ENABLE))
}

/// Cumulative socket energy counters.
pub struct HwmonEnergy {
    fs: Arc<dyn SysFs>,
    clock: Arc<dyn Clock>,
    counters: Vec<(String, PathBuf, WrapCounter)>,
}

impl EnergySource for HwmonEnergy {
    fn id(&self) -> &'static str {
        ENERGY_ID
    }
    fn provenance(&self) -> Provenance {
        Provenance::Measured
    }
    fn scope(&self) -> Scope {
        Scope::CpuPackage
    }
    fn domains(&self) -> Vec<String> {
        self.counters.iter().map(|c| c.0.clone()).collect()
    }
    fn read(&mut self) -> Result<Reading, SourceError> {
        let now = self.clock.now();
        let raws = self
            .counters
            .iter()
            .map(|c| read_u64(self.fs.as_ref(), &c.1))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(update_all(
            self.counters.iter_mut().map(|c| &mut c.2),
            raws,
            now,
        ))
    }
    fn poll_interval(&self) -> Option<Duration> {
        Some(Duration::from_secs(1))
    }
}

/// Power sensors of `zenpower` (CPU package) or ACPI `power_meter` (platform), integrated.
pub fn open_power(env: &Env) -> Result<Box<dyn EnergySource>, Unavailable> {
    let fs = env.fs.as_ref();
    let found = scan(fs, "power");
    for (name, _, sensors) in &found {
        let scope = match name.as_str() {
            "zenpower" => Scope::CpuPackage,
            "power_meter" => Scope::Platform,
            _ => continue,
        };
        let mut src = HwmonPower {
            fs: env.fs.clone(),
            clock: env.clock.clone(),
            scope,
            sensors: sensors
                .iter()
                .map(|s| (format!("{name}/{}", s.label), s.path.clone()))
                .collect(),
            integrator: PowerIntegrator::default(),
        };
        src.read().map_err(|e| unavailable_read(POWER_ID, &e))?;
        return Ok(Box::new(src));
    }
    let seen: Vec<String> = found.iter().map(|(n, d, _)| format!("{d} ({n})")).collect();
    Err(Unavailable::new(
        POWER_ID,
        if seen.is_empty() {
            "no hwmon power sensor".to_string()
        } else {
            format!(
                "no CPU or platform power sensor among {} (GPU and other sensors are not used for the CPU)",
                seen.join(", ")
            )
        },
    ))
}

/// Sampled power, integrated with the trapezoid rule.
pub struct HwmonPower {
    fs: Arc<dyn SysFs>,
    clock: Arc<dyn Clock>,
    scope: Scope,
    sensors: Vec<(String, PathBuf)>,
    integrator: PowerIntegrator,
}

impl EnergySource for HwmonPower {
    fn id(&self) -> &'static str {
        POWER_ID
    }
    fn provenance(&self) -> Provenance {
        Provenance::Integrated
    }
    fn scope(&self) -> Scope {
        self.scope
    }
    fn domains(&self) -> Vec<String> {
        self.sensors.iter().map(|s| s.0.clone()).collect()
    }
    fn read(&mut self) -> Result<Reading, SourceError> {
        let mut uw = 0u64;
        for (_, p) in &self.sensors {
            uw += read_u64(self.fs.as_ref(), p)?;
        }
        let joules = self.integrator.sample(uw as f64 * 1e-6, self.clock.now());
        Ok(Reading {
            joules,
            wraps: 0,
            resets: 0,
        })
    }
    fn poll_interval(&self) -> Option<Duration> {
        Some(POWER_POLL)
    }
}
