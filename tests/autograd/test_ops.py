"""Every differentiable op: forward against an independent plain-NumPy `*_expected`, backward by
float64 `gradcheck`, over hypothesis-drawn shapes (Chainer's op-test pattern).

Binary ops broadcast on both sides; reductions run over every axis / keepdims combination;
inputs stay away from kinks (relu, relu6, abs, max ties) and off the domain edges of log, sqrt and
pow. The `*_expected` functions never call tinybert code. Inputs stay small enough (at most 256
elements) for gradcheck's element-wise mode, except where a shape draw happens to be larger.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import (
    arrays,
    away_from,
    axes,
    binary_shapes,
    distinct_arrays,
    floats,
    matmul_shapes,
    nonscalar_shapes,
    nonzero,
    positive,
    shapes,
    small_shapes,
    spread_rows,
    ternary_shapes,
)

import autograd.functional as F
from autograd import Tensor, gradcheck

RTOL, ATOL = 1e-10, 1e-12  # float64 forward agreement; only the order of float sums differs


def leaf(x, requires_grad: bool = True) -> Tensor:
    return Tensor(np.array(x, dtype=np.float64), requires_grad=requires_grad)


def assert_forward(out: Tensor, expected, rtol: float = RTOL, atol: float = ATOL) -> None:
    expected = np.asarray(expected, dtype=np.float64)
    assert isinstance(out, Tensor)
    assert out.dtype == np.float64
    assert out.shape == expected.shape, f"shape {out.shape} != expected {expected.shape}"
    np.testing.assert_allclose(out.numpy(), expected, rtol=rtol, atol=atol)


# --- independent references --------------------------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu_expected(x, approximate=False):
    if approximate:
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def matmul_expected(a, b):
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    out = np.einsum("...mn,...np->...mp", a2, b2)
    if a.ndim == 1:
        out = out[..., 0, :]
    if b.ndim == 1:
        out = out[..., 0]
    return out


def linear_expected(x, w, b=None):
    y = np.einsum("...i,oi->...o", x, w)
    return y if b is None else y + b


def var_expected(x, axis, keepdims, ddof=0):
    ax = tuple(range(x.ndim)) if axis is None else axis
    ax = (ax,) if isinstance(ax, int) else ax
    n = math.prod(x.shape[a] for a in ax)
    m = x.sum(axis=ax, keepdims=True) / n
    return ((x - m) ** 2).sum(axis=ax, keepdims=keepdims) / (n - ddof)


def softmax_expected(x, axis=-1, scale=1.0, mask=None):
    z = x * scale if mask is None else x * scale + mask
    z = np.ascontiguousarray(np.moveaxis(z, axis, -1))
    out = np.zeros(z.shape)
    rows = z.reshape(-1, z.shape[-1])
    flat = out.reshape(-1, z.shape[-1])
    for i, row in enumerate(rows):
        if np.isneginf(row).all():
            continue                                   # a fully masked row: zeros
        e = np.exp(row - row.max())
        flat[i] = e / e.sum()
    return np.moveaxis(out, -1, axis)


def log_softmax_expected(x, axis=-1):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def layer_norm_expected(x, w=None, b=None, eps=1e-12):
    mu = x.mean(axis=-1, keepdims=True)
    sigma2 = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    y = (x - mu) / np.sqrt(sigma2 + eps)
    return y if w is None else y * w + b


def cross_entropy_expected(logits, target, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0):
    """PyTorch's definition, from a plain log-sum-exp."""
    c = logits.shape[-1]
    m = logits.max(axis=-1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(axis=-1, keepdims=True))
    if target.dtype.kind == "f":
        q = target * (1 - label_smoothing) + label_smoothing / c
        rows = -(q * logp).sum(axis=-1)
        count = rows.size
    else:
        valid = target != ignore_index
        safe = np.where(valid, target, 0)
        nll = -np.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
        uniform = -logp.mean(axis=-1)
        rows = np.where(valid, (1 - label_smoothing) * nll + label_smoothing * uniform, 0.0)
        count = valid.sum()
    if reduction == "none":
        return rows
    if reduction == "sum":
        return rows.sum()
    return rows.sum() / count if count else 0.0


