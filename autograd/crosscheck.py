"""Analytic gradients compared across implementations: another backend against NumPy's, and
PyTorch's against tinybert's (`tinybert gradcheck --backend ...`, `--against torch`).

gradcheck compares backward with finite differences, which is slow and only as exact as the
step allows; here two analytic gradients of the same function at the same point, with the same
cotangent, must agree to rounding. Differences are measured norm-wise, relative to the largest
reference value, as the backend parity tests do: a gradient's near-zero entries may differ by
far more than rtol of themselves when two libraries sum in different orders.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from autograd.gradcheck import analytic_gradients, prepare
from autograd.tensor import Tensor

RTOL, ATOL = 1e-9, 1e-12  # float64, two implementations of the same sums in different orders


@dataclass
class Agreement:
    """One array (the output or a gradient) compared with its reference."""

    name: str
    max_abs_diff: float
    max_rel_diff: float          # max|ours - reference| / max|reference| (norm-wise)
    at: str                      # the index of the largest difference
    passed: bool
    ratio: float = 0.0           # the largest |diff| / tolerance: 1 is the limit

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in vars(self).items()}


def compare(name: str, ours: Any, reference: Any, rtol: float = RTOL, atol: float = ATOL,
            elementwise: bool = False) -> Agreement:
    """Norm-wise, max|ours - reference| <= atol + rtol * max|reference|; with `elementwise`,
    |ours - reference| <= atol + rtol * |reference| everywhere (np.testing.assert_allclose's
    rule). Shapes must match; nan must meet nan."""
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    if ours.shape != reference.shape:
        return Agreement(name, math.inf, math.inf, f"shape {ours.shape} vs {reference.shape}",
                         False, math.inf)
    if not ours.size:
        return Agreement(name, 0.0, 0.0, "", True)
    both_nan = np.isnan(ours) & np.isnan(reference)
    with np.errstate(invalid="ignore"):
        diff = np.where(both_nan | (ours == reference), 0.0, np.abs(ours - reference))
    diff = np.where(np.isnan(diff), np.inf, diff)
    finite = np.abs(reference[np.isfinite(reference)])
    largest = float(finite.max()) if finite.size else 0.0
    tol = atol + rtol * (np.abs(np.nan_to_num(reference)) if elementwise else largest)
    excess = diff / tol if atol or rtol else np.where(diff > 0, np.inf, 0.0)
    i = np.unravel_index(int(np.argmax(excess)), diff.shape)
    worst = float(diff.max())
    rel = worst / largest if largest > 0 else (0.0 if worst == 0 else math.inf)
    ratio = float(np.max(excess))
    return Agreement(name, worst, rel, f"index {tuple(int(k) for k in i)}", ratio <= 1.0, ratio)


@dataclass
class CrossCheck:
    """Every compared array against one reference ("numpy" or "torch")."""

    against: str
    rtol: float
    atol: float
    entries: list[Agreement] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(e.passed for e in self.entries)

    def worst(self) -> Agreement | None:
        """The entry closest to (or furthest past) its tolerance."""
        return max(self.entries, key=lambda e: e.ratio, default=None)

    def summary(self) -> str:
        """`vs torch: max rel 3.1e-15 (input 0), ok` in one line."""
        w = self.worst()
        if w is None:
            return f"vs {self.against}: nothing compared"
        bad = [e.name for e in self.entries if not e.passed]
        verdict = "ok" if not bad else f"DIFFERS for {', '.join(bad)}"
        return (f"vs {self.against}: max rel {w.max_rel_diff:.1e} ({w.name}, |diff| "
                f"{w.max_abs_diff:.1e} at {w.at}), {verdict}")

    def format(self) -> str:
        """The summary, then one line per compared array."""
        lines = [self.summary() + f" (rtol={self.rtol}, atol={self.atol})"]
        for e in self.entries:
            lines.append(f"  {e.name}: max |diff| {e.max_abs_diff:.2e} at {e.at}, max rel "
                         f"{e.max_rel_diff:.2e}  {'ok' if e.passed else 'DIFFERS'}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"against": self.against, "rtol": self.rtol, "atol": self.atol,
                "passed": self.passed, "entries": [e.to_dict() for e in self.entries]}


def gradients(fn: Callable[..., Tensor], *inputs: Any, params: Any = (), seed: int = 0
              ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """fn's float64 output and its analytic gradients for the cotangent gradcheck would use
    (inputs cast to float64 as gradcheck casts them), as host arrays keyed by gradcheck's
    names: "input 0", ..., then the parameter names."""
    args, checked = prepare(inputs, params)
    out, _, grads, _ = analytic_gradients(fn, args, checked, seed)
    return out.numpy().astype(np.float64), grads


def compare_gradients(against: str, ours: tuple[np.ndarray, dict], reference: tuple[np.ndarray,
                      dict], rtol: float = RTOL, atol: float = ATOL,
                      elementwise: bool = False) -> CrossCheck:
    """Outputs and every gradient of `ours` (from `gradients`) against `reference`."""
    check = CrossCheck(against, rtol, atol,
                       [compare("output", ours[0], reference[0], rtol, atol, elementwise)])
    for name, grad in ours[1].items():
        check.entries.append(compare(name, grad, reference[1][name], rtol, atol, elementwise))
    return check


def against_torch(fn: Callable[..., Tensor], *inputs: Any, params: Any = (), seed: int = 0,
                  rtol: float = RTOL, atol: float = ATOL,
                  extra_rules: dict[type, Callable] | None = None) -> CrossCheck:
    """fn's output and gradients against the same ops replayed in PyTorch (torch_replay).
    Raises TorchUnavailable when PyTorch is not installed."""
    from autograd.torch_replay import import_torch, torch_gradients

    import_torch()                                   # fail before any work when it is absent
    args, checked = prepare(inputs, params)
    out, cot, grads, _ = analytic_gradients(fn, args, checked, seed)
    reference = torch_gradients(fn, args, checked, cot, extra_rules)
    return compare_gradients("torch", (out.numpy().astype(np.float64), grads), reference, rtol,
                             atol)
