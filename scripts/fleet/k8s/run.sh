#!/usr/bin/env bash
# Runs a meekbench plan on Kubernetes as an Indexed Job of N shards (bench-job.yaml), then merges it
# (merge-job.yaml) into /data/results/RUN/merged.json and its leaderboard on the meekbench-data volume.
#
#   run.sh apply  CONFIG N [OPTIONS]   create the ConfigMap, volume and Job; wait; merge; wait (needs kubectl)
#   run.sh render CONFIG N [OPTIONS]   print the ConfigMap, volume and Job that `apply` creates
#   run.sh render-merge [--run NAME] [--image IMAGE]   print the merge Job
#
# OPTIONS: --run NAME (default: the config's name; lower-case letters, digits and '-'), --image IMAGE (default
# meekbench:latest, built from ../Containerfile), --class CLASS (the nodes' meekbench/class label, default cpu),
# --gpu (one GPU per shard, device cuda), --timeout DURATION (kubectl wait's, default 24h).
# CPUs and memory per shard are bench-job.yaml's resources; edit them there for your models.
# The config is mounted as /config/bench.toml, with its lock file (CONFIG's .lock) as /config/bench.lock when
# there is one; the shards run with --locked, so lock hub models first (meekbench lock CONFIG; checked here when
# meekbench is on PATH). Relative paths in the config are relative to the image's /opt/meekbench, which holds
# the repository's configs/ and data/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "run.sh: $*" >&2; exit 2; }

mode=${1:-}; shift || true
config='' shards='' run='' image=meekbench:latest class=cpu gpu=0 timeout=24h
if [[ $mode == apply || $mode == render ]]; then
  (( $# >= 2 )) || die "usage: run.sh $mode CONFIG N [--run NAME] [--image IMAGE] [--class CLASS] [--gpu]"
  config=$1; shards=$2; shift 2
  [[ -f $config ]] || die "no config at $config"
  [[ $shards =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number of shards, not '$shards'"
  run=$(basename "$config" .toml | tr '[:upper:]_.' '[:lower:]--')
elif [[ $mode != render-merge ]]; then
  die "usage: run.sh apply|render CONFIG N [OPTIONS], or run.sh render-merge [--run NAME] [--image IMAGE]"
fi
while (( $# > 0 )); do
  case $1 in
    --run) run=${2:?--run needs a name}; shift 2 ;;
    --image) image=${2:?--image needs an image}; shift 2 ;;
    --class) class=${2:?--class needs a node class}; shift 2 ;;
    --gpu) gpu=1; shift ;;
    --timeout) timeout=${2:?--timeout needs a duration}; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
[[ -n $run ]] || die "--run NAME is needed"
# A Job's name is at most 63 characters of lower-case letters, digits and '-'.
[[ $run =~ ^[a-z0-9]([a-z0-9-]{0,44}[a-z0-9])?$ ]] \
  || die "the run's name '$run' must be lower-case letters, digits and '-' (at most 46), as Kubernetes names are"
[[ $image =~ ^[A-Za-z0-9./:@_-]+$ ]] || die "not an image name: $image"
[[ $class =~ ^[A-Za-z0-9._-]{1,63}$ ]] || die "not a label value: $class"

# A file as a YAML literal block under a key at indentation 2 (content at 4, whatever its own leading spaces).
block() {
  printf '  %s: |2\n' "$1"
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ -n $line ]]; then printf '    %s\n' "$line"; else echo; fi
  done < "$2"
}

fill() {
  sed -e "s/example/$run/g" -e "s|image: meekbench:latest|image: $image|" "$1"
}

render() {
  local lock="${config%.toml}.lock"
  echo "apiVersion: v1"
  echo "kind: ConfigMap"
  echo "metadata:"
  echo "  name: meekbench-config"
  echo "  labels:"
  echo "    app.kubernetes.io/name: meekbench"
  echo "data:"
  block bench.toml "$config"
  [[ -f $lock ]] && block bench.lock "$lock"
  echo "---"
  local gpu_sed=()
  (( gpu )) && gpu_sed=(-e 's/^#gpu //')
  fill "$here/bench-job.yaml" | sed "${gpu_sed[@]}" \
    -e "s/^  completions: 2 /  completions: $shards /" \
    -e "s/^  parallelism: 2 /  parallelism: $shards /" \
    -e "/name: MEEKBENCH_SHARDS/{n;s/value: \"2\"/value: \"$shards\"/}" \
    -e "s|meekbench/class: cpu|meekbench/class: $class|"
}

case $mode in
  render) render ;;
  render-merge) fill "$here/merge-job.yaml" ;;
  apply)
    command -v kubectl >/dev/null || die "kubectl not found"
    if command -v meekbench >/dev/null && ! meekbench lock "$config" --check >/dev/null 2>&1; then
      die "$config has hub models that are not locked: run meekbench lock $config first"
    fi
    # A ConfigMap of this name from an earlier run is replaced; its Job keeps the config it started with.
    render | kubectl apply -f -
    echo "waiting for job/meekbench-bench-$run ($shards shards, at most $timeout)"
    kubectl wait --for=condition=complete "job/meekbench-bench-$run" --timeout="$timeout"
    fill "$here/merge-job.yaml" | kubectl apply -f -
    kubectl wait --for=condition=complete "job/meekbench-merge-$run" --timeout=1h
    echo "merged: /data/results/$run/merged.json on the meekbench-data volume"
    ;;
esac
