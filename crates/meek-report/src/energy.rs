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
    /// Dollars per million generated tokens.
    pub usd_per_million_tokens: Option<f64>,
    /// Dollars per correct answer.
    pub usd_per_correct: Option<f64>,
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
        // Per-answer figures may sit in the energy object or in the run's first accuracy suite.
        let suite = run
            .get("accuracy")
            .and_then(|a| a.get(0))
            .and_then(|s| s.get("energy").or(Some(s)));
        let either =
            |keys: &[&str]| number(e, keys).or_else(|| suite.and_then(|s| number(s, keys)));
        let out = Self {
            status: text(e, "status"),
            label: text(e, "label"),
            joules_per_prefill_token: number(e, &["joules_per_prefill_token"]),
            joules_per_decode_token: number(e, &["joules_per_decode_token", "joules_per_token"]),
            joules_per_correct: either(&["joules_per_correct", "joules_per_correct_answer"]),
            watts: number(e, &["watts", "average_watts", "mean_watts"]),
            usd_per_million_tokens: number(e, &["usd_per_million_tokens", "usd_per_1m_tokens"]),
            usd_per_correct: either(&["usd_per_correct", "usd_per_correct_answer"]),
        };
        (out != Self::default()).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        assert_eq!(e.usd_per_correct, None, "a negative cost is not a cost");
        assert_eq!(Energy::from_run(&json!({"threads": 1})), None);
        assert_eq!(Energy::from_run(&json!({"energy": "lots"})), None);
        assert_eq!(Energy::from_run(&json!({"energy": {}})), None);
    }
}
