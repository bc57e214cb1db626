"""Test-suite setup: the hypothesis profiles.

Profiles: "ci" (50 examples per property, no deadline, loaded by default) and "dev" (10 examples,
for a quick local loop). Pick one with the environment variable HYPOTHESIS_PROFILE, e.g.
`HYPOTHESIS_PROFILE=dev python -m pytest tests/autograd -q`.

Tests that need ../shared/data (real vocabularies and corpora) skip without it; the summary
then says how many and why (`pytest_terminal_summary`).

Import paths come from pyproject.toml (`pythonpath = [".", "tests"]`): the repository root, so
`pytest` works without `python -m`, and `tests/`, so test modules import the shared helpers
(`paths`) without an `__init__.py`. The hypothesis strategies live in the public kit,
`autograd.testing.strategies`.

int8 layers run their int8 kernels in every test (`int8_dispatch("always")`, and the
environment variable for CLI invocations and child processes), so that tests of int8 results
test the int8 arithmetic whatever the batch size; the tests of the automatic fallback
(tests/tinybert_core/quantization/test_dispatch.py) ask for "auto" themselves.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tinybert_core.quantization import dispatch

# too_slow only judges how long examples take to generate, which a loaded 2-core CI box varies;
# the run-time budget is checked with --durations instead.
_SLOW_OK = [HealthCheck.too_slow]
settings.register_profile("ci", max_examples=50, deadline=None, suppress_health_check=_SLOW_OK)
settings.register_profile("dev", max_examples=10, deadline=None, suppress_health_check=_SLOW_OK)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_terminal_summary(terminalreporter) -> None:
    """Say why tests skipped for want of ../shared/data, which `-q` would not show."""
    skipped = terminalreporter.stats.get("skipped", [])
    shared = [r for r in skipped if "shared" in str(getattr(r, "longrepr", "")).lower()]
    if shared:
        terminalreporter.write_line(
            f"{len(shared)} tests skipped because ../shared/data is absent: they need the real "
            f"vocabularies and corpora kept next to the repository, not in it (a fresh clone "
            f"has none). CI runs them with the data in place; see README.md.")


@pytest.fixture(autouse=True)
def _int8_kernels_always(monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "always")
    with dispatch.int8_dispatch("always"):
        yield
