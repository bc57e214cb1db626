"""cli/parallel.py: reading the launcher's variables, the per-process thread defaults, which
commands run data-parallel, and the mpi line of `tinybert backends` (in one process, and under
mpiexec, where only rank 0 prints)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli.main import tinybert
from cli.parallel import THREAD_VARIABLES, data_parallel_for, launched_world_size, \
    set_thread_defaults
from mpi_launch import needs_mpi, run, tinybert_argv


def test_launched_world_size_reads_mpich_and_open_mpi_variables():
    assert launched_world_size({}) == 1
    assert launched_world_size({"PMI_SIZE": "4"}) == 4
    assert launched_world_size({"OMPI_COMM_WORLD_SIZE": "3"}) == 3
    assert launched_world_size({"PMI_SIZE": "", "OMPI_COMM_WORLD_SIZE": "2"}) == 2
    assert launched_world_size({"PMI_SIZE": "x"}) == 1


def test_thread_defaults_split_the_cores_between_local_processes():
    env: dict[str, str] = {}
    set_thread_defaults(env, cpus=8)
    assert env == {}                                     # not launched: nothing set
    env = {"PMI_SIZE": "4", "MPI_LOCALNRANKS": "2", "OPENBLAS_NUM_THREADS": "3"}
    set_thread_defaults(env, cpus=8)
    assert env["OPENBLAS_NUM_THREADS"] == "3"            # the user's choice stays
    assert all(env[v] == "4" for v in THREAD_VARIABLES if v != "OPENBLAS_NUM_THREADS")
    env = {"OMPI_COMM_WORLD_SIZE": "4"}                  # no local count: assume all local
    set_thread_defaults(env, cpus=2)
    assert all(env[v] == "1" for v in THREAD_VARIABLES)


def test_only_training_commands_run_data_parallel():
    assert data_parallel_for("pretrain", {}) is None     # one process: no MPI at all
    with pytest.raises(ValueError, match="`tinybert fill-mask` does not run data-parallel"):
        data_parallel_for("fill-mask", {"PMI_SIZE": "2"})


def test_backends_reports_mpi():
    result = CliRunner().invoke(tinybert, ["backends"])
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.output.splitlines() if x.split()[:1] == ["mpi"]]
    assert ("available    mpi4py" in line and "1 process" in line) or \
        ("unavailable" in line and "tinybert[mpi]" in line), line


def test_a_launched_fill_mask_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    result = CliRunner().invoke(tinybert, ["fill-mask", str(tmp_path), "a [MASK]"])
    assert result.exit_code == 1
    assert "does not run data-parallel; run it without mpiexec" in result.output


@needs_mpi
def test_backends_under_mpiexec_reports_the_job_size_once():
    result, _ = run(3, tinybert_argv("backends", "--json"), timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)         # one document: ranks 1 and 2 print nothing
    assert report["mpi"]["available"] and report["mpi"]["world_size"] == 3
    assert report["mpi"]["rank"] == 0
