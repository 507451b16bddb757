//! Calibrating the loss-to-accuracy curve on measured points: least squares over `(Lm, x0, k)` with the floor `b`
//! fixed at the suite's chance rate, by Levenberg-Marquardt (Marquardt, 1963) with a finite-difference Jacobian.
//!
//! A calibration can fail, and says why: it needs three models of distinct loss (runs of one file count once),
//! and a fitted curve must mean what the curve means (accuracy between the floor and 1, falling as loss rises,
//! its midpoint inside the losses measured). Anything else is refused and the study's curve kept: an
//! extrapolated curve with a ceiling above 100% would drive every chart after it.

use crate::model::AccuracyCurve;

/// A calibration that passed: the curve and how well it fits its points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// The fitted curve.
    pub curve: AccuracyCurve,
    /// Root mean square of the residuals (accuracy units).
    pub rmse: f64,
    /// Points fitted (one per model file).
    pub models: usize,
    /// Distinct losses among them.
    pub losses: usize,
}

/// 95% intervals of the fitted parameters, from a bootstrap over items: each round redraws every model's answers
/// (as many as it gave, each correct with the model's measured rate) and refits the curve from the fit's values; a
/// round whose curve loses the curve's meaning (as [`calibrate`] checks it) is left out.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Intervals {
    /// `Lm`, 2.5th and 97.5th percentiles.
    pub lm: [f64; 2],
    /// `x0`.
    pub x0: [f64; 2],
    /// `k`.
    pub k: [f64; 2],
    /// Rounds that gave a curve keeping its meaning, of those drawn.
    pub rounds: usize,
    /// Those rounds' `(Lm, x0, k)`, for draws that keep the parameters' correlation (the bands).
    #[serde(skip)]
    pub draws: Vec<[f64; 3]>,
}

/// Rounds of [`intervals`].
pub const BOOTSTRAP_ROUNDS: usize = 400;

