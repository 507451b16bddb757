//! RAPL through the perf `power` PMU: `perf_event_open` on `power/energy-pkg/`, one CPU per socket.
//!
//! The event's `type`, its `config` (`events/energy-pkg`, e.g. `event=0x02`), its scale (`energy-pkg.scale`, J per
//! count, normally 2^-32) and the CPUs to open it on (`cpumask`) come from
//! `/sys/bus/event_source/devices/power/`. The kernel accumulates 64 bits, so there is no wrap to correct.
//! Opening needs root, `CAP_PERFMON`, or `kernel.perf_event_paranoid` <= 0. On AMD Zen only `energy-pkg` exists.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::sysfs::{SysFs, read_line};
use crate::{
    Clock, EnergySource, Env, Provenance, Reading, Scope, SourceError, Unavailable, WrapCounter,
    update_all,
};

/// Backend id.
pub const ID: &str = "rapl-perf";
/// The PMU's sysfs directory.
pub const PMU: &str = "/sys/bus/event_source/devices/power";

/// How to allow the perf backend.
pub const ENABLE: &str = "`sudo sysctl kernel.perf_event_paranoid=0` (until reboot), or give the binary \
     CAP_PERFMON: `sudo setcap cap_perfmon+ep $(command -v meekbench)`";

/// The package-energy event as the PMU describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PmuEvent {
    /// `perf_event_attr.type`.
    pub pmu_type: u32,
    /// `perf_event_attr.config`.
    pub config: u64,
    /// Joules per count.
    pub scale: f64,
    /// CPUs to open the event on: one per socket.
    pub cpus: Vec<i32>,
}

/// Reads the PMU's description of `energy-pkg` from sysfs.
pub fn describe(fs: &dyn SysFs) -> Result<PmuEvent, Unavailable> {
    let dir = Path::new(PMU);
    if !fs.exists(dir) {
        return Err(Unavailable::new(
            ID,
            format!(
                "no perf `power` PMU ({PMU} is absent: the kernel exposes no RAPL events here)"
            ),
        ));
    }
    let bad = |what: &str| Unavailable::new(ID, format!("{PMU}: cannot read {what}"));
    let pmu_type = read_line(fs, &dir.join("type"))
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| bad("type"))?;
    let event = read_line(fs, &dir.join("events/energy-pkg"))
        .ok_or_else(|| bad("events/energy-pkg (no package energy event)"))?;
    let config = event
        .split(',')
        .find_map(|kv| kv.trim().strip_prefix("event="))
        .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        .ok_or_else(|| bad(&format!("events/energy-pkg ({event:?})")))?;
    let scale = read_line(fs, &dir.join("events/energy-pkg.scale"))
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .unwrap_or(2f64.powi(-32));
    let cpus = read_line(fs, &dir.join("cpumask"))
        .map(|m| parse_cpu_list(&m))
        .filter(|c| !c.is_empty())
        .ok_or_else(|| bad("cpumask"))?;
    Ok(PmuEvent {
        pmu_type,
        config,
        scale,
        cpus,
    })
}

/// Parses a CPU list such as `0`, `0,64` or `0-1,8`.
pub fn parse_cpu_list(s: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.trim().parse::<i32>(), b.trim().parse::<i32>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.trim().parse::<i32>().ok()),
        }
    }
    out
}

/// Opens the event on every socket.
pub fn open(env: &Env) -> Result<Box<dyn EnergySource>, Unavailable> {
    let event = describe(env.fs.as_ref())?;
    if !env.perf_syscalls {
        return Err(Unavailable::new(
            ID,
            "perf events are not opened in this environment",
        ));
    }
    let mut fds = Vec::new();
    for &cpu in &event.cpus {
        match sys::open(event.pmu_type, event.config, cpu) {
            Ok(fd) => fds.push(fd),
            Err(e) => {
                for fd in fds {
                    sys::close(fd);
                }
                let denied = matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM));
                let u =
                    Unavailable::new(ID, format!("perf_event_open(energy-pkg, cpu {cpu}): {e}"));
                return Err(if denied { u.enable(ENABLE) } else { u });
            }
        }
    }
    let mut source = PerfEnergy {
        clock: env.clock.clone(),
        fds,
        counters: Vec::new(),
    };
    let now = source.clock.now();
    let raws = source
        .raw()
        .map_err(|e| Unavailable::new(ID, e.to_string()))?;
    source.counters = raws
        .into_iter()
        .map(|r| WrapCounter::new(r, now, None, event.scale, 5000.0))
        .collect();
    Ok(Box::new(source))
}

/// Package energy from perf counters, summed over sockets.
pub struct PerfEnergy {
    clock: Arc<dyn Clock>,
    fds: Vec<i32>,
    counters: Vec<WrapCounter>,
}

impl PerfEnergy {
    fn raw(&self) -> Result<Vec<u64>, SourceError> {
        self.fds
            .iter()
            .map(|&fd| {
                sys::read(fd)
                    .map_err(|e| SourceError::Other(format!("reading perf energy-pkg: {e}")))
            })
            .collect()
    }
}

impl Drop for PerfEnergy {
    fn drop(&mut self) {
        for &fd in &self.fds {
            sys::close(fd);
        }
    }
}

impl EnergySource for PerfEnergy {
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
        if self.fds.len() == 1 {
            vec!["energy-pkg".into()]
        } else {
            (0..self.fds.len())
                .map(|i| format!("energy-pkg{i}"))
                .collect()
        }
    }
    fn read(&mut self) -> Result<Reading, SourceError> {
        let now = self.clock.now();
        let raws = self.raw()?;
        // The counters are 64 bits wide (no range): they never wrap, so the sum's wraps stay 0.
        Ok(update_all(self.counters.iter_mut(), raws, now))
    }
    fn poll_interval(&self) -> Option<Duration> {
        None
    }
}

#[cfg(target_os = "linux")]
mod sys {
    /// `struct perf_event_attr` up to `PERF_ATTR_SIZE_VER0` (64 bytes); everything after `config` is zero
    /// (counting, not sampling; enabled at open).
    #[repr(C)]
    struct Attr {
        type_: u32,
        size: u32,
        config: u64,
        rest: [u64; 6],
    }

    pub(super) fn open(pmu_type: u32, config: u64, cpu: i32) -> std::io::Result<i32> {
        let attr = Attr {
            type_: pmu_type,
            size: std::mem::size_of::<Attr>() as u32,
            config,
            rest: [0; 6],
        };
        const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
        // SAFETY: perf_event_open reads `size` bytes of the attribute struct we own; pid -1 with a CPU counts
        // system-wide on that CPU, as RAPL events require.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                &attr as *const Attr,
                -1 as libc::pid_t,
                cpu,
                -1 as libc::c_int,
                PERF_FLAG_FD_CLOEXEC,
            )
        };
        if fd < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(fd as i32)
        }
    }

    pub(super) fn read(fd: i32) -> std::io::Result<u64> {
        let mut v = 0u64;
        // SAFETY: reads at most 8 bytes into `v`, which we own.
        let n = unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
        if n == 8 {
            Ok(v)
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    pub(super) fn close(fd: i32) {
        // SAFETY: `fd` came from perf_event_open and is closed once.
        unsafe {
            libc::close(fd);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    pub(super) fn open(_: u32, _: u64, _: i32) -> std::io::Result<i32> {
        Err(std::io::Error::other("perf events exist on Linux only"))
    }
    pub(super) fn read(_: i32) -> std::io::Result<u64> {
        Err(std::io::Error::other("perf events exist on Linux only"))
    }
    pub(super) fn close(_: i32) {}
}
