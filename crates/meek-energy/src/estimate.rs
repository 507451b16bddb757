//! The estimate used where no sensor is readable: process CPU time, a load-to-power curve and the CPU's TDP.
//!
//! `P(load) = TDP × curve(load)` with `load = process CPU-seconds / (wall seconds × logical CPUs)` measured
//! exactly over the window with `getrusage` (no sampling). The curve interpolates linearly between the Teads
//! measurements that Boavizta scales by TDP when only the TDP is known: power/TDP = 0.12, 0.32, 0.75, 1.02 at
//! 0, 10, 50 and 100% load (Boavizta, `components/cpu.md`). Idle power (0.12 × TDP) is in the gross figure; the
//! net figure subtracts the measured idle baseline.
//!
//! The TDP comes, in order, from the user (`[energy] tdp_watts`), from [`TABLE`] (vendor figures; the share of
//! the package this process can use is `logical CPUs / threads of the part`, so a 2-vCPU slice of a 128-thread
//! EPYC gets 2/128 of its TDP), or from the stated default: 4 W per logical CPU, CodeCarbon's rule for a CPU
//! missing from its table. Every figure says which, in its label. Such models are rough: CodeCarbon's own
//! validation found -60% to +190% against RAPL.

use std::sync::Arc;

use crate::{CpuIdentity, CpuTime, Unavailable};

/// Backend id.
pub const ID: &str = "tdp-model";
/// The curve's name in labels.
pub const CURVE_NAME: &str = "teads";
/// (load, power / TDP) points of the curve.
pub const CURVE: [(f64, f64); 4] = [(0.0, 0.12), (0.10, 0.32), (0.50, 0.75), (1.00, 1.02)];
/// Watts per logical CPU when the CPU is not in the table.
pub const DEFAULT_WATTS_PER_THREAD: f64 = 4.0;
/// Stated uncertainty of TDP models.
pub const UNCERTAINTY: &str =
    "TDP models err by -60% to +190% against RAPL (CodeCarbon's validation)";

/// A CPU's thermal design power.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TdpEntry {
    /// Matched against the OS's CPU name, case-insensitively, ignoring `(R)`, `(TM)` and repeated spaces.
    pub pattern: &'static str,
    /// TDP (or Intel's processor base power), watts.
    pub watts: f64,
    /// Hardware threads of the part.
    pub threads: usize,
    /// Where the figure comes from.
    pub reference: &'static str,
}

const AMD: &str = "AMD product page (default TDP)";
const INTEL: &str = "Intel ARK (TDP / processor base power)";
const INTEL_U: &str = "Intel ARK (configurable TDP-up)";
const APPLE: &str = "no vendor TDP: approximate CPU package peak from published reviews";

