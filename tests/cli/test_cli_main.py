"""The `tinybert` group: --help, --version, --backend, and the gradcheck audit command."""
from __future__ import annotations

import json

from click.testing import CliRunner

import backends
from cli.main import tinybert


def test_help_and_version():
    runner = CliRunner()
    result = runner.invoke(tinybert, ["--help"])
    assert result.exit_code == 0 and "gradcheck" in result.output
    result = runner.invoke(tinybert, ["--version"])
    assert result.exit_code == 0 and "tinybert, version" in result.output


def test_gradcheck_audits_every_op_as_json():
    result = CliRunner().invoke(tinybert, ["--backend", "numpy", "gradcheck", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["failed"] == 0 and report["passed"] >= 45
    assert (report["eps"], report["atol"], report["rtol"]) == (1e-6, 1e-6, 1e-5)
    ops = {r["op"]: r for r in report["results"]}
    assert {"softmax_masked", "cross_entropy", "no_norm", "layer_norm", "embedding"} <= set(ops)
    # every case says how large its errors were and where, passing or not
    for r in report["results"]:
        assert 0.0 <= r["max_abs_error"] < 1e-6 and r["max_abs_at"].startswith("input ")
        assert " index (" in r["max_abs_at"] and r["inputs"][0]["passed"]
        assert r["vs_numpy"] is None and r["vs_torch"] is None
    assert ops["linear"]["max_rel_at"].split(" index")[0] in ("input 0", "input 1", "input 2")


def test_gradcheck_text_report_shows_errors_where_and_tolerances():
    result = CliRunner().invoke(tinybert, ["gradcheck", "--only", "layer_norm"])
    assert result.exit_code == 0, result.output
    assert "eps=1e-06, atol=1e-06, rtol=1e-05" in result.output
    line = next(x for x in result.output.splitlines() if x.startswith("ok  layer_norm "))
    assert " at input " in line and " index (" in line and line.endswith(" ms")


def test_gradcheck_on_numba_compares_with_numpy():
    result = CliRunner().invoke(tinybert, ["--backend", "numba", "gradcheck", "--only",
                                           "softmax", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["backend"] == "numba"
    for r in report["results"]:
        assert r["vs_numpy"]["passed"] and r["vs_numpy"]["against"] == "numpy"


def test_gradcheck_only_filter_and_unknown_filter():
    runner = CliRunner()
    result = runner.invoke(tinybert, ["gradcheck", "--only", "softmax"])
    assert result.exit_code == 0 and "3 passed, 0 failed" in result.output
    result = runner.invoke(tinybert, ["gradcheck", "--only", "nonexistent"])
    assert result.exit_code != 0 and "no op name contains 'nonexistent'" in result.output


def _tiny_config(tmp_path):
    from tinybert_core import MobileBertConfig
    cfg = MobileBertConfig.from_pretrained(
        "mobilebert", vocab_size=40, embedding_size=8, hidden_size=16, intra_bottleneck_size=8,
        intermediate_size=16, num_attention_heads=2, max_position_embeddings=16)
    return cfg.save_pretrained(tmp_path / "tiny").parent


def test_gradcheck_a_whole_model_from_a_config(tmp_path):
    result = CliRunner().invoke(tinybert, ["gradcheck", "--config", str(_tiny_config(tmp_path)),
                                           "--layers", "1", "--max-seq-length", "6",
                                           "--loss", "mlm+nsp", "--loss", "question_answering"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "MLM + NSP: loss " in out and "question answering: loss " in out
    assert "  layer 0: stacked FFNs" in out and "  heads" in out
    assert "mobilebert.encoder.layer.0.ffn.2.output.LayerNorm.bias" in out
    assert "layer.1." not in out and "passed: " in out


def test_gradcheck_a_whole_model_as_json(tmp_path):
    from tinybert_core import MobileBertConfig, MobileBertForPreTraining
    d = _tiny_config(tmp_path)
    MobileBertForPreTraining(MobileBertConfig.from_pretrained(d), seed=0).save_pretrained(
        tmp_path / "model")
    result = CliRunner().invoke(tinybert, ["gradcheck", str(tmp_path / "model"),
                                           "--layers", "1", "--max-seq-length", "6", "--loss",
                                           "fmt", "--json", "--directions", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["passed"] and report["setup"]["weights"] == "model directory"
    (fmt,) = report["losses"]
    assert fmt["loss"] == "fmt" and fmt["model"] == "MobileBertModel"
    assert all(p["checked"] == 1 and p["name"].startswith("mobilebert.") for p in fmt["params"])


def test_gradcheck_option_mistakes_are_one_line_errors(tmp_path, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(tinybert, ["gradcheck", "--layers", "2"])
    assert result.exit_code == 2 and "--layers applies to a model audit" in result.output
    result = runner.invoke(tinybert, ["gradcheck", str(tmp_path), "--config", "mobilebert"])
    assert result.exit_code == 2 and "give --config or MODEL_DIR, not both" in result.output
    result = runner.invoke(tinybert, ["gradcheck", "--config", "mobilebert", "--only", "add"])
    assert result.exit_code == 2 and "a model audit takes --loss" in result.output
    result = runner.invoke(tinybert, ["gradcheck", "--config", "no-such-preset"])
    assert result.exit_code == 2 and "neither a preset" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(tinybert, ["gradcheck", "--config", str(_tiny_config(tmp_path)),
                                      "--max-seq-length", "40", "--loss", "mlm+nsp"])
    assert result.exit_code == 1 and "sequence length must be in [4, 16]" in result.output
    monkeypatch.setitem(__import__("sys").modules, "torch", None)
    result = runner.invoke(tinybert, ["gradcheck", "--only", "add", "--against", "torch"])
    assert result.exit_code == 1 and "needs PyTorch, which is not installed" in result.output
    assert "1/1" not in result.output                  # refused before any work


def test_unknown_backend_is_rejected_by_click():
    result = CliRunner().invoke(tinybert, ["--backend", "tpu", "gradcheck"])
    assert result.exit_code == 2 and "tpu" in result.output


_ORIGINAL_DEFAULT = backends.default_backend_name()


def teardown_module(module):
    # --backend sets the process default; give later tests the default they started with.
    backends.set_default_backend(_ORIGINAL_DEFAULT)
