"""The int8 GEMM's data contract: packed weights and the checked arguments of `int8_matmul`.

Every backend computes the same exact integer product (`backends.reference.int8_matmul` is the
readable definition; `backends/numba_int8.py` the fast CPU kernels), so what the arguments mean
is written once, here:

- Activations `a`: uint8 with a zero point (per tensor, or one per row), as FBGEMM and PyTorch's
  dynamic quantization use them. uint8 because the x86 dot-product instructions multiply
  unsigned by signed bytes (`vpdpbusd`, `vpmaddubsw`), and because a ReLU output or any
  asymmetric range then keeps all 256 levels. Symmetric int8 activations are the special case
  zero_point = 128 (add 128 to the int8 codes).
- Weights: int8, stored (out_features, in_features) like `Linear.weight`, symmetric (zero point
  0) per output channel; the usual range is [-127, 127], and -128 is handled exactly too.
- Result: acc = (a - a_zero_point) @ W^T, exact in int32. Expanding the product gives FBGEMM's
  offset form acc = a @ W^T - a_zero_point * col_sums, where col_sums[n] = sum_k W[n, k] (the
  column sums of B = W^T) are computed once at packing time. |acc| <= 255 * 128 * K, so K is
  limited to 2**16 for int32 to hold every result.
- Activation codes come from `quantize_u8` (reference.py; the range arithmetic is
  `quantize_params` below): per tensor or per row, levels 0..qmax, qmax = 127 for the 7-bit
  activations of the AVX2 path (`numba_int8.activation_max()` says which a CPU wants).
- Optional dequantization, fused so that the int32 product never makes a second pass through
  memory: y = float32(acc) * (a_scale * w_scale[n]) + bias[n], in float32, operation by
  operation in that order (no fused multiply-add), so every backend gives the same bits.

Packed layout (FBGEMM-style pre-packing, done once at quantization time): W, zero-padded to a
multiple of 16 output channels and 4 input features, is stored as (N/16, K/4, 16, 4) int8. One
64-byte row [g, :, :] holds 4 consecutive k of 16 output channels, which is exactly one operand
of AVX-512 VNNI `vpdpbusd` (16 int32 lanes, each the dot product of 4 u8 x 4 s8), and two
operands of the 256-bit instructions (AVX-VNNI, AVX2 `vpmaddubsw`). Panels of 16 channels
follow each other, so a register tile of several panels reads a few sequential streams.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

PANEL = 16          # output channels per packed panel (one zmm of int32 lanes)
KGROUP = 4          # consecutive input features per channel in a panel (one vpdpbusd dword)
MAX_K = 1 << 16     # 255 * 128 * K stays below 2**31


class PackedInt8Weights(NamedTuple):
    """Int8 weights in the kernels' layout, with the sums the zero-point correction needs."""
    data: np.ndarray            # (N/16, K/4, 16, 4) int8, zero-padded
    col_sums: np.ndarray        # (N/16 * 16,) int32: sum over k of W[n, k], 0 in the padding
    out_features: int           # N
    in_features: int            # K

    @property
    def shape(self) -> tuple[int, int]:
        """(out_features, in_features), the shape of the unpacked weight."""
        return self.out_features, self.in_features

    def unpack(self) -> np.ndarray:
        """The (out_features, in_features) int8 weight that was packed (a new array)."""
        nb, kg = self.data.shape[:2]
        full = self.data.transpose(0, 2, 1, 3).reshape(nb * PANEL, kg * KGROUP)
        return np.ascontiguousarray(full[:self.out_features, :self.in_features])


