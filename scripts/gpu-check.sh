#!/usr/bin/env bash
# The GPU check: meekbench's CUDA path end to end, on a machine with an NVIDIA GPU and no Rust toolchain, with a
# binary built elsewhere by `cargo build --release --features cuda` (see scripts/cuda-toolkit.sh).
#
# Usage:
#   scripts/gpu-check.sh [--device cuda|cpu] [--bin FILE] [--out DIR] [--work DIR] [--budget SECONDS]
#                        [--model FILE.gguf]... [--synth SHAPE:TOKENIZER.gguf]... [--quant TYPE]
#
#   --device  the device checked (default cuda); `--device cpu` is a dry run of the whole check on any machine,
#             and with MEEKBENCH_KERNELS=tensors in the environment it runs the GPU's decoder on the CPU
#   --bin     the meekbench binary (default: $MEEKBENCH_BIN, else target/release/meekbench)
#   --out     where the result files, the summary and the log go (default: gpu-check-out)
#   --work    scratch space for generated models and configs (default: a temporary directory, removed after)
#   --model   a GGUF file to check (repeatable), e.g. the cached SmolLM2 and Gemma 3 of the default config
#   --synth   a random-weight file of SHAPE (scripts/synth-gguf.py --list) with TOKENIZER's vocabulary, written
#             in --work with every matrix in --quant (default Q4_0) by gguf-py: no llama-quantize needed. Needs
#             python3 with numpy and gguf. Random weights cost what trained ones cost to run; their answers are
#             noise, so these files check speed, energy and the agreement of devices, not accuracy
#   --budget  the whole check's limit in seconds (default 300); each step gets what is left
#
# Steps, each bounded by the budget left:
#   1. the CUDA libraries the binary links (runtime, cuBLAS, cuRAND, NVRTC; the driver's libcuda) are looked up
#      where such machines keep them (the CUDA toolkit, the driver's folder, Python packages' nvidia/*/lib) and
#      added to LD_LIBRARY_PATH when the loader does not find them itself
#   2. `meekbench doctor`: which energy sources work (NVML for CUDA runs) -> OUT/doctor.txt
#   3. per model: the greedy tokens of a fixed prompt (`meekbench generate -n 32 --json`) on --device and on the
#      own CPU path (MEEKBENCH_KERNELS unset), which must be equal; then a short bench on --device (prompts of 128 and 1024 tokens, 64 generated,
#      1 warm-up and 5 repetitions, energy from whatever doctor found) -> OUT/meekbench-TIME-<model>.json
#   4. OUT/summary.md: each model's kernel, speed, energy and token agreement, and the machine's GPU
# Exit status 0 when every step passed and every model's tokens agreed, 1 otherwise (the summary says which).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
device=cuda
bin="${MEEKBENCH_BIN:-}"
out=gpu-check-out
work=""
budget=300
quant=Q4_0
models=()
synths=()

die() { printf 'gpu-check: error: %s\n' "$*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo pipefail/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2; }

while (($#)); do
    case "$1" in
        --device) device="${2:?--device needs a value}"; shift 2 ;;
        --bin) bin="${2:?--bin needs a file}"; shift 2 ;;
        --out) out="${2:?--out needs a directory}"; shift 2 ;;
        --work) work="${2:?--work needs a directory}"; shift 2 ;;
        --budget) budget="${2:?--budget needs seconds}"; shift 2 ;;
        --quant) quant="${2:?--quant needs a type}"; shift 2 ;;
        --model) models+=("${2:?--model needs a file}"); shift 2 ;;
        --synth) synths+=("${2:?--synth needs SHAPE:TOKENIZER.gguf}"); shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage; die "unknown argument: $1" ;;
    esac
