"""The narrow interface every array backend implements.

A backend is an array module (`xp`: numpy, or cupy) plus a table of named fused kernels. Primitive
ops call `xp.*` directly, as Chainer and CuPy do; the hot few (softmax, layer_norm, cross_entropy,
the optimizer updates, ...) go through `Backend.kernel(name)`, which returns the backend's override
or the xp-generic reference from `backends/reference.py`. Model code never names a backend.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from backends import reference

# Set by `log_kernels` while a trace records which kernels an op called (autograd/trace.py);
# None otherwise, so the hot path pays one global lookup.
_kernel_log: list[tuple[str, str]] | None = None


def log_kernels(log: list[tuple[str, str]] | None) -> list[tuple[str, str]] | None:
    """Append (kernel name, implementation) to `log` for every kernel looked up from now on
    ("reference" or the overriding backend's name); None stops. Returns the previous log."""
    global _kernel_log
    previous, _kernel_log = _kernel_log, log
    return previous


class Backend:
    """An array module, a device name and an optional table of kernel overrides.

    Subclasses (or instances) set `name`, `xp` and `kernels`; everything not overridden falls
    through to `backends.reference.KERNELS`, so a new backend is usable from its first line.
    """

    def __init__(self, name: str, xp: Any, kernels: dict[str, Callable] | None = None) -> None:
        self.name = name
        self.xp = xp
        self.kernels: dict[str, Callable] = dict(kernels or {})
        unknown = sorted(set(self.kernels) - set(reference.KERNELS))
        if unknown:
            raise ValueError(f"backend {name}: no reference kernels named {unknown} to "
                             f"override; known kernels: {sorted(reference.KERNELS)}")
        # One lookup table for the hot path: overrides first, then the references.
        self._table: dict[str, Callable] = {**reference.KERNELS, **self.kernels}
        self.array_type = xp.ndarray

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"

    def register(self, name: str) -> Callable[[Callable], Callable]:
        """Decorator that installs an override for the kernel `name`."""
        if name not in reference.KERNELS:
            raise ValueError(f"backend {self.name}: no reference kernel named {name!r} to "
                             f"override; known kernels: {sorted(reference.KERNELS)}")

        def install(fn: Callable) -> Callable:
            self.kernels[name] = fn
            self._table[name] = fn
            return fn
        return install

    def kernel(self, name: str) -> Callable:
        """The override of kernel `name` on this backend, or the xp-generic reference."""
        try:
            fn = self._table[name]
        except KeyError:
            raise ValueError(f"backend {self.name}: unknown kernel {name!r}; "
                             f"known kernels: {sorted(self._table)}") from None
        if _kernel_log is not None:
            _kernel_log.append((name, self.name if name in self.kernels else "reference"))
        return fn

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        """`data` as an array of this backend (no copy when it already is one of that dtype)."""
        return self.xp.asarray(data, dtype=dtype)

    def to_numpy(self, array: Any) -> np.ndarray:
        """A host NumPy array holding `array`'s values (no copy on CPU backends)."""
        return np.asarray(array)

    def rng(self, seed: int | None = None) -> Any:
        """A random generator of this backend's array module (used for dropout masks)."""
        return self.xp.random.default_rng(seed)

    def int8_gemm_path(self) -> str | None:
        """The name of this backend's fast `int8_matmul` path on this machine, or None when it
        has none: its int8 GEMM is slower than its float32 GEMM at every size (the NumPy
        reference runs the integer product as a float64 GEMM), so int8 layers should fall back
        to float32 (`tinybert_core.quantization.dispatch`). Backends with a fast path say so."""
        return None

    def gemm_threads(self) -> int:
        """How many threads this backend's GEMMs may use (the int8 dispatch compares an int8
        kernel with a float32 GEMM on that many threads); 1 unless the backend knows more."""
        return 1
