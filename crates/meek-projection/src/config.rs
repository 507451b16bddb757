//! `configs/projection.toml`: every parameter of the model with the study's values as defaults, and its scenarios
//! as named presets.

use serde::{Deserialize, Serialize};

use crate::model::{AccuracyCurve, Inference, LossLaw, Scenario, Schedule, Segment};

/// The embedded default (`configs/projection.toml`).
pub const DEFAULT: &str = include_str!("../../../configs/projection.toml");

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Loss law and growth rates.
    pub model: ModelSection,
    /// The frontier's start budget and spending schedule in the baseline scenario.
    pub frontier: FrontierSection,
    /// Loss to accuracy.
    pub accuracy: AccuracySection,
    /// Statistical distinguishability.
    pub distinguish: DistinguishSection,
    /// The fixed-budget inference scenario.
    pub inference: InferenceSection,
    /// Parameter ranges for uncertainty bands.
    pub uncertainty: UncertaintySection,
    /// What running a model on this machine costs.
    pub machine: MachineSection,
    /// Fitting the accuracy curve on measured models.
    pub calibration: CalibrationSection,
    /// Testing the study's claim on measured results.
    #[serde(default)]
    pub trend: TrendSection,
    /// Named scenarios, each overriding parts of the baseline.
    #[serde(default)]
    pub presets: Vec<Preset>,
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// `A` of the loss law.
    pub a: f64,
    /// `gamma` of the loss law.
    pub gamma: f64,
    /// `L0` of the loss law.
    pub l0: f64,
    /// Meek budget, dollars.
    pub budget_usd: f64,
    /// FLOP per dollar at the start.
    pub kappa: f64,
    /// Algorithmic efficiency growth per year.
    pub g_alg: f64,
    /// Hardware FLOP per dollar growth per year.
    pub g_h: f64,
    /// Years to project.
    pub horizon_years: f64,
    /// Time grid step, years.
    pub step_years: f64,
}

/// `[frontier]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontierSection {
    /// Start budget, dollars.
    pub start_usd: f64,
    /// Spending schedule (piecewise growth).
    pub schedule: Vec<Segment>,
}

/// `[accuracy]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccuracySection {
    /// `Lm`.
    pub lm: f64,
    /// `x0`.
    pub x0: f64,
    /// `k`.
    pub k: f64,
    /// `b` (chance floor of the study's MMLU fit).
    pub b: f64,
    /// Step counts `p` of the p-step tasks.
    pub p: Vec<u32>,
}

/// `[distinguish]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistinguishSection {
    /// Error rate on both sides.
    pub alpha: f64,
    /// Scale factors `s`.
    pub s: Vec<f64>,
}

/// `[inference]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceSection {
    /// Dollars per token at the start.
    pub budget_usd_per_token: f64,
    /// Growth rates of inference value per dollar to show (fast, slow).
    pub g_inf: Vec<f64>,
    /// Algorithmic growth used in this scenario.
    pub g_alg: f64,
}

/// `[uncertainty]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UncertaintySection {
    /// Range of the algorithmic-progress halving time, months (growth per year = 2^(12/months)).
    pub halving_months: [f64; 2],
    /// Range of hardware price-performance growth per year.
    pub g_h: [f64; 2],
    /// Range of the frontier's investment growth per year, where its schedule is one constant rate.
    #[serde(default = "default_g_i")]
    pub g_i: [f64; 2],
    /// Range of the loss exponent.
    #[serde(default = "default_gamma")]
    pub gamma: [f64; 2],
    /// Range of the accuracy curve's midpoint `x0` (replaced by the calibration's interval when one is fitted).
    #[serde(default = "default_x0")]
    pub accuracy_x0: [f64; 2],
    /// Range of the accuracy curve's slope `k`.
    #[serde(default = "default_k")]
    pub accuracy_k: [f64; 2],
    /// Monte Carlo draws per band.
    #[serde(default = "default_draws")]
    pub draws: usize,
}

fn default_g_i() -> [f64; 2] {
    [2.0, 10.0]
}
fn default_gamma() -> [f64; 2] {
    [0.154, 0.178]
}
fn default_x0() -> [f64; 2] {
    [1.95, 2.0]
}
fn default_k() -> [f64; 2] {
    [-26.0, -21.5]
}
fn default_draws() -> usize {
    1000
}

/// `[machine]`: turning measured speed and energy into dollars per token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSection {
    /// Electricity price, dollars per kWh.
    pub price_per_kwh: f64,
    /// Purchase price of the machine, dollars.
    pub capex_usd: f64,
    /// Years the machine is used.
    pub lifetime_years: f64,
    /// Fraction of its lifetime it generates tokens.
    pub utilisation: f64,
    /// Power assumed when a result has no energy figure, watts (the output says so).
    pub assumed_watts: f64,
    /// Frontier level the "years until" answer aims at: a loss in nats/token.
    pub target_loss: f64,
}

