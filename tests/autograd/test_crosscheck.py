"""Cross-checks of analytic gradients: the comparison rule, the op recorder, another backend
against NumPy, and the PyTorch replay (skipped where PyTorch is absent; its absence is then a
clear error, which is tested without it)."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest

import autograd.functional as F
from autograd import Function, no_grad
from autograd.audit import audit_cases
from autograd.crosscheck import against_torch, compare, compare_gradients, gradients
from autograd.function import record_ops
from autograd.ops import elementwise as E
from autograd.testing import leaf
from autograd.torch_replay import TorchUnavailable


def test_compare_is_normwise_unless_asked_elementwise():
    ref = np.array([1000.0, 1e-9])
    ours = ref + np.array([0.0, 1e-9])                  # the tiny entry is off by 100%
    assert compare("g", ours, ref, rtol=1e-9, atol=0.0).passed
    bad = compare("g", ours, ref, rtol=1e-9, atol=0.0, elementwise=True)
    assert not bad.passed and bad.at == "index (1,)" and bad.ratio > 1
    shape = compare("g", np.zeros(2), np.zeros(3))
    assert not shape.passed and "shape (2,) vs (3,)" in shape.at
    assert compare("g", [np.nan, 1.0], [np.nan, 1.0]).passed        # nan meets nan
    assert not compare("g", [np.nan, 1.0], [0.0, 1.0]).passed
    assert compare("g", [np.inf], [np.inf]).passed


def test_record_ops_lists_every_op_with_its_attributes():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    with record_ops() as ops:
        y = F.softmax(x * 2.0, axis=0).sum()
        with no_grad():
            F.exp(x)
    assert [op.op.__name__ for op in ops] == ["Mul", "Softmax", "Sum", "Exp"]
    assert ops[1].attrs["axis"] == 0 and ops[1].inputs[0] is ops[0].output
    assert ops[2].output is y
    assert [op.grad_enabled for op in ops] == [True, True, True, False]
    F.exp(x)                                            # nothing is recorded outside the block
    assert len(ops) == 4


def test_another_backend_agrees_with_numpy():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 5)), rng.standard_normal(5)

    def fn(u, v):
        return F.cross_entropy(F.gelu(F.no_norm(u, v, v)), np.array([1, 4, -100]))

    ours = gradients(fn, leaf(x, device="numba"), leaf(w, device="numba"))
    reference = gradients(fn, leaf(x), leaf(w))
    check = compare_gradients("numpy", ours, reference)
    assert check.passed, check.format()
    assert [e.name for e in check.entries] == ["output", "input 0", "input 1"]
    assert "vs numpy: max rel" in check.summary()


def test_without_pytorch_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(TorchUnavailable, match="needs PyTorch, which is not installed here: "
                                               "pip install torch"):
        against_torch(F.exp, leaf([1.0]))


# --- with PyTorch --------------------------------------------------------------------------------

@pytest.mark.parametrize("case", [c[0] for c in audit_cases()])
def test_every_audited_op_agrees_with_pytorch(case):
    pytest.importorskip("torch")
    name, fn, inputs = next(c for c in audit_cases() if c[0] == case)
    check = against_torch(fn, *inputs)
    assert check.passed, check.format()
    assert check.worst().max_rel_diff < 1e-12


class ExpWrong(Function):
    """exp whose backward is 0.1% too large."""

    def forward(self, x):
        self.y = np.exp(x)
        return self.y

    def backward(self, g):
        return (g * self.y * 1.001,)


def test_pytorch_catches_a_wrong_backward_and_needs_a_rule_for_a_new_op():
    pytest.importorskip("torch")
    x = leaf(np.linspace(-1, 1, 6).reshape(2, 3))
    with pytest.raises(NotImplementedError, match=r"ExpWrong has no PyTorch rule to replay; "
                                                  r"pass one in extra_rules"):
        against_torch(lambda u: ExpWrong.apply(u).sum(), x)
    check = against_torch(lambda u: ExpWrong.apply(u * 2.0).sum(), x,
                          extra_rules={ExpWrong: lambda torch, u: torch.exp(u)})
    out, grad = check.entries
    assert out.passed and not grad.passed
    assert grad.max_rel_diff == pytest.approx(1e-3, rel=1e-6)
    assert "DIFFERS for input 0" in check.summary()


def test_pytorch_replay_follows_tinybert_where_it_defines_an_edge_case():
    pytest.importorskip("torch")
    mask = np.array([[0.0, 0.0], [-np.inf, -np.inf]])       # the second row fully masked
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    assert against_torch(lambda u: F.softmax(u, mask=mask), x).passed
    assert against_torch(lambda u: F.cross_entropy(u, np.array([-100, -100])), x).passed
    y = against_torch(lambda u: F.pad(u, ((1, 0), (0, 2)), value=-1.5) * E.Exp.apply(u).sum(), x)
    assert y.passed and not math.isinf(y.worst().ratio)
    assert against_torch(lambda u: u.astype(np.float32).astype(np.float64) * 2.0, x,
                         rtol=1e-6).passed
