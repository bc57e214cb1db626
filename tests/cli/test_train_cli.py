"""`tinybert pretrain / distill / evaluate-mlm / vocab` end to end on a tiny config."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import tinybert
from paths import SHARED_DATA
from tinybert_core import MobileBertConfig

VOCAB = SHARED_DATA / "vocab/bert-base-uncased-vocab.txt"
CORPUS = SHARED_DATA / "corpus/sotu-valid.txt"
pytestmark = pytest.mark.skipif(not CORPUS.exists(), reason="needs ../shared/data")

TINY = dict(hidden_size=32, embedding_size=16, num_hidden_layers=2, num_attention_heads=2,
            max_position_embeddings=64)
EVAL = ["--eval-corpus", str(CORPUS), "--vocab", str(VOCAB), "--batch-size", "2",
        "--max-seq-length", "32", "--max-predictions", "5", "--eval-batches", "1"]
COMMON = ["--corpus", str(CORPUS), *EVAL]


def write_config(path: Path, preset: str, **sizes) -> Path:
    MobileBertConfig.from_pretrained(preset, **{**TINY, **sizes}).to_json(path)
    return path


def run(*args):
    result = CliRunner().invoke(tinybert, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("teacher")
    cfg = write_config(tmp / "teacher.json", "ib-bert-small", intra_bottleneck_size=64,
                       intermediate_size=64)
    result = run("pretrain", "--config", cfg, "--steps", 3, "--output-dir", tmp / "run",
                 "--cache-dir", tmp / "cache", "--json", *COMMON)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["steps"] == 3 and summary["eval"]["predictions"] > 0
    assert len((tmp / "run" / "metrics.jsonl").read_text().splitlines()) == 3
    assert "pretrain: 3/3 steps (100%)" in result.stderr      # progress lines off a terminal
    return Path(summary["model_dir"])


def test_pretrain_writes_hf_layout(teacher_dir):
    assert {p.name for p in teacher_dir.iterdir()} >= {"config.json", "model.safetensors",
                                                       "vocab.txt"}
    result = run("fill-mask", teacher_dir, "the united [MASK] of america", "--top-k", 3)
    assert result.exit_code == 0, result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 3


@pytest.mark.parametrize("strategy", ["progressive", "joint", "auxiliary", "none"])
def test_distill_each_strategy(teacher_dir, tmp_path, strategy):
    cfg = write_config(tmp_path / "student.json", "mobilebert-small", intra_bottleneck_size=16,
                       intermediate_size=32)
    result = run("distill", teacher_dir, "--config", cfg, "--strategy",
                 strategy, "--kt-steps-per-layer", 1, "--pd-steps", 1, "--output-dir",
                 tmp_path / "out", "--cache-dir", tmp_path / "cache", *COMMON)
    assert result.exit_code == 0, result.output
    assert "trained 3/3 steps" in result.output
    result = run("evaluate-mlm", tmp_path / "out" / "model", "--json", *EVAL)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["mlm_accuracy"] >= 0.0
    assert "evaluate-mlm: 1/1 batches (100%)" in result.stderr


def test_every_evaluation_shows_the_unigram_baseline(teacher_dir, tmp_path):
    """Issue 9: the log, the summary and evaluate-mlm put the unigram baseline next to the
    model's loss and say plainly that a 3-step model does not beat it."""
    record = json.loads((teacher_dir.parent / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["eval_unigram_loss"] > 0 and 0 <= record["eval_unigram_accuracy"] <= 1
    assert record["eval_beats_unigram"] is False and "eval_collapsed" in record
    assert (teacher_dir / "unigram_counts.npz").is_file()
    saved = run("evaluate-mlm", teacher_dir, "--json", *COMMON[2:])    # counts from the model
    given = run("evaluate-mlm", teacher_dir, "--json", *COMMON)        # counts from --corpus
    assert saved.exit_code == 0 and given.exit_code == 0, saved.output + given.output
    a, b = json.loads(saved.stdout), json.loads(given.stdout)
    assert a["unigram_source"].endswith("unigram_counts.npz") and "--corpus" in b["unigram_source"]
    assert a["unigram_loss"] == pytest.approx(b["unigram_loss"], rel=1e-12)
    assert a["unigram_accuracy"] == b["unigram_accuracy"] == record["eval_unigram_accuracy"]
    text = run("evaluate-mlm", teacher_dir, *COMMON).output
    assert "unigram baseline (training-text token frequencies, same positions)" in text
    assert "the model does NOT beat the unigram baseline" in text
    bare = tmp_path / "model"
    bare.mkdir()
    for f in teacher_dir.iterdir():
        if f.name != "unigram_counts.npz":
            (bare / f.name).write_bytes(f.read_bytes())
    text = run("evaluate-mlm", bare, *COMMON[2:]).output
    assert "no unigram baseline: the training text is unknown" in text


def test_distill_refuses_a_mismatched_teacher_before_training(teacher_dir, tmp_path):
    cfg = write_config(tmp_path / "student.json", "mobilebert-small", intra_bottleneck_size=16,
                       intermediate_size=32, num_attention_heads=4)
    result = run("distill", teacher_dir, "--config", cfg, "--output-dir",
                 tmp_path / "out", *COMMON)
    assert result.exit_code == 1
    assert "num_attention_heads: student 4 vs teacher 2" in result.output
    assert not (tmp_path / "out" / "checkpoint.npz").exists()


def test_empty_corpus_and_foreign_checkpoint_are_clear_errors(teacher_dir, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    result = run("pretrain", "--config", teacher_dir, "--steps", 1, "--output-dir",
                 tmp_path / "a", "--corpus", empty, "--vocab", VOCAB, "--max-seq-length", 32)
    assert result.exit_code == 1 and "empty corpus" in result.output
    cfg = write_config(tmp_path / "other.json", "mobilebert-small", intra_bottleneck_size=16,
                       intermediate_size=32)
    args = ["--steps", 2, "--save-every", 1, "--output-dir", tmp_path / "b", *COMMON]
    assert run("pretrain", "--config", teacher_dir, *args).exit_code == 0
    result = run("pretrain", "--config", cfg, "--resume", *args)
    assert result.exit_code == 1 and "different model config" in result.output


def test_vocab_command(tmp_path):
    out = tmp_path / "vocab.txt"
    result = run("vocab", "--corpus", CORPUS, "--output", out, "--vocab-size", 1500)
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert len(lines) == 1500 and lines[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def test_a_run_directory_in_use_is_refused(tmp_path):
    from tinybert_core.training.run_dir import open_run_directory
    out = tmp_path / "run"
    with open_run_directory(out, command="tinybert pretrain (the first run)"):
        result = run("pretrain", "--config", "mobilebert-small", "--steps", 1, "--output-dir",
                     out, *COMMON)
    assert result.exit_code == 1
    assert f"Error: output directory {out} is in use by another run (pid " in result.output
    assert "'tinybert pretrain (the first run)'" in result.output
    assert "Traceback" not in result.output


def test_no_run_reuses_or_overwrites_another_runs_files_without_a_flag(teacher_dir, tmp_path):
    out = tmp_path / "run"
    args = ["pretrain", "--config", teacher_dir, "--save-every", 1, "--output-dir", out, *COMMON]
    assert run(*args, "--steps", 3).exit_code == 0
    (out / "checkpoint.npz").unlink()              # model/ and metrics.jsonl, no checkpoint
    before = (out / "metrics.jsonl").read_text()
    result = run(*args, "--steps", 1)
    assert result.exit_code == 1 and "is not empty (it holds metrics.jsonl, model" in result.output
    assert "--overwrite-output-dir" in result.output
    assert (out / "metrics.jsonl").read_text() == before
    result = run(*args, "--steps", 1, "--resume", "--overwrite-output-dir")
    assert result.exit_code == 2 and "exclude each other" in result.output
    result = run(*args, "--steps", 1, "--overwrite-output-dir")
    assert result.exit_code == 0, result.output
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


def test_a_stale_vocabulary_is_not_reused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "vocab.txt").write_text("[PAD]\n[UNK]\n")      # left by a run that failed early
    result = run("pretrain", "--steps", 1, "--output-dir", out, "--corpus", CORPUS,
                 "--max-seq-length", 32)
    assert result.exit_code == 1 and "is not empty (it holds vocab.txt)" in result.output


def test_distill_never_writes_into_the_teacher(teacher_dir, tmp_path):
    before = sorted(p.name for p in teacher_dir.iterdir())
    for out in (teacher_dir, teacher_dir / "student"):
        result = run("distill", teacher_dir, "--output-dir", out, *COMMON)
        assert result.exit_code == 1 and "is inside the input directory" in result.output
    assert sorted(p.name for p in teacher_dir.iterdir()) == before


def test_evaluate_mlm_never_writes_into_the_model_directory(teacher_dir, tmp_path):
    import shutil
    model = tmp_path / "model"
    shutil.copytree(teacher_dir, model)
    (model / "vocab.txt").unlink()
    (model / "tokenizer_config.json").unlink()
    result = run("evaluate-mlm", model, "--eval-corpus", CORPUS, "--max-seq-length", 32)
    assert result.exit_code == 1
    assert f"{model} has no vocab.txt; pass the vocabulary the model was trained with " \
           "(--vocab FILE)" in result.output
    assert not (model / "vocab.txt").exists()


@pytest.mark.slow
def test_two_runs_started_at_once_on_one_directory(tmp_path):
    """Two real processes: one trains, the other is refused with one line; the log is whole."""
    import subprocess
    import sys
    cfg = write_config(tmp_path / "c.json", "mobilebert-small", intra_bottleneck_size=16,
                       intermediate_size=32)
    cmd = [sys.executable, "-c", "from cli.main import tinybert; tinybert()", "pretrain",
           "--config", str(cfg), "--steps", "40", "--save-every", "5", "--output-dir",
           str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"), *map(str, COMMON)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2]) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    refused = next(err for code, err in results if code == 1)
    assert "Traceback" not in refused
    assert "is in use by another run" in refused or "is not empty" in refused
    steps = [json.loads(line)["step"]
             for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 41))
