"""Numerical stability: huge logits, -inf masks and saturated activations stay finite.

softmax, log_softmax and cross_entropy on logits of magnitude 1e4 and with -inf masks give finite
values wherever the mathematical value is finite, and finite gradients; a fully masked softmax
row is zeros rather than NaN; sigmoid saturates cleanly at +-1e4. Chainer's softmax tests keep a
"numerical stability" input for the same reason.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import autograd.functional as F
from autograd import Tensor, gradcheck
from autograd.testing.strategies import arrays, floats

BIG = 1e4


def leaf(x, dtype=np.float64) -> Tensor:
    return Tensor(np.array(x, dtype=dtype), requires_grad=True)


def backward_finite(out: Tensor, *leaves: Tensor) -> None:
    """out's values are finite and so are the gradients it sends to `leaves`."""
    assert np.isfinite(out.numpy()).all(), out.numpy()
    g = np.random.default_rng(0).standard_normal(out.shape).astype(out.dtype)
    out.backward(g)
    for t in leaves:
        assert t.grad is not None
        assert np.isfinite(t.grad).all(), t.grad


DTYPES = [np.float32, np.float64]


# --- huge logits ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=5))
def test_softmax_and_log_softmax_on_huge_logits(dtype, data, shape):
    x = data.draw(arrays(shape, floats(-1.0, 1.0))) * BIG
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    t = leaf(x, dtype)
    y = F.softmax(t, axis=axis)
    backward_finite(y, t)
    np.testing.assert_allclose(y.numpy().sum(axis=axis), 1.0, rtol=1e-5)
    t = leaf(x, dtype)
    backward_finite(F.log_softmax(t, axis=axis), t)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_of_huge_logits_exact_values(dtype):
    t = leaf([[BIG, -BIG, BIG], [-BIG, -BIG, -BIG + 100.0]], dtype)
    y = F.softmax(t)
    np.testing.assert_allclose(y.numpy(), [[0.5, 0.0, 0.5],
                                           [0.0, 0.0, 1.0]], atol=1e-4)
    ls = F.log_softmax(t)
    np.testing.assert_allclose(ls.numpy()[0], [-np.log(2), -2 * BIG - np.log(2), -np.log(2)],
                               rtol=1e-6)
    backward_finite(ls, t)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_on_huge_logits(dtype, reduction, smoothing):
    logits = np.array([[BIG, -BIG, 0.0], [-BIG, -BIG, BIG], [0.0, BIG, -BIG]])
    target = np.array([0, 0, 2])                     # loss 0, 2e4, 2e4 (smoothing adds eps terms)
    t = leaf(logits, dtype)
    loss = F.cross_entropy(t, target, reduction=reduction, label_smoothing=smoothing)
    backward_finite(loss, t)
    if smoothing == 0.0:
        rows = np.array([0.0, 2 * BIG, 2 * BIG])
        expected = {"mean": rows.mean(), "sum": rows.sum(), "none": rows}[reduction]
        np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_soft_targets_on_huge_logits(dtype):
    logits = leaf([[BIG, -BIG, 0.0], [-BIG, 0.0, BIG]], dtype)
    soft = np.array([[0.7, 0.1, 0.2], [0.0, 0.5, 0.5]], dtype=dtype)
    backward_finite(F.cross_entropy(logits, soft), logits)


# --- -inf masks ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=2, max_dims=3, max_side=5),
       scale=st.sampled_from([1.0, 0.125]))
