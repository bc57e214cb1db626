"""gradcheck itself: it must catch a wrong backward (element-wise and directional), say where,
pass integer inputs through, leave the caller's tensors alone and reject bad arguments.

The wrong backwards are tiny `Function` subclasses defined here, as in HIPS autograd's
define_gradient example: a correct forward with a deliberately wrong derivative.
"""
from __future__ import annotations

import numpy as np
import pytest

import autograd.functional as F
from autograd import Function, GradcheckError, Tensor, gradcheck
from autograd.gradcheck import gradcheck_report


def leaf(x, dtype=np.float64) -> Tensor:
    return Tensor(np.array(x, dtype=dtype), requires_grad=True)


class Square(Function):
    """x ** 2 with the right derivative."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, g):
        return (g * 2 * self.x,)


class SquareMissingFactor(Function):
    """x ** 2 whose backward forgets the factor 2."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, g):
        return (g * self.x,)


class SquareSlightlyOff(Function):
    """x ** 2 with a backward 0.1% too large: small, but far outside the tolerances."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, g):
        return (g * 2 * self.x * 1.001,)


class SquareWrongAtOneIndex(Function):
    """x ** 2 whose backward is right except at flat index 5."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, g):
        gx = g * 2 * self.x
        gx.reshape(-1)[5] += 1.0
        return (gx,)


class MulWrongSecondInput(Function):
    """a * b whose gradient for b is wrong (it returns g * b instead of g * a)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        return g * self.b, g * self.b


class AddNoUnbroadcast(Function):
    """a + b that forgets to sum the gradient back to b's (broadcast) shape."""

    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


def x_small():
    return leaf(np.random.default_rng(0).uniform(0.5, 2.0, (3, 4)))


def x_large():
    return leaf(np.random.default_rng(1).uniform(0.5, 2.0, (20, 20)))   # 400 > 256 elements


def test_a_correct_backward_passes_in_every_mode():
    for mode in ("auto", "elementwise", "directional"):
        assert gradcheck(Square.apply, x_small(), mode=mode) is True
        assert gradcheck(Square.apply, x_large(), mode=mode) is True


@pytest.mark.parametrize("op", [SquareMissingFactor, SquareSlightlyOff])
def test_a_wrong_backward_fails_elementwise_with_a_full_report(op):
    with pytest.raises(GradcheckError) as info:
        gradcheck(op.apply, x_small(), mode="elementwise")
    msg = str(info.value)
    assert "input 0 of shape (3, 4)" in msg
    assert "at index (" in msg
    assert "analytic" in msg and "numeric" in msg and "|diff|" in msg
    assert "eps=1e-06, atol=1e-06, rtol=1e-05" in msg
    assert "12 of 12 elements out of tolerance" in msg


@pytest.mark.parametrize("op", [SquareMissingFactor, SquareSlightlyOff])
@pytest.mark.parametrize("make", [x_small, x_large])
def test_a_wrong_backward_fails_directionally(op, make):
    x = make()
    with pytest.raises(GradcheckError, match=rf"input 0 of shape \({x.shape[0]}, {x.shape[1]}\) "
                                             r"along random direction (\d): analytic <grad, d> .* "
                                             r"vs numeric .*eps=1e-06, atol=1e-06, rtol=1e-05"
                       ) as info:
        gradcheck(op.apply, x, mode="directional")
    # the message names the direction where the error is largest, as the report says
    r = info.value.report.inputs[0]
    assert r.mode == "directional" and r.checked == 3 and r.failures == 3
    assert r.worst_at == r.max_abs_at and f"along random {r.worst_at}:" in str(info.value)


def test_auto_mode_is_elementwise_for_small_inputs_and_directional_for_large():
    with pytest.raises(GradcheckError, match="at index"):
        gradcheck(SquareMissingFactor.apply, x_small())
    with pytest.raises(GradcheckError, match="random direction"):
        gradcheck(SquareMissingFactor.apply, x_large())
    with pytest.raises(GradcheckError, match="at index"):
        gradcheck(SquareMissingFactor.apply, x_large(), max_elements=400)


def test_the_report_names_the_worst_index_and_the_input():
    with pytest.raises(GradcheckError, match=r"input 0 of shape \(3, 4\) at index \(1, 1\): "
                                             r".*1 of 12 elements out of tolerance"):
        gradcheck(SquareWrongAtOneIndex.apply, x_small())
    a, b = leaf([1.0, 2.0]), leaf([3.0, -4.0])
    with pytest.raises(GradcheckError, match=r"input 1 of shape \(2,\)"):
        gradcheck(MulWrongSecondInput.apply, a, b)
    # Only inputs that require grad are checked: with b constant the wrong rule is never used.
    assert gradcheck(MulWrongSecondInput.apply, a, Tensor(np.array([3.0, -4.0])))


