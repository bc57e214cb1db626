"""`mpiexec -n N tinybert pretrain|distill|finetune`: N processes train the model one process
trains at the same global batch; a failing process ends the whole job quickly, with its message,
and leaves a checkpoint that `--resume` (with any N) finishes from.

Equivalence tolerances (float32; the processes sum their gradients in another order than one
process's matmuls do, so results agree to rounding, not bit for bit): per-step losses and
gradient norms within a relative 2e-6 or an absolute 1e-6 (measured: about 1.3e-7 relative;
the KD and AT terms, KLs of order 1e-2 and 1e-4 between near-equal distributions, round at
about 4e-8 absolute), final weights within an absolute 2e-6 (measured: at most 2.4e-7;
weights are of order 1). Normalising the MLM and KD
means per process instead of by the global token count misses by 1e-4 and 5e-3 respectively
on these runs (the data gives the processes different masked-token counts on purpose).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autograd.serialization import load_safetensors
from mpi_launch import needs_mpi, run, tinybert_argv
from paths import BERT_VOCAB, SHARED_DATA, TESTS
from tinybert_core import BertTokenizer, MobileBertConfig, MobileBertForPreTraining
from tinybert_core.training.checkpoint import read_checkpoint_meta
from tinybert_core.training.run_dir import LOCK_NAME

CORPUS = SHARED_DATA / "corpus" / "sotu-valid.txt"
EPISTEMIC = SHARED_DATA / "glue" / "epistemic"
pytestmark = pytest.mark.skipif(not CORPUS.exists(), reason="needs ../shared/data")

RTOL_LOSS, ATOL_LOSS, ATOL_WEIGHTS = 2e-6, 1e-6, 2e-6
TINY = dict(hidden_size=32, embedding_size=16, num_hidden_layers=2, num_attention_heads=2,
            max_position_embeddings=64, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0)
STEPS = 6


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A tiny student config (no dropout: N processes would draw other masks), a random tiny
    IB-BERT teacher and a token cache shared by every run of this module."""
    tmp = tmp_path_factory.mktemp("mpi")
    MobileBertConfig.from_pretrained("mobilebert-small", **TINY, intra_bottleneck_size=16,
                                     intermediate_size=32).to_json(tmp / "student.json")
    teacher_cfg = MobileBertConfig.from_pretrained("ib-bert-small", **TINY,
                                                   intra_bottleneck_size=64,
                                                   intermediate_size=64, vocab_size=30522)
    MobileBertForPreTraining(teacher_cfg, seed=3).save_pretrained(
        tmp / "teacher", tokenizer=BertTokenizer(BERT_VOCAB))
    return tmp


def data_args(work: Path) -> list[object]:
    # seq-len 64 with 20 predictions: the processes' masked-token counts differ. The learning
    # rate is pinned: the weight tolerance is sized for it (the default's 2e-2 magnifies the
    # float32 reduction-order differences 20-fold in the weights, not in the losses).
    return ["--corpus", CORPUS, "--batch-size", 8, "--max-seq-length", 64, "--max-predictions", 20,
            "--lr", 1e-3, "--cache-dir", work / "cache", "--json"]


def pretrain_args(work: Path, out: Path, *extra: object) -> list[object]:
    return ["pretrain", "--config", work / "student.json", "--vocab", BERT_VOCAB, "--steps",
            STEPS, "--eval-corpus", CORPUS, "--eval-batches", 1, "--eval-every", 3,
            "--output-dir", out, *data_args(work), *extra]


def distill_args(work: Path, out: Path, strategy: str) -> list[object]:
    return ["distill", work / "teacher", "--config", work / "student.json",
            "--strategy", strategy, "--kt-steps-per-layer", 1, "--pd-steps", 2, "--output-dir",
            out, *data_args(work)]


def tinybert(processes: int, args: list[object]):
    result, seconds = run(processes, tinybert_argv(*args))
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def weights(run_dir: Path) -> dict[str, np.ndarray]:
    return load_safetensors(run_dir / "model" / "model.safetensors")


