"""When an int8 layer runs the int8 GEMM, and when it falls back to float32.

An int8 `Linear` pays a fixed cost on every call that a float32 one does not: the activation
quantization pass, the GEMM's argument checks, a few Python calls. On MobileBERT's real sizes
the int8 GEMM wins that back (1.15-1.58x the float32 forward, docs/int8.md), but on a small
GEMM (a 128-wide student, a pooler fed one row per sequence) the fixed cost dominates, and on a
CPU whose only int8 kernel is the portable loop int8 is slower than float32 BLAS at every size.
So each call decides (`use_int8`), in one place, `QuantizedLinear.forward`:

- mode "always": the int8 kernel, every call (tests; exactly reproducible int8 results);
- mode "never": float32, every call;
- mode "auto" (the default): the int8 kernel only where the backend has a fast int8 path on
  this CPU (`Backend.int8_gemm_path()`: the Numba backend's VNNI or AVX2 kernels; not the NumPy
  reference, not "portable", not CuPy, which has no int8 GEMM of its own yet) and the GEMM is
  large enough for that path and thread count (`RULES`, `RULES_THREADED`); float32 otherwise.

The float32 fallback computes y = x (q s)^T + b with the backend's ordinary float matmul (the
`x2 @ w.T` that `nn.Linear` runs, without autograd's bookkeeping), with q s, the dequantized
weight, made the first time a layer falls back and kept on it: a layer that falls back holds a
float32 copy of its weight (4 bytes per weight, on top of the int8 one); a layer that never
falls back never makes one. A fallback layer does not quantize its input. Under "auto" a
model's output may therefore depend on the batch size (a layer can fall back at batch 1 and
not at batch 8); "always" gives the int8 semantics at every size.

The setting is process-wide, like autograd's grad mode: `with int8_dispatch("always"): ...`,
or `set_int8_dispatch("never")`. The CLI's `--int8-dispatch` option (environment variable
TINYBERT_INT8_DISPATCH) sets it for one command.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

MODES = ("auto", "always", "never")
ENV_VAR = "TINYBERT_INT8_DISPATCH"      # read by the CLI (cli/main.py), not here
_mode = "auto"


class Int8Rule(NamedTuple):
    """When a path's int8 layer (its activation quantization included) beats the float32 Linear,
    for a GEMM of M rows, N = out_features, K = in_features:

        N >= min_out  and  (M N K >= min_macs  or  (N K >= big_weight  and  M N K >= min_macs_big))

    The int8 call costs ~45 us more than the float32 one whatever its size (quantization pass,
    argument checks, Python), so it needs enough multiply-adds to win that back; a large
    weight wins it back sooner, because OpenBLAS's float32 GEMM is slow at a few rows (at
    768 x 768, M = 2 runs at a tenth of its M = 64 rate) where the int8 kernel is not. With
    N = 32 the VNNI tile (64 channels) is half empty and float32 won at nearly every M measured
    (int8 only at K = 512 and M >= 1024, by at most 1.17x)."""
    min_out: int
    min_macs: int
    big_weight: int
    min_macs_big: int


# Measured with benchmarks/int8_dispatch.py (docs/int8.md, "When int8 does not pay", has the
# table): the smallest sizes at which int8 was >= ~1.1x faster than float32 on a 2-core AMD EPYC
# Zen 4, 1 thread, contended. VNNI: (N, K) = (128, 128) pays from M = 256 (4.2M MACs, 1.26x;
# M = 128: 0.92x), (128, 32) from M = 1024 (1.19x; M = 512: 0.88x), (128, 512) from M = 16 (1M,
# 1.07x; M = 8: 0.30x), (512, 512) from M = 8 (2.96x; M = 1: 0.39x); the ymm "avx_vnni" path,
# forced on the same CPU: 1.24x, 1.12x, 1.07x, 2.92x at those sizes. AVX2 (emulated: Zen 3
# target, OpenBLAS Haswell kernels): (128, 128) from M = 1024 (16.8M, 1.20x; M = 512: 1.03x),
# (128, 512) from M = 256 (1.24x; M = 128: 1.09x), (512, 512) from M = 8 (2.1M, 1.22x; M = 1:
# 0.36x). Under these rules "auto" was within 5% of the faster side at all 270 points measured.
RULES: dict[str, Int8Rule] = {
    "avx512_vnni": Int8Rule(min_out=64, min_macs=1 << 22, big_weight=1 << 16,
                            min_macs_big=1 << 20),
    "avx_vnni": Int8Rule(min_out=64, min_macs=1 << 22, big_weight=1 << 16,
                         min_macs_big=1 << 20),
    "avx2": Int8Rule(min_out=64, min_macs=1 << 24, big_weight=1 << 18, min_macs_big=1 << 21),
}
# With more than one thread, OpenBLAS's float32 GEMM uses them all from ~2^18 multiply-adds,
# while the int8 kernel stays on one thread below 2^24 (numba_int8._PARALLEL_MIN: waking the
# others costs more there), so below 2^24 int8 must beat a multi-threaded float32 GEMM. The same
# grid with 2 threads, idle (2026-11-30 05:05 UTC, after the one-pass per-row quantizer;
# /work/artifacts/dispatch-1130/; docs/int8.md): VNNI int8 beat the 2-thread float32 GEMM at
# every point from 2^23 multiply-adds ((128, 128) from M = 512: 1.09x; (128, 32) from M = 2048:
# 1.07x) and, for weights of 2^16 or more, from 2^20 ((128, 512) from M = 16: 1.15x; (512, 128)
# from M = 16: 1.26x; (512, 512) from M = 8: 2.62x; below: 0.31-0.49x). The ymm "avx_vnni" path
# forced on the same CPU: 1.10x, 1.08x, 1.05x, 1.25x, 2.52x at those points, and 0.98-1.62x at
# every point these rules send to int8. On the emulated AVX2 path, 2 threads, int8 lost at every
# size measured (0.54-0.92x of float32 from 2^24 up: OpenBLAS's Haswell float32 kernel on two
# threads beats our 7-bit AVX2 kernel), and whole-MobileBERT forwards ran 0.83-0.87x at batch
# 8, so AVX2 with more than one thread never runs int8 ("auto" is float32 there).
NEVER = Int8Rule(min_out=1 << 62, min_macs=1 << 62, big_weight=1 << 62, min_macs_big=1 << 62)
RULES_THREADED: dict[str, Int8Rule] = {
    "avx512_vnni": Int8Rule(min_out=64, min_macs=1 << 23, big_weight=1 << 16,
                            min_macs_big=1 << 20),
    "avx_vnni": Int8Rule(min_out=64, min_macs=1 << 23, big_weight=1 << 16,
                         min_macs_big=1 << 20),
    "avx2": NEVER,
}
UNMEASURED = NEVER      # a path in neither table: never int8


def _check(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"int8_dispatch: mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def get_int8_dispatch() -> str:
    """The current mode: "auto", "always" or "never"."""
    return _mode


def set_int8_dispatch(mode: str) -> str:
    """Set the mode for the whole process; returns the previous one."""
    global _mode
    previous, _mode = _mode, _check(mode)
    return previous


class int8_dispatch:  # noqa: N801 - used like autograd's no_grad
    """Context manager (and decorator) that sets the mode and restores the previous one."""

    def __init__(self, mode: str) -> None:
        self.mode = _check(mode)

    def __enter__(self) -> None:
        self._previous = set_int8_dispatch(self.mode)

    def __exit__(self, *exc: Any) -> None:
        set_int8_dispatch(self._previous)

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with int8_dispatch(self.mode):
                return fn(*args, **kwargs)
        return wrapper


def int8_pays(be: Any, rows: int, out_features: int, in_features: int) -> bool:
    """What "auto" decides: whether `be` has a fast int8 path here and the GEMM is big enough
    for it (`RULES` on one thread, `RULES_THREADED` when the backend's GEMMs use more)."""
    path = be.int8_gemm_path()
    if path is None:
        return False
    rule = (RULES if be.gemm_threads() == 1 else RULES_THREADED).get(path, UNMEASURED)
    weight = out_features * in_features
    macs = rows * weight
    return out_features >= rule.min_out and (
        macs >= rule.min_macs or (weight >= rule.big_weight and macs >= rule.min_macs_big))


def use_int8(be: Any, rows: int, out_features: int, in_features: int) -> bool:
    """Whether an int8 layer's call on `rows` rows runs the int8 kernel (True) or falls back
    to float32 (False), under the current mode."""
    if _mode == "auto":
        return int8_pays(be, rows, out_features, in_features)
    return _mode == "always"


__all__ = ["MODES", "ENV_VAR", "Int8Rule", "RULES", "RULES_THREADED", "NEVER", "UNMEASURED",
           "get_int8_dispatch", "set_int8_dispatch", "int8_dispatch", "int8_pays", "use_int8"]
