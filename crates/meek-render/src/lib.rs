//! What every meekbench report needs to turn figures and untrusted text into a page, a table or a chart:
//! escaping for each output format ([`escape`]), the way numbers are written ([`format`](mod@format)) and a
//! small SVG chart kit ([`svg`]). `meek-report` (compare, leaderboard, site) and `meek-projection` (the
//! projection report) both draw with it, so a string from a result file is escaped the same way wherever it lands.
//!
//! It depends on no other meekbench crate (and not on Candle), so both reports can depend down on it.

pub mod escape;
pub mod format;
pub mod svg;
