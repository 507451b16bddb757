//! The plan of a bench: what will be measured, resolved once from the config file and the command line.
//!
//! The config file and the command-line flags are the "low-level" inputs; a [`Plan`] is the "high-level" decision
//! built from both (ripgrep separates its arguments the same way), validated before any model is fetched or loaded.
//! The runner only carries a plan out, and `--resume` compares the plan recorded in a result file with this one.
//! Every flag that overrides the file is recorded as `key=value` in [`Plan::overrides`], which the result file
//! keeps, so a result says what was measured even when the config text alone would not.

use std::path::PathBuf;

use crate::limits::{self, Origin};
use crate::{
    DeviceRequest, EnergySection, LoadedConfig, ModelSpec, PerplexitySpec, SpeedSection, SuiteSpec,
    Threads,
};

/// Command-line choices that override the configuration (all optional; `None` keeps the file's value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// Result directory instead of `run.output`.
    pub output: Option<PathBuf>,
    /// Device instead of `run.device`.
    pub device: Option<DeviceRequest>,
    /// Thread counts instead of `run.threads`.
    pub threads: Option<Vec<usize>>,
    /// Prompt lengths instead of `speed.prompt_tokens`.
    pub prompt_tokens: Option<Vec<usize>>,
    /// Generation lengths instead of `speed.gen_tokens`.
    pub gen_tokens: Option<Vec<usize>>,
    /// Measured repetitions per point instead of `speed.repetitions`.
    pub repetitions: Option<usize>,
    /// Model cache directory instead of `run.cache` / the default.
    pub cache: Option<PathBuf>,
    /// Only these model ids (all when empty).
    pub models: Vec<String>,
    /// Only this part of the runs (`--shard I/N`).
    pub shard: Option<crate::Shard>,
}

/// What a bench measures: every model in order, each at every thread count, each run at every workload point and
/// on every suite.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The configuration it was built from (its text and hash are recorded in the result file).
    pub config: LoadedConfig,
    /// The device to run on.
    pub device: DeviceRequest,
    /// The models to measure, in config order (only those asked for on the command line, when any are).
    pub models: Vec<ModelSpec>,
    /// Thread counts, one run each, in order.
    pub threads: Vec<usize>,
    /// The speed grid, with the command line's lists in place of the config's.
    pub speed: SpeedSection,
    /// Directory for a new result file.
    pub output: PathBuf,
    /// Model cache directory, when the config or the command line names one.
    pub cache: Option<PathBuf>,
    /// The command line's overrides as recorded in the result file (`key=value`, in a fixed order).
    pub overrides: Vec<String>,
    /// With `--shard`: the part, and the plan indices (positions in [`Plan::all_runs`]) of the runs it measures.
    pub shard: Option<(crate::Shard, Vec<usize>)>,
}

