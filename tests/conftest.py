"""Test-suite setup: the hypothesis profiles.

Profiles: "ci" (50 examples per property, no deadline, loaded by default) and "dev" (10 examples,
for a quick local loop). Pick one with the environment variable HYPOTHESIS_PROFILE, e.g.
`HYPOTHESIS_PROFILE=dev python -m pytest tests/autograd -q`.

Import paths come from pyproject.toml (`pythonpath = [".", "tests"]`): the repository root, so
`pytest` works without `python -m`, and `tests/`, so test modules import the shared helpers
(`paths`) without an `__init__.py`. The hypothesis strategies live in the public kit,
`autograd.testing.strategies`.
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# too_slow only judges how long examples take to generate, which a loaded 2-core CI box varies;
# the run-time budget is checked with --durations instead.
_SLOW_OK = [HealthCheck.too_slow]
settings.register_profile("ci", max_examples=50, deadline=None, suppress_health_check=_SLOW_OK)
settings.register_profile("dev", max_examples=10, deadline=None, suppress_health_check=_SLOW_OK)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
