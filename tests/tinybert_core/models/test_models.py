"""MobileBERT / IB-BERT / BERT models: HF parity, shapes, masks, gradients and input errors.

Parity fixtures (tests/fixtures/models/*, made by scripts/make_model_fixtures.py with
transformers) hold random HF checkpoints and HF's outputs. Relative error of a tensor is
max|ours - HF| / max|HF|; every tensor must be within 1e-4 in float32.
"""
from __future__ import annotations


import numpy as np
import pytest

import autograd.functional as F
import backends
from autograd import Tensor, gradcheck, no_grad
from paths import MODEL_FIXTURES
from tinybert_core import (
    BertForPreTraining,
    BertModel,
    IBBertForPreTraining,
    MobileBertConfig,
    MobileBertForMaskedLM,
    MobileBertForPreTraining,
    MobileBertModel,
    model_class,
)

FIXTURES = MODEL_FIXTURES
NAMES = sorted(p.name for p in FIXTURES.iterdir() if (p / "reference.npz").is_file())
TOL = 1e-4

TINY = dict(vocab_size=50, embedding_size=8, hidden_size=16, intra_bottleneck_size=8,
            num_attention_heads=2, intermediate_size=16, num_hidden_layers=2,
            max_position_embeddings=16)
VARIANTS = {
    "mobilebert": dict(num_feedforward_networks=3),
    "tiny": dict(key_query_shared_bottleneck=False, use_bottleneck_attention=True,
                 num_feedforward_networks=2, classifier_activation=True),
    "ib-bert": dict(intra_bottleneck_size=32, intermediate_size=32,
                    key_query_shared_bottleneck=False, num_feedforward_networks=1,
                    normalization_type="layer_norm", hidden_act="gelu_new",
                    classifier_activation=True),
    "google-mask": dict(attention_mask_value=-6.0, hidden_act="gelu", classifier_activation=True),
}


def tiny_config(variant: str) -> MobileBertConfig:
    if variant == "bert":
        return MobileBertConfig.bert(vocab_size=50, hidden_size=16, num_attention_heads=2,
                                     intermediate_size=32, num_hidden_layers=2,
                                     max_position_embeddings=16)
    return MobileBertConfig(**{**TINY, **VARIANTS[variant]})


def rel_err(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-30))


@pytest.fixture(scope="module", params=NAMES)
def fixture(request):
    d = FIXTURES / request.param
    ref = dict(np.load(d / "reference.npz"))
    config = MobileBertConfig.from_pretrained(d)
    return d, ref, config


CASES = ["nomask", "mask"]


def _inputs(ref: dict, case: str) -> tuple[np.ndarray, dict]:
    if case == "nomask":
        return ref["input_ids"], {"token_type_ids": ref["token_type_ids"]}
    return ref["padded_input_ids"], {"token_type_ids": ref["token_type_ids"],
                                     "attention_mask": ref["attention_mask"]}


def _check(name: str, ours: Tensor | np.ndarray, ref: np.ndarray) -> None:
    ours = ours.numpy() if isinstance(ours, Tensor) else ours
    assert ours.shape == ref.shape, f"{name}: shape {ours.shape} vs HF {ref.shape}"
    err = rel_err(ours, ref)
    assert err <= TOL, f"{name}: max relative error {err:.2e} > {TOL}"


@pytest.mark.parametrize("case", CASES)
def test_backbone_and_pretraining_match_hf(fixture, case):
    d, ref, config = fixture
    model = model_class(config, "pretraining").from_pretrained(d)
    ids, kw = _inputs(ref, case)
    base = model.base_model(ids, **kw, output_hidden_states=True, output_attentions=True)
    _check("last_hidden_state", base.last_hidden_state, ref[f"{case}.last_hidden_state"])
    _check("pooler_output", base.pooler_output, ref[f"{case}.pooler_output"])
    _check("hidden_states", np.stack([h.numpy() for h in base.hidden_states]),
           ref[f"{case}.hidden_states"])
    _check("attentions", np.stack([a.numpy() for a in base.attentions]),
           ref[f"{case}.attentions"])
    out = model(ids, **kw, labels=ref["mlm_labels"], next_sentence_label=ref["nsp_labels"])
    _check("prediction_logits", out.prediction_logits, ref[f"{case}.prediction_logits"])
    _check("seq_relationship_logits", out.seq_relationship_logits,
           ref[f"{case}.seq_relationship_logits"])
    _check("loss", out.loss, ref[f"{case}.pretraining_loss"])


