"""Fused kernels: the NumPy reference against the Numba backend at MobileBERT shapes.

Prints one JSON document: for every kernel in `backends.reference.KERNELS` and every case below,
the median milliseconds of the NumPy reference and of the Numba backend (after JIT warm-up) and
their ratio numpy/numba (the issue's target is >= 2), plus the cost of compiling: the seconds a
fresh process takes to import the backend and call every kernel once in float32 and float64
with an empty Numba cache ("compile_seconds_cold"), and the same in a second process that must
load what the first cached ("import_first_call_seconds_cached").

Shapes (MobileBERT, batch 8, sequence 128): scores (8, 4, 128, 128) with a (8, 1, 1, 128)
padding mask; hidden 512 and the 128-wide bottleneck; intermediate 512 for the activations;
vocabulary 30522 for cross-entropy on the 8*20 gathered MLM rows and on all 8*128 rows (85%
ignored); embedding table 30522 x 128; LAMB/AdamW on 30522 x 128 and 512 x 512.

    python benchmarks/kernels.py [--repeats 7] [--no-compile]

Timings alternate between the two backends each repeat, so load from other processes hits both.
Kernels the Numba backend does not override run the reference on both sides (ratio ~1). On a
machine other processes keep busy, GNU OpenMP's spinning threads make every parallel launch
wait a scheduler tick (~10 ms); run with OMP_WAIT_POLICY=passive or
NUMBA_THREADING_LAYER=workqueue there, and read machine.load_average_* in the output.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backends import reference  # noqa: E402

B, T, H, V = 8, 128, 4, 30522


def cases(rng: np.random.Generator) -> list[tuple[str, str, Callable[[dict], Callable]]]:
    """(kernel, case label, make) where make(kernels) returns a no-argument call of that kernel."""
    f32 = np.float32

    def normal(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(f32)

    scores, g_scores = normal(B, H, T, T, scale=3.0), normal(B, H, T, T)
    mask = np.zeros((B, 1, 1, T), f32)
    mask[:, :, :, 100:] = -np.inf                       # the last 28 positions are padding
    probs = reference.softmax_fwd(scores, mask, 0.125)
    out = []
    out.append(("softmax_fwd", "(8,4,128,128) scale+mask",
                lambda k: lambda: k["softmax_fwd"](scores, mask, 0.125)))
    out.append(("softmax_bwd", "(8,4,128,128)",
                lambda k: lambda: k["softmax_bwd"](probs, 0.125, g_scores)))

    for rows, label in ((B * 20, "(160,30522)"), (B * T, "(1024,30522) 85% ignored")):
        logits = normal(rows, V, scale=2.0)
        target = rng.integers(0, V, rows)
        if rows == B * T:
            target[rng.random(rows) < 0.85] = -100
        _, lse = reference.cross_entropy_fwd(logits, target)
        g_rows = np.full(rows, 1.0 / rows, f32)
        out.append(("cross_entropy_fwd", label,
                    lambda k, x=logits, t=target: lambda: k["cross_entropy_fwd"](x, t, -100)))
        out.append(("cross_entropy_bwd", label,
                    lambda k, x=logits, t=target, s=lse, g=g_rows:
                    lambda: k["cross_entropy_bwd"](x, s, t, -100, g)))
        if rows == B * 20:
            logp = reference.log_softmax_fwd(logits)
            g_logp = normal(rows, V)
            out.append(("log_softmax_fwd", label,
                        lambda k, x=logits: lambda: k["log_softmax_fwd"](x)))
            out.append(("log_softmax_bwd", label,
                        lambda k, y=logp, g=g_logp: lambda: k["log_softmax_bwd"](y, g)))

    for width in (512, 128):
        x, res, gy = normal(B, T, width), normal(B, T, width), normal(B, T, width)
        gamma, beta = normal(width), normal(width)
        _, mean, rstd = reference.layer_norm_fwd(x, gamma, beta, 1e-12)
        label = f"(8,128,{width})"
        out.append(("layer_norm_fwd", label,
                    lambda k, x=x, g=gamma, b=beta: lambda: k["layer_norm_fwd"](x, g, b, 1e-12)))
        out.append(("layer_norm_bwd", label,
                    lambda k, x=x, g=gamma, m=mean, r=rstd, gy=gy:
                    lambda: k["layer_norm_bwd"](x, g, m, r, gy)))
        out.append(("no_norm_fwd", label + " +residual",
                    lambda k, x=x, g=gamma, b=beta, r=res: lambda: k["no_norm_fwd"](x, g, b, r)))
        out.append(("no_norm_bwd", label + " +residual",
                    lambda k, x=x, g=gamma, r=res, gy=gy: lambda: k["no_norm_bwd"](x, g, r, gy)))

    act, g_act = normal(B, T, 512, scale=2.0), normal(B, T, 512)
    relu_y = reference.relu_fwd(act)
    for approximate in (False, True):
        label = "(8,128,512) " + ("tanh" if approximate else "erf")
        out.append(("gelu_fwd", label,
                    lambda k, a=approximate: lambda: k["gelu_fwd"](act, a)))
        out.append(("gelu_bwd", label,
                    lambda k, a=approximate: lambda: k["gelu_bwd"](act, a, g_act)))
    out.append(("relu_fwd", "(8,128,512)", lambda k: lambda: k["relu_fwd"](act)))
    out.append(("relu_bwd", "(8,128,512)", lambda k: lambda: k["relu_bwd"](relu_y, g_act)))

    ids, g_emb = rng.integers(0, V, (B, T)), normal(B, T, 128)
    out.append(("embedding_bwd", "ids (8,128) -> (30522,128)",
                lambda k: lambda: k["embedding_bwd"](ids, V, g_emb)))
    out.append(("dropout_mask", "(8,128,512) p=0.1",
                lambda k: (lambda r: lambda: k["dropout_mask"](r, (B, T, 512), 0.1, f32))(
                    np.random.default_rng(0))))

    for shape in ((V, 128), (512, 512)):
        for name in ("adamw_update", "lamb_update"):
            def make(k, shape=shape, name=name):
                w, g = normal(*shape, scale=0.02), normal(*shape, scale=1e-3)
                m, v = np.zeros(shape, f32), np.zeros(shape, f32)
                return lambda: k[name](w, g, m, v, 1e-3, 0.9, 0.999, 1e-6, 0.01)
            out.append((name, f"({shape[0]},{shape[1]})", make))
    return out


def interleaved(a: Callable, b: Callable, repeats: int) -> tuple[float, float]:
    """Median seconds of one call of a and of b, alternating a, b each repeat; the number of
    calls per repeat is chosen so that a repeat of the slower one takes about 20 ms."""
    t0 = time.perf_counter()
    a()
    b()
    number = max(1, int(0.02 / max(time.perf_counter() - t0, 1e-6)))
    times: tuple[list, list] = ([], [])
    for _ in range(repeats):
        for fn, sink in ((a, times[0]), (b, times[1])):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            sink.append((time.perf_counter() - start) / number)
    return float(np.median(times[0])), float(np.median(times[1]))


FIRST_CALLS = """
import time
t0 = time.perf_counter()
import numpy as np
import backends.numba_backend as nb
k = nb.numba_backend.kernel
for dt in (np.float32, np.float64):
    x = np.linspace(-2, 2, 24, dtype=dt).reshape(4, 6); g = x[::-1].copy(); p = np.ones(6, dt)
    t = np.array([0, 5, -100, 2]); lse = np.full(4, 3.0, dt)
    k("softmax_fwd")(x, np.zeros((1, 6), dt), 0.5); k("softmax_bwd")(x, 0.5, g)
    k("log_softmax_fwd")(x); k("log_softmax_bwd")(x, g)
    k("cross_entropy_fwd")(x, t, -100); k("cross_entropy_bwd")(x, lse, t, -100, lse)
    k("layer_norm_fwd")(x, p, p, 1e-12); k("layer_norm_bwd")(x, p, lse[:, None], lse[:, None], g)
    k("no_norm_fwd")(x, p, p, g); k("no_norm_bwd")(x, p, g, g)
    for a in (False, True):
        k("gelu_fwd")(x, a); k("gelu_bwd")(x, a, g)
    k("relu_fwd")(x); k("relu_bwd")(x, g); k("embedding_bwd")(np.array([1, 2, 1, 0]), 3, g)
    for name in ("adamw_update", "lamb_update"):
        k(name)(x.copy(), g, x.copy(), x * x, 1e-3, 0.9, 0.999, 1e-6, 0.01)
