//! Descriptive statistics for repeated measurements.
//!
//! Every figure meekbench reports from repeated measurement goes through [`Sample`], which holds at least one
//! finite value, and is summarised by [`describe`] into median, mean, standard deviation, minimum and maximum.
//!
//! Conventions (stated because tools differ):
//! - the standard deviation is the *sample* standard deviation (divides by `n - 1`, as hyperfine and
//!   llama-bench do); it is 0 for a single value;
//! - percentiles use linear interpolation between closest ranks (NumPy's default, "type 7" in Hyndman & Fan,
//!   1996), so `percentile(50)` equals the median.
//!
//! Two-sample comparisons use [`bootstrap_ci95`]: the percentile bootstrap (Efron & Tibshirani, *An Introduction
//! to the Bootstrap*, 1993, ch. 13) of a contrast (ratio or difference) of a statistic (median or mean) of two
//! independent samples. Its random stream comes from SplitMix64 (Steele, Lea & Flood, 2014) seeded by the caller,
//! written out here rather than taken from a crate so the same inputs give the same interval in every version.

use thiserror::Error;

/// Why a set of values cannot be summarised.
#[derive(Debug, Error, PartialEq)]
pub enum StatsError {
    /// No values were measured.
    #[error("no values to summarise: at least one measurement is needed")]
    Empty,
    /// A value was NaN or infinite.
    #[error("value #{index} is not a finite number ({value}); a timing or counter read went wrong")]
    NotFinite {
        /// Position of the offending value.
        index: usize,
        /// The value itself.
        value: f64,
    },
    /// A percentile outside 0..=100 was asked for.
    #[error("percentile {0} is outside 0..=100")]
    BadPercentile(f64),
}

/// A non-empty set of finite measurements, kept sorted for order statistics and in measurement order for the
/// record.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    raw: Vec<f64>,
    sorted: Vec<f64>,
}

impl Sample {
    /// Builds a sample, refusing an empty set or a non-finite value.
    pub fn new(values: Vec<f64>) -> Result<Self, StatsError> {
        if values.is_empty() {
            return Err(StatsError::Empty);
        }
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(StatsError::NotFinite { index, value });
        }
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        Ok(Self {
            raw: values,
            sorted,
        })
    }

    /// The values in the order they were measured.
    pub fn values(&self) -> &[f64] {
        &self.raw
    }

    /// Number of values (at least 1).
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Always false: a sample holds at least one value.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Arithmetic mean.
    pub fn mean(&self) -> f64 {
        self.raw.iter().sum::<f64>() / self.raw.len() as f64
    }

    /// Sample standard deviation (n - 1 in the denominator); 0 for a single value.
    pub fn stddev(&self) -> f64 {
        let n = self.raw.len();
        if n < 2 {
            return 0.0;
        }
        let mean = self.mean();
        let ss: f64 = self.raw.iter().map(|v| (v - mean) * (v - mean)).sum();
        (ss / (n - 1) as f64).sqrt()
    }

    /// Smallest value.
    pub fn min(&self) -> f64 {
        self.sorted[0]
    }

    /// Largest value.
    pub fn max(&self) -> f64 {
        self.sorted[self.sorted.len() - 1]
    }

    /// Median (the 50th percentile).
    pub fn median(&self) -> f64 {
        self.interpolate(0.5)
    }

    /// The `p`-th percentile, `p` in `0..=100`, by linear interpolation between closest ranks.
    pub fn percentile(&self, p: f64) -> Result<f64, StatsError> {
        if !(0.0..=100.0).contains(&p) {
            return Err(StatsError::BadPercentile(p));
        }
        Ok(self.interpolate(p / 100.0))
    }

    fn interpolate(&self, q: f64) -> f64 {
        let n = self.sorted.len();
        let h = (n - 1) as f64 * q;
        let lo = h.floor() as usize;
        let hi = h.ceil() as usize;
        self.sorted[lo] + (h - lo as f64) * (self.sorted[hi] - self.sorted[lo])
    }
}

/// The five figures reported for every repeated measurement, plus how many values they summarise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Description {
    /// Median.
    pub median: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation.
    pub stddev: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

