"""`trace_model` / `trace_op`: a MobileBERT block grouped under the paper's names."""
from __future__ import annotations

import pytest

from tinybert_core.teaching.trace import trace_model, trace_op


def test_mobilebert_block_grouped_in_the_papers_order():
    trace = trace_model(config="mobilebert-small", layer=1, max_seq_length=8)
    labels = []
    for node in trace.graph.nodes:
        label = trace.group(node)
        assert label is not None, node.module
        if not labels or labels[-1] != label:
            labels.append(label)
    heads = [label.split(":")[0] for label in labels]
    assert heads == ["input bottleneck", "input bottleneck, shared for query and key",
                     "multi-head attention", "attention output", "stacked FFN 1 of 4",
                     "stacked FFN 2 of 4", "stacked FFN 3 of 4", "stacked FFN 4 of 4 (the "
                     "block's own intermediate + output)", "output bottleneck",
                     "backward starts here"]
    text = trace.text()
    assert "encoder block 1" in text and "no_norm_fwd" in text and "softmax_bwd" in text
    assert all(n.backward_ran for n in trace.graph.nodes)


def test_backbone_scope_and_bad_layer():
    trace = trace_model(config="mobilebert-small", scope="model", max_seq_length=6)
    groups = {trace.group(n) for n in trace.graph.nodes}
    assert {"embeddings", "encoder block 0", "encoder block 3"} <= groups
    with pytest.raises(ValueError, match="the model has 4 blocks"):
        trace_model(config="mobilebert-small", layer=4)


def test_named_op_and_unknown_op():
    trace = trace_op("no_norm")
    assert [n.op for n in trace.graph.nodes] == ["NoNorm", "Sum"]
    assert trace.graph.nodes[0].forward_kernels == ["no_norm_fwd [reference]"]
    with pytest.raises(ValueError, match="unknown op 'nope'; known: .*softmax"):
        trace_op("nope")


def test_numba_backend_kernels_are_named():
    import numpy as np

    import autograd.functional as F
    import backends
    from autograd.tensor import Tensor
    from autograd.trace import GraphRecorder
    if backends.availability().get("numba") is not None:
        pytest.skip("numba backend unavailable")
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 8)).astype(np.float32),
               requires_grad=True, device="numba")
    with GraphRecorder(names={"x": x}) as rec:
        F.sum(F.softmax(x, axis=-1) * 2.0).backward()
    softmax = rec.graph.nodes[0]
    assert softmax.backend == "numba"
    assert softmax.forward_kernels == ["softmax_fwd [numba]"]
    assert softmax.backward_kernels == ["softmax_bwd [numba]"]
