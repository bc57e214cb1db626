"""Whole-model gradient audits (tinybert_core/model_audit.py): every parameter of a small
MobileBERT / IB-BERT / BERT for every loss, grouped by the paper's blocks; a mutated op inside
the model is caught and named; other backends and PyTorch agree; bad requests are one-line
errors. Tiny widths keep it fast; the full-width runs are the slow test at the end and
docs/auditing.md."""
from __future__ import annotations

import json

import numpy as np
import pytest

import autograd.functional as F
from autograd import Function, nn
from tinybert_core import MobileBertConfig, MobileBertForPreTraining
from tinybert_core.model_audit import (
    LOSSES,
    audit_loss,
    audit_model,
    build_models,
    loss_functions,
    make_batch,
)
from tinybert_core.model_audit_report import block_of

TINY = {"vocab_size": 60, "embedding_size": 8, "hidden_size": 16, "intra_bottleneck_size": 8,
        "intermediate_size": 16, "num_attention_heads": 2, "num_hidden_layers": 2,
        "max_position_embeddings": 32}


def tiny(name: str = "mobilebert", **changes) -> MobileBertConfig:
    if name == "bert":
        return MobileBertConfig.bert(vocab_size=60, hidden_size=16, num_attention_heads=2,
                                     intermediate_size=32, num_hidden_layers=2,
                                     max_position_embeddings=32, **changes)
    return MobileBertConfig.from_pretrained(name, **{**TINY, **changes})


def test_every_parameter_of_every_loss_is_checked_and_grouped_by_block():
    cfg = tiny()
    report = audit_model(cfg, max_seq_length=8)
    assert report.passed, report.format()
    assert [a.loss for a in report.losses] == list(LOSSES)
    full = {n for n, _ in MobileBertForPreTraining(cfg).named_parameters()}
    by_loss = {a.loss: [p.name for p in a.params] for a in report.losses}
    assert set(by_loss["mlm+nsp"]) == full and set(by_loss["pd"]) == full
    assert set(by_loss["fmt"]) == {n for n in full if n.startswith("mobilebert.")}
    assert any(n.startswith("classifier.") for n in by_loss["sequence_classification"])
    assert any(n.startswith("qa_outputs.") for n in by_loss["question_answering"])
    blocks = [p.block for p in report.losses[0].params]
    assert blocks[0] == "embedding" and blocks[-1] == "heads"
    assert blocks.index("layer 0: input bottleneck") < blocks.index("layer 0: attention") \
        < blocks.index("layer 0: stacked FFNs") < blocks.index("layer 0: output bottleneck") \
        < blocks.index("layer 1: input bottleneck")
    for a in report.losses:
        assert a.value > 0 and a.atol < 1e-6
        for p in a.params:
            assert p.check.mode == "directional" and p.check.checked == 2
            assert p.check.max_abs_error <= a.atol + 1e-5 * abs(p.check.numeric)
    text = report.format()
    assert "pre-training distillation (PD)" in text and "  layer 1: stacked FFNs" in text
    assert "mobilebert.encoder.layer.1.ffn.2.output.LayerNorm.weight" in text
    data = report.to_dict()
    assert data["passed"] and data["setup"]["weights"] == "audit point"
    # the batch was chosen so that no relu input sits within ten steps of its kink
    assert data["setup"]["kink_margin"] >= 1e-5 and "no relu input within" in text
    assert data["losses"][0]["params"][0]["block"] == "embedding"


@pytest.mark.parametrize("name", ["ib-bert-small", "bert"])
def test_teachers_and_plain_bert_pass_too(name):
    cfg = tiny(name) if name == "bert" else tiny(name, intra_bottleneck_size=16)
    report = audit_model(cfg, max_seq_length=8, losses=["mlm+nsp", "at", "token_classification"])
    assert report.passed, report.format()
    blocks = {p.block for p in report.losses[0].params}
    assert "layer 0: feed-forward" in blocks and "layer 0: stacked FFNs" not in blocks
    # GELU, no relu: nothing to dodge, said in words, and the JSON stays strict
    assert "no relu in the model, no kinks" in report.format()
    json.loads(json.dumps(report.to_dict(), allow_nan=False))


