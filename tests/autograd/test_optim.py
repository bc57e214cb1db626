"""Optimizers against hand computations of the spec's formulas (section 6), training checks,
clipping, schedules and resume."""
from __future__ import annotations

import math

import numpy as np
import pytest

import autograd.functional as F
from autograd import Tensor, nn, optim
from autograd.module import Parameter


def _named(values: dict[str, np.ndarray], grads: dict[str, np.ndarray]):
    params = []
    for name, v in values.items():
        p = Parameter(v.copy())
        p.grad = grads[name].copy()
        params.append((name, p))
    return params


W = np.array([[0.5, -1.0, 2.0], [0.1, 0.2, -0.3]], np.float64)
G = np.array([[0.1, -0.2, 0.3], [-0.4, 0.5, 0.05]], np.float64)
B = np.array([0.3, -0.7], np.float64)
GB = np.array([0.2, 0.1], np.float64)


def lamb_expected(w, g, lr, wd, adapt, b1=0.9, b2=0.999, eps=1e-6):
    m = (1 - b1) * g
    v = (1 - b2) * g * g
    u = m / (np.sqrt(v) + eps)
    if adapt:
        u = u + wd * w
        r = np.linalg.norm(w) / np.linalg.norm(u)
    else:
        r = 1.0
    return w - lr * r * u


def test_lamb_one_step_matches_spec_formula():
    params = _named({"dense.weight": W, "dense.bias": B}, {"dense.weight": G, "dense.bias": GB})
    opt = optim.LAMB(params, lr=0.01)
    opt.step()
    w, b = params[0][1].numpy(), params[1][1].numpy()
    np.testing.assert_allclose(w, lamb_expected(W, G, 0.01, 0.01, adapt=True), rtol=1e-12)
    # biases are excluded from weight decay and layer adaptation by name
    np.testing.assert_allclose(b, lamb_expected(B, GB, 0.01, 0.0, adapt=False), rtol=1e-12)
    assert opt.last_trust_ratio["dense.bias"] == 1.0
    assert opt.last_trust_ratio["dense.weight"] != 1.0


def test_lamb_second_step_uses_running_moments_without_bias_correction():
    params = _named({"w": W}, {"w": G})
    opt = optim.LAMB(params, lr=0.1, weight_decay=0.0)
    opt.step()
    params[0][1].grad = 2 * G
    opt.step()
    m = 0.9 * (0.1 * G) + 0.1 * (2 * G)
    v = 0.999 * (0.001 * G * G) + 0.001 * (4 * G * G)
    w1 = lamb_expected(W, G, 0.1, 0.0, adapt=True)
    u = m / (np.sqrt(v) + 1e-6)
    expected = w1 - 0.1 * (np.linalg.norm(w1) / np.linalg.norm(u)) * u
    np.testing.assert_allclose(params[0][1].numpy(), expected, rtol=1e-12)


def test_adamw_one_step_and_bias_correction_option():
    for bias_correction in (False, True):
        params = _named({"encoder.kernel": W}, {"encoder.kernel": G})
        optim.AdamW(params, lr=0.05, bias_correction=bias_correction).step()
        m, v = 0.1 * G, 0.001 * G * G
        if bias_correction:
            m, v = m / 0.1, v / 0.001
        expected = W - 0.05 * (m / (np.sqrt(v) + 1e-6) + 0.01 * W)
        np.testing.assert_allclose(params[0][1].numpy(), expected, rtol=1e-12)


def test_exclusion_lists_match_by_name():
    names = ["embeddings.LayerNorm.weight", "layer.0.output.bias", "teacher.x", "ffn.dense.weight",
             "cls.predictions.dense.weight", "x.layer_norm.gamma"]
    params = _named({n: W for n in names}, {n: G for n in names})
    opt = optim.LAMB(params, lr=0.01)
    assert [opt.decays[n] for n in names] == [False, False, False, True, True, False]
    assert opt.adapts == opt.decays
    opt2 = optim.LAMB(params, lr=0.01, exclude_from_layer_adaptation=["bias"])
    assert opt2.adapts["embeddings.LayerNorm.weight"] and not opt2.adapts["layer.0.output.bias"]


def test_trust_ratio_is_one_for_zero_weights():
    params = _named({"w": np.zeros((2, 3))}, {"w": G})
    opt = optim.LAMB(params, lr=0.1)
    opt.step()
    assert opt.last_trust_ratio["w"] == 1.0


def test_sgd_momentum():
    params = _named({"w": W}, {"w": G})
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    opt.step()
    opt.step()  # same gradient again: v = 0.9 g + g
    np.testing.assert_allclose(params[0][1].numpy(), W - 0.1 * G - 0.1 * 1.9 * G, rtol=1e-12)


def test_lr_scale_zero_skips_and_schedule_drives_lr():
    params = _named({"a.weight": W, "b.weight": W}, {"a.weight": G, "b.weight": G})
    opt = optim.SGD(params, lr=lambda step: 0.1 * (step + 1))
    opt.set_lr_scale(0.0, pattern=r"^a\.")
    opt.step()
    opt.step()
    np.testing.assert_array_equal(params[0][1].numpy(), W)
    np.testing.assert_allclose(params[1][1].numpy(), W - 0.1 * G - 0.2 * G, rtol=1e-12)
    assert opt.step_count == 2


def _mlp_task(seed=0, n=256):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    y = (x[:, :4].sum(1) > x[:, 4:].sum(1)).astype(np.int64) + 2 * (x[:, 0] > 0)
    return x, y