def test_the_report_shows_the_tolerances_it_was_given():
    with pytest.raises(GradcheckError, match=r"eps=1e-05, atol=1e-08, rtol=0.001"):
        gradcheck(SquareMissingFactor.apply, x_small(), eps=1e-5, atol=1e-8, rtol=1e-3)
    # a loose enough tolerance accepts the 0.1% error
    assert gradcheck(SquareSlightlyOff.apply, x_small(), atol=1e-2, rtol=1e-2)


def test_a_backward_with_the_wrong_shape_is_reported_by_the_engine():
    # The engine's error names the op and its input; gradcheck reports it against its own input.
    with pytest.raises(GradcheckError, match=r"gradcheck failed for input 1 of shape \(3,\): "
                                             r"AddNoUnbroadcast.backward returned a gradient of "
                                             r"shape \(2, 3\) for an input of shape \(3,\) "
                                             r"\(its input 1\).*missing unbroadcast") as info:
        gradcheck(AddNoUnbroadcast.apply, leaf(np.ones((2, 3))), leaf(np.ones(3)))
    (r,) = info.value.report.inputs
    assert (r.name, r.mode, r.grad_shape, r.passed) == ("input 1", "shape", (2, 3), False)
    with pytest.raises(RuntimeError, match=r"AddNoUnbroadcast.backward returned a gradient of "
                                           r"shape \(2, 3\) for an input of shape \(3,\)"):
        AddNoUnbroadcast.apply(leaf(np.ones((2, 3))), leaf(np.ones(3))).sum().backward()


def test_a_kink_fails_which_is_why_the_op_tests_dodge_them():
    with pytest.raises(GradcheckError):
        gradcheck(F.relu, leaf([0.0, 1.0]))                 # one-sided difference: 0.5 vs 0
    assert gradcheck(F.relu, leaf([-0.5, 1.0]))


def test_integer_inputs_pass_through():
    seen = []

    def fn(w, ids, k):
        seen.append((ids, k))
        return F.embedding(ids, w) * float(k)

    ids = Tensor(np.array([[0, 2], [2, 2]]))
    assert gradcheck(fn, leaf(np.ones((3, 2))), ids, 3)
    assert all(i is ids and k == 3 for i, k in seen)
    assert ids.dtype == np.int64
    assert gradcheck(lambda x, m: F.where(m, x, 0.0), leaf([1.0, 2.0]),
                     np.array([True, False]))


def test_inputs_are_cast_to_float64_and_left_untouched():
    x = leaf([0.5, 1.5], np.float32)
    dtypes = []

    def fn(u):
        dtypes.append(u.dtype)
        return u * u

    assert gradcheck(fn, x)
    assert set(dtypes) == {np.dtype(np.float64)}
    assert x.dtype == np.float32 and x.grad is None
    np.testing.assert_array_equal(x.numpy(), np.array([0.5, 1.5], np.float32))


def test_outputs_that_do_not_move_do_not_spoil_the_difference():
    # A large constant part of the output must cancel exactly, not swamp the 1e-6 differences.
    x = leaf(np.linspace(-1.0, 1.0, 24).reshape(2, 3, 4))
    mask = np.arange(4) % 2 == 0
    assert gradcheck(lambda u: F.masked_fill(u, mask, 1e8), x)
    assert gradcheck(lambda u: F.pad(u, [(0, 0), (0, 0), (50, 50)], value=-3e7), x)


def test_params_are_checked_and_restored():
    w = leaf([[1.0, -2.0], [0.5, 3.0]])
    before = w.numpy().copy()
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    assert gradcheck(lambda u: F.linear(u, w), x, params=[w])
    np.testing.assert_array_equal(w.numpy(), before)
    with pytest.raises(TypeError, match="params must be float64"):
        gradcheck(lambda u: u * 1.0, x, params=[leaf([1.0], np.float32)])


def test_bad_arguments_are_rejected():
    x = x_small()
    with pytest.raises(ValueError, match="mode must be auto, elementwise or directional, got "
                                         "'elementwize'"):
        gradcheck(Square.apply, x, mode="elementwize")
    with pytest.raises(ValueError, match="no input requires grad"):
        gradcheck(lambda u: u * 2.0, Tensor(np.ones(2)))
    with pytest.raises(TypeError, match="fn must return a Tensor, got ndarray"):
        gradcheck(lambda u: u.numpy(), x)


# --- the report: error sizes and where, for passing checks too ----------------------------------

