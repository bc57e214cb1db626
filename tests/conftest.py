"""Test-suite setup: import paths and the hypothesis profiles.

Profiles: "ci" (50 examples per property, no deadline, loaded by default) and "dev" (10 examples,
for a quick local loop). Pick one with the environment variable HYPOTHESIS_PROFILE, e.g.
`HYPOTHESIS_PROFILE=dev python -m pytest tests/autograd -q`.

`tests/` itself goes on sys.path so that test modules can `from strategies import ...` (the shared
hypothesis strategies) without an `__init__.py`; the repository root goes there too, so `pytest`
works without `python -m`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

_TESTS = Path(__file__).resolve().parent
for _path in (_TESTS, _TESTS.parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

# too_slow only judges how long examples take to generate, which a loaded 2-core CI box varies;
# the run-time budget is checked with --durations instead.
_SLOW_OK = [HealthCheck.too_slow]
settings.register_profile("ci", max_examples=50, deadline=None, suppress_health_check=_SLOW_OK)
settings.register_profile("dev", max_examples=10, deadline=None, suppress_health_check=_SLOW_OK)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
