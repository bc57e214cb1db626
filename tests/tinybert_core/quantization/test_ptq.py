"""Post-training quantization of whole models: int8 close to float for every family and head,
what is and is not quantized, calibration and its observers, the attention mask, keep-float."""
from __future__ import annotations

import numpy as np
import pytest

from autograd import nn, no_grad
from int8_models import batches, make_model
from tinybert_core.quantization import (
    MinMaxObserver,
    PercentileObserver,
    QuantizedEmbedding,
    QuantizedLinear,
    QuantizedLMPredictionHead,
    calibrate,
    quantize_model,
    resolve_keep_float,
)
from tinybert_core.quantization.ptq import units

OUTPUTS = {"pretraining": "prediction_logits", "sequence_classification": "logits",
           "question_answering": "start_logits", "base": "last_hidden_state"}


def outputs(model, data, task):
    with no_grad():
        return np.concatenate([getattr(model(**b), OUTPUTS[task]).numpy() for b in data])


def closeness(ref, got):
    rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    cos = float((ref * got).sum() / (np.linalg.norm(ref) * np.linalg.norm(got)))
    return rel, cos


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_int8_model_is_close_to_float(family, mode):
    model = make_model(family)
    data = batches()
    q = quantize_model(model, mode=mode, calibration=data)
    ref, got = outputs(model, data, "pretraining"), outputs(q, data, "pretraining")
    rel, cos = closeness(ref, got)
    assert rel < 0.05 and cos > 0.998, (family, mode, rel, cos)
    assert (ref.argmax(-1) == got.argmax(-1)).mean() > 0.85


@pytest.mark.parametrize("task", ["sequence_classification", "question_answering", "base"])
def test_task_heads_are_quantized_too(task):
    model = make_model("mobilebert", task)
    data = batches()
    q = quantize_model(model, mode="dynamic", activations="per_tensor")
    rel, cos = closeness(outputs(model, data, task), outputs(q, data, task))
    assert rel < 0.05 and cos > 0.998, (task, rel, cos)
    head = {"sequence_classification": "classifier", "question_answering": "qa_outputs"}
    if task in head:
        assert isinstance(getattr(q, head[task]), QuantizedLinear)


def test_what_is_quantized_and_what_stays_float():
    model = make_model("mobilebert")
    q = quantize_model(model)
    kinds = {type(m).__name__ for _, m in q.named_modules()}
    assert "Linear" not in kinds and "PendingLinear" not in kinds
    n_linear = sum(isinstance(m, nn.Linear) for _, m in model.named_modules())
    n_int8 = sum(isinstance(m, QuantizedLinear) for _, m in q.named_modules())
    assert n_int8 == n_linear - 1 + 2    # MLM `dense` storage -> the head's two GEMMs
    emb = q.mobilebert.embeddings
    assert isinstance(emb.word_embeddings, QuantizedEmbedding)
    assert isinstance(emb.position_embeddings, nn.Embedding)            # float: read by slicing
    assert isinstance(emb.token_type_embeddings, nn.Embedding)
    assert isinstance(emb.LayerNorm, nn.NoNorm)                          # norms stay float
    head = q.cls.predictions
    assert isinstance(head, QuantizedLMPredictionHead)
    assert head.decoder.weight.data is not None and head.embedding_size == 16
    np.testing.assert_array_equal(head.decoder.int8_weight(), emb.word_embeddings.weight)
    assert all(not p.requires_grad for p in q.parameters())              # frozen
    assert not q.training


def test_model_is_unchanged_by_quantization():
    model = make_model("bert")
    before = {k: v.copy() for k, v in model.state_dict().items()}
    quantize_model(model, mode="static", calibration=batches())
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert all(type(m).__name__ != "Watched" for _, m in model.named_modules())


def test_per_row_activations_are_at_least_as_accurate_as_per_tensor():
    model = make_model("mobilebert")
    data = batches()
    ref = outputs(model, data, "pretraining")
    per_row = closeness(ref, outputs(quantize_model(model), data, "pretraining"))[0]
    per_tensor = closeness(ref, outputs(quantize_model(model, activations="per_tensor"), data,
                                        "pretraining"))[0]
    assert per_row <= per_tensor * 1.05


