#!/usr/bin/env bash
# Build (once, cached) and run llama.cpp's llama-bench / llama-tokenize /
# llama-completion / llama-quantize as a peer reference for meekbench.
#
# The llama.cpp tree comes from the llama-cpp-python source distribution
# (vendor/llama.cpp), pinned to a single version so results are reproducible.
#
# Usage:
#   scripts/peer-llama-bench.sh build                       build (if needed), print the bin dir
#   scripts/peer-llama-bench.sh bin                         print the bin dir (exit 1 if not built yet)
#   scripts/peer-llama-bench.sh bench MODEL.gguf [ARGS...]  llama-bench -m MODEL -o json, JSON on stdout
#                                                           defaults: -p 128 -n 64 -t 1,2 -r 5
#                                                           (each overridden by the same flag in ARGS)
#   scripts/peer-llama-bench.sh compare MODEL.gguf [PROMPT GEN THREADS REPS] [--rounds N] [--contention]
#                                                           [--decode-depth D]
#                                                           llama-bench and meekbench on the same file and
#                                                           points (default 128 64 1,2 5) in N alternating
#                                                           rounds (default 3, or MEEKBENCH_COMPARE_ROUNDS):
#                                                           median ratio and its range; --contention runs one
#                                                           busy process beside both the whole time; llama-bench
#                                                           generates after D cached tokens (default PROMPT, as
#                                                           meekbench decodes after its prompt; 0: its own
#                                                           default, from an empty cache)
#   scripts/peer-llama-bench.sh perplexity MODEL.gguf TEXT.txt [CONTEXT CHUNKS THREADS]
#                                                           llama-perplexity on the text (default 512 tokens a
#                                                           chunk, every chunk, 2 threads); prints its final
#                                                           estimate as {"perplexity": P, "stderr": S, "chunks": N}
#   scripts/peer-llama-bench.sh tokenize MODEL.gguf TEXT [ARGS...]
#                                                           llama-tokenize --ids (special tokens parsed,
#                                                           TEXT taken verbatim: --no-escape)
#
# Environment:
#   MEEKBENCH_CACHE     cache root (default: $HOME/.cache/meekbench)
#   LLAMA_CPP_SDIST     path to an existing llama_cpp_python-0.3.36.tar.gz (skips the download)
#   MEEKBENCH_INSTALL=1 (or CI=true) and running as root: apt-get install cmake if it is missing
#   MEEKBENCH_BUILD_JOBS  parallel build jobs (default: nproc)
#   MEEKBENCH_CMAKE_ARGS  extra cmake configure arguments (word-split)
#   MEEKBENCH_PEER_AMX=1  keep llama.cpp's AMX kernels on CPUs that have AMX. By default they are compiled out:
#                       in this version ggml_backend_amx_mul_mat crashes (SIGSEGV) on the first prompt, seen on an
#                       AMX Xeon under KVM with tile permission granted. The AVX-512 and repacked kernels stay.
#   MEEKBENCH_PEER_ISA  `native` (default: everything this CPU has, -DGGML_NATIVE=ON), `avx2` (AVX2, FMA, F16C,
#                       BMI2: a laptop without AVX-512) or `avxvnni` (the same and AVX-VNNI: Intel since Alder Lake).
#                       Each is its own build (build, build-avx2, build-avxvnni); `compare` then runs meekbench's
#                       kernels of the same instruction set (MEEKBENCH_CPU_PATH), so an AVX-512 machine can measure
#                       both tools as a laptop without it would run them (same cores and memory, fewer instructions).
set -euo pipefail

LLAMA_CPP_PY_VERSION="0.3.36"
CACHE_ROOT="${MEEKBENCH_CACHE:-$HOME/.cache/meekbench}"
PEER_DIR="$CACHE_ROOT/peer/llama.cpp-$LLAMA_CPP_PY_VERSION"
SDIST_DIR="$PEER_DIR/sdist"
SRC_DIR="$PEER_DIR/src"
PEER_ISA="${MEEKBENCH_PEER_ISA:-native}"
case "$PEER_ISA" in
    native) BUILD_DIR="$PEER_DIR/build" ;;
    avx2|avxvnni) BUILD_DIR="$PEER_DIR/build-$PEER_ISA" ;;
    *) printf 'peer-llama-bench: error: MEEKBENCH_PEER_ISA must be native, avx2 or avxvnni, not %s\n' "$PEER_ISA" >&2
       exit 2 ;;
