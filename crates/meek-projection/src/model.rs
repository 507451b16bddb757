//! The equations of the study (Gundlach, Lynch, Thompson 2025, arXiv 2507.07931), sections 1 to 6 of
//! `shared/docs/projection-model.md`. Time is in abstract years from the start; compute in FLOP; loss in nats/token.

use serde::{Deserialize, Serialize};

/// Loss as a power law in effective training compute: `L(C) = A C^-gamma + L0`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossLaw {
    /// Scale `A`.
    pub a: f64,
    /// Exponent `gamma` (Chinchilla: alpha*beta/(alpha+beta)).
    pub gamma: f64,
    /// Irreducible loss `L0`.
    pub l0: f64,
}

impl LossLaw {
    /// `L(C)`.
    pub fn loss(&self, c: f64) -> f64 {
        self.a * c.powf(-self.gamma) + self.l0
    }

    /// The compute that reaches loss `l` (requires `l > L0`).
    pub fn compute_for(&self, l: f64) -> Option<f64> {
        (l > self.l0).then(|| ((l - self.l0) / self.a).powf(-1.0 / self.gamma))
    }
}

/// One piece of a spending schedule: the frontier's spending grows by `growth` per year until `until` (years from
/// the start), or forever when `until` is absent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// Growth factor per year (> 0).
    pub growth: f64,
    /// End of the segment, years from the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<f64>,
}

/// Piecewise-exponential spending growth: `ln S(t)` is the integral of `ln growth` over `[0, t]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule(pub Vec<Segment>);

impl Schedule {
    /// Constant growth forever.
    pub fn constant(growth: f64) -> Self {
        Self(vec![Segment {
            growth,
            until: None,
        }])
    }

    /// `ln S(t)`, spending at `t` relative to the start.
    pub fn ln_factor(&self, t: f64) -> f64 {
        let mut start = 0.0;
        let mut ln = 0.0;
        for seg in &self.0 {
            let end = seg.until.unwrap_or(f64::INFINITY);
            if t <= start {
                break;
            }
            ln += (t.min(end) - start) * seg.growth.ln();
            start = end;
        }
        // Past the last bounded segment spending stays flat.
        ln
    }

    /// The growth factor when the schedule is one constant segment.
    pub fn constant_growth(&self) -> Option<f64> {
        match self.0.as_slice() {
            [
                Segment {
                    growth,
                    until: None,
                },
            ] => Some(*growth),
            _ => None,
        }
    }
}

/// Everything the meek-versus-frontier comparison needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Loss law.
    pub law: LossLaw,
    /// Meek developer's budget in dollars.
    pub budget_usd: f64,
    /// FLOP per dollar at the start.
    pub kappa: f64,
    /// Algorithmic efficiency growth per year.
    pub g_alg: f64,
    /// Hardware FLOP per dollar growth per year.
    pub g_h: f64,
    /// Frontier's start budget in dollars.
    pub frontier_usd: f64,
    /// Frontier's spending schedule (investment growth `g_i`).
    pub schedule: Schedule,
}

impl Scenario {
    /// Meek effective compute at `t`: `C0 (g_alg g_h)^t`.
    pub fn c_meek(&self, t: f64) -> f64 {
        self.budget_usd * self.kappa * (self.g_alg * self.g_h).powf(t)
    }

    /// Frontier effective compute at `t`: `C0_sota (g_alg g_h)^t S(t)`.
    pub fn c_sota(&self, t: f64) -> f64 {
        self.frontier_usd
            * self.kappa
            * (self.g_alg * self.g_h).powf(t)
            * self.schedule.ln_factor(t).exp()
    }

    /// The loss gap `L(C_meek) - L(C_sota)` (L0 cancels).
    pub fn gap(&self, t: f64) -> f64 {
        self.law.loss(self.c_meek(t)) - self.law.loss(self.c_sota(t))
    }

    /// The closed-form peak time `ln(ln(g_h g_alg g_i) / ln(g_h g_alg)) / (gamma ln g_i)`, for constant investment
    /// growth and equal start budgets; `None` otherwise or when the gap never peaks.
    pub fn peak_closed_form(&self) -> Option<f64> {
        let gi = self.schedule.constant_growth()?;
        let base = (self.g_h * self.g_alg).ln();
        if (self.frontier_usd - self.budget_usd).abs() > 1e-9 * self.budget_usd
            || gi <= 1.0
            || base <= 0.0
        {
            return None;
        }
        Some(((base + gi.ln()) / base).ln() / (self.law.gamma * gi.ln()))
    }