def assert_same_training(reference: Path, other: Path, keys: tuple[str, ...]) -> None:
    ref, got = metrics(reference), metrics(other)
    assert [r["step"] for r in got] == [r["step"] for r in ref]
    for key in keys:
        a = np.array([r[key] for r in ref if key in r])
        b = np.array([r[key] for r in got if key in r])
        assert a.size and a.size == b.size, key
        np.testing.assert_allclose(b, a, rtol=RTOL_LOSS, atol=ATOL_LOSS, err_msg=f"{other}: {key}")
    w_ref, w = weights(reference), weights(other)
    assert w.keys() == w_ref.keys()
    for name in w_ref:
        np.testing.assert_allclose(w[name], w_ref[name], rtol=0, atol=ATOL_WEIGHTS,
                                   err_msg=f"{other}: {name}")


@pytest.fixture(scope="module")
def pretrained(work) -> dict[int, Path]:
    """The same pre-training run in 1, 2 and 4 processes."""
    runs = {}
    for n in (1, 2, 4):
        runs[n] = work / f"pretrain-{n}"
        result = tinybert(n, pretrain_args(work, runs[n]))
        summaries = result.stdout.count('"total_steps"')
        assert summaries == 1, f"{n} processes printed {summaries} summaries"
    return runs


@needs_mpi
@pytest.mark.parametrize("processes", [2, 4])
def test_pretraining_in_n_processes_equals_one_process(pretrained, processes):
    assert_same_training(pretrained[1], pretrained[processes],
                         ("loss", "mlm", "nsp", "grad_norm", "eval_mlm_loss"))
    run_dir = pretrained[processes]
    # One writer: no stray temp files or per-rank files (only rank 0 held the lock).
    assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_NAME, "checkpoint.npz",
                                                         "metrics.jsonl", "model"]
    assert all(r["allreduce_s"] > 0 for r in metrics(run_dir))
    meta, _ = read_checkpoint_meta(run_dir / "checkpoint.npz")
    assert meta["extra"]["data_parallel"]["world_size"] == processes


@needs_mpi
@pytest.mark.parametrize("strategy", ["auxiliary", "progressive"])
def test_distillation_in_n_processes_equals_one_process(work, strategy):
    keys = {"auxiliary": ("loss", "mlm", "kd", "nsp", "fmt", "at", "grad_norm"),
            "progressive": ("loss", "fmt", "at", "mlm", "kd", "grad_norm")}[strategy]
    runs = {n: work / f"distill-{strategy}-{n}" for n in (1, 2, 4)}
    for n, out in runs.items():
        tinybert(n, distill_args(work, out, strategy))
    for n in (2, 4):
        assert_same_training(runs[1], runs[n], keys)


@needs_mpi
@pytest.mark.parametrize("mode, resume_with", [("raise", 2), ("nan", 1), ("kill", 4)])
def test_a_failing_process_ends_the_job_and_the_run_resumes(work, pretrained, mode,
                                                            resume_with):
    out = work / f"fault-{mode}"
    args = pretrain_args(work, out, "--save-every", 1)
    argv = [str(TESTS / "cli" / "mpi_fault.py"), mode, "1", "4",
            *tinybert_argv(*args)[2:]]
    result, seconds = run(2, argv, timeout=120)
    text = result.stdout + result.stderr
    assert result.returncode != 0, text
    assert seconds < 60, f"the job took {seconds:.0f} s to end after rank 1 failed"
    expected = {"raise": "Error (rank 1 of 2): unexpected failure",
                "nan": "Error (rank 1 of 2): training diverged at step 4 (stage pretrain): "
                       "non-finite loss terms: loss",
                "kill": "signal 9"}[mode]
    assert expected in text, text
    if mode == "raise":
        assert "RuntimeError: injected failure at step 4" in text
    # Rank 0 may have been stopped while writing step 3's checkpoint: step 2's or 3's is there,
    # whole, and the log holds no step after it once resumed.
    meta, _ = read_checkpoint_meta(out / "checkpoint.npz")
    assert meta["step"] in (2, 3)
    tinybert(resume_with, [*args, "--resume"])
    assert [r["step"] for r in metrics(out)] == list(range(1, STEPS + 1))
    if resume_with == 2:   # the same processes, the same sums: bit for bit
        w, w_ref = weights(out), weights(pretrained[2])
        assert all(np.array_equal(w[k], w_ref[k]) for k in w_ref)
    else:
        assert_same_training(pretrained[1], out, ("loss", "mlm", "nsp", "grad_norm"))