def test_calibrated_ranges_are_the_observed_inputs():
    model = make_model("mobilebert")
    data = batches()
    layers = units(model)
    ranges = calibrate(model, data, layers)
    name = "mobilebert.encoder.layer.1.attention.self.query"
    seen = []
    from tinybert_core.quantization.ptq import watching
    with no_grad(), watching(model, {name: (lambda x: seen.append(x.numpy()), None)}):
        for b in data:
            model(**b)
    x = np.concatenate([s.reshape(-1) for s in seen])
    assert ranges[name] == (float(x.min()), float(x.max()))
    assert set(ranges) == {n for n, k in layers.items() if k != "embedding"}
    z = "cls.predictions.decoder"          # the MLM head: its transform's output
    assert ranges[z][0] < 0 < ranges[z][1]


def test_observers():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(10_000), rng.standard_normal(10_000) * 2
    a[5] = 40.0
    mm, pc = MinMaxObserver(), PercentileObserver(99.0)
    for x in (a, b):
        mm.update(x)
        pc.update(x)
    assert mm.range() == (min(a.min(), b.min()), max(a.max(), b.max()))
    lo, hi = pc.range()
    want = [np.mean([np.percentile(x, q) for x in (a, b)]) for q in (1.0, 99.0)]
    np.testing.assert_allclose((lo, hi), want, rtol=1e-6)
    assert hi < 10 < mm.range()[1]                 # the outlier is clipped, not followed
    for obs in (MinMaxObserver(), PercentileObserver()):
        with pytest.raises(ValueError, match="no calibration batch"):
            obs.range()
        with pytest.raises(ValueError, match="inf or nan"):
            obs.update(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="percentile"):
        PercentileObserver(40.0)


@pytest.mark.parametrize("mask_value", [None, -6.0])
def test_the_attention_mask_never_reaches_a_calibrated_range(mask_value):
    """HF's additive mask is finfo(float32).min; it is added inside the float softmax, so no
    int8 layer's input range sees it (the pitfall that broke ExecuTorch's MobileBERT)."""
    model = make_model("mobilebert")
    model.config.attention_mask_value = mask_value
    data = batches(n=1, batch=4, seq=12)
    plain = calibrate(model, data, units(model))
    mask = np.ones((4, 12), np.int64)
    mask[:, 8:] = 0                                          # padded keys
    padded = calibrate(model, [{**data[0], "attention_mask": mask}], units(model))
    worst = max(max(abs(lo), abs(hi)) for lo, hi in padded.values())
    assert worst < 1e3 * max(max(abs(lo), abs(hi)) for lo, hi in plain.values())
    assert worst < 1e6


def test_keep_float_patterns():
    model = make_model("mobilebert", "sequence_classification")
    keep = resolve_keep_float(model, ["classifier", "mobilebert.encoder.layer.1.ffn.*"])
    assert keep == ["classifier", "mobilebert.encoder.layer.1.ffn.0.intermediate.dense",
                    "mobilebert.encoder.layer.1.ffn.0.output.dense"]
    assert resolve_keep_float(model, ["attention.self.value"]) == [
        f"mobilebert.encoder.layer.{i}.attention.self.value" for i in range(2)]
    q = quantize_model(model, keep_float=keep)
    assert isinstance(q.classifier, nn.Linear)
    np.testing.assert_array_equal(q.classifier.weight.numpy(), model.classifier.weight.numpy())
    assert isinstance(q.mobilebert.encoder.layer[1].ffn[0].output.dense, nn.Linear)
    assert isinstance(q.mobilebert.encoder.layer[1].intermediate.dense, QuantizedLinear)
    assert q.config.extra["quantization_config"]["modules_to_not_convert"] == keep
    with pytest.raises(ValueError, match="matches no Linear"):
        resolve_keep_float(model, ["*.nothing"])


def test_float_word_embeddings_keep_the_mlm_head_float():
    model = make_model("mobilebert")
    q = quantize_model(model, keep_float=["mobilebert.embeddings.word_embeddings"])
    assert isinstance(q.mobilebert.embeddings.word_embeddings, nn.Embedding)
    assert not isinstance(q.cls.predictions, QuantizedLMPredictionHead)
    assert q.cls.predictions.decoder.weight is q.mobilebert.embeddings.word_embeddings.weight
    assert isinstance(q.cls.predictions.transform.dense, QuantizedLinear)
    data = batches()
    rel, _ = closeness(outputs(model, data, "pretraining"), outputs(q, data, "pretraining"))
    assert rel < 0.05


def test_static_needs_calibration():
    with pytest.raises(ValueError, match="calibration"):
        quantize_model(make_model("bert"), mode="static")
