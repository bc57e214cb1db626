"""`gradcheck`: compare backward's gradients with central finite differences in float64.

For an output y = f(inputs) and a fixed random cotangent c, the scalar s = <c, y> has gradient
<c, dy/dx> = what backward(c) returns. Small inputs are checked element by element; large ones
by random directions d: the analytic <grad, d> against the numeric (s(x + eps d) - s(x - eps d))
/ (2 eps) — Chainer's and HIPS autograd's VJP-vs-JVP test.

Every checked input gets an `InputReport`: the largest absolute and relative errors and where
they occurred (an index, or a direction), how many elements or directions were out of
tolerance, and the analytic and numeric values at the worst one. `gradcheck_report` returns the
`GradcheckReport`; `gradcheck` raises `GradcheckError` (which carries it) on any failure.

Kinks. Along a random direction through a ReLU network, the step may cross a point where s is
not differentiable; the central difference then averages two slopes. With `kink_retries`, a
direction whose second difference (s(x+h) - 2 s(x) + s(x-h)) / 2h exceeds the tolerance and
whose half-step estimate disagrees with the full-step one is set aside and a new one drawn: for
a kink at distance t < h, the central difference is off by exactly that second difference.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from autograd.function import no_grad
from autograd.tensor import GradientShapeError, Tensor


class GradcheckError(AssertionError):
    """Analytic and numeric gradients disagree; the message says where and by how much, and
    `.report` holds the whole `GradcheckReport`."""

    def __init__(self, message: str, report: GradcheckReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class InputReport:
    """How one checked tensor fared. Errors are |analytic - numeric|; the relative error divides
    by |numeric| and counts only values above atol (smaller ones are judged by atol alone)."""

    name: str                       # "input 1", "param 3" or a parameter's name
    shape: tuple[int, ...]
    mode: str                       # "elementwise", "directional", or "shape" (wrong-shape grad)
    checked: int                    # elements or directions compared
    failures: int                   # how many of them were out of tolerance
    max_abs_error: float | None = None
    max_abs_at: str = ""            # "index (1, 2)" or "direction 0"
    max_rel_error: float | None = None
    max_rel_at: str = ""
    worst_at: str = ""              # where the error exceeds its tolerance most (or comes closest)
    analytic: float | None = None   # at worst_at
    numeric: float | None = None
    kinks: int = 0                  # directions set aside as not differentiable (kink_retries)
    grad_shape: tuple[int, ...] | None = None  # mode "shape": what backward returned instead
    message: str = ""               # why it failed, one line

    @property
    def passed(self) -> bool:
        return self.failures == 0

    def to_dict(self) -> dict[str, Any]:
        out = {k: _json_number(v) for k, v in asdict(self).items()}
        out["shape"] = list(self.shape)
        out["grad_shape"] = None if self.grad_shape is None else list(self.grad_shape)
        out["passed"] = self.passed
        return out


@dataclass
class GradcheckReport:
    """Every checked input's `InputReport`, with the settings the check ran under."""

    eps: float
    atol: float
    rtol: float
    output_shape: tuple[int, ...]
    inputs: list[InputReport] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.inputs)

    @property
    def failed(self) -> list[InputReport]:
        return [r for r in self.inputs if not r.passed]

    def max_error(self, kind: str = "abs") -> tuple[float | None, str]:
        """The largest absolute ("abs") or relative ("rel") error over every input, and where:
        "input 1 index (0, 2)"."""
        best, where = None, ""
        for r in self.inputs:
            value, at = (r.max_abs_error, r.max_abs_at) if kind == "abs" else (
                r.max_rel_error, r.max_rel_at)
            if value is not None and (best is None or value > best):
                best, where = value, f"{r.name} {at}"
        return best, where

    def tolerances(self) -> str:
        return f"eps={self.eps}, atol={self.atol}, rtol={self.rtol}"

    def message(self) -> str:
        """The first failure in the classic one-line form, then the full table."""
        first = self.failed[0].message if self.failed else "gradcheck passed"
        return f"{first}\n{self.format()}"

    def format(self) -> str:
        """One line per checked input: mode, errors and where, verdict."""
        head = (f"gradcheck of an output of shape {self.output_shape} ({self.tolerances()}): "
                + ("passed" if self.passed else f"FAILED for {len(self.failed)} of "
                                                f"{len(self.inputs)} inputs"))
        rows = [[r.name, str(r.shape), _mode(r), _err(r.max_abs_error, r.max_abs_at),
                 _err(r.max_rel_error, r.max_rel_at),
                 _verdict(r)] for r in self.inputs]
        titles = ["input", "shape", "checked", "max |diff|", "max rel", ""]
        widths = [max(len(x[i]) for x in rows + [titles]) for i in range(len(titles))]
        lines = [head, "  " + "  ".join(t.ljust(w) for t, w in zip(titles, widths)).rstrip()]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(x, widths)).rstrip() for x in rows]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        abs_err, abs_at = self.max_error("abs")
        rel_err, rel_at = self.max_error("rel")
        return {"passed": self.passed, "eps": self.eps, "atol": self.atol, "rtol": self.rtol,
                "output_shape": list(self.output_shape), "max_abs_error": _json_number(abs_err),
                "max_abs_at": abs_at, "max_rel_error": _json_number(rel_err), "max_rel_at": rel_at,
                "inputs": [r.to_dict() for r in self.inputs]}