@pytest.mark.parametrize("device", [d for d, why in backends.availability().items()
                                    if why is None and d != "numpy"])
def test_other_backends_match_hf_forward_and_numpy_backward(fixture, device):
    d, ref, config = fixture
    ids, kw = _inputs(ref, "mask")
    grads = {}
    for dev in ("numpy", device):
        model = model_class(config, "pretraining").from_pretrained(d, device=dev)
        out = model(ids, **kw, labels=ref["mlm_labels"], next_sentence_label=ref["nsp_labels"])
        _check(f"prediction_logits on {dev}", out.prediction_logits,
               ref["mask.prediction_logits"])
        out.loss.backward()
        grads[dev] = {n: p.backend.to_numpy(p.grad) for n, p in model.named_parameters()}
    scale = max(np.abs(g).max() for g in grads["numpy"].values())
    for name, g in grads["numpy"].items():   # atol: key biases have (numerically) zero grads
        np.testing.assert_allclose(grads[device][name], g, rtol=1e-3, atol=1e-6 * scale,
                                   err_msg=name)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("task", ["sequence_classification", "token_classification",
                                  "question_answering"])
def test_task_heads_match_hf(fixture, case, task):
    d, ref, config = fixture
    head = {"sequence_classification": "ForSequenceClassification",
            "token_classification": "ForTokenClassification",
            "question_answering": "ForQuestionAnswering"}[task]
    labels = {"ForSequenceClassification": 3, "ForTokenClassification": 5}
    overrides = {"num_labels": labels[head]} if head in labels else {}
    model = model_class(config, task).from_pretrained(d, **overrides)
    weights = {k.split(".", 2)[2]: v for k, v in ref.items() if k.startswith(f"head.{head}.")}
    assert sorted(weights) == sorted(model.loading_info["missing_keys"])
    model.load_state_dict(weights, strict=False)
    ids, kw = _inputs(ref, case)
    if head == "ForQuestionAnswering":
        out = model(ids, **kw, start_positions=ref["start_positions"],
                    end_positions=ref["end_positions"])
        _check("start_logits", out.start_logits, ref[f"{case}.{head}.start_logits"])
        _check("end_logits", out.end_logits, ref[f"{case}.{head}.end_logits"])
    else:
        key = "cls_labels" if head == "ForSequenceClassification" else "token_labels"
        out = model(ids, **kw, labels=ref[key])
        _check("logits", out.logits, ref[f"{case}.{head}.logits"])
    _check("loss", out.loss, ref[f"{case}.{head}.loss"])


def test_masked_lm_and_gathered_positions_equal_full_logits(fixture):
    d, ref, config = fixture
    mlm = model_class(config, "masked_lm").from_pretrained(d)
    ids, kw = _inputs(ref, "nomask")
    full = mlm(ids, **kw).logits.numpy()
    _check("masked-lm logits", full, ref["nomask.prediction_logits"])
    positions = np.array([[1, 5, 5], [0, 11, 2]])
    labels = np.array([[3, -100, 7], [9, 10, -100]])
    gathered = mlm(ids, **kw, masked_positions=positions, labels=labels)
    rows = np.arange(2)[:, None]
    np.testing.assert_allclose(gathered.logits.numpy(), full[rows, positions], rtol=1e-5,
                               atol=1e-5)
    flat = full[rows, positions].reshape(-1, full.shape[-1])
    lse = np.log(np.exp(flat - flat.max(-1, keepdims=True)).sum(-1)) + flat.max(-1)
    keep = labels.reshape(-1) != -100
    nll = (lse - flat[np.arange(len(flat)), np.maximum(labels.reshape(-1), 0)])[keep].mean()
    assert abs(gathered.loss.item() - nll) < 1e-4


