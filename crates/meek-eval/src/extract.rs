//! Answer extraction and numeric comparison.

/// A number found in text, with the text it was parsed from (separators removed).
#[derive(Debug, Clone, PartialEq)]
pub struct Number {
    /// Normalised text, e.g. `-1234.5`.
    pub text: String,
    /// Its value.
    pub value: f64,
}

/// Every number in `s`, in order: optional minus sign, digits with optional thousands separators (`1,234`), optional
/// decimals. A trailing full stop is not a decimal point.
pub fn numbers(s: &str) -> Vec<Number> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let neg = i > 0 && b[i - 1] == b'-' && (i < 2 || !b[i - 2].is_ascii_alphanumeric());
        let mut j = i;
        let mut text = String::new();
        if neg {
            text.push('-');
        }
        loop {
            while j < b.len() && b[j].is_ascii_digit() {
                text.push(b[j] as char);
                j += 1;
            }
            // A comma followed by exactly three digits continues the number.
            if j < b.len()
                && b[j] == b','
                && b.get(j + 1..j + 4)
                    .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
                && !b.get(j + 4).is_some_and(u8::is_ascii_digit)
            {
                j += 1;
                continue;
            }
            break;
        }
        if j + 1 < b.len() && b[j] == b'.' && b[j + 1].is_ascii_digit() {
            text.push('.');
            j += 1;
            while j < b.len() && b[j].is_ascii_digit() {
                text.push(b[j] as char);
                j += 1;
            }
        }
        if let Ok(value) = text.parse::<f64>() {
            out.push(Number {
                text: normalise(&text),
                value,
            });
        }
        i = j;
    }
    out
}

/// `12.50` -> `12.5`, `7.0` -> `7`, `-0` -> `0`.
fn normalise(t: &str) -> String {
    let mut s = t.to_string();
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    if s == "-0" { "0".into() } else { s }
}

/// Strict: the number on the last `Answer:` line (case-insensitive), or after the last `####`.
pub fn strict(output: &str) -> Option<Number> {
    let lower = output.to_ascii_lowercase();
    let at = [
        lower.rfind("answer:").map(|p| p + 7),
        lower.rfind("####").map(|p| p + 4),
    ]
    .into_iter()
    .flatten()
    .max()?;
    let line = output[at..].lines().next().unwrap_or("");
    numbers(line).into_iter().next()
}

/// Flexible: the content of the last `\boxed{...}` if any, else the last number anywhere in the output.
pub fn flexible(output: &str) -> Option<Number> {
    if let Some(p) = output.rfind("\\boxed{") {
        let rest = &output[p + 7..];
        let inner = &rest[..rest.find('}').unwrap_or(rest.len())];
        if let Some(n) = numbers(inner).into_iter().last() {
            return Some(n);
        }
    }
    numbers(output).into_iter().last()
}

/// Whether `got` equals the expected answer as a number (relative tolerance 1e-9).
pub fn matches(got: Option<&Number>, expected: &str) -> bool {
    let Some(got) = got else { return false };
    let Some(want) = numbers(expected).into_iter().last() else {
        return false;
    };
    (got.value - want.value).abs() <= 1e-9 * want.value.abs().max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: Option<Number>) -> Option<String> {
        n.map(|n| n.text)
    }

    #[test]
    fn numbers_are_found_with_separators_signs_and_decimals() {
        let n: Vec<String> = numbers("Pay $1,234.50 for 3 items, -7 left, 2.0 kg. Ends.")
            .into_iter()
            .map(|n| n.text)
            .collect();
        assert_eq!(n, ["1234.5", "3", "-7", "2"]);
        // A hyphen between letters and digits is not a minus sign; a list comma is not a thousands separator.
        let n: Vec<String> = numbers("x-3 and 1,23 and 10,000,000")
            .into_iter()
            .map(|n| n.text)
            .collect();
        assert_eq!(n, ["3", "1", "23", "10000000"]);
        assert!(numbers("no digits here").is_empty());
    }

    #[test]
    fn strict_wants_the_requested_format() {
        assert_eq!(t(strict("12 + 35 = 47.\nAnswer: 47")), Some("47".into()));
        assert_eq!(t(strict("answer: -3.5 degrees")), Some("-3.5".into()));
        assert_eq!(t(strict("so #### 1,200")), Some("1200".into()));
        assert_eq!(
            t(strict("Answer: 5\nWait, Answer: 6")),
            Some("6".into()),
            "the last one counts"
        );
        assert_eq!(t(strict("The answer is 47.")), None);
        assert_eq!(t(strict("Answer: none")), None);
        assert_eq!(t(strict("")), None);
    }

    #[test]
    fn flexible_takes_the_last_number_or_the_box() {
        assert_eq!(
            t(flexible("First 12, then 35, total 47 apples.")),
            Some("47".into())
        );
        assert_eq!(
            t(flexible("$\\boxed{1,024}$ and then 7 more words 9")),
            Some("1024".into())
        );
        assert_eq!(t(flexible("It costs $3.50.")), Some("3.5".into()));
        assert_eq!(t(flexible("I don't know.")), None);
    }

    #[test]
    fn comparison_is_numeric() {
        let n = |s: &str| numbers(s).into_iter().next();
        assert!(matches(n("47.0").as_ref(), "47"));
        assert!(matches(n("1,000").as_ref(), "1000"));
        assert!(!matches(n("46").as_ref(), "47"));
        assert!(!matches(None, "47"));
        assert!(matches(n("-2").as_ref(), "-2"));
    }
}
