"""Element-wise ops (autograd/ops/elementwise.py): binary ops broadcasting on both sides,
unary ops away from their kinks and domain edges, where and masked_fill.

Written with the public kit, autograd.testing, as a user would test their own op: forward
against an independent plain-NumPy `*_expected` (op_references.py), backward by float64
`assert_gradients`, over hypothesis-drawn shapes (Chainer's op-test pattern). `check_op` does
all three in one call where an op fits its shape.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from op_references import KERNEL_BACKENDS, gelu_expected

import autograd.functional as F
from autograd import Tensor
from autograd.testing import assert_forward, assert_gradients, check_op, leaf
from autograd.testing.strategies import (
    arrays,
    away_from,
    binary_shapes,
    floats,
    nonzero,
    positive,
    shapes,
    ternary_shapes,
)


# --- element-wise binary ops ---------------------------------------------------------------------

BINARY = {
    # name: (op, expected, lhs elements, rhs elements)
    "add": (F.add, lambda a, b: a + b, floats(), floats()),
    "sub": (F.sub, lambda a, b: a - b, floats(), floats()),
    "mul": (F.mul, lambda a, b: a * b, floats(), floats()),
    "div": (F.div, lambda a, b: a / b, floats(), nonzero),
    "pow": (F.pow, lambda a, b: np.exp(b * np.log(a)), floats(0.5, 2.0), floats(-2.0, 2.0)),
}
OPERATORS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
             "div": lambda a, b: a / b, "pow": lambda a, b: a ** b}


@pytest.mark.parametrize("name", BINARY)
def test_binary_op_broadcasts_both_sides(name):
    # The function and its operator spelling; each non-empty subset of inputs requiring grad.
    # NumPy only: no kernel runs here, so other CPU backends would repeat the same code.
    op, expected, lhs, rhs = BINARY[name]
    check_op(op, expected, binary_shapes, [lhs, rhs], aliases=[OPERATORS[name]],
             grad_subsets=True, backends=["numpy"])


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow"])
@given(data=st.data(), shape=shapes, c=floats(0.5, 2.0))
def test_binary_op_with_python_scalar_on_either_side(name, data, shape, c):
    x = data.draw(arrays(shape, floats(0.5, 2.0)))
    _, expected, _, _ = BINARY[name]
    fn = OPERATORS[name]
    t = leaf(x)
    assert_forward(fn(t, c), expected(x, np.float64(c)))
    assert_forward(fn(c, t), expected(np.float64(c), x))
    assert_gradients(lambda u: fn(u, c), t)
    assert_gradients(lambda u: fn(c, u), t)


@pytest.mark.parametrize("p", [2, 3, -1, 0.5, -1.5, 1.0, 0])
@given(data=st.data(), shape=shapes)
def test_pow_scalar_exponent(p, data, shape):
    # Integer exponents allow negative bases (no log is taken); fractional ones need x > 0.
    elements = away_from((0.0,), margin=0.3) if float(p).is_integer() else positive
    x = data.draw(arrays(shape, elements))
    t = leaf(x)
    expected = x ** p if float(p).is_integer() else np.exp(p * np.log(x))
    assert_forward(t ** p, expected)
    assert_forward(F.pow(t, p), expected)
    assert_gradients(lambda u: u ** p, t)


def test_pow_scalar_exponent_zero_has_zero_gradient_at_zero():
    x = leaf([0.0, 1.0, -2.0])
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])


# --- element-wise unary ops ----------------------------------------------------------------------

UNARY = {
    # name: (op, expected, elements)
    "neg": (lambda t: -t, lambda x: -x, floats()),
    "exp": (F.exp, np.exp, floats()),
    "log": (F.log, np.log, positive),
    "sqrt": (F.sqrt, np.sqrt, positive),
    "tanh": (F.tanh, np.tanh, floats()),
    "sigmoid": (F.sigmoid, lambda x: 1 / (1 + np.exp(-x)), floats(-8.0, 8.0)),
    "relu": (F.relu, lambda x: np.where(x > 0, x, 0.0), away_from((0.0,))),
    "relu6": (F.relu6, lambda x: np.where(x < 0, 0.0, np.where(x > 6, 6.0, x)),
              away_from((0.0, 6.0), -3.0, 9.0)),
    "abs": (F.abs, lambda x: np.where(x < 0, -x, x), away_from((0.0,))),
    "gelu": (F.gelu, gelu_expected, floats(-5.0, 5.0)),
    "gelu_tanh": (lambda t: F.gelu(t, approximate=True),
                  lambda x: gelu_expected(x, approximate=True), floats(-5.0, 5.0)),
}
METHODS = {"exp": "exp", "log": "log", "sqrt": "sqrt", "tanh": "tanh", "sigmoid": "sigmoid",
           "relu": "relu", "abs": "abs"}


# Ops whose forward and backward are named kernels run on every CPU backend (numba overrides
# them); the rest are the same NumPy code on every CPU backend.
KERNEL_OPS = {"relu", "gelu", "gelu_tanh"}


@pytest.mark.parametrize("name", UNARY)
def test_unary_op(name):
    op, expected, elements = UNARY[name]
    aliases = [lambda t: getattr(t, METHODS[name])()] if name in METHODS else []
    check_op(op, expected, shapes, elements, aliases=aliases,
             backends=KERNEL_BACKENDS if name in KERNEL_OPS else ["numpy"])


# --- where / masked_fill -------------------------------------------------------------------------

@given(data=st.data(), shapes=ternary_shapes)
def test_where(data, shapes):
    sc, sa, sb = shapes.input_shapes
    cond = data.draw(hnp.arrays(np.bool_, sc))
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
    ta, tb = leaf(a), leaf(b)
    assert_forward(F.where(cond, ta, tb), np.where(cond, a, b))
    assert_forward(F.where(Tensor(cond), ta, 0.5), np.where(cond, a, 0.5))
    assert_forward(F.where(cond, -1.5, tb), np.where(cond, -1.5, b))
    assert_gradients(lambda u, v: F.where(cond, u, v), ta, tb)


@given(data=st.data(), shape=shapes, value=floats(-1e4, 1e4))
def test_masked_fill(data, shape, value):
    x = data.draw(arrays(shape))
    mask_shape = data.draw(hnp.broadcastable_shapes(shape, max_dims=len(shape)))
    mask = data.draw(hnp.arrays(np.bool_, mask_shape))
    t = leaf(x)
    assert_forward(F.masked_fill(t, mask, value), np.where(mask, value, x))
    assert_gradients(lambda u: F.masked_fill(u, mask, value), t)


def test_masked_fill_with_minus_inf():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    y = F.masked_fill(x, np.array([True, False]), -np.inf)
    np.testing.assert_array_equal(y.numpy(), [[-np.inf, 2.0], [-np.inf, 4.0]])
    F.softmax(y, axis=-1).sum().backward()
    assert np.isfinite(x.grad).all()
