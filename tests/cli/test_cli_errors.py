"""Every traceback issue 14 found in the CLI is now one line (`Error: ...` or click's usage
error), and the training commands say what a misleading default does, where a Ctrl-C left the
run, and how to extend a finished one. Runs on a hand-made corpus: no ../shared needed."""
from __future__ import annotations

import errno
import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import tinybert
from paths import MODEL_FIXTURES
from tinybert_core import MobileBertConfig

WORDS = ("the whale ship sea captain white harpoon deck sail storm night wind boat crew old "
         "man said went into over under".split())
TINY = dict(hidden_size=32, embedding_size=16, num_hidden_layers=2, num_attention_heads=2,
            intra_bottleneck_size=16, intermediate_size=32, max_position_embeddings=32)


def run(*args, **kw):
    return CliRunner().invoke(tinybert, [str(a) for a in args], **kw)


def one_line_error(result, exit_code=1):
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error:"), result.stderr
    return last


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    """A corpus of 40 short documents, its vocabulary and a tiny config."""
    d = tmp_path_factory.mktemp("text")
    rng = np.random.default_rng(0)
    docs = ["\n".join(" ".join(rng.choice(WORDS, 8)) + " ." for _ in range(4)) for _ in range(40)]
    (d / "corpus.txt").write_text("\n\n".join(docs) + "\n")
    chars = sorted({c for w in WORDS for c in w})
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *WORDS, *chars,
              *[f"##{c}" for c in chars if c not in WORDS]]
    (d / "vocab.txt").write_text("\n".join(dict.fromkeys(tokens)) + "\n")
    MobileBertConfig.from_pretrained("mobilebert-small", **TINY).to_json(d / "config.json")
    return d


def train_args(text, out, *more):
    return ["pretrain", "--config", text / "config.json", "--corpus", text / "corpus.txt",
            "--eval-corpus", text / "corpus.txt", "--vocab", text / "vocab.txt",
            "--batch-size", 2, "--max-seq-length", 16, "--max-predictions", 3,
            "--eval-batches", 1, "--cache-dir", text / "cache", "--output-dir", out, *more]


@pytest.mark.parametrize("args, message", [
    (["pretrain", "--eval-every", "0"], "Invalid value for '--eval-every': 0 is not in the "
                                       "range x>=1"),
    (["pretrain", "--save-every", "0"], "Invalid value for '--save-every': 0 is not in the "
                                       "range x>=1"),
    (["gradcheck", "--seed", "-1"], "Invalid value for '--seed': -1 is not in the range x>=0"),
    (["pretrain", "--lr", "0"], "Invalid value for '--lr': 0.0 is not in the range x>0"),
    (["pretrain", "--warmup", "1.5"], "Invalid value for '--warmup'"),
    (["pretrain", "--config", "mobilebert-huge"], "'mobilebert-huge' is neither a preset"),
    (["distill", "nowhere"], "Directory 'nowhere' does not exist"),
])
def test_bad_values_are_usage_errors(args, message):
    result = run(*args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="uses /proc to see the fd's file")
def test_a_full_disk_is_one_line_and_keeps_the_data(text, tmp_path, monkeypatch):
    from autograd import files
    from autograd.serialization import load_npz
    real_fsync, saved = os.fsync, []

    def fills_up(fd):                     # the disk is full from the second checkpoint on
        name = os.readlink(f"/proc/self/fd/{fd}")
        if name.endswith(".tmp") and ".checkpoint.npz." in name:
            saved.append(name)
            if len(saved) > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fills_up)
    out = tmp_path / "run"
    result = run(*train_args(text, out, "--steps", 3, "--save-every", 1))
    line = one_line_error(result)
    assert line == f"Error: [Errno 28] cannot write {out}/checkpoint.npz: No space left on device"
    assert json.loads(load_npz(out / "checkpoint.npz")["meta"].tobytes())["step"] == 1
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]
    monkeypatch.undo()
    result = run(*train_args(text, out, "--steps", 3, "--save-every", 1, "--resume"))
    assert result.exit_code == 0, result.output         # the kept checkpoint resumes
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


