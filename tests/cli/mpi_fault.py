"""`tinybert` with a failure injected into one MPI process, for tests/cli/test_mpi_training.py:

    mpiexec -n N python mpi_fault.py MODE RANK STEP tinybert-arguments...

At its STEP-th optimizer step (1-based) process RANK fails: MODE `raise` raises RuntimeError,
`nan` makes its loss NaN (the training step's divergence error), `kill` sends itself SIGKILL.
"""
from __future__ import annotations

import math
import os
import signal
import sys

import cli  # noqa: F401  first, as in `tinybert`: its per-process thread counts decide rounding
from tinybert_core.training import loop


def inject(mode: str, rank: int, step: int) -> None:
    if int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0"))) != rank:
        return
    real = loop.optimizer_step
    calls = [0]

    def faulty(model, optimizer, micro_batches, loss_fn, *args, **kwargs):
        calls[0] += 1
        if calls[0] == step:
            if mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if mode == "raise":
                raise RuntimeError(f"injected failure at step {step}")
            if mode == "nan":
                inner = loss_fn

                def loss_fn(batch):
                    losses = inner(batch)
                    return {**losses, "loss": losses["loss"] * math.nan}
        return real(model, optimizer, micro_batches, loss_fn, *args, **kwargs)

    loop.optimizer_step = faulty


if __name__ == "__main__":
    inject(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
    from cli.main import tinybert
    tinybert(sys.argv[4:], prog_name="tinybert")
