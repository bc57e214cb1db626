"""Movement ops (autograd/ops/movement.py): reshape, permute, concat, stack, split, pad,
indexing.

Written with the public kit, autograd.testing: forward against an independent plain-NumPy
`*_expected` (op_references.py), backward by float64 `assert_gradients`, over hypothesis-drawn
shapes (Chainer's op-test pattern).
"""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import autograd.functional as F
from autograd import Tensor
from autograd.testing import assert_forward, assert_gradients, leaf
from autograd.testing.strategies import (
    arrays,
    floats,
    nonscalar_shapes,
    shapes,
)


# --- movement ------------------------------------------------------------------------------------

@given(data=st.data(), shape=shapes)
def test_reshape(data, shape):
    x = data.draw(arrays(shape))
    n = x.size
    target = data.draw(st.sampled_from(
        [(-1,), (n,), shape[::-1], (1,) + shape, shape + (1,), (n, 1), (1, -1)]))
    t = leaf(x)
    expected = x.reshape(target)
    assert_forward(F.reshape(t, target), expected)
    assert_forward(t.reshape(*target), expected)
    assert_forward(t.reshape(target), expected)
    assert_gradients(lambda u: F.reshape(u, target), t)


@given(data=st.data(), shape=nonscalar_shapes)
def test_permute_and_transpose(data, shape):
    x = data.draw(arrays(shape))
    ndim = len(shape)
    perm = tuple(data.draw(st.permutations(range(ndim))))
    perm = tuple(a - ndim if data.draw(st.booleans()) else a for a in perm)  # negative axes too
    i, j = data.draw(st.integers(-ndim, ndim - 1)), data.draw(st.integers(-ndim, ndim - 1))
    t = leaf(x)
    assert_forward(F.permute(t, perm), np.transpose(x, perm))
    assert_forward(t.permute(*perm), np.transpose(x, perm))
    assert_forward(F.transpose(t, i, j), np.swapaxes(x, i, j))
    assert_forward(t.T, np.transpose(x))
    assert_gradients(lambda u: F.permute(u, perm), t)
    assert_gradients(lambda u: F.transpose(u, i, j), t)
    if ndim >= 2:
        assert_forward(t.transpose(), np.swapaxes(x, -2, -1))


@given(data=st.data(), base=nonscalar_shapes,
       sizes=st.lists(st.integers(1, 3), min_size=1, max_size=3))
def test_concat(data, base, sizes):
    axis = data.draw(st.integers(-len(base), len(base) - 1))
    shapes_ = [base[:axis % len(base)] + (s,) + base[axis % len(base) + 1:] for s in sizes]
    xs = [data.draw(arrays(s)) for s in shapes_]
    ts = [leaf(x) for x in xs]
    expected = np.concatenate(xs, axis=axis)
    assert_forward(F.concat(ts, axis=axis), expected)
    assert_gradients(lambda *us: F.concat(list(us), axis=axis), *ts)


@given(data=st.data(), shape=shapes, n=st.integers(1, 3))
def test_stack(data, shape, n):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    xs = [data.draw(arrays(shape)) for _ in range(n)]
    ts = [leaf(x) for x in xs]
    assert_forward(F.stack(ts, axis=axis), np.stack(xs, axis=axis))
    assert_gradients(lambda *us: F.stack(list(us), axis=axis), *ts)


@given(data=st.data(), shape=nonscalar_shapes)
def test_split(data, shape):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    x = data.draw(arrays(shape))
    if data.draw(st.booleans()):
        sections = data.draw(st.sampled_from([k for k in range(1, n + 1) if n % k == 0]))
        sizes = [n // sections] * sections
    else:
        cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=3)))
        sizes = [b - a for a, b in zip([0] + cuts, cuts + [n])]
        sections = sizes
    t = leaf(x)
    parts = F.split(t, sections, axis=axis)
    bounds = np.cumsum([0] + sizes)
    assert len(parts) == len(sizes)
    for k, part in enumerate(parts):
        index = [slice(None)] * x.ndim
        index[axis] = slice(bounds[k], bounds[k + 1])
        assert_forward(part, x[tuple(index)])
        assert_gradients(lambda u, k=k: F.split(u, sections, axis=axis)[k], t)


@given(data=st.data(), shape=nonscalar_shapes, value=floats())
def test_pad(data, shape, value):
    x = data.draw(arrays(shape))
    width = [data.draw(st.tuples(st.integers(0, 2), st.integers(0, 2))) for _ in shape]
    expected = np.full([n + a + b for n, (a, b) in zip(shape, width)], value)
    expected[tuple(slice(a, a + n) for n, (a, _) in zip(shape, width))] = x
    t = leaf(x)
    assert_forward(F.pad(t, width, value=value), expected)
    assert_gradients(lambda u: F.pad(u, width, value=value), t)


@given(data=st.data(), shape=shapes)
def test_getitem_basic_indices(data, shape):
    x = data.draw(arrays(shape))
    index = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    t = leaf(x)
    assert_forward(t[index], x[index])
    assert_gradients(lambda u: u[index], t)


@given(data=st.data(), shape=nonscalar_shapes)
def test_getitem_integer_arrays_with_repeats(data, shape):
    x = data.draw(arrays(shape))
    index = data.draw(hnp.integer_array_indices(
        shape, result_shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=6)))
    t = leaf(x)
    assert_forward(t[index], x[index])
    assert_gradients(lambda u: u[index], t)


def test_getitem_repeated_integer_index_accumulates():
    x = leaf(np.arange(6.0).reshape(3, 2))
    x[np.array([0, 2, 0, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad, [[3.0, 3.0], [0.0, 0.0], [1.0, 1.0]])
    y = leaf(np.arange(4.0))
    y[[1, 1]].sum().backward()                          # a Python list index
    np.testing.assert_array_equal(y.grad, [0.0, 2.0, 0.0, 0.0])


@given(data=st.data(), shape=nonscalar_shapes)
def test_getitem_boolean_masks(data, shape):
    x = data.draw(arrays(shape))
    k = data.draw(st.integers(1, len(shape)))
    mask = data.draw(hnp.arrays(np.bool_, shape[:k]))
    t = leaf(x)
    assert_forward(t[mask], x[mask])
    assert_forward(t[Tensor(mask)], x[mask])
    assert_gradients(lambda u: u[mask], t)


@given(data=st.data(), shape=nonscalar_shapes)
def test_getitem_ellipsis_newaxis_and_array(data, shape):
    x = data.draw(arrays(shape))
    last = data.draw(hnp.arrays(np.int64, st.integers(1, 5),
                                elements=st.integers(-shape[-1], shape[-1] - 1)))
    index = (Ellipsis, None, last)
    t = leaf(x)
    assert_forward(t[index], x[index])
    assert_forward(t[..., None, Tensor(last)], x[index])
    assert_gradients(lambda u: u[index], t)
