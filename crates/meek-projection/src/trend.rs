//! The study's claim, tested on measured results: does the cost of a correct answer at fixed capability fall
//! with the models' release dates, and how fast?
//!
//! For each accuracy threshold on one suite, the models reaching it (their pooled accuracy over every run of the
//! file) are ordered by their *declared* release date; a model counts where it was the cheapest per correct answer
//! among those released up to its date (the frontier at release, as in Epoch AI's price trends, Cottier et al.
//! 2025). A least-squares line through `ln(cost)` against the release year gives the yearly decline factor
//! `exp(-slope)` with a 95% interval from the slope's t distribution. The study assumes the cost of a capability
//! falls with `g_alg x g_h` (2.8 x 1.4 = 3.9x per year); Epoch AI observed 9x to 900x per year for fixed
//! capability in hosted prices. With fewer than three frontier models at two release dates a threshold is not
//! fitted, and the report says so.
//!
//! Costs are what each result file measured on its own machine: the answers' seconds and joules per correct
//! answer (measured or estimated, as labelled), priced with the `[machine]` assumptions. Results from different
//! machines are compared as they are; a trend across models is cleanest from one machine.

use meek_schema::{BenchResult, ModelRun, SuiteResult};
use serde::Serialize;

use crate::config::Config;
use crate::pool;

/// One model's cheapest measured cost per correct answer on a suite, with its declared release date.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entry {
    /// Model id.
    pub model: String,
    /// Release date as declared (`YYYY-MM-DD`), and where it is stated.
    pub release_date: String,
    /// Where the date is declared.
    pub source: String,
    /// The date as a fractional year.
    pub release_year: f64,
    /// Flexible accuracy pooled over the model's runs of the suite.
    pub accuracy: f64,
    /// Items answered.
    pub items: usize,
    /// Cheapest run's dollars per correct answer (energy plus hardware amortisation).
    pub usd_per_correct: f64,
    /// That run's joules per correct answer, where the run has energy figures.
    pub joules_per_correct: Option<f64>,
    /// `measured (..)`, `estimated (..)` or `assumed (N W)`.
    pub energy_basis: String,
}

/// The fit at one accuracy threshold.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ThresholdFit {
    /// Accuracy the models must reach.
    pub threshold: f64,
    /// Models reaching it.
    pub reaching: usize,
    /// The frontier models used: (model, release year, dollars per correct answer).
    pub frontier: Vec<(String, f64, f64)>,
    /// Yearly decline factor of the cost (`> 1` falls), where fitted.
    pub decline_per_year: Option<f64>,
    /// Its 95% interval.
    pub ci95: Option<[f64; 2]>,
    /// The fitted line `ln(dollars per correct answer) = a + b year`, as `[a, b]`.
    pub line: Option<[f64; 2]>,
    /// The same decline fitted on every model reaching the threshold, not only the frontier: the frontier falls by
    /// its construction (each point is cheaper than all before it), so its decline is always above 1 and its interval
    /// too narrow; this one has neither bias, and says whether the frontier's is more than selection.
    pub all_decline_per_year: Option<f64>,
    /// Its 95% interval.
    pub all_ci95: Option<[f64; 2]>,
    /// Yearly decline factor of the energy per correct answer, where every frontier model has one.
    pub energy_decline_per_year: Option<f64>,
    /// Why no line was fitted.
    pub note: Option<String>,
}

/// The test of the study's claim on one suite.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Trend {
    /// Suite compared (the first with models of declared release dates).
    pub suite: Option<String>,
    /// Every model with a declared release date on that suite.
    pub entries: Vec<Entry>,
    /// One fit per threshold.
    pub fits: Vec<ThresholdFit>,
    /// Models left out, and why (no declared release date, another suite).
    pub left_out: Vec<String>,
    /// What the test found, in words.
    pub summary: String,
}

/// The study's assumed yearly decline of the cost of a fixed capability: `g_alg x g_h`.
pub fn assumed_decline(cfg: &Config) -> f64 {
    cfg.model.g_alg * cfg.model.g_h
}

/// A run's declared release date, its source and the date as a year, where the card has a real date from 2000 to
/// 2100 (a result file is untrusted; the bench config bounds dates alike).
fn release(run: &ModelRun) -> Option<(String, String, f64)> {
    let c = run.model.card.as_ref()?;
    let d = c.release_date.as_ref()?;
    let year = crate::calendar_year(d).filter(|y| (2000.0..2101.0).contains(y))?;
    Some((d.clone(), c.source.clone(), year))
}

