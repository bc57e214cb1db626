"""Fake quantization (autograd/ops/quantize.py): its values against an independent NumPy
expectation and, bit for bit, against the int8 path's own codes; its straight-through gradient
gradchecked where a derivative exists.

The op is a staircase, so its true derivative is 0 wherever it exists and gradcheck of the op
itself can only pass in the clipped region (checked). The straight-through gradient is the
exact derivative of the surrogate clip(x, (qmin - z - 1/2) s, (qmax - z + 1/2) s): a subclass
that keeps the op's backward and swaps its forward for that surrogate is gradchecked in
float64 over hypothesis-drawn shapes, with per-channel scales broadcast against x.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import autograd.functional as F
from autograd import Tensor
from autograd.ops.quantize import FakeQuantize
from autograd.testing import assert_forward, assert_gradients, leaf
from autograd.testing.strategies import floats, nonscalar_shapes, shapes
from backends import numba_quantize, reference
from tinybert_core.quantization.modules import quantize_weight


def fake_quantize_expected(x, scale, zero_point, qmin, qmax):
    """Element by element in Python floats (round half to even, as np.rint)."""
    x, s, z = np.broadcast_arrays(np.asarray(x, np.float64), scale, zero_point)
    out = np.empty(x.shape)
    for i in np.ndindex(x.shape):
        code = min(max(round(x[i] / s[i]) + z[i], qmin), qmax)
        out[i] = (code - z[i]) * s[i]
    return out


@st.composite
def broadcast_to(draw, shape):
    """A shape that broadcasts to exactly `shape` (per tensor, per row, per channel, ...)."""
    out = tuple(n if draw(st.booleans()) else 1 for n in shape)
    return out[draw(st.integers(0, len(out))):]


@st.composite
def quantizer(draw, shape):
    """(qmin, qmax, scale, zero_point, codes, x): a small code range so clipping happens,
    scales and zero points broadcast against `shape`, and x = (codes - z + u) s with |u| <= 0.4:
    every x at least 0.1 s from a rounding boundary and from the surrogate's kinks."""
    qmin = draw(st.integers(-4, 0))
    qmax = draw(st.integers(qmin + 1, qmin + 6))
    scale = draw(hnp.arrays(np.float64, draw(broadcast_to(shape)), elements=floats(0.05, 2.0)))
    zero_point = draw(hnp.arrays(np.int64, draw(broadcast_to(shape)),
                                 elements=st.integers(qmin, qmax)))
    codes = draw(hnp.arrays(np.int64, shape, elements=st.integers(qmin - 3, qmax + 3)))
    u = draw(hnp.arrays(np.float64, shape, elements=floats(-0.4, 0.4)))
    return qmin, qmax, scale, zero_point, codes, (codes - zero_point + u) * scale


class SurrogateClip(FakeQuantize):
    """FakeQuantize's backward under the surrogate forward clip(x, lo, hi) it is the
    derivative of."""

    def forward(self, x, scale, zero_point, qmin, qmax):
        super().forward(x, scale, zero_point, qmin, qmax)        # sets what backward reads
        lo, hi = (qmin - zero_point - 0.5) * scale, (qmax - zero_point + 0.5) * scale
        return np.clip(x, lo, hi)


@given(data=st.data(), shape=shapes)
def test_forward_matches_elementwise_reference(data, shape):
    qmin, qmax, scale, zp, _, x = data.draw(quantizer(shape))
    assert_forward(F.fake_quantize(leaf(x), scale, zp, qmin, qmax),
                   fake_quantize_expected(x, scale, zp, qmin, qmax))


@given(data=st.data(), shape=shapes)
def test_straight_through_gradient_is_the_surrogate_clips_derivative(data, shape):
    qmin, qmax, scale, zp, codes, x = data.draw(quantizer(shape))
    attrs = dict(scale=scale, zero_point=zp, qmin=qmin, qmax=qmax)
    assert_gradients(lambda u: SurrogateClip.apply(u, **attrs), leaf(x))
    # and the op's own gradient is that mask: 1 where the unclipped code is in range
    t = leaf(x)
    F.fake_quantize(t, scale, zp, qmin, qmax).sum().backward()
    np.testing.assert_array_equal(t.grad, ((codes >= qmin) & (codes <= qmax)).astype(float))


