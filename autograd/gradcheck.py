"""`gradcheck`: compare backward's gradients with central finite differences in float64.

For an output y = f(inputs) and a fixed random cotangent c, the scalar s = <c, y> has gradient
<c, dy/dx> = what backward(c) returns. Small inputs are checked element by element; large ones
by random directions d: the analytic <grad, d> against the numeric (s(x + eps d) - s(x - eps d))
/ (2 eps) — Chainer's and HIPS autograd's VJP-vs-JVP test. A failure raises `GradcheckError`
naming the input, the worst index (or direction), both values and the tolerances.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from autograd.function import no_grad
from autograd.tensor import Tensor


class GradcheckError(AssertionError):
    """Analytic and numeric gradients disagree; the message says where and by how much."""


def _central(plus: np.ndarray, minus: np.ndarray, cot: np.ndarray, eps: float) -> float:
    """(s(x + eps) - s(x - eps)) / (2 eps) for s = <cot, out>. The outputs are subtracted before
    the sum, so outputs that do not move cancel exactly instead of swamping the difference."""
    return float(np.sum((plus - minus) * cot)) / (2 * eps)


def gradcheck(fn: Callable[..., Tensor], *inputs: Any, eps: float = 1e-6, atol: float = 1e-6,
              rtol: float = 1e-5, mode: str = "auto", max_elements: int = 256,
              directions: int = 3, params: Sequence[Tensor] = (), seed: int = 0) -> bool:
    """Check the gradients of `fn(*inputs)` with respect to every float input that requires grad
    (and every tensor in `params`, e.g. a float64 module's parameters, perturbed in place).

    Inputs are copied to float64 first (integer inputs pass through). `mode` is "elementwise",
    "directional" or "auto" (element-wise for inputs of at most `max_elements` values). Returns
    True or raises GradcheckError.
    """
    if mode not in ("auto", "elementwise", "directional"):
        raise ValueError(f"gradcheck: mode must be auto, elementwise or directional, got {mode!r}")
    rng = np.random.default_rng(seed)
    args = []
    for x in inputs:
        if isinstance(x, Tensor) and x.dtype.kind == "f":
            args.append(Tensor(x.data.astype(np.float64), requires_grad=x.requires_grad,
                               device=x.backend))
        else:
            args.append(x)
    for p in params:
        if p.dtype != np.float64:
            raise TypeError(f"gradcheck: params must be float64 (cast the module with "
                            f".to(dtype=np.float64)), got {p.dtype}")
    checked = [(f"input {i}", a) for i, a in enumerate(args)
               if isinstance(a, Tensor) and a.requires_grad]
    checked += [(f"param {i}", p) for i, p in enumerate(params)]
    if not checked:
        raise ValueError("gradcheck: no input requires grad; nothing to check")

    out = fn(*args)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    cot = rng.standard_normal(out.shape)
    for _, t in checked:
        t.grad = None
    out.backward(Tensor(cot, device=out.backend).astype(out.dtype))
    analytic = {id(t): (t.grad if t.grad is not None else t.backend.xp.zeros(t.shape, t.dtype))
                for _, t in checked}

    def out_at() -> np.ndarray:
        with no_grad():  # a float64 copy: an output may be a view of the input perturbed next
            return fn(*args).numpy().astype(np.float64)

    for name, t in checked:
        grad = t.backend.to_numpy(analytic[id(t)]).astype(np.float64)
        data = t.data
        host = t.backend.to_numpy(data)
        use_elements = mode == "elementwise" or (mode == "auto" and t.size <= max_elements)
        if use_elements:
            numeric = np.zeros(t.shape, np.float64)
            flat = numeric.reshape(-1)
            for i in range(t.size):
                idx = np.unravel_index(i, t.shape)
                orig = host[idx]
                t.data = _set(t, host, idx, orig + eps)
                plus = out_at()
                t.data = _set(t, host, idx, orig - eps)
                minus = out_at()
                t.data = _set(t, host, idx, orig)
                flat[i] = _central(plus, minus, cot, eps)
            err = np.abs(grad - numeric) - (atol + rtol * np.abs(numeric))
            if err.size and err.max() > 0:
                worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(err)), t.shape))
                raise GradcheckError(
                    f"gradcheck failed for {name} of shape {t.shape} at index {worst}: "
                    f"analytic {grad[worst]:.10g} vs numeric {numeric[worst]:.10g} "
                    f"(|diff| {abs(grad[worst] - numeric[worst]):.3g}; eps={eps}, atol={atol}, "
                    f"rtol={rtol}); {int((err > 0).sum())} of {err.size} elements out of tolerance")
        else:
            base = host.copy()
            for k in range(directions):
                d = rng.standard_normal(t.shape)
                d /= np.linalg.norm(d) or 1.0
                t.data = t.backend.asarray(base + eps * d)
                plus = out_at()
                t.data = t.backend.asarray(base - eps * d)
                minus = out_at()
                t.data = t.backend.asarray(base)
                numeric = _central(plus, minus, cot, eps)
                analytic_d = float(np.sum(grad * d))
                if abs(analytic_d - numeric) > atol + rtol * abs(numeric):
                    raise GradcheckError(
                        f"gradcheck failed for {name} of shape {t.shape} along random direction "
                        f"{k}: analytic <grad, d> {analytic_d:.10g} vs numeric {numeric:.10g} "
                        f"(|diff| {abs(analytic_d - numeric):.3g}; eps={eps}, atol={atol}, "
                        f"rtol={rtol})")
        t.data = data
    return True


def _set(t: Tensor, host: np.ndarray, idx: tuple, value: float) -> Any:
    host[idx] = value
    return t.backend.asarray(host) if t.backend.xp is not np else host