def kl_div_expected(log_q, p, reduction="batchmean"):
    with np.errstate(divide="ignore", invalid="ignore"):
        pointwise = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - log_q), 0.0)
    if reduction == "batchmean":
        return pointwise.sum() / log_q.shape[0]
    return {"sum": pointwise.sum, "mean": pointwise.mean, "none": lambda: pointwise}[reduction]()


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
@given(data=st.data(), shapes=binary_shapes)
def test_binary_op_broadcasts_both_sides(name, data, shapes):
    op, expected, lhs, rhs = BINARY[name]
    sa, sb = shapes.input_shapes
    a, b = data.draw(arrays(sa, lhs)), data.draw(arrays(sb, rhs))
    grads = data.draw(st.sampled_from([(True, True), (True, False), (False, True)]))
    ta, tb = leaf(a, grads[0]), leaf(b, grads[1])
    assert_forward(op(ta, tb), expected(a, b))
    assert_forward(OPERATORS[name](ta, tb), expected(a, b))
    gradcheck(op, ta, tb)


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow"])
@given(data=st.data(), shape=shapes, c=floats(0.5, 2.0))
def test_binary_op_with_python_scalar_on_either_side(name, data, shape, c):
    x = data.draw(arrays(shape, floats(0.5, 2.0)))
    _, expected, _, _ = BINARY[name]
    fn = OPERATORS[name]
    t = leaf(x)
    assert_forward(fn(t, c), expected(x, np.float64(c)))
    assert_forward(fn(c, t), expected(np.float64(c), x))
    gradcheck(lambda u: fn(u, c), t)
    gradcheck(lambda u: fn(c, u), t)


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
    gradcheck(lambda u: u ** p, t)


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


@pytest.mark.parametrize("name", UNARY)
@given(data=st.data(), shape=shapes)
def test_unary_op(name, data, shape):
    op, expected, elements = UNARY[name]
    x = data.draw(arrays(shape, elements))
    t = leaf(x)
    assert_forward(op(t), expected(x))
    if name in METHODS:
        assert_forward(getattr(t, METHODS[name])(), expected(x))
    gradcheck(op, t)


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
    gradcheck(lambda u: op(u, axis, keepdims), t)


@pytest.mark.parametrize("name", REDUCTIONS)
@given(data=st.data(), shape=shapes, keepdims=st.booleans())
def test_reduction_random_shapes(name, data, shape, keepdims):
    op, expected = REDUCTIONS[name]
    axis = data.draw(axes(len(shape)))
    x = data.draw(distinct_arrays(shape) if name == "max" else arrays(shape))
    t = leaf(x)
    assert_forward(op(t, axis, keepdims), expected(x, axis, keepdims))
    gradcheck(lambda u: op(u, axis, keepdims), t)


@given(data=st.data(), shape=nonscalar_shapes, keepdims=st.booleans())
def test_var_with_ddof(data, shape, keepdims):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(arrays(shape))
    ddof = 1 if shape[axis] > 1 else 0
    t = leaf(x)
    assert_forward(F.var(t, axis=axis, keepdims=keepdims, ddof=ddof),
                   var_expected(x, (axis % len(shape),), keepdims, ddof))
    gradcheck(lambda u: F.var(u, axis=axis, keepdims=keepdims, ddof=ddof), t)


def test_max_ties_share_the_gradient_equally():
    x = leaf([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    F.max(x, axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0.0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])


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
    gradcheck(lambda u: F.reshape(u, target), t)


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
    gradcheck(lambda u: F.permute(u, perm), t)
    gradcheck(lambda u: F.transpose(u, i, j), t)
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
    gradcheck(lambda *us: F.concat(list(us), axis=axis), *ts)


@given(data=st.data(), shape=shapes, n=st.integers(1, 3))
def test_stack(data, shape, n):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    xs = [data.draw(arrays(shape)) for _ in range(n)]
    ts = [leaf(x) for x in xs]
    assert_forward(F.stack(ts, axis=axis), np.stack(xs, axis=axis))
    gradcheck(lambda *us: F.stack(list(us), axis=axis), *ts)


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
        gradcheck(lambda u, k=k: F.split(u, sections, axis=axis)[k], t)


@given(data=st.data(), shape=nonscalar_shapes, value=floats())
def test_pad(data, shape, value):
    x = data.draw(arrays(shape))
    width = [data.draw(st.tuples(st.integers(0, 2), st.integers(0, 2))) for _ in shape]
    expected = np.full([n + a + b for n, (a, b) in zip(shape, width)], value)
    expected[tuple(slice(a, a + n) for n, (a, _) in zip(shape, width))] = x
    t = leaf(x)
    assert_forward(F.pad(t, width, value=value), expected)
    gradcheck(lambda u: F.pad(u, width, value=value), t)


@given(data=st.data(), shape=shapes)
def test_getitem_basic_indices(data, shape):
    x = data.draw(arrays(shape))
    index = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    t = leaf(x)
    assert_forward(t[index], x[index])
    gradcheck(lambda u: u[index], t)


@given(data=st.data(), shape=nonscalar_shapes)
def test_getitem_integer_arrays_with_repeats(data, shape):
    x = data.draw(arrays(shape))
    index = data.draw(hnp.integer_array_indices(
        shape, result_shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=6)))
    t = leaf(x)
    assert_forward(t[index], x[index])
    gradcheck(lambda u: u[index], t)


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
    gradcheck(lambda u: u[mask], t)