def test_softmax_with_minus_inf_mask(dtype, data, shape, scale):
    x = data.draw(arrays(shape, floats(-BIG, BIG)))
    keep = data.draw(hnp.arrays(np.bool_, shape[-1:]))
    mask = np.where(keep, 0.0, -np.inf)
    t = leaf(x, dtype)
    y = F.softmax(t, scale=scale, mask=mask)
    backward_finite(y, t)
    out = y.numpy()
    assert (out[..., ~keep] == 0).all()
    sums = out.sum(axis=-1)
    np.testing.assert_allclose(sums, 1.0 if keep.any() else 0.0, rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fully_masked_softmax_rows_are_zero_not_nan(dtype):
    x = leaf(np.arange(12.0).reshape(2, 2, 3), dtype)
    mask = np.array([[0.0, -np.inf, 0.0], [-np.inf, -np.inf, -np.inf]])  # row 1 fully masked
    y = F.softmax(x, mask=mask[:, None, :].repeat(2, axis=1).transpose(1, 0, 2))
    out = y.numpy()
    assert not np.isnan(out).any()
    np.testing.assert_array_equal(out[:, 1], 0.0)
    backward_finite(y, x)
    np.testing.assert_array_equal(x.grad[:, 1], 0.0)
    # The same with the mask already inside the logits (masked_fill with -inf).
    z = leaf(np.full((2, 3), -np.inf), dtype)
    y = F.softmax(z)
    np.testing.assert_array_equal(y.numpy(), 0.0)


def test_softmax_with_mask_gradcheck_float64():
    x = leaf(np.random.default_rng(0).standard_normal((2, 3, 4)))
    mask = np.array([0.0, -np.inf, 0.0, -np.inf])
    gradcheck(lambda u: F.softmax(u, scale=0.5, mask=mask), x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_softmax_with_minus_inf_entries(dtype):
    x = leaf([[0.0, -np.inf, 1.0], [BIG, -np.inf, -BIG]], dtype)
    y = F.log_softmax(x)
    out = y.numpy()
    assert np.isneginf(out[:, 1]).all()                   # log 0, mathematically -inf
    assert np.isfinite(out[:, [0, 2]]).all()
    y[:, [0, 2]].sum().backward()
    assert np.isfinite(x.grad).all()
    np.testing.assert_allclose(x.grad[:, 1], 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_with_minus_inf_masked_classes(dtype, reduction):
    logits = np.array([[2.0, -np.inf, 0.5, -np.inf], [-np.inf, BIG, -BIG, 0.0]])
    t = leaf(logits, dtype)
    loss = F.cross_entropy(t, np.array([0, 1]), reduction=reduction)
    backward_finite(loss, t)
    np.testing.assert_array_equal(t.grad[0, [1, 3]], 0.0)
    # soft targets put no mass on the masked classes: 0 * log 0 counts as 0
    t = leaf(logits, dtype)
    soft = np.array([[0.6, 0.0, 0.4, 0.0], [0.0, 0.5, 0.25, 0.25]], dtype=dtype)
    backward_finite(F.cross_entropy(t, soft, reduction=reduction), t)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_label_smoothing_ignores_masked_ignored_rows(dtype):
    # Row 1 is ignored and holds -inf logits: it must add nothing, not inf * 0 = nan.
    logits = np.array([[2.0, -1.0, 0.5], [-np.inf, 1.0, -np.inf], [0.0, BIG, -BIG]])
    t = leaf(logits, dtype)
    loss = F.cross_entropy(t, np.array([0, -100, 1]), label_smoothing=0.1)
    backward_finite(loss, t)
    np.testing.assert_array_equal(t.grad[1], 0.0)
    # A valid row that puts smoothing mass on a -inf class has an infinite loss, as it should.
    inf_loss = F.cross_entropy(leaf(logits[1:2], dtype), np.array([1]), label_smoothing=0.1)
    assert np.isposinf(inf_loss.item())


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_div_with_minus_inf_log_probabilities(dtype):
    # attention transfer on padded keys: both distributions are 0 where the mask is -inf
    mask = np.array([0.0, 0.0, -np.inf])
    student = leaf(np.array([[1.0, 2.0, 0.5], [BIG, -BIG, 0.0]]), dtype)
    teacher = F.softmax(Tensor(np.array([[0.5, 0.1, 3.0], [1.0, 1.0, 1.0]], dtype=dtype)),
                        mask=mask)
    loss = F.kl_div(F.log_softmax(F.masked_fill(student, mask == -np.inf, -np.inf)), teacher)
    backward_finite(loss, student)
    assert loss.item() >= 0.0


# --- saturated activations ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_and_tanh_saturate_cleanly(dtype):
    t = leaf([-BIG, -100.0, 0.0, 100.0, BIG], dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # no overflow warnings
        y = F.sigmoid(t)
        np.testing.assert_allclose(y.numpy(), [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-30)
        backward_finite(y, t)
    np.testing.assert_allclose(t.grad[[0, 4]], 0.0)
    t = leaf([-BIG, BIG], dtype)
    backward_finite(F.tanh(t), t)
    backward_finite(F.gelu(t) + F.gelu(t, approximate=True), t)


def test_layer_norm_of_a_constant_row_is_finite():
    t = leaf(np.full((2, 4), 3.0))
    backward_finite(F.layer_norm(t, eps=1e-12), t)
