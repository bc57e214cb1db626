"""The graph recorder (autograd/trace.py): what it records, that it changes nothing, and that
it leaves no hook behind."""
from __future__ import annotations

import numpy as np
import pytest

import autograd.functional as F
from autograd import function, nn
from autograd.tensor import Tensor
from autograd.trace import GraphRecorder, format_graph, to_dot


class Two(nn.Module):
    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.first = nn.Linear(4, 3)
        self.second = nn.Linear(3, 2)
        for layer in (self.first, self.second):
            layer.weight.data[:] = rng.standard_normal(layer.weight.shape)

    def forward(self, x):
        return F.softmax(self.second(F.relu(self.first(x))), axis=-1)


W = np.array([1.0, -2.0], np.float32)      # so the loss depends on the softmax's output


def _run(model, x, record):
    if not record:
        loss = F.mean(model(x) * W)
        loss.backward()
        return loss, None
    with GraphRecorder(model, names={"x": x}) as rec:
        loss = F.mean(model(x) * W)
        loss.backward()
    return loss, rec.graph


def test_records_ops_modules_kernels_and_saved_arrays():
    model = Two()
    x = Tensor(np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32),
               requires_grad=True)
    _, graph = _run(model, x, True)
    ops = [n.op for n in graph.nodes]
    assert ops == ["Linear", "Relu", "Linear", "Softmax", "Mul", "Mean"]
    assert [n.module for n in graph.nodes] == ["first", "", "second", "", "", ""]
    first, relu, _, softmax, mul, _ = graph.nodes
    assert mul.inputs == ["%3", "const"]
    assert first.inputs == ["x", "first.weight", "first.bias"]
    assert relu.inputs == ["%0"]
    assert first.shape == (5, 3) and first.dtype == "float32" and first.backend == "numpy"
    assert softmax.forward_kernels == ["softmax_fwd [reference]"]
    assert softmax.backward_kernels == ["softmax_bwd [reference]"]
    assert first.forward_kernels == ["numpy.matmul [BLAS]"]
    assert "y" in softmax.saved and "(5, 2)" in softmax.saved["y"]     # softmax keeps its output
    assert all(n.backward_ran for n in graph.nodes)
    assert set(graph.parameters) == {"x", "first.weight", "first.bias", "second.weight",
                                     "second.bias"}
    text = format_graph(graph)
    assert "%3   Softmax" in text and "saved for backward: " in text
    dot = to_dot(graph)
    assert dot.startswith("digraph") and "n0 -> n1;" in dot and "first.weight" in dot


def test_recording_changes_no_value_and_leaves_no_hook():
    x = np.random.default_rng(2).standard_normal((5, 4)).astype(np.float32)
    grads = []
    for record in (False, True):
        model = Two()
        t = Tensor(x, requires_grad=True)
        loss, _ = _run(model, t, record)
        grads.append((loss.item(), t.grad.copy(), model.first.weight.grad.copy()))
    assert grads[0][0] == grads[1][0]
    np.testing.assert_array_equal(grads[0][1], grads[1][1])
    np.testing.assert_array_equal(grads[0][2], grads[1][2])
    assert function._observer is None
    import backends.base
    assert backends.base._kernel_log is None


def test_no_nested_recordings():
    with GraphRecorder():
        with pytest.raises(RuntimeError, match="another recording"):
            GraphRecorder().__enter__()
    assert function._observer is None


def test_constants_and_ops_without_grad():
    a = Tensor(np.ones((2, 2), np.float32), requires_grad=True)
    with GraphRecorder(names={"a": a}) as rec:
        out = (a * 2.0).sum()
        out.backward()
    mul = rec.graph.nodes[0]
    assert mul.inputs == ["a", "const"]
