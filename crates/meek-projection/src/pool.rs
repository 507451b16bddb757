//! One entry per model file across result files: runs of the same file (by SHA-256) on several machines or thread
//! counts pool their answers on one suite, so that a model counts once in the calibration and the trend test.
//!
//! Result files are untrusted and may hold any number of runs claiming any counts: models are found through a map
//! (not a scan per run), counts add up saturating, and more than [`MAX_MODELS`] distinct models are refused with
//! the reason rather than fitted for hours.

use std::collections::HashMap;

use meek_schema::{BenchResult, ModelRun, SuiteResult};

/// Most distinct model files one calibration or trend test takes.
pub const MAX_MODELS: usize = 1000;

/// One model file's runs on the suite, with their answers pooled.
#[derive(Debug)]
pub struct Pooled<'a> {
    /// Every run of the file on the suite: its result file's name, the run, its suite entry.
    pub runs: Vec<(&'a str, &'a ModelRun, &'a SuiteResult)>,
    /// Correct answers (flexible extractor), each run's at most its item count.
    pub correct: usize,
    /// Items answered.
    pub n: usize,
}

impl Pooled<'_> {
    /// The pooled accuracy.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.n.max(1) as f64
    }
}

/// The runs that `keep` accepts, pooled per model file on the first suite among them (runs of other suites are
/// left out: their accuracies do not compare). Returns the models in the order first seen, the suite, the runs
/// used, and `Err` with the reason past [`MAX_MODELS`].
pub fn by_model<'a>(
    results: &'a [(String, BenchResult)],
    keep: impl Fn(&ModelRun) -> bool,
) -> Result<(Vec<Pooled<'a>>, Option<String>, usize), String> {
    let mut suite: Option<String> = None;
    let mut index: HashMap<&'a str, usize> = HashMap::new();
    let mut models: Vec<Pooled<'a>> = Vec::new();
    let mut runs = 0usize;
    for (file, r) in results {
        for run in &r.runs {
            let Some(s) = run.accuracy.first() else {
                continue;
            };
            if !keep(run) || s.flexible.n == 0 || suite.get_or_insert_with(|| s.key()) != &s.key() {
                continue;
            }
            let key = if run.model.sha256.is_empty() {
                run.model.id.as_str()
            } else {
                run.model.sha256.as_str()
            };
            let at = match index.get(key) {
                Some(&at) => at,
                None => {
                    if models.len() == MAX_MODELS {
                        return Err(format!(
                            "more than {MAX_MODELS} distinct model files; give at most {MAX_MODELS}"
                        ));
                    }
                    index.insert(key, models.len());
                    models.push(Pooled {
                        runs: Vec::new(),
                        correct: 0,
                        n: 0,
                    });
                    models.len() - 1
                }
            };
            let m = &mut models[at];
            m.runs.push((file.as_str(), run, s));
            m.correct = m
                .correct
                .saturating_add(s.flexible.correct.min(s.flexible.n));
            m.n = m.n.saturating_add(s.flexible.n);
            runs += 1;
        }
    }
    Ok((models, suite, runs))
}
