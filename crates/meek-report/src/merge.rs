//! Joining the result files of a plan's shards (`bench --shard I/N`) into the result of the whole plan, as one
//! bench would have written it: runs in plan order, failures of every part, the earliest start and latest end.
//!
//! Shard files come from many machines and many hands, so nothing is assumed: every file must be a shard of the
//! same plan (the plan's SHA-256, the config's, the tool), every part present once and complete, every run one
//! the part's record says it measures, and the parts of the plan covering it exactly. Parts from different machines
//! are refused unless allowed; then each run keeps its own machine record and the file's is the first part's.

use std::collections::{HashMap, HashSet};

use meek_schema::{BenchResult, MachineInfo, RunStatus};

/// The most runs a plan can have: 1,000 models (a config's limit) at 64 thread counts (a sweep's).
pub const MAX_PLANNED_RUNS: usize = 64_000;

/// Merges `parts` (a name for messages, and the file's result); `Err` says which file breaks which rule.
pub fn merge(
    mut parts: Vec<(String, BenchResult)>,
    allow_mixed_machines: bool,
) -> Result<BenchResult, String> {
    // In part order, so the merged file does not depend on the order the files were named in.
    parts.sort_by_key(|(_, r)| r.shard.as_ref().map_or(usize::MAX, |s| s.index));
    let Some((first_name, first)) = parts.first() else {
        return Err("no shard files given".into());
    };
    let Some(s0) = &first.shard else {
        return Err(format!(
            "{first_name} is not a shard (it has no `shard` record): merge joins the files of `bench --shard I/N`"
        ));
    };
    let (count, plan, planned) = (s0.count, s0.plan_sha256.clone(), s0.planned_runs);
    // Sizes from a file are claims: bounded before anything is allocated by them.
    if count != parts.len() || planned > MAX_PLANNED_RUNS || planned < count {
        return Err(format!(
            "{first_name} says its plan has {count} parts and {planned} runs, and {} files are given: give every \
             part once (a plan has at most {MAX_PLANNED_RUNS} runs and at least one per part)",
            parts.len()
        ));
    }
    let mut seen = vec![None::<&str>; count];
    let mut covered = vec![false; planned];
    let mut machines_differ = Vec::new();
    let mut planned_pairs: HashSet<(&str, usize)> = HashSet::new();
    for (name, r) in &parts {
        let Some(s) = &r.shard else {
            return Err(format!("{name} is not a shard (it has no `shard` record)"));
        };
        if s.plan_sha256 != plan || s.count != count || s.planned_runs != planned {
            return Err(format!(
                "{name} is a shard of another plan (plan {} in {} parts, {} runs) than {first_name} (plan {} in \
                 {count} parts, {planned} runs)",
                short(&s.plan_sha256),
                s.count,
                s.planned_runs,
                short(&plan)
            ));
        }
        if r.config.sha256 != first.config.sha256 || r.tool != first.tool {
            return Err(format!(
                "{name} was measured with another config or another meekbench build than {first_name}"
            ));
        }
        if r.status != RunStatus::Complete {
            return Err(format!(
                "{name} is not complete (its bench was interrupted or is still running): finish it with `meekbench \
                 bench --resume {name}` first"
            ));
        }
        let slot = seen
            .get_mut(s.index)
            .ok_or_else(|| format!("{name}: shard {} of {count} does not exist", s.index))?;
        if let Some(other) = slot {
            return Err(format!(
                "{name} and {other} are both shard {}/{count}",
                s.index
            ));
        }
        *slot = Some(name);
        if r.schema_version != first.schema_version {
            return Err(format!(
                "{name} has result schema version {}, {first_name} {}",
                r.schema_version, first.schema_version
            ));
        }
        let mut measured_runs: HashMap<(&str, usize), usize> = HashMap::new();
        for x in &r.runs {
            *measured_runs
                .entry((x.model.id.as_str(), x.threads))
                .or_default() += 1;
        }
        let failed_models: HashSet<&str> = r.failures.iter().map(|f| f.model.as_str()).collect();
        for p in &s.runs {
            if !planned_pairs.insert((p.model.as_str(), p.threads)) {
                return Err(format!(
                    "{name}: {} at {} threads is planned in two shards",
                    p.model, p.threads
                ));
            }
            let measured = measured_runs
                .get(&(p.model.as_str(), p.threads))
                .copied()
                .unwrap_or(0);
            let failed = failed_models.contains(p.model.as_str());
            if measured > 1 || (measured == 0 && !failed) {
                return Err(format!(
                    "{name}: {} at {} threads is planned; it holds {measured} runs of it and {} failure",
                    p.model,
                    p.threads,
                    if failed { "a" } else { "no" }
                ));
            }
            match covered.get_mut(p.index) {
                Some(c) if !*c => *c = true,
                _ => {
                    return Err(format!(
                        "{name}: run {} ({} at {} threads) is outside the plan or planned in two shards",
                        p.index, p.model, p.threads
                    ));
                }
            }
        }
        let planned_here: HashSet<(&str, usize)> = s
            .runs
            .iter()
            .map(|p| (p.model.as_str(), p.threads))
            .collect();
        for run in &r.runs {
            if !planned_here.contains(&(run.model.id.as_str(), run.threads)) {
                return Err(format!(
                    "{name}: it holds a run of {} at {} threads that its shard does not plan",
                    run.model.id, run.threads
                ));
            }
        }
        if r.machine != first.machine || r.runs.iter().any(|x| x.machine.is_some()) {
            machines_differ.push(name.clone());
        }
    }
    if let Some(i) = seen.iter().position(Option::is_none) {
        return Err(format!("shard {i}/{count} is missing"));
    }
    if covered.iter().any(|c| !c) {
        return Err("the shards do not cover the plan's runs".into());
    }
    if !machines_differ.is_empty() && !allow_mixed_machines {
        return Err(format!(
            "{} measured on another machine than {first_name}; a merged file stands for one machine unless \
             --allow-mixed-machines (then every run keeps its own)",
            machines_differ.join(", ")
        ));
    }
    let mut merged = first.clone();
    merged.shard = None;
    merged.config.overrides.retain(|o| !o.starts_with("shard="));
    merged.runs.clear();
    merged.failures.clear();
    let mut runs = Vec::new();
    for (_, r) in &parts {
        let s = r.shard.as_ref().expect("checked above");
        let positions: HashMap<(&str, usize), usize> = s
            .runs
            .iter()
            .map(|p| ((p.model.as_str(), p.threads), p.index))
            .collect();
        let machine: Option<&MachineInfo> = (r.machine != first.machine).then_some(&r.machine);
        for run in &r.runs {
            let at = positions
                .get(&(run.model.id.as_str(), run.threads))
                .copied()
                .unwrap_or(usize::MAX);
            let mut run = run.clone();
            if run.machine.is_none() {
                run.machine = machine.cloned();
            }
            runs.push((at, run));
        }
        merged.failures.extend(r.failures.iter().cloned());
        if r.started_at < merged.started_at {
            merged.started_at = r.started_at.clone();
        }
        if r.finished_at > merged.finished_at {
            merged.finished_at = r.finished_at.clone();
        }
    }
    runs.sort_by_key(|(at, _)| *at);
    merged.runs = runs.into_iter().map(|(_, r)| r).collect();
    Ok(merged)
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
