"""What every op owes the engine: gradients for any subset of inputs that require them,
agreement with PyTorch where it is installed, and no silent float32 -> float64 upcast.

Written with the public kit, autograd.testing: forward against an independent plain-NumPy
`*_expected` (op_references.py), backward by float64 `assert_gradients`, over hypothesis-drawn
shapes (Chainer's op-test pattern).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_references import log_softmax_expected

import autograd.functional as F
from autograd import Tensor
from autograd.testing import assert_gradients, leaf
from autograd.testing.strategies import (
    arrays,
    floats,
    small_shapes,
)


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
            assert_gradients(fn, *ts)
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