def embeddings_expected(model: MobileBertModel, ids: np.ndarray, types: np.ndarray) -> np.ndarray:
    """MobileBERT's embedding layer in plain NumPy (spec 2.2), NoNorm."""
    emb = model.embeddings
    e = emb.word_embeddings.weight.numpy()[ids]                              # (B, T, E)
    nxt = np.concatenate([e[:, 1:], np.zeros_like(e[:, :1])], axis=1)
    prev = np.concatenate([np.zeros_like(e[:, :1]), e[:, :-1]], axis=1)
    t = np.concatenate([nxt, e, prev], axis=-1)                              # (B, T, 3E)
    w, b = emb.embedding_transformation.weight.numpy(), emb.embedding_transformation.bias.numpy()
    x = t @ w.T + b + emb.position_embeddings.weight.numpy()[:ids.shape[1]]
    x = x + emb.token_type_embeddings.weight.numpy()[types]
    return x * emb.LayerNorm.weight.numpy() + emb.LayerNorm.bias.numpy()


def test_trigram_embedding_order_next_current_previous():
    model = MobileBertModel(tiny_config("mobilebert"), seed=3).eval()
    rng = np.random.default_rng(0)
    for p in model.embeddings.parameters():
        p.data = rng.standard_normal(p.shape).astype(np.float32)
    ids, types = rng.integers(0, 50, (2, 7)), rng.integers(0, 2, (2, 7))
    out = model(ids, token_type_ids=types, output_hidden_states=True).hidden_states[0]
    np.testing.assert_allclose(out.numpy(), embeddings_expected(model, ids, types), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("variant", ["mobilebert", "google-mask", "bert"])
def test_attention_scores_are_the_scaled_masked_logits_of_the_probabilities(variant):
    config = tiny_config(variant)
    model = model_class(config)(config, seed=0).eval()
    ids = np.arange(12).reshape(2, 6)
    mask = np.ones((2, 6), np.int64)
    mask[1, 4:] = 0
    out = model(ids, attention_mask=mask, output_attentions=True)
    assert len(out.attentions) == len(out.attention_scores) == config.num_hidden_layers
    for probs, scores in zip(out.attentions, out.attention_scores):
        assert scores.shape == probs.shape == (2, config.num_attention_heads, 6, 6)
        np.testing.assert_allclose(F.softmax(scores).numpy(), probs.numpy(), atol=1e-6)
        masked = scores.numpy()[1, :, :, 4:]
        if config.attention_mask_value is not None:
            assert (masked == -6.0).all()             # Google: exactly the constant
            assert (probs.numpy()[1, :, :, 4:] > 0).all()
        else:
            assert (masked < -1e30).all()              # HF: + finfo.min
            assert (probs.numpy()[1, :, :, 4:] == 0).all()
    fused = model(ids, attention_mask=mask).last_hidden_state.numpy()
    np.testing.assert_allclose(fused, out.last_hidden_state.numpy(), rtol=1e-5, atol=1e-5)


def test_layer_norm_eps_follows_hf_including_its_torch_default_spots():
    config = tiny_config("ib-bert")
    model = MobileBertModel(config, seed=0)
    layer = model.encoder.layer[0]
    assert model.embeddings.LayerNorm.eps == layer.output.LayerNorm.eps == 1e-5  # HF: no eps
    for norm in (layer.attention.output.LayerNorm, layer.bottleneck.input.LayerNorm,
                 layer.output.bottleneck.LayerNorm):
        assert norm.eps == config.layer_norm_eps


def test_teacher_reads_query_key_value_from_the_block_input():
    config = MobileBertConfig.from_pretrained("ib-bert-small")
    student = MobileBertConfig.from_pretrained("mobilebert-small")
    for field in ("vocab_size", "embedding_size", "hidden_size", "num_attention_heads",
                  "num_hidden_layers", "max_position_embeddings"):
        assert getattr(config, field) == getattr(student, field), field
    assert IBBertForPreTraining is MobileBertForPreTraining
    teacher = IBBertForPreTraining(config.replace(num_hidden_layers=1, vocab_size=100), seed=0)
    attn = teacher.mobilebert.encoder.layer[0].attention.self
    assert attn.query.weight.shape == attn.key.weight.shape == attn.value.weight.shape == (512, 256)
    out = teacher(np.zeros((1, 5), np.int64), output_hidden_states=True)
    assert out.hidden_states[-1].shape == (1, 5, 256)


ALL_TASKS = ["pretraining", "sequence_classification", "token_classification",
             "question_answering", "next_sentence"]
GRAD_CASES = ([("mobilebert", t) for t in ALL_TASKS] + [("bert", t) for t in ALL_TASKS]
              + [(v, t) for v in ("tiny", "ib-bert", "google-mask")
                 for t in ("pretraining", "sequence_classification")])


@pytest.mark.parametrize("variant, task", GRAD_CASES)
def test_gradients_of_every_parameter_pass_gradcheck(variant, task):
    """Each parameter tensor (so each module) is checked along random directions, float64."""
    config = tiny_config(variant)
    model = model_class(config, task)(config, seed=1).to(dtype=np.float64).eval()
    rng = np.random.default_rng(2)
    for p in model.parameters():                      # norms and biases away from 1 / 0
        p.data = p.data + rng.standard_normal(p.shape) * 0.1
    # No [PAD] (id 0) among the ids: by design (padding_idx) the lookup sends that row no
    # gradient, which is not the derivative; test_padding_idx_row_gets_only_the_decoder_gradient.
    ids = rng.integers(1, 50, (2, 6))
    kw = {"attention_mask": np.array([[1] * 6, [1] * 4 + [0] * 2]),
          "token_type_ids": np.array([[0, 0, 0, 1, 1, 1]] * 2)}

    def loss() -> Tensor:
        if task == "pretraining":
            out = model(ids, **kw, masked_positions=[[1, 2], [0, 3]], labels=[[3, -100], [4, 5]],
                        next_sentence_label=[0, 1], output_attentions=True)
            return out.loss + out.attention_scores[0][..., :4].sum() * 0.01
        if task == "question_answering":
            return model(ids, **kw, start_positions=[1, 9], end_positions=[2, 3]).loss
        if task == "token_classification":
            return model(ids, **kw, labels=[[0, 1, -100, 1, 0, 1]] * 2).loss
        return model(ids, **kw, labels=[0, 1]).loss

    assert gradcheck(loss, params=model.parameters(), mode="directional")


def test_sequence_regression_and_multi_label_losses():
    config = tiny_config("mobilebert").replace(num_labels=1)
    model = model_class(config, "sequence_classification")(config, seed=0).eval()
    ids = np.arange(8).reshape(2, 4)
    out = model(ids, labels=np.array([0.5, -1.0]))
    pred = out.logits.numpy().reshape(-1)
    assert abs(out.loss.item() - np.mean((pred - [0.5, -1.0]) ** 2)) < 1e-6
    config = config.replace(num_labels=3, problem_type="multi_label_classification")
    model = model_class(config, "sequence_classification")(config, seed=0).eval()
    y = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    out = model(ids, labels=y)
    x = out.logits.numpy().astype(np.float64)
    bce = np.mean(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x))))
    assert abs(out.loss.item() - bce) < 1e-6


