"""Neural-network ops (autograd/ops/nn.py): softmax family, normalisations, dropout, embedding,
losses, and each fused op against its composition.

Written with the public kit, autograd.testing: forward against an independent plain-NumPy
`*_expected` (op_references.py), backward by float64 `assert_gradients`, over hypothesis-drawn
shapes (Chainer's op-test pattern).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from op_references import (
    KERNEL_BACKENDS,
    cross_entropy_expected,
    kl_div_expected,
    layer_norm_expected,
    log_softmax_expected,
    softmax_expected,
)

import autograd.functional as F
from autograd import Tensor
from autograd.testing import (
    assert_forward,
    assert_fused_matches_composite,
    assert_gradients,
    leaf,
)
from autograd.testing.strategies import (
    arrays,
    away_from,
    binary_shapes,
    floats,
    nonscalar_shapes,
    shapes,
    spread_rows,
)


# --- softmax family ------------------------------------------------------------------------------

@given(data=st.data(), shape=nonscalar_shapes)
def test_softmax_any_axis(data, shape):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(arrays(shape, floats(-5.0, 5.0)))
    for device in KERNEL_BACKENDS:
        t = leaf(x, device=device)
        assert_forward(F.softmax(t, axis=axis), softmax_expected(x, axis))
        if axis == -1:
            assert_forward(t.softmax(), softmax_expected(x, axis))
        assert_gradients(lambda u: F.softmax(u, axis=axis), t)


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
    for device in KERNEL_BACKENDS:
        t = leaf(x, device=device)
        out = F.softmax(t, axis=-1, scale=scale, mask=mask)
        assert_forward(out, softmax_expected(x, -1, scale, mask))
        assert_forward(F.softmax(t, scale=scale, mask=Tensor(mask)), out.numpy())
        assert_gradients(lambda u: F.softmax(u, axis=-1, scale=scale, mask=mask), t)


@given(data=st.data(), shape=nonscalar_shapes)
def test_log_softmax_any_axis(data, shape):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(arrays(shape, floats(-5.0, 5.0)))
    for device in KERNEL_BACKENDS:
        t = leaf(x, device=device)
        assert_forward(F.log_softmax(t, axis=axis), log_softmax_expected(x, axis))
        if axis == -1:
            assert_forward(t.log_softmax(), log_softmax_expected(x, axis))
        assert_gradients(lambda u: F.log_softmax(u, axis=axis), t)


# --- normalisations ------------------------------------------------------------------------------

@given(data=st.data(), shape=nonscalar_shapes, affine=st.booleans(),
       eps=st.sampled_from([1e-12, 1e-5]))
def test_layer_norm(data, shape, affine, eps):
    x = spread_rows(data.draw(arrays(shape, floats(-1.0, 1.0))))
    w, b = data.draw(arrays(shape[-1:])), data.draw(arrays(shape[-1:]))
    for device in KERNEL_BACKENDS:
        tx = leaf(x, device=device)
        if affine:
            tw, tb = leaf(w, device=device), leaf(b, device=device)
            assert_forward(F.layer_norm(tx, tw, tb, eps=eps), layer_norm_expected(x, w, b, eps),
                           rtol=1e-9, atol=1e-10)
            assert_gradients(lambda u, v, z: F.layer_norm(u, v, z, eps=eps), tx, tw, tb)
        else:
            assert_forward(F.layer_norm(tx, eps=eps), layer_norm_expected(x, eps=eps),
                           rtol=1e-9, atol=1e-10)
            assert_gradients(lambda u: F.layer_norm(u, eps=eps), tx)


@given(data=st.data(), shape=nonscalar_shapes, residual=st.booleans())
def test_no_norm(data, shape, residual):
    x = data.draw(arrays(shape))
    w, b = data.draw(arrays(shape[-1:])), data.draw(arrays(shape[-1:]))
    r = data.draw(arrays(shape)) if residual else None
    for device in KERNEL_BACKENDS:
        tx, tw, tb = leaf(x, device=device), leaf(w, device=device), leaf(b, device=device)
        if residual:
            tr = leaf(r, device=device)
            assert_forward(F.no_norm(tx, tw, tb, residual=tr), (x + r) * w + b)
            assert_gradients(lambda u, v, z, q: F.no_norm(u, v, z, residual=q), tx, tw, tb, tr)
        else:
            assert_forward(F.no_norm(tx, tw, tb), x * w + b)
            assert_gradients(F.no_norm, tx, tw, tb)


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
    assert_gradients(fn, t)


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
    expected = np.stack([w[i] for i in ids.reshape(-1)]).reshape(ids_shape + (dim,))
    for device in KERNEL_BACKENDS:
        tw = leaf(w, device=device)
        assert_forward(F.embedding(ids, tw), expected)
        assert_forward(F.embedding(Tensor(ids, device=device), tw), expected)
        # gradcheck passes integer inputs through untouched
        assert_gradients(lambda u, i: F.embedding(i, u), tw, Tensor(ids, device=device))


def test_embedding_repeated_ids_accumulate():
    w = leaf(np.zeros((5, 2)))
    ids = np.array([[1, 1, 3], [1, 0, 3]])
    g = np.arange(12.0).reshape(2, 3, 2)
    F.embedding(ids, w).backward(g)
    expected = np.zeros((5, 2))
    for i, row in zip(ids.reshape(-1), g.reshape(-1, 2)):
        expected[i] += row
    np.testing.assert_array_equal(w.grad, expected)


def test_embedding_padding_idx_row_gets_no_gradient():
    """torch's padding_idx: the forward is unchanged; the backward skips that row only."""
    w = leaf(np.arange(10.0).reshape(5, 2))
    ids = np.array([[0, 2, 0], [2, 4, 0]])
    g = np.arange(12.0).reshape(2, 3, 2)
    out = F.embedding(ids, w, padding_idx=0)
    np.testing.assert_array_equal(out.numpy(), w.numpy()[ids])
    out.backward(g)
    expected = np.zeros((5, 2))
    for i, row in zip(ids.reshape(-1), g.reshape(-1, 2)):
        if i != 0:
            expected[i] += row
    np.testing.assert_array_equal(w.grad, expected)
    with pytest.raises(ValueError, match="padding_idx 5 is outside"):
        F.embedding(ids, w, padding_idx=5)