/// A run's dollars per correct answer on its suite, its joules per correct answer where measured or estimated, and
/// the energy's basis; `None` without a positive, finite time per correct answer.
fn cost(cfg: &Config, s: &SuiteResult) -> Option<(f64, Option<f64>, String)> {
    let mc = &cfg.machine;
    let seconds = s
        .seconds_per_correct
        .filter(|x| x.is_finite() && *x > 0.0)?;
    let energy = s.energy.as_ref();
    let joules = energy
        .and_then(|e| e.joules_per_correct_answer)
        .filter(|j| j.is_finite() && *j > 0.0);
    let (j, basis) = match (joules, energy) {
        (Some(j), Some(e)) => (j, crate::energy_basis(e.status, &e.label)),
        _ => (
            mc.assumed_watts * seconds,
            format!("assumed ({} W)", mc.assumed_watts),
        ),
    };
    let usd = mc.dollars(j, seconds);
    (usd.is_finite() && usd > 0.0).then_some((usd, joules, basis))
}

/// Each model file with a declared release date ([`pool::by_model`]): its pooled accuracy on one suite and its
/// cheapest run's cost per correct answer; then the fit per threshold.
pub fn trend(cfg: &Config, results: &[(String, BenchResult)]) -> Trend {
    let mut left_out = Vec::new();
    for (file, r) in results {
        for run in r.runs.iter().filter(|r| !r.accuracy.is_empty()) {
            if release(run).is_none() && left_out.len() < 50 {
                let why = format!(
                    "{} ({file}): no declared release date ([models.card] release_date, 2000 to 2100)",
                    run.model.id
                );
                if !left_out.contains(&why) {
                    left_out.push(why);
                }
            }
        }
    }
    let (models, suite) = match pool::by_model(results, |run| release(run).is_some()) {
        Ok((m, s, _)) => (m, s),
        Err(e) => {
            return Trend {
                suite: None,
                entries: Vec::new(),
                fits: Vec::new(),
                left_out,
                summary: format!("Not tested: {e}."),
            };
        }
    };
    let entries: Vec<Entry> = models
        .iter()
        .filter_map(|m| {
            let (_, run, _) = m.runs.first()?;
            let (date, source, year) = release(run)?;
            // The cheapest of the file's runs (another machine, another thread count).
            let (usd, joules, basis) = m
                .runs
                .iter()
                .filter_map(|(_, _, s)| cost(cfg, s))
                .min_by(|a, b| a.0.total_cmp(&b.0))?;
            Some(Entry {
                model: run.model.id.clone(),
                release_date: date,
                source,
                release_year: year,
                accuracy: m.accuracy(),
                items: m.n,
                usd_per_correct: usd,
                joules_per_correct: joules,
                energy_basis: basis,
            })
        })
        .collect();
    let fits: Vec<ThresholdFit> = cfg
        .trend
        .thresholds
        .iter()
        .map(|&th| fit_threshold(&entries, th))
        .collect();
    let assumed = assumed_decline(cfg);
    let fitted: Vec<&ThresholdFit> = fits
        .iter()
        .filter(|f| f.decline_per_year.is_some())
        .collect();
    let summary = if fitted.is_empty() {
        format!(
            "Not tested: {} model(s) with a declared release date on {}; each threshold needs three models on the \
             cost frontier at two release dates or more. Run models released over several years on one machine \
             (configs/mid.toml declares release dates), each with a [models.card], to test the study's assumed {:.1}x \
             per year.",
            entries.len(),
            suite
                .as_deref()
                .map_or("any suite".into(), |s| format!("suite `{s}`")),
            assumed
        )
    } else {
        let parts: Vec<String> = fitted
            .iter()
            .map(|f| {
                let [lo, hi] = f.ci95.unwrap_or([f64::NAN; 2]);
                let all = match (f.all_decline_per_year, f.all_ci95) {
                    (Some(d), Some([l, h])) => format!(
                        "; over all {} models reaching it {d:.2}x ({l:.2} to {h:.2}){}",
                        f.reaching,
                        if (l..=h).contains(&assumed) {
                            ", consistent with the study's assumption"
                        } else {
                            ", not consistent with the study's assumption"
                        }
                    ),
                    _ => String::new(),
                };
                format!(
                    "at accuracy >= {:.0}%: {:.2}x per year on the frontier at release (95% interval {:.2} to {:.2}, \
                     {} models){all}",
                    100.0 * f.threshold,
                    f.decline_per_year.unwrap_or(f64::NAN),
                    lo,
                    hi,
                    f.frontier.len(),
                )
            })
            .collect();
        format!(
            "Cost per correct answer fell {}. The frontier falls by its construction (each model on it is cheaper than \
             all before it), so its interval is narrower than the data warrant; the fit over all models is the test. \
             The study assumes {:.2}x per year (g_alg x g_h); Epoch AI observed 9x to 900x per year in hosted prices \
             for fixed capability. Costs use the [machine] prices (assumed).",
            parts.join("; "),
            assumed
        )
    };
    Trend {
        suite,
        entries,
        fits,
        left_out,
        summary,
    }
}

