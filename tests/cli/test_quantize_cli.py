"""`tinybert quantize` through click's CliRunner, and every model-loading command on its output
(fill-mask, encode, evaluate-mlm, summary)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli.inference_cmd import encode_command, fill_mask_command
from cli.quantize_cmd import quantize_command
from cli.summary_cmd import summary_command
from cli.evaluate_cmd import evaluate_mlm_command
from paths import MODEL_FIXTURES
from tinybert_core import load_model
from tinybert_core.quantization import QuantizedLinear

MOBILE = MODEL_FIXTURES / "mobilebert-kq-shared"
TEXT = """the man went to the store and bought a gallon of milk .
he said that the people of the country want a better life for their children .
we will work with the congress to make the economy strong again .

a new year brings new hope , and the work of the nation goes on .
the government must serve the people and keep the peace .
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "calibration.txt"
    path.write_text(TEXT * 6, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def int8_dirs(tmp_path_factory, corpus) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("int8")
    out = {}
    for mode, extra in (("dynamic", []), ("static", ["--observer", "percentile"])):
        out[mode] = root / mode
        result = CliRunner().invoke(quantize_command, [
            str(MOBILE), "--output-dir", str(out[mode]), "--mode", mode, "--calibration-file",
            str(corpus), "--calibration-batches", "2", "--batch-size", "2",
            "--max-seq-length", "32", "--report-sequences", "3", *extra])
        assert result.exit_code == 0, result.output
        out[mode + "-output"] = result.output
    return out


def test_quantize_writes_an_int8_model_and_a_report(int8_dirs):
    d, text = int8_dirs["static"], int8_dirs["static-output"]
    assert {p.name for p in d.iterdir()} >= {"config.json", "model.safetensors", "vocab.txt",
                                             "quantization_report.json"}
    config = json.loads((d / "config.json").read_text())["quantization_config"]
    assert config["mode"] == "static" and config["observer"] == "percentile"
    assert config["calibration"]["batches"] == 2 and config["calibration"]["batch_size"] == 2
    report = json.loads((d / "quantization_report.json").read_text())
    assert report["report"]["sequences"] == 3
    assert report["bytes_on_disk"]["int8"] < report["bytes_on_disk"]["float32"] / 2.5
    assert "attention query/key/value" in text and "largest local errors" in text
    assert "static, activations per-tensor, percentile observer" in text
    assert "MiB ->" in text and "argmax agreement" in text
    dispatch = report["int8_dispatch"]                  # which layers would fall back, per block
    assert dispatch["backend"] == "numba" and [b["batch"] for b in dispatch["batches"]] == [1, 8]
    layers = sum(1 for r in report["report"]["layers"] if r["kind"] != "embedding")
    assert all(b["int8"] + b["float32"] == layers for b in dispatch["batches"])
    assert "int8 dispatch on --backend numba" in text and "batch 8:" in text


def test_quantize_json(corpus, tmp_path):
    result = CliRunner().invoke(quantize_command, [
        str(MOBILE), "--output-dir", str(tmp_path / "q"), "--calibration-file", str(corpus),
        "--activations", "per-tensor", "--report-sequences", "2", "--max-seq-length", "24",
        "--keep-float", "seq_relationship", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["quantization_config"]["activations"] == "per_tensor"
    assert summary["keep_float"] == ["cls.seq_relationship"]
    assert summary["report"]["output"]["cosine"] > 0.99
    assert not isinstance(load_model(tmp_path / "q", "pretraining").cls.seq_relationship,
                          QuantizedLinear)


def test_every_model_command_accepts_an_int8_directory(int8_dirs, corpus, tmp_path):
    runner = CliRunner()
    for mode in ("dynamic", "static"):
        d = str(int8_dirs[mode])
        result = runner.invoke(fill_mask_command, [d, "the man went to the [MASK] .", "--json"])
        assert result.exit_code == 0, result.output
        assert len(json.loads(result.output)["predictions"][0]) == 5
        out = tmp_path / f"{mode}.npy"
        result = runner.invoke(encode_command, [d, "--input", str(corpus), "--output", str(out)])
        assert result.exit_code == 0, result.output
        assert np.load(out).shape == (TEXT.count("\n") * 6, 64)
        result = runner.invoke(evaluate_mlm_command, [d, "--eval-corpus", str(corpus),
                                                      "--max-seq-length", "32", "--batch-size", "2",
                                                      "--eval-batches", "2", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["predictions"] > 0
        result = runner.invoke(summary_command, ["--config", d, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["quantization"]["mode"] == mode
        text = runner.invoke(summary_command, ["--config", d]).output
        assert f"int8 model: {mode} quantization" in text


def test_int8_fill_mask_agrees_with_float(int8_dirs):
    runner = CliRunner()
    args = ["the man went to the [MASK] and bought a gallon of milk .", "--top-k", "1",
            "--json"]
    best = [json.loads(runner.invoke(fill_mask_command, [str(d), *args]).output)
            ["predictions"][0][0]["token"] for d in (MOBILE, int8_dirs["dynamic"])]
    assert best[0] == best[1]


def test_quantize_user_errors(int8_dirs, corpus, tmp_path):
    runner = CliRunner()
    result = runner.invoke(quantize_command, [str(int8_dirs["dynamic"]), "--output-dir",
                                              str(tmp_path / "again")])
    assert result.exit_code == 1 and "already an int8 model" in result.output
    shutil.copytree(MOBILE, tmp_path / "novocab")
    (tmp_path / "novocab" / "vocab.txt").unlink()
    result = runner.invoke(quantize_command, [str(tmp_path / "novocab"), "--output-dir",
                                              str(tmp_path / "o")])
    assert result.exit_code == 1 and "no vocab.txt" in result.output
    result = runner.invoke(quantize_command, [str(MOBILE), "--output-dir", str(tmp_path / "o"),
                                              "--keep-float", "*.nothing"])
    assert result.exit_code == 1 and "matches no Linear" in result.output
    result = runner.invoke(quantize_command, [str(MOBILE), "--output-dir",
                                              str(int8_dirs["static"]), "--calibration-file",
                                              str(corpus)])
    assert result.exit_code == 1 and "not empty" in result.output
    result = runner.invoke(quantize_command, [str(MOBILE), "--output-dir", str(MOBILE)])
    assert result.exit_code == 1 and "\n" not in result.output.strip()
    result = runner.invoke(quantize_command, [str(MOBILE), "--output-dir", str(tmp_path / "o"),
                                              "--percentile", "30"])
    assert result.exit_code == 2
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_a_finetuned_model_quantized_evaluates_and_predicts_like_float(tmp_path, corpus):
    """finetune -> quantize -> evaluate / predict: the int8 directory goes through the same
    loader, its head is int8 too, and its accuracy and predictions match the float model's on
    this easy task; fine-tuning an int8 directory is a one-line refusal."""
    from cli.main import tinybert
    runner = CliRunner()
    rows = ["sentence\tlabel"] + [f"the man went {w} to the store\t{w}"
                                  for w in ["up", "down"] * 8]
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "test.jsonl").write_text('{"sentence": "he went up"}\n'
                                         '{"sentence": "he went down"}\n')

    def run(*args):
        result = runner.invoke(tinybert, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        return result.output
    run("finetune", MOBILE, "--task", "custom", "--train-file", tmp_path / "train.tsv",
        "--dev-file", tmp_path / "train.tsv", "--output-dir", tmp_path / "run", "--epochs", 3,
        "--batch-size", 8, "--lr", 3e-3)
    best = tmp_path / "run" / "best"
    run("quantize", best, "--output-dir", tmp_path / "q8", "--mode", "static",
        "--calibration-file", corpus, "--calibration-batches", "2", "--max-seq-length", "32",
        "--report-sequences", "0")
    assert isinstance(load_model(tmp_path / "q8", "sequence_classification").classifier,
                      QuantizedLinear)
    results, predictions = {}, {}
    for name, d in (("float", best), ("int8", tmp_path / "q8")):
        run("evaluate", d, "--task", "custom", "--dev-file", tmp_path / "train.tsv",
            "--output-dir", tmp_path / f"ev-{name}")
        results[name] = json.loads((tmp_path / f"ev-{name}" / "eval_results.json").read_text())
        run("predict", d, "--task", "custom", "--input", tmp_path / "test.jsonl", "--output",
            tmp_path / f"{name}.tsv")
        predictions[name] = (tmp_path / f"{name}.tsv").read_text()
    assert results["int8"]["metrics"] == results["float"]["metrics"]
    assert predictions["int8"] == predictions["float"]
    result = runner.invoke(tinybert, ["finetune", str(tmp_path / "q8"), "--task", "custom",
                                      "--train-file", str(tmp_path / "train.tsv"),
                                      "--output-dir", str(tmp_path / "never")])
    assert result.exit_code == 1 and "inference-only" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "never").exists()


def test_quantize_takes_a_qat_record_unless_told_otherwise(corpus, tmp_path):
    """A `finetune --qat` model records the rounding it trained with; dynamic quantization uses
    that record's activations and float32 layers by default, the options still win."""
    model = tmp_path / "qat-model"
    shutil.copytree(MOBILE, model)
    config = json.loads((model / "config.json").read_text())
    config["quantization_aware_training"] = {
        "mode": "dynamic", "activations": "per_tensor", "activation_max": 255,
        "weights": "int8 symmetric per output channel [-127, 127]",
        "modules_to_not_convert": ["cls.seq_relationship"]}
    (model / "config.json").write_text(json.dumps(config))
    common = ["--calibration-file", str(corpus), "--report-sequences", "1",
              "--max-seq-length", "24", "--json"]
    result = CliRunner().invoke(quantize_command, [str(model), "--output-dir",
                                                   str(tmp_path / "a"), *common])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["quantization_config"]["activations"] == "per_tensor"
    assert summary["keep_float"] == ["cls.seq_relationship"]
    assert summary["qat_record"]["activations"] == "per_tensor"
    result = CliRunner().invoke(quantize_command, [
        str(model), "--output-dir", str(tmp_path / "b"), "--activations", "per-row",
        "--keep-float", "cls.predictions.transform*", *common])
    summary = json.loads(result.stdout) if result.exit_code == 0 else result.output
    assert result.exit_code == 0, summary
    assert summary["quantization_config"]["activations"] == "per_row"
    assert "cls.seq_relationship" not in summary["keep_float"]


@pytest.mark.parametrize("record, message", [
    ({"mode": "dynamic", "activations": "per_token", "activation_max": 255},
     "activations must be one of"),
    ({"mode": "dynamic", "activations": "per_row", "activation_max": 255,
      "modules_to_not_convert": "cls"}, "modules_to_not_convert must be a list"),
    ("per_row", "expected a dynamic-mode record")])
def test_quantize_refuses_a_bad_qat_record(corpus, tmp_path, record, message):
    model = tmp_path / "qat-model"
    shutil.copytree(MOBILE, model)
    config = json.loads((model / "config.json").read_text())
    config["quantization_aware_training"] = record
    (model / "config.json").write_text(json.dumps(config))
    result = CliRunner().invoke(quantize_command, [
        str(model), "--output-dir", str(tmp_path / "out"), "--calibration-file", str(corpus)])
    assert result.exit_code != 0
    line = result.output.strip().splitlines()[-1]
    assert str(model / "config.json") in line and "quantization_aware_training" in line
    assert message in line
