"""The per-layer error report: its numbers against a direct computation, and that it points at
the layer that causes the error."""
from __future__ import annotations

import json

import numpy as np

from autograd import Tensor, no_grad
from int8_models import batches, make_model
from tinybert_core.quantization import quantize_model
from tinybert_core.quantization.ptq import watching
from tinybert_core.quantization.report import block_of, format_report, quantization_report

CULPRIT = "mobilebert.encoder.layer.0.ffn.0.output.dense"


def test_report_finds_the_layer_that_causes_the_error():
    model = make_model("mobilebert")
    layer = model.mobilebert.encoder.layer[0].ffn[0].output.dense
    w = layer.weight.numpy()
    w[:, 0] = 60 * np.abs(w).max()          # one huge input column: coarse steps in every channel
    q = quantize_model(model)
    report = quantization_report(model, q, batches(), max_sequences=4)
    assert report["sequences"] == 4
    worst = report["worst"][0]
    assert worst["name"] == CULPRIT and worst["block"] == "FFN output" and worst["layer"] == 0
    others = [r["local"]["rel_error"] for r in report["layers"]
              if "local" in r and r["name"] != CULPRIT]
    assert worst["local"]["rel_error"] > 1.5 * max(others)
    assert worst["weight_rel_error"] == max(r["weight_rel_error"] for r in report["layers"]
                                            if r["weight_rel_error"] is not None)
    json.dumps(report, allow_nan=False)                      # plain JSON, no NaN
    text = format_report(report)
    assert CULPRIT in text and "FFN output" in text and "argmax agreement" in text


def test_local_error_is_the_layer_alone_on_float_inputs():
    model = make_model("bert")
    q = quantize_model(model)
    data = batches(n=1, batch=2)
    report = quantization_report(model, q, data, max_sequences=2)
    name = "bert.encoder.layer.1.attention.self.value"
    row = next(r for r in report["layers"] if r["name"] == name)
    seen = []
    with no_grad(), watching(model, {name: (None, lambda x, y: seen.append((x, y)))}):
        for i in range(2):
            model(input_ids=data[0]["input_ids"][i:i + 1])
    with no_grad():
        err = np.concatenate([(q.bert.encoder.layer[1].attention.self.value(Tensor(x.numpy()))
                               .numpy() - y.numpy()).ravel() for x, y in seen])
    ref = np.concatenate([y.numpy().ravel() for _, y in seen])
    np.testing.assert_allclose(row["local"]["rel_error"], np.linalg.norm(err) /
                               np.linalg.norm(ref), rtol=1e-6)
    assert 0.9 < row["local"]["cosine"] <= 1.0
    assert report["output"]["field"] == "prediction_logits"
    assert {b["block"] for b in report["blocks"]} >= {"attention query/key/value", "FFN output",
                                                      "MLM decoder", "word embeddings"}
    assert [d["layer"] for d in report["depth"]] == [0, 1]


def test_block_names_follow_the_paper():
    assert block_of("mobilebert.encoder.layer.7.bottleneck.attention.dense") == \
        ("bottleneck for query/key", 7)
    assert block_of("mobilebert.encoder.layer.3.output.bottleneck.dense")[0] == \
        "output bottleneck"
    assert block_of("mobilebert.encoder.layer.3.output.dense")[0] == "FFN output"
    assert block_of("mobilebert.encoder.layer.3.attention.output.dense")[0] == "attention output"
    assert block_of("mobilebert.encoder.layer.3.ffn.2.intermediate.dense")[0] == \
        "FFN intermediate"
    assert block_of("classifier") == ("task head", None)