@given(data=st.data(), shape=nonscalar_shapes)
def test_getitem_ellipsis_newaxis_and_array(data, shape):
    x = data.draw(arrays(shape))
    last = data.draw(hnp.arrays(np.int64, st.integers(1, 5),
                                elements=st.integers(-shape[-1], shape[-1] - 1)))
    index = (Ellipsis, None, last)
    t = leaf(x)
    assert_forward(t[index], x[index])
    assert_forward(t[..., None, Tensor(last)], x[index])
    gradcheck(lambda u: u[index], t)


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
    gradcheck(lambda u, v: F.where(cond, u, v), ta, tb)


@given(data=st.data(), shape=shapes, value=floats(-1e4, 1e4))
def test_masked_fill(data, shape, value):
    x = data.draw(arrays(shape))
    mask_shape = data.draw(hnp.broadcastable_shapes(shape, max_dims=len(shape)))
    mask = data.draw(hnp.arrays(np.bool_, mask_shape))
    t = leaf(x)
    assert_forward(F.masked_fill(t, mask, value), np.where(mask, value, x))
    gradcheck(lambda u: F.masked_fill(u, mask, value), t)


def test_masked_fill_with_minus_inf():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    y = F.masked_fill(x, np.array([True, False]), -np.inf)
    np.testing.assert_array_equal(y.numpy(), [[-np.inf, 2.0], [-np.inf, 4.0]])
    F.softmax(y, axis=-1).sum().backward()
    assert np.isfinite(x.grad).all()


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


# --- softmax family ------------------------------------------------------------------------------

@given(data=st.data(), shape=nonscalar_shapes)
def test_softmax_any_axis(data, shape):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(arrays(shape, floats(-5.0, 5.0)))
    t = leaf(x)
    assert_forward(F.softmax(t, axis=axis), softmax_expected(x, axis))
    if axis == -1:
        assert_forward(t.softmax(), softmax_expected(x, axis))
    gradcheck(lambda u: F.softmax(u, axis=axis), t)


@st.composite
def mask_shapes(draw, shape):
    """A shape that broadcasts to exactly `shape`: each axis kept or 1, leading axes maybe gone."""
    out = tuple(n if draw(st.booleans()) else 1 for n in shape)
    return out[draw(st.integers(0, len(out))):]


@given(data=st.data(), shape=nonscalar_shapes, scale=floats(0.1, 2.0))
def test_softmax_with_scale_and_additive_mask(data, shape, scale):
    x = data.draw(arrays(shape, floats(-5.0, 5.0)))
    mask = data.draw(hnp.arrays(np.float64, mask_shapes(shape),
                                elements=st.sampled_from([0.0, 0.0, -np.inf, -1.5, 0.5])))
    t = leaf(x)
    out = F.softmax(t, axis=-1, scale=scale, mask=mask)
    assert_forward(out, softmax_expected(x, -1, scale, mask))
    assert_forward(F.softmax(t, scale=scale, mask=Tensor(mask)), out.numpy())
    gradcheck(lambda u: F.softmax(u, axis=-1, scale=scale, mask=mask), t)


@given(data=st.data(), shape=nonscalar_shapes)
def test_log_softmax_any_axis(data, shape):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(arrays(shape, floats(-5.0, 5.0)))
    t = leaf(x)
    assert_forward(F.log_softmax(t, axis=axis), log_softmax_expected(x, axis))
    if axis == -1:
        assert_forward(t.log_softmax(), log_softmax_expected(x, axis))
    gradcheck(lambda u: F.log_softmax(u, axis=axis), t)


# --- normalisations ------------------------------------------------------------------------------

