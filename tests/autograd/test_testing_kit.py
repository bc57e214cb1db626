"""autograd.testing, the public kit: it passes a correct user-defined op over hypothesis-drawn
shapes on every backend, and it catches seeded mutations of that op (a factor 1.001 on one
input's gradient, a swapped broadcast axis, a missing unbroadcast) with a report that names
the input and the index.

The op is what a user would write: y = a * sigmoid(b), both sides broadcasting (a gate).
"""
from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest
from hypothesis import Phase
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import autograd.functional as F
from autograd import Function, GradcheckError
from autograd.function import unbroadcast
from autograd.testing import (
    assert_backends_agree,
    assert_forward,
    assert_fused_matches_composite,
    assert_gradients,
    available_backends,
    check_op,
    leaf,
)
from autograd.testing.strategies import binary_shapes, floats


class Gate(Function):
    """y = a * sigmoid(b), with a and b broadcasting against each other."""

    def forward(self, a, b):
        self.a, self.s = a, 1.0 / (1.0 + self.xp.exp(-b))
        self.b_shape = b.shape
        return a * self.s

    def backward(self, g):
        a, s = self.a, self.s
        na, nb = self.needs_input_grad
        return (self.grad_a(g * s, a.shape) if na else None,
                self.grad_b(g * a * s * (1.0 - s), self.b_shape) if nb else None)

    def grad_a(self, g, shape):
        return unbroadcast(g, shape)

    def grad_b(self, g, shape):
        return unbroadcast(g, shape)


def gate_expected(a, b):
    return a / (1.0 + np.exp(-b))


class GateOffByAFactor(Gate):
    """Mutation: b's gradient 0.1% too large."""

    def grad_b(self, g, shape):
        return unbroadcast(g, shape) * 1.001


class GateOffByAFactorOnA(Gate):
    """Mutation: a's gradient 0.1% too large (the report must follow: input 0)."""

    def grad_a(self, g, shape):
        return unbroadcast(g, shape) * 1.001


def _unbroadcast_mirrored(g, shape):
    """The bug: each broadcast (size-1) axis is summed at its mirror position instead, and the
    sum reshaped to fit. On square axes the shape comes out right and only the values are
    wrong, the case a shape check cannot see; elsewhere the reshape itself fails."""
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead))) if lead else g
    axes = tuple(len(shape) - 1 - i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


class GateSwappedAxis(Gate):
    """Mutation: b's gradient summed over the wrong broadcast axis."""

    def grad_b(self, g, shape):
        return _unbroadcast_mirrored(g, shape)


class GateMissingUnbroadcast(Gate):
    """Mutation: b's gradient not summed back to b's shape."""

    def grad_b(self, g, shape):
        return g


def seeded_inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    return leaf(rng.standard_normal((3, 3))), leaf(rng.standard_normal((3, 1)))


# --- the correct op passes, over drawn shapes and every backend ----------------------------------

def test_the_correct_op_passes_check_op_over_drawn_shapes_on_every_backend():
    assert "numpy" in available_backends() and "numba" in available_backends()
    check_op(Gate.apply, gate_expected, binary_shapes, [floats(), floats(-4.0, 4.0)],
             grad_subsets=True)


def test_the_correct_op_passes_on_the_seeded_inputs():
    report = assert_gradients(Gate.apply, *seeded_inputs())
    assert report.passed and [r.name for r in report.inputs] == ["input 0", "input 1"]
    assert all(r.max_abs_error < 1e-8 for r in report.inputs)


# --- seeded mutations fail, naming the input and the index ---------------------------------------

def test_a_wrong_gradient_of_the_other_input_names_that_input():
    with pytest.raises(GradcheckError, match=r"gradcheck failed for input 0 of shape \(3, 3\) "
                                             r"at index \(\d, \d\): analytic") as info:
        assert_gradients(GateOffByAFactorOnA.apply, *seeded_inputs())
    a, b = info.value.report.inputs
    assert not a.passed and b.passed and a.failures == 9


@pytest.mark.parametrize("mutant", [GateOffByAFactor, GateSwappedAxis])
def test_a_wrong_gradient_fails_with_the_input_and_the_index(mutant):
    with pytest.raises(GradcheckError, match=r"gradcheck failed for input 1 of shape \(3, 1\) "
                                             r"at index \(\d, 0\): analytic") as info:
        assert_gradients(mutant.apply, *seeded_inputs())
    report = info.value.report
    a, b = report.inputs
    assert a.passed and not b.passed                     # only b's rule was mutated
    assert b.worst_at.startswith("index (") and b.failures >= 1
    assert b.analytic != pytest.approx(b.numeric, rel=1e-5)
    text = str(info.value)
    assert "FAILED for 1 of 2 inputs" in text and "eps=1e-06, atol=1e-06, rtol=1e-05" in text
    if mutant is GateOffByAFactor:                       # every element is 0.1% off
        assert b.failures == 3 and b.max_rel_error == pytest.approx(1e-3, rel=1e-3)


def test_a_missing_unbroadcast_fails_naming_the_input_and_both_shapes():
    with pytest.raises(GradcheckError, match=r"gradcheck failed for input 1 of shape \(3, 1\): "
                                             r"GateMissingUnbroadcast.backward returned a "
                                             r"gradient of shape \(3, 3\).*missing unbroadcast"
                       ) as info:
        assert_gradients(GateMissingUnbroadcast.apply, *seeded_inputs())
    (b,) = info.value.report.failed
    assert (b.name, b.shape, b.grad_shape) == ("input 1", (3, 1), (3, 3))


_SHAPE = r"\([\d, ]*\)"


@st.composite
def square_broadcasts(draw):
    """(a's shape, b's shape): b broadcasts along one of the two square axes of a, so a
    gradient summed over the wrong one still has b's shape."""
    n = draw(st.integers(2, 4))
    lead = draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3))
    return (*lead, n, n), draw(st.sampled_from([(n, 1), (1, n)]))