impl Plan {
    /// Builds the plan of `cfg` with the command line's `overrides`, checking every overriding value against the
    /// same bounds as the config's. `auto_threads` gives the thread count of `threads = "auto"` (physical cores).
    pub fn new(
        cfg: &LoadedConfig,
        overrides: &Overrides,
        auto_threads: impl FnOnce() -> usize,
    ) -> Result<Self, String> {
        let c = &cfg.config;
        let flag = Origin::Flag;
        let threads = match (&overrides.threads, &c.run.threads) {
            (Some(t), _) | (None, Threads::List(t)) => t.clone(),
            (None, Threads::Auto) => vec![auto_threads()],
        };
        limits::THREADS.check_list(&threads, flag)?;
        if let Some((i, t)) = threads
            .iter()
            .enumerate()
            .find(|(i, t)| threads[..*i].contains(t))
        {
            return Err(format!(
                "thread count {t} is listed twice (at position {}); list each once",
                i + 1
            ));
        }
        if let Some(unknown) = overrides
            .models
            .iter()
            .find(|id| !c.models.iter().any(|m| &m.id == *id))
        {
            let known: Vec<&str> = c.models.iter().map(|m| m.id.as_str()).collect();
            return Err(format!(
                "no model `{unknown}` in {}; it has: {}",
                cfg.origin,
                known.join(", ")
            ));
        }
        let models = c
            .models
            .iter()
            .filter(|m| overrides.models.is_empty() || overrides.models.contains(&m.id))
            .cloned()
            .collect();
        let mut recorded = Vec::new();
        if let Some(o) = &overrides.output {
            recorded.push(format!("output={}", o.display()));
        }
        if let Some(d) = overrides.device {
            recorded.push(format!("device={d}"));
        }
        if let Some(t) = &overrides.threads {
            recorded.push(format!("threads={t:?}"));
        }
        // A list is a sweep, like llama-bench's `-p 128,512 -n 64`.
        let mut speed = c.speed.clone();
        if !speed.points.is_empty()
            && (overrides.prompt_tokens.is_some() || overrides.gen_tokens.is_some())
        {
            return Err(format!(
                "{} lists its speed points (speed.points); -p/--prompt-tokens and -n/--gen-tokens replace a grid of \
                 lengths, not a list of pairs: edit speed.points in a copy of the config instead",
                cfg.origin
            ));
        }
        for (name, given, field, bound) in [
            (
                "prompt_tokens",
                &overrides.prompt_tokens,
                &mut speed.prompt_tokens,
                limits::PROMPT_TOKENS,
            ),
            (
                "gen_tokens",
                &overrides.gen_tokens,
                &mut speed.gen_tokens,
                limits::GEN_TOKENS,
            ),
        ] {
            if let Some(v) = given {
                bound.check_list(v, flag)?;
                recorded.push(format!("{name}={v:?}"));
                *field = v.clone();
            }
        }
        if let Some(r) = overrides.repetitions {
            limits::REPETITIONS.check(r, flag)?;
            recorded.push(format!("repetitions={r}"));
            speed.repetitions = r;
        }
        if !overrides.models.is_empty() {
            recorded.push(format!("models={}", overrides.models.join(",")));
        }
        let mut plan = Self {
            config: cfg.clone(),
            device: overrides.device.unwrap_or(c.run.device),
            models,
            threads,
            speed,
            output: overrides
                .output
                .clone()
                .unwrap_or_else(|| c.run.output.clone()),
            cache: overrides.cache.clone().or_else(|| c.run.cache.clone()),
            overrides: recorded,
            shard: None,
        };
        if let Some(s) = overrides.shard {
            let mine = crate::shard::assign(cfg, &plan.all_runs(), s)?;
            plan.overrides
                .push(format!("shard={}/{}", s.index, s.count));
            plan.shard = Some((s, mine));
        }
        Ok(plan)
    }

    /// Every (model id, thread count) of the whole plan, shards or not, in the order measured.
    pub fn all_runs(&self) -> Vec<(&str, usize)> {
        self.models
            .iter()
            .flat_map(|m| self.threads.iter().map(move |&t| (m.id.as_str(), t)))
            .collect()
    }

    /// Whether this bench measures `model` at `threads`: always, unless a shard leaves it to another.
    pub fn measures(&self, model: &str, threads: usize) -> bool {
        self.shard.is_none() || self.runs().contains(&(model, threads))
    }