/// `[trend]`: the cost of a correct answer at fixed capability against release date ([`crate::trend`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrendSection {
    /// Accuracy thresholds, each fitted on its own.
    pub thresholds: Vec<f64>,
}

impl Default for TrendSection {
    fn default() -> Self {
        Self {
            thresholds: vec![0.05, 0.1, 0.2, 0.3, 0.5],
        }
    }
}

impl MachineSection {
    /// What `joules` of energy and `seconds` of this machine cost: the electricity at `price_per_kwh`, and the
    /// hardware's price spread over the seconds of its lifetime it generates.
    pub fn dollars(&self, joules: f64, seconds: f64) -> f64 {
        let lifetime_s = self.lifetime_years * 365.25 * 86400.0;
        joules * self.price_per_kwh / 3.6e6
            + self.capex_usd * seconds / (lifetime_s * self.utilisation)
    }
}

/// `[calibration]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationSection {
    /// Accuracy floor of the suites (0 for free-form numeric answers).
    pub chance: f64,
    /// Chinchilla's parametric loss.
    pub chinchilla: Chinchilla,
    /// Training tokens per model id.
    #[serde(default)]
    pub training_tokens: std::collections::BTreeMap<String, f64>,
}

/// `L(N, D) = E + A / N^alpha + B / D^beta`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chinchilla {
    /// Irreducible loss.
    pub e: f64,
    /// Parameter term scale.
    pub a: f64,
    /// Data term scale.
    pub b: f64,
    /// Parameter exponent.
    pub alpha: f64,
    /// Data exponent.
    pub beta: f64,
}

impl Chinchilla {
    /// Loss of a model with `n` parameters trained on `d` tokens.
    pub fn loss(&self, n: f64, d: f64) -> f64 {
        self.e + self.a / n.powf(self.alpha) + self.b / d.powf(self.beta)
    }
}

/// A named scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// Name in the report.
    pub name: String,
    /// Constant investment growth `g_i` (replaces the schedule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub g_i: Option<f64>,
    /// Piecewise schedule (replaces the schedule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Vec<Segment>>,
    /// Frontier start budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontier_usd: Option<f64>,
    /// Loss exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not TOML, or unknown or missing keys.
    #[error("{origin}: {message}")]
    Parse {
        /// File.
        origin: String,
        /// Parser message with line and column.
        message: String,
    },
    /// A parameter outside its valid range.
    #[error("{origin}: `{key}` = {value} is out of range: {range}")]
    Range {
        /// File.
        origin: String,
        /// Parameter.
        key: String,
        /// Its value.
        value: f64,
        /// The valid range.
        range: &'static str,
    },
}