@given(data=st.data(), shape=nonscalar_shapes, affine=st.booleans(),
       eps=st.sampled_from([1e-12, 1e-5]))
def test_layer_norm(data, shape, affine, eps):
    x = spread_rows(data.draw(arrays(shape, floats(-1.0, 1.0))))
    tx = leaf(x)
    if affine:
        w, b = data.draw(arrays(shape[-1:])), data.draw(arrays(shape[-1:]))
        tw, tb = leaf(w), leaf(b)
        assert_forward(F.layer_norm(tx, tw, tb, eps=eps), layer_norm_expected(x, w, b, eps),
                       rtol=1e-9, atol=1e-10)
        gradcheck(lambda u, v, z: F.layer_norm(u, v, z, eps=eps), tx, tw, tb)
    else:
        assert_forward(F.layer_norm(tx, eps=eps), layer_norm_expected(x, eps=eps),
                       rtol=1e-9, atol=1e-10)
        gradcheck(lambda u: F.layer_norm(u, eps=eps), tx)


@given(data=st.data(), shape=nonscalar_shapes, residual=st.booleans())
def test_no_norm(data, shape, residual):
    x = data.draw(arrays(shape))
    w, b = data.draw(arrays(shape[-1:])), data.draw(arrays(shape[-1:]))
    tx, tw, tb = leaf(x), leaf(w), leaf(b)
    if residual:
        r = data.draw(arrays(shape))
        tr = leaf(r)
        assert_forward(F.no_norm(tx, tw, tb, residual=tr), (x + r) * w + b)
        gradcheck(lambda u, v, z, q: F.no_norm(u, v, z, residual=q), tx, tw, tb, tr)
    else:
        assert_forward(F.no_norm(tx, tw, tb), x * w + b)
        gradcheck(F.no_norm, tx, tw, tb)


# --- dropout -------------------------------------------------------------------------------------

@given(data=st.data(), shape=shapes, p=st.sampled_from([0.1, 0.5, 0.8]),
       seed=st.integers(0, 2 ** 16))
def test_dropout_fixed_mask_gradcheck(data, shape, p, seed):
    x = data.draw(arrays(shape, away_from((0.0,))))
    t = leaf(x)

    def fn(u):
        return F.dropout(u, p, generator=u.backend.rng(seed))

    ratio = fn(t).numpy() / x
    assert np.all(np.isclose(ratio, 0.0) | np.isclose(ratio, 1 / (1 - p), rtol=1e-12))
    np.testing.assert_array_equal(fn(t).numpy(), fn(t).numpy())  # the same seed, the same mask
    gradcheck(fn, t)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_statistics(p):
    n = 200_000
    be = Tensor(0.0).backend
    y = F.dropout(Tensor(np.ones(n)), p, generator=be.rng(1234)).numpy()
    dropped = float(np.mean(y == 0.0))
    # Binomial: both statistics within 5 standard deviations.
    assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert abs(y.mean() - 1.0) < 5 * math.sqrt(p / (1 - p) / n)
    assert set(np.unique(y)) <= {0.0, 1 / (1 - p)}


def test_dropout_identity_when_not_training_or_p_zero_and_rejects_bad_p():
    x = leaf(np.arange(4.0))
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    for p in (1.0, -0.1):
        with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\)"):
            F.dropout(x, p)


def test_dropout_seeds_differ():
    be = Tensor(0.0).backend
    x = Tensor(np.ones(1000))
    a = F.dropout(x, 0.5, generator=be.rng(0)).numpy()
    b = F.dropout(x, 0.5, generator=be.rng(1)).numpy()
    assert not np.array_equal(a, b)


# --- embedding -----------------------------------------------------------------------------------

@given(data=st.data(), vocab=st.integers(1, 6), dim=st.integers(1, 4),
       ids_shape=hnp.array_shapes(min_dims=0, max_dims=2, max_side=5))
def test_embedding(data, vocab, dim, ids_shape):
    w = data.draw(arrays((vocab, dim)))
    ids = data.draw(hnp.arrays(np.int64, ids_shape, elements=st.integers(0, vocab - 1)))
    tw = leaf(w)
    expected = np.stack([w[i] for i in ids.reshape(-1)]).reshape(ids_shape + (dim,))
    assert_forward(F.embedding(ids, tw), expected)
    assert_forward(F.embedding(Tensor(ids), tw), expected)
    # gradcheck passes integer inputs through untouched
    gradcheck(lambda u, i: F.embedding(i, u), tw, Tensor(ids))


