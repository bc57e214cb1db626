"""The checks of `autograd.testing`: forward against a plain-NumPy expectation, backward
against finite differences, backends against NumPy, a fused op against its composition.

Each `assert_*` raises AssertionError (GradcheckError for gradients) with a report that says
which input, which index and by how much; `check_op` runs them all over hypothesis-drawn shapes
on every backend. Only `check_op` needs hypothesis, and imports it when called.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Sequence

import numpy as np

from backends import availability
from autograd.crosscheck import CrossCheck, compare_gradients, gradients
from autograd.gradcheck import GradcheckError, GradcheckReport, gradcheck_report
from autograd.tensor import Tensor

FORWARD_RTOL, FORWARD_ATOL = 1e-10, 1e-12  # float64: only the order of float sums differs


def available_backends() -> list[str]:
    """The backends that run on this machine, NumPy (the reference) first."""
    return [name for name, why in availability().items() if why is None]


def leaf(x: Any, requires_grad: bool = True, device: Any = None) -> Tensor:
    """A float64 leaf tensor (a copy of `x`)."""
    return Tensor(np.array(x, dtype=np.float64), requires_grad=requires_grad, device=device)


def assert_forward(out: Tensor, expected: Any, rtol: float = FORWARD_RTOL,
                   atol: float = FORWARD_ATOL, dtype: Any = np.float64) -> None:
    """`out` is a Tensor of `expected`'s shape (and of `dtype`, unless None) whose values match
    within |out - expected| <= atol + rtol |expected|."""
    expected = np.asarray(expected, dtype=np.float64)
    if not isinstance(out, Tensor):
        raise AssertionError(f"forward: expected a Tensor, got {type(out).__name__}")
    if dtype is not None and out.dtype != np.dtype(dtype):
        raise AssertionError(f"forward: dtype {out.dtype}, expected {np.dtype(dtype)}")
    if out.shape != expected.shape:
        raise AssertionError(f"forward: shape {out.shape} != expected {expected.shape}")
    np.testing.assert_allclose(out.numpy(), expected, rtol=rtol, atol=atol,
                               err_msg="forward differs from the expected values")


def assert_gradients(fn: Callable[..., Tensor], *inputs: Any, **kwargs: Any) -> GradcheckReport:
    """gradcheck(fn, *inputs, **kwargs) that raises GradcheckError with the full report (every
    input's largest errors, where, and the tolerances) and otherwise returns the report."""
    report = gradcheck_report(fn, *inputs, **kwargs)
    if not report.passed:
        raise GradcheckError(report.message(), report)
    return report


def assert_backends_agree(fn: Callable[..., Tensor], *arrays: Any,
                          requires_grad: Sequence[bool] | None = None,
                          backends: Sequence[str] | None = None, rtol: float = 1e-9,
                          atol: float = 1e-12) -> list[CrossCheck]:
    """fn's float64 output and analytic gradients on every backend in `backends` (default:
    every available one) agree with NumPy's, norm-wise. `arrays` become float64 leaves on each
    backend (`requires_grad[i]` says which; all by default). Returns one CrossCheck per backend."""
    flags = list(requires_grad) if requires_grad is not None else [True] * len(arrays)
    names = [b for b in (backends or available_backends()) if b != "numpy"]

    def run(device: str) -> tuple:
        ts = [leaf(a, f, device) for a, f in zip(arrays, flags)]
        return gradients(fn, *ts)

    reference = run("numpy")
    checks = []
    for name in names:
        check = compare_gradients("numpy", run(name), reference, rtol, atol)
        if not check.passed:
            raise AssertionError(f"backend {name} differs from numpy:\n{check.format()}")
        checks.append(check)
    return checks


def assert_fused_matches_composite(fused: Callable[..., Tensor],
                                   composite: Callable[..., Tensor], *arrays: Any,
                                   rtol: float = 1e-10, atol: float = 1e-12,
                                   seed: int = 0) -> CrossCheck:
    """A fused op equals the composition of primitives it replaces, forward and backward
    (STYLE.md: the test that comes with every promotion to a fused Function). Both run in
    float64 on the same leaves with the same random cotangent; every output and gradient
    element must satisfy |fused - composite| <= atol + rtol |composite|."""
    ours = gradients(fused, *[leaf(a) for a in arrays], seed=seed)
    reference = gradients(composite, *[leaf(a) for a in arrays], seed=seed)
    check = compare_gradients("composite", ours, reference, rtol, atol, elementwise=True)
    if not check.passed:
        raise AssertionError(f"the fused op differs from its composition:\n{check.format()}")
    return check


def _shape_tuple(drawn: Any) -> tuple[tuple[int, ...], ...]:
    """A drawn shape, tuple of shapes or hypothesis BroadcastableShapes as a tuple of shapes."""
    if hasattr(drawn, "input_shapes"):
        return tuple(tuple(s) for s in drawn.input_shapes)
    drawn = tuple(drawn)
    if all(isinstance(n, (int, np.integer)) for n in drawn):
        return (tuple(int(n) for n in drawn),)                  # one shape: a unary op
    return tuple(tuple(s) for s in drawn)


def _key(fn: Any) -> str:
    """A name for fn that stays the same between runs: qualified name and first line."""
    name = re.sub(r"\W", "_", getattr(fn, "__qualname__", type(fn).__name__))
    code = getattr(fn, "__code__", None)
    return f"{name}_{code.co_firstlineno}" if code is not None else name


def check_op(op: Callable[..., Tensor], expected_forward: Callable[..., Any], shapes: Any,
             elements: Any = None, *, aliases: Sequence[Callable[..., Tensor]] = (),
             grad_subsets: bool = False, backends: Sequence[str] | None = None,
             rtol: float = FORWARD_RTOL, atol: float = FORWARD_ATOL,
             settings: dict[str, Any] | None = None, **gradcheck_kwargs: Any) -> None:
    """Property-test `op` over hypothesis-drawn inputs, Chainer-style:

    - `shapes`: a hypothesis strategy drawing one shape (a unary op), a tuple of shapes, or
      `mutually_broadcastable_shapes(...)`'s result; `elements`: one strategy of floats for
      every input, or one per input (default `strategies.floats()`).
    - On every backend in `backends` (default: every available one) the float64 inputs go
      through `op`, whose output must match `expected_forward(*numpy_arrays)` (plain NumPy,
      written independently) within rtol/atol; each of `aliases` (the operator or method
      spelling, say `lambda a, b: a * b`) must give the same values; and backward must pass
      `assert_gradients` (finite differences; `gradcheck_kwargs` go to it).
    - `grad_subsets`: draw which inputs require grad (every non-empty subset), exercising
      backward's needs_input_grad paths; otherwise all do.

    `settings` are hypothesis settings for this run (`{"max_examples": 200}`); by default the
    active profile's, without a deadline. Call it from a plain test function, not from inside
    another @given: hypothesis then prints the smallest failing draw it found.
    """
    import hypothesis
    from hypothesis import strategies as st

    from autograd.testing.strategies import arrays, floats, grad_flags

    names = list(backends or available_backends())

    def run(data: Any) -> None:
        shape_list = _shape_tuple(data.draw(shapes, label="shapes"))
        n = len(shape_list)
        elems = elements if isinstance(elements, (list, tuple)) else [elements] * n
        values = [data.draw(arrays(s, e if e is not None else floats()), label=f"input {i}")
                  for i, (s, e) in enumerate(zip(shape_list, elems))]
        flags = data.draw(grad_flags(n), label="requires_grad") if grad_subsets else (True,) * n
        expected = expected_forward(*[v.copy() for v in values])
        for name in names:
            ts = [leaf(v, f, name) for v, f in zip(values, flags)]
            try:
                assert_forward(op(*ts), expected, rtol, atol)
                for alias in aliases:
                    assert_forward(alias(*ts), expected, rtol, atol)
                assert_gradients(op, *ts, **gradcheck_kwargs)
            except AssertionError as e:
                kind = GradcheckError if isinstance(e, GradcheckError) else AssertionError
                raise kind(f"check_op on backend {name}, input shapes {list(shape_list)}, "
                           f"requires_grad {list(flags)}: {e}") from e

    # hypothesis keys its example database by the test function: one key per op checked.
    run.__name__ = run.__qualname__ = f"check_op_{_key(op)}_{_key(expected_forward)}"
    # No deadline: a gradcheck's time grows with the drawn size, and a kernel may compile first.
    limits = {"deadline": None, **(settings or {})}
    hypothesis.settings(**limits)(hypothesis.given(data=st.data())(run))()
