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

#[cfg(test)]
mod tests {
    use super::*;

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
