//! The energy and cost columns of a run in the reports (compare rows, leaderboard columns): the few figures a
//! report shows of a run's typed energy record ([`meek_schema::RunEnergy`], with its [`meek_schema::EnergyCost`]
//! and per-point [`meek_schema::PointEnergy`]), and the per-answer figures of its first suite's
//! [`meek_schema::SuiteEnergy`] where the run's record has none. Files are checked against the result schema
//! before they get here, so every figure is read from the one field the schema gives it; a figure that is not a
//! non-negative finite number is left out. A run without an energy record has no energy columns; nothing is
//! estimated here.

use meek_schema::{EnergyStatus, ModelRun, Summary};
use serde::Serialize;

use meek_render::escape::clip;

/// What a run says about its energy and cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Energy {
    /// `measured`, `estimated` or `proxy-only`.
    pub status: Option<String>,
    /// Every source and its provenance, e.g. `measured:rapl-powercap:package-0`.
    pub label: Option<String>,
    /// Joules per prefill token.
    pub joules_per_prefill_token: Option<f64>,
    /// Joules per generated token.
    pub joules_per_decode_token: Option<f64>,
    /// Joules per correct answer.
    pub joules_per_correct: Option<f64>,
    /// Average power, watts.
    pub watts: Option<f64>,
    /// Electricity cost per million generated tokens, in `currency`.
    pub cost_per_million_tokens: Option<f64>,
    /// Electricity cost per correct answer, in `currency`.
    pub cost_per_correct: Option<f64>,
    /// Currency of the cost figures (`USD` when the file does not say).
    pub currency: Option<String>,
    /// Per-repetition joules per token at each workload point, when the file has them.
    pub points: Vec<PointEnergy>,
}

/// Joules per token of each repetition at one workload point.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PointEnergy {
    /// Prompt tokens.
    pub n_prompt: usize,
    /// Generated tokens.
    pub n_gen: usize,
    /// Joules per prompt token, one per repetition.
    pub joules_per_prefill_token: Vec<f64>,
    /// Joules per generated token, one per repetition.
    pub joules_per_decode_token: Vec<f64>,
}

/// The name a result file gives `status` (`measured`, `estimated`, `proxy-only`).
fn status_name(status: EnergyStatus) -> &'static str {
    match status {
        EnergyStatus::Measured => "measured",
        EnergyStatus::Estimated => "estimated",
        EnergyStatus::ProxyOnly => "proxy-only",
    }
}

/// `x` when it is a non-negative finite number.
fn figure(x: Option<f64>) -> Option<f64> {
    x.filter(|x| x.is_finite() && *x >= 0.0)
}

/// The samples of `summary`, when every one is a non-negative finite number (else none).
fn samples(summary: Option<&Summary>) -> Vec<f64> {
    match summary {
        Some(s) if s.samples.iter().all(|x| x.is_finite() && *x >= 0.0) => s.samples.clone(),
        _ => Vec::new(),
    }
}

