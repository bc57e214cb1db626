"""`num_items`, the count the masked-token means divide by (models/heads.py `masked_lm_loss`,
distillation/losses.py `pretraining_distillation_loss`): averaging the losses of the parts of a
batch, each divided by the average count, gives the loss of the whole batch and its gradient,
which is what gradient accumulation and data-parallel processes rely on."""
from __future__ import annotations

import numpy as np
import pytest

from autograd import Tensor
from tinybert_core.distillation.losses import pretraining_distillation_loss
from tinybert_core.models.heads import IGNORE_INDEX, masked_lm_loss

rng = np.random.default_rng(0)
B, P, V = 4, 5, 7
LOGITS = rng.standard_normal((B, P, V))
TEACHER = rng.standard_normal((B, P, V))
NSP = rng.standard_normal((B, 2))
NSP_LABELS = np.array([0, 1, 1, 0])
LABELS = rng.integers(0, V, size=(B, P))
LABELS[0, 1:] = IGNORE_INDEX          # rows with 1, 5, 3 and 2 predictions: uneven halves
LABELS[2, 3:] = IGNORE_INDEX
LABELS[3, 2:] = IGNORE_INDEX
HALVES = (slice(0, 2), slice(2, 4))


def _pd(logits, teacher, labels, nsp, nsp_labels, num_items=None):
    return pretraining_distillation_loss(logits, teacher, labels, nsp, nsp_labels, alpha=0.3,
                                         temperature=2.0, num_items=num_items)


def _grads(loss_of_parts):
    """Loss and d loss / d logits of the average over the halves of `loss_of_parts(half)`."""
    logits = Tensor(LOGITS.copy(), requires_grad=True)
    total = None
    for half in HALVES:
        part = loss_of_parts(logits[half], half) * (1.0 / len(HALVES))
        total = part if total is None else total + part
    total.backward()
    return total.item(), logits.grad


@pytest.mark.parametrize("which", ["mlm", "pd"])
def test_halves_divided_by_the_average_count_give_the_whole_batch(which):
    count = int((LABELS != IGNORE_INDEX).sum())
    if which == "mlm":
        def loss(logits, rows, num_items=None):
            return masked_lm_loss(logits, LABELS[rows], num_items=num_items)
    else:
        def loss(logits, rows, num_items=None):
            return _pd(logits, Tensor(TEACHER[rows]), LABELS[rows], Tensor(NSP[rows]),
                       NSP_LABELS[rows], num_items)["loss"]
    logits = Tensor(LOGITS.copy(), requires_grad=True)
    whole = loss(logits, slice(None))
    whole.backward()
    parts, parts_grad = _grads(lambda lg, half: loss(lg, half, num_items=count / len(HALVES)))
    np.testing.assert_allclose(parts, whole.item(), rtol=1e-12)
    np.testing.assert_allclose(parts_grad, logits.grad, rtol=1e-12, atol=1e-15)
    # Without num_items the halves' own means are averaged: a different loss.
    naive, _ = _grads(lambda lg, half: loss(lg, half))
    assert abs(naive - whole.item()) > 1e-3


def test_num_items_equal_to_the_count_changes_nothing():
    logits = Tensor(LOGITS)
    count = int((LABELS != IGNORE_INDEX).sum())
    plain = masked_lm_loss(logits, LABELS)
    assert masked_lm_loss(logits, LABELS, num_items=float(count)).item() == plain.item()
    pd = _pd(logits, Tensor(TEACHER), LABELS, Tensor(NSP), NSP_LABELS)
    pd_n = _pd(logits, Tensor(TEACHER), LABELS, Tensor(NSP), NSP_LABELS, count)
    assert all(pd_n[k].item() == pd[k].item() for k in pd)
    with pytest.raises(ValueError, match="num_items must be positive"):
        masked_lm_loss(logits, LABELS, num_items=0)
