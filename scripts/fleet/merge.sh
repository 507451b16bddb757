#!/usr/bin/env bash
# Joins the shards of one run (shard.sh) into RESULTS/RUN/merged.json and builds its leaderboard in RESULTS/RUN/site,
# for any scheduler: Slurm's merge.sbatch and the Kubernetes merge Job run it (as meekbench-merge in the image).
#
# Environment: MEEKBENCH_RESULTS and MEEKBENCH_RUN (required), MEEKBENCH_BIN (default: meekbench),
# MEEKBENCH_ALLOW_MIXED=1 when the shards ran on different kinds of machine (each run then keeps its own),
# MEEKBENCH_LEADERBOARD=0 to merge only (the leaderboard leaves out files of a debug build, so a test sets it).
# A run already merged is left as it is (merge never overwrites; move merged.json away to merge again).
set -euo pipefail
die() { echo "meekbench merge: $*" >&2; exit 2; }

: "${MEEKBENCH_RESULTS:?set MEEKBENCH_RESULTS to the shared results directory}"
: "${MEEKBENCH_RUN:?set MEEKBENCH_RUN to the run to merge}"
[[ $MEEKBENCH_RUN =~ ^[A-Za-z0-9._-]+$ && $MEEKBENCH_RUN != . && $MEEKBENCH_RUN != .. ]] \
  || die "MEEKBENCH_RUN takes letters, digits, '.', '_' and '-' (is '$MEEKBENCH_RUN')"
bin=${MEEKBENCH_BIN:-meekbench}
dir="$MEEKBENCH_RESULTS/$MEEKBENCH_RUN"

if [[ -e $dir/merged.json ]]; then
  echo "meekbench merge: $dir/merged.json exists already; left as it is"
else
  shopt -s nullglob
  parts=("$dir"/shard-*/*.json)
  (( ${#parts[@]} > 0 )) || die "no shard files under $dir/shard-*/"
  args=(merge "${parts[@]}" -o "$dir/merged.json")
  [[ ${MEEKBENCH_ALLOW_MIXED:-0} == 1 ]] && args+=(--allow-mixed-machines)
  "$bin" "${args[@]}"
fi
if [[ ${MEEKBENCH_LEADERBOARD:-1} == 0 ]]; then
  echo "meekbench merge: $dir/merged.json"
else
  "$bin" leaderboard "$dir/merged.json" --out "$dir/site"
  echo "meekbench merge: $dir/merged.json, leaderboard in $dir/site/index.html"
fi