    /// SHA-256 of what the whole plan measures: the config, its lock and every override that changes what is
    /// measured, except the shard. The shards of one plan share it; `meekbench merge` joins only those.
    pub fn sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.config.sha256.as_bytes());
        h.update([0]);
        // Resolved here, not only in the text: `threads = "auto"` is each machine's core count.
        h.update(format!("device={} threads={:?}", self.device, self.threads).as_bytes());
        h.update([0]);
        if let Some(l) = &self.config.lock {
            h.update(l.text.as_bytes());
        }
        for o in Self::measuring_overrides(&self.overrides) {
            if !o.starts_with("shard=") {
                h.update([0]);
                h.update(o.as_bytes());
            }
        }
        format!("{:x}", h.finalize())
    }

    /// Accuracy suites, answered in every run (the config's: no flag changes them).
    pub fn suites(&self) -> &[SuiteSpec] {
        &self.config.config.suites
    }

    /// Perplexity workloads, scored in every run after the suites (the config's).
    pub fn perplexity(&self) -> &[PerplexitySpec] {
        &self.config.config.perplexity
    }

    /// Energy sources, prices and baseline (the config's).
    pub fn energy(&self) -> &EnergySection {
        &self.config.config.energy
    }

    /// Every (model id, thread count) this bench measures (its shard's, with `--shard`), in the order measured; a
    /// result file keeps its runs in this order.
    pub fn runs(&self) -> Vec<(&str, usize)> {
        let all = self.all_runs();
        match &self.shard {
            None => all,
            Some((_, mine)) => mine.iter().map(|&i| all[i]).collect(),
        }
    }

    /// The overrides that change what is measured: all but the output directory, which is the result file's own.
    pub fn measuring_overrides(recorded: &[String]) -> Vec<String> {
        recorded
            .iter()
            .filter(|o| !o.starts_with("output="))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(threads: &str) -> LoadedConfig {
        crate::parse(
            &format!(
                r#"
[run]
threads = {threads}
[speed]
prompt_tokens = [16]
gen_tokens = [8]
[[models]]
id = "a"
file = "a.gguf"
sha256 = "B179C9523D0E6A0F98A330C7562B682750A6F8C8C15E5BC70EA373728110DB53"
sources = [{{ path = "/tmp/a.gguf" }}]
[[models]]
id = "b"
file = "b.gguf"
sha256 = "B179C9523D0E6A0F98A330C7562B682750A6F8C8C15E5BC70EA373728110DB53"
sources = [{{ path = "/tmp/b.gguf" }}]
"#
            ),
            "t.toml",
        )
        .unwrap()
    }

    #[test]
    fn the_config_alone_gives_its_own_plan() {
        let plan = Plan::new(&config("[1, 2]"), &Overrides::default(), || 99).unwrap();
        assert_eq!(plan.runs(), [("a", 1), ("a", 2), ("b", 1), ("b", 2)]);
        assert_eq!(plan.speed.points(), [(16, 8)]);
        assert!(plan.overrides.is_empty());
        let auto = Plan::new(&config("\"auto\""), &Overrides::default(), || 3).unwrap();
        assert_eq!(auto.threads, [3]);
    }

    #[test]
    fn flags_override_and_are_recorded_in_order() {
        let o = Overrides {
            output: Some("out".into()),
            threads: Some(vec![4]),
            prompt_tokens: Some(vec![32, 64]),
            repetitions: Some(2),
            models: vec!["b".into()],
            ..Overrides::default()
        };
        let plan = Plan::new(&config("[1]"), &o, || 1).unwrap();
        assert_eq!(plan.runs(), [("b", 4)]);
        assert_eq!(plan.speed.points(), [(32, 8), (64, 8)]);
        assert_eq!(plan.speed.repetitions, 2);
        assert_eq!(plan.output, PathBuf::from("out"));
        assert_eq!(
            plan.overrides,
            [
                "output=out",
                "threads=[4]",
                "prompt_tokens=[32, 64]",
                "repetitions=2",
                "models=b"
            ]
        );
        assert_eq!(
            Plan::measuring_overrides(&plan.overrides),
            plan.overrides[1..]
        );
    }

    #[test]
    fn out_of_bounds_flags_and_unknown_models_are_refused_by_name() {
        let cfg = config("[1]");
        let bad = |o: Overrides| Plan::new(&cfg, &o, || 1).unwrap_err();
        let e = bad(Overrides {
            threads: Some(vec![0]),
            ..Overrides::default()
        });
        assert!(e.contains("--threads"), "{e}");
        let e = bad(Overrides {
            repetitions: Some(0),
            ..Overrides::default()
        });
        assert!(e.contains("--repetitions"), "{e}");
        let e = bad(Overrides {
            models: vec!["c".into()],
            ..Overrides::default()
        });
        assert!(e.contains("no model `c` in t.toml; it has: a, b"), "{e}");
    }
}