@given(data=st.data(), shape=nonscalar_shapes)
def test_gradcheck_of_the_op_itself_in_the_clipped_region(data, shape):
    """Where every code is clipped the op is constant: its true derivative (0) exists, and
    the straight-through gradient equals it."""
    qmin, qmax, scale, zp, codes, x = data.draw(quantizer(shape))
    outside = np.where(codes > qmax, codes, np.minimum(codes, qmin - 1))
    x = (outside - zp + (x / scale - codes + zp)) * scale      # same offsets u, codes outside
    assert_gradients(lambda u: F.fake_quantize(u, scale, zp, qmin, qmax), leaf(x))


# --- bit for bit with the int8 path ---------------------------------------------------------------

@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("qmax", [255, 127])
@pytest.mark.parametrize("quantize", [reference.quantize_u8, numba_quantize.quantize_u8],
                         ids=["reference", "numba"])
def test_fake_quantized_activations_equal_the_dequantized_int8_codes(quantize, qmax, per_row):
    rng = np.random.default_rng(qmax + per_row)
    x = (rng.standard_normal((3, 7, 33)) * rng.uniform(0.1, 5.0, (3, 7, 1))).astype(np.float32)
    x[0, 0, :5] = 0.0                                         # exact zeros stay exact
    x[1] = np.abs(x[1])                                       # rows that do not hold 0
    codes, scale, zp = quantize(x, qmax, per_row)
    if per_row:
        scale, zp = scale[..., None], zp[..., None]
    dequantized = (codes.astype(np.float32) - np.float32(zp)) * scale
    y = F.fake_quantize(Tensor(x), scale, zp, 0, qmax)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), dequantized)
    assert np.array_equal(y.numpy().view(np.int32), dequantized.view(np.int32))  # same bits


@pytest.mark.parametrize("axis", [1, 0])
def test_fake_quantized_weights_equal_quantize_weight(axis):
    rng = np.random.default_rng(axis)
    w = (rng.standard_normal((24, 40)) * rng.uniform(1e-3, 1.0, (24, 1))).astype(np.float32)
    w[3] = 0.0                                                 # an all-zero channel: scale 1
    q, scale = quantize_weight(w, axis=axis)
    y = F.fake_quantize(Tensor(w), scale, 0, -127, 127)
    np.testing.assert_array_equal(y.numpy(), q.astype(np.float32) * scale)


def test_matches_torch_fake_quantize():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((6, 9)) * 3).astype(np.float32)
    scale = rng.uniform(0.02, 0.2, 6).astype(np.float32)
    zp = rng.integers(0, 256, 6)
    t = Tensor(x, requires_grad=True)
    F.fake_quantize(t, scale[:, None], zp[:, None], 0, 255).sum().backward()
    tt = torch.tensor(x, requires_grad=True)
    ref = torch.fake_quantize_per_channel_affine(tt, torch.tensor(scale), torch.tensor(zp,
                                                 dtype=torch.int32), 0, 0, 255)
    ref.sum().backward()
    np.testing.assert_allclose(F.fake_quantize(Tensor(x), scale[:, None], zp[:, None], 0,
                                               255).numpy(), ref.detach().numpy(), rtol=1e-6,
                               atol=1e-6)
    np.testing.assert_array_equal(t.grad, tt.grad.numpy())
    assert 0 < t.grad.sum() < t.grad.size                     # both regions were exercised
    # and the replay rule (autograd/torch_replay.py) reproduces output and gradient
    from autograd.crosscheck import against_torch
    check = against_torch(lambda u: F.fake_quantize(u * 1.5, scale[:, None], zp[:, None], 0,
                                                    255), leaf(x))
    assert check.passed, check


@pytest.mark.parametrize("scale, zero_point, qmin, qmax, match", [
    (np.ones(4), 0, 0, 255, "scale of shape"),
    (np.ones((3, 1)), np.zeros((1, 2)), 0, 255, "zero_point of shape"),
    (0.0, 0, 0, 255, "finite and > 0"),
    (np.nan, 0, 0, 255, "finite and > 0"),
    (1.0, 0, 5, 5, "qmin < qmax"),
])
def test_bad_arguments_are_one_line_errors(scale, zero_point, qmin, qmax, match):
    with pytest.raises(ValueError, match=match):
        F.fake_quantize(Tensor(np.zeros((3, 5))), scale, zero_point, qmin, qmax)