/// Common CPUs. Longest matching pattern wins.
pub const TABLE: &[TdpEntry] = &[
    // AMD EPYC (server, cloud)
    TdpEntry {
        pattern: "amd epyc 7702",
        watts: 200.0,
        threads: 128,
        reference: AMD,
    },
    TdpEntry {
        pattern: "amd epyc 7742",
        watts: 225.0,
        threads: 128,
        reference: AMD,
    },
    TdpEntry {
        pattern: "amd epyc 7543",
        watts: 225.0,
        threads: 64,
        reference: AMD,
    },
    TdpEntry {
        pattern: "amd epyc 7713",
        watts: 225.0,
        threads: 128,
        reference: AMD,
    },
    TdpEntry {
        pattern: "amd epyc 7763",
        watts: 280.0,
        threads: 128,
        reference: AMD,
    },
    TdpEntry {
        pattern: "amd epyc 9374f",
        watts: 320.0,
        threads: 64,
        reference: AMD,
    },
    TdpEntry {
        pattern: "amd epyc 9554",
        watts: 360.0,
        threads: 128,
        reference: AMD,
    },
    TdpEntry {
        pattern: "amd epyc 9654",
        watts: 360.0,
        threads: 192,
        reference: AMD,
    },
    // AMD Ryzen (desktop, laptop)
    TdpEntry {
        pattern: "amd ryzen 5 5600x",
        watts: 65.0,
        threads: 12,
        reference: AMD,
    },
    TdpEntry {
        pattern: "amd ryzen 7 5800x",
        watts: 105.0,
        threads: 16,
        reference: AMD,
    },
    TdpEntry {
        pattern: "amd ryzen 9 5950x",
        watts: 105.0,
        threads: 32,
        reference: AMD,
    },
    TdpEntry {
        pattern: "amd ryzen 9 7950x",
        watts: 170.0,
        threads: 32,
        reference: AMD,
    },
    TdpEntry {
        pattern: "amd ryzen 7 5800u",
        watts: 15.0,
        threads: 16,
        reference: AMD,
    },
    TdpEntry {
        pattern: "amd ryzen 7 7840u",
        watts: 28.0,
        threads: 16,
        reference: AMD,
    },
    // Intel Core (U laptop, H laptop, K desktop)
    TdpEntry {
        pattern: "intel core i5-8250u",
        watts: 15.0,
        threads: 8,
        reference: INTEL,
    },
    TdpEntry {
        pattern: "intel core i7-8550u",
        watts: 15.0,
        threads: 8,
        reference: INTEL,
    },
    TdpEntry {
        pattern: "intel core i5-1135g7",
        watts: 28.0,
        threads: 8,
        reference: INTEL_U,
    },
    TdpEntry {
        pattern: "intel core i7-1165g7",
        watts: 28.0,
        threads: 8,
        reference: INTEL_U,
    },
    TdpEntry {
        pattern: "intel core i7-1260p",
        watts: 28.0,
        threads: 16,
        reference: INTEL,
    },
    TdpEntry {
        pattern: "intel core i7-12700h",
        watts: 45.0,
        threads: 20,
        reference: INTEL,
    },
    TdpEntry {
        pattern: "intel core i9-12900k",
        watts: 125.0,
        threads: 24,
        reference: INTEL,
    },
    TdpEntry {
        pattern: "intel core i5-13600k",
        watts: 125.0,
        threads: 20,
        reference: INTEL,
    },
    TdpEntry {
        pattern: "intel core i7-13700k",
        watts: 125.0,
        threads: 24,
        reference: INTEL,
    },
    TdpEntry {
        pattern: "intel core i9-13900k",
        watts: 125.0,
        threads: 32,
        reference: INTEL,
    },
    // Intel Xeon (server, cloud)
    TdpEntry {
        pattern: "intel xeon cpu e5-2686 v4",
        watts: 145.0,
        threads: 36,
        reference: INTEL,
    },
    TdpEntry {
        pattern: "intel xeon gold 6230",
        watts: 125.0,
        threads: 40,
        reference: INTEL,
    },
    TdpEntry {
        pattern: "intel xeon gold 6248",
        watts: 150.0,
        threads: 40,
        reference: INTEL,
    },
    TdpEntry {
        pattern: "intel xeon platinum 8280",
        watts: 205.0,
        threads: 56,
        reference: INTEL,
    },
    TdpEntry {
        pattern: "intel xeon platinum 8375c",
        watts: 300.0,
        threads: 64,
        reference: INTEL,
    },
    // Apple M-series (no published TDP)
    TdpEntry {
        pattern: "apple m1",
        watts: 20.0,
        threads: 8,
        reference: APPLE,
    },
    TdpEntry {
        pattern: "apple m1 pro",
        watts: 30.0,
        threads: 10,
        reference: APPLE,
    },
    TdpEntry {
        pattern: "apple m1 max",
        watts: 30.0,
        threads: 10,
        reference: APPLE,
    },
    TdpEntry {
        pattern: "apple m2",
        watts: 20.0,
        threads: 8,
        reference: APPLE,
    },
    TdpEntry {
        pattern: "apple m3",
        watts: 22.0,
        threads: 8,
        reference: APPLE,
    },
];

/// Lower case, without `(r)`, `(tm)` and `cpu @ ...` noise, single spaces.
fn normalise(s: &str) -> String {
    let s = s
        .to_ascii_lowercase()
        .replace("(r)", "")
        .replace("(tm)", "");
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The table entry for a CPU name, if any (the longest matching pattern).
pub fn lookup(brand: &str) -> Option<&'static TdpEntry> {
    let b = normalise(brand);
    TABLE
        .iter()
        .filter(|e| {
            // The pattern must end at a word boundary: "apple m1" is not "apple m10".
            b.match_indices(e.pattern).any(|(i, m)| {
                b[i + m.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| !c.is_ascii_alphanumeric())
            })
        })
        .max_by_key(|e| e.pattern.len())
}

/// Power / TDP at `load` (0 to 1, clamped), linear between the [`CURVE`] points.
pub fn curve(load: f64) -> f64 {
    let x = if load.is_finite() {
        load.clamp(0.0, 1.0)
    } else {
        0.0
    };
    for w in CURVE.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if x <= x1 {
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0);
        }
    }
    CURVE[CURVE.len() - 1].1
}