/// The frontier at release of the models reaching `threshold`, and the line through it.
pub fn fit_threshold(entries: &[Entry], threshold: f64) -> ThresholdFit {
    let mut reaching: Vec<&Entry> = entries.iter().filter(|e| e.accuracy >= threshold).collect();
    reaching.sort_by(|a, b| {
        a.release_year
            .total_cmp(&b.release_year)
            .then(a.usd_per_correct.total_cmp(&b.usd_per_correct))
    });
    let mut frontier: Vec<&Entry> = Vec::new();
    for e in &reaching {
        if frontier
            .iter()
            .all(|f| e.usd_per_correct < f.usd_per_correct)
        {
            frontier.push(e);
        }
    }
    let xs: Vec<f64> = frontier.iter().map(|e| e.release_year).collect();
    let ys: Vec<f64> = frontier.iter().map(|e| e.usd_per_correct.ln()).collect();
    let mut dates = xs.clone();
    dates.dedup();
    let base = ThresholdFit {
        threshold,
        reaching: reaching.len(),
        frontier: frontier
            .iter()
            .map(|e| (e.model.clone(), e.release_year, e.usd_per_correct))
            .collect(),
        decline_per_year: None,
        ci95: None,
        line: None,
        all_decline_per_year: None,
        all_ci95: None,
        energy_decline_per_year: None,
        note: None,
    };
    // Every model reaching the threshold.
    let (ax, ay): (Vec<f64>, Vec<f64>) = reaching
        .iter()
        .map(|e| (e.release_year, e.usd_per_correct.ln()))
        .unzip();
    let all = (reaching.len() >= 3)
        .then(|| ols(&ax, &ay))
        .flatten()
        .map(|(_, slope, se)| {
            let t = t975(reaching.len() - 2);
            (
                (-slope).exp(),
                [(-slope - t * se).exp(), (-slope + t * se).exp()],
            )
        });
    let base = ThresholdFit {
        all_decline_per_year: all.map(|a| a.0),
        all_ci95: all.map(|a| a.1),
        ..base
    };
    if frontier.len() < 3 || dates.len() < 2 {
        return ThresholdFit {
            note: Some(format!(
                "{} model(s) reach it, {} on the frontier at {} release date(s); at least 3 at 2 dates are needed",
                reaching.len(),
                frontier.len(),
                dates.len()
            )),
            ..base
        };
    }
    let Some((intercept, slope, se)) = ols(&xs, &ys) else {
        return ThresholdFit {
            note: Some("the release dates do not spread enough to fit a line".into()),
            ..base
        };
    };
    let t = t975(frontier.len() - 2);
    let energy: Option<Vec<f64>> = frontier
        .iter()
        .map(|e| e.joules_per_correct.map(f64::ln))
        .collect();
    ThresholdFit {
        decline_per_year: Some((-slope).exp()),
        ci95: Some([(-slope - t * se).exp(), (-slope + t * se).exp()]),
        line: Some([intercept, slope]),
        energy_decline_per_year: energy
            .and_then(|ys| ols(&xs, &ys))
            .map(|(_, s, _)| (-s).exp()),
        ..base
    }
}

/// Least squares `y = a + b x`: `(a, b, standard error of b)` (the error is 0 with two points).
fn ols(xs: &[f64], ys: &[f64]) -> Option<(f64, f64, f64)> {
    let n = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    if sxx <= 1e-12 || xs.len() < 2 {
        return None;
    }
    let slope = xs
        .iter()
        .zip(ys)
        .map(|(x, y)| (x - mx) * (y - my))
        .sum::<f64>()
        / sxx;
    let se = if xs.len() > 2 {
        let rss: f64 = xs
            .iter()
            .zip(ys)
            .map(|(x, y)| (y - my - slope * (x - mx)).powi(2))
            .sum();
        (rss / (n - 2.0) / sxx).sqrt()
    } else {
        0.0
    };
    let intercept = my - slope * mx;
    (slope.is_finite() && se.is_finite() && intercept.is_finite()).then_some((intercept, slope, se))
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom.
fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        d if d <= 30 => T[d - 1],
        d => 1.96 + 2.4 / d as f64,
    }
}