/// Bootstrap intervals of `curve`'s parameters over `points` given as `(loss, correct, n)` per model, with a fixed
/// seed so a report is reproducible. `None` when fewer than half the rounds give finite parameters.
pub fn intervals(
    points: &[(f64, usize, usize)],
    curve: AccuracyCurve,
    rounds: usize,
    seed: u64,
) -> Option<Intervals> {
    let mut rng = meek_stats::SplitMix64::new(seed);
    let (lo, hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
    let mut kept: Vec<[f64; 3]> = Vec::new();
    let mut resampled = Vec::with_capacity(points.len());
    for _ in 0..rounds {
        resampled.clear();
        for &(loss, correct, n) in points {
            let p = (correct.min(n) as f64 / n.max(1) as f64).clamp(0.0, 1.0);
            let hits = binomial(&mut rng, n, p);
            resampled.push((loss, hits / n.max(1) as f64));
        }
        let Ok(c) = fit_accuracy(&resampled, curve) else {
            continue;
        };
        if broken(&c, lo, hi).is_none() {
            kept.push([c.lm, c.x0, c.k]);
        }
    }
    if kept.len() * 2 < rounds.max(1) {
        return None;
    }
    let ci = |i: usize| {
        let mut v: Vec<f64> = kept.iter().map(|d| d[i]).collect();
        crate::bands::central95(&mut v)
    };
    Some(Intervals {
        lm: ci(0),
        x0: ci(1),
        k: ci(2),
        rounds: kept.len(),
        draws: kept,
    })
}

/// Fits `acc(L)` to one `(loss, accuracy)` point per model and checks the result against the curve's meaning:
/// `0 <= b < b + Lm <= 1`, `k < 0`, `x0` within the measured losses. `Err` says which condition failed.
pub fn calibrate(points: &[(f64, f64)], start: AccuracyCurve) -> Result<Calibration, String> {
    if let Some(&(l, a)) = points
        .iter()
        .find(|(l, a)| !l.is_finite() || !a.is_finite() || !(0.0..=1.0).contains(a))
    {
        return Err(format!(
            "a point (loss {l}, accuracy {a}) is not a loss and an accuracy in [0, 1]"
        ));
    }
    let mut losses: Vec<f64> = points.iter().map(|p| p.0).collect();
    losses.sort_by(f64::total_cmp);
    losses.dedup_by(|a, b| (*a - *b).abs() <= 1e-9 * b.abs().max(1.0));
    if losses.len() < 3 {
        return Err(format!(
            "{} model(s) of distinct loss; at least 3 are needed to fit Lm, x0 and k",
            losses.len()
        ));
    }
    let c = fit_accuracy(points, start)?;
    if let Some(why) = broken(&c, losses[0], losses[losses.len() - 1]) {
        return Err(format!(
            "the fitted curve (Lm = {:.3}, x0 = {:.3}, k = {:.2}) is refused: {why}",
            c.lm, c.x0, c.k
        ));
    }
    let rmse = (points
        .iter()
        .map(|&(l, a)| (c.accuracy(l) - a).powi(2))
        .sum::<f64>()
        / points.len() as f64)
        .sqrt();
    Ok(Calibration {
        curve: c,
        rmse,
        models: points.len(),
        losses: losses.len(),
    })
}

/// Why a fitted curve does not mean what the curve means, or `None`: finite parameters, accuracy within [0, 1],
/// falling with loss, its midpoint within the losses measured (`lo` to `hi`).
fn broken(c: &AccuracyCurve, lo: f64, hi: f64) -> Option<String> {
    if !(c.lm.is_finite() && c.x0.is_finite() && c.k.is_finite()) {
        Some("the fit did not converge to finite parameters".to_string())
    } else if !(0.0..1.0).contains(&c.b) || c.lm <= 0.0 || c.b + c.lm > 1.0 + 1e-9 {
        Some(format!(
            "its accuracy range ({:.3}, {:.3}) is not inside [0, 1]",
            c.b,
            c.b + c.lm
        ))
    } else if c.k >= 0.0 {
        Some(format!("its slope k = {:.3} is not negative", c.k))
    } else if !(lo..=hi).contains(&c.x0) {
        Some(format!(
            "its midpoint x0 = {:.3} lies outside the losses measured ({lo:.3} to {hi:.3})",
            c.x0
        ))
    } else {
        None
    }
}

/// Fits `acc(L)` to `(loss, accuracy)` points, starting from `start` (whose `b` is kept). Needs 3 points or more.
pub fn fit_accuracy(points: &[(f64, f64)], start: AccuracyCurve) -> Result<AccuracyCurve, String> {
    if points.len() < 3 {
        return Err(format!(
            "{} points; at least 3 are needed to fit Lm, x0 and k",
            points.len()
        ));
    }
    let curve = |p: [f64; 3]| AccuracyCurve {
        lm: p[0],
        x0: p[1],
        k: p[2],
        b: start.b,
    };
    let sse = |p: [f64; 3]| -> f64 {
        let c = curve(p);
        points
            .iter()
            .map(|&(l, a)| (c.accuracy(l) - a).powi(2))
            .sum()
    };
    let mut p = [start.lm, start.x0, start.k];
    let mut lambda = 1e-3;
    let mut err = sse(p);
    for _ in 0..500 {
        // Jacobian of the residuals, by central differences.
        let mut jtj = [[0f64; 3]; 3];
        let mut jtr = [0f64; 3];
        for &(l, a) in points {
            let r = curve(p).accuracy(l) - a;
            let mut j = [0f64; 3];
            for (i, ji) in j.iter_mut().enumerate() {
                let h = 1e-6 * p[i].abs().max(1e-3);
                let (mut up, mut dn) = (p, p);
                up[i] += h;
                dn[i] -= h;
                *ji = (curve(up).accuracy(l) - curve(dn).accuracy(l)) / (2.0 * h);
            }
            for r_ in 0..3 {
                jtr[r_] += j[r_] * r;
                for c in 0..3 {
                    jtj[r_][c] += j[r_] * j[c];
                }
            }
        }
        let mut improved = false;
        for _ in 0..30 {
            let mut m = jtj;
            for (i, row) in m.iter_mut().enumerate() {
                row[i] *= 1.0 + lambda;
            }
            let Some(step) = solve3(m, jtr.map(|v| -v)) else {
                lambda *= 10.0;
                continue;
            };
            let cand = [p[0] + step[0], p[1] + step[1], p[2] + step[2]];
            let e = sse(cand);
            if e.is_finite() && e < err {
                p = cand;
                err = e;
                lambda = (lambda / 10.0).max(1e-12);
                improved = true;
                break;
            }
            lambda *= 10.0;
        }
        if !improved || err < 1e-20 {
            break;
        }
    }
    Ok(curve(p))
}

/// Items above which a binomial draw takes the normal approximation instead of one uniform number per item (a
/// result file is untrusted and may claim any count; at this size the two agree far beyond what the intervals show).
const EXACT_DRAWS: usize = 1_000;

/// A binomial draw of `n` trials at rate `p`, as a count.
fn binomial(rng: &mut meek_stats::SplitMix64, n: usize, p: f64) -> f64 {
    if n <= EXACT_DRAWS {
        return (0..n).filter(|_| rng.unit() < p).count() as f64;
    }
    // Box-Muller.
    let (u1, u2) = (rng.unit().max(f64::MIN_POSITIVE), rng.unit());
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    let n = n as f64;
    (n * p + z * (n * p * (1.0 - p)).sqrt())
        .round()
        .clamp(0.0, n)
}

/// Solves a 3x3 system by Gaussian elimination with partial pivoting.
fn solve3(mut m: [[f64; 3]; 3], mut v: [f64; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let piv = (col..3).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[piv][col].abs() < 1e-300 {
            return None;
        }
        m.swap(col, piv);
        v.swap(col, piv);
        for row in col + 1..3 {
            let f = m[row][col] / m[col][col];
            let pivot_row = m[col];
            for (x, p) in m[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
            v[row] -= f * v[col];
        }
    }
    let mut x = [0f64; 3];
    for row in (0..3).rev() {
        let s: f64 = (row + 1..3).map(|c| m[row][c] * x[c]).sum();
        x[row] = (v[row] - s) / m[row][row];
    }
    Some(x)
}