@pytest.mark.parametrize("mutant, shapes, found", [
    (GateOffByAFactor, binary_shapes, rf"input 1 of shape {_SHAPE} at index {_SHAPE}: analytic"),
    (GateOffByAFactorOnA, binary_shapes,
     rf"input 0 of shape {_SHAPE} at index {_SHAPE}: analytic"),
    (GateSwappedAxis, square_broadcasts(),
     rf"input 1 of shape \((\d, 1|1, \d)\) at index {_SHAPE}: analytic"),
    (GateMissingUnbroadcast, binary_shapes,
     rf"input 1 of shape {_SHAPE}: GateMissingUnbroadcast.backward returned a gradient of "
     rf"shape {_SHAPE}"),
], ids=["factor-on-b", "factor-on-a", "swapped-axis", "missing-unbroadcast"])
def test_check_op_finds_the_mutation_over_drawn_shapes(mutant, shapes, found):
    with pytest.raises(GradcheckError, match=r"check_op on backend numpy, input shapes .*"
                                             + found):
        check_op(mutant.apply, gate_expected, shapes, backends=["numpy"],
                 settings={"phases": [Phase.generate]})             # found; no need to shrink


def test_the_correct_op_passes_where_the_swapped_axis_mutant_fails():
    check_op(Gate.apply, gate_expected, square_broadcasts(), backends=["numpy"])


def test_mutations_of_a_model_sized_input_fail_along_a_direction():
    rng = np.random.default_rng(1)
    a, b = leaf(rng.standard_normal((20, 30))), leaf(rng.standard_normal((30,)))
    assert_gradients(Gate.apply, a, b)
    with pytest.raises(GradcheckError, match=r"input 1 of shape \(20, 30\) along random "
                                             r"direction \d") as info:
        assert_gradients(GateOffByAFactor.apply, b, a)         # a (20, 30) broadcasts b's way
    assert info.value.report.failed[0].mode == "directional"


# --- the other checks ----------------------------------------------------------------------------

def test_assert_forward_checks_shape_dtype_and_values():
    x = leaf([1.0, 2.0])
    assert_forward(x * 2.0, [2.0, 4.0])
    with pytest.raises(AssertionError, match=r"shape \(2,\) != expected \(1, 2\)"):
        assert_forward(x * 2.0, [[2.0, 4.0]])
    with pytest.raises(AssertionError, match="dtype float32, expected float64"):
        assert_forward(x.astype(np.float32), [1.0, 2.0])
    assert_forward(x.astype(np.float32), [1.0, 2.0], dtype=None, rtol=1e-6)
    with pytest.raises(AssertionError, match="forward differs"):
        assert_forward(x * 2.0, [2.0, 4.1])


class FastSoftmaxWrong(Function):
    """A "fused" softmax whose backward forgets the subtracted term."""

    def forward(self, x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        self.y = e / e.sum(axis=-1, keepdims=True)
        return self.y

    def backward(self, g):
        return (self.y * g,)


def _softmax_composite(x):
    e = F.exp(x - F.max(x, axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_fused_vs_composite_passes_the_real_op_and_catches_a_wrong_one():
    x = np.random.default_rng(0).standard_normal((3, 4))
    check = assert_fused_matches_composite(lambda t: F.softmax(t, axis=-1), _softmax_composite, x)
    assert check.passed and [e.name for e in check.entries] == ["output", "input 0"]
    with pytest.raises(AssertionError, match=r"differs from its composition:\n.*\n  output: .*ok"
                                             r"\n  input 0: max \|diff\| .* DIFFERS"):
        assert_fused_matches_composite(FastSoftmaxWrong.apply, _softmax_composite, x)


def test_backends_agree_with_numpy():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 6)), rng.standard_normal(6), rng.standard_normal(6)
    checks = assert_backends_agree(lambda u, v, z: F.layer_norm(F.softmax(u), v, z, eps=1e-5),
                                   x, w, b)
    assert [c.against for c in checks] == ["numpy"] * (len(available_backends()) - 1)
    assert all(c.passed for c in checks)


def test_the_strategies_need_hypothesis_and_say_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    monkeypatch.delitem(sys.modules, "autograd.testing.strategies")
    with pytest.raises(ImportError, match=r'pip install "tinybert\[testing\]"'):
        importlib.import_module("autograd.testing.strategies")
    with pytest.raises(ImportError):
        check_op(Gate.apply, gate_expected, None)
    # the checks that need no hypothesis keep working
    assert_gradients(Gate.apply, *seeded_inputs())