esac
BIN_DIR="$BUILD_DIR/bin"
TARGETS=(llama-bench llama-tokenize llama-completion llama-quantize llama-perplexity)

log() { printf 'peer-llama-bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,/^set -euo pipefail/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
}

is_built() {
    local t
    for t in "${TARGETS[@]}"; do
        [[ -x "$BIN_DIR/$t" ]] || return 1
    done
    # Built with other options (e.g. AMX on or off): rebuild.
    [[ "$(cat "$BUILD_DIR/.meek-options" 2>/dev/null)" == "$(build_options)" ]]
}

# The C/C++ flags the build adds, one line (recorded with the build so a change rebuilds).
build_options() {
    local flags=""
    if [[ "$PEER_ISA" == native && "${MEEKBENCH_PEER_AMX:-0}" != "1" ]] && grep -qw amx_int8 /proc/cpuinfo 2>/dev/null; then
        flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    fi
    printf '%s\n' "$flags"
}

ensure_cmake() {
    if command -v cmake >/dev/null 2>&1; then
        return 0
    fi
    if [[ "$(id -u)" == "0" && ( "${CI:-}" == "true" || "${MEEKBENCH_INSTALL:-}" == "1" ) ]] \
        && command -v apt-get >/dev/null 2>&1; then
        log "cmake not found; installing it with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake >&2
        command -v cmake >/dev/null 2>&1 || die "apt-get install cmake did not provide cmake"
        return 0
    fi
    die "cmake is required to build llama.cpp. Install it with:
    sudo apt-get install cmake
(or rerun as root with MEEKBENCH_INSTALL=1 to let this script install it)"
}

ensure_compiler() {
    command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || command -v clang++ >/dev/null 2>&1 \
        || die "a C++ compiler is required (e.g. sudo apt-get install build-essential)"
}

# Prints the llama-cpp-python $LLAMA_CPP_PY_VERSION sdist already in $SDIST_DIR (either spelling of the name);
# fails when there is none.
sdist_in_dir() {
    local f
    for f in "$SDIST_DIR"/llama_cpp_python-"$LLAMA_CPP_PY_VERSION".tar.gz \
             "$SDIST_DIR"/llama-cpp-python-"$LLAMA_CPP_PY_VERSION".tar.gz; do
        if [[ -f "$f" ]]; then
            printf '%s\n' "$f"
            return 0
        fi
    done
    return 1
}

# Prints the path of the sdist tarball, downloading it into $SDIST_DIR if needed.
find_sdist() {
    if [[ -n "${LLAMA_CPP_SDIST:-}" ]]; then
        [[ -f "$LLAMA_CPP_SDIST" ]] || die "LLAMA_CPP_SDIST=$LLAMA_CPP_SDIST does not exist"
        printf '%s\n' "$LLAMA_CPP_SDIST"
        return 0
    fi
    sdist_in_dir && return 0
    mkdir -p "$SDIST_DIR"
    log "downloading llama-cpp-python==$LLAMA_CPP_PY_VERSION sdist into $SDIST_DIR"
    # Only llama-cpp-python itself must be a source distribution; `--no-binary :all:`
    # would also force pip to build the sdist's build backend (scikit-build-core,
    # hatchling, cmake, ninja, ...) from source just to prepare metadata, which is
    # extremely slow. The tarball fetched is the same either way.
    python3 -m pip download --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$LLAMA_CPP_PY_VERSION" -d "$SDIST_DIR" >&2 \
        || python3 -m pip download --no-deps --no-binary :all: \
            "llama-cpp-python==$LLAMA_CPP_PY_VERSION" -d "$SDIST_DIR" >&2 \
        || die "pip download of llama-cpp-python==$LLAMA_CPP_PY_VERSION failed"
    sdist_in_dir && return 0
    die "pip download finished but no sdist tarball found in $SDIST_DIR"
}

