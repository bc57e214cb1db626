"""The `family` fixture of the int8 tests (the models themselves: tests/int8_models.py)."""
from __future__ import annotations

import pytest
from int8_models import CONFIGS


@pytest.fixture(params=sorted(CONFIGS))
def family(request) -> str:
    return request.param
