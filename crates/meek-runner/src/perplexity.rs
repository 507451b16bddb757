//! Perplexity workloads (`[[perplexity]]`): a text's teacher-forced loss on the loaded model, the measured side
//! of the study's loss axis.
//!
//! Scored exactly as llama.cpp's `llama-perplexity` scores it, so that the two tools' figures on one file and
//! text compare: the text (less one final newline, as its `-f` reads it) is tokenized with BOS where the model asks
//! for it; it splits into whole chunks of `context` tokens; each chunk runs alone from position 0, its first token
//! replaced by BOS where the model asks for it; the tokens after the first half (`context / 2 + 1 ..`) are scored
//! by the negative log-likelihood the model gave them. The mean over every scored token is the loss in nats, its
//! exponential the perplexity, and the standard error is llama-perplexity's (the per-token standard deviation over
//! `sqrt(n - 1)`). Bits per byte divide the same total by ln 2 and the UTF-8 bytes of the scored tokens' text,
//! which compares models whose tokenizers differ.
//!
//! The text is read and checked in the parent, before anything is measured, and sent to the measuring process
//! with the request; its token count is checked there right after the model loads, before the speed points.

use std::time::Instant;

use meek_config::{MAX_PERPLEXITY_TEXT_BYTES, PerplexitySpec};
use meek_engine::Engine;
use meek_schema::PerplexityResult;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::BenchError;

/// A perplexity workload with its text read, as the measuring process receives it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PreparedText {
    /// Workload name from the config.
    pub name: String,
    /// The text, less one final newline.
    pub text: String,
    /// SHA-256 of the file as read (with its final newline).
    pub sha256: String,
    /// Bytes of the file.
    pub bytes: u64,
    /// Tokens per chunk.
    pub context: usize,
    /// At most this many chunks; `None`: all.
    pub chunks: Option<usize>,
}

/// Reads and checks every workload's text: a bounded read, UTF-8, each error naming the workload and the file; all
/// texts together at most [`MAX_PERPLEXITY_TEXT_BYTES`] (every model's measuring process receives them all).
pub fn prepare(specs: &[PerplexitySpec], origin: &str) -> Result<Vec<PreparedText>, BenchError> {
    let mut total = 0u64;
    let mut out = Vec::with_capacity(specs.len());
    for (i, s) in specs.iter().enumerate() {
        let bad = |m: String| {
            BenchError::Config(format!(
                "{origin}: perplexity `{}` (perplexity[{i}].text, {}): {m}",
                s.name,
                meek_schema::shown(&s.text)
            ))
        };
        let raw = meek_schema::read_bytes_at_most(&s.text, MAX_PERPLEXITY_TEXT_BYTES - total).map_err(
            |e| match e {
                meek_schema::ReadError::TooLarge { .. } => bad(format!(
                    "the texts of all [[perplexity]] workloads exceed {} MiB together; use shorter texts or fewer \
                     workloads",
                    MAX_PERPLEXITY_TEXT_BYTES >> 20
                )),
                other => bad(other.to_string()),
            },
        )?;
        total += raw.len() as u64;
        let sha256 = format!("{:x}", Sha256::digest(&raw));
        let bytes = raw.len() as u64;
        let mut text = String::from_utf8(raw).map_err(|e| {
            bad(format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        if text.ends_with('\n') {
            text.pop();
        }
        out.push(PreparedText {
            name: s.name.clone(),
            text,
            sha256,
            bytes,
            context: s.context,
            chunks: s.chunks,
        });
    }
    Ok(out)
}

/// A workload tokenized for one model, checked to fit it.
pub struct Tokenized<'a> {
    text: &'a PreparedText,
    tokens: Vec<u32>,
    /// Chunks to score.
    pub chunks: usize,
}

/// Tokenizes a workload's text for the loaded model and checks that it gives at least two chunks and that a chunk
/// fits the model, before anything is measured.
pub fn tokenize<'a>(
    engine: &Engine,
    model: &str,
    t: &'a PreparedText,
) -> Result<Tokenized<'a>, BenchError> {
    let bad =
        |m: String| BenchError::Config(format!("model `{model}`, perplexity `{}`: {m}", t.name));
    if t.context > engine.max_positions() {
        return Err(bad(format!(
            "a context of {} tokens exceeds the {} positions the model supports; lower `context`",
            t.context,
            engine.max_positions()
        )));
    }
    let tokens = engine.tokenizer().encode(&t.text).map_err(bad)?;
    if tokens.len() < 2 * t.context {
        return Err(bad(format!(
            "the text gives {} tokens with this model's tokenizer; a context of {} needs at least {} (as \
             llama-perplexity asks): lower `context` or use a longer text",
            tokens.len(),
            t.context,
            2 * t.context
        )));
    }
    let whole = tokens.len() / t.context;
    let chunks = t.chunks.map_or(whole, |c| c.min(whole));
    Ok(Tokenized {
        text: t,
        tokens,
        chunks,
    })
}

