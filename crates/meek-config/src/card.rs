//! `[models.card]`: a model's declared figures, checked before anything is fetched. They come from strangers'
//! configs and end up in result files and reports, so each is bounded: a URL of printable characters, counts
//! within what any language model has, a real calendar date.

use serde::Deserialize;

use crate::Card;

/// The table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCard {
    source: Option<String>,
    training_tokens: Option<f64>,
    release_date: Option<toml::Value>,
    licence: Option<String>,
    parameters: Option<f64>,
}

/// Longest URL or licence name kept.
const MAX_TEXT: usize = 512;
/// Training tokens: between a toy and a hundred times today's largest runs.
const TOKENS: (f64, f64) = (1e6, 1e15);
/// Parameters: between a toy and ten trillion.
const PARAMETERS: (f64, f64) = (1e3, 1e13);

/// Validates a card; `Err((field, message))` names the key under `card`.
pub(crate) fn validate(raw: RawCard) -> Result<Card, (&'static str, String)> {
    let source = raw.source.ok_or((
        "source",
        "is missing; give the URL of the model card the figures come from".to_string(),
    ))?;
    let source = source.trim().to_string();
    if !(source.starts_with("https://") || source.starts_with("http://"))
        || source.len() > MAX_TEXT
        || source.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err((
            "source",
            format!(
                "{:?} is not a URL (http:// or https://, at most {MAX_TEXT} characters, no spaces)",
                shorten(&source)
            ),
        ));
    }
    let count = |v: Option<f64>, (lo, hi): (f64, f64), key: &'static str| match v {
        Some(x) if !(x.is_finite() && (lo..=hi).contains(&x)) => Err((
            key,
            format!("{x} is outside {lo:e} to {hi:e}; write the count in full, e.g. 2e12"),
        )),
        v => Ok(v),
    };
    let training_tokens = count(raw.training_tokens, TOKENS, "training_tokens")?;
    let parameters = count(raw.parameters, PARAMETERS, "parameters")?.map(|p| p.round() as u64);
    let release_date = raw
        .release_date
        .map(|v| match v {
            toml::Value::String(s) if date(&s) => Ok(s),
            toml::Value::Datetime(d) if d.time.is_none() && date(&d.to_string()) => {
                Ok(d.to_string())
            }
            other => Err((
                "release_date",
                format!(
                    "{} is not a date YYYY-MM-DD between 2000 and 2100",
                    shorten(&other.to_string())
                ),
            )),
        })
        .transpose()?;
    let licence = raw
        .licence
        .map(|l| {
            let l = l.trim().to_string();
            if l.is_empty() || l.len() > MAX_TEXT || l.chars().any(char::is_control) {
                Err((
                    "licence",
                    format!(
                        "{:?} is not a licence name (1 to {MAX_TEXT} printable characters)",
                        shorten(&l)
                    ),
                ))
            } else {
                Ok(l)
            }
        })
        .transpose()?;
    Ok(Card {
        source,
        training_tokens,
        release_date,
        licence,
        parameters,
    })
}

/// `YYYY-MM-DD`, a real day of a year from 2000 to 2100.
fn date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|t| t.parse::<u32>().ok());
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (2000..=2100).contains(&y) && (1..=days).contains(&d)
}

/// At most 80 characters of an offending value, for the message.
fn shorten(s: &str) -> String {
    s.chars().take(80).collect()
}