def test_a_passing_check_reports_its_error_sizes_and_where():
    x = leaf(np.random.default_rng(0).uniform(0.5, 2.0, (3, 4)))
    w = leaf(np.random.default_rng(1).standard_normal((20, 20)))
    report = gradcheck_report(lambda a, b: (Square.apply(a).sum() + (b * b).sum()) * 1.0, x, w)
    assert report.passed and report.output_shape == ()
    small, large = report.inputs
    assert (small.name, small.mode, small.checked, small.failures) == ("input 0", "elementwise",
                                                                      12, 0)
    assert (large.name, large.mode, large.checked) == ("input 1", "directional", 3)
    for r in report.inputs:
        assert 0.0 <= r.max_abs_error < 1e-6 and 0.0 <= r.max_rel_error < 1e-5
        assert r.max_abs_at.startswith("index (" if r is small else "direction ")
    abs_err, where = report.max_error("abs")
    assert abs_err == max(r.max_abs_error for r in report.inputs) and where.startswith("input ")
    text = report.format()
    assert "eps=1e-06, atol=1e-06, rtol=1e-05" in text and "12 elements" in text
    assert "3 directions" in text and text.count(" ok") == 2
    data = report.to_dict()
    assert data["passed"] and data["inputs"][0]["shape"] == [3, 4]
    assert data["max_abs_error"] == abs_err


def test_every_input_is_checked_and_the_failing_ones_are_named():
    a, b = leaf([1.0, 2.0]), leaf([3.0, -4.0])
    with pytest.raises(GradcheckError) as info:
        gradcheck(MulWrongSecondInput.apply, a, b)
    report = info.value.report
    assert [r.passed for r in report.inputs] == [True, False]
    assert "FAILED for 1 of 2 inputs" in str(info.value)
    assert report.failed[0].worst_at in ("index (0,)", "index (1,)")


def test_named_params_appear_by_name():
    w = leaf([[1.0, -2.0], [0.5, 3.0]])
    b = leaf([0.1, 0.2])
    x = Tensor(np.array([1.0, 2.0]))
    report = gradcheck_report(lambda u: F.linear(u, w, b), x,
                              params=[("dense.weight", w), ("dense.bias", b)])
    assert [r.name for r in report.inputs] == ["dense.weight", "dense.bias"]
    report = gradcheck_report(lambda u: F.linear(u, w, b), x, params={"w": w})
    assert [r.name for r in report.inputs] == ["w"]


def test_nan_gradients_fail():
    class NanBackward(Function):
        def forward(self, x):
            return x * 1.0

        def backward(self, g):
            return (g * np.nan,)

    report = gradcheck_report(NanBackward.apply, x_small())
    assert not report.passed and report.inputs[0].failures == 12
    assert report.to_dict()["inputs"][0]["max_abs_error"] == "inf"


def _relu_net(seed: int = 0):
    rng = np.random.default_rng(seed)
    w1, w2 = leaf(rng.standard_normal((64, 8))), leaf(rng.standard_normal((1, 64)))
    x = Tensor(rng.standard_normal((32, 8)))
    return (lambda: F.linear(F.relu(F.linear(x, w1)), w2).sum()), w1, w2


def test_kinks_along_a_direction_are_dodged_when_asked():
    # A ReLU layer with 2048 pre-activations: with a large step some cross zero along almost
    # every direction, so the central difference averages two slopes.
    fn, w1, w2 = _relu_net()
    plain = gradcheck_report(fn, params=[w1, w2], mode="directional", eps=1e-2, directions=8)
    assert not plain.passed
    dodged = gradcheck_report(fn, params=[w1, w2], mode="directional", eps=1e-2, directions=8,
                              kink_retries=50)
    assert dodged.inputs[0].kinks > 0
    assert dodged.passed, dodged.format()
    assert "kinks dodged" in dodged.format()


def test_dodging_kinks_does_not_hide_a_wrong_gradient():
    class ReluOff(Function):
        def forward(self, x):
            self.y = np.maximum(x, 0.0)
            return self.y

        def backward(self, g):
            return (g * (self.y > 0) * 1.001,)

    rng = np.random.default_rng(3)
    w = leaf(rng.standard_normal((64, 8)))
    x = Tensor(rng.standard_normal((32, 8)))
    with pytest.raises(GradcheckError, match="param 0 of shape \\(64, 8\\) along random"):
        gradcheck(lambda: ReluOff.apply(F.linear(x, w)).sum(), params=[w], mode="directional",
                  kink_retries=5)


def test_kink_distance_measures_how_close_a_function_runs_to_its_kinks():
    from autograd.gradcheck import kink_distance
    x = leaf([[-2.0, 0.3], [1.5, 5.9]])
    assert kink_distance(lambda u: F.relu(u), x) == pytest.approx(0.3)
    assert kink_distance(lambda u: F.relu6(u) + F.abs(u - 1.0), x) == pytest.approx(0.1)
    assert kink_distance(lambda u: F.max(u, axis=1), x) == pytest.approx(2.3)
    assert kink_distance(lambda u: F.max(u), leaf([1.0, 1.0])) == 0.0        # a tie
    assert kink_distance(lambda u: F.exp(u) * u, x) == float("inf")
