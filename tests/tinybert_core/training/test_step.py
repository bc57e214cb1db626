"""The one optimizer step (tinybert_core/training/step.py): accumulate -> reduce -> clip ->
update, against plain NumPy, and its refusal to update on a non-finite loss or gradient."""
from __future__ import annotations

import numpy as np
import pytest

import autograd.functional as F
from autograd import Tensor, nn, optim
from tinybert_core.training.step import TrainingDiverged, optimizer_step

rng = np.random.default_rng(0)
X = rng.standard_normal((8, 3))
Y = rng.standard_normal((8, 2))


def make_model():
    model = nn.Linear(3, 2, rng=np.random.default_rng(1), dtype=np.float64)
    return model, optim.SGD(model, lr=0.1)


def mse(model):
    def loss(batch):
        x, y = batch
        out = F.mse_loss(model(Tensor(x)), Tensor(y))
        return {"loss": out, "mse": out}
    return loss


def numpy_grads(model, x, y):
    """d mean((x W^T + b - y)^2) / d(W, b), by hand."""
    w, b = model.weight.numpy(), model.bias.numpy()
    r = 2 * (x @ w.T + b - y) / y.size
    return r.T @ x, r.sum(0)


def test_accumulated_micro_batches_equal_one_step_on_their_mean():
    a, opt_a = make_model()
    b, opt_b = make_model()
    gw, gb = numpy_grads(a, X, Y)
    expected_w = a.weight.numpy() - 0.1 * gw
    out_a = optimizer_step(a, opt_a, [(X, Y)], mse(a), max_grad_norm=0.0)
    out_b = optimizer_step(b, opt_b, [(X[:4], Y[:4]), (X[4:], Y[4:])], mse(b), max_grad_norm=0.0)
    np.testing.assert_allclose(a.weight.numpy(), expected_w, rtol=1e-12)
    np.testing.assert_allclose(b.weight.numpy(), a.weight.numpy(), rtol=1e-12)
    np.testing.assert_allclose(out_a.grad_norm, np.sqrt((gw ** 2).sum() + (gb ** 2).sum()),
                               rtol=1e-12)
    np.testing.assert_allclose(out_b.grad_norm, out_a.grad_norm, rtol=1e-12)
    assert set(out_b.losses) == {"loss", "mse"}
    np.testing.assert_allclose(out_b.losses["loss"], out_a.losses["loss"], rtol=1e-12)
    assert a.weight.grad is None and b.weight.grad is None       # cleared after the update


def test_reduce_hook_runs_after_accumulation_and_before_clipping():
    model, opt = make_model()
    gw, gb = numpy_grads(model, X, Y)
    seen = []

    def halve(m):                     # e.g. the average of two workers, the other sending zeros
        seen.append(m.weight.grad.copy())
        for p in m.parameters():
            p.grad = p.grad * 0.5

    out = optimizer_step(model, opt, [(X[:4], Y[:4]), (X[4:], Y[4:])], mse(model),
                         max_grad_norm=0.0, reduce_gradients=halve)
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], gw, rtol=1e-12)               # the full accumulation
    np.testing.assert_allclose(out.grad_norm, 0.5 * np.sqrt((gw ** 2).sum() + (gb ** 2).sum()),
                               rtol=1e-12)


def test_clipping_scales_the_update_to_the_max_norm():
    model, opt = make_model()
    before = model.weight.numpy().copy()
    gw, gb = numpy_grads(model, X, Y)
    norm = np.sqrt((gw ** 2).sum() + (gb ** 2).sum())
    out = optimizer_step(model, opt, [(X, Y)], mse(model), max_grad_norm=norm / 4)
    assert out.grad_norm == pytest.approx(norm, rel=1e-12)
    np.testing.assert_allclose(model.weight.numpy(), before - 0.1 * gw / 4, rtol=1e-12)


def test_non_finite_loss_or_gradient_changes_no_weight():
    model, opt = make_model()
    before = model.weight.numpy().copy()
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(TrainingDiverged, match="non-finite loss terms: loss, mse"):
        optimizer_step(model, opt, [(bad, Y)], mse(model), max_grad_norm=1.0)
    np.testing.assert_array_equal(model.weight.numpy(), before)

    def nan_gradient(batch):           # a finite loss, 0, whose gradient is 0 * inf = nan
        return {"loss": F.sqrt((model.weight * 0.0).sum())}
    with np.errstate(all="ignore"), \
            pytest.raises(TrainingDiverged, match="none \\(the gradients diverged\\); first "
                                                  "non-finite gradient: weight"):
        optimizer_step(model, opt, [(X, Y)], nan_gradient, max_grad_norm=1.0)
    np.testing.assert_array_equal(model.weight.numpy(), before)
    with pytest.raises(ValueError, match="no micro-batches"):
        optimizer_step(model, opt, [], mse(model), max_grad_norm=1.0)
