"""The Numba backend's scalar math (backends/numba_math.py) over its whole range: the
vectorisable exp within 2 ulp of NumPy's, the branch-free erf equal to the reference erf."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from parity_helpers import DTYPES


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_numba_exp_is_within_2_ulp_of_numpy(dtype: Any) -> None:
    nm = pytest.importorskip("backends.numba_math")
    from numba import njit

    exp = nm.exp

    @njit
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = exp(x[i])

    lo, hi = (-110, 95) if dtype == np.float32 else (-750, 715)
    x = np.concatenate([np.linspace(lo, hi, 200_001), [0.0, -0.0, np.inf, -np.inf, np.nan]])
    x = x.astype(dtype)
    with np.errstate(over="ignore"):
        got, want = np.empty_like(x), np.exp(x.astype(np.float64)).astype(dtype)
    apply(x, got)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want) & (want != 0)
    np.testing.assert_array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
    tiny = np.finfo(dtype).tiny                          # below it, subnormal spacing applies
    ulp = np.spacing(np.maximum(np.abs(want[finite]), tiny))
    assert (np.abs(got[finite] - want[finite]) <= 2 * ulp).all()


def test_numba_erf_matches_the_reference_erf() -> None:
    nm = pytest.importorskip("backends.numba_math")
    from numba import njit

    from backends.special import erf

    erf_nb = nm.erf

    @njit
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = erf_nb(x[i])

    edges = np.array([2.0 ** -28, 0.84375, 1.25, 1 / 0.35, 6.0])
    x = np.concatenate([np.random.default_rng(3).uniform(-8, 8, 100_000), edges, -edges,
                        np.nextafter(edges, 0), [0.0, -0.0, 1e-310, np.inf, -np.inf, np.nan]])
    got = np.empty_like(x)
    apply(x, got)
    want = erf(x)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    np.testing.assert_allclose(got, want, rtol=4e-16, atol=2e-16)