/// Summarises a sample.
pub fn describe(sample: &Sample) -> Description {
    Description {
        median: sample.median(),
        mean: sample.mean(),
        stddev: sample.stddev(),
        min: sample.min(),
        max: sample.max(),
    }
}

/// The 95% Wilson score interval of a proportion `successes / n` (Wilson, 1927; recommended over the normal
/// approximation by Brown, Cai & DasGupta, 2001, since it stays inside [0, 1] and behaves at 0 and n).
/// Returns `(0, 1)` for `n = 0`.
pub fn wilson95(successes: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let (n, p) = (n as f64, successes as f64 / n as f64);
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The study's p-step model, `acc(p) = acc(q)^(p/q)`: the accuracy a chain of `p` dependent steps would have if
/// each step succeeded independently with the per-step rate measured at `q` steps (`successes / n`). Returns the
/// prediction and its 95% interval, the Wilson interval of the measured rate raised to the same power (a monotone
/// map of an interval is an interval of the mapped value). `exponent` is `p / q`.
pub fn power_prediction95(successes: usize, n: usize, exponent: f64) -> (f64, (f64, f64)) {
    let p = if n == 0 {
        0.0
    } else {
        successes as f64 / n as f64
    };
    let (lo, hi) = wilson95(successes, n);
    (p.powf(exponent), (lo.powf(exponent), hi.powf(exponent)))
}

/// The statistic of each sample that a bootstrap contrasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statistic {
    /// The median (robust to the occasional slow repetition; for timings).
    Median,
    /// The mean (for 0/1 outcomes such as correct answers, where it is the proportion).
    Mean,
}

/// How the two statistics are put side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contrast {
    /// `stat(b) / stat(a)`; resamples where `stat(a)` is not positive are left out.
    Ratio,
    /// `stat(b) - stat(a)`.
    Difference,
}

/// SplitMix64: a tiny, well-mixed generator whose stream is fixed by its definition.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in `[0, 1)` from the top 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform index in `0..n` (`n > 0`), by Lemire's multiply-shift with rejection, so without modulo bias.
    pub fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= n.wrapping_neg() % n {
                return (m >> 64) as usize;
            }
        }
    }
}

fn statistic(values: &mut [f64], stat: Statistic) -> f64 {
    match stat {
        Statistic::Mean => values.iter().sum::<f64>() / values.len() as f64,
        Statistic::Median => {
            values.sort_by(f64::total_cmp);
            let n = values.len();
            if n % 2 == 1 {
                values[n / 2]
            } else {
                (values[n / 2 - 1] + values[n / 2]) / 2.0
            }
        }
    }
}

/// A 95% percentile-bootstrap interval of `contrast(stat(b), stat(a))` for two independent samples.
///
/// Each of `resamples` rounds draws `a.len()` values from `a` and `b.len()` values from `b` with replacement and
/// computes the contrast; the interval is the 2.5th and 97.5th percentiles of those contrasts. Returns `None`
/// when either sample has fewer than two values (one value carries no spread, so nothing can be said about
/// chance), when `resamples` is below 100, or when a ratio is undefined in more than half of the rounds.
pub fn bootstrap_ci95(
    a: &Sample,
    b: &Sample,
    stat: Statistic,
    contrast: Contrast,
    resamples: usize,
    seed: u64,
) -> Option<(f64, f64)> {
    if a.len() < 2 || b.len() < 2 || resamples < 100 {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let (mut ra, mut rb) = (vec![0.0; a.len()], vec![0.0; b.len()]);
    let mut out = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for slot in ra.iter_mut() {
            *slot = a.values()[rng.below(a.len())];
        }
        for slot in rb.iter_mut() {
            *slot = b.values()[rng.below(b.len())];
        }
        let (sa, sb) = (statistic(&mut ra, stat), statistic(&mut rb, stat));
        match contrast {
            Contrast::Difference => out.push(sb - sa),
            Contrast::Ratio if sa > 0.0 => out.push(sb / sa),
            Contrast::Ratio => {}
        }
    }
    if out.len() * 2 < resamples {
        return None;
    }
    let s = Sample::new(out).ok()?;
    Some((s.percentile(2.5).ok()?, s.percentile(97.5).ok()?))
}

