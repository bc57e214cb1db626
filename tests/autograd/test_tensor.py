"""The Tensor and its engine: construction, dtypes and scalars, graph recording, backward's
semantics (accumulation, retain_grad, retain_graph, deep graphs, no aliasing), and the error
messages for bad input.

Autograd properties are checked on hypothesis-drawn arrays against closed-form derivatives; error
tests assert the message with `pytest.raises(..., match=...)` (STYLE.md: the message names the op,
the argument and both values).
"""
from __future__ import annotations

import inspect
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autograd.functional as F
import backends
from autograd import Tensor, enable_grad, is_grad_enabled, no_grad
from autograd.testing.strategies import arrays, floats, shapes, small_shapes


def leaf(x, dtype=np.float64) -> Tensor:
    return Tensor(np.array(x, dtype=dtype), requires_grad=True)


# --- construction and dtypes ---------------------------------------------------------------------

def test_python_numbers_default_dtypes():
    assert Tensor(1.5).dtype == np.float32            # the framework's float default
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(3).dtype == np.int64
    assert Tensor([True, False]).dtype == np.bool_
    assert Tensor(1.5, dtype=np.float64).dtype == np.float64
    assert Tensor([[1, 2], [3, 4]]).shape == (2, 2)


def test_arrays_keep_their_dtype_and_tensors_copy_their_backend():
    for dtype in (np.float32, np.float64, np.int32, np.uint8, np.bool_):
        assert Tensor(np.zeros(3, dtype)).dtype == dtype
    t = Tensor(np.ones(2), requires_grad=True)
    u = Tensor(t)
    assert u.dtype == np.float64 and u.device == t.device == backends.default_backend_name()
    assert not u.requires_grad and u.is_leaf
    assert t.to(t.device) is t
    assert t.astype(np.float64) is t


def test_unsupported_dtype_and_unknown_device_are_rejected():
    with pytest.raises(TypeError, match="unsupported dtype complex128"):
        Tensor(np.zeros(2, np.complex128))
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        Tensor(1.0, device="tpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        Tensor(np.ones(2)).to("tpu")


def test_requires_grad_on_an_integer_tensor_is_a_type_error():
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients, "
                                        "got int64"):
        Tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="requires_grad_: bool tensors cannot require gradients"):
        Tensor([True]).requires_grad_()
    assert Tensor([1.0]).requires_grad_().requires_grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scalars_take_the_tensor_dtype(dtype):
    t = Tensor(np.ones(3, dtype))
    for c in (2, 0.5, True, np.float64(0.5), np.float32(0.5), np.int64(2)):
        for out in (t + c, c + t, t * c, c * t, t - c, c - t, t / c, c / t, t ** 2, 2 ** t):
            assert out.dtype == dtype, (c, out.dtype)
    np.testing.assert_allclose((t * np.float64(0.5)).numpy(), 0.5)


def test_integer_and_bool_operands():
    ids = Tensor(np.array([1, 2, 3]))
    assert (ids + 1).dtype == np.int64
    assert (ids * 0.5).dtype == np.float32                # a float scalar: the float default
    mask = Tensor(np.array([True, False]))
    np.testing.assert_array_equal((mask + 5).numpy(), [6, 5])    # not True + True
    np.testing.assert_array_equal((1 - mask).numpy(), [0, 1])
    np.testing.assert_array_equal((mask * 2.5).numpy(), [2.5, 0.0])
    x = leaf([1.0, 2.0])
    y = x * mask                                          # a bool mask takes x's dtype
    assert y.dtype == np.float64
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 0.0])


