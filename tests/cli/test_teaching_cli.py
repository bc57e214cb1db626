"""`tinybert trace`, `plot` and `attention` through click's CliRunner."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli.teaching_cmd import attention_command, plot_command, trace_command
from paths import MODEL_FIXTURES

MOBILE = MODEL_FIXTURES / "mobilebert-kq-shared"


def test_trace_a_preset_block_text_and_dot(tmp_path):
    dot = tmp_path / "g.dot"
    result = CliRunner().invoke(trace_command, ["--config", "mobilebert-small", "--layer", "2",
                                                "--dot", str(dot)])
    assert result.exit_code == 0, result.output
    assert "encoder block 2" in result.output
    assert "== multi-head attention: 4 heads of 16" in result.output
    assert "== output bottleneck: Linear 64 -> 256" in result.output
    assert dot.read_text().startswith("digraph autograd {")


def test_trace_a_model_directory_and_an_op(tmp_path):
    result = CliRunner().invoke(trace_command, [str(MOBILE), "--text", "the cat sat .",
                                                "--output", str(tmp_path / "t.txt")])
    assert result.exit_code == 0, result.output
    assert "saved for backward" in (tmp_path / "t.txt").read_text()
    result = CliRunner().invoke(trace_command, ["--op", "cross_entropy"])
    assert result.exit_code == 0 and "cross_entropy_fwd [reference]" in result.output


def test_trace_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(trace_command, ["--op", "nope"])
    assert result.exit_code == 1 and "unknown op 'nope'" in result.output
    result = CliRunner().invoke(trace_command, ["--config", "mobilebert-small", "--layer", "9"])
    assert result.exit_code == 1 and "has 4 blocks" in result.output
    result = CliRunner().invoke(trace_command, [str(MOBILE), "--output",
                                                str(MOBILE / "trace.txt")])
    assert result.exit_code == 2 and "inside the input directory" in result.output
    assert "Traceback" not in result.output


def _run_dir(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"step": i, "stage": "pd", "loss": 5.0 - i, "lr": 1e-3} for i in range(1, 4)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_plot_text_json_and_png(tmp_path):
    run = _run_dir(tmp_path)
    result = CliRunner().invoke(plot_command, [str(run), "--text"])
    assert result.exit_code == 0 and "loss" in result.output and "4" in result.output
    result = CliRunner().invoke(plot_command, [str(run), "--json"])
    assert {r["curve"] for r in json.loads(result.output)} == {"loss", "lr"}
    pytest.importorskip("matplotlib")
    result = CliRunner().invoke(plot_command, [str(run), "--output", str(tmp_path / "c.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    result = CliRunner().invoke(plot_command, [str(tmp_path)])
    assert result.exit_code == 1 and "no metrics.jsonl" in result.output


def test_attention_compare(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "a.png"
    result = CliRunner().invoke(attention_command, [str(MOBILE), "the cat sat .", "--compare",
                                                    str(MOBILE), "--output", str(out),
                                                    "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["tokens"][0] == "[CLS]" and len(info["layers"]) > 0
    assert all(abs(r["feature_map_mse"]) < 1e-9 for r in info["layers"])
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_trace_refuses_an_int8_model(tmp_path):
    d = tmp_path / "int8"
    d.mkdir()
    config = json.loads((MOBILE / "config.json").read_text())
    config["quantization_config"] = {"mode": "dynamic"}
    (d / "config.json").write_text(json.dumps(config))
    result = CliRunner().invoke(trace_command, [str(d)])
    assert result.exit_code == 1 and "is an int8 model" in result.output