    /// The peak of the gap over `[0, horizon]`, found numerically (grid, then golden-section refinement).
    pub fn peak_numeric(&self, horizon: f64) -> (f64, f64) {
        let n = 2000;
        let mut best = (0.0, self.gap(0.0));
        for i in 1..=n {
            let t = horizon * i as f64 / n as f64;
            let g = self.gap(t);
            if g > best.1 {
                best = (t, g);
            }
        }
        let h = horizon / n as f64;
        let (mut lo, mut hi) = ((best.0 - h).max(0.0), (best.0 + h).min(horizon));
        let phi = (5f64.sqrt() - 1.0) / 2.0;
        for _ in 0..100 {
            let m1 = hi - phi * (hi - lo);
            let m2 = lo + phi * (hi - lo);
            if self.gap(m1) < self.gap(m2) {
                lo = m1;
            } else {
                hi = m2;
            }
        }
        let t = (lo + hi) / 2.0;
        (t, self.gap(t))
    }
}

/// Benchmark accuracy from loss: `acc(L) = Lm / (1 + exp(-k (L - x0))) + b` (fitted to MMLU in the study).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AccuracyCurve {
    /// Range above the floor.
    pub lm: f64,
    /// Midpoint loss.
    pub x0: f64,
    /// Slope (negative: accuracy falls as loss rises).
    pub k: f64,
    /// Floor (chance).
    pub b: f64,
}

impl AccuracyCurve {
    /// `acc(L)`.
    pub fn accuracy(&self, l: f64) -> f64 {
        self.lm / (1.0 + (-self.k * (l - self.x0)).exp()) + self.b
    }

    /// The loss whose accuracy is `acc`; `Err` names the valid range `(b, b + Lm)` when `acc` is outside it.
    pub fn loss_for(&self, acc: f64) -> Result<f64, String> {
        if !(acc > self.b && acc < self.b + self.lm) {
            return Err(format!(
                "accuracy {acc:.3} is outside the curve's range ({:.3}, {:.3}): no loss maps to it",
                self.b,
                self.b + self.lm
            ));
        }
        Ok(self.x0 - (self.lm / (acc - self.b) - 1.0).ln() / self.k)
    }
}

/// Tokens needed to tell two models `dl` nats/token apart with a sequential probability ratio test at error rate
/// `alpha` on both sides, scaled by `s`: `[(1-a) ln((1-a)/a) + a ln(a/(1-a))] s / dL`.
pub fn tokens_to_distinguish(alpha: f64, s: f64, dl: f64) -> f64 {
    let num = (1.0 - alpha) * ((1.0 - alpha) / alpha).ln() + alpha * (alpha / (1.0 - alpha)).ln();
    num * s / dl
}

/// The fixed-budget inference scenario: a model whose inference costs `b_usd` per token at the start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Inference {
    /// Dollars per token.
    pub b_usd: f64,
    /// Growth per year of what a fixed dollar buys for inference.
    pub g_inf: f64,
    /// Algorithmic growth used for both curves in this scenario (the study's figure uses 3.6).
    pub g_alg: f64,
}

impl Inference {
    /// Effective training compute of the largest model affordable at `t`: `F(t)^2 g_alg^t` with
    /// `F(t) = B kappa (g_h g_inf)^t` (inference ~ 2N FLOP/token, Chinchilla-optimal training ~ N^2).
    pub fn compute(&self, kappa: f64, g_h: f64, t: f64) -> f64 {
        let f = self.b_usd * kappa * (g_h * self.g_inf).powf(t);
        f * f * self.g_alg.powf(t)
    }

    /// `max(L(C_inf(t)) - L(C_sota(t)), 0)`, with the frontier path under this scenario's `g_alg`.
    pub fn gap(&self, s: &Scenario, t: f64) -> f64 {
        let frontier = Scenario {
            g_alg: self.g_alg,
            ..s.clone()
        };
        (s.law.loss(self.compute(s.kappa, s.g_h, t)) - s.law.loss(frontier.c_sota(t))).max(0.0)
    }
}