/// Scores a tokenized workload, asking `stop` before each chunk; `None` when stopped before the last chunk (the
/// run is then partial and `bench --resume` scores it again).
pub fn score(
    engine: &mut Engine,
    t: &Tokenized<'_>,
    bar: &indicatif::ProgressBar,
    stop: &dyn Fn() -> bool,
) -> Result<Option<PerplexityResult>, BenchError> {
    let ctx = t.text.context;
    let first = ctx / 2;
    let bos = engine
        .tokenizer()
        .bos()
        .filter(|_| engine.tokenizer().adds_bos());
    let (mut sum, mut sum2, mut count, mut bytes) = (0f64, 0f64, 0usize, 0usize);
    let started = Instant::now();
    for c in 0..t.chunks {
        if stop() {
            return Ok(None);
        }
        bar.set_message(format!("perplexity {} {}/{}", t.text.name, c + 1, t.chunks));
        let mut chunk = t.tokens[c * ctx..(c + 1) * ctx].to_vec();
        if let Some(b) = bos {
            chunk[0] = b;
        }
        for x in engine.token_nll(&chunk, first)? {
            if !x.is_finite() {
                return Err(BenchError::Measurement(format!(
                    "perplexity `{}`: a token of chunk {c} scored a non-finite loss",
                    t.text.name
                )));
            }
            sum += x;
            sum2 += x * x;
            count += 1;
        }
        bytes += engine
            .tokenizer()
            .decode(&chunk[first + 1..], false)
            .map_err(BenchError::Measurement)?
            .len();
        bar.inc(1);
    }
    let seconds = started.elapsed().as_secs_f64();
    let n = count as f64;
    let mean = sum / n;
    // A result file holds finite numbers only: a loss whose exponential overflows is refused, not written as null.
    if !(mean + 1.96 * (sum2 / n).sqrt()).exp().is_finite() {
        return Err(BenchError::Measurement(format!(
            "perplexity `{}`: a mean loss of {mean:.1} nats per token has no finite perplexity; the model predicts \
             the text no better than at random",
            t.text.name
        )));
    }
    let var = (sum2 / n - mean * mean).max(0.0);
    let stderr = if count > 1 {
        (var / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Ok(Some(PerplexityResult {
        name: t.text.name.clone(),
        text_sha256: t.text.sha256.clone(),
        text_bytes: t.text.bytes,
        context: ctx,
        chunks: t.chunks,
        bos: bos.is_some(),
        tokens_scored: count,
        nll_mean: mean,
        nll_stderr: stderr,
        perplexity: mean.exp(),
        perplexity_ci95: [(mean - 1.96 * stderr).exp(), (mean + 1.96 * stderr).exp()],
        bits_per_byte: sum / std::f64::consts::LN_2 / bytes.max(1) as f64,
        seconds,
        tokens_per_second: (t.chunks * ctx) as f64 / seconds.max(1e-9),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &std::path::Path, name: &str, body: &[u8]) -> PerplexitySpec {
        let text = dir.join(format!("{name}.txt"));
        fs_err::write(&text, body).unwrap();
        PerplexitySpec {
            name: name.into(),
            text,
            context: 64,
            chunks: None,
        }
    }

    #[test]
    fn texts_are_read_whole_less_one_final_newline_and_hashed_as_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = prepare(&[spec(dir.path(), "a", b"one\ntwo\n\n")], "c.toml").unwrap();
        assert_eq!(p[0].text, "one\ntwo\n");
        assert_eq!(p[0].bytes, 9);
        assert_eq!(
            p[0].sha256,
            format!("{:x}", Sha256::digest(b"one\ntwo\n\n"))
        );
    }

    #[test]
    fn a_bad_text_is_refused_naming_the_workload_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let not_utf8 = spec(dir.path(), "bin", b"ok \xff\xfe");
        let err = prepare(&[not_utf8], "c.toml").unwrap_err().to_string();
        assert!(
            err.contains("perplexity `bin`") && err.contains("bin.txt"),
            "{err}"
        );
        assert!(
            err.contains("not UTF-8") && err.contains("offset 3"),
            "{err}"
        );
        let missing = PerplexitySpec {
            text: dir.path().join("nope.txt"),
            ..spec(dir.path(), "m", b"")
        };
        assert!(
            prepare(&[missing], "c.toml")
                .unwrap_err()
                .to_string()
                .contains("nope.txt")
        );
        let folder = PerplexitySpec {
            text: dir.path().to_path_buf(),
            ..spec(dir.path(), "d", b"")
        };
        assert!(
            prepare(&[folder], "c.toml")
                .unwrap_err()
                .to_string()
                .contains("not a regular file")
        );
        #[cfg(unix)]
        {
            let fifo = dir.path().join("fifo");
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            let piped = PerplexitySpec {
                text: fifo,
                ..spec(dir.path(), "f", b"")
            };
            let err = prepare(&[piped], "c.toml").unwrap_err().to_string();
            assert!(
                err.contains("not a regular file"),
                "a FIFO is refused, not waited on: {err}"
            );
        }
    }
}