extract_source() {
    local sdist="$1" tmp top
    if [[ -f "$SRC_DIR/CMakeLists.txt" && -f "$SRC_DIR/.meek-extracted" ]]; then
        return 0
    fi
    rm -rf "$SRC_DIR" "$PEER_DIR/src.tmp"
    tmp="$PEER_DIR/src.tmp"
    mkdir -p "$tmp"
    # (tar dies of SIGPIPE once head has its line; that is expected, not an error)
    top="$( { tar tzf "$sdist" 2>/dev/null || true; } | head -n 1 | cut -d/ -f1)"
    [[ -n "$top" ]] || die "cannot read $sdist"
    log "extracting $top/vendor/llama.cpp from $sdist"
    tar xzf "$sdist" -C "$tmp" --strip-components=3 "$top/vendor/llama.cpp"
    [[ -f "$tmp/CMakeLists.txt" ]] || die "$sdist has no vendor/llama.cpp/CMakeLists.txt"
    printf '%s\n' "$sdist" > "$tmp/.meek-extracted"
    mv "$tmp" "$SRC_DIR"
}

configure() {
    # Wanted options; any that make configure fail are dropped (one at a time, from the end).
    local isa=(-DGGML_NATIVE=ON)
    if [[ "$PEER_ISA" != native ]]; then
        # ggml's own switches, nothing from -march=native: what a build for such a laptop would have.
        isa=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
             -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF
             -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
        if [[ "$PEER_ISA" == avxvnni ]]; then isa+=(-DGGML_AVX_VNNI=ON); else isa+=(-DGGML_AVX_VNNI=OFF); fi
    fi
    local wanted=(
        -DCMAKE_BUILD_TYPE=Release
        "${isa[@]}"
        -DBUILD_SHARED_LIBS=OFF
        -DLLAMA_CURL=OFF
        -DLLAMA_OPENSSL=OFF
        -DLLAMA_BUILD_TESTS=OFF
        -DLLAMA_BUILD_EXAMPLES=OFF
        -DLLAMA_BUILD_SERVER=OFF
    )
    local extra=()
    if [[ -n "${MEEKBENCH_CMAKE_ARGS:-}" ]]; then
        read -r -a extra <<<"$MEEKBENCH_CMAKE_ARGS"
    fi
    local flags
    flags="$(build_options)"
    if [[ -n "$flags" ]]; then
        log "compiling out llama.cpp's AMX kernels (they crash in this version; MEEKBENCH_PEER_AMX=1 keeps them)"
        # After ggml's -march=native, which would turn them back on: a launcher appends the flags to every compile.
        local launcher="$PEER_DIR/no-amx-cc"
        printf '#!/bin/sh\nexec "$@" %s\n' "$flags" > "$launcher"
        chmod +x "$launcher"
        wanted+=("-DCMAKE_C_COMPILER_LAUNCHER=$launcher" "-DCMAKE_CXX_COMPILER_LAUNCHER=$launcher")
    else
        wanted+=("-DCMAKE_C_COMPILER_LAUNCHER=" "-DCMAKE_CXX_COMPILER_LAUNCHER=")
    fi
    local opts=("${wanted[@]}") i
    # Options we can live without, tried in this order when configure fails.
    local droppable=(-DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF
                     -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON)
    while :; do
        log "cmake configure: ${opts[*]} ${extra[*]:-}"
        if cmake -S "$SRC_DIR" -B "$BUILD_DIR" "${opts[@]}" ${extra[@]+"${extra[@]}"} >&2; then
            return 0
        fi
        local dropped=""
        for i in "${droppable[@]}"; do
            local new=() o found=0
            for o in "${opts[@]}"; do
                if [[ "$o" == "$i" ]]; then found=1; else new+=("$o"); fi
            done
            if (( found )); then
                opts=("${new[@]}")
                dropped="$i"
                break
            fi
        done
        [[ -n "$dropped" ]] || die "cmake configure failed (see output above)"
        log "configure failed; retrying without $dropped"
        rm -f "$BUILD_DIR/CMakeCache.txt"
    done
}

