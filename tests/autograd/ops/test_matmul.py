"""Matrix products (autograd/ops/matmul.py): batched and broadcast matmul, 1-d operands,
linear.

Forward against an independent plain-NumPy `*_expected` (op_references.py), backward by float64
`gradcheck`, over hypothesis-drawn shapes (Chainer's op-test pattern).
"""
from __future__ import annotations


from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import (
    arrays,
    matmul_shapes,
)

import autograd.functional as F
from autograd import gradcheck
from op_references import leaf, assert_forward, matmul_expected, linear_expected


# --- matrix products -----------------------------------------------------------------------------

@given(data=st.data(), shapes=matmul_shapes)
def test_matmul_batched_and_broadcast(data, shapes):
    sa, sb = shapes.input_shapes
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
    ta, tb = leaf(a), leaf(b)
    expected = matmul_expected(a, b)
    assert_forward(F.matmul(ta, tb), expected)
    assert_forward(ta @ tb, expected)
    gradcheck(F.matmul, ta, tb)


@given(data=st.data(), n=st.integers(1, 4), m=st.integers(1, 4),
       batch=hnp.array_shapes(min_dims=0, max_dims=2, max_side=3),
       case=st.sampled_from(["vec@vec", "vec@mat", "mat@vec"]))
def test_matmul_with_1d_operands(data, n, m, batch, case):
    sa = {"vec@vec": (n,), "vec@mat": (n,), "mat@vec": batch + (m, n)}[case]
    sb = {"vec@vec": (n,), "vec@mat": batch + (n, m), "mat@vec": (n,)}[case]
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
    ta, tb = leaf(a), leaf(b)
    assert_forward(F.matmul(ta, tb), matmul_expected(a, b))
    gradcheck(F.matmul, ta, tb)


@given(data=st.data(), lead=hnp.array_shapes(min_dims=0, max_dims=3, max_side=3),
       n_in=st.integers(1, 4), n_out=st.integers(1, 4), bias=st.booleans())
def test_linear(data, lead, n_in, n_out, bias):
    x = data.draw(arrays(lead + (n_in,)))
    w = data.draw(arrays((n_out, n_in)))
    tx, tw = leaf(x), leaf(w)
    if bias:
        b = data.draw(arrays((n_out,)))
        tb = leaf(b)
        assert_forward(F.linear(tx, tw, tb), linear_expected(x, w, b))
        gradcheck(F.linear, tx, tw, tb)
    else:
        assert_forward(F.linear(tx, tw), linear_expected(x, w))
        gradcheck(F.linear, tx, tw)