def _json_number(value: Any) -> Any:
    """inf and nan as the strings "inf" / "nan", so reports stay valid JSON."""
    return str(value) if isinstance(value, float) and not math.isfinite(value) else value


def _mode(r: InputReport) -> str:
    if r.mode == "elementwise":
        return f"{r.checked} elements"
    if r.mode == "directional":
        extra = f", {r.kinks} kinks dodged" if r.kinks else ""
        return f"{r.checked} directions{extra}"
    return "-"


def _verdict(r: InputReport) -> str:
    if r.passed:
        return "ok"
    if r.mode == "shape":
        return f"FAIL (backward returned a gradient of shape {r.grad_shape})"
    return f"FAIL ({r.failures} of {r.checked} out of tolerance)"


def _err(value: float | None, at: str) -> str:
    return "-" if value is None else f"{value:.2e} at {at}"


def gradcheck(fn: Callable[..., Tensor], *inputs: Any, eps: float = 1e-6, atol: float = 1e-6,
              rtol: float = 1e-5, mode: str = "auto", max_elements: int = 256,
              directions: int = 3, params: Any = (), seed: int = 0,
              kink_retries: int = 0) -> bool:
    """Check the gradients of `fn(*inputs)` with respect to every float input that requires grad
    (and every tensor in `params`, e.g. a float64 module's parameters, perturbed in place).

    Inputs are copied to float64 first (integer inputs pass through). `mode` is "elementwise",
    "directional" or "auto" (element-wise for inputs of at most `max_elements` values).
    `params` is a list of tensors, a {name: tensor} mapping or (name, tensor) pairs such as
    `model.named_parameters()`; names appear in the report. Returns True or raises
    GradcheckError, whose message names the first failing input and shows every input's errors.
    """
    report = gradcheck_report(fn, *inputs, eps=eps, atol=atol, rtol=rtol, mode=mode,
                              max_elements=max_elements, directions=directions, params=params,
                              seed=seed, kink_retries=kink_retries)
    if not report.passed:
        raise GradcheckError(report.message(), report)
    return True


def _named(params: Any) -> list[tuple[str, Tensor]]:
    if isinstance(params, Mapping):
        return list(params.items())
    out = []
    for i, p in enumerate(params if isinstance(params, Iterable) else ()):
        out.append(p if isinstance(p, tuple) else (f"param {i}", p))
    return out


def prepare(inputs: tuple, params: Any = ()) -> tuple[list, list[tuple[str, Tensor]]]:
    """Float inputs copied to float64 (integer ones as they are) and the (name, tensor) list of
    everything to check: inputs that require grad, then `params` (which must be float64)."""
    args = []
    for x in inputs:
        if isinstance(x, Tensor) and x.dtype.kind == "f":
            args.append(Tensor(x.data.astype(np.float64), requires_grad=x.requires_grad,
                               device=x.backend))
        else:
            args.append(x)
    named = _named(params)
    for _, p in named:
        if p.dtype != np.float64:
            raise TypeError(f"gradcheck: params must be float64 (cast the module with "
                            f".to(dtype=np.float64)), got {p.dtype}")
    checked = [(f"input {i}", a) for i, a in enumerate(args)
               if isinstance(a, Tensor) and a.requires_grad]
    checked += named
    if not checked:
        raise ValueError("gradcheck: no input requires grad; nothing to check")
    return args, checked


def analytic_gradients(fn: Callable[..., Tensor], args: list, checked: list, seed: int = 0
                       ) -> tuple[Tensor, np.ndarray, dict[str, np.ndarray], np.random.Generator]:
    """Run fn(*args) and backward with the cotangent N(0, 1) drawn first from `seed`; returns
    the output, the cotangent, {name: float64 host gradient} (zeros where backward gave none)
    and the generator, positioned after the cotangent. Raises GradientShapeError."""
    rng = np.random.default_rng(seed)
    out = fn(*args)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    cot = rng.standard_normal(out.shape)
    for _, t in checked:
        t.grad = None
    if out.requires_grad:
        out.backward(Tensor(cot, device=out.backend).astype(out.dtype))
    grads = {name: (t.backend.to_numpy(t.grad).astype(np.float64) if t.grad is not None
                    else np.zeros(t.shape)) for name, t in checked}
    return out, cot, grads, rng


