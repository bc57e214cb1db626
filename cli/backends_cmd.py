"""`tinybert backends`: the array backends tinybert knows, and whether each one runs here.

For an unavailable backend it prints the reason (missing package, no GPU); for Numba it adds the
version, the threading layer and the number of threads, which decide how fast its kernels are.
A last line says whether MPI data parallelism is available (mpi4py and its MPI library) and how
many processes this one belongs to (more than 1 under `mpiexec -n N`, where only rank 0 prints).
"""
from __future__ import annotations

import json
from typing import Any

import click

import backends
from autograd.distributed import mpi_status
from cli.options import json_option


def _numba_details() -> dict[str, Any]:
    """Numba's version, threading layer and thread count. The layer is only chosen at the first
    parallel launch, so this runs one (tiny, and cached after the first time) kernel."""
    import numba
    import numpy as np

    backends.get_backend("numba").kernel("relu_fwd")(np.zeros(1, np.float32))
    return {"numba_version": numba.__version__, "threading_layer": numba.threading_layer(),
            "threads": numba.get_num_threads()}


def backend_report() -> dict[str, Any]:
    """{"default": name, "backends": [{name, available, reason, default, ...details}],
    "mpi": {available, reason, mpi4py_version, library, world_size, rank}}."""
    default = backends.default_backend_name()
    rows = []
    for name, reason in backends.availability().items():
        row: dict[str, Any] = {"name": name, "available": reason is None, "reason": reason,
                               "default": name == default}
        if name == "numba" and reason is None:
            row.update(_numba_details())
        rows.append(row)
    return {"default": default, "backends": rows, "mpi": mpi_status()}


@click.command("backends", epilog="Example: tinybert --backend numba backends --json")
@json_option("the report")
def backends_command(as_json: bool) -> None:
    """List the array backends and whether each is available here.

    The default (marked *) is the one new tensors use: --backend, else TINYBERT_BACKEND, else
    numpy. Unavailable backends show why; Numba shows its threading layer and thread count.
    The mpi line says whether data-parallel training can run here and in how many processes.
    """
    report = backend_report()
    if report["mpi"].get("rank", 0) != 0:
        return                                    # under mpiexec, rank 0 speaks for the job
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    for row in report["backends"]:
        mark = "*" if row["default"] else " "
        if not row["available"]:
            click.echo(f"{mark} {row['name']:<6} unavailable  {row['reason']}")
            continue
        detail = ""
        if "numba_version" in row:
            detail = (f"numba {row['numba_version']}, threading layer {row['threading_layer']}, "
                      f"{row['threads']} threads")
        click.echo(f"{mark} {row['name']:<6} available    {detail}".rstrip())
    mpi = report["mpi"]
    if not mpi["available"]:
        click.echo(f"  {'mpi':<6} unavailable  {mpi['reason']}")
        return
    size = mpi["world_size"]
    where = f"{size} processes (this is rank 0)" if size > 1 else \
        "1 process (start with mpiexec -n N for data parallelism)"
    click.echo(f"  {'mpi':<6} available    mpi4py {mpi['mpi4py_version']}, {mpi['library']}, "
               f"{where}")


__all__ = ["backend_report", "backends_command"]