def test_embedding_repeated_ids_accumulate():
    w = leaf(np.zeros((5, 2)))
    ids = np.array([[1, 1, 3], [1, 0, 3]])
    g = np.arange(12.0).reshape(2, 3, 2)
    F.embedding(ids, w).backward(g)
    expected = np.zeros((5, 2))
    for i, row in zip(ids.reshape(-1), g.reshape(-1, 2)):
        expected[i] += row
    np.testing.assert_array_equal(w.grad, expected)


# --- losses --------------------------------------------------------------------------------------

@given(data=st.data(), lead=hnp.array_shapes(min_dims=1, max_dims=2, max_side=4),
       c=st.integers(1, 5), reduction=st.sampled_from(["mean", "sum", "none"]),
       smoothing=st.sampled_from([0.0, 0.1, 0.5]), ignore_index=st.sampled_from([-100, 1]))
def test_cross_entropy_class_targets(data, lead, c, reduction, smoothing, ignore_index):
    logits = data.draw(arrays(lead + (c,), floats(-5.0, 5.0)))
    target = data.draw(hnp.arrays(np.int64, lead, elements=st.sampled_from(
        list(range(c)) + [ignore_index])))
    t = leaf(logits)
    kwargs = {"ignore_index": ignore_index, "reduction": reduction,
              "label_smoothing": smoothing}
    assert_forward(F.cross_entropy(t, target, **kwargs),
                   cross_entropy_expected(logits, target, **kwargs))
    assert_forward(F.cross_entropy(t, Tensor(target), **kwargs),
                   cross_entropy_expected(logits, target, **kwargs))
    gradcheck(lambda u: F.cross_entropy(u, target, **kwargs), t)


@given(data=st.data(), lead=hnp.array_shapes(min_dims=1, max_dims=2, max_side=4),
       c=st.integers(1, 5), reduction=st.sampled_from(["mean", "sum", "none"]),
       smoothing=st.sampled_from([0.0, 0.2]))
def test_cross_entropy_soft_targets(data, lead, c, reduction, smoothing):
    logits = data.draw(arrays(lead + (c,), floats(-5.0, 5.0)))
    raw = data.draw(arrays(lead + (c,), floats(0.0, 1.0)))
    target = (raw + 1e-3) / (raw + 1e-3).sum(axis=-1, keepdims=True)
    t = leaf(logits)
    kwargs = {"reduction": reduction, "label_smoothing": smoothing}
    assert_forward(F.cross_entropy(t, target, **kwargs),
                   cross_entropy_expected(logits, target, **kwargs))
    gradcheck(lambda u: F.cross_entropy(u, target, **kwargs), t)
    # the soft target may itself be a tensor that requires grad (a student-teacher pair)
    gradcheck(lambda u, q: F.cross_entropy(u, q, **kwargs), t, leaf(target))


def test_cross_entropy_all_ignored_mean_is_zero():
    logits = leaf(np.ones((3, 4)))
    loss = F.cross_entropy(logits, np.full(3, -100))
    assert loss.item() == 0.0
    loss.backward()
    np.testing.assert_array_equal(logits.grad, np.zeros((3, 4)))


@given(data=st.data(), shape=nonscalar_shapes,
       reduction=st.sampled_from(["batchmean", "sum", "mean", "none"]),
       with_zeros=st.booleans())
def test_kl_div(data, shape, reduction, with_zeros):
    z = data.draw(arrays(shape))
    log_q = log_softmax_expected(z, -1)
    raw = data.draw(arrays(shape, floats(0.05, 1.0)))
    if with_zeros:
        raw = np.where(raw < 0.3, 0.0, raw)             # exact zeros: 0 log 0 = 0
    raw[..., 0] += 0.5                                   # every row has some mass
    p = raw / raw.sum(axis=-1, keepdims=True)
    tq = leaf(log_q)
    assert_forward(F.kl_div(tq, p, reduction=reduction), kl_div_expected(log_q, p, reduction))
    gradcheck(lambda u: F.kl_div(u, p, reduction=reduction), tq)
    if not with_zeros:                                   # d/dp p log p is infinite at p = 0
        gradcheck(lambda u, v: F.kl_div(u, v, reduction=reduction), tq, leaf(p))


