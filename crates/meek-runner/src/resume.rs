//! Continuing a result file: whether it can be resumed with this plan on this machine, which runs in it are
//! complete, and where a new run goes so that a resumed file has the same shape as an uninterrupted one.

use meek_config::Plan;
use meek_schema::{BenchResult, MachineInfo, ModelRun, SCHEMA_VERSION, ToolInfo};

/// The complete (not partial) run of `model` with `threads` in `result`, if any.
pub(crate) fn complete_run<'a>(
    result: &'a BenchResult,
    model: &str,
    threads: usize,
) -> Option<&'a ModelRun> {
    result
        .runs
        .iter()
        .find(|r| r.model.id == model && r.threads == threads && !r.partial)
}

/// Puts `run` into `runs` in plan order, replacing an earlier (partial) run of the same model and thread count.
/// Runs outside the plan stay where they are, at the end.
pub(crate) fn place_run(runs: &mut Vec<ModelRun>, run: ModelRun, plan: &[(&str, usize)]) {
    let rank = |r: &ModelRun| {
        plan.iter()
            .position(|&(m, t)| m == r.model.id && t == r.threads)
            .unwrap_or(usize::MAX)
    };
    runs.retain(|r| !(r.model.id == run.model.id && r.threads == run.threads));
    let mine = rank(&run);
    let at = runs
        .iter()
        .position(|r| rank(r) > mine)
        .unwrap_or(runs.len());
    runs.insert(at, run);
}

/// Why `previous` cannot be continued with `cfg` and `overrides` on this machine, if it cannot.
pub(crate) fn check_resumable(
    previous: &BenchResult,
    plan: &Plan,
    machine: &MachineInfo,
    tool: &ToolInfo,
) -> Result<(), String> {
    if previous.schema_version != SCHEMA_VERSION {
        return Err(format!(
            "it has result schema version {}, this meekbench writes {SCHEMA_VERSION}; start a new bench",
            previous.schema_version
        ));
    }
    let cfg = &plan.config;
    if previous.config.sha256 != cfg.sha256 {
        return Err(format!(
            "it was measured with config {} (sha256 {}), not {} (sha256 {}); resume with the same config, or \
             leave CONFIG out to use the one recorded in the file",
            previous.config.source, previous.config.sha256, cfg.origin, cfg.sha256
        ));
    }
    // The models still to measure must be the files the measured ones were: the same pins.
    let recorded = match previous.config.lock.as_deref() {
        Some(text) => Some(meek_config::Lock::parse(
            text,
            "the lock recorded in the file",
        )?),
        None => None,
    };
    let now = cfg.lock.as_ref().map(|l| &l.lock);
    if recorded.as_ref() != now {
        return Err(format!(
            "it was measured with other pins of its hub models than {} now holds (the lock moved since); resume \
             without CONFIG to use the pins recorded in the file, or start a new bench",
            cfg.lock
                .as_ref()
                .map_or_else(|| "the config's lock".to_string(), |l| l.origin.clone())
        ));
    }
    // The output directory is the file's own; every other override changes what is measured.
    let (was, now) = (
        Plan::measuring_overrides(&previous.config.overrides),
        Plan::measuring_overrides(&plan.overrides),
    );
    if was != now {
        let show = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(" ")
            }
        };
        return Err(format!(
            "it was measured with the command-line overrides [{}], this command gives [{}]; pass the same \
             --device, --threads, --model and --shard options",
            show(&was),
            show(&now)
        ));
    }
    for run in &previous.runs {
        match cfg.config.models.iter().find(|m| m.id == run.model.id) {
            Some(m) if m.sha256 == run.model.sha256 => {}
            Some(m) => {
                return Err(format!(
                    "model `{}` was measured from a file with sha256 {}, the config pins {}",
                    run.model.id, run.model.sha256, m.sha256
                ));
            }
            None => {
                return Err(format!(
                    "it holds model `{}`, which the config does not name",
                    run.model.id
                ));
            }
        }
    }
    let build = |t: &ToolInfo| {
        format!(
            "{} {} ({}, {}, features [{}])",
            t.name,
            t.version,
            t.profile,
            t.engine,
            t.features.join(", ")
        )
    };
    if build(&previous.tool) != build(tool) {
        return Err(format!(
            "it was measured with {}, this is {}; finish it with that build or start a new bench",
            build(&previous.tool),
            build(tool)
        ));
    }
    let (a, b) = (&previous.machine.cpu, &machine.cpu);
    if a.brand != b.brand || a.logical_cores != b.logical_cores || previous.machine.os != machine.os
    {
        return Err(format!(
            "it was measured on another machine ({}, {} logical cores, {}); this one is {}, {} logical cores, {}",
            a.brand, a.logical_cores, previous.machine.os, b.brand, b.logical_cores, machine.os
        ));
    }
    Ok(())
}
