"""Reductions (autograd/ops/reduce.py) over every axis / keepdims combination, and var.

Written with the public kit, autograd.testing: forward against an independent plain-NumPy
`*_expected` (op_references.py), backward by float64 `assert_gradients`, over hypothesis-drawn
shapes (Chainer's op-test pattern).
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from op_references import var_expected

import autograd.functional as F
from autograd.testing import assert_forward, assert_gradients, leaf
from autograd.testing.strategies import (
    arrays,
    axes,
    distinct_arrays,
    nonscalar_shapes,
    shapes,
)


# --- reductions ----------------------------------------------------------------------------------

def _mean_expected(x, axis, keepdims):
    ax = tuple(range(x.ndim)) if axis is None else (axis,) if isinstance(axis, int) else axis
    n = math.prod(x.shape[a] for a in ax)
    return np.sum(x, axis=ax, keepdims=keepdims) / n


REDUCTIONS = {
    # name: (op, expected); each takes (array, axis, keepdims)
    "sum": (lambda t, axis, keepdims: F.sum(t, axis=axis, keepdims=keepdims),
            lambda x, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims)),
    "mean": (lambda t, axis, keepdims: F.mean(t, axis=axis, keepdims=keepdims), _mean_expected),
    "max": (lambda t, axis, keepdims: F.max(t, axis=axis, keepdims=keepdims),
            lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims)),
    "var": (lambda t, axis, keepdims: F.var(t, axis=axis, keepdims=keepdims), var_expected),
}
METHOD_REDUCTIONS = {"sum", "mean", "max"}

# Every axis argument of a 3-d tensor: None, each int (both signs), every tuple (in any order).
AXES_3D = [None, 0, 1, 2, -1, -2, -3] + [
    combo for r in range(4) for combo in itertools.combinations(range(3), r)] + [(2, 0), (-1, 0)]



@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES_3D, ids=str)
@pytest.mark.parametrize("name", REDUCTIONS)
def test_reduction_every_axis_and_keepdims(name, axis, keepdims):
    op, expected = REDUCTIONS[name]
    x = np.random.default_rng(0).permutation(24).reshape(2, 3, 4) * 0.25 - 3.0  # no ties
    t = leaf(x)
    assert_forward(op(t, axis, keepdims), expected(x, axis, keepdims))
    if name in METHOD_REDUCTIONS:
        assert_forward(getattr(t, name)(axis=axis, keepdims=keepdims), expected(x, axis, keepdims))
    assert_gradients(lambda u: op(u, axis, keepdims), t)


@pytest.mark.parametrize("name", REDUCTIONS)
@given(data=st.data(), shape=shapes, keepdims=st.booleans())
def test_reduction_random_shapes(name, data, shape, keepdims):
    op, expected = REDUCTIONS[name]
    axis = data.draw(axes(len(shape)))
    x = data.draw(distinct_arrays(shape) if name == "max" else arrays(shape))
    t = leaf(x)
    assert_forward(op(t, axis, keepdims), expected(x, axis, keepdims))
    assert_gradients(lambda u: op(u, axis, keepdims), t)


@given(data=st.data(), shape=nonscalar_shapes, keepdims=st.booleans())
def test_var_with_ddof(data, shape, keepdims):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(arrays(shape))
    ddof = 1 if shape[axis] > 1 else 0
    t = leaf(x)
    assert_forward(F.var(t, axis=axis, keepdims=keepdims, ddof=ddof),
                   var_expected(x, (axis % len(shape),), keepdims, ddof))
    assert_gradients(lambda u: F.var(u, axis=axis, keepdims=keepdims, ddof=ddof), t)


def test_max_ties_share_the_gradient_equally():
    x = leaf([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    F.max(x, axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0.0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