/// Where the TDP figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TdpSource {
    /// `[energy] tdp_watts`.
    User,
    /// [`TABLE`].
    Table,
    /// 4 W per logical CPU.
    Default,
}

impl TdpSource {
    /// `user`, `table` or `default`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Table => "table",
            Self::Default => "default",
        }
    }
}

/// The TDP model for this machine.
#[derive(Clone)]
pub struct Estimator {
    /// Watts at full load of the CPUs this process can use.
    pub tdp_watts: f64,
    /// Where the figure came from.
    pub tdp_source: TdpSource,
    /// The table entry, the config key or the default rule, in words.
    pub tdp_reference: String,
    /// CPU name.
    pub cpu_model: String,
    /// Logical CPUs the load is divided over.
    pub logical_cpus: usize,
    cpu_time: Arc<dyn CpuTime>,
}

impl std::fmt::Debug for Estimator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

impl Estimator {
    /// The model for `cpu`, with the user's TDP when given. Unavailable when the process CPU time cannot be read.
    pub fn new(
        cpu: &CpuIdentity,
        user_tdp: Option<f64>,
        cpu_time: Arc<dyn CpuTime>,
    ) -> Result<Self, Unavailable> {
        if cpu_time.cpu_seconds().is_none() {
            return Err(Unavailable::new(
                ID,
                "the process CPU time cannot be read on this OS (getrusage)",
            ));
        }
        let logical = cpu.logical_cpus.max(1);
        let (tdp_watts, tdp_source, tdp_reference) = match (user_tdp, lookup(&cpu.brand)) {
            (Some(w), _) => (w, TdpSource::User, "[energy] tdp_watts".to_string()),
            (None, Some(e)) => {
                let share = (logical as f64 / e.threads as f64).min(1.0);
                (
                    e.watts * share,
                    TdpSource::Table,
                    format!(
                        "{} W for {} threads ({}: `{}`) x {}/{} logical CPUs visible",
                        e.watts,
                        e.threads,
                        e.reference,
                        e.pattern,
                        logical.min(e.threads),
                        e.threads
                    ),
                )
            }
            (None, None) => (
                DEFAULT_WATTS_PER_THREAD * logical as f64,
                TdpSource::Default,
                format!(
                    "`{}` is not in the table: {DEFAULT_WATTS_PER_THREAD} W per logical CPU x {logical} \
                     (CodeCarbon's rule); set [energy] tdp_watts to override",
                    cpu.brand
                ),
            ),
        };
        Ok(Self {
            tdp_watts,
            tdp_source,
            tdp_reference,
            cpu_model: cpu.brand.clone(),
            logical_cpus: logical,
            cpu_time,
        })
    }

    /// Process CPU-seconds so far.
    pub fn cpu_seconds(&self) -> Option<f64> {
        self.cpu_time.cpu_seconds()
    }

    /// Modelled watts at `load`.
    pub fn watts(&self, load: f64) -> f64 {
        self.tdp_watts * curve(load)
    }

    /// Modelled joules of a window of `wall` seconds in which the process used `cpu` CPU-seconds.
    pub fn joules(&self, cpu: f64, wall: f64) -> f64 {
        if wall <= 0.0 {
            return 0.0;
        }
        self.watts(cpu / (wall * self.logical_cpus as f64)) * wall
    }

    /// `estimated:tdp-model(curve=teads,tdp=8W,tdp_source=default,util=rusage)`.
    pub fn label(&self) -> String {
        format!(
            "estimated:{ID}(curve={CURVE_NAME},tdp={}W,tdp_source={},util=rusage)",
            round_sig(self.tdp_watts),
            self.tdp_source.as_str()
        )
    }

    /// The model as recorded in result files.
    pub fn record(&self) -> meek_schema::EstimateModel {
        meek_schema::EstimateModel {
            cpu_model: self.cpu_model.clone(),
            tdp_watts: self.tdp_watts,
            tdp_source: self.tdp_source.as_str().to_string(),
            tdp_reference: self.tdp_reference.clone(),
            curve: format!(
                "{CURVE_NAME}: power/TDP {} at load {} (linear between)",
                CURVE.map(|p| p.1.to_string()).join(", "),
                CURVE.map(|p| format!("{}%", p.0 * 100.0)).join(", ")
            ),
            utilisation: "rusage: process CPU-seconds / (wall seconds x logical CPUs)".to_string(),
            logical_cpus: self.logical_cpus,
            uncertainty: UNCERTAINTY.to_string(),
        }
    }
}

/// Three significant digits, without trailing zeros (`8`, `3.75`, `0.125`).
fn round_sig(x: f64) -> String {
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}
