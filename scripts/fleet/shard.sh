#!/usr/bin/env bash
# Measures one shard of a meekbench plan into a shared results directory, for any scheduler: Slurm's
# bench.sbatch and the Kubernetes Indexed Job both run it (the container image has it as meekbench-shard).
#
#   shard.sh INDEX COUNT        runs `meekbench bench CONFIG --shard INDEX/COUNT --locked` into RESULTS/RUN/shard-INDEX/
#
# Environment:
#   MEEKBENCH_CONFIG    the bench config (required)
#   MEEKBENCH_RESULTS   the shared results directory (required)
#   MEEKBENCH_RUN       the run's name, a directory under RESULTS (required)
#   MEEKBENCH_BIN       the meekbench binary (default: meekbench on PATH)
#   MEEKBENCH_THREADS   threads per run (default: the config's)
#   MEEKBENCH_DEVICE    device (default: the config's)
#   MEEKBENCH_BENCH_ARGS  more `bench` options, split on spaces (e.g. "-r 3 --no-outputs")
#   MEEKBENCH_CACHE     meekbench's own: the model cache (node-local disk is fine; a shard fetches only its models)
#
# Run again (a requeued task, a restarted pod, the same RUN submitted again), it leaves a complete shard file as
# it is and continues an unfinished one with --resume, so nothing measured is lost. Exit status: meekbench's.
set -euo pipefail
die() { echo "meekbench shard: $*" >&2; exit 2; }

(( $# == 2 )) || die "usage: shard.sh INDEX COUNT"
index=$1; count=$2
if ! [[ $index =~ ^[0-9]+$ && $count =~ ^[1-9][0-9]*$ ]] || (( index >= count )); then
  die "INDEX/COUNT must be two numbers with INDEX < COUNT, not $index/$count"
fi
: "${MEEKBENCH_CONFIG:?set MEEKBENCH_CONFIG to the bench config}"
: "${MEEKBENCH_RESULTS:?set MEEKBENCH_RESULTS to the shared results directory}"
: "${MEEKBENCH_RUN:?set MEEKBENCH_RUN to the name of this run}"
[[ $MEEKBENCH_RUN =~ ^[A-Za-z0-9._-]+$ && $MEEKBENCH_RUN != . && $MEEKBENCH_RUN != .. ]] \
  || die "MEEKBENCH_RUN takes letters, digits, '.', '_' and '-' (is '$MEEKBENCH_RUN')"
bin=${MEEKBENCH_BIN:-meekbench}
out="$MEEKBENCH_RESULTS/$MEEKBENCH_RUN/shard-$index"
mkdir -p "$out"

args=(bench "$MEEKBENCH_CONFIG" --shard "$index/$count" --locked --quiet)
[[ -n ${MEEKBENCH_THREADS:-} ]] && args+=(--threads "$MEEKBENCH_THREADS")
[[ -n ${MEEKBENCH_DEVICE:-} ]] && args+=(--device "$MEEKBENCH_DEVICE")
shopt -s nullglob
previous=("$out"/*.json)
# A file a killed task left empty (reserved, never written) can be neither resumed nor merged: set it aside.
if (( ${#previous[@]} == 1 )) && [[ ! -s ${previous[0]} ]]; then
  echo "meekbench shard $index/$count: ${previous[0]} is empty (a task killed before its first write); set aside"
  mv "${previous[0]}" "${previous[0]}.empty-$(date +%s)"
  previous=()
fi
if (( ${#previous[@]} > 1 )); then
  die "$out holds ${#previous[@]} result files; keep the one to resume and move the others away"
elif (( ${#previous[@]} == 1 )); then
  # The top-level status is the second key of every result file meekbench writes; a complete file that lists
  # failures (a model that could not be fetched or measured) is resumed, which measures those again.
  if head -n 4 "${previous[0]}" | grep -q '^  "status": "complete"' \
    && ! grep -q '^  "failures": \[' "${previous[0]}"; then
    echo "meekbench shard $index/$count: ${previous[0]} is already complete"
    exit 0
  fi
  echo "meekbench shard $index/$count: resuming ${previous[0]}"
  args+=(--resume "${previous[0]}")
else
  args+=(-o "$out")
fi
# shellcheck disable=SC2206 # the extra options are split on spaces on purpose (and not glob-expanded)
if [[ -n ${MEEKBENCH_BENCH_ARGS:-} ]]; then set -f; args+=($MEEKBENCH_BENCH_ARGS); set +f; fi

echo "meekbench shard $index/$count on $(hostname): $bin ${args[*]}"
exec "$bin" "${args[@]}"