# Fine-tuning: RTE-layout sentence pairs from the shared epistemic set. 22 training examples in
# batches of 8 make epochs of 8, 8 and 6: with 4 processes the last batch splits 2, 2, 1, 1, so
# the loss must count examples over the global batch (a per-process mean would weigh the
# 1-example shards double).
FINETUNE_EXAMPLES, FINETUNE_STEPS = 22, 6


@pytest.fixture(scope="module")
def task_files(work) -> Path:
    d = work / "task"
    d.mkdir()
    for name, rows in (("train.tsv", FINETUNE_EXAMPLES), ("dev.tsv", 16)):
        lines = (EPISTEMIC / name).read_text().splitlines()
        (d / name).write_text("\n".join(lines[:rows + 1]) + "\n")
    return d


def finetune_args(pretrained: dict[int, Path], task: Path, out: Path, *extra: object
                  ) -> list[object]:
    # The 1-process pre-training run's student (no dropout) gets a new classification head.
    return ["finetune", pretrained[1] / "model", "--task", "rte", "--train-file",
            task / "train.tsv", "--dev-file", task / "dev.tsv", "--output-dir", out,
            "--epochs", 2, "--batch-size", 8, "--lr", 1e-3, "--max-seq-length", 48,
            "--eval-batch-size", 8, "--json", *extra]


@pytest.fixture(scope="module")
def finetuned(work, pretrained, task_files) -> dict[int, Path]:
    runs = {}
    for n in (1, 2, 4):
        runs[n] = work / f"finetune-{n}"
        result = tinybert(n, finetune_args(pretrained, task_files, runs[n]))
        assert result.stdout.count('"steps_per_epoch"') == 1, result.stdout   # rank 0 only
    return runs


@needs_mpi
@pytest.mark.parametrize("processes", [2, 4])
def test_finetuning_in_n_processes_equals_one_process(finetuned, processes):
    ref = metrics(finetuned[1])
    assert [r["step"] for r in ref] == list(range(1, FINETUNE_STEPS + 1))
    evals = sorted(k for k in ref[-1] if k.startswith("eval_"))
    assert "eval_acc" in evals
    assert_same_training(finetuned[1], finetuned[processes], ("loss", "grad_norm", *evals))
    run_dir = finetuned[processes]
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        p.name for p in finetuned[1].iterdir())          # best/, eval_results.json, ...: once
    results = json.loads((run_dir / "eval_results.json").read_text())
    ref_results = json.loads((finetuned[1] / "eval_results.json").read_text())
    assert results["best"]["step"] == ref_results["best"]["step"]
    assert results["steps"] == FINETUNE_STEPS and results["batch_size"] == 8


@needs_mpi
def test_a_failing_finetuning_process_ends_the_job_and_resumes_with_other_n(
        work, pretrained, task_files, finetuned):
    out = work / "finetune-fault"
    args = finetune_args(pretrained, task_files, out, "--save-every", 1)
    argv = [str(TESTS / "cli" / "mpi_fault.py"), "raise", "1", "4",
            *tinybert_argv(*args)[2:]]
    result, seconds = run(2, argv, timeout=120)
    text = result.stdout + result.stderr
    assert result.returncode != 0 and seconds < 60, text
    assert "Error (rank 1 of 2): unexpected failure" in text, text
    meta, _ = read_checkpoint_meta(out / "checkpoint.npz")
    assert meta["step"] in (2, 3)
    tinybert(4, [*args, "--resume"])
    assert [r["step"] for r in metrics(out)] == list(range(1, FINETUNE_STEPS + 1))
    assert_same_training(finetuned[1], out, ("loss", "grad_norm"))


@needs_mpi
def test_a_batch_smaller_than_the_job_is_refused(work, pretrained, task_files):
    # 22 examples in batches of 4: the last batch of each epoch holds 2, fewer than 4 processes.
    args = finetune_args(pretrained, task_files, work / "finetune-small", "--batch-size", 4)
    result, _ = run(4, tinybert_argv(*args), timeout=120)
    assert result.returncode != 0
    assert "leaves a batch of 2 example(s) per epoch, fewer than the 4 processes" in \
        result.stdout + result.stderr
