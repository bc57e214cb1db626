"""What every Numba kernel wrapper shares: the dtype test, 2-D row views, per-chunk partial
sums, and `run`, which keeps small inputs on the calling thread.

The wrappers in `numba_backend.py` and `numba_elementwise.py` use these to check and shape their
inputs before calling a jitted kernel; see `numba_backend.py` for the measurements behind
CHUNK_ROWS and PARALLEL_MIN.
"""
from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

CHUNK_ROWS = 16           # rows per partial sum in the column reductions
CHUNK_ELEMS = 4096        # elements per partial sum in the LAMB norms
PARALLEL_MIN = 1 << 18    # smaller inputs run on one thread (see run)
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def floats(*arrays: Any) -> bool:
    """True when every array is a non-empty NumPy float32/float64 array of one dtype."""
    first = arrays[0]
    if not isinstance(first, np.ndarray) or first.dtype not in FLOATS or first.size == 0:
        return False
    return all(isinstance(a, np.ndarray) and a.dtype == first.dtype for a in arrays[1:])


def rows(a: np.ndarray) -> np.ndarray:
    """`a` as a C-contiguous (rows, last axis) array: a view when `a` already is contiguous."""
    a = np.ascontiguousarray(a)
    return a.reshape(math.prod(a.shape[:-1]), a.shape[-1])


def chunks(rows: int) -> int:
    return -(-rows // CHUNK_ROWS)


def partials(rows: int, c: int, dtype) -> np.ndarray:
    """Zeroed per-chunk partial column sums, in the data's dtype: each adds only CHUNK_ROWS
    rows (so float32 stays 16 lanes wide), and `column_sum` adds the chunks in float64."""
    return np.zeros((chunks(rows), c), dtype)


def column_sum(partials: np.ndarray) -> np.ndarray:
    return partials.sum(axis=0, dtype=np.float64).astype(partials.dtype)


def run(kernel: Any, size: int, *args: Any) -> None:
    """kernel(*args) on all of Numba's threads, or only on the calling one for fewer than
    PARALLEL_MIN elements: waking the others costs ~30 us on an idle machine and a whole
    scheduler tick (4-15 ms measured) when other processes hold the cores."""
    if size >= PARALLEL_MIN:
        kernel(*args)
        return
    threads = numba.get_num_threads()
    numba.set_num_threads(1)              # thread-local, and restored below
    try:
        kernel(*args)
    finally:
        numba.set_num_threads(threads)
