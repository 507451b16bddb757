//! The meek-models projection (Gundlach, Lynch, Thompson 2025): the study's model, its scenarios and
//! uncertainty bands, driven by measured points from meekbench result files.
//!
//! - [`model`]: the equations (loss law, compute paths, gap and its peak, accuracy, distinguishability,
//!   fixed-budget inference);
//! - [`config`]: `configs/projection.toml` with the study's values and scenarios;
//! - [`fit`]: calibration of the loss-to-accuracy curve;
//! - [`project`]: every curve on a time grid, the bands, and the measured models placed on them;
//! - [`report`]: Markdown and SVG charts (drawn and escaped with `meek-render`), and [`write()`], which puts them
//!   and `projection.json` in a directory.
//!
//! No Candle here: the crate builds and tests in seconds.

pub mod bands;
pub mod config;
pub mod fit;
pub mod model;
pub mod pool;
pub mod report;
pub mod trend;
pub mod trend_chart;

pub use report::{WriteError, write};

use meek_schema::BenchResult;
use serde::Serialize;

use config::Config;
use model::Scenario;

/// A named curve on the time grid, optionally with a band.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Curve {
    /// Label.
    pub name: String,
    /// Values on the time grid.
    pub values: Vec<f64>,
    /// Lower edge of the uncertainty band.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low: Option<Vec<f64>>,
    /// Upper edge of the uncertainty band.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high: Option<Vec<f64>>,
}

/// The peak of a scenario's loss gap.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Peak {
    /// Scenario name.
    pub scenario: String,
    /// Peak time found numerically, years.
    pub t_numeric: f64,
    /// Closed-form peak time, where the scenario has one.
    pub t_closed_form: Option<f64>,
    /// Gap at the peak, nats/token.
    pub gap: f64,
    /// Gap at t = 10 years.
    pub gap_at_10: f64,
}

/// One measured model placed on the projection.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point {
    /// Model id.
    pub model: String,
    /// Result file it came from.
    pub file: String,
    /// Weights, *measured*: counted from the file's tensors.
    pub n_params: u64,
    /// Weights outside the token embedding and output matrix, counted from the tensors, where the run has them.
    pub non_embedding_params: Option<u64>,
    /// Training tokens and their provenance (`declared (URL)` or `assumed (..)`).
    pub training_tokens: Option<(f64, String)>,
    /// Release date as declared by the result's model card, with its source.
    pub release_date: Option<(String, String)>,
    /// Device and threads.
    pub setup: String,
    /// Median decode rate of the first workload point.
    pub decode_tokens_per_second: f64,
    /// Joules per token and where the figure comes from.
    pub joules_per_token: f64,
    /// `measured (LABEL)`, `estimated (LABEL)` (the run's own energy record) or `assumed (N W)`.
    pub energy_basis: String,
    /// Dollars per generated token: energy plus hardware amortisation.
    pub usd_per_token: f64,
    /// Accuracy (flexible) on the first suite, when one ran.
    pub accuracy: Option<f64>,
    /// Suite name.
    pub suite: Option<String>,
    /// Accuracy per step count.
    pub accuracy_by_steps: Vec<(String, f64)>,
    /// Loss implied by the accuracy through the curve.
    pub implied_loss: Option<f64>,
    /// The run's own measured loss on a text (its first `[[perplexity]]` workload), when it scored one.
    pub measured_loss: Option<MeasuredLoss>,
    /// Why no loss is implied (accuracy outside the curve's valid range, no suite).
    pub note: Option<String>,
    /// Effective compute implied by that loss, FLOP.
    pub implied_compute: Option<f64>,
    /// Meek-equivalent year: `ln(C/C0) / ln(g_alg g_h)`.
    pub implied_year: Option<f64>,
    /// Years from the run's date until a model affordable at this machine's $/token reaches the target loss, per
    /// `g_inf`.
    pub years_to_target: Vec<(f64, Option<f64>)>,
    /// The compute a dollar buys on this machine, FLOP/$: the model's FLOPs per token (from its shape) over the
    /// run's $/token; `None` where the run has no FLOP count (the study's kappa is used then, and says so).
    pub machine_flop_per_usd: Option<f64>,
    /// The run's date as a fractional calendar year (from `started_at`), the origin of `years_to_target`.
    pub run_year: Option<f64>,
    /// How the budget became years, step by step, each figure with its provenance.
    pub budget_chain: String,
    /// On the measured Pareto frontier of ($/token, accuracy).
    pub pareto: bool,
}