@given(data=st.data(), shape=nonscalar_shapes)
def test_kl_from_logits(data, shape):
    s, t = data.draw(arrays(shape)), data.draw(arrays(shape))
    t[..., -1] = -1e30 if shape[-1] > 1 else t[..., -1]     # a masked key: probability 0
    lq, lp = log_softmax_expected(s, -1), log_softmax_expected(t, -1)
    rows = s.size // shape[-1]
    with np.errstate(under="ignore"):
        expected = np.where(np.exp(lp) > 0, np.exp(lp) * (lp - lq), 0.0).sum() / rows
    ts = leaf(s)
    assert_forward(F.kl_from_logits(ts, t), expected)
    gradcheck(lambda u: F.kl_from_logits(u, t), ts)
    gradcheck(lambda u, v: F.kl_from_logits(u, v), ts, leaf(data.draw(arrays(shape))))
    with pytest.raises(ValueError, match="target shape"):
        F.kl_from_logits(ts, np.zeros(shape + (2,)))


@given(data=st.data(), shapes=binary_shapes, reduction=st.sampled_from(["mean", "sum", "none"]))
def test_mse_loss(data, shapes, reduction):
    sa, sb = shapes.input_shapes
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
    d2 = (a - b) ** 2
    expected = {"mean": d2.mean(), "sum": d2.sum(), "none": d2}[reduction]
    ta, tb = leaf(a), leaf(b)
    assert_forward(F.mse_loss(ta, tb, reduction=reduction), expected)
    assert_forward(F.mse_loss(ta, b, reduction=reduction), expected)
    gradcheck(lambda u, v: F.mse_loss(u, v, reduction=reduction), ta, tb)


# --- fused ops equal their compositions (STYLE: "a test asserts the fused op equals the
#     composite version, forward and backward") --------------------------------------------------

def _grads(fn, *arrays_):
    ts = [leaf(a) for a in arrays_]
    out = fn(*ts)
    out.backward(np.random.default_rng(0).standard_normal(out.shape))
    return out.numpy(), [t.grad for t in ts]


def _softmax_composite(x):
    e = F.exp(x * 0.5 - F.max(x * 0.5, axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


FUSED = {
    "softmax": (lambda x: F.softmax(x, axis=-1, scale=0.5), _softmax_composite),
    "log_softmax": (lambda x: F.log_softmax(x, axis=-1),
                    lambda x: x - F.log(F.exp(x).sum(axis=-1, keepdims=True))),
    "layer_norm": (lambda x: F.layer_norm(x, eps=1e-5),
                   lambda x: (x - x.mean(axis=-1, keepdims=True))
                   / F.sqrt(F.var(x, axis=-1, keepdims=True) + 1e-5)),
    "cross_entropy": (lambda x: F.cross_entropy(x, np.array([0, 2, 1])),
                      lambda x: -(F.log_softmax(x) * Tensor(np.eye(3)[[0, 2, 1]])).sum() / 3.0),
    "gelu_tanh": (lambda x: F.gelu(x, approximate=True),
                  lambda x: 0.5 * x * (1.0 + F.tanh(math.sqrt(2 / math.pi)
                                                    * (x + 0.044715 * x * x * x)))),
}


@pytest.mark.parametrize("name", FUSED)
def test_fused_op_equals_its_composition(name):
    fused, composite = FUSED[name]
    x = np.random.default_rng(1).standard_normal((3, 3)) * 2
    y1, (g1,) = _grads(fused, x)
    y2, (g2,) = _grads(composite, x)
    np.testing.assert_allclose(y1, y2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-12)


def test_no_norm_equals_its_composition():
    rng = np.random.default_rng(2)
    x, r, w, b = (rng.standard_normal(s) for s in [(2, 3, 4), (2, 3, 4), (4,), (4,)])
    y1, g1 = _grads(lambda *t: F.no_norm(t[0], t[2], t[3], residual=t[1]), x, r, w, b)
    y2, g2 = _grads(lambda *t: (t[0] + t[1]) * t[2] + t[3], x, r, w, b)
    np.testing.assert_allclose(y1, y2, rtol=1e-12)
    for a, b_ in zip(g1, g2):
        np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)


# --- multi-input ops with only some inputs requiring grad (the needs_input_grad paths) ----------

MULTI_INPUT = {
    "linear": (lambda x, w, b: F.linear(x, w, b), [(2, 3), (4, 3), (4,)]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, w, b), [(2, 3), (3,), (3,)]),
    "no_norm": (lambda x, w, b, r: F.no_norm(x, w, b, residual=r), [(2, 3), (3,), (3,), (2, 3)]),
    "concat": (lambda a, b, c: F.concat([a, b, c], axis=1), [(2, 3), (2, 1), (2, 2)]),
    "where": (lambda a, b: F.where(np.array([True, False, True]), a, b), [(2, 3), (3,)]),
    "matmul": (F.matmul, [(2, 2, 3), (3, 4)]),
    "pow": (lambda a, b: F.exp(a) ** b, [(2, 3), (3,)]),
    "soft_cross_entropy": (lambda a, b: F.cross_entropy(a, F.softmax(b)), [(2, 3), (2, 3)]),
    "kl_div": (lambda a, b: F.kl_div(F.log_softmax(a), F.softmax(b)), [(2, 3), (2, 3)]),
}