impl Config {
    /// Parses and checks a configuration.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let c: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.into(),
            message: e.to_string().trim_end().into(),
        })?;
        c.check(origin)?;
        Ok(c)
    }

    /// The embedded default.
    pub fn default_config() -> Self {
        Self::parse(DEFAULT, "embedded:configs/projection.toml")
            .expect("the embedded projection config is valid")
    }

    fn check(&self, origin: &str) -> Result<(), ConfigError> {
        let range = |key: &str, value: f64, ok: bool, range: &'static str| {
            if ok && value.is_finite() {
                Ok(())
            } else {
                Err(ConfigError::Range {
                    origin: origin.into(),
                    key: key.into(),
                    value,
                    range,
                })
            }
        };
        let m = &self.model;
        range("model.gamma", m.gamma, m.gamma > 0.0, "gamma > 0")?;
        range("model.a", m.a, m.a > 0.0, "A > 0")?;
        range("model.budget_usd", m.budget_usd, m.budget_usd > 0.0, "> 0")?;
        range("model.kappa", m.kappa, m.kappa > 0.0, "> 0")?;
        range("model.g_alg", m.g_alg, m.g_alg > 0.0, "growth per year > 0")?;
        range("model.g_h", m.g_h, m.g_h > 0.0, "growth per year > 0")?;
        range(
            "model.horizon_years",
            m.horizon_years,
            m.horizon_years > 0.0,
            "> 0",
        )?;
        range(
            "model.step_years",
            m.step_years,
            m.step_years > 0.0 && m.step_years <= m.horizon_years,
            "0 < step <= horizon",
        )?;
        range(
            "frontier.start_usd",
            self.frontier.start_usd,
            self.frontier.start_usd > 0.0,
            "> 0",
        )?;
        for (i, s) in self
            .frontier
            .schedule
            .iter()
            .chain(
                self.presets
                    .iter()
                    .flat_map(|p| p.schedule.iter().flatten()),
            )
            .enumerate()
        {
            range(
                &format!("schedule[{i}].growth"),
                s.growth,
                s.growth > 0.0,
                "growth per year > 0",
            )?;
        }
        for p in &self.presets {
            if let Some(g) = p.g_i {
                range(
                    &format!("presets.{}.g_i", p.name),
                    g,
                    g > 0.0,
                    "growth per year > 0",
                )?;
            }
            if let Some(g) = p.gamma {
                range(
                    &format!("presets.{}.gamma", p.name),
                    g,
                    g > 0.0,
                    "gamma > 0",
                )?;
            }
        }
        let a = &self.accuracy;
        range(
            "accuracy.lm",
            a.lm,
            a.lm > 0.0 && a.lm + a.b <= 1.0,
            "0 < Lm and b + Lm <= 1",
        )?;
        range("accuracy.b", a.b, (0.0..1.0).contains(&a.b), "0 <= b < 1")?;
        range("accuracy.k", a.k, a.k != 0.0, "k != 0")?;
        range(
            "distinguish.alpha",
            self.distinguish.alpha,
            self.distinguish.alpha > 0.0 && self.distinguish.alpha < 0.5,
            "0 < alpha < 0.5",
        )?;
        let u = &self.uncertainty;
        range(
            "uncertainty.halving_months",
            u.halving_months[0],
            u.halving_months[0] > 0.0 && u.halving_months[0] <= u.halving_months[1],
            "0 < low <= high",
        )?;
        range(
            "uncertainty.g_h",
            u.g_h[0],
            u.g_h[0] > 0.0 && u.g_h[0] <= u.g_h[1],
            "0 < low <= high",
        )?;
        if self.trend.thresholds.is_empty() || self.trend.thresholds.len() > 32 {
            return Err(ConfigError::Range {
                origin: origin.into(),
                key: "trend.thresholds".into(),
                value: self.trend.thresholds.len() as f64,
                range: "1 to 32 thresholds",
            });
        }
        for &th in &self.trend.thresholds {
            range(
                "trend.thresholds",
                th,
                th > 0.0 && th <= 1.0,
                "0 < threshold <= 1",
            )?;
        }
        for (key, [lo, hi], ok) in [
            ("uncertainty.g_i", u.g_i, u.g_i[0] > 0.0),
            ("uncertainty.gamma", u.gamma, u.gamma[0] > 0.0),
            ("uncertainty.accuracy_x0", u.accuracy_x0, true),
            (
                "uncertainty.accuracy_k",
                u.accuracy_k,
                u.accuracy_k[1] < 0.0,
            ),
        ] {
            range(
                key,
                lo,
                ok && hi.is_finite() && lo <= hi,
                "low <= high, within the parameter's meaning",
            )?;
        }
        range(
            "uncertainty.draws",
            u.draws as f64,
            (100..=100_000).contains(&u.draws),
            "100 to 100000",
        )?;
        let mc = &self.machine;
        range(
            "machine.lifetime_years",
            mc.lifetime_years,
            mc.lifetime_years > 0.0,
            "> 0",
        )?;
        range(
            "machine.utilisation",
            mc.utilisation,
            mc.utilisation > 0.0 && mc.utilisation <= 1.0,
            "0 < u <= 1",
        )?;
        range(
            "machine.target_loss",
            mc.target_loss,
            mc.target_loss > m.l0,
            "above L0",
        )?;
        Ok(())
    }

    /// The baseline scenario.
    pub fn baseline(&self) -> Scenario {
        let m = &self.model;
        Scenario {
            law: LossLaw {
                a: m.a,
                gamma: m.gamma,
                l0: m.l0,
            },
            budget_usd: m.budget_usd,
            kappa: m.kappa,
            g_alg: m.g_alg,
            g_h: m.g_h,
            frontier_usd: self.frontier.start_usd,
            schedule: Schedule(self.frontier.schedule.clone()),
        }
    }

    /// A preset applied to the baseline.
    pub fn scenario(&self, p: &Preset) -> Scenario {
        let mut s = self.baseline();
        if let Some(g) = p.g_i {
            s.schedule = Schedule::constant(g);
        }
        if let Some(sch) = &p.schedule {
            s.schedule = Schedule(sch.clone());
        }
        if let Some(f) = p.frontier_usd {
            s.frontier_usd = f;
        }
        if let Some(g) = p.gamma {
            s.law.gamma = g;
        }
        s
    }

    /// The accuracy curve.
    pub fn curve(&self) -> AccuracyCurve {
        let a = &self.accuracy;
        AccuracyCurve {
            lm: a.lm,
            x0: a.x0,
            k: a.k,
            b: a.b,
        }
    }

    /// The inference scenario for one `g_inf`.
    pub fn inference(&self, g_inf: f64) -> Inference {
        Inference {
            b_usd: self.inference.budget_usd_per_token,
            g_inf,
            g_alg: self.inference.g_alg,
        }
    }
}
