//! Splitting a plan into disjoint shards, so that many machines (a Slurm job array, a Kubernetes Indexed Job) each
//! measure a part and `meekbench merge` joins the parts into one result.
//!
//! The unit is a run (one model at one thread count): a run loads its model once and measures every point and
//! suite on it, so splitting finer would load models twice and measure nothing better. Runs are dealt by
//! expected cost, largest first, each to the least loaded shard (Graham's LPT rule, within 4/3 of the best
//! balance). The cost must come from the plan alone, never from what a machine happens to have cached, since every
//! shard computes the same partition on its own: a run costs its model's size over its thread count (the points
//! and suites are the same for every run), with the size from the lock where it pins the model and 1 GiB taken
//! otherwise.

use crate::LoadedConfig;

/// Which part of a plan this bench measures: `index` of `count`, zero-based (`--shard 0/4` .. `--shard 3/4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Zero-based part.
    pub index: usize,
    /// Parts in all.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("`{s}` is not I/N (e.g. 0/4: the first of four parts, counted from 0)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || count > MAX_SHARDS || index >= count {
            return Err(format!(
                "`{s}`: the part I must be below the count N, and N from 1 to {MAX_SHARDS}"
            ));
        }
        Ok(Self { index, count })
    }
}

/// The most parts a plan is split into.
pub const MAX_SHARDS: usize = 10_000;

/// Size taken for a model the lock does not size (its file is pinned by the config's `sha256` alone).
const UNKNOWN_SIZE: u64 = 1 << 30;

/// The plan indices (positions in `runs`) of the runs shard `shard` measures, in plan order; `Err` when the plan
/// has fewer runs than shards (a shard with nothing to do is a mistake in the job script).
pub fn assign(
    cfg: &LoadedConfig,
    runs: &[(&str, usize)],
    shard: Shard,
) -> Result<Vec<usize>, String> {
    if runs.len() < shard.count {
        return Err(format!(
            "the plan has {} run(s) (models x thread counts) and cannot be split into {} shards; use at most {}",
            runs.len(),
            shard.count,
            runs.len()
        ));
    }
    let size = |id: &str| {
        cfg.lock
            .as_ref()
            .and_then(|l| l.lock.get(id))
            .map_or(UNKNOWN_SIZE, |e| e.size.max(1))
    };
    let cost = |&(id, t): &(&str, usize)| size(id) as f64 / t.max(1) as f64;
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by(|&a, &b| cost(&runs[b]).total_cmp(&cost(&runs[a])).then(a.cmp(&b)));
    let mut load = vec![0.0f64; shard.count];
    let mut mine = Vec::new();
    for i in order {
        let least = (0..shard.count)
            .min_by(|&a, &b| load[a].total_cmp(&load[b]).then(a.cmp(&b)))
            .expect("at least one shard");
        load[least] += cost(&runs[i]);
        if least == shard.index {
            mine.push(i);
        }
    }
    mine.sort_unstable();
    Ok(mine)
}
