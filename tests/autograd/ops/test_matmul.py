"""Matrix products (autograd/ops/matmul.py): batched and broadcast matmul, 1-d operands,
linear.

Written with the public kit, autograd.testing: forward against an independent plain-NumPy
`*_expected` (op_references.py), backward by float64 `assert_gradients`, over hypothesis-drawn
shapes (Chainer's op-test pattern).
"""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from op_references import linear_expected, matmul_expected

import autograd.functional as F
from autograd.testing import assert_forward, assert_gradients, check_op, leaf
from autograd.testing.strategies import (
    arrays,
    matmul_shapes,
)


# --- matrix products -----------------------------------------------------------------------------

def test_matmul_batched_and_broadcast():
    # The function and the @ operator; one NumPy GEMM on every CPU backend, so NumPy alone.
    check_op(F.matmul, matmul_expected, matmul_shapes, aliases=[lambda a, b: a @ b],
             backends=["numpy"])


@given(data=st.data(), n=st.integers(1, 4), m=st.integers(1, 4),
       batch=hnp.array_shapes(min_dims=0, max_dims=2, max_side=3),
       case=st.sampled_from(["vec@vec", "vec@mat", "mat@vec"]))
def test_matmul_with_1d_operands(data, n, m, batch, case):
    sa = {"vec@vec": (n,), "vec@mat": (n,), "mat@vec": batch + (m, n)}[case]
    sb = {"vec@vec": (n,), "vec@mat": batch + (n, m), "mat@vec": (n,)}[case]
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
    ta, tb = leaf(a), leaf(b)
    assert_forward(F.matmul(ta, tb), matmul_expected(a, b))
    assert_gradients(F.matmul, ta, tb)


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
        assert_gradients(F.linear, tx, tw, tb)
    else:
        assert_forward(F.linear(tx, tw), linear_expected(x, w))
        assert_gradients(F.linear, tx, tw)