def test_dropout_is_seeded_and_off_in_eval():
    config = tiny_config("ib-bert").replace(hidden_dropout_prob=0.3)
    ids = np.arange(10).reshape(2, 5)
    a = MobileBertModel(config, seed=4)(ids).last_hidden_state.numpy()
    b = MobileBertModel(config, seed=4)(ids).last_hidden_state.numpy()
    np.testing.assert_array_equal(a, b)
    model = MobileBertModel(config, seed=4)
    train = model(ids).last_hidden_state.numpy()
    evaluated = model.eval()(ids).last_hidden_state.numpy()
    assert not np.allclose(train, evaluated)
    np.testing.assert_array_equal(evaluated, model(ids).last_hidden_state.numpy())


def test_no_grad_forward_records_no_graph_and_float64_works():
    config = tiny_config("mobilebert")
    model = MobileBertForPreTraining(config, seed=0)
    with no_grad():
        out = model(np.ones((1, 3), np.int64))
    assert not out.prediction_logits.requires_grad
    model.to(dtype=np.float64)
    assert model(np.ones((1, 3), np.int64)).prediction_logits.dtype == np.float64


@pytest.mark.parametrize("call, error, message", [
    # the embedding op checks ids, once, and names the model's argument (vocab_size is 50)
    (lambda m: m(np.array([[1, 2, 50]])), ValueError,
     "input_ids must lie in [0, 50), got values in [1, 50]"),
    (lambda m: m(np.array([[1, -1]])), ValueError, "input_ids must lie in [0, 50), got values in "
                                                   "[-1, 1]"),
    (lambda m: m(np.zeros((1, 17), np.int64)), ValueError,
     "sequence length 17 exceeds max_position_embeddings 16"),
    (lambda m: m(np.zeros(5, np.int64)), ValueError, "input_ids must be 2-d (batch, seq_len)"),
    (lambda m: m(np.zeros((1, 2, 3), np.int64)), ValueError, "got shape (1, 2, 3)"),
    (lambda m: m(np.zeros((1, 4), np.float32)), TypeError, "input_ids must hold integers"),
    (lambda m: m(np.zeros((1, 4), np.int64), attention_mask=np.ones((1, 3))), ValueError,
     "attention_mask has shape (1, 3), input_ids (1, 4)"),
    (lambda m: m(np.zeros((1, 4), np.int64), attention_mask=np.full((1, 4), 2)), ValueError,
     "attention_mask must hold only 0"),
    (lambda m: m(np.zeros((1, 4), np.int64), token_type_ids=np.full((1, 4), 2)), ValueError,
     "token_type_ids must lie in [0, 2)"),
    (lambda m: m(np.zeros((1, 4), np.int64), position_ids=np.arange(20)[:4] + 14), ValueError,
     "position_ids must lie in [0, 16)"),
    (lambda m: m(np.zeros((1, 4), np.int64), masked_positions=[[4]]), ValueError,
     "masked_positions must lie in [0, 4)"),
    (lambda m: m(np.zeros((1, 4), np.int64), labels=np.zeros((1, 3), np.int64)), ValueError,
     "labels must have shape (1, 4)"),
])
def test_bad_inputs_raise_clear_errors(call, error, message):
    model = MobileBertForMaskedLM(tiny_config("mobilebert"), seed=0)
    with pytest.raises(error) as info:
        call(model)
    assert message in str(info.value)


