"""The reference backend: NumPy arrays and the xp-generic kernels of `backends/reference.py`.

Nothing is overridden here on purpose: this is the backend every other one is checked against.
"""
from __future__ import annotations

import numpy as np

from backends.base import Backend

numpy_backend = Backend("numpy", np)
