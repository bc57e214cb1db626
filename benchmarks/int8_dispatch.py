"""Where an int8 Linear beats a float32 one: the measurements behind the fallback rule, as JSON.

For a grid of layer shapes (out_features N x in_features K) and row counts M, on the Numba
backend, the time of one call of:
- `float32`: `nn.Linear` (x W^T + b through OpenBLAS), what a float model runs;
- `int8`: `QuantizedLinear` under `int8_dispatch("always")`, dynamic per-row activations, its
  activation quantization included (the shared quantizer forgets x before every call, so every
  call quantizes; in a model, layers that read one tensor share that pass);
- `auto`: the same layer under `int8_dispatch("auto")`, i.e. whichever the rule of
  `tinybert_core/quantization/dispatch.py` picks (`rule` says which).
Each point is the minimum over --repeats calls (each candidate timed in turn, so contention hits
all of them alike), in microseconds, with `int8_speedup` = float32 / int8 and
`auto_over_best` = auto / min(float32, int8): 1.0 where the rule picks the faster one.

`--avx2` runs the same grid again in a child process whose Numba target is the host without
AVX-512 and VNNI (benchmarks/int8.py's emulation: znver3, OpenBLAS Haswell kernels), i.e. the
"avx2" path with 7-bit activations. There is no grid for the "portable" path: "auto" never
runs it (`Backend.int8_gemm_path()` is None there), so every layer is float32.

    flock /tmp/tinybert-cpu.lock env OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \\
        python benchmarks/int8_dispatch.py --avx2
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import backends  # noqa: E402
from autograd import Tensor, nn, no_grad  # noqa: E402
from tinybert_core.quantization import (  # noqa: E402
    InputQuantizer,
    QuantizedLinear,
    int8_dispatch,
    int8_pays,
    quantize_weight,
)

SIDES = (32, 128, 512)
ROWS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


def best_us(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e6


def point(be, n: int, k: int, m: int, repeats: int, rng) -> dict:
    float_layer = nn.Linear(k, n).to(be.name)
    q, s = quantize_weight(float_layer.weight.numpy())
    int8_layer = QuantizedLinear(q, s.reshape(-1), float_layer.bias.numpy(),
                                 InputQuantizer(per_row=True))
    x = Tensor(rng.standard_normal((m, k)).astype(np.float32), device=be.name)

    def int8_call():
        int8_layer.quantizer.forget()
        int8_layer(x)

    # fewer calls for big products: ~0.1 s per candidate at most, at least 5
    reps = int(min(repeats, max(5, 0.1 / max(m * n * k / 2e10, 1e-6))))
    times: dict[str, list[float]] = {"float32": [], "int8": [], "auto": []}
    with no_grad():
        for _ in range(3):                             # interleave three blocks of each
            times["float32"].append(best_us(lambda: float_layer(x), reps // 3 + 1))
            with int8_dispatch("always"):
                times["int8"].append(best_us(int8_call, reps // 3 + 1))
            with int8_dispatch("auto"):
                times["auto"].append(best_us(int8_call, reps // 3 + 1))
    t = {name: round(min(v), 1) for name, v in times.items()}
    return {"n": n, "k": k, "m": m, "macs": m * n * k, **{f"{name}_us": v for name, v in t.items()},
            "int8_speedup": round(t["float32"] / t["int8"], 3),
            "rule": "int8" if int8_pays(be, m, n, k) else "float32",
            "auto_over_best": round(t["auto"] / min(t["float32"], t["int8"]), 3)}


def grid(args: argparse.Namespace) -> dict:
    from backends import numba_int8
    if args.path:          # pretend the CPU's best path is this one (and what is slower)
        slower = numba_int8.PATHS[numba_int8.PATHS.index(args.path):]
        numba_int8.available_paths = lambda: slower
    be = backends.get_backend("numba")
    rng = np.random.default_rng(0)
    points = [point(be, n, k, m, args.repeats, rng)
              for n in args.sides for k in args.sides for m in args.rows]
    return {"int8_path": be.int8_gemm_path(), "paths": list(numba_int8.available_paths()),
            "load_average": [round(x, 2) for x in os.getloadavg()], "points": points,
            "auto_slower_than_float32": [p for p in points
                                         if p["auto_us"] > 1.05 * p["float32_us"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=list(SIDES))
    parser.add_argument("--rows", type=int, nargs="+", default=list(ROWS))
    parser.add_argument("--repeats", type=int, default=150)
    parser.add_argument("--avx2", action="store_true")
    parser.add_argument("--path", choices=("avx_vnni", "avx2"),
                        help="Time this path as if it were the CPU's best (the float32 side "
                        "keeps this CPU's OpenBLAS kernels).")
    args = parser.parse_args()
    backends.get_backend("numba")
    report = {"threads": {v: os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS",
                                                          "NUMBA_NUM_THREADS")},
              "native": grid(args)}
    if args.avx2:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from int8 import avx2_environment
        command = [sys.executable, __file__, "--repeats", str(args.repeats), "--sides",
                   *map(str, args.sides), "--rows", *map(str, args.rows)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600,
                              env={**os.environ, **avx2_environment(), "PYTHONPATH": str(ROOT)})
        report["avx2_emulated"] = (json.loads(done.stdout)["native"] if not done.returncode
                                   else {"error": done.stderr[-3000:]})
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