/// How a run's joules were obtained, as the report labels them: `measured (LABEL)` or `estimated (LABEL)`.
pub fn energy_basis(status: meek_schema::EnergyStatus, label: &str) -> String {
    match status {
        meek_schema::EnergyStatus::Measured => format!("measured ({label})"),
        _ => format!("estimated ({label})"),
    }
}

/// `2026-12-01T04:43:51Z` as a fractional calendar year (2026.92); `None` for anything else.
pub fn calendar_year(timestamp: &str) -> Option<f64> {
    let date = timestamp.get(..10)?;
    let mut parts = date.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    let (y, m, d): (i32, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m)
        || !(1970..=9999).contains(&y)
        || !(1..=days[m as usize - 1]).contains(&d)
    {
        return None;
    }
    const BEFORE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    Some(f64::from(y) + f64::from(BEFORE[m as usize - 1] + d - 1) / 365.25)
}

/// A loss measured by the run itself: the mean negative log-likelihood of a text (`[[perplexity]]`). It is the
/// loss of that text, not the pretraining loss the study's law predicts, so it ranks models on one text and is not
/// placed on the study's curves.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MeasuredLoss {
    /// Workload name.
    pub text: String,
    /// Nats per token.
    pub nats_per_token: f64,
    /// Its standard error.
    pub stderr: f64,
    /// Bits per byte of the text (comparable across tokenizers).
    pub bits_per_byte: f64,
    /// Tokens scored.
    pub tokens: usize,
}

/// Every curve and point.
#[derive(Debug, Clone, Serialize)]
pub struct Projection {
    /// The configuration used.
    pub config: Config,
    /// Assumptions in words, each next to what it affects.
    pub assumptions: Vec<String>,
    /// Time grid, years.
    pub t: Vec<f64>,
    /// Loss gap per scenario (the baseline with a band).
    pub loss_gap: Vec<Curve>,
    /// Peaks per scenario.
    pub peaks: Vec<Peak>,
    /// Accuracy gap `acc_sota^p - acc_meek^p` per p (baseline, with bands).
    pub accuracy_gap: Vec<Curve>,
    /// Tokens needed to distinguish the models, per s (baseline).
    pub tokens_to_distinguish: Vec<Curve>,
    /// Inference-scenario gap per g_inf.
    pub inference_gap: Vec<Curve>,
    /// Measured models.
    pub points: Vec<Point>,
    /// The accuracy curve fitted on the measured models, when enough had known training tokens.
    pub calibrated_curve: Option<model::AccuracyCurve>,
    /// Bootstrap intervals of the fitted curve's parameters.
    pub calibration_intervals: Option<fit::Intervals>,
    /// The ranges the bands were drawn from.
    pub bands: bands::Ranges,
    /// Why no curve was fitted, or what it was fitted on.
    pub calibration_note: String,
    /// The study's claim tested on the measured results: cost per correct answer against release date.
    pub trend: trend::Trend,
    /// Result files that were skipped, and why.
    pub skipped: Vec<String>,
}

/// Growth per year of a quantity that halves its cost every `months`.
pub fn growth_from_halving(months: f64) -> f64 {
    2f64.powf(12.0 / months)
}

