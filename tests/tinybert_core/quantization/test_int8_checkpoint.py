"""The int8 checkpoint format: save/load round trips bit for bit through the one loader (any
task, any family), loading draws no float32 weights, files are ~4x smaller, and every kind of
bad file is a one-line error naming it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import autograd.nn
from autograd import no_grad
from autograd.serialization import CheckpointError, load_safetensors, save_safetensors
from int8_models import batches, make_model
from tinybert_core import MobileBertConfig, load_model, model_class
from tinybert_core.quantization import QuantizedLinear, int8_state_dict, quantize_model


def saved(tmp_path: Path, family="mobilebert", task="pretraining", mode="dynamic",
          **kwargs) -> tuple[object, Path]:
    q = quantize_model(make_model(family, task), mode=mode, calibration=batches(), **kwargs)
    d = tmp_path / f"{family}-{task}-{mode}"
    q.save_pretrained(d)
    return q, d


def logits(model, data=None):
    with no_grad():
        out = model(**(data or batches()[0]))
    return getattr(out, "prediction_logits", None) if hasattr(out, "prediction_logits") \
        else out.logits if hasattr(out, "logits") else out.last_hidden_state


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_round_trip_is_bit_exact(tmp_path, family, mode):
    q, d = saved(tmp_path, family, mode=mode)
    back = load_model(d, "pretraining")
    np.testing.assert_array_equal(logits(back).numpy(), logits(q).numpy())
    a, b = int8_state_dict(q), int8_state_dict(back)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    back.save_pretrained(tmp_path / "again")
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == \
        (d / "model.safetensors").read_bytes()
    config = json.loads((d / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "tinybert_int8" and config["mode"] == mode


def test_the_file_holds_int8_weights_and_broadcastable_scales(tmp_path):
    _, d = saved(tmp_path, mode="static")
    arrays = load_safetensors(d / "model.safetensors")
    w = "mobilebert.encoder.layer.0.attention.self.query"
    assert arrays[f"{w}.weight"].dtype == np.int8 and arrays[f"{w}.weight"].shape == (16, 16)
    assert arrays[f"{w}.weight_scale"].shape == (16, 1)
    assert arrays[f"{w}.bias"].dtype == np.float32
    assert arrays[f"{w}.input_range"].shape == (2,)
    table = "mobilebert.embeddings.word_embeddings"
    assert arrays[f"{table}.weight"].dtype == np.int8 and arrays[f"{table}.weight_scale"].shape \
        == (120, 1)
    assert arrays["cls.predictions.dense.weight"].shape == (16, 120)      # HF's (H - E, V)
    assert arrays["cls.predictions.dense.weight_scale"].shape == (1, 120)
    assert "cls.predictions.decoder.input_range" in arrays
    assert "cls.predictions.decoder.weight" not in arrays                # tied: stored once
    assert arrays["mobilebert.embeddings.position_embeddings.weight"].dtype == np.float32


def test_every_model_directory_command_loads_it_as_any_task(tmp_path):
    q, d = saved(tmp_path)
    data = batches()[0]
    with no_grad():
        full = q(**data)
        masked = load_model(d, "masked_lm")(**data).logits.numpy()
        base = load_model(d, "base")(**data).last_hidden_state.numpy()
    np.testing.assert_array_equal(masked, full.prediction_logits.numpy())
    np.testing.assert_array_equal(base, full.last_hidden_state.numpy())
    direct = model_class(q.config, "pretraining").from_pretrained(d)
    assert direct.loading_info["unexpected_keys"] == []
    assert "cls.seq_relationship.weight" in load_model(d, "masked_lm").loading_info[
        "unexpected_keys"]


def test_task_heads_round_trip(tmp_path):
    for task in ("sequence_classification", "question_answering"):
        q, d = saved(tmp_path, "bert", task)
        back = load_model(d, task)
        with no_grad():
            a, b = q(**batches()[0]), back(**batches()[0])
        np.testing.assert_array_equal(a[1].numpy(), b[1].numpy())


def test_loading_draws_no_float32_weights(tmp_path, monkeypatch):
    """Placeholders, not Linear/Embedding layers: the only float tables made while loading are
    the position and token-type embeddings (kept float) and 1-row stand-ins."""
    _, d = saved(tmp_path)
    drawn = []
    real = autograd.nn.init_normal
    monkeypatch.setattr(autograd.nn, "init_normal",
                        lambda shape, *a, **k: drawn.append(int(np.prod(shape))) or
                        real(shape, *a, **k))
    load_model(d, "pretraining")
    config = MobileBertConfig.from_pretrained(d)
    assert max(drawn) <= config.hidden_size                    # 1-row stand-ins only
    assert sum(drawn) < 0.01 * make_model().num_parameters()


def test_int8_directory_is_about_four_times_smaller(tmp_path):
    config = MobileBertConfig.from_pretrained("mobilebert-small", vocab_size=3000,
                                              num_hidden_layers=2, max_position_embeddings=128)
    model = model_class(config, "sequence_classification")(config, seed=0).eval()
    model.save_pretrained(tmp_path / "float")
    quantize_model(model).save_pretrained(tmp_path / "int8")
    ratio = (tmp_path / "float" / "model.safetensors").stat().st_size / \
        (tmp_path / "int8" / "model.safetensors").stat().st_size
    assert 3.3 < ratio < 4.0, ratio            # full MobileBERT: 3.71x (docs/int8.md)


# --- bad files -----------------------------------------------------------------------------------

def _edit(d: Path, change) -> None:
    arrays = load_safetensors(d / "model.safetensors")
    change(arrays)
    save_safetensors(d / "model.safetensors", arrays)


Q = "mobilebert.encoder.layer.0.attention.self.query"


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop(f"{Q}.weight_scale"), "missing scale"),
    (lambda a: a.__setitem__(f"{Q}.weight", a[f"{Q}.weight"].astype(np.float32)),
     "dtype mismatch"),
    (lambda a: a.__setitem__(f"{Q}.weight_scale", a[f"{Q}.weight_scale"].astype(np.float64)),
     "dtype mismatch"),
    (lambda a: a[f"{Q}.weight_scale"].__setitem__((3, 0), 0.0), "0, negative, inf or nan"),
    (lambda a: a[f"{Q}.weight_scale"].__setitem__((0, 0), np.nan), "holds NaN or inf"),
    (lambda a: a.__setitem__(f"{Q}.weight_scale", a[f"{Q}.weight_scale"].reshape(-1)),
     "shape"),
    (lambda a: a.__setitem__(f"{Q}.weight", a[f"{Q}.weight"][:, :8].copy()), "shape"),
    (lambda a: a.pop(f"{Q}.input_range"), "missing calibrated range"),
    (lambda a: a.__setitem__(f"{Q}.input_range", np.array([2.0, 1.0], np.float32)),
     "lo <= hi"),
    (lambda a: a.__setitem__(f"{Q}.input_range", np.array([0.0, np.inf], np.float32)),
     "holds NaN or inf"),
    (lambda a: a.pop("cls.predictions.dense.weight_scale"), "missing scale"),
    (lambda a: a.pop("mobilebert.embeddings.word_embeddings.weight"), "missing tensor"),
    (lambda a: a.__setitem__(f"{Q}.extra_thing", np.zeros(2, np.float32)), "unexpected"),
])
def test_bad_arrays_are_one_line_errors_naming_the_file(tmp_path, change, message):
    _, d = saved(tmp_path, mode="static")
    _edit(d, change)
    with pytest.raises(CheckpointError, match=message) as info:
        load_model(d, "pretraining")
    assert str(d / "model.safetensors") in str(info.value) and "\n" not in str(info.value)


def test_a_dynamic_file_with_ranges_or_a_static_one_without_are_refused(tmp_path):
    _, d = saved(tmp_path, mode="static")
    config = json.loads((d / "config.json").read_text())
    config["quantization_config"].update(mode="dynamic", activations="per_tensor")
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="static calibration range"):
        load_model(d, "pretraining")


@pytest.mark.parametrize("change, message", [
    (lambda q: q.update(quant_method="bitsandbytes"), "quant_method"),
    (lambda q: q.update(format_version=2), "format_version"),
    (lambda q: q.update(mode="dynamic-ish"), "mode must be one of"),
    (lambda q: q.update(mode="static"), "per_tensor"),
    (lambda q: q.update(mode="static", activations="per_tensor"), "observer"),
    (lambda q: q.update(modules_to_not_convert="classifier"), "list of module names"),
])
def test_bad_quantization_config_names_config_json(tmp_path, change, message):
    _, d = saved(tmp_path)
    config = json.loads((d / "config.json").read_text())
    change(config["quantization_config"])
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message) as info:
        load_model(d, "pretraining")
    assert "config.json" in str(info.value)


def test_int8_arrays_without_quantization_config_are_refused(tmp_path):
    _, d = saved(tmp_path)
    config = json.loads((d / "config.json").read_text())
    del config["quantization_config"]
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="no quantization_config"):
        load_model(d, "pretraining")


def test_a_float_layer_not_listed_as_kept_float_is_a_dtype_mismatch(tmp_path):
    model = make_model("mobilebert", "sequence_classification")
    q = quantize_model(model, keep_float=["classifier"])
    d = tmp_path / "kept"
    q.save_pretrained(d)
    assert isinstance(load_model(d, "sequence_classification").classifier, autograd.nn.Linear)
    config = json.loads((d / "config.json").read_text())
    config["quantization_config"]["modules_to_not_convert"] = []
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="dtype mismatch: classifier.weight is float32"):
        load_model(d, "sequence_classification")


def test_int8_model_refuses_another_float_dtype(tmp_path):
    _, d = saved(tmp_path)
    with pytest.raises(ValueError, match="float32"):
        model_class(MobileBertConfig.from_pretrained(d), "pretraining").from_pretrained(
            d, dtype=np.float64)


def test_numba_backend_runs_the_same_model(tmp_path):
    q, d = saved(tmp_path, mode="static")
    back = load_model(d, "pretraining", device="numba")
    assert isinstance(back.mobilebert.encoder.layer[0].attention.self.query, QuantizedLinear)
    got = logits(back)
    assert got.device == "numba"
    want = logits(q).numpy()
    from backends.numba_int8 import activation_max
    if activation_max() == 255:              # same codes: the same bits as the reference
        np.testing.assert_array_equal(got.numpy(), want)
    else:
        np.testing.assert_allclose(got.numpy(), want, rtol=0.05, atol=0.05 * np.abs(want).max())
