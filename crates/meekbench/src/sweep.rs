//! The test-time-compute curve printed at the end of a bench whose suites sweep their budgets: for each model and
//! swept suite, accuracy (with its interval) against what an answer cost at each budget, so the trade the study's
//! argument about reasoning models turns on is read off one table.

use meek_schema::{BenchResult, SuiteResult};

use crate::summary::joules;

/// One table per (model, thread count, swept suite), budgets in the order measured; empty without sweeps.
pub fn curves(r: &BenchResult) -> String {
    let mut out = String::new();
    for run in &r.runs {
        let mut names: Vec<&str> = Vec::new();
        for a in run.accuracy.iter().filter(|a| a.sweep) {
            if !names.contains(&a.suite.as_str()) {
                names.push(&a.suite);
            }
        }
        for name in names {
            let entries: Vec<&SuiteResult> = run
                .accuracy
                .iter()
                .filter(|a| a.sweep && a.suite == name)
                .collect();
            out += &format!(
                "\naccuracy against budget: {} t={} suite {name} (flexible, 95% Wilson intervals)\n",
                run.model.id, run.threads
            );
            out += &format!(
                "  {:<24} {:>17} {:>10} {:>10} {:>16} {:>8}\n",
                "budget", "flexible", "tokens/ans", "s/ans", "J/ans", "forced"
            );
            for a in entries {
                let j = a.energy.as_ref().map_or_else(
                    || "-".to_string(),
                    |e| joules(e.joules_per_answer, e.status, "J"),
                );
                let acc = format!(
                    "{:.1}% [{:.0}-{:.0}]",
                    100.0 * a.flexible.accuracy,
                    100.0 * a.flexible.ci95[0],
                    100.0 * a.flexible.ci95[1]
                );
                out += &format!(
                    "  {:<24} {:>17} {:>10.1} {:>10.2} {:>16} {:>8}\n",
                    a.budget_label(),
                    acc,
                    a.mean_generated_tokens,
                    a.seconds_per_answer,
                    j,
                    a.thinking_forced.unwrap_or(0)
                );
            }
        }
    }
    out
}
