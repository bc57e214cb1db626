"""Hypothesis strategies for op tests: shapes, bounded float arrays, and kink dodging.

These are the strategies tinybert's own op tests draw from. Shapes follow STYLE.md: any array up
to 4-d with sides up to 5, pairs of mutually broadcastable shapes for binary ops, and the gufunc
signature "(m,n),(n,p)->(m,p)" for matmul. Values are bounded finite float64 numbers, drawn
element by element (`fill=st.nothing()`), so an array is never mostly one repeated value.

Non-differentiable points are dodged the way Chainer's `dodge_nondifferentiable` does, but at the
element level, so no example is ever filtered out: `away_from(kinks)` draws only from the
intervals at least `margin` from every kink (relu and abs at 0, relu6 at 0 and 6), and
`distinct_arrays` draws values on a grid with no repeats, so max has no ties.

Needs hypothesis (`pip install "tinybert[testing]"`); nothing else in tinybert does.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as e:  # pragma: no cover - exercised in a subprocess by the kit's tests
    raise ImportError("autograd.testing needs hypothesis for its strategies and check_op, and "
                      "it is not installed: pip install \"tinybert[testing]\" (or pip install "
                      "hypothesis)") from e

MAX_SIDE = 5

shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=MAX_SIDE)
nonscalar_shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=MAX_SIDE)
small_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)

# Binary ops: both sides broadcast (size-1 axes and missing leading axes on either operand).
binary_shapes = hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=4)
ternary_shapes = hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=4)
# matmul: max_dims counts the broadcast batch (loop) axes, so operands are at most 4-d.
matmul_shapes = hnp.mutually_broadcastable_shapes(signature="(m,n),(n,p)->(m,p)", max_dims=2,
                                                  max_side=4)


def floats(lo: float = -3.0, hi: float = 3.0) -> st.SearchStrategy[float]:
    """Finite float64 numbers in [lo, hi], no subnormals."""
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def away_from(kinks: tuple[float, ...], lo: float = -3.0, hi: float = 3.0,
              margin: float = 1e-2) -> st.SearchStrategy[float]:
    """Floats in [lo, hi] at least `margin` from every kink: the union of the pieces between them.

    Finite differences use eps = 1e-6, so a margin of 1e-2 keeps both probes on one side.
    """
    edges = [lo] + sorted(kinks) + [hi]
    pieces = []
    for a, b in itertools.pairwise(edges):
        a2 = a if a == lo else a + margin
        b2 = b if b == hi else b - margin
        if a2 < b2:
            pieces.append(floats(a2, b2))
    return st.one_of(*pieces)


positive = floats(0.2, 3.0)                       # log, sqrt, pow's base
nonzero = away_from((0.0,), -3.0, 3.0, margin=0.3)  # divisors


def arrays(shape, elements: st.SearchStrategy | None = None,
           dtype=np.float64) -> st.SearchStrategy[np.ndarray]:
    """float64 arrays of `shape` (a tuple or a strategy), every element drawn from `elements`."""
    return hnp.arrays(dtype, shape, elements=elements if elements is not None else floats(),
                      fill=st.nothing())


def distinct_arrays(shape, spacing: float = 1e-2) -> st.SearchStrategy[np.ndarray]:
    """Arrays whose values are pairwise at least `spacing` apart (no ties for max/argmax)."""
    grid = st.integers(-1000, 1000).map(lambda i: i * spacing)
    return hnp.arrays(np.float64, shape, elements=grid, unique=True)


def spread_rows(x: np.ndarray, step: float = 2.5) -> np.ndarray:
    """x (elements in [-1, 1]) plus a ramp along the last axis: every row has variance well
    above zero, so layer_norm's 1/std stays moderate and finite differences stay accurate."""
    return x + step * np.arange(x.shape[-1]) if x.ndim else x


@st.composite
def axes(draw, ndim: int):
    """An `axis` argument for a reduction over an ndim-d array: None, one int (negative allowed)
    or a tuple of distinct axes (possibly empty)."""
    if ndim == 0:
        return draw(st.sampled_from([None, ()]))
    return draw(st.one_of(st.none(), st.integers(-ndim, ndim - 1),
                          hnp.valid_tuple_axes(ndim)))


def size_of(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def grad_flags(n: int) -> st.SearchStrategy[tuple[bool, ...]]:
    """Which of n inputs require grad: every non-empty subset (the needs_input_grad paths)."""
    subsets = [f for f in itertools.product([True, False], repeat=n) if any(f)]
    return st.sampled_from(subsets)


__all__ = ["MAX_SIDE", "shapes", "nonscalar_shapes", "small_shapes", "binary_shapes",
           "ternary_shapes", "matmul_shapes", "floats", "away_from", "positive", "nonzero",
           "arrays", "distinct_arrays", "spread_rows", "axes", "size_of", "grad_flags"]
