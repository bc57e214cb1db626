"""The Numba activation quantizers, with the same bits as their references in
`backends/reference.py`: `quantize_u8`, dynamic uint8 quantization of float32 activations per
tensor or per row, and `quantize_u8_static`, the codes in a fixed (calibrated) range.

Per row, one kernel does it all while the row is in L1 (`_quantize_rows_dynamic`): the row's
integer min/max, its scale and zero point (`_params`, `backends.int8.quantize_params` operation
for operation), its codes. Per tensor, the row ranges (`_row_ranges`), then the tensor's scale
and zero point (`quantize_params` itself), then the codes (`_quantize_rows_static`, as static
mode). In NumPy this quantization cost as much as the whole VNNI GEMM at (128, 512), which is
why it is a kernel; the codes pass is bound by the float32 division x / scale that the
reference defines (a reciprocal multiply would round differently).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from backends import reference
from backends.int8 import check_qmax, quantize_params
from backends.numba_int8 import activation_max, threads_for

_EXPONENT = np.int32(0x7F800000)     # float32 exponent bits: all set for inf and nan
_MAGNITUDE = np.int32(0x7FFFFFFF)
_SIGN, _ZERO = np.int32(31), np.int32(0)
_KEY_MIN, _KEY_MAX = np.int32(-2147483648), np.int32(2147483647)
# A quantization pass over n elements runs on all of Numba's threads from n * _WORK_PER_ELEMENT
# >= numba_int8._PARALLEL_MIN (2^24), i.e. from 2^17 elements: MobileBERT's (1024, 128) and
# (1024, 512) activations at batch 8. Measured, whole MobileBERT forward at batch 8, 2 threads,
# interleaved: parallel from 2^17 elements 227-232 ms, from 2^20 (the GEMM's rule) 239-257 ms.
_WORK_PER_ELEMENT = 128


@njit(inline="always")
def _row_range(bits, i):
    """(min key, max key, inf/nan count) of row i of float32 x given as its int32 bits.

    Integer arithmetic because LLVM vectorises no float min/max reduction that Numba writes,
    not even with fast-math (measured: 3x slower). key = b ^ ((b >> 31) & 0x7FFFFFFF) orders
    the int32 keys as the floats are ordered (negative floats' magnitude bits flipped), and is
    its own inverse (`_key_bits`), which gives the floats' bits back. Every constant is int32:
    Numba computes int32 operators in int64 (8 lanes per zmm); the np.int32 casts let LLVM
    narrow them back to 16 lanes."""
    low, high, n_bad = _KEY_MAX, _KEY_MIN, _ZERO
    for k in range(bits.shape[1]):
        b = bits[i, k]
        key = np.int32(b ^ ((b >> _SIGN) & _MAGNITUDE))
        low = np.int32(min(low, key))
        high = np.int32(max(high, key))
        n_bad = np.int32(n_bad + ((b & _EXPONENT) == _EXPONENT))
    return low, high, n_bad


@njit(inline="always")
def _key_bits(key):
    return np.int32(key ^ ((key >> _SIGN) & _MAGNITUDE))


@njit(parallel=True, cache=True, error_model="numpy")
def _row_ranges(bits, lo, hi, bad):
    """Per-row min and max of float32 x given as its int32 bits (written as float32 bits into
    the int32 lo and hi), and per-row counts of inf/nan."""
    for i in prange(bits.shape[0]):
        low, high, bad[i] = _row_range(bits, i)
        lo[i], hi[i] = _key_bits(low), _key_bits(high)


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose bits are the low 32 bits of the integer `bits` (a bitcast, as `view`
    does for arrays; Numba widens the int32 key arithmetic to int64, hence the truncation)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        low32 = args[0] if bits.bitwidth == 32 else builder.trunc(args[0], ir.IntType(32))
        return builder.bitcast(low32, ir.FloatType())
    return types.float32(bits), codegen


@njit(inline="always")
def _params(lo, hi, qmax):
    """`backends.int8.quantize_params` for one range, operation for operation (float64 range,
    float32 scale, float32 zero-point arithmetic), so the bits are the reference's."""
    lo64, hi64 = min(np.float64(lo), 0.0), max(np.float64(hi), 0.0)
    scale = np.float32((hi64 - lo64) / qmax)
    if not scale > 0:
        scale = np.float32(1.0)
    z = np.rint(np.float32(-lo64) / scale)
    return scale, np.int32(min(max(z, np.float32(0)), np.float32(qmax)))


@njit(parallel=True, cache=True, error_model="numpy")
def _quantize_rows_dynamic(x, bits, qmax, codes, scale, zero_point, bad):
    """Per-row dynamic quantization in one pass over memory: each row's range (the integer
    min/max of `_row_ranges`, read from `bits`, x's int32 view), its scale and zero point
    (`_params`), then its codes, while the row is still in L1. A row holding inf or nan is
    only counted in `bad` (the wrapper raises)."""
    top = np.float32(qmax)
    for i in prange(x.shape[0]):
        low, high, n_bad = _row_range(bits, i)
        bad[i] = n_bad
        if n_bad:
            continue
        lo, hi = _float32_from_bits(_key_bits(low)), _float32_from_bits(_key_bits(high))
        s, zp = _params(lo, hi, qmax)
        scale[i], zero_point[i] = s, zp
        z = np.float32(zp)
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
    """Numba override of `quantize_u8`. Per row: one fused pass (`_quantize_rows_dynamic`).
    Per tensor: the row ranges, then the tensor's scale and zero point (`quantize_params`, the
    reference's own code), then the codes. qmax=None is `numba_int8.activation_max()`: 127
    where the fastest int8 GEMM is AVX2's."""
    qmax = activation_max() if qmax is None else qmax
    if not (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim and x.size):
        return reference.quantize_u8(x, qmax, per_row)
    check_qmax(qmax)
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    m = rows.shape[0]
    codes = np.empty(rows.shape, np.uint8)
    bad = np.empty(m, np.int64)
    with threads_for(rows.size * _WORK_PER_ELEMENT):
        if per_row:
            scale, zero_point = np.empty(m, np.float32), np.empty(m, np.int32)
            _quantize_rows_dynamic(rows, rows.view(np.int32), qmax, codes, scale, zero_point,
                                   bad)
        else:
            lo, hi = np.empty(m, np.int32), np.empty(m, np.int32)
            _row_ranges(rows.view(np.int32), lo, hi, bad)
        if bad.any():
            raise ValueError("quantize_u8: x holds inf or nan; no finite range to quantize")
        if not per_row:
            scale, zero_point = quantize_params(lo.view(np.float32).min(),
                                                hi.view(np.float32).max(), qmax)
            _quantize_rows_static(rows, scale, zero_point, qmax, codes, bad)
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
    with threads_for(rows.size * _WORK_PER_ELEMENT):
        _quantize_rows_static(rows, scale, zero_point, qmax, codes, bad)
    if bad.any():
        raise ValueError("quantize_u8_static: x holds inf or nan")
    return codes.reshape(x.shape), scale, zero_point


__all__ = ["quantize_u8", "quantize_u8_static"]
