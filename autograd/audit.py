"""The built-in gradient audit: every differentiable op, gradchecked in float64.

`tinybert gradcheck` runs every case of `audit_cases()` through `run_case`. Each case is an op
applied to small random inputs that exercise its awkward corners (broadcasting on both sides,
reductions over several axes, masks, ignore_index, repeated ids); a user who adds an op adds a
case here.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

import autograd.functional as F
from autograd.gradcheck import GradcheckError, gradcheck
from autograd.tensor import Tensor


@dataclass
class AuditResult:
    op: str
    shapes: str
    passed: bool
    seconds: float
    message: str = ""


def _cases(rng: np.random.Generator, device: Any) -> list[tuple[str, Callable, list]]:
    def t(*shape, low=None):
        a = rng.standard_normal(shape)
        if low is not None:                       # keep log/sqrt/pow away from 0
            a = np.abs(a) + low
        return Tensor(a, requires_grad=True, device=device)

    def away_from_kinks(*shape):
        a = rng.uniform(0.2, 1.0, shape) * rng.choice([-1.0, 1.0], shape)
        return Tensor(a, requires_grad=True, device=device)

    ids = np.array([[1, 3, 3], [0, 4, 1]])
    target = np.array([2, -100, 0, 4])
    mask = np.where(rng.random((2, 1, 1, 5)) < 0.3, -np.inf, 0.0)
    mask[..., 0] = 0.0                            # keep at least one key per row
    bool_mask = rng.random((3, 4)) < 0.5
    return [
        ("add", lambda a, b: a + b, [t(3, 1, 4), t(2, 1)]),
        ("sub", lambda a, b: a - b, [t(4), t(2, 3, 4)]),
        ("mul", lambda a, b: a * b, [t(2, 3, 1), t(1, 4)]),
        ("div", lambda a, b: a / b, [t(2, 3), t(3, low=0.5)]),
        ("pow", lambda a, b: a ** b, [t(2, 3, low=0.5), t(3)]),
        ("pow_scalar", lambda a: a ** 3, [t(2, 3)]),
        ("neg", lambda a: -a, [t(5)]),
        ("matmul", F.matmul, [t(2, 1, 3, 4), t(3, 4, 2)]),
        ("matmul_1d", F.matmul, [t(4), t(2, 4, 3)]),
        ("linear", F.linear, [t(2, 3, 4), t(5, 4), t(5)]),
        ("sum", lambda a: F.sum(a, axis=(0, 2), keepdims=True), [t(2, 3, 4)]),
        ("mean", lambda a: F.mean(a, axis=-1), [t(2, 3, 4)]),
        ("max", lambda a: F.max(a, axis=1), [away_from_kinks(3, 4, 2)]),
        ("var", lambda a: F.var(a, axis=(0, 1), ddof=1), [t(3, 4, 2)]),
        ("reshape", lambda a: F.reshape(a, (4, -1)), [t(2, 3, 4)]),
        ("permute", lambda a: F.permute(a, (2, 0, 1)), [t(2, 3, 4)]),
        ("transpose", F.transpose, [t(2, 3, 4)]),
        ("concat", lambda a, b: F.concat([a, b, a], axis=1), [t(2, 3), t(2, 1)]),
        ("stack", lambda a, b: F.stack([a, b], axis=-1), [t(2, 3), t(2, 3)]),
        ("split", lambda a: F.split(a, [1, 3], axis=1)[1] * 2.0, [t(2, 4)]),
        ("pad", lambda a: F.pad(a, ((1, 0), (2, 1))), [t(2, 3)]),
        ("getitem_slice", lambda a: a[1:, ::2], [t(3, 5)]),
        ("getitem_int_array", lambda a: a[np.array([0, 2, 2, 0])], [t(3, 2)]),
        ("getitem_bool_mask", lambda a: a[bool_mask], [t(3, 4)]),
        ("where", lambda a, b: F.where(bool_mask, a, b), [t(3, 4), t(4)]),
        ("masked_fill", lambda a: F.masked_fill(a, bool_mask, -1.0), [t(3, 4)]),
        ("exp", F.exp, [t(2, 3)]),
        ("log", F.log, [t(2, 3, low=0.2)]),
        ("sqrt", F.sqrt, [t(2, 3, low=0.2)]),
        ("abs", F.abs, [away_from_kinks(2, 3)]),
        ("tanh", F.tanh, [t(2, 3)]),
        ("sigmoid", F.sigmoid, [t(2, 3)]),
        ("relu", F.relu, [away_from_kinks(2, 3)]),
        ("relu6", F.relu6, [Tensor(rng.uniform(-2, 8, (2, 5)).round(1) + 0.05,
                                   requires_grad=True, device=device)]),
        ("gelu", F.gelu, [t(2, 3)]),
        ("gelu_tanh", lambda a: F.gelu(a, approximate=True), [t(2, 3)]),
        ("softmax", lambda a: F.softmax(a, axis=1), [t(2, 3, 4)]),
        ("softmax_masked", lambda a: F.softmax(a, scale=0.5, mask=mask), [t(2, 2, 3, 5)]),
        ("log_softmax", lambda a: F.log_softmax(a, axis=0), [t(3, 4)]),
        ("layer_norm", lambda a, w, b: F.layer_norm(a, w, b, eps=1e-5), [t(2, 3, 4), t(4), t(4)]),
        ("layer_norm_no_affine", lambda a: F.layer_norm(a, eps=1e-5), [t(3, 4)]),
        ("no_norm", F.no_norm, [t(2, 3, 4), t(4), t(4), t(2, 3, 4)]),
        ("dropout", lambda a: F.dropout(a, 0.3, generator=np.random.default_rng(5)), [t(4, 5)]),
        ("embedding", lambda w: F.embedding(ids, w), [t(5, 3)]),
        ("cross_entropy", lambda a: F.cross_entropy(a, target), [t(4, 5)]),
        ("cross_entropy_smoothed", lambda a: F.cross_entropy(a, target, label_smoothing=0.1),
         [t(4, 5)]),
        ("cross_entropy_soft", lambda a, p: F.cross_entropy(a, F.softmax(p)), [t(3, 4), t(3, 4)]),
        ("kl_div", lambda a, p: F.kl_div(F.log_softmax(a), F.softmax(p)), [t(3, 4), t(3, 4)]),
        ("kl_from_logits", F.kl_from_logits, [t(2, 3, 4), t(2, 3, 4)]),
        ("mse_loss", F.mse_loss, [t(3, 4), t(3, 4)]),
    ]


def audit_cases(seed: int = 0, device: Any = None) -> Iterator[tuple[str, Callable, list]]:
    yield from _cases(np.random.default_rng(seed), device)


def run_case(name: str, fn: Callable, inputs: list) -> AuditResult:
    shapes = " ".join("x".join(map(str, x.shape)) or "scalar" for x in inputs)
    start = time.perf_counter()
    try:
        gradcheck(fn, *inputs)
        return AuditResult(name, shapes, True, time.perf_counter() - start)
    except GradcheckError as e:
        return AuditResult(name, shapes, False, time.perf_counter() - start, str(e))
