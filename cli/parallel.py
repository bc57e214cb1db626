"""`mpiexec -n N tinybert pretrain|distill ...`: how a tinybert process learns that an MPI
launcher started it, and what the command line then does differently.

- `launched_world_size`: the process count the launcher exported (MPICH and Intel MPI's hydra,
  Slurm's PMI: PMI_SIZE; Open MPI: OMPI_COMM_WORLD_SIZE). Without one (or with 1), tinybert runs
  as a single process and never imports mpi4py.
- `set_thread_defaults`: N processes on one machine each get cores / (processes on this
  machine) BLAS, OpenMP and Numba threads, unless the user set them. `cli/__init__.py` calls it
  before anything imports NumPy, whose OpenBLAS reads the setting once, when it loads.
- `data_parallel_for`: the `DataParallel` (autograd/distributed.py) of a launched process.
- `fail`: under MPI, one failing process prints its error and ends the whole job (MPI_Abort),
  so the others do not wait forever in their next all-reduce.
Only rank 0 prints progress and results; the training loop makes it the only one that writes.
"""
from __future__ import annotations

import os
import traceback
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, NoReturn

import click

SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
LOCAL_SIZE_VARIABLES = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")
# The commands that train data-parallel, and those that only report; any other command started
# by mpiexec with N > 1 would just run N times, so it is refused.
PARALLEL_COMMANDS = ("pretrain", "distill", "finetune")
REPORT_COMMANDS = ("backends",)


def _int(environ: Mapping[str, str], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return None


def launched_world_size(environ: Mapping[str, str]) -> int:
    """The number of processes an MPI launcher started this one with (1 if none did)."""
    return _int(environ, SIZE_VARIABLES) or 1


def set_thread_defaults(environ: MutableMapping[str, str], cpus: int | None = None) -> None:
    """Under a launcher, split this machine's cores between its processes (`cpus` defaults to
    the cores this process may run on); a variable the user set is left alone."""
    size = launched_world_size(environ)
    if size <= 1:
        return
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
            (os.cpu_count() or 1)
    local = _int(environ, LOCAL_SIZE_VARIABLES) or size
    threads = str(max(1, cpus // max(1, local)))
    for name in THREAD_VARIABLES:
        environ.setdefault(name, threads)


def data_parallel_for(command: str | None, environ: Mapping[str, str],
                      bucket_mb: float = 25.0) -> Any:
    """The DataParallel of a process an MPI launcher started with N > 1, else None.

    Raises ValueError for a command that does not train in parallel, and MPIUnavailable (with
    what to install) when mpi4py is missing."""
    if launched_world_size(environ) <= 1:
        return None
    if command not in PARALLEL_COMMANDS + REPORT_COMMANDS:
        raise ValueError(f"`tinybert {command}` does not run data-parallel; run it without "
                         f"mpiexec (data-parallel commands: {', '.join(PARALLEL_COMMANDS)})")
    from autograd.distributed import DataParallel
    return DataParallel(bucket_mb=bucket_mb)


def current_data_parallel() -> Any:
    """The DataParallel of this process when mpiexec started it (cli/main.py), else None."""
    ctx = click.get_current_context(silent=True)
    obj = None if ctx is None else ctx.find_root().obj
    return obj.get("data_parallel") if isinstance(obj, dict) else None


def is_speaker() -> bool:
    """Whether this process prints: always without MPI, only rank 0 under it."""
    dp = current_data_parallel()
    return dp is None or dp.is_main


class _Quiet:
    """The progress reporter of a rank that does not speak."""
    done = 0

    def update(self, n: int = 1, item: Any = None, total: int | None = None) -> None:
        pass


@contextmanager
def rank0_progress(length: int | None, label: str, **kw: Any) -> Iterator[Any]:
    """`cli.progress.progress` on the process that speaks; a reporter that says nothing on
    the other ranks."""
    if is_speaker():
        from cli.progress import progress
        with progress(length, label, **kw) as bar:
            yield bar
    else:
        yield _Quiet()


@contextmanager
def ending_job_on_error(dp: Any) -> Iterator[None]:
    """Under MPI, an error on this rank ends every rank (`fail`); wrap it around
    `cli.errors.user_errors`, whose one-line ClickException is then the rank's message."""
    if dp is None:
        yield
        return
    try:
        yield
    except (click.exceptions.Exit, click.exceptions.Abort, KeyboardInterrupt):
        raise
    except click.ClickException as e:
        fail(dp, e.format_message(), user_error=True)
    except Exception as e:
        fail(dp, e, user_error=False)


def fail(dp: Any, error: BaseException | str, user_error: bool) -> NoReturn:
    """End the whole MPI job after printing `error` as this rank's: one line for a user error,
    the traceback for anything else."""
    where = f"rank {dp.rank} of {dp.size}"
    if user_error:
        message = f"Error ({where}): {error}"
    else:
        message = f"Error ({where}): unexpected failure\n{traceback.format_exc()}"
    dp.abort(message)
