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
# The pods' host names are the Job's name with "-INDEX": one DNS label, at most 63 characters in all.
[[ $run =~ ^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$ ]] \
  || die "the run's name '$run' must be lower-case letters, digits and '-' (at most 40), as Kubernetes names are"
[[ $image =~ ^[A-Za-z0-9./:@_-]+$ ]] || die "not an image name: $image"
[[ $class =~ ^[A-Za-z0-9._-]{1,63}$ ]] || die "not a label value: $class"
[[ $timeout =~ ^[1-9][0-9]*[smh]$ ]] || die "--timeout takes a number with s, m or h (e.g. 24h), not '$timeout'"

# A file as a YAML literal block under a key at indentation 2 (content at 4, whatever its own leading spaces),
# kept byte for byte: "keep" chomping holds every final newline, "strip" a file without one. YAML reads a carriage
# return as a line break, so a file with one is refused.
block() {
  if grep -q $'\r' "$2"; then
    die "$2 has carriage returns (CRLF line ends): convert it (dos2unix) so that the pods see the same bytes"
  fi
  if [[ -s $2 && $(tail -c 1 "$2" | od -An -c | tr -d ' ') != '\n' ]]; then
    printf '  %s: |2-\n' "$1"
  else
    printf '  %s: |2+\n' "$1"
  fi
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ -n $line ]]; then printf '    %s\n' "$line"; else echo; fi
  done < "$2"
}

fill() {
  sed -e "s/example/$run/g" -e "s|image: meekbench:latest|image: $image|" "$1"
}

render() {
  local lock="${config%.*}.lock"   # meekbench's lock: the config's name with .lock for its extension
  echo "apiVersion: v1"
  echo "kind: ConfigMap"
  echo "metadata:"
  echo "  name: meekbench-config-$run"
  echo "  labels:"
  echo "    app.kubernetes.io/name: meekbench"
  echo "    meekbench/run: $run"
  echo "# Immutable: a pod of this run started late (or retried) sees the config the run began with."
  echo "immutable: true"
  echo "data:"
  block bench.toml "$config"
  [[ -f $lock ]] && block bench.lock "$lock"
  echo "---"
  local gpu_sed='s/^#gpu-off//'
  (( gpu )) && gpu_sed='s/^#gpu //'
  fill "$here/bench-job.yaml" | sed -e "$gpu_sed" \
    -e "s/^  completions: 2 /  completions: $shards /" \
    -e "s/^  parallelism: 2 /  parallelism: $shards /" \
    -e "/name: MEEKBENCH_SHARDS/{n;s/value: \"2\"/value: \"$shards\"/;}" \
    -e "s|meekbench/class: cpu|meekbench/class: $class|"
}

# Waits until a Job is Complete (returns) or Failed (exits 1, naming it); `kubectl wait` for one condition
# would wait out its whole timeout on the other.
wait_job() {
  local job=$1 limit=$2 start now seconds state
  seconds=$(( $(sed -e 's/h$/*3600/' -e 's/m$/*60/' -e 's/s$//' <<< "$limit") ))
  start=$(date +%s)
  while :; do
    state=$(kubectl get job "$job" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type} {end}')
    case " $state " in
      *" Complete "*) return 0 ;;
      *" Failed "*) die "job/$job failed: kubectl describe job/$job; its pods' logs say why (a failed shard keeps its file for a rerun)" ;;
    esac
    now=$(date +%s)
    (( now - start < seconds )) || die "job/$job not done after $limit"
    sleep 10
  done
}

case $mode in
  render) render ;;
  render-merge) fill "$here/merge-job.yaml" ;;
  apply)
    command -v kubectl >/dev/null || die "kubectl not found"
    if command -v meekbench >/dev/null && ! meekbench lock "$config" --check >/dev/null 2>&1; then
      die "$config has hub models that are not locked: run meekbench lock $config first"
    fi
    render | kubectl apply -f -
    echo "waiting for job/meekbench-bench-$run ($shards shards, at most $timeout)"
    wait_job "meekbench-bench-$run" "$timeout"
    fill "$here/merge-job.yaml" | kubectl apply -f -
    wait_job "meekbench-merge-$run" 1h
    echo "merged: /data/results/$run/merged.json on the meekbench-data volume"
    ;;
esac
