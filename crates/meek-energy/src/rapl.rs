//! RAPL through the powercap sysfs tree: `/sys/class/powercap/intel-rapl:N/{name,energy_uj,max_energy_range_uj}`.
//!
//! Only top-level `package` zones are summed (one per package or die; AMD Zen shows the same tree since Linux
//! 5.8). Sub-zones (`core`, `uncore`, `dram`) lie inside the package or outside what the others count, `psys`
//! contains the package, and `intel-rapl-mmio` repeats the same domains: none of them is added. The counter wraps
//! at `max_energy_range_uj`; one wrap between two reads is corrected, so the [`crate::Meter`] polls every second
//! to never miss a second one. Since Linux 5.10 `energy_uj` is readable by root only (PLATYPUS, CVE-2020-8694).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::sysfs::{SysFs, is_permission, read_line, read_u64};
use crate::{
    Clock, EnergySource, Env, Provenance, Reading, Scope, SourceError, Unavailable, WrapCounter,
    update_all,
};

/// Backend id.
pub const ID: &str = "rapl-powercap";
/// Where the zones are.
pub const POWERCAP: &str = "/sys/class/powercap";
/// How often the counters are read between window edges.
pub const POLL: Duration = Duration::from_secs(1);
/// A drop implying more than this per package is a reset, not a wrap.
const MAX_PACKAGE_WATTS: f64 = 1500.0;

/// How to grant read access to the counters.
pub const ENABLE_READ: &str = "`sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj` (until reboot), or \
     permanently a udev rule in /etc/udev/rules.d/99-rapl.rules: \
     ACTION==\"add\", SUBSYSTEM==\"powercap\", RUN+=\"/bin/chmod o+r /sys%p/energy_uj\"; or run as root";

struct Zone {
    name: String,
    energy: PathBuf,
    counter: WrapCounter,
}

/// The package zones of every socket or die, summed.
pub struct RaplPowercap {
    fs: Arc<dyn SysFs>,
    clock: Arc<dyn Clock>,
    zones: Vec<Zone>,
}

/// Top-level zone directories (`intel-rapl:N`, `amd-rapl:N`), without sub-zones and MMIO duplicates.
fn top_level_zones(fs: &dyn SysFs) -> Vec<String> {
    fs.list(Path::new(POWERCAP))
        .unwrap_or_default()
        .into_iter()
        .filter(|n| {
            ["intel-rapl:", "amd-rapl:"].iter().any(|p| {
                n.strip_prefix(p).is_some_and(|rest| {
                    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
                })
            })
        })
        .collect()
}

/// Finds the package zones and reads each once.
pub fn open(env: &Env) -> Result<Box<dyn EnergySource>, Unavailable> {
    open_rapl(env).map(|s| Box::new(s) as _)
}

/// As [`open`], with the concrete type (tests).
pub fn open_rapl(env: &Env) -> Result<RaplPowercap, Unavailable> {
    let fs = env.fs.as_ref();
    let dirs = top_level_zones(fs);
    if dirs.is_empty() {
        return Err(Unavailable::new(
            ID,
            format!(
                "no RAPL zones under {POWERCAP} (a virtual machine or container does not expose them, or the \
                 intel_rapl driver is not loaded)"
            ),
        )
        .enable(
            "on bare-metal Intel, or AMD Zen with Linux 5.8+: `sudo modprobe intel_rapl_msr`; a container needs \
             /sys/devices/virtual/powercap unmasked; a VM cannot read the host's RAPL",
        ));
    }
    let now = env.clock.now();
    let mut zones = Vec::new();
    let mut skipped = Vec::new();
    for d in dirs {
        let dir = Path::new(POWERCAP).join(&d);
        let name = read_line(fs, &dir.join("name")).unwrap_or_default();
        if !name.starts_with("package") {
            // psys contains the packages; anything else is not a package domain.
            skipped.push(format!("{d} ({name})"));
            continue;
        }
        let energy = dir.join("energy_uj");
        let first = read_u64(fs, &energy).map_err(|e| {
            if is_permission(&e) {
                Unavailable::new(
                    ID,
                    format!(
                        "permission denied reading {} (root-only since Linux 5.10, CVE-2020-8694)",
                        energy.display()
                    ),
                )
                .enable(ENABLE_READ)
            } else {
                Unavailable::new(ID, e.to_string())
            }
        })?;
        let range = read_u64(fs, &dir.join("max_energy_range_uj")).ok();
        zones.push(Zone {
            name: if zones.iter().any(|z: &Zone| z.name == name) {
                format!("{name}({d})")
            } else {
                name
            },
            energy,
            counter: WrapCounter::new(first, now, range, 1e-6, MAX_PACKAGE_WATTS),
        });
    }
    if zones.is_empty() {
        return Err(Unavailable::new(
            ID,
            format!(
                "RAPL zones found but none is a package zone: {}",
                skipped.join(", ")
            ),
        ));
    }
    Ok(RaplPowercap {
        fs: env.fs.clone(),
        clock: env.clock.clone(),
        zones,
    })
}

impl EnergySource for RaplPowercap {
    fn id(&self) -> &'static str {
        ID
    }
    fn provenance(&self) -> Provenance {
        Provenance::Measured
    }
    fn scope(&self) -> Scope {
        Scope::CpuPackage
    }
    fn domains(&self) -> Vec<String> {
        self.zones.iter().map(|z| z.name.clone()).collect()
    }
    fn read(&mut self) -> Result<Reading, SourceError> {
        // Read every zone first: a failure leaves all counters as they were.
        let now = self.clock.now();
        let raws = self
            .zones
            .iter()
            .map(|z| read_u64(self.fs.as_ref(), &z.energy))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(update_all(
            self.zones.iter_mut().map(|z| &mut z.counter),
            raws,
            now,
        ))
    }
    fn poll_interval(&self) -> Option<Duration> {
        Some(POLL)
    }
}
