"""Distillation and pre-training losses against plain-NumPy formulas (spec section 4), their
float64 gradients, and their error messages."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

from autograd import Tensor, gradcheck
from tinybert_core.distillation import losses as L
from tinybert_core.models.heads import masked_lm_loss

rng = np.random.default_rng(0)


def t(*shape, grad=True):
    return Tensor(rng.standard_normal(shape), requires_grad=grad)


def np_log_softmax(x):
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def np_ln(x, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(-1, keepdims=True) + eps)


def test_feature_map_transfer_matches_mse_and_google_form():
    s, tt = t(2, 3, 8), t(2, 3, 8, grad=False)
    np.testing.assert_allclose(L.feature_map_transfer_loss(s, tt).item(),
                               ((s.numpy() - tt.numpy()) ** 2).mean(), rtol=1e-12)
    np.testing.assert_allclose(L.feature_map_transfer_loss(s, tt, normalize=True).item(),
                               ((np_ln(s.numpy()) - np_ln(tt.numpy())) ** 2).mean(), rtol=1e-10)
    mask = np.array([[1, 1, 0], [1, 0, 0]])
    sq = ((s.numpy() - tt.numpy()) ** 2)[mask.astype(bool)]
    np.testing.assert_allclose(L.feature_map_transfer_loss(s, tt, attention_mask=mask).item(),
                               sq.mean(), rtol=1e-12)
    assert gradcheck(lambda a: L.feature_map_transfer_loss(a, tt, normalize=True), s)
    assert gradcheck(lambda a: L.feature_map_transfer_loss(a, tt, attention_mask=mask), s)


def test_teacher_gets_no_gradient():
    s, tt = t(2, 3, 4), t(2, 3, 4)
    L.feature_map_transfer_loss(s, tt).backward()
    assert s.grad is not None and tt.grad is None


def test_attention_transfer_is_mean_kl_per_head():
    s, tt = t(2, 4, 3, 5), t(2, 4, 3, 5, grad=False)
    lp_s, lp_t = np_log_softmax(s.numpy()), np_log_softmax(tt.numpy())
    expected = (np.exp(lp_t) * (lp_t - lp_s)).sum(-1).mean()
    np.testing.assert_allclose(L.attention_transfer_loss(s, tt).item(), expected, rtol=1e-10)
    assert abs(L.attention_transfer_loss(tt, tt).item()) < 1e-12
    assert gradcheck(lambda a: L.attention_transfer_loss(a, tt), s)


def test_attention_transfer_with_large_negative_mask_is_finite():
    mask = np.zeros((1, 1, 1, 5))
    mask[..., 3:] = np.finfo(np.float64).min
    s = Tensor(rng.standard_normal((1, 2, 5, 5)) + mask, requires_grad=True)
    tt = Tensor(rng.standard_normal((1, 2, 5, 5)) + mask)
    loss = L.attention_transfer_loss(s, tt)
    loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(s.grad).all()


def test_hidden_distribution_terms():
    s, tt = t(2, 3, 6), t(2, 3, 6, grad=False)
    beta, gamma = L.hidden_distribution_loss(s, tt)
    np.testing.assert_allclose(beta.item(),
                               ((s.numpy().mean(-1) - tt.numpy().mean(-1)) ** 2).mean(), rtol=1e-12)
    np.testing.assert_allclose(gamma.item(),
                               np.abs(s.numpy().var(-1) - tt.numpy().var(-1)).mean(), rtol=1e-12)
    assert gradcheck(lambda a: L.hidden_distribution_loss(a, tt)[0], s)


def test_pretraining_distillation_combines_mlm_kd_nsp():
    s, tt = t(2, 4, 7), t(2, 4, 7, grad=False)
    labels = np.array([[-100, 3, -100, 0], [6, -100, -100, -100]])
    nsp, nsp_labels = t(2, 2), np.array([0, 1])
    out = L.pretraining_distillation_loss(s, tt, labels, nsp, nsp_labels, alpha=0.3,
                                          temperature=2.0)
    keep = labels.reshape(-1) != -100
    ls = np_log_softmax(s.numpy().reshape(-1, 7)[keep])
    mlm = -ls[np.arange(3), labels.reshape(-1)[keep]].mean()
    ls_t = np_log_softmax(s.numpy().reshape(-1, 7)[keep] / 2)
    lt_t = np_log_softmax(tt.numpy().reshape(-1, 7)[keep] / 2)
    kd = 4 * (np.exp(lt_t) * (lt_t - ls_t)).sum(-1).mean()
    lnsp = np_log_softmax(nsp.numpy())
    nsp_loss = -lnsp[[0, 1], nsp_labels].mean()
    np.testing.assert_allclose(out["mlm"].item(), mlm, rtol=1e-10)
    np.testing.assert_allclose(out["kd"].item(), kd, rtol=1e-10)
    np.testing.assert_allclose(out["loss"].item(), 0.3 * mlm + 0.7 * kd + nsp_loss, rtol=1e-10)
    assert gradcheck(lambda a: L.pretraining_distillation_loss(a, tt, labels, alpha=0.5)["loss"],
                     s)
    with pytest.raises(ValueError, match="alpha must be in"):
        L.pretraining_distillation_loss(s, tt, labels, alpha=1.5)


def test_masked_lm_loss_on_gathered_predictions_skips_padded_slots():
    # Google's form: masked_lm_ids (B, P) with 0/1 weights for padded prediction slots; the one
    # MLM loss takes them as labels with -100 where the weight is 0 (PretrainingBatch's form).
    logits = t(2, 3, 5)
    ids = np.array([[1, 2, 0], [4, 0, 0]])
    w = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    labels = np.where(w > 0, ids, -100)
    ls = np_log_softmax(logits.numpy())
    ce = -np.take_along_axis(ls, ids[..., None], -1)[..., 0]
    expected = (ce * w).sum() / w.sum()
    np.testing.assert_allclose(masked_lm_loss(logits, labels).item(), expected, rtol=1e-10)
    np.testing.assert_allclose(masked_lm_loss(logits, labels, reduction="none").numpy(), ce * w,
                               rtol=1e-10)
    assert gradcheck(lambda a: masked_lm_loss(a, labels), logits)


class Out(NamedTuple):
    hidden_states: tuple
    attention_scores: tuple


def _outputs(layers, grad):
    return Out(tuple(t(2, 3, 4, grad=grad) for _ in range(layers + 1)),
               tuple(t(2, 2, 3, 3, grad=grad) for _ in range(layers)))


def test_layer_wise_transfer_sums_selected_layers_with_factors():
    s, te = _outputs(3, True), _outputs(3, False)
    out = L.layer_wise_transfer_loss(s, te, layers=[1, 3], fmt_factor=100, at_factor=1,
                                     beta_factor=5000, gamma_factor=5, normalize_fmt=True,
                                     scale=1 / 3)
    fmt = sum(L.feature_map_transfer_loss(s.hidden_states[i], te.hidden_states[i], True).item()
              for i in (1, 3))
    at = sum(L.attention_transfer_loss(s.attention_scores[i], te.attention_scores[i]).item()
             for i in (0, 2))
    beta = sum(L.hidden_distribution_loss(s.hidden_states[i], te.hidden_states[i])[0].item()
               for i in (1, 3))
    gamma = sum(L.hidden_distribution_loss(s.hidden_states[i], te.hidden_states[i])[1].item()
                for i in (1, 3))
    np.testing.assert_allclose(out["loss"].item(),
                               (100 * fmt + at + 5000 * beta + 5 * gamma) / 3, rtol=1e-10)
    out["loss"].backward()
    assert s.hidden_states[2].grad is None and s.hidden_states[3].grad is not None


def test_layer_wise_transfer_rejects_mismatched_models():
    with pytest.raises(ValueError, match="student has 3 blocks, teacher has 2"):
        L.layer_wise_transfer_loss(_outputs(3, True), _outputs(2, False), layers=[1])
    with pytest.raises(ValueError, match="layer 4 is outside 1..3"):
        L.layer_wise_transfer_loss(_outputs(3, True), _outputs(3, False), layers=[4])
    with pytest.raises(ValueError, match=r"student shape \(2, 3, 4\) differs from teacher shape "
                                         r"\(2, 3, 5\)"):
        L.feature_map_transfer_loss(t(2, 3, 4), t(2, 3, 5))
