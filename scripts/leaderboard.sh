#!/usr/bin/env bash
# Build the leaderboard from the result files in results/ (or the paths given): the static site in site/
# (index.html, leaderboard.md, leaderboard.csv, SVG charts) and the Markdown table in README.md between the
# `<!-- leaderboard:start -->` and `<!-- leaderboard:end -->` markers.
#
# Usage: scripts/leaderboard.sh [RESULTS...]        (default: results)
# Environment: MEEKBENCH_SITE (default: site), MEEKBENCH_RANK_BY (default: decode)
set -euo pipefail
cd "$(dirname "$0")/.."
site="${MEEKBENCH_SITE:-site}"
[[ $# -gt 0 ]] || set -- results
exec cargo run --release -q -- leaderboard "$@" --out "$site" --rank-by "${MEEKBENCH_RANK_BY:-decode}" --readme README.md
