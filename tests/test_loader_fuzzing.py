"""Every loader under seeded fuzzing (tests/loader_fuzz.py): thousands of malformed safetensors,
.npz, training checkpoints, config.json, vocab.txt / tokenizer_config.json and model directories
(single and sharded), each answered by the project's own error naming the file.

The fuzzer runs in a child process with its address space capped 1 GiB above its size at
start (a file that claims gigabytes must fail before allocating them, not reserve them) and an
alarm per case (a FIFO or a billion layers must not hang it).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from paths import TESTS

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the fuzzer caps memory with RLIMIT_AS and /proc (Linux)")
BAD = ("no_name", "other", "hang", "memory", "accepted_bad", "escaped", "changed")
LOADERS = {"safetensors", "safetensors-header", "npz", "checkpoint", "config", "tokenizer",
           "model", "sharded"}


def fuzz(cases: int, seed: int) -> dict:
    proc = subprocess.run([sys.executable, str(TESTS / "loader_fuzz.py"), "--cases", str(cases),
                           "--seed", str(seed), "--memory-limit-mb", "1024"],
                          capture_output=True, text=True, timeout=60 + cases)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def check(report: dict) -> None:
    figures = {k: report[k] for k in ("tried", "clean", "accepted", *BAD)}
    assert all(report[k] == 0 for k in BAD), (figures, report["examples"])
    assert set(report["by_loader"]) == LOADERS
    assert report["clean"] + report["accepted"] == report["tried"]
    assert report["clean"] >= 0.75 * report["tried"], figures   # the mutations do break files


def test_thousands_of_malformed_files_fail_cleanly():
    check(fuzz(2500, seed=0))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_many_more_malformed_files_fail_cleanly(seed):
    check(fuzz(12000, seed=seed))
