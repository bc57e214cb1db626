"""The scalar math the Numba kernels are built from: exp and erf that LLVM can vectorise, and
float64 row reductions.

Used inside `backends/numba_backend.py`'s `@njit` kernels (and only there: none of this is a
kernel of its own). Each choice was measured with `benchmarks/kernels.py` on a 2-core AVX-512
machine:

- exp. NumPy's exp is SIMD; Numba calls scalar libm, about 5x slower per element, which would
  make a fused softmax slower than NumPy's seven passes. `exp` is Cephes' exp (Moshier 1984-
  2000, `expf.c` and `exp.c`): n = round(x / ln 2), a polynomial (float32) or Pade form
  (float64) on the remainder, times 2**n built from exponent bits. It is plain arithmetic and
  selects, so LLVM vectorises it; error <= 1 ulp (float32) and 1.5 ulp (float64) over the whole
  range, subnormals, +-inf and nan included.
- erf. fdlibm's pieces (`backends/special.py`, whose coefficients it shares), evaluated
  branch-free so that a loop over it vectorises.
- `error_model="numpy"`: Python's model puts a ZeroDivisionError branch on every float division,
  which stops LLVM vectorising the loop.
- fast-math is used only by `row_sum` and `row_dot`, with the single named flag "reassoc", so
  that LLVM vectorises their accumulator. They only add values already computed by flag-free
  code (exps, products, normalised rows), so no -inf mask ever flows through a fast-math
  instruction.

Numba's on-disk cache keys a kernel on its own file only: after editing this file, delete the
cached kernels (`backends/__pycache__/numba_backend.*.nb[ci]`) or they keep the old code.
Debug with NUMBA_DISABLE_JIT=1.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from backends import special as fdlibm  # erf's coefficients and branch edges

_REASSOC = {"reassoc"}     # the only fast-math flag used, and only in row_sum / row_dot


# --- vectorisable exp (Cephes) -------------------------------------------------------------------

@intrinsic
def _f32_from_bits(typingctx, bits):
    """The float32 whose IEEE-754 bits are the int32 `bits` (an LLVM bitcast)."""
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@intrinsic
def _f64_from_bits(typingctx, bits):
    """The float64 whose IEEE-754 bits are the int64 `bits` (an LLVM bitcast)."""
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


def exp(x):
    """e**x of a float32 or float64 scalar, in the scalar's precision (see `_exp_impl`)."""
    return np.exp(x)  # only runs with NUMBA_DISABLE_JIT=1


# Below LO the result is 0 (under half the smallest subnormal), above HI it is inf.
_F32_LO, _F32_HI = np.float32(-103.972084), np.float32(88.7228394)
_F64_LO, _F64_HI = -745.1332191019412, 709.782712893384


@overload(exp, jit_options={"cache": True, "error_model": "numpy"})
def _exp_impl(x):
    """Cephes' exp: x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two for an exact n ln2),
    e**r from a degree-7 polynomial (float32) or the Pade form 1 + 2 r P / (Q - r P) (float64),
    then two exact multiplications by powers of two, which keep subnormal results right."""
    if x == types.float32:
        def impl(x):
            xc = x if x > _F32_LO else _F32_LO       # also maps nan inside the range
            xc = xc if xc < _F32_HI else _F32_HI
            z = np.floor(xc * np.float32(1.44269504088896341) + np.float32(0.5))
            r = (xc - z * np.float32(0.693359375)) - z * np.float32(-2.12194440e-4)
            p = ((((np.float32(1.9875691500e-4) * r + np.float32(1.3981999507e-3)) * r
                   + np.float32(8.3334519073e-3)) * r + np.float32(4.1665795894e-2)) * r
                 + np.float32(1.6666665459e-1)) * r + np.float32(5.0000001201e-1)
            y = p * (r * r) + r + np.float32(1.0)
            n = np.int32(z)
            half = n >> np.int32(1)
            y = y * _f32_from_bits((half + np.int32(127)) << np.int32(23))
            y = y * _f32_from_bits((n - half + np.int32(127)) << np.int32(23))
            y = np.float32(0.0) if x < _F32_LO else y
            y = np.float32(np.inf) if x > _F32_HI else y
            return x if x != x else y
        return impl
    if x == types.float64:
        def impl(x):
            xc = x if x > _F64_LO else _F64_LO
            xc = xc if xc < _F64_HI else _F64_HI
            z = np.floor(xc * 1.4426950408889634 + 0.5)
            r = (xc - z * 6.93145751953125e-1) - z * 1.42860682030941723212e-6
            rr = r * r
            p = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr
                     + 9.99999999999999999910e-1)
            q = ((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr
                 + 2.27265548208155028766e-1) * rr + 2.00000000000000000009e0
            y = 1.0 + 2.0 * (p / (q - p))
            n = np.int64(z)
            half = n >> np.int64(1)
            y = y * _f64_from_bits((half + np.int64(1023)) << np.int64(52))
            y = y * _f64_from_bits((n - half + np.int64(1023)) << np.int64(52))
            y = 0.0 if x < _F64_LO else y
            y = np.inf if x > _F64_HI else y
            return x if x != x else y
        return impl
    return None


# --- row helpers: the only fast-math code --------------------------------------------------------

@njit(cache=True, error_model="numpy", fastmath=_REASSOC)
def row_sum(a):
    """sum(a) in float64, accumulated in any order ("reassoc") so LLVM vectorises it."""
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i]
    return s


