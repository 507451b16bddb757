//! Joining the result files of a plan's shards (`bench --shard I/N`) into the result of the whole plan, as one
//! bench would have written it: runs in plan order, failures of every part, the earliest start and latest end.
//!
//! Shard files come from many machines and many hands, so nothing is assumed: every file must be a shard of the
//! same plan (the plan's SHA-256, the config's, the tool), every part present once and complete, every run one
//! the part's record says it measures, and the parts of the plan covering it exactly. Parts from different machines
//! are refused unless allowed; then each run keeps its own machine record and the file's is the first part's.

use meek_schema::{BenchResult, MachineInfo, RunStatus};

/// Merges `parts` (a name for messages, and the file's result); `Err` says which file breaks which rule.
pub fn merge(
    parts: Vec<(String, BenchResult)>,
    allow_mixed_machines: bool,
) -> Result<BenchResult, String> {
    let Some((first_name, first)) = parts.first() else {
        return Err("no shard files given".into());
    };
    let Some(s0) = &first.shard else {
        return Err(format!(
            "{first_name} is not a shard (it has no `shard` record): merge joins the files of `bench --shard I/N`"
        ));
    };
    let (count, plan, planned) = (s0.count, s0.plan_sha256.clone(), s0.planned_runs);
    let mut seen = vec![None::<&str>; count];
    let mut covered = vec![false; planned];
    let mut machines_differ = Vec::new();
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
        for p in &s.runs {
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
        for run in &r.runs {
            if !s
                .runs
                .iter()
                .any(|p| p.model == run.model.id && p.threads == run.threads)
            {
                return Err(format!(
                    "{name}: it holds a run of {} at {} threads that its shard does not plan",
                    run.model.id, run.threads
                ));
            }
        }
        if r.machine != first.machine {
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
        let machine: Option<&MachineInfo> = (r.machine != first.machine).then_some(&r.machine);
        for run in &r.runs {
            let at = s
                .runs
                .iter()
                .find(|p| p.model == run.model.id && p.threads == run.threads)
                .map_or(usize::MAX, |p| p.index);
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
