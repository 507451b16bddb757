//! Accuracy suites: items with exact numeric answers, prompts, answer extraction and scoring.
//!
//! - [`generate`]: built-in suites generated from a seed (never seen in training), each item tagged with its family
//!   and its number of dependent steps `p`, so accuracy can be reported per step count (the projection model
//!   treats a `p`-step task as succeeding with probability `acc^p`).
//! - [`jsonl`]: external suites in GSM8K's format (`question`, `answer` ending in `#### N`) or `{id, prompt,
//!   answer}`; suite files are untrusted, so the file, each line, each field and the item count are capped.
//! - [`parquet`]: the same two layouts as parquet columns, the container Hugging Face datasets come in; page
//!   headers are checked against the file and caps before the reader believes them.
//! - [`record`]: what both containers share: a record's fields, the caps and the checks that make it an item.
//! - [`prompt`]: the instruction, k-shot exemplars, as chat turns or as a completion prompt for base models.
//! - [`lm_eval`]: lm-evaluation-harness's `gsm8k` and `gsm8k_cot_llama` reproduced (prompts, exemplars drawn as
//!   its Python `random` draws them ([`pyrandom`]), stop strings, regex filters and `exact_match`), for scores
//!   comparable with published ones.
//! - [`extract`]: two extractors reported side by side, like lm-evaluation-harness: *strict* (the requested
//!   `Answer: N` line, or `#### N`) and *flexible* (the last number, tolerant of `\boxed{}`, thousands
//!   separators, currency and units); numbers are compared as numbers, not strings.
//!
//! This crate knows nothing of models: it turns a suite into prompts and an output text into a verdict.

pub mod extract;
pub mod generate;
pub mod jsonl;
pub mod lm_eval;
pub mod parquet;
pub mod prompt;
pub mod pyrandom;
pub mod record;

use serde::{Deserialize, Serialize};

/// One question with its exact answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Unique within its suite.
    pub id: String,
    /// Family, e.g. `arithmetic`, `word`, `gsm8k`.
    pub family: String,
    /// Number of dependent steps (0 when unknown).
    pub steps: u32,
    /// The question as shown to the model.
    pub question: String,
    /// The expected answer, a number written without separators.
    pub answer: String,
    /// A worked solution ending in `Answer: N`, used when the item serves as an exemplar.
    pub solution: String,
    /// The answer as the dataset writes it (GSM8K: the worked answer with its calculator annotations and
    /// `#### N`): what lm-evaluation-harness's prompts show and its metric compares ([`lm_eval`]). Generated and
    /// plain items: the answer.
    #[serde(default)]
    pub target: String,
}