@njit(cache=True, error_model="numpy", fastmath=_REASSOC)
def row_dot(a, b):
    """sum(a * b) in float64, each product rounded in the inputs' dtype as NumPy's a * b is."""
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


@njit(cache=True, error_model="numpy")
def row_max(a):
    """max(a) of a non-empty row (nan-free rows give NumPy's answer, -inf included). Eight
    running maxima instead of one: LLVM vectorises a single one only under fast-math 'nnan',
    and the serial chain of compare-selects was 9x slower on a vocabulary-wide row."""
    n = a.shape[0]
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = a[0]
    for i in range(0, n - n % 8, 8):
        m0 = a[i] if a[i] > m0 else m0
        m1 = a[i + 1] if a[i + 1] > m1 else m1
        m2 = a[i + 2] if a[i + 2] > m2 else m2
        m3 = a[i + 3] if a[i + 3] > m3 else m3
        m4 = a[i + 4] if a[i + 4] > m4 else m4
        m5 = a[i + 5] if a[i + 5] > m5 else m5
        m6 = a[i + 6] if a[i + 6] > m6 else m6
        m7 = a[i + 7] if a[i + 7] > m7 else m7
    for i in range(n - n % 8, n):
        m0 = a[i] if a[i] > m0 else m0
    for m in (m1, m2, m3, m4, m5, m6, m7):
        m0 = m if m > m0 else m0
    return m0


@njit(cache=True, error_model="numpy", inline="always")
def horner(c, z):
    """sum(c[k] * z**k), nested from the top as `backends.special._horner` does (same bits).
    Inlined where it is used, so that LLVM sees constant coefficients and unrolls the loop."""
    acc = c[len(c) - 1]
    for k in range(len(c) - 2, -1, -1):
        acc = acc * z + c[k]
    return acc


@njit(cache=True, error_model="numpy", inline="always")
def horner_either(a, b, use_a, z):
    """horner(a, z) if use_a else horner(b, z), choosing coefficients rather than branches;
    `b` is padded with zeros at the top to a's length, which leaves its Horner bits unchanged."""
    acc = a[len(a) - 1] if use_a else b[len(a) - 1]
    for k in range(len(a) - 2, -1, -1):
        acc = acc * z + (a[k] if use_a else b[k])
    return acc


_RB_PAD, _SB_PAD = fdlibm.RB + (0.0,), fdlibm.SB + (0.0,)


@njit(cache=True, error_model="numpy", inline="always")
def erf(x):
    """erf of a float64 by fdlibm's method with `backends.special.erf`'s operations (whose
    docstring has the pieces), but branch-free: every piece is computed and the one for |x| is
    selected, so that LLVM vectorises a loop over it. Numba's math.erf is a scalar series, and
    a branchy port ran at 20 ns a value, latency-bound."""
    ax = abs(x)
    z = x * x
    tiny = 0.125 * (8.0 * x + (8.0 * fdlibm.EFX) * x)
    small = x + x * (horner(fdlibm.PP, z) / horner(fdlibm.QQ, z))
    s = ax - 1.0
    mid = math.copysign(fdlibm.ERX + horner(fdlibm.PA, s) / horner(fdlibm.QA, s), x)
    at = min(max(ax, fdlibm.MID), fdlibm.BIG)     # the tail's |x|, finite in unused lanes
    zt = 1.0 / (at * at)
    near = at < fdlibm.TAIL_SPLIT
    fit = (horner_either(fdlibm.RA, _RB_PAD, near, zt)
           / horner_either(fdlibm.SA, _SB_PAD, near, zt))
    tail = math.copysign(1.0 - exp(-at * at - 0.5625 + fit) / at, x)
    out = math.copysign(1.0, x)            # |x| >= 6 and +-inf
    out = tail if ax < fdlibm.BIG else out
    out = mid if ax < fdlibm.MID else out
    out = small if ax < fdlibm.SMALL else out
    out = tiny if ax < fdlibm.TINY else out
    return x if x != x else out


@njit(cache=True, error_model="numpy")
def row_sum_exp(a, shift):
    """sum(exp(a - shift)) in float64 without writing a row-sized temporary: the exps of one
    block at a time go to an L1-sized buffer that `row_sum` adds (vocabulary rows are 120 KB)."""
    block = min(a.shape[0], 2048)
    buf = np.empty(block, a.dtype)
    s = 0.0
    for lo in range(0, a.shape[0], block):
        seg = a[lo:lo + block]           # slices, so every index is a plain 0..len loop
        for j in range(seg.shape[0]):    # (an offset index defeats LLVM's vectoriser)
            buf[j] = exp(seg[j] - shift)
        s += row_sum(buf[:seg.shape[0]])
    return s


__all__ = ["exp", "erf", "row_sum", "row_dot", "row_max", "row_sum_exp", "horner",
           "horner_either"]
