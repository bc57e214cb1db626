"""Where the tests find things, in one place, so that moving a test file changes no path.

`SHARED_DATA` is the read-only shelf next to the repository (`../shared/data`); tests that need
it skip when it is absent, as it is for users.
"""
from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
FIXTURES = TESTS / "fixtures"
MODEL_FIXTURES = FIXTURES / "models"
SHARED_DATA = ROOT.parent / "shared" / "data"