def test_mixed_float_dtypes_are_a_type_error_naming_both():
    a, b = Tensor(np.ones(2, np.float32)), Tensor(np.ones(2, np.float64))
    for fn in (lambda: a + b, lambda: b * a, lambda: F.matmul(a, b),
               lambda: F.concat([a, b]), lambda: F.where(np.array([True, False]), a, b)):
        with pytest.raises(TypeError, match=r"different dtypes: (float32 and float64|float64 "
                                            r"and float32)"):
            fn()
    with pytest.raises(TypeError, match=r"Add: inputs have different dtypes: float32 and "
                                        r"float64; convert one with .astype\(\)"):
        a + np.ones(2)                                    # an array operand keeps its dtype
    with pytest.raises(TypeError, match="Linear: inputs have different dtypes"):
        F.linear(a, Tensor(np.ones((3, 2))))


def test_astype_is_differentiable_between_float_dtypes():
    x = leaf([1.0, 2.0])
    y = x.astype(np.float32)
    assert y.dtype == np.float32 and y.requires_grad
    (y * 3.0).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_ndarray_on_the_left_defers_to_the_tensor():
    x = leaf([1.0, 2.0])
    y = np.array([3.0, 4.0]) * x
    assert isinstance(y, Tensor)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])
    z = np.eye(2) @ leaf([[1.0], [2.0]])
    assert isinstance(z, Tensor) and z.shape == (2, 1)


def test_comparisons_give_constant_bool_tensors():
    x = leaf([1.0, 2.0, 3.0])
    for m in (x > 1.5, x >= 2.0, x < 2.0, x <= 1.0, x == 2.0, x != 2.0):
        assert m.dtype == np.bool_ and not m.requires_grad
    np.testing.assert_array_equal((x > 1.5).numpy(), [False, True, True])
    assert {x, x} == {x}                                  # hashable by identity


def test_item_tolist_repr_len():
    assert Tensor(2.5).item() == 2.5
    assert Tensor([[1, 2]]).tolist() == [[1, 2]]
    assert len(Tensor(np.zeros((4, 2)))) == 4
    assert "requires_grad=True" in repr(leaf([1.0]))
    with pytest.raises(ValueError, match=r"item: only a one-element tensor .* shape \(2,\)"):
        Tensor([1.0, 2.0]).item()


# --- bad input: shapes and ids -------------------------------------------------------------------

def test_mismatched_shapes_in_a_binary_op():
    with pytest.raises(ValueError, match=r"Add: .*\(input shapes \(2, 3\), \(4,\)\)"):
        Tensor(np.ones((2, 3))) + Tensor(np.ones(4))
    with pytest.raises(ValueError, match=r"Mul: .*\(input shapes \(2,\), \(3,\)\)"):
        leaf([1.0, 2.0]) * leaf([1.0, 2.0, 3.0])


def test_matmul_inner_dimension_mismatch():
    with pytest.raises(ValueError, match=r"inner dimensions differ: a is \(2, 3\), b is \(4, 5\)"):
        F.matmul(Tensor(np.ones((2, 3))), Tensor(np.ones((4, 5))))
    with pytest.raises(ValueError, match="inner dimensions differ"):
        Tensor(np.ones(3)) @ Tensor(np.ones(4))
    with pytest.raises(ValueError, match="at least one dimension"):
        F.matmul(Tensor(1.0), Tensor(np.ones(2)))


def test_linear_shape_errors():
    x = Tensor(np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"linear: x has 3 input features but weight is "
                                         r"\(out, in\) = \(4, 2\)"):
        F.linear(x, Tensor(np.ones((4, 2))))
    with pytest.raises(ValueError, match=r"linear: bias shape \(3,\) does not match "
                                         r"out_features 4"):
        F.linear(x, Tensor(np.ones((4, 3))), Tensor(np.ones(3)))
    with pytest.raises(ValueError, match=r"linear: weight must be 2-d"):
        F.linear(x, Tensor(np.ones(3)))


