"""The int8 GEMM against float32 OpenBLAS and PyTorch's dynamic int8 Linear, as JSON.

For each Linear shape of MobileBERT (and BERT-base's FFN) at M = 128 and 1,024 rows (batch 1 and
8 at sequence length 128), this prints:
- float32: `x @ w.T` through NumPy (OpenBLAS), GFLOP/s;
- int8, per Numba path this CPU runs: the GEMM alone (uint8 x packed int8 -> int32), GOP/s
  (2 M N K / seconds, the same count as float32) and its speed-up over float32;
- the whole dynamic int8 Linear, float32 in and out (`quantize_u8` per tensor, then
  `int8_matmul` with the fused dequantization epilogue and bias, on the automatic path),
  against float32 `x @ w.T + bias`, and its parts: quantizing the activations (Numba kernel,
  and the NumPy reference for comparison), the GEMM with the epilogue, and the epilogue's own
  cost (GEMM with float32 output minus GEMM with int32 output);
- with torch importable: torch's float32 `F.linear`, `quantize_dynamic` of an `nn.Linear`
  (default qconfig: per-tensor qint8 weights, 7-bit activations on x86) and the raw
  `torch.ops.quantized.linear_dynamic` op, with the ratios of ours to them.

Every candidate of a shape is timed interleaved with the others, median of --repeats rounds, a
round being as many calls as fill ~20 ms, each block after --gap seconds of idleness.

OPENBLAS_SPIN: after a call, OpenBLAS's worker threads keep spinning for about 0.1 s. A Numba
kernel started in that window shares a core with a spinning thread, and on two cores its second
thread gains nothing: measured, the VNNI GEMM at 1024x768x3072 ran at 390-420 GOP/s right after
float32 matmuls and 816-821 GOP/s after 0.2 s of quiet. The gap keeps the candidates from
taxing each other; `int8_gemm_auto_right_after_openblas` times the other case (3 float32
matmuls, then one int8 GEMM), which is what a model mixing both would see.

The machine block names the CPU, its int8-relevant instruction set extensions, Numba's target
and the paths available, and the load average before and after (other processes' load skews
the 2-thread figures most).

    flock /tmp/tinybert-cpu.lock python benchmarks/int8_gemm.py [--repeats 7] [--threads N]
    PYTHONPATH=. /work/refvenv/bin/python benchmarks/int8_gemm.py     # with torch alongside
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

# --threads N must reach the BLAS / OpenMP / Numba pools before they start, i.e. before NumPy.
if "--threads" in sys.argv[:-1]:
    _n = sys.argv[sys.argv.index("--threads") + 1]
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                 "NUMBA_NUM_THREADS"):
        os.environ[_var] = _n

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import backends  # noqa: E402

# (label, K, N): MobileBERT's Linear layers (true hidden 128, bottleneck in/out 512 <-> 128,
# FFN 128 <-> 512), then BERT-base's FFN.
SHAPES = [
    ("MobileBERT bottleneck input, value, last FFN output (512->128)", 512, 128),
    ("MobileBERT query, key, attention output (128->128)", 128, 128),
    ("MobileBERT FFN intermediate, output bottleneck (128->512)", 128, 512),
    ("BERT-base FFN intermediate (768->3072)", 768, 3072),
    ("BERT-base FFN out (3072->768)", 3072, 768),
]
ROWS = (128, 1024)


def interleaved(candidates: dict[str, Callable[[], object]], repeats: int,
                gap: float) -> dict[str, float]:
    """Median seconds per call of each candidate, timed round-robin, each block of calls after
    `gap` seconds of idleness (see OPENBLAS_SPIN in the module docstring)."""
    number = {}
    for name, fn in candidates.items():
        fn()
        start = time.perf_counter()
        fn()
        number[name] = max(1, int(0.02 / max(time.perf_counter() - start, 1e-7)))
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            time.sleep(gap)
            start = time.perf_counter()
            for _ in range(number[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / number[name])
    return {name: float(np.median(s)) for name, s in samples.items()}


def machine(paths: tuple[str, ...], torch_version: str | None) -> dict:
    import llvmlite.binding as ll
    import numba

    from backends import numba_int8
    cpu = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                cpu.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = set(cpu.get("flags", "").split())
    wanted = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
              "amx_int8")
    return {
        "cpu": cpu.get("model name", platform.processor()),
        "cpu_family_model": f"{cpu.get('cpu family', '?')}/{cpu.get('model', '?')}",
        "isa": [f for f in wanted if f in flags],
        "numba_target_cpu": numba.config.CPU_NAME or ll.get_host_cpu_name(),
        "int8_paths": list(paths), "int8_auto_path_for_8_bit": numba_int8.choose_path(
            np.full(1, 255, np.uint8)),
        "activation_max_fast_path": numba_int8.activation_max(),
        "cpus": os.cpu_count(), "numba_threads": numba.get_num_threads(),
        "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
        "torch": torch_version,
    }


def torch_candidates(x: np.ndarray, w: np.ndarray, bias: np.ndarray, threads: int) -> dict:
    """torch's float32 Linear, its quantize_dynamic'd copy, and the raw linear_dynamic op."""
    try:
        import torch
    except ImportError:
        return {}
    warnings.filterwarnings("ignore", module="torch")      # torch.ao's deprecation notices
    warnings.filterwarnings("ignore", message=".*torch.ao.quantization.*")
    warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
    torch.set_num_threads(threads)
    linear = torch.nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(w))
        linear.bias.copy_(torch.from_numpy(bias))
    dynamic = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(linear),
                                                     {torch.nn.Linear}, dtype=torch.qint8)
    packed = dynamic[0]._packed_params._packed_params
    tx = torch.from_numpy(x)

    def run(fn):
        def call():
            with torch.inference_mode():
                return fn()
        return call
    return {"torch_float32": run(lambda: torch.nn.functional.linear(tx, linear.weight,
                                                                    linear.bias)),
            "torch_dynamic_int8": run(lambda: dynamic(tx)),
            "torch_linear_dynamic_op": run(
                lambda: torch.ops.quantized.linear_dynamic(tx, packed, True))}


def bench_shape(rng, label: str, m: int, k: int, n: int, paths, repeats: int,
                threads: int, gap: float) -> dict:
    from backends import numba_int8, reference
    from backends.int8 import pack_int8_weights
    numba_backend = backends.get_backend("numba")
    kernel, quantize = numba_backend.kernel("int8_matmul"), numba_backend.kernel("quantize_u8")
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = (rng.standard_normal((n, k)) * 0.05).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    w_scale = (np.abs(w).max(axis=1) / 127).astype(np.float32)          # per channel
    packed = pack_int8_weights(np.rint(w / w_scale[:, None]).astype(np.int8))
    qmax = numba_int8.activation_max()
    q, a_scale, zp = quantize(x, qmax)
    wt = w.T
    cands: dict[str, Callable[[], object]] = {"float32": lambda: x @ wt}
    q7, _, zp7 = quantize(x, 127)                     # the avx2 path's 7-bit activations
    for p in paths:
        qp, zpp = (q7, zp7) if p == "avx2" else (q, zp)
        cands[f"int8_{p}"] = (lambda p=p, qp=qp, zpp=zpp:
                              numba_int8.int8_matmul(qp, packed, zpp, path=p))
    cands["quantize_activations"] = lambda: quantize(x, qmax)
    cands["quantize_activations_numpy"] = lambda: reference.quantize_u8(x, qmax)
    cands["gemm_dequant_bias"] = lambda: kernel(q, packed, zp, a_scale, w_scale, bias)
    cands["gemm_int32_auto"] = lambda: kernel(q, packed, zp)

    def dynamic_linear():
        q_, s_, z_ = quantize(x, qmax)
        return kernel(q_, packed, z_, s_, w_scale, bias)
    cands["dynamic_linear_total"] = dynamic_linear
    cands["float32_linear"] = lambda: x @ wt + bias
    cands.update(torch_candidates(x, w, bias, threads))
    t = interleaved(cands, repeats, gap)
    after_blas = []
    for _ in range(repeats):                  # the auto path right after OpenBLAS calls
        time.sleep(gap)
        for _ in range(3):
            x @ wt
        start = time.perf_counter()
        kernel(q, packed, zp)
        after_blas.append(time.perf_counter() - start)
    ops = 2.0 * m * n * k
    row: dict = {"shape": label, "M": m, "K": k, "N": n,
                 "float32_ms": round(t["float32"] * 1e3, 4),
                 "float32_gflops": round(ops / t["float32"] / 1e9, 1), "int8_gemm": {}}
    for p in paths:
        s = t[f"int8_{p}"]
        row["int8_gemm"][p] = {"ms": round(s * 1e3, 4), "gops": round(ops / s / 1e9, 1),
                               "speedup_vs_float32": round(t["float32"] / s, 2)}
    row["int8_gemm_auto_right_after_openblas"] = {
        "ms": round(float(np.median(after_blas)) * 1e3, 4),
        "gops": round(ops / float(np.median(after_blas)) / 1e9, 1)}
    total = t["dynamic_linear_total"]
    row["dynamic_int8_linear"] = {
        "quantize_activations_ms": round(t["quantize_activations"] * 1e3, 4),
        "quantize_activations_numpy_reference_ms": round(
            t["quantize_activations_numpy"] * 1e3, 4),
        "gemm_dequant_bias_ms": round(t["gemm_dequant_bias"] * 1e3, 4),
        "dequant_epilogue_ms": round((t["gemm_dequant_bias"] - t["gemm_int32_auto"]) * 1e3, 4),
        "total_ms": round(total * 1e3, 4),
        "float32_linear_ms": round(t["float32_linear"] * 1e3, 4),
        "speedup_vs_float32_linear": round(t["float32_linear"] / total, 2)}
    if "torch_float32" in t:
        row["torch"] = {
            "float32_ms": round(t["torch_float32"] * 1e3, 4),
            "dynamic_int8_ms": round(t["torch_dynamic_int8"] * 1e3, 4),
            "linear_dynamic_op_ms": round(t["torch_linear_dynamic_op"] * 1e3, 4),
            "torch_int8_speedup_vs_torch_float32": round(
                t["torch_float32"] / t["torch_dynamic_int8"], 2),
            "ours_total_speedup_vs_torch_dynamic_int8": round(t["torch_dynamic_int8"] / total, 2),
            "ours_best_gemm_speedup_vs_torch_linear_dynamic_op": round(
                t["torch_linear_dynamic_op"] / min(t[f"int8_{p}"] for p in paths), 2)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for OpenBLAS, Numba and torch (default: all cores)")
    parser.add_argument("--rows", type=int, nargs="+", default=list(ROWS))
    parser.add_argument("--gap", type=float, default=0.15,
                        help="idle seconds before each timed block (OpenBLAS's spin-down)")
    args = parser.parse_args()
    backends.get_backend("numba")                   # sets OMP_WAIT_POLICY before OpenMP loads
    from backends import numba_int8
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    paths = numba_int8.available_paths()
    threads = args.threads or os.cpu_count() or 1
    report = {"machine": machine(paths, torch_version)}
    report["machine"]["load_average_before"] = round(os.getloadavg()[0], 2)
    rng = np.random.default_rng(0)
    rows = [bench_shape(rng, label, m, k, n, paths, args.repeats, threads, args.gap)
            for m in args.rows for label, k, n in SHAPES]
    report["machine"]["load_average_after"] = round(os.getloadavg()[0], 2)
    report["shapes"] = rows
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
