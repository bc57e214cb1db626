"""The Numba backend: NumPy arrays, with the hot fused kernels compiled by Numba.

`xp` is numpy, so every primitive op and every kernel not overridden here is exactly the NumPy
reference (`backends/reference.py`). Each override is a pair, as in CuPy's and Numba's own code:
`_<name>_rows`, a module-level `@njit(parallel=True, cache=True)` kernel that only fills
preallocated outputs (`prange` over rows or row chunks, serial inner loops), and `<name>`, the
registered wrapper that checks dtypes, makes contiguous 2-D views, allocates and calls it. Input
the kernels do not handle (dtypes other than float32/float64, mixed dtypes, masks that would
broadcast x to a bigger shape, out-of-range ids or targets, empty arrays) goes to the reference,
so an override is never silently wrong. `tests/backends/test_parity.py` checks every kernel.

Choices, each measured with `benchmarks/kernels.py` on a 2-core AVX-512 machine:
- exp. NumPy's exp is SIMD; Numba calls scalar libm, about 5x slower per element, which would
  make a fused softmax slower than NumPy's seven passes. `_exp` is Cephes' exp (Moshier 1984-
  2000, `expf.c` and `exp.c`): n = round(x / ln 2), a polynomial (float32) or Pade form
  (float64) on the remainder, times 2**n built from exponent bits. It is plain arithmetic and
  selects, so LLVM vectorises it; error <= 1 ulp (float32) and 1.5 ulp (float64) over the whole
  range, subnormals, +-inf and nan included.
- `error_model="numpy"`: Python's model puts a ZeroDivisionError branch on every float division,
  which stops LLVM vectorising the loop.
- fast-math is used only by `_sum` and `_dot`, with the single named flag "reassoc", so that LLVM
  vectorises their accumulator. They only add values already computed by flag-free code (exps,
  products, normalised rows), so no -inf mask ever flows through a fast-math instruction.
- Row sums accumulate in float64. Column sums (the gamma/beta gradients, the LAMB norms) are
  race-free: each `prange` iteration owns a fixed chunk of rows and writes its own partial
  row; NumPy adds the partials in a fixed order, so results do not depend on the thread count.
- Inputs under 262144 elements (2^18; MobileBERT's intra-block B*T*128 activations at batch 8)
  run on the calling thread only (`_run`): with passive OpenMP waiting (below), waking Numba's
  other threads costs more than they save there. At 2^16, NoNorm at width 128 ran at 0.9x the
  NumPy reference; at 2^18 it runs at 1.5-2.2x, with the full training step unchanged.
- No tuple unpacking of array rows inside `prange` bodies: Numba 0.68's parfor lowering dropped
  a later store (`o[t] -= g`) after `row, o, l, g = ...` with one name unused.
- Not overridden, because Numba did not beat NumPy at MobileBERT shapes: dropout_mask (its cost
  is the generator's random draws, which must stay NumPy's for reproducible masks).
- OMP_WAIT_POLICY defaults to PASSIVE (set below, only if the user has not chosen one, and
  before Numba first loads its OpenMP runtime). In a model, kernels alternate with OpenBLAS
  matmuls; OpenMP's default spin-waiting threads then fight OpenBLAS's for the cores. Measured
  with benchmarks/train_step.py (full MobileBERT pre-training step, batch 8 x 128, 2 cores):
  5.8 s/step spinning vs 1.5 s passive (NumPy backend 1.9 s). Isolated kernel timings
  (benchmarks/kernels.py) favour spinning slightly; the whole step is what matters.

Debug with NUMBA_DISABLE_JIT=1: the kernels then run as plain Python over the same arrays.
"""
from __future__ import annotations

import math
import os
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # see the module docstring; before numba

import numba  # noqa: E402
import numpy as np  # noqa: E402
from llvmlite import ir  # noqa: E402
from numba import njit, prange, types  # noqa: E402
from numba.extending import intrinsic, overload  # noqa: E402

from backends import reference  # noqa: E402
from backends import special as fdlibm  # noqa: E402 - erf's coefficients and branch edges
from backends.base import Backend  # noqa: E402

numba_backend = Backend("numba", np)

_REASSOC = {"reassoc"}     # the only fast-math flag used, and only in _sum / _dot
_CHUNK_ROWS = 16           # rows per partial sum in the column reductions
_CHUNK_ELEMS = 4096        # elements per partial sum in the LAMB norms
_PARALLEL_MIN = 1 << 18    # smaller inputs run on one thread (see _run)
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


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


def _exp(x):
    """e**x of a float32 or float64 scalar, in the scalar's precision (see `_exp_impl`)."""
    return np.exp(x)  # only runs with NUMBA_DISABLE_JIT=1


# Below LO the result is 0 (under half the smallest subnormal), above HI it is inf.
_F32_LO, _F32_HI = np.float32(-103.972084), np.float32(88.7228394)
_F64_LO, _F64_HI = -745.1332191019412, 709.782712893384


