"""`tinybert finetune / evaluate / predict` end to end on the 2-layer fixture MobileBERT, and
their one-line errors."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli.main import tinybert
from paths import MODEL_FIXTURES

MODEL = MODEL_FIXTURES / "mobilebert-kq-shared"


def run(*args):
    return CliRunner().invoke(tinybert, [str(a) for a in args])


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    d = tmp_path_factory.mktemp("task")
    rows = ["sentence\tlabel"] + [f"the man went {w} to the store\t{w}"
                                  for w in ["up", "down"] * 8]
    (d / "train.tsv").write_text("\n".join(rows) + "\n")
    (d / "test.jsonl").write_text('{"sentence": "he went up"}\n{"sentence": "he went down"}\n')
    (d / "empty.tsv").write_text("sentence\tlabel\n")
    (d / "ragged.tsv").write_text("sentence\tlabel\nhe went up\tup\nhe went\n")
    return d


@pytest.fixture(scope="module")
def finetuned(task):
    out = task / "run"
    r = run("finetune", MODEL, "--task", "custom", "--train-file", task / "train.tsv",
            "--dev-file", task / "train.tsv", "--output-dir", out, "--epochs", 2,
            "--batch-size", 8, "--lr", 3e-3, "--json")
    assert r.exit_code == 0, r.output
    return out, json.loads(r.output[r.output.index("{"):])


def test_finetune_prints_results_next_to_the_baseline(finetuned, task):
    out, results = finetuned
    assert results["steps"] == 4 and results["baseline"] == {"acc": 0.5}
    assert (out / "best" / "model.safetensors").is_file()
    r = run("finetune", MODEL, "--task", "custom", "--train-file", task / "train.tsv",
            "--output-dir", task / "plain", "--max-steps", 2)
    assert r.exit_code == 0, r.output
    assert "trained 2/2 steps" in r.output and "model saved to" in r.output


def test_evaluate_and_predict(finetuned, task):
    out, results = finetuned
    r = run("evaluate", out / "best", "--task", "custom", "--dev-file", task / "train.tsv",
            "--output-dir", task / "ev")
    assert r.exit_code == 0, r.output
    assert f"acc {results['best']['acc']:.4f}" in r.output
    assert "baseline (majority class of the dev labels (no --train-file)): acc 0.5000" in r.output
    saved = json.loads((task / "ev" / "eval_results.json").read_text())
    assert saved["metrics"]["acc"] == results["best"]["acc"]
    r = run("predict", out / "best", "--task", "custom", "--input", task / "test.jsonl",
            "--output", task / "pred.tsv")
    assert r.exit_code == 0, r.output
    assert (task / "pred.tsv").read_text().splitlines()[0] == "index\tprediction"
    r = run("predict", out / "best", "--task", "custom", "--input", task / "test.jsonl",
            "--output", task / "pred.tsv")
    assert r.exit_code == 1 and "already exists" in r.output


@pytest.mark.parametrize("args, message", [
    (["--task", "mnly"], "Error: unknown task 'mnly'; known tasks: cola"),
    (["--task", "rte"], "line 2: label 'up' is not one of task rte's labels"),
    (["--task", "custom", "--lr", "0"], "Invalid value for '--lr'"),
    (["--task", "custom", "--dev-file", "{task}/empty.tsv"], "empty.tsv: no examples"),
    (["--task", "custom", "--dev-file", "{task}/ragged.tsv"],
     "ragged.tsv, line 3: expected 2 columns"),
])
def test_errors_are_one_line(task, args, message):
    r = run("finetune", MODEL, "--train-file", task / "train.tsv", "--output-dir",
            task / "never", *[a.format(task=task) for a in args])
    assert r.exit_code != 0 and message in r.output
    assert "Traceback" not in r.output and not (task / "never").exists()


def test_a_resume_with_another_batch_size_is_refused(task):
    out = task / "resumed"
    args = ["finetune", MODEL, "--task", "custom", "--train-file", task / "train.tsv",
            "--output-dir", out, "--max-steps", 2]
    assert run(*args).exit_code == 0
    r = run(*args, "--max-steps", 3, "--batch-size", 4, "--resume")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "cannot resume: --batch-size differs from the checkpoint's run" in r.output
    r = run(*args, "--max-steps", 3, "--resume")
    assert r.exit_code == 0, r.output
    assert "trained 3/3 steps" in r.output


def _first_loss(out):
    return json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["loss"]


def test_qat_reaches_the_model_and_is_recorded(task):
    base = ["finetune", MODEL, "--task", "custom", "--train-file", task / "train.tsv",
            "--max-steps", 2, "--batch-size", 8, "--json"]
    r = run(*base, "--output-dir", task / "qat", "--qat", "--qat-activations", "per-tensor",
            "--qat-activation-bits", 7, "--qat-keep-float", "classifier")
    assert r.exit_code == 0, r.output
    qat = json.loads(r.output[r.output.index("{"):])["qat"]
    assert qat["activations"] == "per_tensor" and qat["activation_max"] == 127
    assert qat["modules_to_not_convert"] == ["classifier"]
    saved = json.loads((task / "qat" / "model" / "config.json").read_text())
    assert saved["quantization_aware_training"] == qat
    assert run(*base, "--output-dir", task / "no-qat").exit_code == 0
    # same seed, same data: only the fake quantization makes the first loss differ
    assert _first_loss(task / "qat") != _first_loss(task / "no-qat")
    # a QAT model's record does not follow it into a plain fine-tuning run
    r = run("finetune", task / "qat" / "model", "--task", "custom", "--train-file",
            task / "train.tsv", "--max-steps", 1, "--output-dir", task / "after-qat")
    assert r.exit_code == 0, r.output
    after = json.loads((task / "after-qat" / "model" / "config.json").read_text())
    assert "quantization_aware_training" not in after


def test_qat_options_and_resume_are_checked(task):
    args = ["finetune", MODEL, "--task", "custom", "--train-file", task / "train.tsv",
            "--max-steps", 2, "--output-dir", task / "qat-resume"]
    r = run(*args, "--qat-activations", "per-tensor")
    assert r.exit_code == 2 and "--qat-activations needs --qat" in r.output
    r = run(*args, "--qat", "--qat-keep-float", "no_such_layer")
    assert r.exit_code == 1 and "'no_such_layer' matches no Linear" in r.output
    assert "Traceback" not in r.output
    assert run(*args, "--qat").exit_code == 0
    r = run(*args, "--max-steps", 3, "--resume")
    assert r.exit_code == 1 and "quantization_aware_training" in r.output
    assert run(*args, "--max-steps", 3, "--resume", "--qat").exit_code == 0