/// A 95% percentile-bootstrap interval of the mean difference `b[i] - a[i]` of paired values (the same items
/// measured twice), resampling the pairs. Pairing removes the variation between items that both runs share, so
/// two runs that answered the same questions identically get the interval `[0, 0]`. Returns `None` for fewer than
/// two pairs, unequal lengths, or fewer than 100 resamples.
pub fn bootstrap_paired_difference_ci95(
    a: &[f64],
    b: &[f64],
    resamples: usize,
    seed: u64,
) -> Option<(f64, f64)> {
    if a.len() != b.len() || a.len() < 2 || resamples < 100 {
        return None;
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
    if d.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let out: Vec<f64> = (0..resamples)
        .map(|_| (0..d.len()).map(|_| d[rng.below(d.len())]).sum::<f64>() / d.len() as f64)
        .collect();
    let s = Sample::new(out).ok()?;
    Some((s.percentile(2.5).ok()?, s.percentile(97.5).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_bootstrap_sees_identical_answers_as_identical() {
        let a: Vec<f64> = (0..48).map(|i| f64::from(u8::from(i % 4 == 0))).collect();
        assert_eq!(
            bootstrap_paired_difference_ci95(&a, &a, 1000, 1),
            Some((0.0, 0.0))
        );
        // b gets 7 more of the 48 items right than a: a clear improvement.
        let b: Vec<f64> = (0..48)
            .map(|i| f64::from(u8::from(i % 4 == 0 || i < 10)))
            .collect();
        let (lo, hi) = bootstrap_paired_difference_ci95(&a, &b, 2000, 1).unwrap();
        assert!(lo > 0.0 && hi < 0.5, "{lo} {hi}");
        assert_eq!(bootstrap_paired_difference_ci95(&a, &b[1..], 1000, 1), None);
    }

    #[test]
    fn splitmix_matches_reference_stream() {
        // First outputs for seed 0 from the reference C implementation (Vigna, prng.di.unimi.it/splitmix64.c).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut r = SplitMix64::new(7);
        let mut seen = [0usize; 5];
        for _ in 0..5000 {
            seen[r.below(5)] += 1;
        }
        assert!(seen.iter().all(|&c| (850..1150).contains(&c)), "{seen:?}");
    }

    #[test]
    fn bootstrap_separates_clearly_different_samples() {
        let a = Sample::new(vec![100.0, 101.0, 99.0, 100.5, 99.5]).unwrap();
        let b = Sample::new(vec![150.0, 151.0, 149.0, 150.5, 149.5]).unwrap();
        let (lo, hi) = bootstrap_ci95(&a, &b, Statistic::Median, Contrast::Ratio, 2000, 1).unwrap();
        assert!(lo > 1.4 && hi < 1.6 && lo <= 1.5 && 1.5 <= hi, "{lo} {hi}");
        // The same seed gives the same interval.
        assert_eq!(
            bootstrap_ci95(&a, &b, Statistic::Median, Contrast::Ratio, 2000, 1),
            Some((lo, hi))
        );
    }

    #[test]
    fn bootstrap_of_overlapping_samples_contains_one() {
        let a = Sample::new(vec![100.0, 110.0, 90.0, 105.0, 95.0]).unwrap();
        let b = Sample::new(vec![102.0, 92.0, 108.0, 97.0, 101.0]).unwrap();
        let (lo, hi) = bootstrap_ci95(&a, &b, Statistic::Median, Contrast::Ratio, 2000, 1).unwrap();
        assert!(lo < 1.0 && hi > 1.0, "{lo} {hi}");
    }

    #[test]
    fn bootstrap_difference_of_proportions() {
        // 2/10 against 9/10 correct: the difference of means is 0.7 and clearly above zero.
        let a = Sample::new((0..10).map(|i| f64::from(u8::from(i < 2))).collect()).unwrap();
        let b = Sample::new((0..10).map(|i| f64::from(u8::from(i < 9))).collect()).unwrap();
        let (lo, hi) =
            bootstrap_ci95(&a, &b, Statistic::Mean, Contrast::Difference, 2000, 3).unwrap();
        assert!(lo > 0.2 && hi <= 1.0 && lo < 0.7 && hi > 0.7, "{lo} {hi}");
    }

    #[test]
    fn bootstrap_refuses_what_it_cannot_judge() {
        let one = Sample::new(vec![1.0]).unwrap();
        let two = Sample::new(vec![1.0, 2.0]).unwrap();
        let zeros = Sample::new(vec![0.0, 0.0, 0.0]).unwrap();
        assert_eq!(
            bootstrap_ci95(&one, &two, Statistic::Median, Contrast::Ratio, 1000, 1),
            None
        );
        assert_eq!(
            bootstrap_ci95(&two, &two, Statistic::Median, Contrast::Ratio, 10, 1),
            None
        );
        assert_eq!(
            bootstrap_ci95(&zeros, &two, Statistic::Median, Contrast::Ratio, 1000, 1),
            None
        );
    }

    #[test]
    fn wilson_interval_known_values() {
        // statsmodels proportion_confint(8, 10, method="wilson") = (0.4902, 0.9433)
        let (lo, hi) = wilson95(8, 10);
        assert!(
            (lo - 0.4902).abs() < 1e-4 && (hi - 0.9433).abs() < 1e-4,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson95(0, 20);
        assert!(lo == 0.0 && (hi - 0.1611).abs() < 1e-4, "{hi}");
        assert_eq!(wilson95(0, 0), (0.0, 1.0));
        let (lo, hi) = wilson95(20, 20);
        assert!((lo - 0.8389).abs() < 1e-4 && hi == 1.0);
    }

    #[test]
    fn power_prediction_raises_the_rate_and_its_interval() {
        // 8/10 correct at one step: three steps predict 0.8^3 = 0.512 within [0.4902^3, 0.9433^3].
        let (p, (lo, hi)) = power_prediction95(8, 10, 3.0);
        assert!((p - 0.512).abs() < 1e-12);
        assert!((lo - 0.4902f64.powi(3)).abs() < 1e-3 && (hi - 0.9433f64.powi(3)).abs() < 1e-3);
        // Measured at two steps, predicting four: the square.
        let (p, _) = power_prediction95(9, 10, 2.0);
        assert!((p - 0.81).abs() < 1e-12);
        assert_eq!(power_prediction95(0, 0, 2.0).1, (0.0, 1.0));
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn refuses_empty_and_non_finite() {
        assert_eq!(Sample::new(vec![]), Err(StatsError::Empty));
        assert!(matches!(
            Sample::new(vec![1.0, f64::NAN]),
            Err(StatsError::NotFinite { index: 1, .. })
        ));
        assert!(matches!(
            Sample::new(vec![f64::INFINITY]),
            Err(StatsError::NotFinite { index: 0, .. })
        ));
    }

    #[test]
    fn known_values() {
        // Values chosen so every figure can be checked by hand.
        let s = Sample::new(vec![4.0, 1.0, 3.0, 2.0]).unwrap();
        let d = describe(&s);
        assert!(close(d.mean, 2.5));
        assert!(close(d.median, 2.5));
        assert!(close(d.min, 1.0));
        assert!(close(d.max, 4.0));
        // variance = (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3
        assert!(close(d.stddev, (5.0f64 / 3.0).sqrt()));
        assert_eq!(s.values(), &[4.0, 1.0, 3.0, 2.0]);
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let s = Sample::new((1..=10).map(f64::from).collect()).unwrap();
        // numpy.percentile(range(1, 11), [0, 50, 90, 99, 100]) = [1, 5.5, 9.1, 9.91, 10]
        for (p, want) in [
            (0.0, 1.0),
            (50.0, 5.5),
            (90.0, 9.1),
            (99.0, 9.91),
            (100.0, 10.0),
        ] {
            assert!(close(s.percentile(p).unwrap(), want), "p{p}");
        }
        assert_eq!(s.percentile(101.0), Err(StatsError::BadPercentile(101.0)));
    }

    #[test]
    fn single_value_has_zero_spread() {
        let d = describe(&Sample::new(vec![7.0]).unwrap());
        assert_eq!(
            (d.median, d.mean, d.stddev, d.min, d.max),
            (7.0, 7.0, 0.0, 7.0, 7.0)
        );
    }
}