build() {
    if is_built; then
        return 0
    fi
    ensure_cmake
    ensure_compiler
    mkdir -p "$PEER_DIR"
    # Serialize concurrent builds of the same cache dir.
    exec 9>"$PEER_DIR/.build.lock"
    if command -v flock >/dev/null 2>&1; then
        flock 9
        if is_built; then
            return 0
        fi
    fi
    local sdist
    sdist="$(find_sdist)"
    extract_source "$sdist"
    configure
    local jobs="${MEEKBENCH_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"
    log "building ${TARGETS[*]} with -j$jobs (this takes a while the first time)"
    cmake --build "$BUILD_DIR" --config Release -j"$jobs" --target "${TARGETS[@]}" >&2
    build_options > "$BUILD_DIR/.meek-options"
    is_built || die "build finished but binaries are missing from $BIN_DIR"
    log "built: $BIN_DIR"
}

# has_flag FLAG... -- ARGS... : true if any FLAG (or FLAG=...) appears in ARGS
has_flag() {
    local flags=() a f
    while [[ $# -gt 0 && "$1" != "--" ]]; do flags+=("$1"); shift; done
    shift || true
    for a in "$@"; do
        for f in "${flags[@]}"; do
            if [[ "$a" == "$f" || "$a" == "$f="* ]]; then
                return 0
            fi
        done
    done
    return 1
}

cmd_bench() {
    [[ $# -ge 1 ]] || die "usage: $0 bench MODEL.gguf [llama-bench args...]"
    local model="$1"; shift
    [[ -f "$model" ]] || die "model not found: $model"
    build
    local args=(-m "$model")
    has_flag -p --n-prompt -- "$@" || args+=(-p 128)
    has_flag -n --n-gen -- "$@" || args+=(-n 64)
    has_flag -t --threads -- "$@" || args+=(-t "1,2")
    has_flag -r --repetitions -- "$@" || args+=(-r 5)
    has_flag -o --output -- "$@" || args+=(-o json)
    exec "$BIN_DIR/llama-bench" "${args[@]}" "$@"
}

cmd_tokenize() {
    [[ $# -ge 2 ]] || die "usage: $0 tokenize MODEL.gguf TEXT [llama-tokenize args...]"
    local model="$1" text="$2"; shift 2
    [[ -f "$model" ]] || die "model not found: $model"
    build
    exec "$BIN_DIR/llama-tokenize" -m "$model" -p "$text" --ids --no-escape --log-disable "$@"
}

cmd_perplexity() {
    [[ $# -ge 2 ]] || die "usage: $0 perplexity MODEL.gguf TEXT.txt [CONTEXT CHUNKS THREADS]"
    local model="$1" text="$2" ctx="${3:-512}" chunks="${4:--1}" threads="${5:-2}"
    [[ -f "$model" ]] || die "model not found: $model"
    [[ -f "$text" ]] || die "text not found: $text"
    build
    local log
    log="$(mktemp)"
    # One chunk a batch (-b = -c): the same sums as several, in the order meekbench scores them. Its log is
    # written by a thread of its own that now and then loses the last lines at exit: then it runs again (3 tries).
    local try
    for try in 1 2 3; do
        if ! "$BIN_DIR/llama-perplexity" -m "$model" -f "$text" -c "$ctx" -b "$ctx" --chunks "$chunks" \
            -t "$threads" > "$log" 2>&1; then
            tail -n 20 "$log" >&2
            die "llama-perplexity failed (log: $log)"
        fi
        grep -q "Final estimate: PPL" "$log" && break
        log "no final estimate in llama-perplexity's log (try $try of 3)"
    done
    python3 - "$log" <<'PY'
import json, re, sys
text = open(sys.argv[1], errors="replace").read()
m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", text)
n = re.search(r"calculating perplexity over (\d+) chunks", text)
if not m:
    sys.exit("no final estimate in llama-perplexity's output: " + sys.argv[1])
print(json.dumps({"perplexity": float(m.group(1)), "stderr": float(m.group(2)), "chunks": int(n.group(1)) if n else None}))
PY
    rm -f "$log"
}

# Side by side on one GGUF file: llama-bench and meekbench at the same prompt/generation lengths and thread counts,
# in alternating rounds (llama-bench first in odd rounds, meekbench first in even ones) so that a machine drifting
# over minutes weighs on both alike, and the median ratio meekbench / llama-bench over the rounds with its range.
# With --contention, one busy process at normal priority (a shell loop on one core) runs beside both tools the
# whole time, to measure how each tool degrades on a busy machine (compare with a run without it).
# meekbench's decode follows its prompt, so its tokens attend to PROMPT..PROMPT+GEN cached positions, while
# llama-bench's tg test starts from an empty cache; its generation is therefore run at depth PROMPT (`-d`), a second
# llama-bench call beside the prompt-only one (measured: 1B shape, 2 threads, tg64 16.5 tok/s at depth 0 and 15.5 at
# 128). --decode-depth 0 gives llama-bench's own default.
cmd_compare() {
    local rounds="${MEEKBENCH_COMPARE_ROUNDS:-3}" contention=0 depth="" positional=()
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --rounds) rounds="${2:?--rounds needs a number}"; shift 2 ;;
            --contention) contention=1; shift ;;
            --decode-depth) depth="${2:?--decode-depth needs a number}"; shift 2 ;;
            *) positional+=("$1"); shift ;;
        esac
    done
    set -- "${positional[@]}"
    [[ $# -ge 1 ]] || die "usage: $0 compare MODEL.gguf [PROMPT GEN THREADS REPS] [--rounds N] [--contention] [--decode-depth D]"
    [[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive number, not '$rounds'"
    local model="$1" p="${2:-128}" n="${3:-64}" threads="${4:-1,2}" reps="${5:-5}"
    depth="${depth:-$p}"
    [[ "$depth" =~ ^[0-9]+$ ]] || die "--decode-depth must be a number of tokens, not '$depth'"
    [[ -f "$model" ]] || die "model not found: $model"
    build
    local here out sha meek busy=""
    here="$(cd "$(dirname "$0")/.." && pwd)"
    out="$(mktemp -d)"
    sha="$(sha256sum "$model" | cut -d' ' -f1)"
    log "building meekbench (release)"
    (cd "$here" && cargo build --release -q -p meekbench)
    meek="$here/target/release/meekbench"
    if [[ "$PEER_ISA" != native ]]; then
        [[ -z "${MEEKBENCH_CPU_PATH:-}" || "$MEEKBENCH_CPU_PATH" == "$PEER_ISA" ]] \
            || die "MEEKBENCH_PEER_ISA=$PEER_ISA but MEEKBENCH_CPU_PATH=$MEEKBENCH_CPU_PATH: unset one of them"
        export MEEKBENCH_CPU_PATH="$PEER_ISA"
        log "llama.cpp built for $PEER_ISA only; meekbench on its $PEER_ISA kernels (MEEKBENCH_CPU_PATH)"
    fi
    cat > "$out/bench.toml" <<TOML
[run]
device = "cpu"
threads = [$threads]
output = "$out"
[[models]]
id = "$(basename "$model" .gguf)"
file = "$(basename "$model")"
sha256 = "$sha"
sources = [{ path = "$(cd "$(dirname "$model")" && pwd)/$(basename "$model")" }]
[speed]
prompt_tokens = [$p]
gen_tokens = [$n]
warmup = 1
repetitions = $reps
TOML
    if (( contention )); then
        # The competitor: an ordinary busy process, as a laptop's browser or build is, at the default priority.
        bash -c 'while :; do :; done' &
        busy=$!
        trap 'kill "$busy" 2>/dev/null || true' EXIT
        log "contention: busy loop pid $busy at normal priority beside both tools"
    fi
    local r
    for (( r = 1; r <= rounds; r++ )); do
        local order=(peer meek)
        (( r % 2 == 0 )) && order=(meek peer)
        for tool in "${order[@]}"; do
            if [[ $tool == peer ]]; then
                log "round $r/$rounds: llama-bench -p $p -n 0 -t $threads -r $reps, then -p 0 -n $n -d $depth"
                "$BIN_DIR/llama-bench" -m "$model" -p "$p" -n 0 -t "$threads" -r "$reps" -o json \
                    > "$out/llama-bench-$r-pp.json"
                "$BIN_DIR/llama-bench" -m "$model" -p 0 -n "$n" -d "$depth" -t "$threads" -r "$reps" -o json \
                    > "$out/llama-bench-$r-tg.json"
                # One file per round, both tests in it, as one llama-bench call with both would write.
                python3 -c 'import json, sys; json.dump([t for f in sys.argv[1:] for t in json.load(open(f))],
                    sys.stdout, indent=1)' "$out/llama-bench-$r-pp.json" "$out/llama-bench-$r-tg.json" \
                    > "$out/llama-bench-$r.json"
                rm -f "$out/llama-bench-$r-pp.json" "$out/llama-bench-$r-tg.json"
            else
                log "round $r/$rounds: meekbench, the same points"
                "$meek" bench --quiet --json "$out/bench.toml" > "$out/meekbench-$r.json"
            fi
        done
    done
    if [[ -n $busy ]]; then
        kill "$busy" 2>/dev/null || true
        trap - EXIT
    fi
    python3 - "$out" "$rounds" "$contention" "$depth" <<'PY'
import json, statistics, sys
out, rounds, contention, depth = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
rows = {}  # (threads, test) -> list of (peer, ours)
kernel = ""
for r in range(1, rounds + 1):
    peer = json.load(open(f"{out}/llama-bench-{r}.json"))
    ours = json.load(open(f"{out}/meekbench-{r}.json"))
    for run in ours["runs"]:
        t = run["threads"]
        kernel = run["kernel"]
        for pt in run["speed"]:
            for kind, key, n in (("pp", "prefill_tokens_per_second", pt["n_prompt"]),
                                 ("tg", "decode_tokens_per_second", pt["n_gen"])):
                ref = [x for x in peer if x["n_threads"] == t
                       and (x["n_prompt"] if kind == "pp" else x["n_gen"]) == n
                       and (x["n_gen"] == 0 if kind == "pp" else x["n_prompt"] == 0)]
                if ref:
                    rows.setdefault((t, f"{kind}{n}"), []).append((ref[0]["avg_ts"], pt[key]["median"]))
print(f"{rounds} alternating rounds{', one busy process beside both' if contention else ''}; kernel {kernel}; "
      f"llama-bench generates after {depth} cached tokens")
print(f"{'threads':>7}  {'test':<8} {'llama-bench t/s':>16} {'meekbench t/s':>14} {'ratio':>6}  ratio range")
for (t, test), pairs in sorted(rows.items()):
    ratios = [b / a for a, b in pairs]
    med = statistics.median
    print(f"{t:>7}  {test:<8} {med(a for a, _ in pairs):>16.1f} {med(b for _, b in pairs):>14.1f} "
          f"{med(ratios):>6.2f}  {min(ratios):.2f}-{max(ratios):.2f}")
PY
    log "raw files in $out (llama-bench-R.json, meekbench-R.json per round)"
    log "figure by figure, with significance and everything that differs between the two runs:"
    printf '  cargo run --release -q -- compare %q %q\n' "$out/meekbench-1.json" "$out/llama-bench-1.json" >&2
}

main() {
    local cmd="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
        build)
            build
            printf '%s\n' "$BIN_DIR"
            ;;
        bin)
            printf '%s\n' "$BIN_DIR"
            if ! is_built; then
                log "not built yet; run: $0 build"
                exit 1
            fi
            ;;
        bench)    cmd_bench "$@" ;;
        tokenize) cmd_tokenize "$@" ;;
        perplexity) cmd_perplexity "$@" ;;
        compare)  cmd_compare "$@" ;;
        -h|--help|help) usage ;;
        *)
            usage
            exit 2
            ;;
    esac
}

main "$@"