def gradcheck_report(fn: Callable[..., Tensor], *inputs: Any, eps: float = 1e-6,
                     atol: float = 1e-6, rtol: float = 1e-5, mode: str = "auto",
                     max_elements: int = 256, directions: int = 3, params: Any = (),
                     seed: int = 0, kink_retries: int = 0,
                     progress: Callable[[str], None] | None = None) -> GradcheckReport:
    """`gradcheck`'s measurements without the verdict: a `GradcheckReport` for every checked
    input (see `gradcheck` for the arguments; `progress(name)` is called before each input is
    checked). A backward that returns a gradient of the wrong shape is reported as a failure
    of the input it was meant for."""
    if mode not in ("auto", "elementwise", "directional"):
        raise ValueError(f"gradcheck: mode must be auto, elementwise or directional, got {mode!r}")
    args, checked = prepare(inputs, params)
    try:
        out, cot, grads, rng = analytic_gradients(fn, args, checked, seed)
    except GradientShapeError as e:
        names = {id(t): name for name, t in checked}
        name = names.get(id(e.input), f"an intermediate input of {e.op}")
        report = GradcheckReport(eps, atol, rtol, ())
        report.inputs.append(InputReport(
            name, tuple(e.input.shape), "shape", 0, 1, grad_shape=e.grad_shape,
            message=f"gradcheck failed for {name} of shape {e.input.shape}: {e}"))
        return report
    report = GradcheckReport(eps, atol, rtol, tuple(out.shape))

    def s_at() -> np.ndarray:
        with no_grad():  # a float64 copy: an output may be a view of the input perturbed next
            return fn(*args).numpy().astype(np.float64)

    base = s_at() if kink_retries else None
    for name, t in checked:
        if progress is not None:
            progress(name)
        data = t.data
        use_elements = mode == "elementwise" or (mode == "auto" and t.size <= max_elements)
        try:
            if use_elements:
                report.inputs.append(_elementwise(name, t, grads[name], s_at, cot, eps, atol,
                                                  rtol))
            else:
                report.inputs.append(_directional(name, t, grads[name], s_at, cot, rng, eps,
                                                  atol, rtol, directions, kink_retries, base))
        finally:
            t.data = data
    return report


def _central(plus: np.ndarray, minus: np.ndarray, cot: np.ndarray, eps: float) -> float:
    """(s(x + eps) - s(x - eps)) / (2 eps) for s = <cot, out>. The outputs are subtracted before
    the sum, so outputs that do not move cancel exactly instead of swamping the difference."""
    return float(np.sum((plus - minus) * cot)) / (2 * eps)


def _elementwise(name: str, t: Tensor, grad: np.ndarray, s_at: Callable, cot: np.ndarray,
                 eps: float, atol: float, rtol: float) -> InputReport:
    host = t.backend.to_numpy(t.data).copy()
    numeric = np.zeros(t.shape, np.float64)
    flat = numeric.reshape(-1)
    for i in range(t.size):
        idx = np.unravel_index(i, t.shape)
        orig = host[idx]
        t.data = _set(t, host, idx, orig + eps)
        plus = s_at()
        t.data = _set(t, host, idx, orig - eps)
        minus = s_at()
        host[idx] = orig
        flat[i] = _central(plus, minus, cot, eps)

    def where(i: int) -> str:
        return f"index {tuple(int(k) for k in np.unravel_index(i, t.shape))}"

    r = _summarize(name, t.shape, "elementwise", grad.reshape(-1), flat, where, atol, rtol)
    if not r.passed:
        w = r.worst_at.removeprefix("index ")
        r.message = (f"gradcheck failed for {name} of shape {t.shape} at index {w}: "
                     f"analytic {r.analytic:.10g} vs numeric {r.numeric:.10g} "
                     f"(|diff| {abs(r.analytic - r.numeric):.3g}; eps={eps}, atol={atol}, "
                     f"rtol={rtol}); {r.failures} of {r.checked} elements out of tolerance")
    return r


