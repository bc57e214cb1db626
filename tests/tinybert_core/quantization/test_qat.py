"""Quantization-aware training (tinybert_core/quantization/qat.py): the prepared float model
computes what its dynamic int8 version computes, keeps its parameters and keys, saves as an
ordinary float checkpoint, and passes a gradient to every parameter."""
from __future__ import annotations

import numpy as np
import pytest

from autograd import nn, no_grad
from backends import reference
from int8_models import batches, make_model
from tinybert_core import load_model
from tinybert_core.quantization import QuantizedLinear, quantize_model
from tinybert_core.quantization.modules import move, quantize_weight
from tinybert_core.quantization.qat import (
    CONFIG_KEY,
    QATConfig,
    QATEmbedding,
    QATLinear,
    default_activation_max,
    prepare_qat,
)

HEAD = {"sequence_classification": "logits", "question_answering": "start_logits"}


def run(model, data, task):
    with no_grad():
        return np.concatenate([getattr(model(**b), HEAD[task]).numpy() for b in data])


def gap(a, b):
    return float(np.abs(a - b).max())


def assert_same_arithmetic(qat, int8, floats=None):
    """QAT and int8 agree to float32 rounding (1e-5 of the output scale) nearly everywhere.
    Not everywhere: the two sum in different orders (a float32 GEMM of dequantized values
    against an exact int32 one, rescaled), and where an activation upstream lies within that
    rounding of a code boundary, its code can differ by one step (seen on 1-3% of MobileBERT
    QA logits, never on more than 5%). Such a flip still moves the output far less than
    quantization itself does (float vs int8)."""
    close = np.abs(qat - int8) <= 1e-5 * (np.abs(int8).max() + np.abs(int8))
    assert close.mean() >= 0.95, (close.mean(), gap(qat, int8))
    if floats is not None:
        assert gap(qat, int8) < 0.25 * gap(floats, int8), (gap(qat, int8), gap(floats, int8))


@pytest.mark.parametrize("activations", ["per_row", "per_tensor"])
@pytest.mark.parametrize("task", sorted(HEAD))
def test_qat_forward_equals_the_dynamic_int8_model(family, task, activations):
    """The QAT forward is the int8 model's arithmetic (dispatch "always", tests/conftest.py)."""
    model = make_model(family, task)
    data = batches(n=2, batch=3, seq=12)
    int8 = run(quantize_model(model, activations=activations), data, task)
    floats = run(model, data, task)
    qat = run(prepare_qat(model, QATConfig(activations=activations)), data, task)
    assert_same_arithmetic(qat, int8, floats)


def test_qat_on_the_numba_backend_emulates_its_activation_codes():
    """On the Numba backend the int8 model quantizes to 0..activation_max() (127 on AVX2):
    QAT with that choice computes the same."""
    qmax = default_activation_max()
    model = make_model("mobilebert", "sequence_classification")
    data = batches()
    int8 = run(move(quantize_model(model), "numba"), data, "sequence_classification")
    floats = run(model.to("numba"), data, "sequence_classification")
    prepare_qat(model, QATConfig(activation_max=qmax))
    assert_same_arithmetic(run(model, data, "sequence_classification"), int8, floats)


def test_seven_bit_activations_are_what_the_avx2_path_computes():
    model = make_model("bert", "sequence_classification")
    x = np.random.default_rng(0).standard_normal((4, 32)).astype(np.float32)
    linear = prepare_qat(model, QATConfig(activation_max=127)).classifier
    with no_grad():
        got = linear(nn.Parameter(x)).numpy()
    codes, scale, zp = reference.quantize_u8(x, 127, per_row=True)
    assert codes.max() == 127
    q, w_scale = quantize_weight(linear.weight.numpy())
    expected = ((codes - zp[:, None]).astype(np.float64) @ q.T.astype(np.float64)) \
        * scale[:, None] * w_scale[:, 0] + linear.bias.numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_same_parameters_keys_and_an_ordinary_float_checkpoint(tmp_path):
    model = make_model("mobilebert", "sequence_classification")
    before = dict(model.named_parameters())
    keys = list(model.state_dict())
    prepare_qat(model, QATConfig(activations="per_tensor"))
    after = dict(model.named_parameters())
    assert list(after) == list(before) and all(after[k] is before[k] for k in before)
    assert list(model.state_dict()) == keys
    assert isinstance(model.classifier, QATLinear)
    assert isinstance(model.mobilebert.embeddings.word_embeddings, QATEmbedding)
    assert not isinstance(model.mobilebert.embeddings.position_embeddings, QATEmbedding)
    model.save_pretrained(tmp_path / "qat")
    loaded = load_model(tmp_path / "qat", "sequence_classification")
    assert not any(isinstance(m, (QATLinear, QATEmbedding)) for m in loaded.modules())
    assert loaded.config.extra[CONFIG_KEY]["activations"] == "per_tensor"
    data = batches()
    int8 = run(quantize_model(loaded, activations="per_tensor"), data, "sequence_classification")
    assert_same_arithmetic(run(model, data, "sequence_classification"), int8)


def test_a_gradient_reaches_every_parameter():
    model = prepare_qat(make_model("mobilebert", "sequence_classification"))
    batch = batches(n=1)[0]
    loss = model(**batch, labels=np.array([0, 1, 0])).loss
    loss.backward()
    for name, p in model.named_parameters():
        if name.endswith("token_type_embeddings.weight"):
            continue        # every token_type_id is 0: row 0 only, as in the float model
        assert p.grad is not None and np.isfinite(p.grad).all(), name
        assert np.abs(p.grad).max() > 0, name


def test_keep_float_layers_stay_float_in_both():
    model = make_model("bert", "sequence_classification")
    data = batches()
    keep = ["classifier", "bert.encoder.layer.0.attention.self.query"]
    int8 = quantize_model(model, keep_float=keep)
    assert not isinstance(int8.classifier, QuantizedLinear)
    prepare_qat(model, QATConfig(modules_to_not_convert=keep))
    assert type(model.classifier) is nn.Linear
    assert isinstance(model.bert.encoder.layer[1].attention.self.query, QATLinear)
    out = run(int8, data, "sequence_classification")
    assert_same_arithmetic(run(model, data, "sequence_classification"), out)


def test_refusals():
    model = make_model("mobilebert", "sequence_classification")
    with pytest.raises(ValueError, match="activation_max"):
        QATConfig(activation_max=200)
    with pytest.raises(ValueError, match="activations"):
        QATConfig(activations="per_channel")
    with pytest.raises(ValueError, match="already int8"):
        prepare_qat(quantize_model(model))
    prepare_qat(model)
    with pytest.raises(ValueError, match="already prepared"):
        prepare_qat(model)
    with pytest.raises(ValueError, match="MLM decoder"):
        prepare_qat(make_model("mobilebert", "pretraining"))
