#!/usr/bin/env bash
# Fuzzes every parser of outside input (config, result files, suite files, answer extractors) for SECONDS each
# (default 60) in release mode, on stable Rust. Panicking inputs land in fuzz/artifacts/<target>/; the exit status
# is 1 when there were any. Extra arguments go to meek-fuzz (e.g. `--seed 3`, or a target name first:
# `scripts/fuzz.sh 30 config`).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
target=all
if [[ $# -gt 0 && "$1" != --* ]]; then
    target="$1"
    shift
fi
cargo run --quiet --release -p meek-fuzz -- "$target" --seconds "$seconds" "$@"
