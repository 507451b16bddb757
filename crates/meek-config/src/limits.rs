//! Every count that comes from input and sizes memory, threads or work, bounded in one place.
//!
//! A config or a command line is untrusted: `repetitions = 1000000000000` once asked for 240 TB of timing
//! buffers, `--threads 100000` started ~16k threads before the process aborted. Each bound here is far beyond any
//! sensible bench and far below what breaks a process; the config and the command line check the same [`Bound`],
//! before anything is fetched or loaded, and the error names the key or flag with the range.

/// The range a count may take, named as in the config and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// Config key, e.g. `speed.repetitions`.
    pub key: &'static str,
    /// Command-line flag, when there is one, e.g. `--repetitions`.
    pub flag: Option<&'static str>,
    /// Smallest value.
    pub min: usize,
    /// Largest value.
    pub max: usize,
    /// Why the bound is there, or what to do instead, shown with a refusal.
    pub why: &'static str,
}

/// Where a count came from, to name it in an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A config file key.
    Config,
    /// A command-line flag.
    Flag,
}

impl Bound {
    /// Checks `v`; the error names the key (or flag) and the range.
    pub fn check(&self, v: usize, origin: Origin) -> Result<usize, String> {
        if (self.min..=self.max).contains(&v) {
            return Ok(v);
        }
        Err(format!(
            "{} = {v} is out of range; it must be from {} to {} ({})",
            self.name(origin),
            self.min,
            self.max,
            self.why
        ))
    }

    /// Checks every value of a list, and its length against [`MAX_SWEEP`].
    pub fn check_list(&self, v: &[usize], origin: Origin) -> Result<(), String> {
        if v.is_empty() {
            return Err(format!(
                "{} is empty; give at least one value",
                self.name(origin)
            ));
        }
        if v.len() > MAX_SWEEP {
            return Err(format!(
                "{} lists {} values; a sweep takes at most {MAX_SWEEP}",
                self.name(origin),
                v.len()
            ));
        }
        v.iter().try_for_each(|&x| self.check(x, origin).map(drop))
    }

    fn name(&self, origin: Origin) -> &'static str {
        match (origin, self.flag) {
            (Origin::Flag, Some(f)) => f,
            _ => self.key,
        }
    }
}

/// The most values one swept list (thread counts, prompt or generation lengths, a suite's budgets) may hold.
pub const MAX_SWEEP: usize = 64;

/// Thread counts of `run.threads` / `--threads`.
pub const THREADS: Bound = Bound {
    key: "run.threads",
    flag: Some("--threads"),
    min: 1,
    max: 1024,
    why: "one thread per core is the usual choice",
};

/// Prompt lengths, tokens.
pub const PROMPT_TOKENS: Bound = Bound {
    key: "speed.prompt_tokens",
    flag: Some("--prompt-tokens"),
    min: 1,
    max: 1 << 20,
    why: "a prompt longer than the model's context is refused at load anyway",
};

/// Generated tokens per repetition: the first comes from prefill, the decode rate needs one more.
pub const GEN_TOKENS: Bound = Bound {
    key: "speed.gen_tokens",
    flag: Some("--gen-tokens"),
    min: 2,
    max: 1 << 20,
    why: "the first generated token comes from prefill; a decode rate needs one more",
};

/// Unmeasured runs per workload point.
pub const WARMUP: Bound = Bound {
    key: "speed.warmup",
    flag: None,
    min: 0,
    max: 1000,
    why: "one or two warm-up runs are enough",
};

/// Measured runs per workload point.
pub const REPETITIONS: Bound = Bound {
    key: "speed.repetitions",
    flag: Some("--repetitions"),
    min: 1,
    max: 10_000,
    why: "5 or more gives a useful spread",
};

/// Items per (family, step count) of a generated suite.
pub const ITEMS_PER_LEVEL: Bound = Bound {
    key: "suites[].items_per_level",
    flag: None,
    min: 1,
    max: 10_000,
    why: "each item is a generation of up to max_new_tokens",
};

/// Dependent steps of a generated problem.
pub const STEPS: Bound = Bound {
    key: "suites[].steps",
    flag: None,
    min: 1,
    max: 64,
    why: "each step makes the problem longer",
};

/// Worked examples before each question.
pub const SHOTS: Bound = Bound {
    key: "suites[].shots",
    flag: None,
    min: 0,
    max: 64,
    why: "lm-evaluation-harness uses 0 to 25; every shot lengthens every prompt",
};

/// Token budget per answer.
pub const MAX_NEW_TOKENS: Bound = Bound {
    key: "suites[].max_new_tokens",
    flag: None,
    min: 1,
    max: 1 << 17,
    why: "a reasoning model's longest thinking budgets are ~32k tokens",
};

/// Thinking tokens per answer before budget forcing closes the thought.
pub const MAX_THINKING_TOKENS: Bound = Bound {
    key: "suites[].max_thinking_tokens",
    flag: None,
    min: 1,
    max: 1 << 17,
    why: "reasoning models' published thinking budgets reach ~32k tokens",
};

/// Items used of a JSONL suite.
pub const LIMIT: Bound = Bound {
    key: "suites[].limit",
    flag: None,
    min: 1,
    max: 1_000_000,
    why: "leave `limit` out to use every item",
};

/// Models in one config.
pub const MODELS: Bound = Bound {
    key: "models",
    flag: None,
    min: 1,
    max: 1000,
    why: "split a larger bench over several configs",
};

/// Sources of one model, parts of one `parts` source, suites and families of one config.
pub const LIST: Bound = Bound {
    key: "list",
    flag: None,
    min: 0,
    max: 256,
    why: "no real config needs more",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_name_the_key_or_flag_and_the_range() {
        let e = REPETITIONS
            .check(1_000_000_000_000, Origin::Config)
            .unwrap_err();
        assert!(
            e.contains("speed.repetitions") && e.contains("10000"),
            "{e}"
        );
        let e = THREADS.check(100_000, Origin::Flag).unwrap_err();
        assert!(e.starts_with("--threads = 100000"), "{e}");
        assert_eq!(THREADS.check(4, Origin::Flag), Ok(4));
        assert!(GEN_TOKENS.check(1, Origin::Flag).is_err());
        assert!(
            THREADS
                .check_list(&vec![1; MAX_SWEEP + 1], Origin::Config)
                .unwrap_err()
                .contains("at most")
        );
        assert!(THREADS.check_list(&[], Origin::Flag).is_err());
    }
}
