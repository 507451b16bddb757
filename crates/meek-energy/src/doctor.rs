//! What `meekbench doctor` says about energy on this machine, as text: every backend probed (available or why
//! not, and how to enable it), the estimate used where no sensor is readable, what a bench would report, and an
//! optional live reading. Kept beside the sources it describes, so the words and the behaviour change together.

use std::fmt;

use meek_schema::MachineInfo;

use crate::{Env, Meter, Probe, ProbeLine, estimate};

/// The energy part of `meekbench doctor`: built from a probe, shown with `Display`.
pub struct Doctor {
    header: String,
    lines: Vec<ProbeLine>,
    estimate: Option<meek_schema::EstimateModel>,
    meter: Meter,
}

impl Doctor {
    /// Describes `probe` of `env` on `machine`; `origin` names the config whose `[energy]` table applied.
    pub fn new(env: &Env, probe: Probe, machine: &MachineInfo, origin: &str) -> Self {
        let vm = match (&machine.virtualized, &machine.hypervisor) {
            (Some(true), Some(h)) => format!(", virtual machine: {h}"),
            (Some(true), None) => ", virtual machine".to_string(),
            _ => String::new(),
        };
        let header = format!(
            "energy sources on this machine (CPU `{}`, {} logical CPUs{vm}; [energy] from {origin})",
            env.cpu.brand, env.cpu.logical_cpus
        );
        let lines = probe.lines.clone();
        let estimate = probe.estimate.as_ref().map(estimate::Estimator::record);
        Self {
            header,
            lines,
            estimate,
            meter: Meter::new(probe, env),
        }
    }

    /// What a bench here records: the labels of the sources that would count, or that only proxies would.
    pub fn reports(&self) -> String {
        let components = self.meter.components();
        if components.is_empty() {
            return "proxy-only: no joules, only CPU-seconds, FLOPs and weight bytes per token"
                .to_string();
        }
        let covered = self.meter.cpu_covered();
        components
            .iter()
            .filter(|c| c.source != estimate::ID || !covered)
            .map(|c| c.label.as_str())
            .collect::<Vec<_>>()
            .join(" + ")
    }

    /// A reading over `seconds` (at most 60) with the chosen sources while the machine idles; `None` when there
    /// is nothing to read.
    pub fn live_reading(&self, seconds: f64) -> Option<String> {
        if seconds <= 0.0 || self.meter.components().is_empty() {
            return None;
        }
        let m0 = self.meter.mark();
        std::thread::sleep(std::time::Duration::from_secs_f64(seconds.min(60.0)));
        let w = self.meter.window(&m0, &self.meter.mark());
        Some(match w.watts() {
            Some(watts) => format!(
                "live reading over {:.1} s (idle): {watts:.2} W, {}",
                w.seconds,
                w.status.as_str()
            ),
            None => format!("live reading failed: {}", w.notes.join("; ")),
        })
    }
}

impl fmt::Display for Doctor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.header)?;
        for l in &self.lines {
            match &l.outcome {
                Ok(label) => writeln!(
                    f,
                    "  {:<12} {:<14} available{}: {label}",
                    l.scope.as_str(),
                    l.source,
                    if l.chosen { " (used)" } else { " (fallback)" }
                )?,
                Err(u) => {
                    writeln!(
                        f,
                        "  {:<12} {:<14} unavailable: {}",
                        l.scope.as_str(),
                        l.source,
                        u.reason
                    )?;
                    if let Some(how) = &u.enable {
                        writeln!(f, "  {:<12} {:<14} to enable: {how}", "", "")?;
                    }
                }
            }
        }
        if let Some(r) = &self.estimate {
            writeln!(
                f,
                "estimate: {:.3} W at full load ({}: {}); {}; {}",
                r.tdp_watts, r.tdp_source, r.tdp_reference, r.curve, r.uncertainty
            )?;
        }
        writeln!(f, "a bench here reports: {}", self.reports())
    }
}