@overload(_exp, jit_options={"cache": True, "error_model": "numpy"})
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
def _sum(a):
    """sum(a) in float64, accumulated in any order ("reassoc") so LLVM vectorises it."""
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i]
    return s


@njit(cache=True, error_model="numpy", fastmath=_REASSOC)
def _dot(a, b):
    """sum(a * b) in float64, each product rounded in the inputs' dtype as NumPy's a * b is."""
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


@njit(cache=True, error_model="numpy")
def _max(a):
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
def _horner(c, z):
    """sum(c[k] * z**k), nested from the top as `backends.special._horner` does (same bits).
    Inlined where it is used, so that LLVM sees constant coefficients and unrolls the loop."""
    acc = c[len(c) - 1]
    for k in range(len(c) - 2, -1, -1):
        acc = acc * z + c[k]
    return acc


@njit(cache=True, error_model="numpy", inline="always")
def _horner_either(a, b, use_a, z):
    """_horner(a, z) if use_a else _horner(b, z), choosing coefficients rather than branches;
    `b` is padded with zeros at the top to a's length, which leaves its Horner bits unchanged."""
    acc = a[len(a) - 1] if use_a else b[len(a) - 1]
    for k in range(len(a) - 2, -1, -1):
        acc = acc * z + (a[k] if use_a else b[k])
    return acc


_RB_PAD, _SB_PAD = fdlibm._RB + (0.0,), fdlibm._SB + (0.0,)


@njit(cache=True, error_model="numpy", inline="always")
def _erf(x):
    """erf of a float64 by fdlibm's method with `backends.special.erf`'s operations (whose
    docstring has the pieces), but branch-free: every piece is computed and the one for |x| is
    selected, so that LLVM vectorises a loop over it. Numba's math.erf is a scalar series, and
    a branchy port ran at 20 ns a value, latency-bound."""
    ax = abs(x)
    z = x * x
    tiny = 0.125 * (8.0 * x + (8.0 * fdlibm._EFX) * x)
    small = x + x * (_horner(fdlibm._PP, z) / _horner(fdlibm._QQ, z))
    s = ax - 1.0
    mid = math.copysign(fdlibm._ERX + _horner(fdlibm._PA, s) / _horner(fdlibm._QA, s), x)
    at = min(max(ax, fdlibm._MID), fdlibm._BIG)     # the tail's |x|, finite in unused lanes
    zt = 1.0 / (at * at)
    near = at < fdlibm._TAIL_SPLIT
    fit = (_horner_either(fdlibm._RA, _RB_PAD, near, zt)
           / _horner_either(fdlibm._SA, _SB_PAD, near, zt))
    tail = math.copysign(1.0 - _exp(-at * at - 0.5625 + fit) / at, x)
    out = math.copysign(1.0, x)            # |x| >= 6 and +-inf
    out = tail if ax < fdlibm._BIG else out
    out = mid if ax < fdlibm._MID else out
    out = small if ax < fdlibm._SMALL else out
    out = tiny if ax < fdlibm._TINY else out
    return x if x != x else out


@njit(cache=True, error_model="numpy")
def _sum_exp(a, shift):
    """sum(exp(a - shift)) in float64 without writing a row-sized temporary: the exps of one
    block at a time go to an L1-sized buffer that `_sum` adds (vocabulary rows are 120 KB)."""
    block = min(a.shape[0], 2048)
    buf = np.empty(block, a.dtype)
    s = 0.0
    for lo in range(0, a.shape[0], block):
        seg = a[lo:lo + block]           # slices, so every index is a plain 0..len loop
        for j in range(seg.shape[0]):    # (an offset index defeats LLVM's vectoriser)
            buf[j] = _exp(seg[j] - shift)
        s += _sum(buf[:seg.shape[0]])
    return s


# --- wrapper helpers -----------------------------------------------------------------------------

def _floats(*arrays: Any) -> bool:
    """True when every array is a non-empty NumPy float32/float64 array of one dtype."""
    first = arrays[0]
    if not isinstance(first, np.ndarray) or first.dtype not in _FLOATS or first.size == 0:
        return False
    return all(isinstance(a, np.ndarray) and a.dtype == first.dtype for a in arrays[1:])


def _rows(a: np.ndarray) -> np.ndarray:
    """`a` as a C-contiguous (rows, last axis) array: a view when `a` already is contiguous."""
    a = np.ascontiguousarray(a)
    return a.reshape(math.prod(a.shape[:-1]), a.shape[-1])


