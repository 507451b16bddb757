#!/usr/bin/env bash
# Build the leaderboard site from results/ (or the paths given) into a temporary directory and take a PNG
# screenshot of it with headless Chromium, so a person can look at the page without opening a browser.
#
# Usage: scripts/leaderboard-screenshot.sh [RESULTS...]   (default: results)
# Environment: MEEKBENCH_SCREENSHOT (default: leaderboard.png), MEEKBENCH_SCREENSHOT_SIZE (default: 1400,3000),
#              MEEKBENCH_CHROMIUM (default: chromium on PATH), MEEKBENCH_BIN (a built meekbench instead of
#              `cargo run --release`)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${MEEKBENCH_SCREENSHOT:-leaderboard.png}"
size="${MEEKBENCH_SCREENSHOT_SIZE:-1400,3000}"
browser="${MEEKBENCH_CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}"
[[ -n "$browser" ]] || { echo "leaderboard-screenshot: chromium not found (Debian: apt-get install chromium)" >&2; exit 1; }
[[ $# -gt 0 ]] || set -- results
site="$(mktemp -d)"
trap 'rm -rf "$site"' EXIT
if [[ -n "${MEEKBENCH_BIN:-}" ]]; then
    "$MEEKBENCH_BIN" leaderboard "$@" --out "$site" >/dev/null
else
    cargo run --release -q -- leaderboard "$@" --out "$site" >/dev/null
fi
profile="$site/.chromium-profile"
# --no-sandbox: CI and dev containers run as root, where Chromium's sandbox cannot start.
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
    --user-data-dir="$profile" --window-size="$size" --screenshot="$(realpath -m "$out")" \
    "file://$site/index.html" 2>/dev/null
echo "$out"
