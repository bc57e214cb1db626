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
  large enough for that path (`RULES`); float32 otherwise.

The float32 fallback computes y = x (q s)^T + b through the backend's ordinary float matmul
(`autograd.functional.linear`), with q s, the dequantized weight, made the first time a layer
falls back and kept on it: a layer that falls back holds a float32 copy of its weight (4 bytes
per weight, on top of the int8 one); a layer that never falls back never makes one. A fallback
layer does not quantize its input. Under "auto" a model's output may therefore depend on the
batch size (a layer can fall back at batch 1 and not at batch 8); "always" gives the int8
semantics at every size.

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
    """The smallest GEMM (rows M x out_features N x in_features K) for which a path's int8
    layer, its activation quantization included, is faster than the float32 Linear."""
    min_macs: int           # M * N * K
    min_out: int            # N
    min_in: int             # K


# Measured with benchmarks/int8_linear.py (QuantizedLinear dynamic per row, its quantization
# included, against nn.Linear on the Numba backend, 1 thread; see docs/int8.md for the table).
RULES: dict[str, Int8Rule] = {
    "avx512_vnni": Int8Rule(min_macs=1 << 21, min_out=64, min_in=64),
    "avx_vnni": Int8Rule(min_macs=1 << 21, min_out=64, min_in=64),
    "avx2": Int8Rule(min_macs=1 << 22, min_out=64, min_in=64),
}
UNMEASURED = Int8Rule(min_macs=1 << 23, min_out=128, min_in=128)   # a path not in RULES


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
    for it (`RULES`)."""
    path = be.int8_gemm_path()
    if path is None:
        return False
    rule = RULES.get(path, UNMEASURED)
    return (out_features >= rule.min_out and in_features >= rule.min_in
            and rows * out_features * in_features >= rule.min_macs)


def use_int8(be: Any, rows: int, out_features: int, in_features: int) -> bool:
    """Whether an int8 layer's call on `rows` rows runs the int8 kernel (True) or falls back
    to float32 (False), under the current mode."""
    if _mode == "auto":
        return int8_pays(be, rows, out_features, in_features)
    return _mode == "always"


__all__ = ["MODES", "ENV_VAR", "Int8Rule", "RULES", "UNMEASURED", "get_int8_dispatch",
           "set_int8_dispatch", "int8_dispatch", "int8_pays", "use_int8"]