class MLP(nn.Module):
    def __init__(self, seed):
        rng = np.random.default_rng(seed)
        self.dense = nn.Linear(8, 32, std=0.3, rng=rng)
        self.out = nn.Linear(32, 4, std=0.3, rng=rng)

    def forward(self, x):
        return self.out(F.relu(self.dense(x)))


@pytest.mark.parametrize("make", [
    lambda m: optim.LAMB(m, lr=0.02, weight_decay=0.0),
    lambda m: optim.AdamW(m, lr=0.01, weight_decay=0.0),
    lambda m: optim.SGD(m, lr=0.2, momentum=0.9),
], ids=["lamb", "adamw", "sgd"])
def test_small_mlp_learns_synthetic_task(make):
    x, y = _mlp_task()
    model = MLP(seed=1)
    opt = make(model)
    first = None
    for step in range(300):
        loss = F.cross_entropy(model(Tensor(x)), y)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm(model, 1.0)
        opt.step()
    assert first > 1.0
    assert loss.item() < 0.15, f"loss after 300 steps: {loss.item():.4f}"


def test_state_dict_resume_is_exact():
    x, y = _mlp_task()

    def run(steps, model, opt):
        for _ in range(steps):
            loss = F.cross_entropy(model(Tensor(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    ref = MLP(seed=3)
    ref_opt = optim.LAMB(ref, lr=optim.linear_warmup_poly_decay(0.02, 20, warmup_steps=5))
    run(20, ref, ref_opt)

    a = MLP(seed=3)
    a_opt = optim.LAMB(a, lr=optim.linear_warmup_poly_decay(0.02, 20, warmup_steps=5))
    run(8, a, a_opt)
    saved_model, saved_opt = a.state_dict(), a_opt.state_dict()
    b = MLP(seed=99)
    b.load_state_dict({k: v.copy() for k, v in saved_model.items()})
    b_opt = optim.LAMB(b, lr=optim.linear_warmup_poly_decay(0.02, 20, warmup_steps=5))
    b_opt.load_state_dict(saved_opt)
    run(12, b, b_opt)
    for (name, p), (_, q) in zip(ref.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)


def test_optimizer_state_errors_name_the_problem():
    params = _named({"w": W}, {"w": G})
    opt = optim.AdamW(params, lr=0.1)
    opt.step()
    state = opt.state_dict()
    with pytest.raises(ValueError, match="missing key 'step'"):
        opt.load_state_dict({k: v for k, v in state.items() if k != "step"})
    with pytest.raises(ValueError, match=r"state\.w\.m: saved \(3,\) vs parameter \(2, 3\)"):
        opt.load_state_dict({**state, "state.w.m": np.zeros(3)})
    with pytest.raises(ValueError, match="unknown parameter other"):
        opt.load_state_dict({**state, "state.other.m": np.zeros(3)})
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="not a Parameter"):
        optim.SGD([("w", Tensor(W))], lr=0.1)
    with pytest.raises(ValueError, match="betas"):
        optim.LAMB(params, lr=0.1, betas=(1.0, 0.9))


def test_clip_grad_norm_scales_globally_out_of_place():
    params = _named({"a": np.array([3.0]), "b": np.array([4.0])},
                    {"a": np.array([3.0]), "b": np.array([4.0])})
    shared = params[0][1].grad
    norm = optim.clip_grad_norm([p for _, p in params], 1.0)
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(params[0][1].grad, [0.6])
    np.testing.assert_allclose(params[1][1].grad, [0.8])
    np.testing.assert_array_equal(shared, [3.0])  # the old array was not written into
    assert optim.clip_grad_norm([p for _, p in params], 10.0) == pytest.approx(1.0)


def test_schedules_follow_google_create_optimizer():
    lr = optim.linear_warmup_poly_decay(1e-3, num_train_steps=100, warmup_steps=10,
                                        end_lr_rate=1e-4)
    assert lr(0) == 0.0
    assert lr(5) == pytest.approx(5e-4)
    assert lr(10) == pytest.approx((1e-3 - 1e-7) * 0.9 + 1e-7)
    assert lr(100) == pytest.approx(1e-7)
    assert lr(1000) == pytest.approx(1e-7)
    poly = optim.linear_warmup_poly_decay(1.0, 10, power=2.0, end_lr_rate=0.0)
    assert poly(5) == pytest.approx(0.25)
    const = optim.constant_schedule(0.5, warmup_steps=4)
    assert [const(s) for s in (0, 2, 4, 100)] == [0.0, 0.25, 0.5, 0.5]
    assert math.isclose(optim.linear_warmup_poly_decay(2.0, 4, end_lr_rate=1.0)(3), 2.0)
    with pytest.raises(ValueError, match="num_train_steps"):
        optim.linear_warmup_poly_decay(1.0, 0)


def test_the_gradient_norm_does_not_overflow_float32():
    from autograd import nn as tnn
    layer = tnn.Linear(4, 3)
    layer.weight.grad = np.full((3, 4), 1e30, np.float32)       # squares overflow float32
    layer.bias.grad = np.zeros(3, np.float32)
    norm = optim.clip_grad_norm(layer, 1.0)
    assert np.isclose(norm, 1e30 * np.sqrt(12), rtol=1e-6)
    total = np.sqrt(sum(float((p.grad.astype(np.float64) ** 2).sum())
                        for p in layer.parameters()))
    assert np.isfinite(layer.weight.grad).all() and np.isclose(total, 1.0, rtol=1e-5)