def pack_int8_weights(w: np.ndarray) -> PackedInt8Weights:
    """Pack an (out_features, in_features) int8 weight for `int8_matmul` (once, at quantization).

    The packed copy replaces the weight: `PackedInt8Weights.unpack()` gives it back exactly.
    """
    if not isinstance(w, np.ndarray):
        raise TypeError(f"pack_int8_weights: w must be a NumPy int8 array, got {type(w).__name__}")
    if w.dtype != np.int8 or w.ndim != 2:
        raise ValueError(f"pack_int8_weights: w must be a 2-D int8 (out_features, in_features) "
                         f"array, got {w.dtype} of shape {w.shape}")
    n, k = w.shape
    if k > MAX_K:
        raise ValueError(f"pack_int8_weights: in_features {k} > {MAX_K}: the int32 "
                         f"accumulator could overflow")
    nb, kg = -(-n // PANEL), -(-k // KGROUP)
    padded = np.zeros((nb * PANEL, kg * KGROUP), np.int8)
    padded[:n, :k] = w
    data = np.ascontiguousarray(padded.reshape(nb, PANEL, kg, KGROUP).transpose(0, 2, 1, 3))
    col_sums = padded.sum(axis=1, dtype=np.int64).astype(np.int32)
    return PackedInt8Weights(data, col_sums, n, k)


class MatmulArgs(NamedTuple):
    """`int8_matmul`'s arguments, checked and brought to the shapes the kernels use."""
    a: np.ndarray                   # (M, K) uint8, C-contiguous
    w: PackedInt8Weights
    zero_point: np.ndarray          # (M,) int32
    a_scale: np.ndarray | None      # (M,) float32, or None for the int32 result
    w_scale: np.ndarray | None      # (N,) float32
    bias: np.ndarray | None         # (N,) float32
    out_shape: tuple[int, ...]      # a.shape[:-1] + (N,)


def _per_row(value: Any, name: str, rows: int, dtype: Any, xp: Any) -> Any:
    """A scalar or a (rows,) vector as a (rows,) array of `dtype`."""
    arr = xp.asarray(value)
    if arr.ndim == 0:
        return xp.full(rows, arr, dtype=dtype)
    if arr.shape != (rows,):
        raise ValueError(f"int8_matmul: {name} must be a scalar or have one value per row of a "
                         f"({rows},), got shape {tuple(arr.shape)}")
    return xp.ascontiguousarray(arr.astype(dtype, copy=False))


def _zero_points(value: Any, rows: int, xp: Any) -> Any:
    """a_zero_point as (rows,) int32, checked to lie in [0, 255] (the scalar checked before it
    is broadcast: this runs on every call)."""
    if isinstance(value, (int, np.integer)):
        if not 0 <= value <= 255:
            raise ValueError(f"int8_matmul: a_zero_point must lie in [0, 255], got {value}")
        return xp.full(rows, value, dtype=np.int32)
    zp = xp.asarray(value)
    if not (zp.dtype == np.int32 and zp.shape == (rows,) and zp.flags.c_contiguous):
        # (the quantizers' own output needs no conversion: this runs on every call)
        if zp.dtype.kind not in "iu":
            raise ValueError(f"int8_matmul: a_zero_point must be an integer, got {zp.dtype}")
        zp = _per_row(zp, "a_zero_point", rows, np.int64, xp)
    if rows and not (int(zp.min()) >= 0 and int(zp.max()) <= 255):
        raise ValueError(f"int8_matmul: a_zero_point must lie in [0, 255], got values in "
                         f"[{int(zp.min())}, {int(zp.max())}]")
    return zp.astype(np.int32, copy=False)


def check_matmul_args(a: Any, w: Any, a_zero_point: Any = 0, a_scale: Any = None,
                      w_scale: Any = None, bias: Any = None, xp: Any = np) -> MatmulArgs:
    """Validate `int8_matmul`'s arguments (see the module docstring) and normalise them."""
    if not isinstance(w, PackedInt8Weights):
        raise TypeError(f"int8_matmul: w must be PackedInt8Weights (pack the int8 weight once "
                        f"with backends.int8.pack_int8_weights), got {type(w).__name__}")
    if getattr(a, "dtype", None) != np.uint8:
        raise ValueError(f"int8_matmul: a must be uint8 quantized activations, got "
                         f"{getattr(a, 'dtype', type(a).__name__)}")
    if a.ndim < 1 or a.shape[-1] != w.in_features:
        raise ValueError(f"int8_matmul: inner dimensions differ: a is {tuple(a.shape)}, w is "
                         f"{w.shape} (out_features, in_features)")
    m = math.prod(a.shape[:-1])
    a2 = xp.ascontiguousarray(a.reshape(m, w.in_features))
    zp = _zero_points(a_zero_point, m, xp)
    if (a_scale is None) != (w_scale is None):
        raise ValueError("int8_matmul: give both a_scale and w_scale (a float32 result) or "
                         "neither (the int32 result)")
    if a_scale is None:
        if bias is not None:
            raise ValueError("int8_matmul: bias needs a_scale and w_scale (it is added to the "
                             "dequantized float32 result)")
        return MatmulArgs(a2, w, zp, None, None, None, (*a.shape[:-1], w.out_features))
    n = w.out_features
    a_s = _per_row(a_scale, "a_scale", m, np.float32, xp)
    w_s = xp.asarray(w_scale, dtype=np.float32)
    w_s = xp.full(n, w_s, dtype=np.float32) if w_s.ndim == 0 else xp.ascontiguousarray(w_s)
    if w_s.shape != (n,):
        raise ValueError(f"int8_matmul: w_scale must be a scalar or have out_features={n} "
                         f"values, got shape {tuple(w_s.shape)}")
    b = None
    if bias is not None:
        b = xp.ascontiguousarray(xp.asarray(bias, dtype=np.float32))
        if b.shape != (n,):
            raise ValueError(f"int8_matmul: bias must have out_features={n} values, got shape "
                             f"{tuple(b.shape)}")
    return MatmulArgs(a2, w, zp, a_s, w_s, b, (*a.shape[:-1], n))


def check_qmax(qmax: int) -> None:
    """The largest activation code must lie in [1, 255] (uint8)."""
    if not 1 <= qmax <= 255:
        raise ValueError(f"quantize_u8: qmax must lie in [1, 255], got {qmax}")


def quantize_params(lo: Any, hi: Any, qmax: int, xp: Any = np) -> tuple[Any, Any]:
    """(scale, zero_point) mapping [min(lo, 0), max(hi, 0)] onto the codes 0..qmax, as float32
    and int32 arrays of lo's shape: the range always holds 0, so 0.0 is exactly the code
    zero_point (zero padding and ReLU zeros stay exact), as in PyTorch's dynamic quantization.

    Written once for every backend: the codes are then rint(x / scale) + zero_point, clipped to
    [0, qmax], all in float32, which every backend computes to the same bits."""
    check_qmax(qmax)
    if np.ndim(lo) == 0 and xp is np:
        # One range (per tensor): the same operations on NumPy scalars, ~15x cheaper than on
        # 0-d arrays, which matters at MobileBERT's batch-1 sizes (tested equal to the rows').
        lo64, hi64 = min(float(lo), 0.0), max(float(hi), 0.0)
        if not math.isfinite(hi64 - lo64):
            raise ValueError("quantize_u8: x holds inf or nan; no finite range to quantize")
        scale = np.float32((hi64 - lo64) / qmax)
        scale = scale if scale > 0 else np.float32(1.0)
        return scale, np.int32(min(max(np.rint(np.float32(-lo64) / scale), 0), qmax))
    lo = xp.minimum(xp.asarray(lo, dtype=np.float64), 0.0)
    hi = xp.maximum(xp.asarray(hi, dtype=np.float64), 0.0)
    if not bool(xp.isfinite(hi - lo).all()):
        raise ValueError("quantize_u8: x holds inf or nan; no finite range to quantize")
    scale = ((hi - lo) / qmax).astype(np.float32)
    scale = xp.where(scale > 0, scale, np.float32(1.0))        # an all-zero x: any scale works
    zero_point = xp.clip(xp.rint((-lo).astype(np.float32) / scale), 0, qmax).astype(np.int32)
    return scale, zero_point


__all__ = ["PANEL", "KGROUP", "MAX_K", "PackedInt8Weights", "pack_int8_weights", "MatmulArgs",
           "check_matmul_args", "check_qmax", "quantize_params"]