def test_wrong_family_config_is_rejected():
    with pytest.raises(ValueError, match="BertModel needs a config with model_type 'bert'"):
        BertModel(tiny_config("mobilebert"))
    with pytest.raises(ValueError, match="use the Bert\\* classes"):
        MobileBertForPreTraining(tiny_config("bert"))
    with pytest.raises(TypeError, match="config must be a MobileBertConfig"):
        BertForPreTraining({"hidden_size": 16})


def test_full_size_mobilebert_parameter_counts():
    config = MobileBertConfig.from_pretrained("mobilebert")
    model = MobileBertForPreTraining(config, seed=0)
    assert model.mobilebert.num_parameters() == 24_581_888
    assert model.num_parameters() == 36_597_564
    tiny = MobileBertModel(MobileBertConfig.from_pretrained("mobilebert-tiny"), seed=0)
    assert tiny.num_parameters() == 15_485_696


def test_model_class_table_covers_both_families():
    from tinybert_core.models.auto import MODEL_CLASSES, TASKS
    for family in ("mobilebert", "bert"):
        config = (MobileBertConfig.from_pretrained("mobilebert-4l") if family == "mobilebert"
                  else MobileBertConfig.bert())
        for task in TASKS:
            cls = model_class(config, task)
            assert cls is MODEL_CLASSES[(family, task)]
            assert cls.model_type == cls.base_model_prefix == family
    with pytest.raises(ValueError, match="unknown task 'sideways'; known: base, pretraining"):
        model_class(MobileBertConfig(), "sideways")