/// Computes the projection and places the measured results on it. `results` are `(file name, parsed result)`.
pub fn project(
    cfg: &Config,
    results: &[(String, BenchResult)],
    skipped: Vec<String>,
) -> Projection {
    let m = &cfg.model;
    let n = (m.horizon_years / m.step_years).round() as usize;
    let t: Vec<f64> = (0..=n).map(|i| i as f64 * m.step_years).collect();
    let base = cfg.baseline();
    let series = |s: &Scenario, f: &dyn Fn(&Scenario, f64) -> f64| {
        t.iter().map(|&x| f(s, x)).collect::<Vec<_>>()
    };

    // Calibration on measured points with known training tokens: (Chinchilla loss, accuracy), one point per model
    // file (runs of one file on several machines or thread counts pool their items), on one suite.
    let cal = &cfg.calibration;
    let (counted, runs_used, suite, too_many) = match calibration_points(cal, results) {
        Ok((c, r, s)) => (c, r, s, None),
        Err(e) => (Vec::new(), 0, None, Some(e)),
    };
    let fit_points: Vec<(f64, f64)> = counted
        .iter()
        .map(|&(l, c, n)| (l, c as f64 / n as f64))
        .collect();
    let start = model::AccuracyCurve {
        b: cal.chance,
        lm: 1.0 - cal.chance,
        ..cfg.curve()
    };
    let on = |suite: &Option<String>| {
        suite
            .as_deref()
            .map_or_else(String::new, |s| format!(" on suite `{s}`"))
    };
    let mut calibration_intervals = None;
    let fitted = match &too_many {
        Some(e) => Err(e.clone()),
        None => fit::calibrate(&fit_points, start),
    };
    let (calibrated_curve, calibration_note) = match fitted {
        Ok(c) => {
            calibration_intervals =
                fit::intervals(&counted, c.curve, fit::BOOTSTRAP_ROUNDS, 0x6d65656b);
            let ci = calibration_intervals.as_ref().map_or_else(
                || " (no bootstrap interval: most rounds did not converge)".to_string(),
                |i| {
                    format!(
                        " (95% bootstrap intervals over items, {} rounds: Lm {:.3} to {:.3}, x0 {:.3} to {:.3}, \
                         k {:.2} to {:.2})",
                        i.rounds, i.lm[0], i.lm[1], i.x0[0], i.x0[1], i.k[0], i.k[1]
                    )
                },
            );
            (
                Some(c.curve),
                format!(
                    "acc(L) fitted on {} measured models{} ({} distinct losses, {runs_used} runs; Chinchilla L(N, D) \
                     from measured parameters and declared or assumed training tokens, floor b = {}): Lm = {:.3}, \
                     x0 = {:.3}, k = {:.2}{ci}, residual RMS {:.3}; implied losses below use it.",
                    c.models,
                    on(&suite),
                    c.losses,
                    cal.chance,
                    c.curve.lm,
                    c.curve.x0,
                    c.curve.k,
                    c.rmse
                ),
            )
        }
        Err(e) => (
            None,
            format!(
                "No calibration ({e}; measured models with known training tokens{}: {} from {runs_used} runs): the \
                 study's MMLU curve is used.",
                on(&suite),
                fit_points.len()
            ),
        ),
    };
    let curve = calibrated_curve.unwrap_or_else(|| cfg.curve());
    // Monte Carlo draws of every uncertain parameter, around the baseline or a preset's scenario.
    let draws_for = |s: &Scenario| {
        bands::draws(
            cfg,
            s,
            curve,
            calibrated_curve.and(calibration_intervals.as_ref()),
        )
    };
    let (draws, band_ranges) = draws_for(&base);
    let presets = if cfg.presets.is_empty() {
        vec![config::Preset {
            name: "baseline".into(),
            g_i: None,
            schedule: None,
            frontier_usd: None,
            gamma: None,
        }]
    } else {
        cfg.presets.clone()
    };
    let mut loss_gap = Vec::new();
    let mut peaks = Vec::new();
    for (i, p) in presets.iter().enumerate() {
        let s = cfg.scenario(p);
        let values = series(&s, &|s, x| s.gap(x));
        let (low, high) = if i == 0 {
            let (lo, hi) = bands::band(&draws_for(&s).0, &t, |d, x| d.scenario.gap(x));
            (Some(lo), Some(hi))
        } else {
            (None, None)
        };
        let (tp, gp) = s.peak_numeric(m.horizon_years);
        peaks.push(Peak {
            scenario: p.name.clone(),
            t_numeric: tp,
            t_closed_form: s.peak_closed_form(),
            gap: gp,
            gap_at_10: s.gap(10.0),
        });
        loss_gap.push(Curve {
            name: p.name.clone(),
            values,
            low,
            high,
        });
    }

    let acc_gap = |s: &Scenario, x: f64, p: u32| {
        curve.accuracy(s.law.loss(s.c_sota(x))).powi(p as i32)
            - curve.accuracy(s.law.loss(s.c_meek(x))).powi(p as i32)
    };
    let accuracy_gap = cfg
        .accuracy
        .p
        .iter()
        .map(|&p| {
            let (lo, hi) = bands::band(&draws, &t, |d, x| {
                d.curve
                    .accuracy(d.scenario.law.loss(d.scenario.c_sota(x)))
                    .powi(p as i32)
                    - d.curve
                        .accuracy(d.scenario.law.loss(d.scenario.c_meek(x)))
                        .powi(p as i32)
            });
            Curve {
                name: format!("p = {p}"),
                values: series(&base, &|s, x| acc_gap(s, x, p)),
                low: Some(lo),
                high: Some(hi),
            }
        })
        .collect();
    let tokens_to_distinguish = cfg
        .distinguish
        .s
        .iter()
        .map(|&sv| Curve {
            name: format!("s = {sv}"),
            values: series(&base, &|s, x| {
                model::tokens_to_distinguish(cfg.distinguish.alpha, sv, s.gap(x))
            }),
            low: None,
            high: None,
        })
        .collect();
    let inference_gap = cfg
        .inference
        .g_inf
        .iter()
        .map(|&g| {
            let inf = cfg.inference(g);
            Curve {
                name: format!("g_inf = {g}"),
                values: series(&base, &|s, x| inf.gap(s, x)),
                low: None,
                high: None,
            }
        })
        .collect();

    let mut assumptions = vec![
        calibration_note.clone(),
        format!(
            "Loss law L(C) = {} C^-{} + {}; meek compute C0 = ${} x {:e} FLOP/$ growing {} x {} per year.",
            m.a, m.gamma, m.l0, m.budget_usd, m.kappa, m.g_alg, m.g_h
        ),
        format!(
            "Bands: 2.5th to 97.5th percentile of {} Monte Carlo draws, every parameter at once: algorithmic halving \
             time {}-{} months (g_alg {:.2}-{:.2}/yr), hardware {}-{}/yr, {}loss exponent gamma {}-{}, accuracy \
             curve x0 {:.3}-{:.3} and k {:.2} to {:.2} ({}).",
            band_ranges.draws,
            band_ranges.halving_months[0],
            band_ranges.halving_months[1],
            growth_from_halving(band_ranges.halving_months[1]),
            growth_from_halving(band_ranges.halving_months[0]),
            band_ranges.g_h[0],
            band_ranges.g_h[1],
            band_ranges.g_i.map_or_else(String::new, |[lo, hi]| format!(
                "frontier investment {lo}-{hi}/yr (log-uniform), "
            )),
            band_ranges.gamma[0],
            band_ranges.gamma[1],
            band_ranges.x0[0],
            band_ranges.x0[1],
            band_ranges.k[0],
            band_ranges.k[1],
            band_ranges.curve_basis
        ),
        format!(
            "Accuracy curve acc(L) = {} / (1 + exp({} (L - {}))) + {}: the study's fit to MMLU (4-way multiple choice); \
             meekbench's suites are free-form numeric, so implied losses and years are indicative until the curve is \
             calibrated on several local models (meek_projection::fit).",
            cfg.accuracy.lm, -cfg.accuracy.k, cfg.accuracy.x0, cfg.accuracy.b
        ),
    ];
    let mc = &cfg.machine;
    assumptions.push(format!(
        "$/token = J/token x ${}/kWh / 3.6e6 + ${} / ({} years x tokens/s x {:.0}% utilisation); \
         where a result has no energy figure, {} W is assumed.",
        mc.price_per_kwh,
        mc.capex_usd,
        mc.lifetime_years,
        100.0 * mc.utilisation,
        mc.assumed_watts
    ));
    assumptions.push(format!(
        "Years from each run's date until a model affordable here reaches loss {}: the fixed-budget inference scenario \
         with B = this machine's $/token buying compute at this machine's FLOP/$ (measured where the run counts its \
         FLOPs), growing g_h x g_inf per year, and g_alg {} as in the meek-equivalent year of the same row (the \
         inference-gap chart keeps the study's {} for that figure).",
        mc.target_loss, m.g_alg, cfg.inference.g_alg
    ));

    let mut points = Vec::new();
    for (file, r) in results {
        for run in &r.runs {
            let Some(sp) = run.speed.first() else {
                continue;
            };
            let tps = sp.decode_tokens_per_second.median;
            // The run's own decode joules per token when it has them (measured or estimated, as labelled).
            let (joules, basis) = match run
                .energy
                .as_ref()
                .and_then(|e| e.joules_per_decode_token.map(|j| (j, e)))
            {
                Some((j, e)) if j > 0.0 => (j, energy_basis(e.status, &e.label)),
                _ => (
                    mc.assumed_watts / tps,
                    format!("assumed ({} W)", mc.assumed_watts),
                ),
            };
            let usd = mc.dollars(joules, 1.0 / tps);
            let suite = run.accuracy.first();
            let acc = suite.map(|s| s.flexible.accuracy);
            let implied = match acc {
                Some(a) => curve.loss_for(a),
                None => Err("no accuracy suite in this run".to_string()),
            };
            let (implied_loss, note) = match implied {
                Ok(l) => (Some(l), None),
                Err(e) => (None, Some(e)),
            };
            let implied_compute = implied_loss.and_then(|l| base.law.compute_for(l));
            let implied_year =
                implied_compute.map(|c| (c / base.c_meek(0.0)).ln() / (m.g_alg * m.g_h).ln());
            // The budget's compute at the run's date: this machine's FLOP/$, measured (FLOPs per token from the
            // model's shape over the measured $/token), else the study's kappa (assumed).
            let flops_per_token = run
                .energy
                .as_ref()
                .map(|e| e.proxies.flops_per_token)
                .filter(|f| f.is_finite() && *f > 0.0);
            let machine_kappa = flops_per_token.map(|f| f / usd).filter(|k| k.is_finite());
            let kappa = machine_kappa.unwrap_or(base.kappa);
            let run_year = calendar_year(&r.started_at);
            let years_to_target = cfg
                .inference
                .g_inf
                .iter()
                .map(|&g| {
                    // One g_alg per row: the meek-equivalent year's.
                    let inf = model::Inference {
                        b_usd: usd,
                        g_alg: m.g_alg,
                        ..cfg.inference(g)
                    };
                    let hit = t.iter().find(|&&x| {
                        base.law.loss(inf.compute(kappa, base.g_h, x)) <= mc.target_loss
                    });
                    (g, hit.copied())
                })
                .collect();
            let budget_chain = match (flops_per_token, machine_kappa) {
                (Some(f), Some(k)) => format!(
                    "B = ${usd:.3e}/token ({basis} energy, assumed hardware cost) x {k:.3e} FLOP/$ on this machine \
                     (measured: {f:.3e} FLOP/token from the model's shape / B) = {:.3e} FLOP/token at {}, growing \
                     g_h x g_inf per year (assumed)",
                    usd * k,
                    run_year.map_or_else(|| "the run's date".into(), |y| format!("{y:.1}"))
                ),
                _ => format!(
                    "B = ${usd:.3e}/token ({basis} energy, assumed hardware cost) x the study's kappa {:.0e} FLOP/$ \
                     (assumed: the run has no FLOP count)",
                    base.kappa
                ),
            };
            points.push(Point {
                model: run.model.id.clone(),
                file: file.clone(),
                n_params: run.model.n_params,
                non_embedding_params: run
                    .energy
                    .as_ref()
                    .map(|e| e.proxies.non_embedding_params)
                    .filter(|&n| n > 0),
                training_tokens: training_tokens(cal, run),
                release_date: run.model.card.as_ref().and_then(|c| {
                    c.release_date
                        .clone()
                        .map(|d| (d, format!("declared ({})", c.source)))
                }),
                setup: format!("{} x{} ({})", run.device, run.threads, r.machine.cpu.brand),
                decode_tokens_per_second: tps,
                joules_per_token: joules,
                energy_basis: basis,
                usd_per_token: usd,
                accuracy: acc,
                suite: suite.map(|s| s.key()),
                accuracy_by_steps: suite
                    .map(|s| {
                        s.by_steps
                            .iter()
                            .map(|g| (g.key.clone(), g.flexible.accuracy))
                            .collect()
                    })
                    .unwrap_or_default(),
                implied_loss,
                measured_loss: run.perplexity.first().map(|p| MeasuredLoss {
                    text: p.name.clone(),
                    nats_per_token: p.nll_mean,
                    stderr: p.nll_stderr,
                    bits_per_byte: p.bits_per_byte,
                    tokens: p.tokens_scored,
                }),
                note,
                implied_compute,
                implied_year,
                years_to_target,
                machine_flop_per_usd: machine_kappa,
                run_year,
                budget_chain,
                pareto: false,
            });
        }
    }
    // Pareto frontier: no other point is at least as cheap and at least as accurate, and better in one.
    let flags: Vec<bool> = points
        .iter()
        .map(|p| {
            let Some(a) = p.accuracy else { return false };
            !points.iter().any(|q| {
                q.accuracy.is_some_and(|qa| {
                    q.usd_per_token <= p.usd_per_token
                        && qa >= a
                        && (q.usd_per_token < p.usd_per_token || qa > a)
                })
            })
        })
        .collect();
    for (p, f) in points.iter_mut().zip(flags) {
        p.pareto = f;
    }
    Projection {
        config: cfg.clone(),
        assumptions,
        t,
        loss_gap,
        peaks,
        accuracy_gap,
        tokens_to_distinguish,
        inference_gap,
        points,
        calibrated_curve,
        calibration_intervals,
        bands: band_ranges,
        calibration_note,
        trend: trend::trend(cfg, results),
        skipped,
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_trend;

/// Training tokens a model card may declare: between a toy and a hundred times today's largest runs (as the bench
/// config bounds them; a result file is untrusted and may say anything).
const TRAINING_TOKENS: std::ops::RangeInclusive<f64> = 1e6..=1e15;

/// A run's training tokens and their provenance: `[calibration] training_tokens` first (*assumed*: the user's own
/// figure, which a result file cannot override), else the result's model card (*declared*, with its source).
pub fn training_tokens(
    cal: &config::CalibrationSection,
    run: &meek_schema::ModelRun,
) -> Option<(f64, String)> {
    let assumed = cal
        .training_tokens
        .get(&run.model.id)
        .filter(|d| TRAINING_TOKENS.contains(*d))
        .map(|&d| (d, "assumed ([calibration] training_tokens)".to_string()));
    assumed.or_else(|| {
        let c = run.model.card.as_ref()?;
        c.training_tokens
            .filter(|d| TRAINING_TOKENS.contains(d))
            .map(|d| (d, format!("declared ({})", c.source)))
    })
}

/// `(loss, correct, n)` per model, the runs used, the suite.
type CalibrationPoints = (Vec<(f64, usize, usize)>, usize, Option<String>);

/// The calibration's points: for each model file with known training tokens ([`pool::by_model`]), its Chinchilla
/// loss and its flexible accuracy pooled over every run of it, on one suite. Returns `(loss, correct, n)` per model,
/// the runs used and the suite, or why there are too many models.
fn calibration_points(
    cal: &config::CalibrationSection,
    results: &[(String, BenchResult)],
) -> Result<CalibrationPoints, String> {
    let (models, suite, runs) = pool::by_model(results, |run| training_tokens(cal, run).is_some())?;
    let points = models
        .iter()
        .filter_map(|m| {
            let (_, run, _) = m.runs.first()?;
            let (d, _) = training_tokens(cal, run)?;
            let loss = cal.chinchilla.loss(run.model.n_params as f64, d);
            loss.is_finite().then_some((loss, m.correct, m.n))
        })
        .collect();
    Ok((points, runs, suite))
}