impl Energy {
    /// The energy columns of one run, or `None` when it has no energy record.
    pub fn from_run(run: &ModelRun) -> Option<Self> {
        let e = run.energy.as_ref()?;
        let cost = e.cost.as_ref();
        // Per-answer figures of the first suite, where the run's record has none.
        let suite = run.accuracy.first().and_then(|s| s.energy.as_ref());
        let points = run
            .speed
            .iter()
            .filter_map(|p| {
                let pe = p.energy.as_ref()?;
                let point = PointEnergy {
                    n_prompt: p.n_prompt,
                    n_gen: p.n_gen,
                    joules_per_prefill_token: samples(pe.joules_per_prefill_token.as_ref()),
                    joules_per_decode_token: samples(pe.joules_per_decode_token.as_ref()),
                };
                (!point.joules_per_prefill_token.is_empty()
                    || !point.joules_per_decode_token.is_empty())
                .then_some(point)
            })
            .collect();
        Some(Self {
            status: Some(status_name(e.status).to_string()),
            label: Some(clip(&e.label, 200)),
            joules_per_prefill_token: figure(e.joules_per_prefill_token),
            joules_per_decode_token: figure(e.joules_per_decode_token),
            joules_per_correct: figure(e.joules_per_correct_answer)
                .or_else(|| figure(suite?.joules_per_correct_answer)),
            watts: figure(e.average_watts),
            cost_per_million_tokens: figure(cost.and_then(|c| c.per_million_decode_tokens)),
            cost_per_correct: figure(cost.and_then(|c| c.per_correct_answer))
                .or_else(|| figure(suite?.cost_per_correct_answer)),
            currency: cost.map(|c| clip(&c.currency, 200)),
            points,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The first run of the machine-b fixture (no energy record) with `energy`, and `suite_energy` on its
    /// first suite.
    fn run(energy: serde_json::Value, suite_energy: Option<serde_json::Value>) -> ModelRun {
        let r = meek_schema::from_json(include_str!("../tests/fixtures/machine-b.json")).unwrap();
        let mut run = r.runs[0].clone();
        assert_eq!(Energy::from_run(&run), None, "no energy record, no columns");
        run.energy = Some(serde_json::from_value(energy).unwrap());
        run.accuracy[0].energy = suite_energy.map(|s| serde_json::from_value(s).unwrap());
        run
    }

    fn record(extra: serde_json::Value) -> serde_json::Value {
        let mut e = json!({
            "status": "estimated", "label": "estimated:tdp-model(tdp=8W)",
            "scope": ["cpu-package"], "excludes": [], "components": [], "seconds": 10.0,
            "proxies": {"flops_per_token": 2.7e8, "attention_flops_per_token_per_position": 1.8e4,
                        "non_embedding_params": 1000, "weight_bytes_per_token": 1000}
        });
        e.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        e
    }

    fn point_energy(decode: &[f64], prefill: &[f64]) -> meek_schema::PointEnergy {
        let summary = |v: &[f64]| json!({"median": 0.5, "mean": 0.5, "stddev": 0.0, "min": 0.0, "max": 1.0, "samples": v});
        serde_json::from_value(json!({
            "status": "estimated", "label": "x",
            "joules_per_decode_token": summary(decode),
            "joules_per_prefill_token": summary(prefill),
            "cpu_seconds_per_prefill_token": summary(&[0.1]),
            "cpu_seconds_per_decode_token": summary(&[0.1]),
            "flops_per_prefill_token": 1.0, "flops_per_decode_token": 1.0
        }))
        .unwrap()
    }

    #[test]
    fn reads_the_run_record_its_cost_points_and_first_suite() {
        let mut run = run(
            record(json!({
                "joules_per_decode_token": 0.5, "joules_per_prefill_token": 0.02, "average_watts": 7.5,
                "cost": {"currency": "EUR", "price_per_kwh": 0.3, "per_million_decode_tokens": 0.04}
            })),
            Some(json!({
                "status": "estimated", "label": "x", "cpu_seconds_per_answer": 0.1,
                "joules_per_correct_answer": 55.0, "cost_per_correct_answer": 2e-6
            })),
        );
        run.speed[0].energy = Some(point_energy(&[0.4, 0.5, 0.6], &[0.1, -1.0]));
        let e = Energy::from_run(&run).unwrap();
        assert_eq!(e.status.as_deref(), Some("estimated"));
        assert_eq!(e.label.as_deref(), Some("estimated:tdp-model(tdp=8W)"));
        assert_eq!(e.joules_per_decode_token, Some(0.5));
        assert_eq!(e.joules_per_prefill_token, Some(0.02));
        assert_eq!(
            e.joules_per_correct,
            Some(55.0),
            "the suite's, as the run has none"
        );
        assert_eq!(e.cost_per_correct, Some(2e-6));
        assert_eq!(e.cost_per_million_tokens, Some(0.04));
        assert_eq!(e.currency.as_deref(), Some("EUR"));
        assert_eq!(e.watts, Some(7.5));
        assert_eq!(e.points.len(), 1);
        assert_eq!((e.points[0].n_prompt, e.points[0].n_gen), (128, 64));
        assert_eq!(e.points[0].joules_per_decode_token, [0.4, 0.5, 0.6]);
        assert!(
            e.points[0].joules_per_prefill_token.is_empty(),
            "a negative sample voids the list"
        );
    }

    #[test]
    fn run_figures_come_first_and_negative_figures_are_left_out() {
        let suite = json!({
            "status": "measured", "label": "x", "cpu_seconds_per_answer": 0.1,
            "joules_per_correct_answer": 55.0, "cost_per_correct_answer": -2e-6
        });
        let e = Energy::from_run(&run(
            record(json!({
                "status": "proxy-only", "joules_per_correct_answer": 30.0, "joules_per_decode_token": -0.4,
                "cost": {"currency": "USD", "price_per_kwh": 0.3, "per_correct_answer": -1.0}
            })),
            Some(suite),
        ))
        .unwrap();
        assert_eq!(e.status.as_deref(), Some("proxy-only"));
        assert_eq!(
            e.joules_per_correct,
            Some(30.0),
            "the run's own figure first"
        );
        assert_eq!(
            e.joules_per_decode_token, None,
            "a negative figure is not a figure"
        );
        assert_eq!(e.cost_per_correct, None, "a negative cost is not a cost");
        assert_eq!(e.cost_per_million_tokens, None);
        assert!(e.points.is_empty());
        // A record with no figures still gives its status and label (the columns say what was tried).
        let e = Energy::from_run(&run(record(json!({})), None)).unwrap();
        assert_eq!(
            (e.status.as_deref(), e.watts, e.currency),
            (Some("estimated"), None, None)
        );
    }
}
