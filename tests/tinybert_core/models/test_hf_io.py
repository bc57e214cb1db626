"""HF checkpoint interop: configs, from_pretrained / save_pretrained, and every bad-file error."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from autograd.serialization import (
    CheckpointError,
    load_safetensors,
    read_safetensors_metadata,
    save_safetensors,
)
from paths import MODEL_FIXTURES
from tinybert_core import (
    BertForPreTraining,
    BertTokenizer,
    MobileBertConfig,
    MobileBertForPreTraining,
    MobileBertForSequenceClassification,
    MobileBertModel,
    load_model,
)
from tinybert_core.config import PRESETS

FIXTURES = MODEL_FIXTURES
MOBILE = FIXTURES / "mobilebert-kq-shared"
BERT = FIXTURES / "bert"


@pytest.fixture
def model_dir(tmp_path) -> Path:
    """A writable copy of the MobileBERT fixture checkpoint."""
    d = tmp_path / "model"
    shutil.copytree(MOBILE, d)
    return d


def _ids() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 1000, (2, 9))


# --- configs -------------------------------------------------------------------------------------

def test_config_json_round_trip_and_hf_fields(tmp_path):
    for name in PRESETS:
        config = MobileBertConfig.from_pretrained(name)
        path = config.save_pretrained(tmp_path / name)
        assert MobileBertConfig.from_json(path) == config
    data = json.loads((tmp_path / "mobilebert" / "config.json").read_text())
    assert data["true_hidden_size"] == 128 and data["model_type"] == "mobilebert"
    assert data["classifier_activation"] is False and data["normalization_type"] == "no_norm"
    bert = json.loads((tmp_path / "bert-base" / "config.json").read_text())
    assert bert["model_type"] == "bert" and "trigram_input" not in bert


def test_hf_written_configs_load():
    config = MobileBertConfig.from_pretrained(MOBILE)
    assert (config.hidden_size, config.true_hidden_size, config.num_feedforward_networks) == \
        (64, 32, 4)
    bert = MobileBertConfig.from_pretrained(BERT)
    assert bert.model_type == "bert" and bert.embedding_size == bert.hidden_size == 64
    assert bert.hidden_act == "gelu" and bert.normalization_type == "layer_norm"


@pytest.mark.parametrize("change, message", [
    ({"num_attention_heads": 5}, ("intra_bottleneck_size 32 (the attention width) is not "
                                  "divisible by num_attention_heads 5")),
    ({"true_hidden_size": 64}, "true_hidden_size 64 does not match intra_bottleneck_size 32"),
    ({"hidden_act": "swishy"}, "unknown hidden_act 'swishy'"),
    ({"normalization_type": "batch_norm"}, "unknown normalization_type 'batch_norm'"),
    ({"embedding_size": 128}, "embedding_size 128 is larger than hidden_size 64"),
    ({"hidden_size": 0}, "hidden_size must be between 1 and 65,536, got 0"),
    ({"num_hidden_layers": 10**12}, "num_hidden_layers must be between 1 and 1,000, got 1,0"),
    ({"initializer_range": 1e999}, "invalid JSON: Infinity is not a JSON number"),
    ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob must be a probability in [0, 1)"),
    ({"trigram_input": "yes"}, "trigram_input must be true or false"),
    ({"pad_token_id": 5000}, "pad_token_id 5000 is outside the vocabulary"),
    ({"attention_mask_value": "big"}, "attention_mask_value must be null"),
])
def test_inconsistent_config_json_names_the_file_and_fields(model_dir, change, message):
    path = model_dir / "config.json"
    data = json.loads(path.read_text())
    data.update(change)
    path.write_text(json.dumps(data))
    with pytest.raises((ValueError, TypeError)) as info:
        MobileBertForPreTraining.from_pretrained(model_dir)
    assert message in str(info.value) and str(path) in str(info.value)


def test_config_errors_for_presets_and_bad_json(tmp_path):
    with pytest.raises(ValueError, match="neither a preset"):
        MobileBertConfig.from_pretrained("mobilebert-huge")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: invalid JSON"):
        MobileBertConfig.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="a BERT config .* cannot have trigram_input=True"):
        MobileBertConfig(model_type="bert")
    with pytest.raises(TypeError, match="unknown config field\\(s\\) num_lables"):
        MobileBertConfig.from_pretrained("mobilebert", num_lables=3)
    config = MobileBertConfig.from_pretrained("ib-bert-large", num_hidden_layers=2)
    assert config.num_hidden_layers == 2 and config.replace(num_labels=3).num_labels == 3


# --- loading -------------------------------------------------------------------------------------

def test_backbone_loads_from_pretraining_checkpoint_and_back(tmp_path):
    full = MobileBertForPreTraining.from_pretrained(MOBILE)
    assert full.loading_info == {"missing_keys": [], "unexpected_keys": [], "ignored_keys": []}
    base = MobileBertModel.from_pretrained(MOBILE)
    assert base.loading_info["missing_keys"] == []
    assert all(k.startswith("cls.") for k in base.loading_info["unexpected_keys"])
    ids = _ids()
    np.testing.assert_array_equal(base(ids).last_hidden_state.numpy(),
                                  full.mobilebert(ids).last_hidden_state.numpy())
    base.save_pretrained(tmp_path / "bare")              # keys without the "mobilebert." prefix
    assert "embeddings.word_embeddings.weight" in load_safetensors(
        tmp_path / "bare" / "model.safetensors")
    again = MobileBertForPreTraining.from_pretrained(tmp_path / "bare")
    assert again.loading_info["missing_keys"] and all(
        k.startswith("cls.") for k in again.loading_info["missing_keys"])
    with pytest.raises(ValueError, match="missing keys: cls.predictions.bias"):
        MobileBertForPreTraining.from_pretrained(tmp_path / "bare", strict=True)


def test_new_head_is_reported_missing_and_strict_refuses_it():
    model = MobileBertForSequenceClassification.from_pretrained(MOBILE, num_labels=3)
    assert model.loading_info["missing_keys"] == ["classifier.weight", "classifier.bias"]
    assert "cls.seq_relationship.weight" in model.loading_info["unexpected_keys"]
    assert model.classifier.weight.shape == (3, 64) and not model.training
    with pytest.raises(ValueError, match="missing keys: classifier.weight, classifier.bias"):
        MobileBertForSequenceClassification.from_pretrained(MOBILE, strict=True)
    with pytest.raises(ValueError, match="unexpected keys: .*cls.predictions.bias"):
        MobileBertForSequenceClassification.from_pretrained(MOBILE, strict=True)


def test_save_pretrained_round_trip_matches_hf_key_set(tmp_path):
    model = MobileBertForPreTraining.from_pretrained(MOBILE)
    model.save_pretrained(tmp_path / "saved")
    ours = read_safetensors_metadata(tmp_path / "saved" / "model.safetensors")
    hf = read_safetensors_metadata(MOBILE / "model.safetensors")
    assert ours.tensors == hf.tensors and ours.metadata == {"format": "pt"}
    assert (tmp_path / "saved" / "vocab.txt").read_bytes() == (MOBILE / "vocab.txt").read_bytes()
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert config["architectures"] == ["MobileBertForPreTraining"]
    loaded = MobileBertForPreTraining.from_pretrained(tmp_path / "saved")
    ids = _ids()
    np.testing.assert_array_equal(loaded(ids).prediction_logits.numpy(),
                                  model(ids).prediction_logits.numpy())
    bert = BertForPreTraining.from_pretrained(BERT)
    bert.save_pretrained(tmp_path / "bert", tokenizer=BertTokenizer.from_pretrained(BERT))
    assert read_safetensors_metadata(tmp_path / "bert" / "model.safetensors").tensors == \
        read_safetensors_metadata(BERT / "model.safetensors").tensors
    assert load_model(tmp_path / "bert", "masked_lm").loading_info["missing_keys"] == []


def test_old_buffers_and_tied_decoder_aliases_are_accepted(model_dir):
    path = model_dir / "model.safetensors"
    state = load_safetensors(path)
    embeddings = state["mobilebert.embeddings.word_embeddings.weight"]
    state["mobilebert.embeddings.position_ids"] = np.arange(64)[None]
    state["cls.predictions.decoder.weight"] = embeddings
    state["cls.predictions.decoder.bias"] = state.pop("cls.predictions.bias")
    save_safetensors(path, state)
    model = MobileBertForPreTraining.from_pretrained(model_dir, strict=True)
    assert model.loading_info["ignored_keys"] == ["mobilebert.embeddings.position_ids",
                                                  "cls.predictions.decoder.weight"]
    np.testing.assert_array_equal(model.cls.predictions.bias.numpy(),
                                  state["cls.predictions.decoder.bias"])
    word_embeddings = model.mobilebert.embeddings.word_embeddings.weight
    assert model.cls.predictions.decoder.weight is word_embeddings


# --- bad files -----------------------------------------------------------------------------------

def test_truncated_safetensors_names_the_file(model_dir):
    path = model_dir / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError) as info:
        MobileBertForPreTraining.from_pretrained(model_dir)
    assert str(path) in str(info.value) and "truncated" in str(info.value)


def test_wrong_tensor_shape_names_the_key_both_shapes_and_the_file(model_dir):
    path = model_dir / "model.safetensors"
    state = load_safetensors(path)
    state["cls.seq_relationship.weight"] = np.zeros((3, 64), np.float32)
    save_safetensors(path, state)
    with pytest.raises(ValueError) as info:
        MobileBertForPreTraining.from_pretrained(model_dir)
    msg = str(info.value)
    assert str(path) in msg and "cls.seq_relationship.weight" in msg
    assert "(3, 64)" in msg and "(2, 64)" in msg


def test_missing_backbone_weight_is_an_error(model_dir):
    path = model_dir / "model.safetensors"
    state = load_safetensors(path)
    del state["mobilebert.encoder.layer.1.output.dense.weight"]
    save_safetensors(path, state)
    with pytest.raises(ValueError, match="missing backbone weights: "
                                         "mobilebert.encoder.layer.1.output.dense.weight"):
        MobileBertForPreTraining.from_pretrained(model_dir)
    model = MobileBertForPreTraining.from_pretrained(model_dir, strict=False)
    assert model.loading_info["missing_keys"] == ["mobilebert.encoder.layer.1.output.dense.weight"]


def test_vocab_that_does_not_match_the_embedding_table(model_dir):
    vocab = model_dir / "vocab.txt"
    vocab.write_text(vocab.read_text() + "extra\n")
    with pytest.raises(ValueError) as info:
        MobileBertForPreTraining.from_pretrained(model_dir)
    assert str(vocab) in str(info.value)
    assert "1001 tokens but the model's vocab_size (embedding table rows) is 1000" in \
        str(info.value)


def test_missing_weights_pickle_files_and_wrong_family(model_dir, tmp_path):
    (model_dir / "model.safetensors").rename(model_dir / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="pytorch_model.bin, which needs pickle"):
        MobileBertForPreTraining.from_pretrained(model_dir)
    with pytest.raises(FileNotFoundError, match="no such model directory"):
        MobileBertForPreTraining.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="needs a config with model_type 'mobilebert', got 'bert'"):
        MobileBertForPreTraining.from_pretrained(BERT)


def test_sharded_checkpoint_index(model_dir):
    state = load_safetensors(model_dir / "model.safetensors")
    keys = sorted(state)
    half = len(keys) // 2
    save_safetensors(model_dir / "model-00001.safetensors", {k: state[k] for k in keys[:half]})
    save_safetensors(model_dir / "model-00002.safetensors", {k: state[k] for k in keys[half:]})
    (model_dir / "model.safetensors").unlink()
    index = {"weight_map": {k: f"model-0000{1 + (i >= half)}.safetensors"
                            for i, k in enumerate(keys)}}
    (model_dir / "model.safetensors.index.json").write_text(json.dumps(index))
    model = MobileBertForPreTraining.from_pretrained(model_dir, strict=True)
    reference = MobileBertForPreTraining.from_pretrained(MOBILE)
    ids = _ids()
    np.testing.assert_array_equal(model(ids).prediction_logits.numpy(),
                                  reference(ids).prediction_logits.numpy())