def test_ctrl_c_names_the_last_checkpoint_and_the_resume_line(text, tmp_path, monkeypatch):
    from tinybert_core.training import loop
    real_step = loop.train_step

    def interrupted(student, teacher, run_, *rest):
        if run_.step == 3:
            raise KeyboardInterrupt
        return real_step(student, teacher, run_, *rest)

    monkeypatch.setattr(loop, "train_step", interrupted)
    out = tmp_path / "run"
    result = run(*train_args(text, out, "--steps", 6, "--save-every", 2, "--lr", "0.002"))
    assert result.exit_code == 130 and "Aborted" not in result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-2] == (f"interrupted after step 3 of 6; the last good checkpoint is "
                         f"{out}/checkpoint.npz (step 2)")
    assert lines[-1].startswith("continue with: tinybert pretrain --config ")
    assert f"--output-dir {out} --lr 0.002 --save-every 2 --resume" in lines[-1]
    monkeypatch.undo()
    resumed = lines[-1].removeprefix("continue with: tinybert ").split()
    result = run(*resumed)
    assert result.exit_code == 0, result.output
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]          # the log was cut back to the checkpoint's step


def test_extending_a_run_and_a_refused_resume(text, tmp_path):
    out = tmp_path / "run"
    assert run(*train_args(text, out, "--steps", 3)).exit_code == 0
    result = run(*train_args(text, out, "--steps", 5, "--resume"))
    assert result.exit_code == 0 and "trained 5/5 steps" in result.stdout
    result = run(*train_args(text, out, "--steps", 4, "--resume"))
    assert one_line_error(result).startswith("Error: cannot resume: --steps differs from the "
                                             "checkpoint's run: ")
    assert "is at step 5, past the 4 steps this run asks for" in result.stderr
    result = run(*train_args(text, out, "--steps", 6, "--resume", "--max-seq-length", 24))
    line = one_line_error(result)
    assert line.startswith("Error: cannot resume: --max-seq-length differs from the "
                           "checkpoint's run: ")
    assert line.endswith("max_seq_length differs: the saved data stream used 16, this one 24")


def test_misleading_defaults_are_said(text, tmp_path):
    args = train_args(text, tmp_path / "run", "--steps", 1)
    at = args.index("--eval-corpus")
    del args[at:at + 2]                                   # --corpus without --eval-corpus
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert "note: --corpus without --eval-corpus: no held-out evaluation" in result.stderr
    model = tmp_path / "run" / "model"
    result = run("evaluate-mlm", model, "--max-seq-length", 16, "--eval-batches", 1,
                 "--cache-dir", text / "cache")
    assert "note: no --eval-corpus given: evaluating on the embedded corpus" in result.stderr


def test_model_directory_errors_speak_cli(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(MODEL_FIXTURES / "mobilebert-kq-shared", model)
    (model / "vocab.txt").unlink()
    line = one_line_error(run("fill-mask", model, "a [MASK] ."))
    assert line == (f"Error: {model} has no vocab.txt: a model directory needs the vocabulary "
                    f"the model was trained with (copy that vocab.txt into it)")
    assert "save_pretrained" not in line
    shutil.copy(MODEL_FIXTURES / "mobilebert-kq-shared" / "vocab.txt", model / "vocab.txt")
    (model / "config.json").write_bytes(b'{"vocab_size": \xff}')
    line = one_line_error(run("fill-mask", model, "a [MASK] ."))
    assert f"config file {model}/config.json is not UTF-8 text" in line


def test_output_paths_in_missing_directories_are_named(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the whale and the sea\n" * 20)
    target = tmp_path / "missing" / "vocab.txt"
    line = one_line_error(run("vocab", "--corpus", corpus, "--output", target,
                              "--vocab-size", 40))
    assert line == f"Error: cannot write {target}: directory {target.parent} does not exist"


def test_running_out_of_memory_is_one_line(tmp_path, monkeypatch):
    from tinybert_core import recipes

    def huge(*args, **kw):
        raise MemoryError("Unable to allocate 24.0 GiB for an array")

    monkeypatch.setattr(recipes, "evaluate", huge)
    line = one_line_error(run("evaluate-mlm", MODEL_FIXTURES / "mobilebert-kq-shared"))
    assert line.startswith("Error: out of memory: Unable to allocate 24.0 GiB for an array; try ")