def test_block_names_follow_the_paper():
    cfg = MobileBertConfig.from_pretrained("mobilebert")
    assert block_of("mobilebert.embeddings.embedding_transformation.weight", cfg) == "embedding"
    assert block_of("mobilebert.encoder.layer.3.bottleneck.attention.dense.weight", cfg) \
        == "layer 3: input bottleneck"
    assert block_of("mobilebert.encoder.layer.3.ffn.1.output.dense.bias", cfg) \
        == "layer 3: stacked FFNs"
    assert block_of("mobilebert.encoder.layer.3.output.dense.bias", cfg) == "layer 3: stacked FFNs"
    assert block_of("mobilebert.encoder.layer.3.output.bottleneck.LayerNorm.bias", cfg) \
        == "layer 3: output bottleneck"
    assert block_of("mobilebert.pooler.dense.weight", cfg) == "pooler"
    assert block_of("cls.predictions.dense.weight", cfg) == "heads"


class NoNormScaleOff(Function):
    """NoNorm whose scale gradient is 0.1% too large: the bug the audit must find."""

    def forward(self, x, gamma, beta):
        self.x, self.gamma = x, gamma
        return x * gamma + beta

    def backward(self, g):
        gx = g * self.gamma
        lead = tuple(range(g.ndim - 1))
        return gx, (g * self.x).sum(axis=lead) * 1.001, g.sum(axis=lead)


class MutatedNoNorm(nn.NoNorm):
    def forward(self, x, residual=None):
        x = x if residual is None else x + residual
        return NoNormScaleOff.apply(x, self.weight, self.bias)


def test_a_wrong_gradient_deep_in_the_model_is_named():
    cfg = tiny()
    models = build_models(cfg, ["pretraining"], seed=0)
    model = models["pretraining"]
    ffn = model.mobilebert.encoder.layer[1].ffn[0].output
    good = ffn.LayerNorm
    ffn.LayerNorm = MutatedNoNorm(good.weight.shape[0])
    ffn.LayerNorm.weight, ffn.LayerNorm.bias = good.weight, good.bias
    fns = loss_functions(models, None, make_batch(cfg, 2, 8), ["mlm+nsp"])
    fn, module = fns["mlm+nsp"]
    audit = audit_loss("mlm+nsp", fn, module, model)
    failed = [p for p in audit.params if not p.passed]
    assert [p.name for p in failed] == [
        "mobilebert.encoder.layer.1.ffn.0.output.LayerNorm.weight"]
    assert failed[0].block == "layer 1: stacked FFNs"
    assert failed[0].check.max_rel_error == pytest.approx(1e-3, rel=0.05)
    assert "FAIL at direction" in _format_row(audit, failed[0].name)


def _format_row(audit, name):
    from tinybert_core.model_audit_report import ModelAuditReport
    report = ModelAuditReport({"model": "t", "model_type": "mobilebert", "layers": 2,
                               "widths": {k: 1 for k in ("embedding_size", "hidden_size",
                                                         "intra_bottleneck_size",
                                                         "intermediate_size",
                                                         "num_feedforward_networks",
                                                         "num_attention_heads", "vocab_size")},
                               "device": "numpy", "weights": "w", "batch_size": 2,
                               "max_seq_length": 8, "teacher": None, "directions": 2,
                               "eps": 1e-6, "rtol": 1e-5, "atol": "a", "seed": 0,
                               "batch_seed": 0, "kink_margin": 1.0}, [audit])
    return next(line for line in report.format().splitlines() if name in line)