@pytest.mark.parametrize("name", MULTI_INPUT)
def test_only_some_inputs_require_grad(name):
    fn, shapes_ = MULTI_INPUT[name]
    rng = np.random.default_rng(4)
    values = [rng.standard_normal(s) for s in shapes_]
    for flags in itertools.product([True, False], repeat=len(shapes_)):
        if any(flags):
            ts = [leaf(v, f) for v, f in zip(values, flags)]
            gradcheck(fn, *ts)
            fn(*ts).sum().backward()
            assert all((t.grad is None) == (not f) for t, f in zip(ts, flags))


# --- an extra check against PyTorch where it is installed ----------------------------------------

@pytest.mark.parametrize("case", ["cross_entropy", "gelu", "layer_norm", "kl_div"])
def test_matches_torch(case):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 5))
    tt = torch.tensor(x, requires_grad=True)
    t = leaf(x)
    if case == "cross_entropy":
        target = np.array([0, 4, -100, 2])
        ours = F.cross_entropy(t, target, label_smoothing=0.1)
        ref = torch.nn.functional.cross_entropy(tt, torch.tensor(target), label_smoothing=0.1)
    elif case == "gelu":
        ours, ref = F.gelu(t).sum(), torch.nn.functional.gelu(tt).sum()
    elif case == "layer_norm":
        ours = (F.layer_norm(t, eps=1e-5) ** 2).sum()
        ref = (torch.nn.functional.layer_norm(tt, (5,), eps=1e-5) ** 2).sum()
    else:
        p = np.exp(log_softmax_expected(rng.standard_normal((4, 5))))
        ours = F.kl_div(F.log_softmax(t), p)
        ref = torch.nn.functional.kl_div(torch.log_softmax(tt, -1), torch.tensor(p),
                                         reduction="batchmean")
    ours.backward()
    ref.backward()
    np.testing.assert_allclose(ours.item(), ref.item(), rtol=1e-10)
    np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=1e-8, atol=1e-12)


@settings(max_examples=20)
@given(data=st.data(), shape=small_shapes)
def test_gradients_keep_the_input_dtype_float32(data, shape):
    """A float32 graph yields float32 gradients (no silent upcast in any backward)."""
    x = data.draw(arrays(shape, floats(0.5, 2.0))).astype(np.float32)
    t = Tensor(x, requires_grad=True)
    w = Tensor(np.ones(shape[-1:], np.float32), requires_grad=True)
    y = (F.softmax(t * 2.0, scale=0.5) + F.log_softmax(t) + F.gelu(t) + F.gelu(t, True)
         + F.layer_norm(t, w, w) + F.no_norm(t, w, w) + F.sqrt(t) / t ** 1.5
         + F.var(t, axis=-1, keepdims=True) + F.mean(t) + F.max(t, axis=0) + F.sigmoid(t).exp()
         + F.relu6(t) + F.abs(t) + F.relu(t).log() + F.tanh(t) - t ** t)
    y = y.sum() + F.cross_entropy(t.reshape(-1, shape[-1]), np.zeros(x.size // shape[-1], int),
                                  label_smoothing=0.1)
    y = y + F.kl_div(F.log_softmax(t), F.softmax(t).detach()) + F.mse_loss(t, 1.0)
    y = y + F.linear(t, w.reshape(1, -1), w[:1]).sum() + F.matmul(t, t.T if t.ndim == 1
                                                                  else t.transpose()).sum()
    y.backward()
    assert y.dtype == np.float32
    assert t.grad.dtype == np.float32 and w.grad.dtype == np.float32
    assert np.isfinite(t.grad).all()
