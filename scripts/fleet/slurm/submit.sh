#!/usr/bin/env bash
# Submits a meekbench plan to Slurm as a job array of N shards plus a merge job that runs after all of them.
#
#   submit.sh [--results DIR] [--run NAME] CONFIG N [SBATCH_OPTION...]
#
# SBATCH_OPTIONs go to the array (e.g. -p cpu -c 8, or -p gpu --gpus=1); the merge job takes one CPU in the
# default partition (MEEKBENCH_MERGE_SBATCH adds options to it). Results land in DIR/RUN/ (DIR defaults to
# ./results, RUN to the array's job id): shard-I/ for each shard, merged.json and site/ from the merge.
# Hub models without a sha256 are locked here, once, before submitting (meekbench lock), so that the shards never
# write the lock file at the same time; the shards run with --locked.
# Needs meekbench on PATH (or MEEKBENCH_BIN), the same binary on every node.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "submit.sh: $*" >&2; exit 2; }

results=results; run=
while [[ ${1:-} == --* ]]; do
  case $1 in
    --results) results=${2:?--results needs a directory}; shift 2 ;;
    --run) run=${2:?--run needs a name}; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
(( $# >= 2 )) || die "usage: submit.sh [--results DIR] [--run NAME] CONFIG N [SBATCH_OPTION...]"
config=$1; shards=$2; shift 2
[[ -f $config ]] || die "no config at $config"
[[ $shards =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number of shards, not '$shards'"
[[ -z $run || ( $run =~ ^[A-Za-z0-9._-]+$ && $run != . && $run != .. ) ]] \
  || die "--run takes letters, digits, '.', '_' and '-'"
config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
mkdir -p "$results"
results=$(cd "$results" && pwd)
bin=${MEEKBENCH_BIN:-meekbench}
command -v "$bin" >/dev/null || die "meekbench not found (put it on PATH or set MEEKBENCH_BIN)"
bin=$(command -v "$bin")

# Pin what needs pinning now; a config pinned by sha256 alone needs no lock.
if ! "$bin" lock "$config" --check >/dev/null 2>&1; then
  "$bin" lock "$config"
fi

export MEEKBENCH_CONFIG=$config MEEKBENCH_RESULTS=$results MEEKBENCH_BIN=$bin MEEKBENCH_FLEET=${here%/slurm}
# Without --run the array's job id names the run, for the shards and the merge alike.
if [[ -n $run ]]; then export MEEKBENCH_RUN=$run; else unset MEEKBENCH_RUN; fi
array=$(sbatch --parsable --array="0-$((shards - 1))" --export=ALL \
  --output="$results/meekbench-%A_%a.out" "$@" "$here/bench.sbatch")
array=${array%%;*}
export MEEKBENCH_RUN=${run:-$array}
# shellcheck disable=SC2086 # MEEKBENCH_MERGE_SBATCH is a list of options
merge=$(sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes --export=ALL \
  --output="$results/meekbench-merge-%j.out" ${MEEKBENCH_MERGE_SBATCH:-} "$here/merge.sbatch")
merge=${merge%%;*}
echo "array job $array ($shards shards), merge job $merge; results in $results/$MEEKBENCH_RUN"
