#!/usr/bin/env bash
# A CUDA 13.0 toolkit from PyPI's NVIDIA wheels, to build meekbench's `cuda` feature on a machine without a system
# CUDA: CI, or a build machine for a GPU box that has no Rust toolchain.
#
# Usage:
#   scripts/cuda-toolkit.sh [--link] [PREFIX]
#       installs into PREFIX (default: $MEEKBENCH_CACHE/cuda-13.0, else ~/.cache/meekbench/cuda-13.0), once, and
#       prints the environment to build with:
#           eval "$(scripts/cuda-toolkit.sh)"; cargo clippy -p meekbench --features cuda
#           eval "$(scripts/cuda-toolkit.sh --link)"; cargo build --release -p meekbench --features cuda
#
# Without --link: nvcc with its compiler parts (nvvm, crt) and the runtime and CCCL headers, about 100 MB, which is
# what `cargo check`/`cargo clippy --features cuda` need: they compile every one of candle's CUDA kernels and type
# check meekbench's CUDA code, but link nothing. With --link also the libraries a binary links (cuBLAS, cuRAND,
# NVRTC; about 600 MB more) and a stub of the driver's libcuda.so.1 for the linker only, made from the 13.0 driver
# API header: a binary that needs a driver function 13.0 lacks fails to link here instead of failing to start on
# the GPU machine. The real libcuda comes with the GPU's driver; scripts/gpu-check.sh finds the rest there.
#
# Why 13.0: the PTX candle's kernels are compiled to must be no newer than the GPU driver accepts, and a 580-series
# driver (CUDA 13.0, as on current GPU servers) refuses the PTX of nvcc 13.1 and later; cudarc 0.19 knows CUDA up
# to 13.4 only. CUDA_COMPUTE_CAP (default 90, Hopper) sets the GPU generation the kernels are built for; PTX runs
# on that generation and newer ones.
set -euo pipefail

link=0
prefix=""
for arg in "$@"; do
    case "$arg" in
        --link) link=1 ;;
        -h|--help) sed -n '2,/^set -euo pipefail/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2; exit 0 ;;
        -*) echo "cuda-toolkit: unknown option $arg" >&2; exit 2 ;;
        *) prefix="$arg" ;;
    esac
done
prefix="${prefix:-${MEEKBENCH_CACHE:-$HOME/.cache/meekbench}/cuda-13.0}"

# Pinned: one CUDA release, every part of it.
compile=(nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-cuda-runtime==13.0.96
    nvidia-cuda-cccl==13.0.85)
libraries=(nvidia-cublas==13.0.0.19 nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88)

log() { printf 'cuda-toolkit: %s\n' "$*" >&2; }

install() { # stamp, packages...
    local stamp="$1"
    shift
    [[ -f $prefix/.$stamp ]] && return
    log "installing ${*} into $prefix"
    mkdir -p "$prefix"
    # pip --target would replace the shared nvidia/ folder of an earlier install: each set goes to its own folder
    # and the toolkit layout below links them together.
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps --no-compile --target "$prefix/pip-$stamp" "$@" >&2
    touch "$prefix/.$stamp"
}

install compile "${compile[@]}"
((link)) && install libraries "${libraries[@]}"

# The layout nvcc, cudaforge and cudarc expect: bin/, nvvm/, include/ and lib64/ under one root.
root="$prefix/toolkit"
src="$prefix/pip-compile/nvidia/cu13"
if [[ ! -x $root/bin/nvcc ]]; then
    mkdir -p "$root/lib64"
    for d in bin nvvm include; do ln -sfn "$src/$d" "$root/$d"; done
fi
if ((link)) && [[ ! -f $root/lib64/stubs/libcuda.so ]]; then
    for f in "$src"/lib/*.so.* "$prefix"/pip-libraries/nvidia/cu13/lib/*.so.*; do
        [[ -e $f ]] || continue
        name="$(basename "$f")"
        ln -sfn "$f" "$root/lib64/$name"
        ln -sfn "$f" "$root/lib64/${name%%.so*}.so"
    done
    mkdir -p "$root/lib64/stubs"
    # Every driver API function of the 13.0 header, by the names the preprocessor gives (cuMemAlloc -> _v2).
    echo '#include <cuda.h>' | gcc -E -P -I "$root/include" -x c - \
        | grep -oP '\bcu[A-Z][A-Za-z0-9_]*(?=\s*\()' | sort -u | sed 's/.*/void &(void) {}/' >"$root/lib64/stubs/cuda.c"
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$root/lib64/stubs/libcuda.so" "$root/lib64/stubs/cuda.c"
fi
"$root/bin/nvcc" --version | grep -q 'release 13.0' || { log "nvcc in $root is not CUDA 13.0"; exit 1; }

echo "export CUDA_HOME='$root' PATH='$root/bin':\"\$PATH\" CUDA_COMPUTE_CAP=\"\${CUDA_COMPUTE_CAP:-90}\""