print(time.perf_counter() - t0)
"""


def first_call_seconds(cache_dir: str) -> float:
    """Seconds for a fresh interpreter to import the Numba backend and call every kernel once
    in both dtypes, with Numba's cache in `cache_dir`."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", FIRST_CALLS], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the first-call subprocess failed:\n{done.stderr}")
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-compile", action="store_true",
                        help="skip the two subprocesses that time cold and cached compilation")
    args = parser.parse_args()

    import numba

    from backends import get_backend

    report: dict = {"machine": {
        "cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
        "numba": numba.__version__, "numba_threads": numba.get_num_threads(),
        "load_average_before": round(os.getloadavg()[0], 2)}}
    if not args.no_compile:
        with tempfile.TemporaryDirectory() as cache_dir:
            report["compile_seconds_cold"] = round(first_call_seconds(cache_dir), 2)
            report["import_first_call_seconds_cached"] = round(first_call_seconds(cache_dir), 2)

    ref, fast = get_backend("numpy"), get_backend("numba")
    table_ref = {name: ref.kernel(name) for name in reference.KERNELS}
    table_fast = {name: fast.kernel(name) for name in reference.KERNELS}
    rows = []
    for name, label, make in cases(np.random.default_rng(0)):
        t_ref, t_fast = interleaved(make(table_ref), make(table_fast), args.repeats)
        rows.append({"kernel": name, "case": label, "overridden": name in fast.kernels,
                     "numpy_ms": round(t_ref * 1e3, 3), "numba_ms": round(t_fast * 1e3, 3),
                     "ratio": round(t_ref / t_fast, 2)})
    report["machine"]["threading_layer"] = numba.threading_layer()
    # Other processes' load on this machine while the kernels were timed (1-minute averages):
    # with the cores busy, any parallel kernel waits for the scheduler.
    report["machine"]["load_average_after"] = round(os.getloadavg()[0], 2)
    report["kernels"] = rows
    missing = sorted(set(reference.KERNELS) - {r["kernel"] for r in rows})
    if missing:
        report["kernels_without_a_case"] = missing
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
