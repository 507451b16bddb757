#!/usr/bin/env python3
"""Write a random-weight GGUF of a real model's shape, to measure models of any size without downloading them.

A forward pass costs the same whatever the weights hold: a file of Llama 3.1 8B's shape, quantised as users run it,
takes the time and memory that the trained model takes on the same machine (the engines have no data-dependent
shortcuts). So speed and memory at 1B-8B can be measured here and put beside llama-bench on the same file. The
answers are noise: keep the real models for accuracy and correctness.

The tokenizer (every `tokenizer.*` key) is copied from a real GGUF (`--tokenizer-from`), and its vocabulary padded
with unused tokens to the shape's vocabulary size, since the output matrix is a large part of a small model's cost.
Weights are written in F16 (or F32), drawn from a normal distribution scaled by 1/sqrt(fan-in) (the output matrix by
`--logit-gain`, so that logits are peaked and greedy choices stable), and then, with `--quant`, quantised by
llama.cpp's `llama-quantize` (built by `scripts/peer-llama-bench.sh build`) into the types users run: Q4_K_M, Q4_0,
Q5_K_M, Q6_K, Q8_0. Where llama-quantize is not built (a GPU machine checked by scripts/gpu-check.sh), `--direct
Q4_0` writes every matrix in that type (or Q4_1, Q5_0, Q8_0) with gguf-py's own quantiser instead. Tensors are made
in parallel processes (`--jobs`), each from its own random stream, so the file does not depend on their number.

    scripts/synth-gguf.py --shape llama-3.2-1b --tokenizer-from smollm2.gguf -o llama-1b.gguf --quant Q4_K_M
    scripts/synth-gguf.py --shape gemma3-270m --tokenizer-from gemma3.gguf -o gemma.Q4_0.gguf --direct Q4_0
    scripts/synth-gguf.py --list

Needs the `gguf` and `numpy` packages (`pip install gguf numpy`). Files are written where `-o` says: keep them out
of the repository (~/.cache/meekbench/synth is a good place).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

try:
    import gguf
    import numpy as np
except ImportError:  # pragma: no cover - the message is the point
    sys.exit("synth-gguf: needs the gguf and numpy packages: python3 -m pip install gguf numpy")


@dataclass(frozen=True)
class Shape:
    arch: str  # general.architecture: llama, qwen2, qwen3, gemma2, gemma3, smollm3, phi3
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    head_dim: int | None = None  # when not hidden / heads
    rope_base: float = 10_000.0
    tied: bool = False  # output matrix shared with the token embedding
    window: int = 0  # gemma2/gemma3 local layers, phi3 sliding window
    context: int = 8192
    llama3_factor: float = 0.0  # llama3 rotary scaling (rope_freqs.weight): factor, with low 1, high 4, original 8192
    longrope_original: int = 0  # phi3 LongRoPE: the original context (short and long factors, attention factor)
    source: str = ""  # where the shape's numbers come from


# Hyper-parameters from each model's config.json on the Hugging Face hub (the `source`).
SHAPES: dict[str, Shape] = {
    "llama-3.2-1b": Shape("llama", 2048, 16, 32, 8, 8192, 128256, rope_base=500_000.0, tied=True,
                          context=131072, llama3_factor=32.0, source="meta-llama/Llama-3.2-1B-Instruct config.json"),
    "llama-3.2-3b": Shape("llama", 3072, 28, 24, 8, 8192, 128256, rope_base=500_000.0, tied=True,
                          context=131072, llama3_factor=32.0, source="meta-llama/Llama-3.2-3B-Instruct config.json"),
    "llama-3.1-8b": Shape("llama", 4096, 32, 32, 8, 14336, 128256, rope_base=500_000.0,
                          context=131072, llama3_factor=8.0, source="meta-llama/Llama-3.1-8B-Instruct config.json"),
    "qwen2.5-1.5b": Shape("qwen2", 1536, 28, 12, 2, 8960, 151936, rope_base=1_000_000.0, tied=True,
                          source="Qwen/Qwen2.5-1.5B-Instruct config.json"),
    "qwen2.5-3b": Shape("qwen2", 2048, 36, 16, 2, 11008, 151936, rope_base=1_000_000.0, tied=True,
                        source="Qwen/Qwen2.5-3B-Instruct config.json"),
    "qwen2.5-7b": Shape("qwen2", 3584, 28, 28, 4, 18944, 152064, rope_base=1_000_000.0,
                        source="Qwen/Qwen2.5-7B-Instruct config.json"),
    "qwen3-1.7b": Shape("qwen3", 2048, 28, 16, 8, 6144, 151936, head_dim=128, rope_base=1_000_000.0, tied=True,
                        source="Qwen/Qwen3-1.7B config.json"),
    "qwen3-4b": Shape("qwen3", 2560, 36, 32, 8, 9728, 151936, head_dim=128, rope_base=1_000_000.0, tied=True,
                      source="Qwen/Qwen3-4B config.json"),
    "qwen3-8b": Shape("qwen3", 4096, 36, 32, 8, 12288, 151936, head_dim=128, rope_base=1_000_000.0,
                      source="Qwen/Qwen3-8B config.json"),
    "gemma2-2b": Shape("gemma2", 2304, 26, 8, 4, 9216, 256000, head_dim=256, tied=True, window=4096,
                       source="google/gemma-2-2b-it config.json"),
    "smollm3-3b": Shape("smollm3", 2048, 36, 16, 4, 11008, 128256, rope_base=5_000_000.0, tied=True, context=65536,
                        source="HuggingFaceTB/SmolLM3-3B config.json"),
    "gemma3-1b": Shape("gemma3", 1152, 26, 4, 1, 6912, 262144, head_dim=256, rope_base=1_000_000.0, tied=True,
                       window=512, source="google/gemma-3-1b-it config.json"),
    "smollm2-135m": Shape("llama", 576, 30, 9, 3, 1536, 49152, rope_base=100_000.0, tied=True,
                          source="HuggingFaceTB/SmolLM2-135M-Instruct config.json"),
    "gemma3-270m": Shape("gemma3", 640, 18, 4, 1, 2048, 262144, head_dim=256, rope_base=1_000_000.0, tied=True,
                         window=512, context=32768, source="google/gemma-3-270m config.json"),
    "phi-3.5-mini": Shape("phi3", 3072, 32, 32, 32, 8192, 32064, rope_base=10_000.0, context=131072,
                          window=262144, longrope_original=4096, source="microsoft/Phi-3.5-mini-instruct config.json"),
    # A small shape for quick checks.
    "tiny-llama": Shape("llama", 256, 4, 4, 2, 512, 0, source="meekbench test shape (vocabulary of the tokenizer)"),
}

# The llama.cpp quantisation types users run, by llama-quantize's names.
QUANTS = ("Q4_K_M", "Q4_0", "Q5_K_M", "Q6_K", "Q8_0")
# The types gguf-py itself quantises (`--direct`). Unlike llama-quantize's mixes, every matrix gets the one type,
# the embedding and output matrix too (llama-quantize's Q4_0 keeps the output matrix in Q6_K).
DIRECT = ("Q4_0", "Q4_1", "Q5_0", "Q8_0")


def copy_tokenizer(writer: gguf.GGUFWriter, source: Path, vocab: int) -> int:
    """Copies every tokenizer.* key of `source`, padding the token list to `vocab`; returns the vocabulary size."""
    reader = gguf.GGUFReader(source)
    fields = {name: f for name, f in reader.fields.items() if name.startswith("tokenizer.")}
    if "tokenizer.ggml.tokens" not in fields:
        sys.exit(f"synth-gguf: {source} has no tokenizer.ggml.tokens")
    tokens = [bytes(fields["tokenizer.ggml.tokens"].parts[i]).decode("utf-8", "replace")
              for i in fields["tokenizer.ggml.tokens"].data]
    n = len(tokens)
    target = max(vocab, n)
    for name, field in fields.items():
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            sub = field.types[-1]
            # Strings stay bytes (a token need not be valid UTF-8), numbers keep their element type.
            if sub == gguf.GGUFValueType.STRING:
                values = [bytes(field.parts[i]) for i in field.data]
            else:
                values = [field.parts[i].tolist()[0] for i in field.data]
            if len(values) == n and name in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores",
                                             "tokenizer.ggml.token_type"):
                pad = target - n
                if name == "tokenizer.ggml.tokens":
                    values += [f"<|meekbench_unused_{i}|>".encode() for i in range(pad)]
                elif name == "tokenizer.ggml.scores":
                    values += [0.0] * pad
                else:
                    values += [5] * pad  # unused
            if not values:
                sys.exit(f"synth-gguf: {source}: {name} is an empty array, which gguf-py cannot write")
            writer.add_key_value(name, values, gguf.GGUFValueType.ARRAY, sub_type=sub)
        elif vtype == gguf.GGUFValueType.STRING:
            writer.add_key_value(name, bytes(field.parts[-1]), vtype)
        else:
            writer.add_key_value(name, field.parts[-1].tolist()[0], vtype)
    return target


def write_tokenizer_only(source: Path, path: Path) -> None:
    """A GGUF of `source`'s architecture and tokenizer.* keys and no tensors, for --tokenizer-from elsewhere."""
    reader = gguf.GGUFReader(source)
    arch_field = reader.fields.get("general.architecture")
    arch = bytes(arch_field.parts[-1]).decode() if arch_field else "llama"
    writer = gguf.GGUFWriter(path, arch)
    writer.add_name("meekbench tokenizer only")
    n = copy_tokenizer(writer, source, 0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    print(f"synth-gguf: wrote {path} (the tokenizer of {source}, {n} tokens, no tensors)", file=sys.stderr)


def llama3_factors(shape: Shape) -> np.ndarray:
    """The llama3 rotary frequency factors, as llama.cpp's converter computes them (convert_hf_to_gguf.py)."""
    hd = shape.head_dim or shape.hidden // shape.heads
    low, high, orig = 1.0, 4.0, 8192.0
    out = []
    for i in range(0, hd, 2):
        freq = 1.0 / shape.rope_base ** (i / hd)
        wavelen = 2 * np.pi / freq
        if wavelen < orig / high:
            out.append(1.0)
        elif wavelen > orig / low:
            out.append(shape.llama3_factor)
        else:
            smooth = (orig / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / shape.llama3_factor + smooth))
    return np.array(out, dtype=np.float32)


