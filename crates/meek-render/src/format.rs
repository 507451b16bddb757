//! How reports write a figure: about four significant digits, the same in the compare tables, the leaderboard and
//! its charts, so a number reads the same wherever it appears.

/// A number with about four significant digits.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 10.0 {
        format!("{v:.2}")
    } else if a >= 0.01 {
        format!("{v:.3}")
    } else {
        format!("{v:.2e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_four_significant_digits() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(1066.6), "1067");
        assert_eq!(num(206.14), "206.1");
        assert_eq!(num(40.0), "40.00");
        assert_eq!(num(-4.8523), "-4.852");
        assert_eq!(num(0.35), "0.350");
        assert_eq!(num(3.4e-5), "3.40e-5");
    }
}
