"""The CuPy backend: CuPy arrays on a CUDA GPU, the pointwise kernels fused by ElementwiseKernel.

`backends.get_backend("cupy")` imports this module on first use. Without CuPy, or with CuPy but no
visible CUDA device, the import raises ImportError saying which, and `backends.availability()`
reports that reason; nothing here is imported by model code.

`xp` is cupy, so every primitive op and every reduction kernel (softmax, layer_norm,
cross_entropy, the optimizer updates, embedding_bwd through `cupy.add.at`) runs the xp-generic
reference of `backends/reference.py` on the GPU. The pointwise pairs are overridden with one
`cupy.ElementwiseKernel` each, named `tinybert_<op>_<fwd|bwd>`, built on first use and memoized
(CuPy then compiles and caches one binary per dtype): gelu (exact erf from CUDA's math library, or
the tanh form), relu, and no_norm (fused with its residual add). Each follows the reference's
formula and operation order, so results agree to the last ulp or two (CUDA's erf/tanh/exp are
within 2 ulp); `tests/backends/test_parity.py` checks them against NumPy on a GPU machine.

References: CuPy user guide, "User-Defined Kernels" (ElementwiseKernel, type placeholder T).
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

try:
    import cupy
except ImportError as e:
    raise ImportError("cupy is not installed (pip install tinybert[gpu])") from e
except Exception as e:  # noqa: BLE001 - a broken CUDA install raises all sorts of errors here
    raise ImportError(f"cupy failed to import: {type(e).__name__}: {e}") from e

try:
    _devices = cupy.cuda.runtime.getDeviceCount()
except Exception as e:  # noqa: BLE001 - CUDARuntimeError without a driver, others without libs
    raise ImportError(f"no CUDA GPU visible: {type(e).__name__}: {e}") from e
if _devices == 0:
    raise ImportError("no CUDA GPU visible: the CUDA runtime reports 0 devices")

from backends import reference  # noqa: E402
from backends.base import Backend  # noqa: E402


class CupyBackend(Backend):
    """A Backend whose arrays live on the current CUDA device."""

    def to_numpy(self, array: Any) -> np.ndarray:
        return cupy.asnumpy(array)

    def rng(self, seed: int | None = None) -> Any:
        return cupy.random.default_rng(seed)


cupy_backend = CupyBackend("cupy", cupy)

# Constants as macros (always usable in device code, unlike a namespace-scope const double),
# cast to T where used so that float32 kernels stay in float32 arithmetic.
_CONSTANTS = (f"#define k_sqrt_2_over_pi {math.sqrt(2.0 / math.pi)!r}\n"
              f"#define k_inv_sqrt_2 {1.0 / math.sqrt(2.0)!r}\n"
              f"#define k_inv_sqrt_2pi {1.0 / math.sqrt(2.0 * math.pi)!r}\n")

# name -> (in_params, out_params, operation); names follow tinybert_<op>_<fwd|bwd>.
_SPECS = {
    "tinybert_gelu_fwd": ("T x, bool approximate", "T y", """
        const T k_half = 0.5, k_one = 1.0;   // not `half`: CUDA's fp16 type
        if (approximate) {
            T u = (T)k_sqrt_2_over_pi * (x + (T)0.044715 * x * x * x);
            y = k_half * x * (k_one + tanh(u));
        } else {
            y = k_half * x * (k_one + erf(x * (T)k_inv_sqrt_2));
        }"""),
    "tinybert_gelu_bwd": ("T x, T gy, bool approximate", "T gx", """
        const T k_half = 0.5, k_one = 1.0;   // not `half`: CUDA's fp16 type
        T d;
        if (approximate) {
            T x2 = x * x;
            T t = tanh((T)k_sqrt_2_over_pi * (x + (T)0.044715 * x2 * x));
            d = k_half * (k_one + t) + k_half * x * (k_one - t * t) * (T)k_sqrt_2_over_pi
                * (k_one + (T)(3 * 0.044715) * x2);
        } else {
            d = k_half * (k_one + erf(x * (T)k_inv_sqrt_2))
                + x * (T)k_inv_sqrt_2pi * exp(-k_half * x * x);
        }
        gx = gy * d;"""),
    # x <= 0 rather than x > 0 keeps nan, as np.maximum(nan, 0) does.
    "tinybert_relu_fwd": ("T x", "T y", "y = x <= (T)0 ? (T)0 : x;"),
    "tinybert_relu_bwd": ("T y, T gy", "T gx", "gx = gy * (y > (T)0 ? (T)1 : (T)0);"),
    "tinybert_no_norm_fwd": ("T x, T residual, T gamma, T beta", "T y",
                             "y = (x + residual) * gamma + beta;"),
    # gh = gy * gamma, and the product gy * h that the gamma gradient sums, in one pass.
    "tinybert_no_norm_bwd": ("T x, T residual, T gamma, T gy", "T gh, T gy_h",
                             "gh = gy * gamma; gy_h = gy * (x + residual);"),
}


@functools.cache
def _kernel(name: str) -> Any:
    """The ElementwiseKernel `name`, built once (CuPy compiles it per dtype on first call)."""
    in_params, out_params, operation = _SPECS[name]
    return cupy.ElementwiseKernel(in_params, out_params, operation, name, preamble=_CONSTANTS)


def _floats(*arrays: Any) -> bool:
    """True when every array is a CuPy float32/float64 array of the first one's dtype."""
    dtype = arrays[0].dtype
    return dtype in (np.float32, np.float64) and all(
        isinstance(a, cupy.ndarray) and a.dtype == dtype for a in arrays)


