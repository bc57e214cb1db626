"""What the backend parity tests share: one tolerance table, the dtypes, input makers and
`assert_close`, the comparison every backend's result goes through."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

# One tolerance table: |got - want| <= atol + rtol * |want|, element-wise, nan where nan.
# float32: a few ulp of the output, plus what float32 summation order changes in row and
# column sums (the overrides sum in float64; NumPy sums float32 pairwise or row by row).
TOLERANCE = {np.dtype(np.float32): (1e-5, 1e-6), np.dtype(np.float64): (1e-12, 1e-12)}
# Where the float32 reference is itself the less accurate side, these outputs are compared
# norm-wise instead: atol = rtol * max|reference|. Each checked against a float64 computation.
NORMWISE_FLOAT32 = {
    # Column sums over B*T rows: NumPy adds the float32 rows one after another (error ~ rows *
    # eps of the largest sum), the overrides add in float64. At (2,128,512) the reference is
    # ~5e-7 of max|sum| from float64, Numba 5e-8; near-zero sums then differ by far more than
    # rtol of themselves.
    "layer_norm_bwd": (1, 2), "no_norm_bwd": (1, 2),
    # The tanh form's 0.5 * (1 + tanh(u)) cancels for x < -3 (absolute error ~1e-6 * |gy| in the
    # reference); Numba computes the same derivative as a sigmoid, without the cancellation.
    "gelu_bwd": (0,),
}
DTYPES = [np.float32, np.float64]
NEG_INF = -np.inf


def transposed(a: np.ndarray) -> np.ndarray:
    """A copy of `a` (same values and shape) laid out as a non-contiguous, transposed view."""
    return np.swapaxes(a, -1, -2).copy().swapaxes(-1, -2)


def normal(rng, dt, *shape, scale=1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(dt)


def padding_mask(dt, batch: int, t: int, pad: int) -> np.ndarray:
    mask = np.zeros((batch, 1, 1, t), dt)
    mask[..., t - pad:] = NEG_INF
    return mask


def assert_close(got: Any, want: Any, what: str, normwise: bool = False) -> None:
    """got (host copy of a backend result) equals the reference `want` within TOLERANCE,
    element-wise, or with `normwise` relative to the largest reference value."""
    if want is None or isinstance(want, float):
        if want is None:
            assert got is None, f"{what}: expected None, got {type(got).__name__}"
            return
        rtol, atol = TOLERANCE[np.dtype(np.float32)]     # a trust ratio: a float32 norm ratio
        assert abs(got - want) <= atol + rtol * abs(want), f"{what}: {got!r} != {want!r}"
        return
    assert isinstance(got, np.ndarray), f"{what}: expected an array, got {type(got).__name__}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, reference {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, reference {want.dtype}"
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    rtol, atol = TOLERANCE[want.dtype]
    if normwise and want.size:
        atol = max(atol, rtol * float(np.nanmax(np.abs(want))))
    nan = np.isnan(want)
    bad = (np.isnan(got) != nan)
    same = (got == want) | nan                          # equal infinities, and the nans
    err = np.abs(got.astype(np.float64) - want)
    bad |= ~same & ~(err <= atol + rtol * np.abs(want.astype(np.float64)))
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, np.nan_to_num(err, nan=np.inf), -1)),
                             want.shape)
        pytest.fail(f"{what}: {int(bad.sum())} of {want.size} values out of tolerance "
                    f"(rtol={rtol}, atol={atol}); worst at {tuple(int(k) for k in i)}: "
                    f"got {got[i]!r}, reference {want[i]!r}")
