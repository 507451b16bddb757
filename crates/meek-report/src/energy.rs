//! Energy and cost figures of a run, read from the run's `energy` object when the file has one.
//!
//! They are looked up in the raw JSON rather than through typed fields, so reports read them from every layout
//! that carries them (a figure may be a plain number, a `{gross, net}` pair, of which the gross figure is used as
//! the anchors report it, or a summary with a `median`). A file without an `energy` object simply has no energy
//! columns; nothing is estimated here.

use serde::Serialize;
use serde_json::Value;

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

/// The `samples` of a summary object at `key`, when every one is a non-negative finite number.
fn samples(obj: &Value, key: &str) -> Vec<f64> {
    let Some(list) = obj
        .get(key)
        .and_then(|v| v.get("samples"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let v: Vec<f64> = list.iter().filter_map(Value::as_f64).collect();
    if v.len() == list.len() && v.iter().all(|x| x.is_finite() && *x >= 0.0) {
        v
    } else {
        Vec::new()
    }
}

/// A non-negative finite number at `key` of `obj`: a number, or the `gross`, `median` or `value` member of an
/// object there.
fn number(obj: &Value, keys: &[&str]) -> Option<f64> {
    keys.iter().find_map(|k| {
        let v = obj.get(k)?;
        let x = match v {
            Value::Number(n) => n.as_f64(),
            Value::Object(_) => ["gross", "median", "value"]
                .iter()
                .find_map(|inner| v.get(inner).and_then(Value::as_f64)),
            _ => None,
        }?;
        (x.is_finite() && x >= 0.0).then_some(x)
    })
}

fn text(obj: &Value, key: &str) -> Option<String> {
    obj.get(key)
        .and_then(Value::as_str)
        .map(|s| crate::escape::clip(s, 200))
}

impl Energy {
    /// The energy figures of one run (an element of a result file's `runs`), or `None` when it has none.
    pub fn from_run(run: &Value) -> Option<Self> {
        let e = run.get("energy")?;
        if !e.is_object() {
            return None;
        }
        // Per-answer figures may sit in the energy object (or its `cost`), or in the first accuracy suite's.
        let suite = run
            .get("accuracy")
            .and_then(|a| a.get(0))
            .and_then(|s| s.get("energy").or(Some(s)));
        let cost = e.get("cost").filter(|c| c.is_object());
        let either = |keys: &[&str]| {
            number(e, keys)
                .or_else(|| cost.and_then(|c| number(c, keys)))
                .or_else(|| suite.and_then(|s| number(s, keys)))
        };
        let points = run
            .get("speed")
            .and_then(Value::as_array)
            .map(|pts| {
                pts.iter()
                    .filter_map(|p| {
                        let pe = p.get("energy")?;
                        let n = |k: &str| p.get(k).and_then(Value::as_u64).map(|v| v as usize);
                        let point = PointEnergy {
                            n_prompt: n("n_prompt")?,
                            n_gen: n("n_gen")?,
                            joules_per_prefill_token: samples(pe, "joules_per_prefill_token"),
                            joules_per_decode_token: samples(pe, "joules_per_decode_token"),
                        };
                        (!point.joules_per_prefill_token.is_empty()
                            || !point.joules_per_decode_token.is_empty())
                        .then_some(point)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let out = Self {
            status: text(e, "status"),
            label: text(e, "label"),
            joules_per_prefill_token: number(e, &["joules_per_prefill_token"]),
            joules_per_decode_token: number(e, &["joules_per_decode_token", "joules_per_token"]),
            joules_per_correct: either(&["joules_per_correct_answer", "joules_per_correct"]),
            watts: number(e, &["average_watts", "watts", "mean_watts"]),
            cost_per_million_tokens: either(&[
                "per_million_decode_tokens",
                "usd_per_million_tokens",
            ]),
            cost_per_correct: either(&[
                "per_correct_answer",
                "cost_per_correct_answer",
                "usd_per_correct",
            ]),
            currency: cost.and_then(|c| text(c, "currency")),
            points,
        };
        (out != Self::default()).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_run_energy_layout() {
        // The layout meekbench writes: run-level figures, a cost object, per-point summaries and per-suite
        // figures.
        let run = json!({
            "speed": [{"n_prompt": 128, "n_gen": 64, "energy": {
                "status": "estimated", "label": "x",
                "joules_per_decode_token": {"median": 0.5, "samples": [0.4, 0.5, 0.6]},
                "joules_per_prefill_token": {"median": 0.1, "samples": [0.1, -1.0]}
            }}],
            "accuracy": [{"suite": "s", "energy": {"joules_per_correct_answer": 55.0, "cost_per_correct_answer": 2e-6}}],
            "energy": {
                "status": "estimated", "label": "estimated:tdp-model(tdp=8W)",
                "joules_per_decode_token": 0.5, "average_watts": 7.5,
                "cost": {"currency": "EUR", "price_per_kwh": 0.3, "per_million_decode_tokens": 0.04}
            }
        });
        let e = Energy::from_run(&run).unwrap();
        assert_eq!(e.joules_per_correct, Some(55.0));
        assert_eq!(e.cost_per_correct, Some(2e-6));
        assert_eq!(e.cost_per_million_tokens, Some(0.04));
        assert_eq!(e.currency.as_deref(), Some("EUR"));
        assert_eq!(e.watts, Some(7.5));
        assert_eq!(e.points.len(), 1);
        assert_eq!(e.points[0].joules_per_decode_token, [0.4, 0.5, 0.6]);
        assert!(
            e.points[0].joules_per_prefill_token.is_empty(),
            "a negative sample voids the list"
        );
    }

    #[test]
    fn reads_numbers_pairs_and_summaries() {
        let run = json!({"energy": {
            "status": "estimated", "label": "estimated:tdp-model(tdp=85W)",
            "joules_per_token": {"gross": 0.41, "net": 0.29},
            "joules_per_prefill_token": {"median": 0.02},
            "watts": 12.5, "usd_per_correct": -1.0
        }, "accuracy": [{"suite": "s", "joules_per_correct": 30.0}]});
        let e = Energy::from_run(&run).unwrap();
        assert_eq!(e.status.as_deref(), Some("estimated"));
        assert_eq!(e.joules_per_decode_token, Some(0.41));
        assert_eq!(e.joules_per_prefill_token, Some(0.02));
        assert_eq!(e.joules_per_correct, Some(30.0));
        assert_eq!(e.watts, Some(12.5));
        assert_eq!(e.cost_per_correct, None, "a negative cost is not a cost");
        assert_eq!(Energy::from_run(&json!({"threads": 1})), None);
        assert_eq!(Energy::from_run(&json!({"energy": "lots"})), None);
        assert_eq!(Energy::from_run(&json!({"energy": {}})), None);
    }
}
