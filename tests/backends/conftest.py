"""Backend fixtures: `backend` runs a test once per backend that can run here.

numpy and numba always take part (numba is a runtime dependency); cupy takes part on a machine
with CuPy and a CUDA GPU, and is marked `gpu`, so the default `-m 'not gpu'` run deselects it and
a `-m gpu` run without a GPU skips it with the reason. `cpu_backends` is the list of the CPU ones,
for tests that pair a backend with a different one (device mixing, transfers).
"""
from __future__ import annotations

import pytest

import backends

CPU_BACKEND_NAMES = ("numpy", "numba")


def _load(name: str) -> backends.Backend:
    try:
        return backends.get_backend(name)
    except backends.BackendUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(params=[pytest.param("numpy", id="numpy"), pytest.param("numba", id="numba"),
                        pytest.param("cupy", id="cupy", marks=pytest.mark.gpu)])
def backend(request: pytest.FixtureRequest) -> backends.Backend:
    """Each available backend in turn (cupy only under `-m gpu`, skipped without a GPU)."""
    return _load(request.param)


@pytest.fixture
def cpu_backends() -> list[backends.Backend]:
    """The CPU backends, numpy (the reference) first."""
    return [_load(name) for name in CPU_BACKEND_NAMES]