def test_other_shape_errors():
    x = Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"layer_norm: weight shape \(2,\) does not match the "
                                         r"normalised size 3"):
        F.layer_norm(x, Tensor(np.ones(2)), Tensor(np.ones(2)))
    with pytest.raises(ValueError, match="give both weight and bias"):
        F.layer_norm(x, Tensor(np.ones(3)))
    with pytest.raises(ValueError, match=r"no_norm: residual shape \(3,\) differs"):
        F.no_norm(x, Tensor(np.ones(3)), Tensor(np.ones(3)), residual=Tensor(np.ones(3)))
    with pytest.raises(ValueError, match=r"stack: tensor 1 has shape \(3,\), tensor 0 has"):
        F.stack([x, Tensor(np.ones(3))])
    with pytest.raises(ValueError, match="split: axis of size 3 does not divide into 2"):
        F.split(x, 2, axis=1)
    with pytest.raises(ValueError, match=r"split: sizes \[1, 1\] do not add up"):
        F.split(x, [1, 1], axis=1)
    with pytest.raises(ValueError, match="pad: pad_width"):
        F.pad(x, [(1, 1)])
    with pytest.raises(ValueError, match="permute: axes"):
        x.permute(0, 0)
    with pytest.raises(ValueError, match="axis 2 is out of range for a 2-d tensor"):
        x.sum(axis=2)
    with pytest.raises(ValueError, match="repeated axis"):
        x.mean(axis=(0, -2))
    with pytest.raises(ValueError, match="softmax: an additive mask needs axis=-1"):
        F.softmax(x, axis=0, mask=np.zeros(3))
    with pytest.raises(ValueError, match="var: 1 elements with ddof=1"):
        F.var(Tensor(np.ones((1, 3))), axis=0, ddof=1)
    with pytest.raises(TypeError, match="where: cond must be a boolean mask, got int64"):
        F.where(np.array([1, 0, 1]), x, 0.0)
    with pytest.raises(ValueError, match=r"getitem: .* shape \(2, 3\)"):
        x[5]


