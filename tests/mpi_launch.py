"""Launching test programs under `mpiexec` (the `mpi` tests): where mpiexec is, the skip reason
when MPI is missing, and one `run` that never hangs a test run.

The tests need mpi4py and an `mpiexec` (`pip install -e ".[test,mpi]"` installs both: the
MPICH wheel puts mpiexec next to the venv's python). They run in CI with `pytest -m mpi`.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from paths import ROOT

# Never spin: a command that hangs fails the test after this many seconds instead.
DEFAULT_TIMEOUT = 300


def mpiexec() -> str | None:
    """The mpiexec of this Python's environment, else the first on PATH, else None."""
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.is_file() else shutil.which("mpiexec")


def skip_reason() -> str | None:
    """Why the MPI tests cannot run here, or None."""
    if importlib.util.find_spec("mpi4py") is None:
        return 'mpi4py is not installed (pip install -e ".[test,mpi]")'
    if mpiexec() is None:
        return 'no mpiexec next to Python or on PATH (pip install -e ".[test,mpi]")'
    return None


def needs_mpi(test):
    """Mark `test` as an `mpi` test, skipped with the reason when MPI is missing."""
    reason = skip_reason()
    return pytest.mark.mpi(pytest.mark.skipif(reason is not None, reason=reason or "")(test))


def run(processes: int, argv: list[str], timeout: float = DEFAULT_TIMEOUT
        ) -> tuple[subprocess.CompletedProcess, float]:
    """Run `argv` (a Python program's arguments after the interpreter) in `processes` MPI
    processes, or as one plain process when `processes` is 1; returns (result, seconds)."""
    cmd = [sys.executable, *argv]
    if processes > 1:
        cmd = [mpiexec(), "-n", str(processes), *cmd]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Open MPI refuses to start as root without these (CI runs as root); MPICH ignores them.
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=timeout)
    return result, time.perf_counter() - start


def tinybert_argv(*args: object) -> list[str]:
    """The arguments that run the `tinybert` command line with `args`."""
    return ["-c", "from cli.main import tinybert; tinybert(prog_name='tinybert')",
            *(str(a) for a in args)]
