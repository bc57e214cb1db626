"""`tinybert quickstart` end to end at a reduced size, through the real command in a child
process (slow: a few minutes on 2 cores).

- The whole run: every stage done, an int8 model smaller on disk than the float one, and the
  report's numbers equal to the runs' own files: task accuracy from eval/task.json and from an
  independent `tinybert_core.finetuning.evaluate` of the saved models, held-out MLM from an
  independent `recipes.evaluate`, stage seconds from quickstart.json, sizes from the
  model.safetensors files. A second call skips every stage.
- A kill in the middle of the student stage: the second call skips the vocabulary and the
  teacher (their files are untouched), resumes the student from its checkpoint and finishes.
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from paths import ROOT

pytestmark = pytest.mark.slow

SMALL = ["--teacher-steps", "16", "--kt-steps-per-layer", "3", "--pd-steps", "12",
         "--finetune-epochs", "1", "--max-train-examples", "160", "--batch-size", "8",
         "--max-seq-length", "32", "--eval-batches", "2"]


def command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", "from cli.main import tinybert; tinybert()", "quickstart",
            "--output-dir", str(out), *SMALL, *extra]


def run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    done = subprocess.run(command(out, *extra), cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _number(report: str, row_start: str, column: int = 1, section: str = "") -> str:
    """A cell of the first table row starting with `row_start` after heading `section`."""
    for line in report[report.index(section):].splitlines():
        if line.startswith(row_start):
            return [c.strip() for c in line.strip("|").split("|")][column]
    raise AssertionError(f"no row {row_start!r} in the report")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("qs") / "quickstart"
    done = run(out)
    return out, done


def test_every_stage_runs_with_progress(finished):
    out, done = finished
    state = json.loads((out / "quickstart.json").read_text())
    assert [s for s, v in state["stages"].items() if v["status"] == "done"] == [
        "vocab", "teacher", "student", "finetune", "quantize", "evaluate", "report"]
    for stage in ("[1/7] vocab", "[4/7] finetune", "[7/7] report"):
        assert stage in done.stderr
    assert "quickstart teacher: 16/16 steps" in done.stderr     # progress lines, not a TTY
    assert "report: " in done.stdout


def test_report_numbers_come_from_the_runs_files(finished):
    from tinybert_core.finetuning import TaskOptions, evaluate
    from tinybert_core.recipes import DataOptions
    from tinybert_core.recipes import evaluate as evaluate_mlm
    out, _ = finished
    report = (out / "report.md").read_text()
    task = json.loads((out / "eval" / "task.json").read_text())
    metric = task["float"]["metric"]
    labels = json.loads((out / "quickstart.json").read_text())["stages"]["vocab"]["labels"]
    # task accuracy: the report's row = eval/task.json = an independent evaluation now
    for row, name, model in (("| fine-tuned student, float32", "float", "finetune/best"),
                             ("| fine-tuned student, int8", "int8", "int8")):
        value = task[name]["metrics"][metric]
        assert _number(report, row, section="## Task") == f"{100 * value:.1f}%"
        again = evaluate(out / model, out / "task" / "dev.tsv",
                         TaskOptions("custom", labels=labels, max_seq_length=32),
                         out.parent / f"check-{name}", train_file=out / "task" / "train.tsv")
        assert again["metrics"][metric] == pytest.approx(value, abs=1e-9)
    base = task["float"]["baseline"][metric]
    assert _number(report, "| majority baseline", section="## Task") == f"{100 * base:.1f}%"
    # held-out MLM: the report's row = an independent evaluation of the saved student
    mlm = evaluate_mlm(out / "student" / "model",
                       DataOptions(max_seq_length=32, max_predictions_per_seq=10,
                                   batch_size=8, eval_batches=2))
    assert _number(report, "| student (progressive)", section="## Held-out") == \
        f"{mlm['mlm_loss']:.4f}"
    # stage seconds from quickstart.json, sizes from the weight files
    state = json.loads((out / "quickstart.json").read_text())
    assert _number(report, "| teacher |", 2, section="## Stages") == \
        f"{state['stages']['teacher']['seconds']:.1f}"
    float_bytes = (out / "finetune" / "best" / "model.safetensors").stat().st_size
    int8_bytes = (out / "int8" / "model.safetensors").stat().st_size
    assert int8_bytes < float_bytes
    assert _number(report, "| fine-tuned student, int8 |", 3, section="## Models") == \
        f"{int8_bytes / 1e6:.2f} MB"
    # the curves table reads metrics.jsonl
    first = json.loads((out / "teacher" / "metrics.jsonl").read_text().splitlines()[0])
    assert re.search(rf"\| loss \| {first['loss']:.4f} \|", report)


def test_second_call_skips_every_stage(finished):
    out, _ = finished
    before = (out / "report.md").stat().st_mtime_ns
    done = run(out)
    assert done.stderr.count("done in an earlier call, skipped") == 7
    assert (out / "report.md").stat().st_mtime_ns == before
    other = subprocess.run(command(out, "--seed", "1"), cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert other.returncode == 1 and "other settings (seed: 0 there, 1 now)" in other.stderr


def test_a_kill_mid_stage_resumes(tmp_path):
    out = tmp_path / "quickstart"
    proc = subprocess.Popen(command(out), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    checkpoint = out / "student" / "checkpoint.npz"
    deadline = time.monotonic() + 600
    while not checkpoint.exists():
        assert proc.poll() is None, "the quickstart ended before the student stage"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((out / "quickstart.json").read_text())
    assert "student" not in state["stages"] and state["stages"]["teacher"]["status"] == "done"
    teacher_log = (out / "teacher" / "metrics.jsonl").read_bytes()
    done = run(out)
    assert "vocab: done in an earlier call, skipped" in done.stderr
    assert "teacher: done in an earlier call, skipped" in done.stderr
    state = json.loads((out / "quickstart.json").read_text())
    assert state["stages"]["student"]["resumed"] is True
    assert state["stages"]["report"]["status"] == "done"
    assert (out / "teacher" / "metrics.jsonl").read_bytes() == teacher_log
    steps = [json.loads(line)["step"] for line in
             (out / "student" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 4 * 3 + 12 + 1))          # each step once, none lost