def _directional(name: str, t: Tensor, grad: np.ndarray, s_at: Callable, cot: np.ndarray,
                 rng: np.random.Generator, eps: float, atol: float, rtol: float,
                 directions: int, kink_retries: int, base: np.ndarray | None) -> InputReport:
    be, host = t.backend, t.backend.to_numpy(t.data).astype(np.float64)
    analytic, numeric, kinks = np.zeros(directions), np.zeros(directions), 0

    def central_along(d: np.ndarray, h: float) -> tuple[float, np.ndarray, np.ndarray]:
        t.data = be.asarray(host + h * d)
        plus = s_at()
        t.data = be.asarray(host - h * d)
        minus = s_at()
        t.data = be.asarray(host)
        return _central(plus, minus, cot, h), plus, minus

    for k in range(directions):
        for attempt in range(kink_retries + 1):
            d = rng.standard_normal(t.shape)
            d /= np.linalg.norm(d) or 1.0
            num, plus, minus = central_along(d, eps)
            if attempt < kink_retries and _kinked(num, plus, minus, base, cot, eps, atol, rtol,
                                                  lambda: central_along(d, eps / 2)[0]):
                kinks += 1
                continue
            break
        analytic[k], numeric[k] = float(np.sum(grad * d)), num
    r = _summarize(name, t.shape, "directional", analytic, numeric, lambda i: f"direction {i}",
                   atol, rtol)
    r.kinks = kinks
    if not r.passed:
        k = r.worst_at.removeprefix("direction ")
        r.message = (f"gradcheck failed for {name} of shape {t.shape} along random direction "
                     f"{k}: analytic <grad, d> {r.analytic:.10g} vs numeric {r.numeric:.10g} "
                     f"(|diff| {abs(r.analytic - r.numeric):.3g}; eps={eps}, atol={atol}, "
                     f"rtol={rtol})")
    return r


def _kinked(num: float, plus: np.ndarray, minus: np.ndarray, base: np.ndarray, cot: np.ndarray,
            eps: float, atol: float, rtol: float, half_step: Callable[[], float]) -> bool:
    """True when s is not differentiable enough along this direction for the central
    difference to be trusted: its second difference exceeds half the tolerance, and the
    half-step estimate disagrees with the full-step one by more than that (a smooth but curved
    s passes the second test; a kink crossed by the step fails both)."""
    tol = (atol + rtol * abs(num)) / 2
    second = abs(float(np.sum(((plus - base) - (base - minus)) * cot))) / (2 * eps)
    return second > tol and abs(half_step() - num) > tol


def _summarize(name: str, shape: tuple, mode: str, analytic: np.ndarray, numeric: np.ndarray,
               where: Callable[[int], str], atol: float, rtol: float) -> InputReport:
    n = analytic.size
    r = InputReport(name, tuple(shape), mode, n, 0)
    if not n:
        return r
    diff = np.abs(analytic - numeric)
    diff = np.where(np.isfinite(diff), diff, np.inf)      # a nan anywhere is a failure
    excess = diff - (atol + rtol * np.abs(numeric))
    excess = np.where(np.isnan(excess), np.inf, excess)
    r.failures = int((excess > 0).sum())
    i = int(np.argmax(diff))
    r.max_abs_error, r.max_abs_at = float(diff[i]), where(i)
    big = np.abs(numeric) > atol
    if big.any():
        rel = np.where(big, diff / np.where(big, np.abs(numeric), 1.0), -1.0)
        i = int(np.argmax(rel))
        r.max_rel_error, r.max_rel_at = float(rel[i]), where(i)
    i = int(np.argmax(excess))
    r.worst_at, r.analytic, r.numeric = where(i), float(analytic[i]), float(numeric[i])
    return r


def kink_distance(fn: Callable[..., Tensor], *args: Any) -> float:
    """How close fn(*args) runs to a point where it is not differentiable: the smallest
    distance of any relu / abs input from 0 (relu6: from 0 and 6), or between the two largest
    values a max reduces over. A finite difference with a step smaller than this (times how
    fast the step moves those inputs) never straddles a kink; inf when fn has none."""
    from autograd.function import record_ops
    from autograd.ops import elementwise as E
    from autograd.ops import reduce as R

    with no_grad(), record_ops() as ops:
        fn(*args)
    best = math.inf
    for op in ops:
        x = op.inputs[0].numpy() if op.inputs else None
        if x is None or not x.size:
            continue
        if op.op in (E.Relu, E.Abs):
            best = min(best, float(np.abs(x).min()))
        elif op.op is E.Relu6:
            best = min(best, float(np.minimum(np.abs(x), np.abs(x - 6.0)).min()))
        elif op.op is R.Max:
            axes = R.normalize_axes(op.attrs.get("axis"), x.ndim)
            rows = np.moveaxis(x, axes, tuple(range(x.ndim - len(axes), x.ndim)))
            rows = rows.reshape(-1, math.prod(x.shape[a] for a in axes) or 1)
            if rows.shape[1] > 1:
                top = -np.partition(-rows, 1, axis=1)[:, :2]
                best = min(best, float((top[:, 0] - top[:, 1]).min()))
    return best


def _set(t: Tensor, host: np.ndarray, idx: tuple, value: float) -> Any:
    host[idx] = value
    return t.backend.asarray(host) if t.backend.xp is not np else host
