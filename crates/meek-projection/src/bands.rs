//! Uncertainty bands by Monte Carlo: each draw takes every uncertain parameter from its stated range at once
//! (algorithmic halving time, hardware growth, investment growth, the loss exponent, the accuracy curve), and a
//! band is the 2.5th to 97.5th percentile of the draws at each time. Corners of a range box (every end of every
//! range) overstate how far the parameters move together and miss what lies between; a percentile band says how
//! likely a value is under the stated ranges.
//!
//! The draws are uniform in halving time, hardware growth, gamma and the curve's midpoint and slope, and
//! log-uniform in investment growth (a growth factor). After a calibration the curve's parameters are drawn
//! together, from the bootstrap's own rounds, which keeps their correlation (a steeper curve has its midpoint
//! elsewhere). The seed is fixed so a report is reproducible.

use serde::Serialize;

use crate::config::Config;
use crate::model::{AccuracyCurve, Scenario, Schedule};

/// One draw of the uncertain parameters.
#[derive(Debug, Clone)]
pub struct Draw {
    /// The scenario with this draw's growth rates, investment and loss exponent.
    pub scenario: Scenario,
    /// The accuracy curve with this draw's midpoint and slope.
    pub curve: AccuracyCurve,
}

/// The ranges the draws were taken from, for the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ranges {
    /// Draws.
    pub draws: usize,
    /// Algorithmic halving time, months.
    pub halving_months: [f64; 2],
    /// Hardware growth per year.
    pub g_h: [f64; 2],
    /// Investment growth per year (only where the schedule is one constant rate).
    pub g_i: Option<[f64; 2]>,
    /// Loss exponent.
    pub gamma: [f64; 2],
    /// Accuracy curve midpoint and slope, and where the ranges come from.
    pub x0: [f64; 2],
    /// Slope.
    pub k: [f64; 2],
    /// `assumed ([uncertainty])` or `bootstrap of the calibration`.
    pub curve_basis: String,
}

/// Draws for `base` and `curve`: the accuracy ranges are the calibration's bootstrap intervals where given, else
/// `[uncertainty]`'s.
pub fn draws(
    cfg: &Config,
    base: &Scenario,
    curve: AccuracyCurve,
    calibrated: Option<&crate::fit::Intervals>,
) -> (Vec<Draw>, Ranges) {
    let u = &cfg.uncertainty;
    let (x0, k, curve_basis) = match calibrated {
        Some(i) => (
            i.x0,
            i.k,
            "bootstrap intervals of the calibration".to_string(),
        ),
        None => (
            u.accuracy_x0,
            u.accuracy_k,
            "assumed ([uncertainty] accuracy_x0, accuracy_k)".to_string(),
        ),
    };
    let g_i = base.schedule.constant_growth().map(|_| u.g_i);
    let ranges = Ranges {
        draws: u.draws,
        halving_months: u.halving_months,
        g_h: u.g_h,
        g_i,
        gamma: u.gamma,
        x0,
        k,
        curve_basis,
    };
    let mut rng = meek_stats::SplitMix64::new(0x6261_6e64);
    let joint = calibrated
        .map(|i| i.draws.as_slice())
        .filter(|d| !d.is_empty());
    let out = (0..u.draws)
        .map(|_| {
            let mut within = |[lo, hi]: [f64; 2]| lo + (hi - lo) * rng.unit();
            let g_alg = crate::growth_from_halving(within(u.halving_months));
            let g_h = within(u.g_h);
            let gamma = within(u.gamma);
            let schedule = match g_i {
                Some([lo, hi]) => Schedule::constant(within([lo.ln(), hi.ln()]).exp()),
                None => base.schedule.clone(),
            };
            let curve = match joint {
                Some(d) => {
                    let [lm, x0, k] = d[rng.below(d.len())];
                    AccuracyCurve { lm, x0, k, ..curve }
                }
                None => AccuracyCurve {
                    x0: within(x0),
                    k: within(k),
                    ..curve
                },
            };
            Draw {
                scenario: Scenario {
                    g_alg,
                    g_h,
                    schedule,
                    law: crate::model::LossLaw { gamma, ..base.law },
                    ..base.clone()
                },
                curve,
            }
        })
        .collect();
    (out, ranges)
}

/// The 2.5th and 97.5th percentiles of `f` over the draws at each time (non-finite values left out).
pub fn band(draws: &[Draw], t: &[f64], f: impl Fn(&Draw, f64) -> f64) -> (Vec<f64>, Vec<f64>) {
    let mut lo = Vec::with_capacity(t.len());
    let mut hi = Vec::with_capacity(t.len());
    let mut values = Vec::with_capacity(draws.len());
    for &x in t {
        values.clear();
        values.extend(draws.iter().map(|d| f(d, x)).filter(|v| v.is_finite()));
        let [l, h] = central95(&mut values);
        lo.push(l);
        hi.push(h);
    }
    (lo, hi)
}

/// The 2.5th and 97.5th percentiles of `values` (nearest rank; sorted in place), NaN for none.
pub fn central95(values: &mut [f64]) -> [f64; 2] {
    if values.is_empty() {
        return [f64::NAN; 2];
    }
    values.sort_by(f64::total_cmp);
    let at =
        |q: f64| values[((q * (values.len() - 1) as f64).round() as usize).min(values.len() - 1)];
    [at(0.025), at(0.975)]
}
