//! Reports across result files: `compare` (figures side by side with ratios and significance, and everything
//! that differs between the runs) and `leaderboard` (many files from many machines, grouped by machine and model,
//! ranked, written as Markdown, CSV and a static HTML site with SVG charts).
//!
//! Invariants:
//! - Result files are untrusted input. Files are size-bounded before reading ([`input::MAX_FILE_BYTES`]),
//!   meekbench results are validated against the published JSON Schema, and a file that cannot be used is
//!   reported and skipped. Every string from a file is escaped for the format it lands in ([`escape`], from
//!   `meek-render`, which also holds the number formatting and the SVG chart kit); the HTML
//!   page runs only its own inline script, pinned by a Content-Security-Policy hash, and loads nothing.
//! - Output is a pure function of the input files: no clock, no randomness beyond the seeded bootstrap, so the
//!   Markdown and CSV can be snapshot-tested and a rebuilt site diffs cleanly.
//!
//! Statistics: percentile bootstrap of the ratio of medians (Efron & Tibshirani 1993) via
//! [`meek_stats::bootstrap_ci95`]; accuracy intervals are Wilson intervals as recorded in the result files.

pub mod board;
mod budget_chart;
pub mod compare;
pub mod energy_columns;
pub mod input;
pub mod localscore;
pub mod merge;
pub mod site;
pub mod svg;

/// The escaping of every output format, shared with the projection report ([`meek_render::escape`]).
pub use meek_render::escape;

use thiserror::Error;

/// Why a report could not be made.
#[derive(Debug, Error)]
pub enum ReportError {
    /// `compare` needs a baseline and something to compare it with.
    #[error(
        "compare needs at least two readable files, got {0}; pass a baseline and one or more others"
    )]
    TooFewInputs(usize),
    /// A file held nothing to compare.
    #[error("{0} holds no runs to compare")]
    Empty(String),
    /// The leaderboard found no usable result file.
    #[error("no usable result file among the inputs ({0} skipped); see the reasons above")]
    NoResults(usize),
    /// Writing an output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
