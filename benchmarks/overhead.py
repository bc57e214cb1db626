"""Engine overhead: per-op dispatch cost and matmul throughput through the engine vs raw NumPy.

Prints one JSON document. Targets (issue 2): a 4x4 add costs < 10 us per op through the engine;
a (8*128, 512) @ (512, 128) matmul through the engine is within 5% of raw NumPy. When PyTorch
happens to be importable, the same measurements for torch eager CPU are added side by side
(it is never a dependency).

    python benchmarks/overhead.py [--repeats 7]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import autograd.functional as F  # noqa: E402
from autograd import Tensor  # noqa: E402


def best_of(fn, number: int, repeats: int) -> float:
    """Median over `repeats` of the mean seconds per call over `number` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return float(np.median(times))


def interleaved(fns: dict, number: int, repeats: int) -> dict:
    """Like best_of for several functions, alternating between them each repeat so that load
    from other processes hits every contender alike; median seconds per call for each."""
    times: dict = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            times[k].append((time.perf_counter() - start) / number)
    return {k: float(np.median(v)) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    r = args.repeats
    out: dict = {"machine": {"python": platform.python_version(), "numpy": np.__version__,
                             "cpus": os.cpu_count(), "processor": platform.machine()}}

    a = Tensor(np.ones((4, 4), np.float32))
    b = Tensor(np.ones((4, 4), np.float32))
    raw_a, raw_b = a.data, b.data
    out["add_4x4_us"] = {
        "raw_numpy": best_of(lambda: raw_a + raw_b, 20000, r) * 1e6,
        "engine_forward": best_of(lambda: a + b, 20000, r) * 1e6,
    }
    ga = Tensor(np.ones((4, 4), np.float32), requires_grad=True)
    seed = np.ones((4, 4), np.float32)
    out["add_4x4_us"]["engine_forward_backward"] = best_of(
        lambda: (ga + b).backward(seed), 10000, r) * 1e6
    out["add_4x4_us"]["engine_overhead_forward"] = (
        out["add_4x4_us"]["engine_forward"] - out["add_4x4_us"]["raw_numpy"])

    rng = np.random.default_rng(0)
    x = rng.standard_normal((8 * 128, 512)).astype(np.float32)
    w = rng.standard_normal((512, 128)).astype(np.float32)
    flops = 2 * x.shape[0] * x.shape[1] * w.shape[1]
    tx, tw = Tensor(x), Tensor(w)
    wt = Tensor(np.ascontiguousarray(w.T))
    t = interleaved({"raw": lambda: x @ w, "engine": lambda: tx @ tw,
                     "linear": lambda: F.linear(tx, wt)}, 20, 3 * r)
    raw, eng, lin = t["raw"], t["engine"], t["linear"]
    out["matmul_1024x512x128"] = {
        "raw_numpy_gflops": flops / raw / 1e9, "engine_gflops": flops / eng / 1e9,
        "engine_linear_gflops": flops / lin / 1e9,
        "engine_over_raw_time": eng / raw, "linear_over_raw_time": lin / raw,
    }
    out["targets"] = {
        "add_overhead_under_10us": out["add_4x4_us"]["engine_overhead_forward"] < 10,
        "matmul_within_5pct": out["matmul_1024x512x128"]["engine_over_raw_time"] <= 1.05,
    }

    try:
        import torch
    except ImportError:
        out["torch"] = None
    else:
        torch.set_grad_enabled(True)
        pa, pb = torch.ones(4, 4), torch.ones(4, 4)
        pga = torch.ones(4, 4, requires_grad=True)
        pseed = torch.ones(4, 4)
        px, pw = torch.from_numpy(x), torch.from_numpy(w)
        t_mm = best_of(lambda: px @ pw, 50, r)
        out["torch"] = {
            "version": torch.__version__, "threads": torch.get_num_threads(),
            "add_4x4_forward_us": best_of(lambda: pa + pb, 20000, r) * 1e6,
            "add_4x4_forward_backward_us": best_of(
                lambda: (pga + pb).backward(pseed), 10000, r) * 1e6,
            "matmul_gflops": flops / t_mm / 1e9,
        }
        out["ratio_vs_torch"] = {
            "add_forward": out["add_4x4_us"]["engine_forward"] / out["torch"]["add_4x4_forward_us"],
            "add_forward_backward": out["add_4x4_us"]["engine_forward_backward"]
            / out["torch"]["add_4x4_forward_backward_us"],
            "matmul_time": eng / t_mm,
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