def longrope_factors(shape: Shape, long: bool) -> np.ndarray:
    """LongRoPE factors of the shape's head (half as many as its width), rising as Phi-3.5's do: short from 1 to 2,
    long from 1 to 40 (the values are the trained model's business; their cost is nil)."""
    hd = shape.head_dim or shape.hidden // shape.heads
    return np.linspace(1.0, 40.0 if long else 2.0, hd // 2, dtype=np.float32)


def tensors(shape: Shape) -> list[tuple[str, tuple[int, ...], float]]:
    """Name, numpy shape (rows = outputs) and standard deviation of every tensor; std 0 means a norm of ones, -1
    the llama3 rotary factors, -2 and -3 the LongRoPE short and long factors."""
    hd = shape.head_dim or shape.hidden // shape.heads
    qd, kvd = shape.heads * hd, shape.kv_heads * hd
    h, f = shape.hidden, shape.ffn
    out = [("token_embd.weight", (shape.vocab, h), 1.0), ("output_norm.weight", (h,), 0.0)]
    if shape.llama3_factor:
        out.append(("rope_freqs.weight", (hd // 2,), -1.0))
    if shape.longrope_original:
        out += [("rope_factors_short.weight", (hd // 2,), -2.0), ("rope_factors_long.weight", (hd // 2,), -3.0)]
    if not shape.tied:
        out.append(("output.weight", (shape.vocab, h), h ** -0.5))
    for layer in range(shape.layers):
        p = f"blk.{layer}."
        out.append((p + "attn_norm.weight", (h,), 0.0))
        if shape.arch == "phi3":  # q/k/v fused, as Phi-3's converter writes them
            out.append((p + "attn_qkv.weight", (qd + 2 * kvd, h), h ** -0.5))
        else:
            out += [(p + "attn_q.weight", (qd, h), h ** -0.5),
                    (p + "attn_k.weight", (kvd, h), h ** -0.5),
                    (p + "attn_v.weight", (kvd, h), h ** -0.5)]
        out.append((p + "attn_output.weight", (h, qd), qd ** -0.5))
        if shape.arch == "qwen2":
            out += [(p + "attn_q.bias", (qd,), 0.02), (p + "attn_k.bias", (kvd,), 0.02),
                    (p + "attn_v.bias", (kvd,), 0.02)]
        if shape.arch in ("qwen3", "gemma3"):
            out += [(p + "attn_q_norm.weight", (hd,), 0.0), (p + "attn_k_norm.weight", (hd,), 0.0)]
        if shape.arch in ("gemma2", "gemma3"):
            out += [(p + "post_attention_norm.weight", (h,), 0.0), (p + "post_ffw_norm.weight", (h,), 0.0)]
        out.append((p + "ffn_norm.weight", (h,), 0.0))
        if shape.arch == "phi3":  # gate and up fused, gate first
            out.append((p + "ffn_up.weight", (2 * f, h), h ** -0.5))
        else:
            out += [(p + "ffn_gate.weight", (f, h), h ** -0.5), (p + "ffn_up.weight", (f, h), h ** -0.5)]
        out.append((p + "ffn_down.weight", (h, f), f ** -0.5))
    return out


def make_tensor(item: tuple[int, str, tuple[int, ...], float], shape: Shape, seed: int, logit_gain: float,
                np_dtype: type, direct: str | None) -> np.ndarray:
    """The data of one tensor, as written: F32 norms and biases, matrices in the file's type."""
    index, tname, tshape, std = item
    if std == 0.0:
        return np.ones(tshape, dtype=np.float32)
    if std == -1.0:
        return llama3_factors(shape)
    if std < 0.0:
        return longrope_factors(shape, long=std == -3.0)
    rng = np.random.default_rng([seed, index])
    # A tied embedding (std 1) already gives logits of std sqrt(hidden): only a separate output matrix gains.
    gain = logit_gain if tname == "output.weight" else 1.0
    data = rng.standard_normal(tshape, dtype=np.float32) * (std * gain)
    if len(tshape) == 2 and direct:
        return gguf.quants.quantize(data, gguf.GGMLQuantizationType[direct])
    return data.astype(np.float32 if len(tshape) == 1 else np_dtype)


def write(shape: Shape, name: str, tokenizer: Path, path: Path, dtype: str, seed: int, logit_gain: float,
          direct: str | None = None, jobs: int = 1) -> None:
    """Writes the file; with `direct`, every matrix is quantised to that type by gguf-py while writing."""
    writer = gguf.GGUFWriter(path, shape.arch)
    # llama.cpp sets token attributes by model name, and a name with "phi-3" asks for Phi-3's own special tokens,
    # which a copied tokenizer lacks.
    writer.add_name(f"meekbench synthetic {name.replace('phi-3', 'phi 3')} (random weights)")
    writer.add_string("general.description",
                      f"Random weights of the shape of {shape.source}; costs what the trained model costs to run, "
                      "answers nothing. Written by meekbench's scripts/synth-gguf.py.")
    vocab = copy_tokenizer(writer, tokenizer, shape.vocab)
    shape = replace(shape, vocab=vocab)
    hd = shape.head_dim or shape.hidden // shape.heads
    a = shape.arch
    writer.add_uint32(f"{a}.vocab_size", vocab)
    writer.add_uint32(f"{a}.context_length", shape.context)
    writer.add_uint32(f"{a}.embedding_length", shape.hidden)
    writer.add_uint32(f"{a}.block_count", shape.layers)
    writer.add_uint32(f"{a}.feed_forward_length", shape.ffn)
    writer.add_uint32(f"{a}.attention.head_count", shape.heads)
    writer.add_uint32(f"{a}.attention.head_count_kv", shape.kv_heads)
    writer.add_uint32(f"{a}.attention.key_length", hd)
    writer.add_uint32(f"{a}.attention.value_length", hd)
    writer.add_uint32(f"{a}.rope.dimension_count", hd)
    writer.add_float32(f"{a}.rope.freq_base", shape.rope_base)
    writer.add_float32(f"{a}.attention.layer_norm_rms_epsilon", 1e-6 if a != "llama" else 1e-5)
    if a == "gemma3":
        writer.add_uint32(f"{a}.attention.sliding_window", shape.window)
        writer.add_float32(f"{a}.rope.freq_base_swa", 10_000.0)
    if a == "phi3":
        writer.add_uint32(f"{a}.attention.sliding_window", shape.window)
        if shape.longrope_original:
            # As llama.cpp's converter: the attention factor of LongRoPE at this context extension.
            scale = shape.context / shape.longrope_original
            writer.add_uint32(f"{a}.rope.scaling.original_context_length", shape.longrope_original)
            writer.add_float32(f"{a}.rope.scaling.attn_factor",
                               float(np.sqrt(1 + np.log(scale) / np.log(shape.longrope_original))))
    if a == "gemma2":
        writer.add_uint32(f"{a}.attention.sliding_window", shape.window)
        writer.add_float32(f"{a}.attn_logit_softcapping", 50.0)
        writer.add_float32(f"{a}.final_logit_softcapping", 30.0)
    np_dtype = np.float16 if dtype == "f16" else np.float32
    qtype = gguf.GGMLQuantizationType[direct] if direct else None
    plan = tensors(shape)
    for tname, tshape, _ in plan:
        # Norms and biases stay F32, as converters write them.
        if len(tshape) == 2 and qtype is not None:
            block, type_size = gguf.GGML_QUANT_SIZES[qtype]
            if tshape[1] % block:
                sys.exit(f"synth-gguf: {tname} has {tshape[1]} columns, not a multiple of {direct}'s block of {block}")
            nbytes = tshape[0] * (tshape[1] // block) * type_size
            writer.add_tensor_info(tname, tshape, np.dtype(np.float32), nbytes, raw_dtype=qtype)
            continue
        t_dtype = np.float32 if len(tshape) == 1 else np_dtype
        nbytes = int(np.prod(tshape)) * np.dtype(t_dtype).itemsize
        writer.add_tensor_info(tname, tshape, np.dtype(t_dtype), nbytes)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    # Each tensor has its own random stream (seed, index), so that tensors can be made in parallel and the file
    # is the same whatever the number of jobs; at most 2 x jobs tensors are in flight, bounding memory.
    jobs = max(1, jobs)
    work = [(i, tname, tshape, std) for i, (tname, tshape, std) in enumerate(plan)]
    total = 0
    with concurrent.futures.ProcessPoolExecutor(jobs) if jobs > 1 else contextlib.nullcontext() as pool:
        pending: collections.deque = collections.deque()
        args = (shape, seed, logit_gain, np_dtype, direct)
        for item in work:
            if pool is None:
                pending.append(make_tensor(item, *args))
            else:
                pending.append(pool.submit(make_tensor, item, *args))
            while pending and (pool is None or len(pending) >= 2 * jobs):
                first = pending.popleft()
                writer.write_tensor_data(first if pool is None else first.result())
        while pending:
            writer.write_tensor_data(pending.popleft().result())
    total = sum(int(np.prod(tshape)) for _, tshape, _ in plan)
    writer.close()
    print(f"synth-gguf: wrote {path} ({shape.arch}, {total / 1e9:.2f}B parameters, vocabulary {vocab}, "
          f"{direct or dtype})", file=sys.stderr)


def quantize(src: Path, dst: Path, quant: str) -> None:
    here = Path(__file__).resolve().parent
    bindir = subprocess.run([str(here / "peer-llama-bench.sh"), "bin"], capture_output=True, text=True)
    exe = Path(bindir.stdout.strip()) / "llama-quantize"
    if bindir.returncode != 0 or not exe.is_file():
        sys.exit("synth-gguf: llama-quantize is not built; run scripts/peer-llama-bench.sh build")
    threads = str(os.cpu_count() or 2)
    done = subprocess.run([str(exe), str(src), str(dst), quant, threads], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"synth-gguf: llama-quantize {quant} failed:\n{done.stderr[-4000:]}")
    print(f"synth-gguf: quantised {dst} ({quant})", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), help="a real model's shape")
    ap.add_argument("--list", action="store_true", help="list the shapes and where their numbers come from")
    ap.add_argument("--tokenizer-only", action="store_true",
                    help="write only the tokenizer of --tokenizer-from (no tensors, a few MB) to -o: what a machine "
                         "that cannot receive the real model needs to write files with its vocabulary")
    ap.add_argument("--tokenizer-from", type=Path, help="a real GGUF whose tokenizer.* keys are copied")
    ap.add_argument("-o", "--output", type=Path, help="the GGUF to write (F16 or F32)")
    ap.add_argument("--dtype", choices=("f16", "f32"), default="f16")
    ap.add_argument("--quant", choices=QUANTS, action="append", default=[],
                    help="also write OUTPUT with the type's name (e.g. x.Q4_K_M.gguf) by llama-quantize; repeatable")
    ap.add_argument("--direct", choices=DIRECT,
                    help="write every matrix in this type by gguf-py's own quantiser (no llama-quantize needed, e.g. "
                         "on a machine without the peer build); not with --quant")
    ap.add_argument("--keep-unquantized", action="store_true", help="keep the F16/F32 file after --quant")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="processes making tensors in parallel (default: one per CPU); the file does not depend on it")
    ap.add_argument("--logit-gain", type=float, default=4.0,
                    help="factor on the output matrix (peaked logits, stable greedy choices); default 4")
    for field in ("hidden", "layers", "heads", "kv_heads", "ffn", "vocab", "head_dim"):
        ap.add_argument(f"--{field.replace('_', '-')}", type=int, help=f"override the shape's {field}")
    args = ap.parse_args()
    if args.list:
        for name, s in SHAPES.items():
            print(f"{name:<14} {s.arch:<7} hidden {s.hidden:>5}  layers {s.layers:>3}  heads {s.heads:>3}/{s.kv_heads:<2} "
                  f"ffn {s.ffn:>6}  vocab {s.vocab:>6}  ({s.source})")
        return
    if args.tokenizer_only:
        if not (args.tokenizer_from and args.output):
            ap.error("--tokenizer-only needs --tokenizer-from and -o")
        write_tokenizer_only(args.tokenizer_from, args.output)
        return
    if not (args.shape and args.tokenizer_from and args.output):
        ap.error("--shape, --tokenizer-from and -o are required (or --list, or --tokenizer-only)")
    shape = SHAPES[args.shape]
    overrides = {k: getattr(args, k) for k in ("hidden", "layers", "heads", "kv_heads", "ffn", "vocab", "head_dim")
                 if getattr(args, k) is not None}
    for k, v in overrides.items():
        if v <= 0:
            ap.error(f"--{k.replace('_', '-')} must be positive")
    shape = replace(shape, **overrides)
    if shape.hidden % shape.heads or shape.heads % shape.kv_heads:
        ap.error("hidden must be a multiple of heads, and heads of kv-heads")
    if args.direct and args.quant:
        ap.error("--direct writes the quantised file itself; leave out --quant")
    write(shape, args.shape, args.tokenizer_from, args.output, args.dtype, args.seed, args.logit_gain, args.direct,
          args.jobs)
    for q in args.quant:
        stem = args.output.name.removesuffix(".gguf")
        quantize(args.output, args.output.with_name(f"{stem}.{q}.gguf"), q)
    if args.quant and not args.keep_unquantized:
        args.output.unlink()


if __name__ == "__main__":
    main()
