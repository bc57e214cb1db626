"""Curves from metrics.jsonl, the matplotlib-optional drawing, and the teacher/student
comparison (per-layer L_FMT and L_AT through the distillation losses)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tinybert_core.config import MobileBertConfig
from tinybert_core.models.auto import model_class
from tinybert_core.teaching import plots
from tinybert_core.teaching.attention import attention_view, compare_models


def _write_run(path, records, torn=False):
    path.mkdir()
    text = "".join(json.dumps(r) + "\n" for r in records)
    (path / "metrics.jsonl").write_text(text + ('{"step": 9, "lo' if torn else ""))


RECORDS = [{"step": 1, "stage": "kt_layer_0", "loss": 4.0, "lr": 0.0, "seconds": 1.0},
           {"step": 2, "stage": "kt_layer_0", "loss": 3.0, "lr": 1e-3, "seconds": 1.0},
           {"step": 3, "stage": "pd", "loss": 2.5, "lr": 1e-3, "eval_mlm_loss": 5.0,
            "eval_mlm_accuracy": 0.2, "eval_predictions": 100},
           {"step": 4, "stage": "pd", "loss": float("nan"), "lr": 5e-4, "mlm": 2.0}]


def test_curves_stages_and_summary(tmp_path):
    _write_run(tmp_path / "run", RECORDS, torn=True)
    records = plots.read_metrics(tmp_path / "run")
    assert [r["step"] for r in records] == [1, 2, 3, 4]            # torn last line skipped
    c = plots.curves(records)
    assert set(c) == {"loss", "lr", "eval_mlm_loss", "eval_mlm_accuracy", "mlm"}
    np.testing.assert_array_equal(c["loss"][0], [1, 2, 3])           # NaN is not a point
    assert plots.stages(records) == [("kt_layer_0", 1, 2), ("pd", 3, 4)]
    rows = {r["curve"]: r for r in plots.curve_summary(records)}
    assert rows["loss"]["first"] == 4.0 and rows["loss"]["min"] == 2.5
    assert rows["loss"]["min_step"] == 3


def test_bad_metrics_files(tmp_path):
    with pytest.raises(ValueError, match="no metrics.jsonl; a run directory"):
        plots.read_metrics(tmp_path)
    _write_run(tmp_path / "teacher", RECORDS)
    with pytest.raises(ValueError, match=r"no metrics.jsonl \(its runs: teacher\)"):
        plots.read_metrics(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        plots.read_metrics(tmp_path)


def test_missing_matplotlib_is_one_line(monkeypatch):
    import builtins
    real = builtins.__import__

    def no_mpl(name, *a, **k):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_mpl)
    with pytest.raises(plots.PlotsUnavailable, match=r"pip install 'tinybert\[plots\]'"):
        plots.require_matplotlib()
    assert not plots.have_matplotlib()


def test_plot_run_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    _write_run(tmp_path / "run", RECORDS)
    out = plots.plot_run(tmp_path / "run", tmp_path / "c.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class _Tok:
    """A stand-in tokenizer: fixed ids, token strings from them."""

    def __call__(self, text, truncation=True, max_length=64):
        return {"input_ids": [2, 7, 8, 9, 3][:max_length]}

    def convert_ids_to_tokens(self, ids):
        return [f"t{i}" for i in ids]


def _backbone(seed):
    cfg = MobileBertConfig.from_pretrained("mobilebert-small", vocab_size=32)
    return model_class(cfg, "base")(cfg, seed=seed).eval()


def test_compare_models_is_zero_for_one_model_and_positive_for_two():
    a, b = _backbone(0), _backbone(1)
    for layer in b.encoder.layer:          # random init attends almost uniformly: sharpen b's
        layer.bottleneck.attention.dense.weight.data *= 30.0
        layer.attention.self.query.weight.data *= 30.0
        layer.attention.self.key.weight.data *= 30.0
    va, vb = attention_view(a, _Tok(), "x"), attention_view(b, _Tok(), "x")
    assert va.probs.shape == (4, 4, 5, 5)
    np.testing.assert_allclose(va.probs.sum(-1), 1.0, rtol=1e-5)
    same = compare_models(va, va)
    assert all(abs(r["feature_map_mse"]) < 1e-12 and abs(r["attention_kl"]) < 1e-6
               for r in same)
    diff = compare_models(va, vb)
    assert len(diff) == 4 and all(r["feature_map_mse"] > 0 and r["attention_kl"] > 0
                                  for r in diff)
    # independently: layer 0's MSE is the mean squared difference of the block outputs
    expected = np.mean((va.hidden[1].numpy() - vb.hidden[1].numpy()) ** 2)
    assert diff[0]["feature_map_mse"] == pytest.approx(expected, rel=1e-5)