def _chunks(rows: int) -> int:
    return -(-rows // _CHUNK_ROWS)


def _partials(rows: int, c: int, dtype) -> np.ndarray:
    """Zeroed per-chunk partial column sums, in the data's dtype: each adds only _CHUNK_ROWS
    rows (so float32 stays 16 lanes wide), and `_column_sum` adds the chunks in float64."""
    return np.zeros((_chunks(rows), c), dtype)


def _column_sum(partials: np.ndarray) -> np.ndarray:
    return partials.sum(axis=0, dtype=np.float64).astype(partials.dtype)


def _run(kernel: Any, size: int, *args: Any) -> None:
    """kernel(*args) on all of Numba's threads, or only on the calling one for fewer than
    _PARALLEL_MIN elements: waking the others costs ~30 us on an idle machine and a whole
    scheduler tick (4-15 ms measured) when other processes hold the cores."""
    if size >= _PARALLEL_MIN:
        kernel(*args)
        return
    threads = numba.get_num_threads()
    numba.set_num_threads(1)              # thread-local, and restored below
    try:
        kernel(*args)
    finally:
        numba.set_num_threads(threads)


# --- softmax, log_softmax ------------------------------------------------------------------------

@njit(parallel=True, cache=True, error_model="numpy")
def _softmax_fwd_rows(x, scale, mask, mask_row, y):
    """y[r] = softmax(x[r] * scale + mask[mask_row[r]]). A row whose max is not finite (all
    -inf) is shifted by 0, so it gives 0s, not nan."""
    n, c = x.shape
    zero, one = x.dtype.type(0), x.dtype.type(1)
    for r in prange(n):
        xr = x[r]
        yr = y[r]
        mr = mask[mask_row[r]]
        for j in range(c):
            yr[j] = xr[j] * scale + mr[j]
        m = _max(yr)
        m = m if np.isfinite(m) else zero
        for j in range(c):
            yr[j] = _exp(yr[j] - m)
        s = _sum(yr)
        inv = x.dtype.type(1.0 / s) if s != 0.0 else one    # all-masked rows sum to 0: stay 0s
        for j in range(c):
            yr[j] *= inv


@numba_backend.register("softmax_fwd")
def softmax_fwd(x, scale: float = 1.0, mask=None):
    if not _floats(x) or x.ndim == 0:
        return reference.softmax_fwd(x, scale, mask)
    c = x.shape[-1]
    if mask is None:                      # one row of zeros for every row (x * scale + 0 is exact)
        mask2, mask_row = np.zeros((1, c), x.dtype), np.zeros(x.size // c, np.intp)
    else:
        mask = np.asarray(mask)
        try:
            same_shape = np.broadcast_shapes(mask.shape, x.shape) == x.shape
        except ValueError:
            same_shape = False
        if not same_shape or mask.dtype.kind not in "biuf":
            return reference.softmax_fwd(x, scale, mask)   # it raises NumPy's error
        # mask as (M, C) rows of x's dtype, and for every row of x the index of its mask row:
        # a (B, 1, 1, T) padding mask against (B, H, T, T) scores stays B rows, not B*H*T.
        mask = mask.reshape((1,) * (x.ndim - mask.ndim) + mask.shape)
        lead = mask.shape[:-1]
        mask2 = np.ascontiguousarray(np.broadcast_to(mask, lead + (c,)), dtype=x.dtype)
        mask2 = mask2.reshape(math.prod(lead), c)
        mask_row = np.broadcast_to(np.arange(mask2.shape[0]).reshape(lead), x.shape[:-1])
        mask_row = np.ascontiguousarray(mask_row).reshape(-1)
    x2 = _rows(x)
    y = np.empty_like(x2)
    _run(_softmax_fwd_rows, x2.size, x2, x.dtype.type(scale), mask2, mask_row, y)
    return y.reshape(x.shape)


@njit(parallel=True, cache=True, error_model="numpy")
def _softmax_bwd_rows(y, gy, scale, gx):
    """gx[r] = (gy[r] - sum(y[r] * gy[r])) * y[r] * scale."""
    n, c = y.shape
    for r in prange(n):
        yr = y[r]
        gr = gy[r]
        xr = gx[r]
        s = y.dtype.type(_dot(yr, gr))
        for j in range(c):
            xr[j] = (gr[j] - s) * yr[j] * scale


@numba_backend.register("softmax_bwd")
def softmax_bwd(y, gy, scale: float = 1.0):
    if not _floats(y, gy) or y.ndim == 0 or y.shape != gy.shape:
        return reference.softmax_bwd(y, gy, scale)
    y2 = _rows(y)
    gx = np.empty_like(y2)
    _run(_softmax_bwd_rows, y2.size, y2, _rows(gy), y.dtype.type(scale), gx)
    return gx.reshape(y.shape)


@njit(parallel=True, cache=True, error_model="numpy")
def _log_softmax_fwd_rows(x, y):
    """y[r] = (x[r] - m) - log(sum(exp(x[r] - m))), m the row max (0 when not finite)."""
    n, c = x.shape
    zero = x.dtype.type(0)
    for r in prange(n):
        xr = x[r]
        yr = y[r]
        m = _max(xr)
        m = m if np.isfinite(m) else zero
        lse = x.dtype.type(math.log(_sum_exp(xr, m)))
        for j in range(c):
            yr[j] = (xr[j] - m) - lse


@numba_backend.register("log_softmax_fwd")
def log_softmax_fwd(x):
    if not _floats(x) or x.ndim == 0:
        return reference.log_softmax_fwd(x)
    x2 = _rows(x)
    y = np.empty_like(x2)
    _run(_log_softmax_fwd_rows, x2.size, x2, y)
    return y.reshape(x.shape)


@njit(parallel=True, cache=True, error_model="numpy")
def _log_softmax_bwd_rows(y, gy, gx):
    """gx[r] = gy[r] - exp(y[r]) * sum(gy[r])."""
    n, c = y.shape
    for r in prange(n):
        yr = y[r]
        gr = gy[r]
        xr = gx[r]
        s = y.dtype.type(_sum(gr))
        for j in range(c):
            xr[j] = gr[j] - _exp(yr[j]) * s


@numba_backend.register("log_softmax_bwd")
def log_softmax_bwd(y, gy):
    if not _floats(y, gy) or y.ndim == 0 or y.shape != gy.shape:
        return reference.log_softmax_bwd(y, gy)
    y2 = _rows(y)
    gx = np.empty_like(y2)
    _run(_log_softmax_bwd_rows, y2.size, y2, _rows(gy), gx)
    return gx.reshape(y.shape)


# --- cross-entropy -------------------------------------------------------------------------------

def _class_targets(logits, target, ignore_index) -> np.ndarray | None:
    """target as contiguous int64 when every non-ignored one indexes a column, else None."""
    if (not isinstance(target, np.ndarray) or target.dtype.kind not in "iu"
            or target.shape != logits.shape[:1] or not -2**63 <= ignore_index < 2**63):
        return None
    valid = target != ignore_index
    if ((target < 0) & valid).any() or ((target >= logits.shape[1]) & valid).any():
        return None                       # the reference wraps negatives or raises IndexError
    return np.ascontiguousarray(target, dtype=np.int64)


@njit(parallel=True, cache=True, error_model="numpy")
def _cross_entropy_fwd_rows(logits, target, ignore_index, loss, lse):
    """lse[r] = log(sum(exp(logits[r] - m))) + m; loss[r] = lse[r] - logits[r, target[r]], or
    0 for ignored rows."""
    n = logits.shape[0]
    for r in prange(n):
        row = logits[r]
        m = _max(row)
        lse[r] = logits.dtype.type(math.log(_sum_exp(row, m))) + m
        t = target[r]
        loss[r] = lse[r] - row[t] if t != ignore_index else 0


@numba_backend.register("cross_entropy_fwd")
def cross_entropy_fwd(logits, target, ignore_index: int = -100):
    t = _class_targets(logits, target, ignore_index) if _floats(logits) and logits.ndim == 2 \
        else None
    if t is None:
        return reference.cross_entropy_fwd(logits, target, ignore_index)
    n = logits.shape[0]
    loss, lse = np.empty(n, logits.dtype), np.empty(n, logits.dtype)
    _run(_cross_entropy_fwd_rows, logits.size, np.ascontiguousarray(logits), t, ignore_index,
         loss, lse)
    return loss, lse


@njit(parallel=True, cache=True, error_model="numpy")
def _cross_entropy_bwd_rows(logits, lse, target, ignore_index, g_rows, out):
    """out[r] = g[r] * (exp(logits[r] - lse[r]) - onehot(target[r])); ignored rows stay 0."""
    n, c = logits.shape
    for r in prange(n):
        t = target[r]
        if t != ignore_index:
            row = logits[r]
            o = out[r]
            shift = lse[r]
            g = g_rows[r]
            for j in range(c):
                o[j] = _exp(row[j] - shift) * g
            o[t] -= g


@numba_backend.register("cross_entropy_bwd")
def cross_entropy_bwd(logits, lse, target, ignore_index: int, g_rows):
    t = _class_targets(logits, target, ignore_index) if _floats(logits) and logits.ndim == 2 \
        else None
    if t is None:
        return reference.cross_entropy_bwd(logits, lse, target, ignore_index, g_rows)
    n = logits.shape[0]
    dt = logits.dtype
    # Zeroed by the OS (calloc): ignored rows, most of them for MLM on all positions, are free.
    out = np.zeros(logits.shape, dt)
    g = np.ascontiguousarray(np.broadcast_to(np.asarray(g_rows), (n,)), dtype=dt)
    _run(_cross_entropy_bwd_rows, logits.size, np.ascontiguousarray(logits),
         np.ascontiguousarray(lse, dtype=dt), t, ignore_index, g, out)
    return out


# --- layer_norm, no_norm -------------------------------------------------------------------------

@njit(parallel=True, cache=True, error_model="numpy")
def _layer_norm_fwd_rows(x, gamma, beta, eps, y, mean, rstd):
    """Row mean and 1/sqrt(var + eps) in float64, rounded once; y = (x - mean) * rstd * g + b."""
    n, c = x.shape
    for r in prange(n):
        xr = x[r]
        yr = y[r]
        mu = _sum(xr) / c
        for j in range(c):
            yr[j] = xr[j] - mu            # the float64 deviation, rounded once, for the variance
        var = _dot(yr, yr) / c
        m = x.dtype.type(mu)
        rs = x.dtype.type(1.0 / math.sqrt(var + eps))
        mean[r] = m
        rstd[r] = rs
        for j in range(c):
            yr[j] = (xr[j] - m) * rs * gamma[j] + beta[j]


def _param(p, x, fill: float) -> np.ndarray:
    """p as a contiguous row, or `fill` for an absent gamma (1) or beta (0): multiplying by 1
    and adding 0 change no value, and one code path compiles faster than four."""
    return np.full(x.shape[-1], fill, x.dtype) if p is None else np.ascontiguousarray(p)


@numba_backend.register("layer_norm_fwd")
def layer_norm_fwd(x, gamma, beta, eps: float):
    params = [p for p in (gamma, beta) if p is not None]
    if (not _floats(x, *params) or x.ndim == 0
            or any(p.shape != x.shape[-1:] for p in params)):
        return reference.layer_norm_fwd(x, gamma, beta, eps)
    x2 = _rows(x)
    y = np.empty_like(x2)
    mean, rstd = np.empty(x2.shape[0], x.dtype), np.empty(x2.shape[0], x.dtype)
    _run(_layer_norm_fwd_rows, x2.size, x2, _param(gamma, x, 1.0), _param(beta, x, 0.0),
         float(eps), y, mean, rstd)
    stats = x.shape[:-1] + (1,)
    return y.reshape(x.shape), mean.reshape(stats), rstd.reshape(stats)


@njit(parallel=True, cache=True, error_model="numpy")
def _layer_norm_bwd_rows(x, gamma, mean, rstd, gy, gx, part_gamma, part_beta):
    """gx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = gy * gamma; chunk k of rows adds
    its gy * xhat and gy into part_gamma[k] and part_beta[k]."""
    n, c = x.shape
    for k in prange(part_gamma.shape[0]):
        xhat = np.empty(c, x.dtype)
        pg = part_gamma[k]
        pb = part_beta[k]
        for r in range(k * _CHUNK_ROWS, min(n, (k + 1) * _CHUNK_ROWS)):
            xr = x[r]
            gr = gy[r]
            g = gx[r]
            m = mean[r]
            rs = rstd[r]
            for j in range(c):
                xhat[j] = (xr[j] - m) * rs
                g[j] = gr[j] * gamma[j]
                pg[j] += gr[j] * xhat[j]
                pb[j] += gr[j]
            g_mean = x.dtype.type(_sum(g) / c)
            gx_mean = x.dtype.type(_dot(g, xhat) / c)
            for j in range(c):
                g[j] = ((g[j] - g_mean) - xhat[j] * gx_mean) * rs


@numba_backend.register("layer_norm_bwd")
def layer_norm_bwd(x, gamma, mean, rstd, gy):
    params = [] if gamma is None else [gamma]
    if (not _floats(x, gy, mean, rstd, *params) or x.ndim == 0 or gy.shape != x.shape
            or mean.size * x.shape[-1] != x.size or rstd.size != mean.size
            or any(p.shape != x.shape[-1:] for p in params)):
        return reference.layer_norm_bwd(x, gamma, mean, rstd, gy)
    x2 = _rows(x)
    n, c = x2.shape
    gx = np.empty_like(x2)
    part_gamma, part_beta = _partials(n, c, x.dtype), _partials(n, c, x.dtype)
    _run(_layer_norm_bwd_rows, x2.size, x2, _param(gamma, x, 1.0), _rows(mean).reshape(n),
         _rows(rstd).reshape(n), _rows(gy), gx, part_gamma, part_beta)
    if gamma is None:
        return gx.reshape(x.shape), None, None
    return gx.reshape(x.shape), _column_sum(part_gamma), _column_sum(part_beta)


@njit(parallel=True, cache=True, error_model="numpy")
def _no_norm_fwd_rows(x, gamma, beta, residual, y):
    """y = (x + residual) * gamma + beta; without a residual, `residual` is one row of zeros."""
    n, c = x.shape
    for r in prange(n):
        xr = x[r]
        yr = y[r]
        rr = residual[r] if residual.shape[0] > 1 else residual[0]
        for j in range(c):
            yr[j] = (xr[j] + rr[j]) * gamma[j] + beta[j]


@numba_backend.register("no_norm_fwd")
def no_norm_fwd(x, gamma, beta, residual=None):
    arrays = [x, gamma, beta] + ([] if residual is None else [residual])
    if (not _floats(*arrays) or x.ndim == 0 or gamma.shape != x.shape[-1:]
            or beta.shape != x.shape[-1:] or (residual is not None and residual.shape != x.shape)):
        return reference.no_norm_fwd(x, gamma, beta, residual)
    x2 = _rows(x)
    y = np.empty_like(x2)
    _run(_no_norm_fwd_rows, x2.size, x2, np.ascontiguousarray(gamma), np.ascontiguousarray(beta),
         _residual_rows(residual, x2), y)
    return y.reshape(x.shape)


def _residual_rows(residual, x2: np.ndarray) -> np.ndarray:
    """The residual as rows like x2, or one row of zeros (x + 0 is x) when there is none; a
    1-row x with a residual has a 1-row residual, which the kernels read the same way."""
    return np.zeros((1, x2.shape[1]), x2.dtype) if residual is None else _rows(residual)


@njit(parallel=True, cache=True, error_model="numpy")
def _no_norm_bwd_rows(x, residual, gamma, gy, gh, part_gamma, part_beta):
    """gh = gy * gamma; chunk k of rows adds its gy * (x + residual) and gy into its partials."""
    n, c = x.shape
    for k in prange(part_gamma.shape[0]):
        pg = part_gamma[k]
        pb = part_beta[k]
        for r in range(k * _CHUNK_ROWS, min(n, (k + 1) * _CHUNK_ROWS)):
            xr = x[r]
            gr = gy[r]
            o = gh[r]
            rr = residual[r] if residual.shape[0] > 1 else residual[0]
            for j in range(c):
                o[j] = gr[j] * gamma[j]
                pg[j] += gr[j] * (xr[j] + rr[j])
                pb[j] += gr[j]


@numba_backend.register("no_norm_bwd")
def no_norm_bwd(x, residual, gamma, gy):
    arrays = [x, gamma, gy] + ([] if residual is None else [residual])
    if (not _floats(*arrays) or x.ndim == 0 or gamma.shape != x.shape[-1:]
            or gy.shape != x.shape or (residual is not None and residual.shape != x.shape)):
        return reference.no_norm_bwd(x, residual, gamma, gy)
    x2 = _rows(x)
    n, c = x2.shape
    gh = np.empty_like(x2)
    part_gamma, part_beta = _partials(n, c, x.dtype), _partials(n, c, x.dtype)
    _run(_no_norm_bwd_rows, x2.size, x2, _residual_rows(residual, x2),
         np.ascontiguousarray(gamma), _rows(gy), gh, part_gamma, part_beta)
    return gh.reshape(x.shape), _column_sum(part_gamma), _column_sum(part_beta)


# --- activations ---------------------------------------------------------------------------------
# Constants are cast to the array's dtype (Numba would otherwise compute float32 in float64).

@njit(parallel=True, cache=True, error_model="numpy")
def _gelu_fwd_rows(x, approximate, y):
    """Exact: 0.5 x (1 + erf(x / sqrt 2)). Tanh form: 0.5 x (1 + tanh(u)) = x / (1 + exp(-2u)),
    u = sqrt(2/pi) (x + 0.044715 x^3): the same value without tanh's cancellation near -1."""
    dt = x.dtype.type
    half, one, a = dt(0.5), dt(1.0), dt(0.044715)
    k, inv_sqrt2 = dt(math.sqrt(2.0 / math.pi)), dt(1.0 / math.sqrt(2.0))
    for i in prange(x.shape[0]):
        v = x[i]
        if approximate:
            u = k * (v + a * v * v * v)
            y[i] = v / (one + _exp(-(u + u)))
        else:
            y[i] = half * v * (one + dt(_erf(np.float64(v * inv_sqrt2))))


@numba_backend.register("gelu_fwd")
def gelu_fwd(x, approximate: bool = False):
    if not _floats(x):
        return reference.gelu_fwd(x, approximate)
    x1 = np.ascontiguousarray(x).reshape(-1)
    y = np.empty_like(x1)
    _run(_gelu_fwd_rows, x1.size, x1, bool(approximate), y)
    return y.reshape(x.shape)


@njit(parallel=True, cache=True, error_model="numpy")
def _gelu_bwd_rows(x, gy, approximate, gx):
    """Exact: Phi(x) + x phi(x). Tanh form, with s = 1 / (1 + e), e = exp(-2u), 1 - s = e s:
    0.5 (1 + t) + 0.5 x (1 - t^2) u' = s + 2 x s (1 - s) sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""
    dt = x.dtype.type
    half, one, two, a3 = dt(0.5), dt(1.0), dt(2.0), dt(3 * 0.044715)
    a, k = dt(0.044715), dt(math.sqrt(2.0 / math.pi))
    inv_sqrt2, inv_sqrt2pi = dt(1.0 / math.sqrt(2.0)), dt(1.0 / math.sqrt(2.0 * math.pi))
    for i in prange(x.shape[0]):
        v = x[i]
        if approximate:
            x2 = v * v
            u = k * (v + a * x2 * v)
            e = _exp(-(u + u))
            s = one / (one + e)
            rest = e * s if e < np.inf else one          # 1 - s, without inf * 0
            d = s + two * v * s * rest * k * (one + a3 * x2)
        else:
            d = (half * (one + dt(_erf(np.float64(v * inv_sqrt2))))
                 + v * inv_sqrt2pi * _exp(-half * v * v))
        gx[i] = gy[i] * d


@numba_backend.register("gelu_bwd")
def gelu_bwd(x, gy, approximate: bool = False):
    if not _floats(x, gy) or x.shape != gy.shape:
        return reference.gelu_bwd(x, gy, approximate)
    x1 = np.ascontiguousarray(x).reshape(-1)
    gx = np.empty_like(x1)
    _run(_gelu_bwd_rows, x1.size, x1, np.ascontiguousarray(gy).reshape(-1), bool(approximate),
         gx)
    return gx.reshape(x.shape)


@njit(parallel=True, cache=True, error_model="numpy")
def _relu_fwd_rows(x, y):
    """max(x, 0); nan stays nan, as with np.maximum."""
    zero = x.dtype.type(0)
    for i in prange(x.shape[0]):
        v = x[i]
        y[i] = zero if v <= zero else v


@numba_backend.register("relu_fwd")
def relu_fwd(x):
    if not _floats(x):
        return reference.relu_fwd(x)
    x1 = np.ascontiguousarray(x).reshape(-1)
    y = np.empty_like(x1)
    _run(_relu_fwd_rows, x1.size, x1, y)
    return y.reshape(x.shape)


@njit(parallel=True, cache=True, error_model="numpy")
def _relu_bwd_rows(y, gy, gx):
    """gy * (y > 0), a multiplication as in the reference (so inf * 0 is nan there too)."""
    zero, one = y.dtype.type(0), y.dtype.type(1)
    for i in prange(y.shape[0]):
        gx[i] = gy[i] * (one if y[i] > zero else zero)


@numba_backend.register("relu_bwd")
def relu_bwd(y, gy):
    if not _floats(y, gy) or y.shape != gy.shape:
        return reference.relu_bwd(y, gy)
    y1 = np.ascontiguousarray(y).reshape(-1)
    gx = np.empty_like(y1)
    _run(_relu_bwd_rows, y1.size, y1, np.ascontiguousarray(gy).reshape(-1), gx)
    return gx.reshape(y.shape)


# --- embedding -----------------------------------------------------------------------------------

@njit(parallel=True, cache=True, error_model="numpy")
def _embedding_bwd_rows(ids, gy, width, gw):
    """gw[ids[i]] += gy[i] for i in order. Thread b owns columns [b*width, (b+1)*width) of every
    row, so no two threads touch one element, and each element adds in the order of i, as
    np.add.at does: the result is the same for any number of threads, bit for bit."""
    n, d = gy.shape
    for b in prange(-(-d // width)):
        lo = b * width
        hi = min(d, (b + 1) * width)
        for i in range(n):
            src = gy[i, lo:hi]
            dst = gw[ids[i], lo:hi]
            for j in range(hi - lo):
                dst[j] += src[j]


@numba_backend.register("embedding_bwd")
def embedding_bwd(ids, gy, num_embeddings: int):
    if (not _floats(gy) or not isinstance(ids, np.ndarray) or ids.dtype.kind not in "iu"
            or gy.ndim == 0 or ids.size * gy.shape[-1] != gy.size
            or ids.min() < 0 or ids.max() >= num_embeddings):
        return reference.embedding_bwd(ids, gy, num_embeddings)
    gy2 = _rows(gy)
    d = gy2.shape[1]
    # Column blocks of at least 16 values (one 64-byte line of float32), one per thread.
    width = max(16, -(-d // numba.get_num_threads()))
    gw = np.zeros((num_embeddings, d), gy.dtype)
    flat_ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    _run(_embedding_bwd_rows, gy2.size, flat_ids, gy2, width, gw)
    return gw


# --- optimizer updates, in place -----------------------------------------------------------------
# The same operations in the same order as the reference, so AdamW is bit-identical to it.

@njit(cache=True, error_model="numpy")
def _adam_u(w, g, m, v, i, b1, b2, c1, c2, eps, wd, one_b1, one_b2):
    """Update m[i] and v[i] and return the AdamW direction at element i."""
    mi = m[i] * b1 + one_b1 * g[i]
    vi = v[i] * b2 + one_b2 * (g[i] * g[i])
    m[i] = mi
    v[i] = vi
    return _direction(w, mi, vi, i, c1, c2, eps, wd)


@njit(cache=True, error_model="numpy")
def _direction(w, mi, vi, i, c1, c2, eps, wd):
    """m_hat / (sqrt(v_hat) + eps) [+ wd * w]; dividing by a bias term of 1 is exact."""
    u = (mi / c1) / (np.sqrt(vi / c2) + eps)
    return u + wd * w[i] if wd != 0 else u


@njit(parallel=True, cache=True, error_model="numpy")
def _adamw_update_rows(w, g, m, v, lr, b1, b2, eps, wd, c1, c2, one_b1, one_b2):
    for i in prange(w.shape[0]):
        u = _adam_u(w, g, m, v, i, b1, b2, c1, c2, eps, wd, one_b1, one_b2)
        w[i] -= lr * u


def _flat_in_place(w, g, m, v):
    """1-D views of w, m, v (which must be writeable and contiguous) and of g, or None."""
    if not _floats(w, g, m, v) or not (w.shape == g.shape == m.shape == v.shape):
        return None
    if not all(a.flags.c_contiguous and a.flags.writeable for a in (w, m, v)):
        return None
    return w.reshape(-1), np.ascontiguousarray(g).reshape(-1), m.reshape(-1), v.reshape(-1)


def _scalars(dt, lr, beta1, beta2, eps, weight_decay, bias_c1, bias_c2) -> tuple:
    """The hyper-parameters in the arrays' dtype, as NumPy rounds Python floats in `w -= lr * u`."""
    return (dt.type(lr), dt.type(beta1), dt.type(beta2), dt.type(eps), dt.type(weight_decay),
            dt.type(bias_c1), dt.type(bias_c2), dt.type(1.0 - beta1), dt.type(1.0 - beta2))


@numba_backend.register("adamw_update")
def adamw_update(w, g, m, v, lr: float, beta1: float, beta2: float, eps: float,
                 weight_decay: float, bias_c1: float = 1.0, bias_c2: float = 1.0) -> None:
    flat = _flat_in_place(w, g, m, v)
    if flat is None:
        return reference.adamw_update(w, g, m, v, lr, beta1, beta2, eps, weight_decay,
                                      bias_c1, bias_c2)
    _run(_adamw_update_rows, w.size, *flat,
         *_scalars(w.dtype, lr, beta1, beta2, eps, weight_decay, bias_c1, bias_c2))
    return None


@njit(parallel=True, cache=True, error_model="numpy")
def _lamb_moments_rows(w, g, m, v, b1, b2, eps, wd, c1, c2, one_b1, one_b2, w_sq, u_sq):
    """Pass 1: update m, v; chunk k writes sum(w^2) and sum(u^2) of its elements."""
    for k in prange(w_sq.shape[0]):
        lo = k * _CHUNK_ELEMS
        wk = w[lo:lo + _CHUNK_ELEMS]       # slices: plain 0..len indices vectorise
        gk = g[lo:lo + _CHUNK_ELEMS]
        mk = m[lo:lo + _CHUNK_ELEMS]
        vk = v[lo:lo + _CHUNK_ELEMS]
        u = np.empty(wk.shape[0], w.dtype)
        for i in range(wk.shape[0]):
            u[i] = _adam_u(wk, gk, mk, vk, i, b1, b2, c1, c2, eps, wd, one_b1, one_b2)
        w_sq[k] = _dot(wk, wk)
        u_sq[k] = _dot(u, u)


@njit(parallel=True, cache=True, error_model="numpy")
def _lamb_apply_rows(w, m, v, step, eps, wd, c1, c2):
    """Pass 2: w -= step * u, u recomputed from the new m, v (the same bits as in pass 1)."""
    for i in prange(w.shape[0]):
        w[i] -= step * _direction(w, m[i], v[i], i, c1, c2, eps, wd)


@numba_backend.register("lamb_update")
def lamb_update(w, g, m, v, lr: float, beta1: float, beta2: float, eps: float,
                weight_decay: float, bias_c1: float = 1.0, bias_c2: float = 1.0,
                adapt: bool = True) -> float:
    flat = _flat_in_place(w, g, m, v)
    if flat is None:
        return reference.lamb_update(w, g, m, v, lr, beta1, beta2, eps, weight_decay,
                                     bias_c1, bias_c2, adapt)
    lr_, b1, b2, eps_, wd, c1, c2, one_b1, one_b2 = _scalars(
        w.dtype, lr, beta1, beta2, eps, weight_decay, bias_c1, bias_c2)
    if not adapt:
        _run(_adamw_update_rows, w.size, *flat, lr_, b1, b2, eps_, wd, c1, c2, one_b1, one_b2)
        return 1.0
    wf, gf, mf, vf = flat
    chunks = -(-wf.shape[0] // _CHUNK_ELEMS)
    w_sq, u_sq = np.empty(chunks), np.empty(chunks)
    _run(_lamb_moments_rows, wf.size, wf, gf, mf, vf, b1, b2, eps_, wd, c1, c2, one_b1, one_b2,
         w_sq, u_sq)
    w_norm, u_norm = math.sqrt(w_sq.sum()), math.sqrt(u_sq.sum())
    ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
    _run(_lamb_apply_rows, wf.size, wf, mf, vf, w.dtype.type(lr * ratio), eps_, wd, c1, c2)
    return ratio


# --- int8: the GEMM (LLVM IR micro-kernels per instruction set) and the activation quantizer ---

from backends import numba_int8  # noqa: E402

numba_backend.register("int8_matmul")(numba_int8.int8_matmul)
numba_backend.register("quantize_u8")(numba_int8.quantize_u8)


__all__ = ["numba_backend"]
