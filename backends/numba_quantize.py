"""The Numba activation quantizers, with the same bits as their references in
`backends/reference.py`: `quantize_u8`, dynamic uint8 quantization of float32 activations per
tensor or per row, and `quantize_u8_static`, the codes in a fixed (calibrated) range.

Two passes over the data: integer min/max per row (`_row_ranges`), then the codes
(`_quantize_rows`); scale and zero point come from `backends.int8.quantize_params`, the
reference's own code. In NumPy this quantization cost as much as the whole VNNI GEMM at
(128, 512), which is why it is a kernel.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from backends import reference
from backends.int8 import quantize_params
from backends.numba_int8 import activation_max, threads_for

_EXPONENT = np.int32(0x7F800000)     # float32 exponent bits: all set for inf and nan
_MAGNITUDE = np.int32(0x7FFFFFFF)


@njit(parallel=True, cache=True, error_model="numpy")
def _row_ranges(bits, lo, hi, bad):
    """Per-row min and max of float32 x given as its int32 bits (written as float32 bits into
    the int32 lo and hi), and per-row counts of inf/nan.

    Integer arithmetic because LLVM vectorises no float min/max reduction that Numba writes,
    not even with fast-math (measured: 3x slower). key = b ^ ((b >> 31) & 0x7FFFFFFF) orders
    the int32 keys as the floats are ordered (negative floats' magnitude bits flipped), and is
    its own inverse, which gives the floats' bits back."""
    for i in prange(bits.shape[0]):
        low, high, n_bad = np.int32(2147483647), np.int32(-2147483648), 0
        for k in range(bits.shape[1]):
            b = bits[i, k]
            key = b ^ ((b >> 31) & _MAGNITUDE)
            low = min(low, key)
            high = max(high, key)
            n_bad += (b & _EXPONENT) == _EXPONENT
        lo[i] = low ^ ((low >> 31) & _MAGNITUDE)
        hi[i] = high ^ ((high >> 31) & _MAGNITUDE)
        bad[i] = n_bad


@njit(parallel=True, cache=True, error_model="numpy")
def _quantize_rows(x, scale, zero_point, qmax, codes):
    """codes = clip(rint(x / scale) + zero_point, 0, qmax), row by row, in float32."""
    top = np.float32(qmax)
    for i in prange(x.shape[0]):
        s, z = scale[i], np.float32(zero_point[i])
        for k in range(x.shape[1]):
            c = np.rint(x[i, k] / s) + z
            c = c if c > 0 else np.float32(0)
            codes[i, k] = np.uint8(c if c < top else top)


@njit(parallel=True, cache=True, error_model="numpy")
def _quantize_rows_static(x, scale, zero_point, qmax, codes, bad):
    """`_quantize_rows` with one scale and zero point, counting inf/nan per row (static mode
    never measures x, so this pass is the only one that can see them)."""
    top, s, z = np.float32(qmax), scale, np.float32(zero_point)
    for i in prange(x.shape[0]):
        n_bad = 0
        for k in range(x.shape[1]):
            v = x[i, k]
            n_bad += not np.isfinite(v)
            c = np.rint(v / s) + z
            c = c if c > 0 else np.float32(0)
            codes[i, k] = np.uint8(c if c < top else top)
        bad[i] = n_bad


def quantize_u8(x, qmax: int | None = None, per_row: bool = False):
    """Numba override of `quantize_u8`: one pass for the row ranges, `quantize_params` for
    scale and zero point (the reference's own code), one fused pass for the codes. qmax=None
    is `numba_int8.activation_max()`: 127 where the fastest int8 GEMM is AVX2's."""
    qmax = activation_max() if qmax is None else qmax
    if not (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim and x.size):
        return reference.quantize_u8(x, qmax, per_row)
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    m = rows.shape[0]
    lo, hi, bad = np.empty(m, np.int32), np.empty(m, np.int32), np.empty(m, np.int64)
    codes = np.empty(rows.shape, np.uint8)
    with threads_for(rows.size * 16):
        _row_ranges(rows.view(np.int32), lo, hi, bad)
        lo, hi = lo.view(np.float32), hi.view(np.float32)
        if bad.any():
            lo = np.full(m, np.nan, np.float32)     # quantize_params reports it
        if per_row:
            scale, zero_point = quantize_params(lo, hi, qmax)
            codes_scale, codes_zp = scale, zero_point
        else:
            scale, zero_point = quantize_params(lo.min(), hi.max(), qmax)
            codes_scale, codes_zp = np.full(m, scale), np.full(m, zero_point)
        _quantize_rows(rows, codes_scale, codes_zp, qmax, codes)
    lead = x.shape[:-1]
    return (codes.reshape(x.shape), scale.reshape(lead) if per_row else scale,
            zero_point.reshape(lead) if per_row else zero_point)


def quantize_u8_static(x, lo: float, hi: float, qmax: int | None = None):
    """Numba override of `quantize_u8_static`: one fused pass (codes and the inf/nan count)."""
    qmax = activation_max() if qmax is None else qmax
    if not (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim and x.size):
        return reference.quantize_u8_static(x, lo, hi, qmax)
    scale, zero_point = quantize_params(lo, hi, qmax)
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    codes = np.empty(rows.shape, np.uint8)
    bad = np.empty(rows.shape[0], np.int64)
    with threads_for(rows.size * 16):
        _quantize_rows_static(rows, scale, zero_point, qmax, codes, bad)
    if bad.any():
        raise ValueError("quantize_u8_static: x holds inf or nan")
    return codes.reshape(x.shape), scale, zero_point


__all__ = ["quantize_u8", "quantize_u8_static"]