def test_numba_gradients_agree_with_numpy():
    report = audit_model(tiny(), max_seq_length=8, device="numba",
                         losses=["mlm+nsp", "fmt", "question_answering"])
    assert report.passed, report.format()
    for a in report.losses:
        assert a.output["vs_numpy"].passed
        assert all(p.vs_numpy is not None and p.vs_numpy.passed for p in a.params)
        # to rounding: every difference far inside rtol 1e-9 of the largest gradient entry
        # (or atol, where a gradient is zero in exact arithmetic, as for the attention key bias
        # or QA's output bias: softmax ignores a shift shared by every entry)
        assert max(p.vs_numpy.ratio for p in a.params) < 1e-2
    assert "vs numpy" in report.format()


def test_pytorch_agrees_gradient_by_gradient():
    pytest.importorskip("torch")
    report = audit_model(tiny(), max_seq_length=8, against="torch", losses=["pd", "at"])
    assert report.passed, report.format()
    assert all(p.vs_torch.passed for a in report.losses for p in a.params)


def test_a_model_directory_is_audited_at_its_own_weights(tmp_path):
    cfg = tiny()
    model = MobileBertForPreTraining(cfg, seed=3)
    model.save_pretrained(tmp_path / "m")
    report = audit_model(model_dir=tmp_path / "m", layers=1, max_seq_length=8,
                         losses=["mlm+nsp", "sequence_classification"])
    assert report.passed, report.format()
    assert report.setup["weights"] == "model directory" and report.setup["layers"] == 1
    audited = build_models(cfg.replace(num_hidden_layers=1), ["pretraining"], 0,
                           tmp_path / "m")["pretraining"]
    saved = model.state_dict()
    assert audited.state_dict().keys() < saved.keys()       # the first block only, same names
    for k, v in audited.state_dict().items():
        np.testing.assert_array_equal(v, saved[k], err_msg=k)
    names = [p.name for p in report.losses[0].params]
    assert not any(".layer.1." in n for n in names)


def test_bad_requests_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="give a config or a model directory"):
        audit_model()
    with pytest.raises(ValueError, match="unknown loss.*nsp-only.*known: mlm\\+nsp"):
        audit_model(tiny(), losses=["nsp-only"])
    with pytest.raises(ValueError, match="sequence length must be in \\[4, 32\\]"):
        audit_model(tiny(), max_seq_length=64, losses=["mlm+nsp"])
    with pytest.raises(ValueError, match="teacher does not fit the student.*hidden_size 16 vs "
                                         "512"):
        audit_model(tiny(), losses=["fmt"], teacher_config="ib-bert-large")
    cfg = tiny()
    cfg.extra["quantization_config"] = {"bits": 8}
    cfg.save_pretrained(tmp_path / "q")
    with pytest.raises(ValueError, match="int8 model has no float gradients"):
        audit_model(model_dir=tmp_path / "q")


def test_the_audit_batch_covers_padding_and_ignored_labels():
    b = make_batch(tiny(), 3, 8, seed=1)
    assert b.attention_mask[-1, -1] == 0 and b.attention_mask[0].all()
    assert (b.mlm_labels == -100).sum() == 1 and (b.token_labels[b.attention_mask == 0]
                                                   == -100).all()
    assert b.masked_positions.max() < 6 and set(np.unique(b.token_type_ids)) == {0, 1}
    assert F is not None


@pytest.mark.slow
@pytest.mark.parametrize("name, layers, losses", [
    ("mobilebert", 2, tuple(LOSSES)),                            # every loss, ib-bert-large teacher
    ("ib-bert-small", 1, ("mlm+nsp", "pd", "sequence_classification")),
])
def test_full_width_audits_pass(name, layers, losses):
    """The audits of docs/auditing.md at every width of the preset (one direction, to fit CI)."""
    report = audit_model(name, layers=layers, losses=losses, directions=1)
    assert report.passed, report.format()
    assert report.setup["widths"]["vocab_size"] == 30522 and report.setup["layers"] == layers
    names = {p.name for a in report.losses for p in a.params}
    assert "mobilebert.embeddings.word_embeddings.weight" in names
    assert f"mobilebert.encoder.layer.{layers - 1}.output.bottleneck.LayerNorm.weight" in names