def test_cross_entropy_bad_targets():
    logits = leaf(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"cross_entropy: a target is outside \[0, 3\) and is "
                                         r"not ignore_index=-100"):
        F.cross_entropy(logits, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        F.cross_entropy(logits, np.array([-1, 0]))
    with pytest.raises(ValueError, match=r"class targets must have shape \(2,\)"):
        F.cross_entropy(logits, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"soft targets must have the logits' shape"):
        F.cross_entropy(logits, np.ones((2, 2)) / 2)
    with pytest.raises(ValueError, match="reduction must be mean, sum or none, got 'avg'"):
        F.cross_entropy(logits, np.array([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got 1.5"):
        F.cross_entropy(logits, np.array([0, 1]), label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got -0.1"):
        F.cross_entropy(logits, np.ones((2, 3)) / 3, label_smoothing=-0.1)


def test_embedding_bad_ids():
    w = leaf(np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"embedding: ids must lie in \[0, 5\), got values in "
                                         r"\[0, 5\]"):
        F.embedding(np.array([0, 5]), w)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 5\), got values in \[-1, 2\]"):
        F.embedding(np.array([2, -1]), w)
    with pytest.raises(TypeError, match="embedding: ids must be integers, got float64"):
        F.embedding(np.array([0.0, 1.0]), w)


def test_backward_casts_the_given_grad_to_the_output_dtype():
    for g in (np.ones(2), Tensor(np.ones(2)), [1.0, 1.0]):
        x = leaf([1.0, 2.0], np.float32)
        (x * 2.0).backward(g)
        assert x.grad.dtype == np.float32
        np.testing.assert_array_equal(x.grad, [2.0, 2.0])


def test_backward_errors():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).sum().backward()
    x = leaf([1.0, 2.0])
    with pytest.raises(ValueError, match=r"grad can be omitted only for a one-element output"):
        (x * 2.0).backward()
    with pytest.raises(ValueError, match=r"grad has shape \(3,\), output has \(2,\)"):
        (x * 2.0).backward(np.ones(3))


# --- graph recording -----------------------------------------------------------------------------

def test_requires_grad_propagates():
    a, b = leaf([1.0]), Tensor(np.array([2.0]))
    assert (a * b).requires_grad and (b * a).requires_grad
    assert not (b * b).requires_grad and (b * b).is_leaf
    y = a * b
    assert not y.is_leaf and a.is_leaf
    assert not y.detach().requires_grad and y.detach().is_leaf
    np.testing.assert_array_equal(y.detach().numpy(), y.numpy())
    y.sum().backward()
    assert b.grad is None
    np.testing.assert_array_equal(a.grad, [2.0])


def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        y = F.softmax(x * 2.0 + 1.0)
        with enable_grad():
            z = x * 3.0
        assert not is_grad_enabled()
    assert is_grad_enabled()
    assert not y.requires_grad and y._ctx is None
    assert z.requires_grad and z._ctx is not None

    @no_grad()
    def f(t):
        return t.exp()

    assert f(x)._ctx is None and is_grad_enabled()
    with pytest.raises(KeyError), no_grad():
        raise KeyError("restored after an exception")
    assert is_grad_enabled()


# --- backward semantics --------------------------------------------------------------------------

UNARY = {
    "exp": (F.exp, np.exp),
    "tanh": (F.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "square": (lambda t: t * t, lambda x: 2 * x),
    "sigmoid": (F.sigmoid, lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2),
    "cube": (lambda t: t ** 3, lambda x: 3 * x ** 2),
}


def _grad(fn, x):
    t = leaf(x)
    fn(t).sum().backward()
    return t.grad


@given(data=st.data(), shape=shapes, f=st.sampled_from(sorted(UNARY)),
       g=st.sampled_from(sorted(UNARY)))
def test_gradient_of_a_sum_is_the_sum_of_gradients(data, shape, f, g):
    x = data.draw(arrays(shape, floats(-2.0, 2.0)))
    (fa, da), (ga, dg) = UNARY[f], UNARY[g]
    both = _grad(lambda t: fa(t) + ga(t), x)
    np.testing.assert_allclose(both, _grad(fa, x) + _grad(ga, x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(both, da(x) + dg(x), rtol=1e-10, atol=1e-12)


@given(data=st.data(), shape=shapes)
def test_a_graph_used_twice_accumulates(data, shape):
    x = data.draw(arrays(shape, floats(-2.0, 2.0)))
    t = leaf(x)
    (t * t).sum().backward()                                   # x * x: 2x
    np.testing.assert_allclose(t.grad, 2 * x)
    t = leaf(x)
    y = t.exp()                                                # a shared sub-graph
    (y * y + y).sum().backward()
    np.testing.assert_allclose(t.grad, (2 * np.exp(x) + 1) * np.exp(x), rtol=1e-12)
    t = leaf(x)
    (t * 2.0 + t * 3.0 - t).sum().backward()                   # one tensor, three branches
    np.testing.assert_allclose(t.grad, np.full(x.shape, 4.0))
    t = leaf(x)
    h = F.tanh(t)                                              # a diamond
    ((h * 2.0) * (h + 1.0)).sum().backward()
    np.testing.assert_allclose(t.grad, (4 * np.tanh(x) + 2) * (1 - np.tanh(x) ** 2),
                               rtol=1e-10, atol=1e-12)


def test_grad_accumulates_across_backward_calls_on_leaves():
    x = leaf([1.0, 2.0])
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0 + 2.0, 3.0 + 4.0])
    x.grad = None
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_non_leaf_gradients_only_with_retain_grad():
    x = leaf([1.0, 2.0])
    y = x * 3.0
    z = y * y
    z.sum().backward()
    assert y.grad is None and z.grad is None
    x = leaf([1.0, 2.0])
    y = x * 3.0
    y.retain_grad()
    (y * y).sum().backward()
    np.testing.assert_array_equal(y.grad, 2 * np.array([3.0, 6.0]))
    np.testing.assert_array_equal(x.grad, 3 * y.grad)
    y2 = x * 1.0
    y2.retain_grad()
    (y2 + y2).sum().backward()                                 # retained and used twice
    np.testing.assert_array_equal(y2.grad, [2.0, 2.0])


def test_graph_is_freed_after_backward_unless_retain_graph():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    assert y._ctx.parents is None                              # saved arrays released
    with pytest.raises(RuntimeError, match="already freed by an earlier backward; pass "
                                           "retain_graph=True"):
        y.backward()
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad, [4.0, 8.0])
    x = leaf([1.0, 2.0])
    h = x * 2.0                                                # a freed sub-graph is detected
    h.sum().backward()
    with pytest.raises(RuntimeError, match="already freed"):
        (h * 3.0).sum().backward()


def _recursion_headroom(extra: int) -> int:
    return len(inspect.stack(0)) + extra


def test_backward_through_a_5000_op_chain_does_not_recurse():
    x = leaf([0.5, -0.25])
    y = x
    for _ in range(5000):
        y = y + 0.001
    y = y.sum()
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(_recursion_headroom(150))        # far below the chain's depth
    try:
        y.backward()
    finally:
        sys.setrecursionlimit(old)
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


def test_a_deep_graph_of_100k_nodes_finishes():
    x = leaf(np.ones(4))
    y = x
    for _ in range(50_000):
        y = F.tanh(y) * 1.0                                # 100k op nodes
    y.sum().backward()
    assert x.grad.shape == (4,) and np.isfinite(x.grad).all()
    z = x                                                  # dropping an unused deep graph is
    for _ in range(100_000):                               # fine too (no recursive __del__)
        z = z + 1.0
    del z


def test_backward_is_deterministic():
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((3, 4))

    def run():
        t = leaf(xs)
        h = F.tanh(t)
        (F.softmax(h * t, axis=0) * h + h.sum(axis=0) * t).sum().backward()
        return t.grad

    np.testing.assert_array_equal(run(), run())


# --- leaf gradients are never aliased ------------------------------------------------------------

def test_leaf_gradients_are_not_aliased_to_each_other():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).sum().backward()
    a.grad += 1
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])

    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).backward(np.array([5.0, 6.0]))
    a.grad += 1
    np.testing.assert_array_equal(b.grad, [5.0, 6.0])

    a, b = leaf(np.ones((2, 3))), leaf(np.ones(6))             # b gets a reshape (a view) of
    ((a + b.reshape(2, 3)) * 2.0).sum().backward()             # the array that a got
    a.grad += 1
    np.testing.assert_array_equal(b.grad, np.full(6, 2.0))

    x, r, w = leaf(np.ones(3)), leaf(np.ones(3)), leaf(np.ones(3))
    (F.no_norm(x, w, w, residual=r) * 3.0).sum().backward()    # one array for x and residual
    x.grad += 1
    np.testing.assert_array_equal(r.grad, np.full(3, 3.0))


def test_leaf_gradient_is_not_aliased_to_the_callers_grad_or_a_retained_grad():
    x = leaf([1.0, 2.0])
    g = np.array([1.0, 1.0])
    (x + 0.0).backward(g)
    g += 5
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])
    x = leaf([1.0, 2.0])
    x.backward(g)                                              # a leaf as the root
    g += 5
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    y = a + b
    y.retain_grad()
    (y * 2.0).sum().backward()
    y.grad += 1
    np.testing.assert_array_equal(a.grad, [2.0, 2.0])
    np.testing.assert_array_equal(b.grad, [2.0, 2.0])


@settings(max_examples=25)
@given(data=st.data(), shape=small_shapes)
def test_no_two_leaf_gradients_share_memory(data, shape):
    xs = [leaf(data.draw(arrays(shape))) for _ in range(4)]
    a, b, c, d = xs
    out = F.concat([a, b.reshape(shape)], axis=0) * 2.0
    out = out + F.concat([c, d], axis=0) + F.stack([a, d]).sum(axis=0).reshape(shape).sum()
    out.backward(np.ones(out.shape))
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.shares_memory(xs[i].grad, xs[j].grad), (i, j)
