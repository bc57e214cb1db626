"""The built-in gradient audit: every differentiable op, gradchecked in float64.

`tinybert gradcheck` runs every case of `audit_cases()` through `audit_ops`. Each case is an op
applied to small random inputs that exercise its awkward corners (broadcasting on both sides,
reductions over several axes, masks, ignore_index, repeated ids); a user who adds an op adds a
case here. Every case reports its largest absolute and relative errors, where they occurred
(the input and the index) and the tolerances, passing or not. On a backend other than NumPy the
same case also runs on NumPy and the two backends' gradients are compared; with
`against="torch"` the case's ops are replayed in PyTorch and compared gradient by gradient.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

import autograd.functional as F
from autograd.crosscheck import CrossCheck, compare_gradients, gradients
from autograd.gradcheck import GradcheckReport, gradcheck_report
from autograd.tensor import Tensor

EPS, ATOL, RTOL = 1e-6, 1e-6, 1e-5  # gradcheck's defaults, stated once for the report


@dataclass
class AuditResult:
    op: str
    shapes: str
    passed: bool
    seconds: float
    message: str = ""                          # the first failure, one line
    report: GradcheckReport | None = None      # finite differences, every input
    vs_numpy: CrossCheck | None = None         # this backend's gradients against NumPy's
    vs_torch: CrossCheck | None = None         # against the ops replayed in PyTorch

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "shapes": self.shapes, "passed": self.passed,
                               "seconds": round(self.seconds, 4), "message": self.message}
        if self.report is not None:
            r = self.report.to_dict()
            out.update({k: r[k] for k in ("max_abs_error", "max_abs_at", "max_rel_error",
                                          "max_rel_at", "eps", "atol", "rtol", "inputs")})
        for key in ("vs_numpy", "vs_torch"):
            check = getattr(self, key)
            out[key] = None if check is None else check.to_dict()
        return out

    def cells(self) -> list[str]:
        """verdict, name, shapes, max abs error and where, max relative error and where,
        cross-checks, time: the columns of the text report."""
        out = ["ok" if self.passed else "FAIL", self.op, self.shapes]
        abs_err, abs_at = self.report.max_error("abs")
        rel_err, rel_at = self.report.max_error("rel")
        out.append("-" if abs_err is None else f"{abs_err:.1e} at {abs_at}")
        out.append("-" if rel_err is None else f"{rel_err:.1e} at {rel_at}")
        cross = [f"{c.against} {c.worst().max_rel_diff:.0e}"
                 for c in (self.vs_numpy, self.vs_torch) if c is not None and c.entries]
        out.append(", ".join(cross))
        out.append(f"{self.seconds * 1e3:.1f} ms")
        return out


@dataclass
class OpAudit:
    backend: str
    against: str | None
    results: list[AuditResult] = field(default_factory=list)

    @property
    def failed(self) -> list[AuditResult]:
        return [r for r in self.results if not r.passed]

    def format(self) -> str:
        lines = [f"gradcheck of {len(self.results)} op cases on {self.backend}, float64, central "
                 f"differences (eps={EPS}, atol={ATOL}, rtol={RTOL}); errors are "
                 f"|analytic - numeric|, relative to |numeric|"]
        titles = ["", "op", "shapes", "max abs error", "max rel error",
                  "max rel diff vs" if any(r.vs_numpy or r.vs_torch for r in self.results)
                  else "", "time"]
        rows = [r.cells() for r in self.results]
        widths = [max(len(x[i]) for x in rows + [titles]) for i in range(len(titles))]
        lines.append("  ".join(t.ljust(w) for t, w in zip(titles, widths)).rstrip())
        for r, cells in zip(self.results, rows):
            lines.append("  ".join(c.ljust(w) if i < len(cells) - 1 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths))))
            if not r.passed:
                lines.append(f"      {r.message}")
        lines.append(f"{len(self.results) - len(self.failed)} passed, {len(self.failed)} failed")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "against": self.against,
                "passed": len(self.results) - len(self.failed), "failed": len(self.failed),
                "eps": EPS, "atol": ATOL, "rtol": RTOL,
                "results": [r.to_dict() for r in self.results]}


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
        # padding_idx's row is looked up but gets no gradient by design, which no finite
        # difference agrees with: the case keeps it out of ids and checks the other rows.
        ("embedding_padding_idx", lambda w: F.embedding(ids, w, padding_idx=2), [t(5, 3)]),
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


def run_case(name: str, fn: Callable, inputs: list, reference_inputs: list | None = None,
             against: str | None = None) -> AuditResult:
    """gradcheck one case; with `reference_inputs` (the same values on NumPy) compare the two
    backends' gradients too, and with against="torch" the PyTorch replay's."""
    shapes = " ".join("x".join(map(str, x.shape)) or "scalar" for x in inputs)
    start = time.perf_counter()
    report = gradcheck_report(fn, *inputs, eps=EPS, atol=ATOL, rtol=RTOL)
    result = AuditResult(name, shapes, report.passed, 0.0, report=report)
    if not report.passed:
        result.message = report.failed[0].message
    if reference_inputs is not None:
        result.vs_numpy = compare_gradients("numpy", gradients(fn, *inputs),
                                            gradients(fn, *reference_inputs))
    if against == "torch":
        from autograd.crosscheck import against_torch
        result.vs_torch = against_torch(fn, *inputs)
    for check in (result.vs_numpy, result.vs_torch):
        if check is not None and not check.passed:
            result.passed = False
            result.message = result.message or check.summary()
    result.seconds = time.perf_counter() - start
    return result


def audit_ops(seed: int = 0, device: Any = None, only: str | None = None,
              against: str | None = None,
              progress: Callable[[int, str], None] | None = None) -> OpAudit:
    """Every case whose name contains `only` (all by default) on backend `device`, compared
    with NumPy when `device` is another backend and with PyTorch when against="torch".
    Raises ValueError when no case matches; `progress(total, name)` as each case starts."""
    import backends

    if against == "torch":
        from autograd.torch_replay import import_torch
        import_torch()                           # fail before the audit when it is absent
    name = backends.get_backend(device).name
    cases = [c for c in audit_cases(seed, device) if only is None or only in c[0]]
    if not cases:
        raise ValueError(f"no op name contains {only!r}")
    reference = None
    if name != "numpy":
        reference = {c[0]: c[2] for c in audit_cases(seed, "numpy")}
    audit = OpAudit(name, against)
    for op, fn, inputs in cases:
        if progress is not None:
            progress(len(cases), op)
        audit.results.append(run_case(op, fn, inputs,
                                      None if reference is None else reference[op], against))
    return audit
