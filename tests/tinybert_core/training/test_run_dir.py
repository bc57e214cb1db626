"""The run-directory guard: one live run per directory, no reuse without a flag, no writes into
inputs, stale locks and temp files handled."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tinybert_core.training.run_dir import (LOCK_NAME, RunDirectoryBusy, RunDirectoryError,
                                            describe_previous, open_run_directory)

HOLD = textwrap.dedent("""
    import sys, time
    from tinybert_core.training.run_dir import open_run_directory
    with open_run_directory(sys.argv[1], command="holder"):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def holder(path, seconds=60):
    """A separate process holding `path`'s lock; returns once the lock is taken."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)],
                            stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                                os.path.dirname(os.path.abspath(__file__))))))
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_is_refused_while_the_first_holds_the_directory(tmp_path):
    run = tmp_path / "run"
    proc = holder(run)
    try:
        with pytest.raises(RunDirectoryBusy, match=rf"{run} is in use by another run \(pid "
                                                   rf"{proc.pid} on .*'holder'\)"):
            with open_run_directory(run):
                pass
    finally:
        proc.kill()
        proc.wait()


def test_the_lock_is_released_on_exit_and_on_exceptions(tmp_path):
    with open_run_directory(tmp_path / "run") as held:
        with pytest.raises(RunDirectoryBusy):      # a second open file description, same process
            with open_run_directory(tmp_path / "run"):
                pass
    assert held.previous is None
    with pytest.raises(KeyError):
        with open_run_directory(tmp_path / "run"):
            raise KeyError("boom")
    with open_run_directory(tmp_path / "run") as again:
        assert again.previous is None              # both earlier runs exited cleanly
    record = json.loads((tmp_path / "run" / LOCK_NAME).read_text())
    assert record["state"] == "exited" and record["pid"] == os.getpid()


def test_a_killed_run_leaves_a_stale_lock_that_is_detected_and_taken_over(tmp_path):
    run = tmp_path / "run"
    proc = holder(run)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with open_run_directory(run, resume=True) as held:
        assert held.previous["pid"] == proc.pid and held.previous["command"] == "holder"
        assert f"pid {proc.pid}" in describe_previous(held)
        assert "did not exit cleanly" in describe_previous(held)


def test_a_fresh_run_refuses_a_directory_with_files(tmp_path):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 1}\n' * 30)
    with pytest.raises(RunDirectoryError, match=r"is not empty \(it holds metrics.jsonl, model\); "
                                                r"continue that run with --resume, replace it "
                                                r"with --overwrite-output-dir"):
        with open_run_directory(run):
            pass
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 30   # untouched
    with open_run_directory(run, resume=True) as held:
        assert held.removed == []
    assert (run / "metrics.jsonl").exists()


def test_overwrite_deletes_a_previous_run_but_never_a_foreign_directory(tmp_path):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "model" / "config.json").write_text("{}")
    (run / "vocab.txt").write_text("stale\n")
    (run / "metrics.jsonl").write_text("{}\n")
    with open_run_directory(run, overwrite=True) as held:
        assert held.removed == ["metrics.jsonl", "model", "vocab.txt"]
    assert sorted(os.listdir(run)) == [LOCK_NAME]
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    with pytest.raises(RunDirectoryError, match="does not hold a tinybert run"):
        with open_run_directory(home, overwrite=True):
            pass
    assert os.listdir(home) == ["thesis.tex"]      # not even a lock file left behind
    with pytest.raises(RunDirectoryError, match="is not empty"):
        with open_run_directory(home):
            pass
    assert os.listdir(home) == ["thesis.tex"]


def test_never_write_into_an_input(tmp_path):
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    for out in (teacher, teacher / "student"):
        with pytest.raises(RunDirectoryError, match="is inside the input directory"):
            with open_run_directory(out, inputs=[teacher]):
                pass
    assert os.listdir(teacher) == []
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("{}\n")
    (run / "corpus.txt").write_text("text\n")
    with pytest.raises(RunDirectoryError, match="would delete the input"):
        with open_run_directory(run, overwrite=True, inputs=[run / "corpus.txt"]):
            pass
    assert (run / "corpus.txt").exists()


def test_stale_temp_files_are_removed_and_other_files_kept(tmp_path):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "checkpoint.npz").write_bytes(b"ckpt")
    stale = [run / ".checkpoint.npz.0123456789abcdef.tmp",
             run / "model" / ".model.safetensors.fedcba9876543210.tmp"]
    for p in stale:
        p.write_bytes(b"x" * 1000)
    (run / "notes.tmp").write_text("mine")
    with open_run_directory(run, resume=True) as held:
        assert held.removed == [".checkpoint.npz.0123456789abcdef.tmp",
                                "model/.model.safetensors.fedcba9876543210.tmp"]
    assert not any(p.exists() for p in stale)
    assert (run / "notes.tmp").exists() and (run / "checkpoint.npz").exists()


def test_flag_combinations_and_odd_paths(tmp_path):
    with pytest.raises(RunDirectoryError, match="exclude each other"):
        with open_run_directory(tmp_path / "a", resume=True, overwrite=True):
            pass
    with pytest.raises(RunDirectoryError, match="cannot resume: output directory .* does not "
                                                "exist"):
        with open_run_directory(tmp_path / "missing", resume=True):
            pass
    assert not (tmp_path / "missing").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirectoryError, match="exists and is not a directory"):
        with open_run_directory(tmp_path / "file"):
            pass