done
[[ $device == cuda || $device == cuda:* || $device == cpu ]] || die "--device must be cuda, cuda:N or cpu"
[[ $budget =~ ^[0-9]+$ ]] || die "--budget must be a whole number of seconds"
((${#models[@]} + ${#synths[@]})) || die "nothing to check: give --model FILE or --synth SHAPE:TOKENIZER.gguf"
if [[ -z $bin ]]; then bin="$here/../target/release/meekbench"; fi
[[ -x $bin ]] || die "no meekbench binary at $bin (build one with cargo build --release --features cuda, or --bin)"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

mkdir -p "$out"
out="$(cd "$out" && pwd)"
if [[ -z $work ]]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work"
work="$(cd "$work" && pwd)"
log="$out/gpu-check.log"
: >"$log"
say() { printf 'gpu-check: %s\n' "$*" | tee -a "$log" >&2; }

start=$SECONDS
left() { echo $((budget - (SECONDS - start))); }
# Runs a command within the budget left, its output appended to the log; fails when the budget is spent.
bounded() {
    local t
    t="$(left)"
    if ((t <= 0)); then
        say "out of time (budget ${budget}s) before: $*"
        return 124
    fi
    timeout --kill-after=5 "$t" "$@"
}

failures=0
fail() { say "FAILED: $*"; failures=$((failures + 1)); }

# 1. The CUDA libraries.
if [[ $device == cuda* ]]; then
    missing="$(ldd "$bin" 2>/dev/null | awk '/not found/ {print $1}' || true)"
    if [[ -n $missing ]]; then
        dirs=()
        for lib in $missing; do
            found="$(find /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64 \
                /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/lib /opt /usr/local/lib/python3* \
                /usr/lib/python3 -maxdepth 8 -name "$lib" -print -quit 2>/dev/null || true)"
            if [[ -n $found ]]; then
                dirs+=("$(dirname "$found")")
            else
                say "no $lib on this machine"
            fi
        done
        if ((${#dirs[@]})); then
            path="$(printf '%s\n' "${dirs[@]}" | awk '!seen[$0]++' | paste -sd:)"
            export LD_LIBRARY_PATH="$path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            say "CUDA libraries from $path"
        fi
        if ldd "$bin" | grep -q 'not found'; then
            ldd "$bin" | grep 'not found' | tee -a "$log" >&2
            die "the binary's libraries are missing (above); install the CUDA 13 runtime libraries or set LD_LIBRARY_PATH"
        fi
    fi
fi
say "binary: $("$bin" --version), device $device, budget ${budget}s"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader \
        | tee "$out/gpu.txt" | sed 's/^/gpu-check: GPU: /' >&2 || true
fi

# 2. What the machine can measure.
if ! bounded "$bin" doctor >"$out/doctor.txt" 2>>"$log"; then
    fail "meekbench doctor"
fi
if [[ $device == cuda* ]] && ! grep -qi 'nvml.*\(ok\|available\|works\|yes\)' "$out/doctor.txt"; then
    say "NVML is not reported as working (see doctor.txt): energy will be estimated, not measured"
fi

# 3a. Generated models.
for spec in "${synths[@]}"; do
    shape="${spec%%:*}"
    tok="${spec#*:}"
    [[ $shape != "$spec" && -f $tok ]] || die "--synth $spec: expected SHAPE:TOKENIZER.gguf with an existing file"
    file="$work/synth-$shape.$quant.gguf"
    say "writing $file (random weights, $quant)"
    if bounded python3 "$here/synth-gguf.py" --shape "$shape" --tokenizer-from "$tok" -o "$file" \
        --direct "$quant" >>"$log" 2>&1; then
        models+=("$file")
    else
        fail "synth-gguf.py --shape $shape"
    fi
done

# 3b. Per model: greedy agreement, then the bench.
prompt='The three most useful things to know about measuring a language model are'
rows=()
for model in "${models[@]}"; do
    [[ -f $model ]] || { fail "$model: no such file"; continue; }
    name="$(basename "$model" .gguf)"
    id="$(printf '%s' "$name" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9._-' '-')"
    say "$name: greedy tokens on $device and on the CPU"
    agree="not checked"
    if bounded "$bin" generate "$model" "$prompt" -n 32 --json --device "$device" >"$work/$id.dev.json" 2>>"$log" \
        && bounded env -u MEEKBENCH_KERNELS "$bin" generate "$model" "$prompt" -n 32 --json --device cpu \
            >"$work/$id.cpu.json" 2>>"$log"; then
        agree="$(python3 - "$work/$id.dev.json" "$work/$id.cpu.json" <<'EOF'
import json, sys
dev, cpu = (json.load(open(p)) for p in sys.argv[1:3])
a, b = dev["ids"], cpu["ids"]
n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
same = a == b
print(("equal" if same else f"differ from token {n}") + f" ({len(a)} tokens; {dev['kernel']} vs {cpu['kernel']})")
EOF
)"
        [[ $agree == equal* ]] || fail "$name: greedy tokens on $device and the CPU $agree"
    else
        fail "$name: meekbench generate"
    fi
    say "$name: tokens $agree"
    sha="$("$bin" digest "$model" 2>>"$log" | awk '{print $1}')"
    cfg="$work/$id.toml"
    cat >"$cfg" <<EOF
# Written by scripts/gpu-check.sh: a short bench of one model on $device.
[run]
device = "$device"
threads = "auto"
output = "$work/results-$id"

[[models]]
id = "$id"
file = "$(basename "$model")"
sha256 = "$sha"
sources = [{ path = "$model" }]

[speed]
prompt_tokens = [128, 1024]
gen_tokens = [64]
warmup = 1
repetitions = 5
seed = 42

[energy]
sources = "auto"
price_per_kwh = 0.30
currency = "USD"
idle_baseline_seconds = 5
EOF
    say "$name: bench on $device"
    if bounded "$bin" bench "$cfg" --quiet --cache "$work/cache" --ignore-memory-check >>"$log" 2>&1; then
        result="$(find "$work/results-$id" -maxdepth 1 -name '*.json' -print -quit)"
        mv "$result" "$out/"
        result="$out/$(basename "$result")"
        row="$(python3 - "$result" "$agree" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
run = r["runs"][0]
points = {p["n_prompt"]: p for p in run.get("speed", [])}
def med(n, kind):
    return (points.get(n, {}).get(kind) or {}).get("median")
def f(x, spec=".1f"):
    return "-" if x is None else format(x, spec)
energy = points.get(128, {}).get("energy") or {}
per_token = (energy.get("joules_per_decode_token") or {}).get("median")
print(f"| {run['model']['id']} | {run.get('kernel', '?')} | {f(med(128, 'prefill_tokens_per_second'))} | "
      f"{f(med(1024, 'prefill_tokens_per_second'))} | {f(med(128, 'decode_tokens_per_second'))} | "
      f"{f(per_token, '.4f')} | {energy.get('label', '-')} | {sys.argv[2]} |")
EOF
)" || row="| $id | (result unreadable) | | | | | $agree |"
        rows+=("$row")
    else
        fail "$name: meekbench bench"
        rows+=("| $id | (bench failed, see gpu-check.log) | | | | | | $agree |")
    fi
done

# 4. The summary.
{
    echo "# meekbench GPU check"
    echo
    echo "- binary: $("$bin" --version), device: $device, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    [[ -s $out/gpu.txt ]] && echo "- GPU: $(head -1 "$out/gpu.txt")"
    echo "- took $((SECONDS - start)) s of a ${budget} s budget; failures: $failures"
    echo
    echo "| model | kernel | prefill tok/s (128) | prefill tok/s (1024) | decode tok/s | J / decode token | energy | greedy vs CPU |"
    echo "|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
} >"$out/summary.md"
cat "$out/summary.md" >&2
((failures == 0))
