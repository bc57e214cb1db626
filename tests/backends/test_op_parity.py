"""Backend parity at the op level: forward and backward through Tensors, each backend against
the numpy backend, under the one tolerance table (parity_helpers.py)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import autograd.functional as F
import backends
from autograd.tensor import Tensor
from parity_helpers import DTYPES, NEG_INF, assert_close, normal, padding_mask


def _run_op(be: backends.Backend, fn: Callable, arrays: dict, grads: tuple) -> dict:
    """fn(tensors) on backend `be`; returns host copies of the output and of the listed grads."""
    tensors = {k: Tensor(v, requires_grad=k in grads, device=be.name) for k, v in arrays.items()}
    y = fn(tensors, be)
    cot = np.random.default_rng(7).standard_normal(y.shape).astype(y.dtype)
    (y * Tensor(cot, device=be.name)).sum().backward()
    out = {"y": y.numpy()}
    out.update({f"grad {k}": tensors[k].grad for k in grads})
    return {k: be.to_numpy(v) if not isinstance(v, np.ndarray) else v for k, v in out.items()}


def _mask(be: backends.Backend, dt: Any) -> Any:
    mask = padding_mask(dt, 2, 6, 2)
    mask[1] = NEG_INF
    return be.asarray(mask)


OPS = {
    "softmax": (lambda t, be: F.softmax(t["x"], scale=0.5, mask=_mask(be, t["x"].dtype)),
                lambda rng, dt: {"x": normal(rng, dt, 2, 3, 4, 6)}, ("x",)),
    "layer_norm": (lambda t, be: F.layer_norm(t["x"], t["w"], t["b"], eps=1e-5),
                   lambda rng, dt: {"x": normal(rng, dt, 3, 5, 8), "w": normal(rng, dt, 8),
                                    "b": normal(rng, dt, 8)}, ("x", "w", "b")),
    "cross_entropy": (lambda t, be: F.cross_entropy(t["x"], be.asarray(np.array([1, -100, 4, 0])),
                                                    reduction="none"),
                      lambda rng, dt: {"x": normal(rng, dt, 4, 7, scale=3.0)}, ("x",)),
    "no_norm": (lambda t, be: F.no_norm(t["x"], t["w"], t["b"], residual=t["r"]),
                lambda rng, dt: {"x": normal(rng, dt, 3, 5, 8), "w": normal(rng, dt, 8),
                                 "b": normal(rng, dt, 8), "r": normal(rng, dt, 3, 5, 8)},
                ("x", "w", "b", "r")),
    "gelu": (lambda t, be: F.gelu(t["x"]) + F.gelu(t["x"], approximate=True),
             lambda rng, dt: {"x": normal(rng, dt, 3, 17, scale=3.0)}, ("x",)),
    "embedding": (lambda t, be: F.embedding(be.asarray(np.array([[1, 4, 1], [0, 4, 4]])), t["w"]),
                  lambda rng, dt: {"w": normal(rng, dt, 6, 5)}, ("w",)),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("op", sorted(OPS))
def test_op_forward_and_backward_match_numpy(op: str, dtype: Any,
                                             backend: backends.Backend) -> None:
    fn, make, grads = OPS[op]
    arrays = make(np.random.default_rng(1), dtype)
    want = _run_op(backends.get_backend("numpy"), fn, arrays, grads)
    got = _run_op(backend, fn, arrays, grads)
    for key in want:
        assert_close(got[key], want[key], f"F.{op} on {backend.name}, {np.dtype(dtype)}, {key}")