def _zero_residual(x: Any, residual: Any) -> Any:
    """The residual, or a 0-d zero that broadcasts (adding +0.0 changes no value but -0.0)."""
    return residual if residual is not None else cupy.zeros((), x.dtype)


@cupy_backend.register("gelu_fwd")
def gelu_fwd(x, approximate: bool = False):
    if not _floats(x):
        return reference.gelu_fwd(x, approximate)
    return _kernel("tinybert_gelu_fwd")(x, bool(approximate))


@cupy_backend.register("gelu_bwd")
def gelu_bwd(x, approximate: bool, gy):
    if not _floats(x, gy) or x.shape != gy.shape:
        return reference.gelu_bwd(x, approximate, gy)
    return _kernel("tinybert_gelu_bwd")(x, gy, bool(approximate))


@cupy_backend.register("relu_fwd")
def relu_fwd(x):
    if not _floats(x):
        return reference.relu_fwd(x)
    return _kernel("tinybert_relu_fwd")(x)


@cupy_backend.register("relu_bwd")
def relu_bwd(y, gy):
    if not _floats(y, gy) or y.shape != gy.shape:
        return reference.relu_bwd(y, gy)
    return _kernel("tinybert_relu_bwd")(y, gy)


@cupy_backend.register("no_norm_fwd")
def no_norm_fwd(x, gamma, beta, residual=None):
    params = (x, gamma, beta) + (() if residual is None else (residual,))
    if (not _floats(*params) or gamma.shape != x.shape[-1:] or beta.shape != x.shape[-1:]
            or (residual is not None and residual.shape != x.shape)):
        return reference.no_norm_fwd(x, gamma, beta, residual)
    return _kernel("tinybert_no_norm_fwd")(x, _zero_residual(x, residual), gamma, beta)


@cupy_backend.register("no_norm_bwd")
def no_norm_bwd(x, gamma, residual, gy):
    params = (x, gamma, gy) + (() if residual is None else (residual,))
    if (not _floats(*params) or x.ndim == 0 or gamma.shape != x.shape[-1:]
            or gy.shape != x.shape or (residual is not None and residual.shape != x.shape)):
        return reference.no_norm_bwd(x, gamma, residual, gy)
    gh, gy_h = _kernel("tinybert_no_norm_bwd")(x, _zero_residual(x, residual), gamma, gy)
    c = x.shape[-1]
    return gh, gy_h.reshape(-1, c).sum(axis=0), gy.reshape(-1, c).sum(axis=0)


__all__ = ["CupyBackend", "cupy_backend"]
