"""NumPy's BLAS thread count, lowered for a while: `blas_threads(n)`.

Why the Numba backend needs it. OpenBLAS (the BLAS of NumPy's PyPI wheels) keeps a pool of one
thread per core, and after each call that used them its idle workers spin (`sched_yield`) for
2^28 cycles, about 0.1 s, before they sleep (OpenBLAS's THREAD_TIMEOUT). The Numba backend's
parallel kernels run on a second pool of one thread per core, so a Numba kernel that starts
within 0.1 s of a multi-threaded BLAS call shares its cores with spinning BLAS workers.

In MobileBERT's int8 forward every Linear is a Numba int8 GEMM and BLAS only runs attention's
per-head products (Q K^T and P V, 128 x 128 x 32 per head and sequence). NumPy hands OpenBLAS
each slice as its own call; for Q K^T, with K^T a transposed view, OpenBLAS woke its second
thread on every call, which then spun through the whole forward (100% of a core, read from
/proc/<pid>/task/*/stat), and the int8 GEMMs ran at ~60% of their speed alone. With K^T made
C-contiguous first, the same product stays on one thread and is faster besides (batch 8:
434 vs 719 us; batch 1: 52 vs 161 us). So the Numba backend's `matmul` kernel runs stacked
products of small slices on a contiguous right operand, inside `blas_threads(1)` (2-core AMD
EPYC Zen 4, OpenBLAS 0.3.31, 2026-11-30; numbers in docs/int8.md).

How: OpenBLAS's `openblas_set_num_threads_local` (0.3.27+; it sets the count and returns the
previous one, so that it can be restored), or its older get/set pair, called through ctypes
on the OpenBLAS library the process has loaded (found in /proc/self/maps, else beside NumPy),
as threadpoolctl does. The count is process-wide while lowered. With another BLAS (MKL,
Accelerate) or none found, `blas_threads` changes nothing.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import os
from collections.abc import Callable, Iterator

import numpy as np

# (set-and-return-previous) or (get, set), under the names OpenBLAS builds export them
_LOCAL_SETTERS = ("openblas_set_num_threads_local",)
_GET_SET = (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
            ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
            ("openblas_get_num_threads", "openblas_set_num_threads"))


def _loaded_openblas() -> list[str]:
    """Paths of the OpenBLAS shared libraries this process has loaded (NumPy's first)."""
    paths: list[str] = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rsplit(None, 1)[-1] if "/" in line else ""
                if "openblas" in os.path.basename(path).lower() and path not in paths:
                    paths.append(path)
    except OSError:                                  # not Linux: look beside NumPy
        pass
    if not paths:
        root = os.path.dirname(np.__file__)
        for pattern in (root + ".libs/*openblas*", os.path.join(root, ".dylibs", "*openblas*")):
            paths.extend(sorted(glob.glob(pattern)))
    return paths


@functools.cache
def _setter() -> Callable[[int], int] | None:
    """A function that sets OpenBLAS's thread count and returns the previous one, or None."""
    for path in _loaded_openblas():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _LOCAL_SETTERS:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
                return fn
        for get_name, set_name in _GET_SET:
            get, put = getattr(lib, get_name, None), getattr(lib, set_name, None)
            if get is not None and put is not None:
                get.argtypes, get.restype = [], ctypes.c_int
                put.argtypes, put.restype = [ctypes.c_int], None

                def swap(n: int, get: Callable = get, put: Callable = put) -> int:
                    previous = get()
                    put(n)
                    return previous
                return swap
    return None


def controllable() -> bool:
    """Whether `blas_threads` can change this process's BLAS thread count."""
    return _setter() is not None


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """BLAS on `n` threads inside the block (the previous count is restored after it); a
    no-op when the BLAS is not an OpenBLAS found by `_setter`."""
    setter = _setter()
    if setter is None:
        yield
        return
    previous = setter(n)
    try:
        yield
    finally:
        setter(previous)


__all__ = ["blas_threads", "controllable"]