def test_embedding_module_padding_row_starts_at_zero():
    from autograd import nn
    emb = nn.Embedding(6, 3, rng=0, padding_idx=2)
    np.testing.assert_array_equal(emb.weight.numpy()[2], 0)
    assert np.abs(emb.weight.numpy()[[0, 1, 3]]).min() > 0
    assert "padding_idx=2" in repr(emb)


# --- losses --------------------------------------------------------------------------------------

@given(data=st.data(), lead=hnp.array_shapes(min_dims=1, max_dims=2, max_side=4),
       c=st.integers(1, 5), reduction=st.sampled_from(["mean", "sum", "none"]),
       smoothing=st.sampled_from([0.0, 0.1, 0.5]), ignore_index=st.sampled_from([-100, 1]))
def test_cross_entropy_class_targets(data, lead, c, reduction, smoothing, ignore_index):
    logits = data.draw(arrays(lead + (c,), floats(-5.0, 5.0)))
    target = data.draw(hnp.arrays(np.int64, lead, elements=st.sampled_from(
        list(range(c)) + [ignore_index])))
    kwargs = {"ignore_index": ignore_index, "reduction": reduction,
              "label_smoothing": smoothing}
    expected = cross_entropy_expected(logits, target, **kwargs)
    for device in KERNEL_BACKENDS:
        t = leaf(logits, device=device)
        assert_forward(F.cross_entropy(t, target, **kwargs), expected)
        assert_forward(F.cross_entropy(t, Tensor(target, device=device), **kwargs), expected)
        assert_gradients(lambda u: F.cross_entropy(u, target, **kwargs), t)


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
    assert_gradients(lambda u: F.cross_entropy(u, target, **kwargs), t)
    # the soft target may itself be a tensor that requires grad (a student-teacher pair)
    assert_gradients(lambda u, q: F.cross_entropy(u, q, **kwargs), t, leaf(target))


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
    assert_gradients(lambda u: F.kl_div(u, p, reduction=reduction), tq)
    if not with_zeros:                                   # d/dp p log p is infinite at p = 0
        assert_gradients(lambda u, v: F.kl_div(u, v, reduction=reduction), tq, leaf(p))


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
    assert_gradients(lambda u: F.kl_from_logits(u, t), ts)
    assert_gradients(lambda u, v: F.kl_from_logits(u, v), ts, leaf(data.draw(arrays(shape))))
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
    assert_gradients(lambda u, v: F.mse_loss(u, v, reduction=reduction), ta, tb)


# --- fused ops equal their compositions (STYLE: "a test asserts the fused op equals the
#     composite version, forward and backward") --------------------------------------------------

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
    assert_fused_matches_composite(fused, composite, x, rtol=1e-10, atol=1e-12)


def test_no_norm_equals_its_composition():
    rng = np.random.default_rng(2)
    x, r, w, b = (rng.standard_normal(s) for s in [(2, 3, 4), (2, 3, 4), (4,), (4,)])
    # atol 0: the fused kernel computes exactly the products the composition does
    assert_fused_matches_composite(lambda *t: F.no_norm(t[0], t[2], t[3], residual=t[1]),
                                   lambda *t: (t[0] + t[1]) * t[2] + t[3], x, r, w, b,
                                   rtol=1e-12, atol=0.0)
