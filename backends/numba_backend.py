"""The Numba backend: NumPy arrays, with the hot fused kernels compiled by Numba.

`xp` is numpy, so every primitive op and every kernel not overridden here is exactly the NumPy
reference (`backends/reference.py`). Each override is a pair, as in CuPy's and Numba's own code:
`_<name>_rows`, a module-level `@njit(parallel=True, cache=True)` kernel that only fills
preallocated outputs (`prange` over rows or row chunks, serial inner loops), and `<name>`, the
registered wrapper that checks dtypes, makes contiguous 2-D views, allocates and calls it. Input
the kernels do not handle (dtypes other than float32/float64, mixed dtypes, masks that would
broadcast x to a bigger shape, empty arrays) goes to the reference, so an override is never
silently wrong. Index values (embedding ids, class targets) are not re-checked: the op checked
their range, once (`autograd/ops/nn.py`). `tests/backends/test_parity.py` checks every kernel.

Files: the row kernels (softmax, log_softmax, cross-entropy, layer_norm, no_norm) are here, with
the backend's table of every override at the end; the element-wise ones (GELU, ReLU, the
embedding gradient, the optimizer updates) in `numba_elementwise.py`; the scalar math they are
built from in `numba_math.py`; the wrappers' shared helpers in `numba_support.py`.

Choices, each measured with `benchmarks/kernels.py` on a 2-core AVX-512 machine:
- The scalar math inside the kernels (a vectorisable exp and erf, float64 row sums, row max)
  is `backends/numba_math.py`, with the reasons for each. `error_model="numpy"` everywhere:
  Python's model puts a ZeroDivisionError branch on every float division, which stops LLVM
  vectorising the loop.
- Row sums accumulate in float64. Column sums (the gamma/beta gradients, the LAMB norms) are
  race-free: each `prange` iteration owns a fixed chunk of rows and writes its own partial
  row; NumPy adds the partials in a fixed order, so results do not depend on the thread count.
- Inputs under 262144 elements (2^18; MobileBERT's intra-block B*T*128 activations at batch 8)
  run on the calling thread only (`run`): with passive OpenMP waiting (below), waking Numba's
  other threads costs more than they save there. At 2^16, NoNorm at width 128 ran at 0.9x the
  NumPy reference; at 2^18 it runs at 1.5-2.2x, with the full training step unchanged.
- No tuple unpacking of array rows inside `prange` bodies: Numba 0.68's parfor lowering dropped
  a later store (`o[t] -= g`) after `row, o, l, g = ...` with one name unused.
- Not overridden, because Numba did not beat NumPy at MobileBERT shapes: dropout_mask (its cost
  is the generator's random draws, which must stay NumPy's for reproducible masks).
- OMP_WAIT_POLICY defaults to PASSIVE, set by `backends.get_backend("numba")` when the
  backend is selected (only if the user has not chosen one, and before Numba first starts its
  OpenMP runtime), not by importing this module. In a model, kernels alternate with OpenBLAS
  matmuls; OpenMP's default spin-waiting threads then fight OpenBLAS's for the cores. Measured
  with benchmarks/train_step.py (full MobileBERT pre-training step, batch 8 x 128, 2 cores):
  5.8 s/step spinning vs 1.5 s passive (NumPy backend 1.9 s). Isolated kernel timings
  (benchmarks/kernels.py) favour spinning slightly; the whole step is what matters.

Debug with NUMBA_DISABLE_JIT=1: the kernels then run as plain Python over the same arrays.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from backends import numba_elementwise as elementwise
from backends import reference
from backends.base import Backend
from backends.blas import blas_threads
from backends.numba_math import exp, row_dot, row_max, row_sum, row_sum_exp
from backends.numba_support import CHUNK_ROWS, column_sum, floats, partials, rows, run

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
        m = row_max(yr)
        m = m if np.isfinite(m) else zero
        for j in range(c):
            yr[j] = exp(yr[j] - m)
        s = row_sum(yr)
        inv = x.dtype.type(1.0 / s) if s != 0.0 else one    # all-masked rows sum to 0: stay 0s
        for j in range(c):
            yr[j] *= inv


def softmax_fwd(x, mask=None, scale: float = 1.0):
    if not floats(x) or x.ndim == 0:
        return reference.softmax_fwd(x, mask, scale)
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
            return reference.softmax_fwd(x, mask, scale)   # it raises NumPy's error
        # mask as (M, C) rows of x's dtype, and for every row of x the index of its mask row:
        # a (B, 1, 1, T) padding mask against (B, H, T, T) scores stays B rows, not B*H*T.
        mask = mask.reshape((1,) * (x.ndim - mask.ndim) + mask.shape)
        lead = mask.shape[:-1]
        mask2 = np.ascontiguousarray(np.broadcast_to(mask, lead + (c,)), dtype=x.dtype)
        mask2 = mask2.reshape(math.prod(lead), c)
        mask_row = np.broadcast_to(np.arange(mask2.shape[0]).reshape(lead), x.shape[:-1])
        mask_row = np.ascontiguousarray(mask_row).reshape(-1)
    x2 = rows(x)
    y = np.empty_like(x2)
    run(_softmax_fwd_rows, x2.size, x2, x.dtype.type(scale), mask2, mask_row, y)
    return y.reshape(x.shape)


@njit(parallel=True, cache=True, error_model="numpy")
def _softmax_bwd_rows(y, gy, scale, gx):
    """gx[r] = (gy[r] - sum(y[r] * gy[r])) * y[r] * scale."""
    n, c = y.shape
    for r in prange(n):
        yr = y[r]
        gr = gy[r]
        xr = gx[r]
        s = y.dtype.type(row_dot(yr, gr))
        for j in range(c):
            xr[j] = (gr[j] - s) * yr[j] * scale


def softmax_bwd(y, scale: float, gy):
    if not floats(y, gy) or y.ndim == 0 or y.shape != gy.shape:
        return reference.softmax_bwd(y, scale, gy)
    y2 = rows(y)
    gx = np.empty_like(y2)
    run(_softmax_bwd_rows, y2.size, y2, rows(gy), y.dtype.type(scale), gx)
    return gx.reshape(y.shape)


@njit(parallel=True, cache=True, error_model="numpy")
def _log_softmax_fwd_rows(x, y):
    """y[r] = (x[r] - m) - log(sum(exp(x[r] - m))), m the row max (0 when not finite)."""
    n, c = x.shape
    zero = x.dtype.type(0)
    for r in prange(n):
        xr = x[r]
        yr = y[r]
        m = row_max(xr)
        m = m if np.isfinite(m) else zero
        lse = x.dtype.type(math.log(row_sum_exp(xr, m)))
        for j in range(c):
            yr[j] = (xr[j] - m) - lse


def log_softmax_fwd(x):
    if not floats(x) or x.ndim == 0:
        return reference.log_softmax_fwd(x)
    x2 = rows(x)
    y = np.empty_like(x2)
    run(_log_softmax_fwd_rows, x2.size, x2, y)
    return y.reshape(x.shape)


@njit(parallel=True, cache=True, error_model="numpy")
def _log_softmax_bwd_rows(y, gy, gx):
    """gx[r] = gy[r] - exp(y[r]) * sum(gy[r])."""
    n, c = y.shape
    for r in prange(n):
        yr = y[r]
        gr = gy[r]
        xr = gx[r]
        s = y.dtype.type(row_sum(gr))
        for j in range(c):
            xr[j] = gr[j] - exp(yr[j]) * s


def log_softmax_bwd(y, gy):
    if not floats(y, gy) or y.ndim == 0 or y.shape != gy.shape:
        return reference.log_softmax_bwd(y, gy)
    y2 = rows(y)
    gx = np.empty_like(y2)
    run(_log_softmax_bwd_rows, y2.size, y2, rows(gy), gx)
    return gx.reshape(y.shape)


# --- cross-entropy -------------------------------------------------------------------------------

def _class_targets(logits, target, ignore_index) -> np.ndarray | None:
    """target as contiguous int64 (its values were range-checked by the op), else None."""
    if (not isinstance(target, np.ndarray) or target.dtype.kind not in "iu"
            or target.shape != logits.shape[:1] or not -2**63 <= ignore_index < 2**63):
        return None
    return np.ascontiguousarray(target, dtype=np.int64)


@njit(parallel=True, cache=True, error_model="numpy")
def _cross_entropy_fwd_rows(logits, target, ignore_index, loss, lse):
    """lse[r] = log(sum(exp(logits[r] - m))) + m; loss[r] = lse[r] - logits[r, target[r]], or
    0 for ignored rows."""
    n = logits.shape[0]
    for r in prange(n):
        row = logits[r]
        m = row_max(row)
        lse[r] = logits.dtype.type(math.log(row_sum_exp(row, m))) + m
        t = target[r]
        loss[r] = lse[r] - row[t] if t != ignore_index else 0


def cross_entropy_fwd(logits, target, ignore_index: int = -100):
    t = _class_targets(logits, target, ignore_index) if floats(logits) and logits.ndim == 2 \
        else None
    if t is None:
        return reference.cross_entropy_fwd(logits, target, ignore_index)
    n = logits.shape[0]
    loss, lse = np.empty(n, logits.dtype), np.empty(n, logits.dtype)
    run(_cross_entropy_fwd_rows, logits.size, np.ascontiguousarray(logits), t, ignore_index,
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
                o[j] = exp(row[j] - shift) * g
            o[t] -= g


def cross_entropy_bwd(logits, lse, target, ignore_index: int, gy):
    t = _class_targets(logits, target, ignore_index) if floats(logits) and logits.ndim == 2 \
        else None
    if t is None:
        return reference.cross_entropy_bwd(logits, lse, target, ignore_index, gy)
    n = logits.shape[0]
    dt = logits.dtype
    # Zeroed by the OS (calloc): ignored rows, most of them for MLM on all positions, are free.
    out = np.zeros(logits.shape, dt)
    g = np.ascontiguousarray(np.broadcast_to(np.asarray(gy), (n,)), dtype=dt)
    run(_cross_entropy_bwd_rows, logits.size, np.ascontiguousarray(logits),
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
        mu = row_sum(xr) / c
        for j in range(c):
            yr[j] = xr[j] - mu            # the float64 deviation, rounded once, for the variance
        var = row_dot(yr, yr) / c
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


def layer_norm_fwd(x, gamma, beta, eps: float):
    params = [p for p in (gamma, beta) if p is not None]
    if (not floats(x, *params) or x.ndim == 0
            or any(p.shape != x.shape[-1:] for p in params)):
        return reference.layer_norm_fwd(x, gamma, beta, eps)
    x2 = rows(x)
    y = np.empty_like(x2)
    mean, rstd = np.empty(x2.shape[0], x.dtype), np.empty(x2.shape[0], x.dtype)
    run(_layer_norm_fwd_rows, x2.size, x2, _param(gamma, x, 1.0), _param(beta, x, 0.0),
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
        for r in range(k * CHUNK_ROWS, min(n, (k + 1) * CHUNK_ROWS)):
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
            g_mean = x.dtype.type(row_sum(g) / c)
            gx_mean = x.dtype.type(row_dot(g, xhat) / c)
            for j in range(c):
                g[j] = ((g[j] - g_mean) - xhat[j] * gx_mean) * rs


def layer_norm_bwd(x, gamma, mean, rstd, gy):
    params = [] if gamma is None else [gamma]
    if (not floats(x, gy, mean, rstd, *params) or x.ndim == 0 or gy.shape != x.shape
            or mean.size * x.shape[-1] != x.size or rstd.size != mean.size
            or any(p.shape != x.shape[-1:] for p in params)):
        return reference.layer_norm_bwd(x, gamma, mean, rstd, gy)
    x2 = rows(x)
    n, c = x2.shape
    gx = np.empty_like(x2)
    part_gamma, part_beta = partials(n, c, x.dtype), partials(n, c, x.dtype)
    run(_layer_norm_bwd_rows, x2.size, x2, _param(gamma, x, 1.0), rows(mean).reshape(n),
         rows(rstd).reshape(n), rows(gy), gx, part_gamma, part_beta)
    if gamma is None:
        return gx.reshape(x.shape), None, None
    return gx.reshape(x.shape), column_sum(part_gamma), column_sum(part_beta)


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


def no_norm_fwd(x, gamma, beta, residual=None):
    arrays = [x, gamma, beta] + ([] if residual is None else [residual])
    if (not floats(*arrays) or x.ndim == 0 or gamma.shape != x.shape[-1:]
            or beta.shape != x.shape[-1:] or (residual is not None and residual.shape != x.shape)):
        return reference.no_norm_fwd(x, gamma, beta, residual)
    x2 = rows(x)
    y = np.empty_like(x2)
    run(_no_norm_fwd_rows, x2.size, x2, np.ascontiguousarray(gamma), np.ascontiguousarray(beta),
         _residual_rows(residual, x2), y)
    return y.reshape(x.shape)


def _residual_rows(residual, x2: np.ndarray) -> np.ndarray:
    """The residual as rows like x2, or one row of zeros (x + 0 is x) when there is none; a
    1-row x with a residual has a 1-row residual, which the kernels read the same way."""
    return np.zeros((1, x2.shape[1]), x2.dtype) if residual is None else rows(residual)


@njit(parallel=True, cache=True, error_model="numpy")
def _no_norm_bwd_rows(x, residual, gamma, gy, gh, part_gamma, part_beta):
    """gh = gy * gamma; chunk k of rows adds its gy * (x + residual) and gy into its partials."""
    n, c = x.shape
    for k in prange(part_gamma.shape[0]):
        pg = part_gamma[k]
        pb = part_beta[k]
        for r in range(k * CHUNK_ROWS, min(n, (k + 1) * CHUNK_ROWS)):
            xr = x[r]
            gr = gy[r]
            o = gh[r]
            rr = residual[r] if residual.shape[0] > 1 else residual[0]
            for j in range(c):
                o[j] = gr[j] * gamma[j]
                pg[j] += gr[j] * (xr[j] + rr[j])
                pb[j] += gr[j]


def no_norm_bwd(x, gamma, residual, gy):
    arrays = [x, gamma, gy] + ([] if residual is None else [residual])
    if (not floats(*arrays) or x.ndim == 0 or gamma.shape != x.shape[-1:]
            or gy.shape != x.shape or (residual is not None and residual.shape != x.shape)):
        return reference.no_norm_bwd(x, gamma, residual, gy)
    x2 = rows(x)
    n, c = x2.shape
    gh = np.empty_like(x2)
    part_gamma, part_beta = partials(n, c, x.dtype), partials(n, c, x.dtype)
    run(_no_norm_bwd_rows, x2.size, x2, _residual_rows(residual, x2),
         np.ascontiguousarray(gamma), rows(gy), gh, part_gamma, part_beta)
    return gh.reshape(x.shape), column_sum(part_gamma), column_sum(part_beta)


# --- stacked matrix products ---------------------------------------------------------------------

# Multiply-adds per slice below which one BLAS thread runs a stacked product. MobileBERT's
# attention (2^19 per slice at 128 tokens) gains; BERT-base's (2^20: 128 x 64 x 128) lost up
# to 1.6x on one thread (P V at batch 8: 2.8 ms vs 1.7 ms), so it keeps OpenBLAS's threads.
_STACKED_ONE_THREAD = 1 << 20


def matmul(a, b):
    """np.matmul, with stacked products of small slices (attention's per-head Q K^T and P V:
    128 x 128 x 32 multiply-adds per slice in MobileBERT) on one BLAS thread, and with b
    made C-contiguous first (a copy of one operand). NumPy makes each slice its own BLAS call,
    too small to split well across threads; on K^T, a transposed view, OpenBLAS woke its
    second thread on every call whatever its thread count, and that thread then spun beside
    this backend's own pool (backends/blas.py has the measurements)."""
    if (a.ndim > 2 or b.ndim > 2) and min(a.ndim, b.ndim) >= 2 \
            and a.shape[-2] * a.shape[-1] * b.shape[-1] < _STACKED_ONE_THREAD:
        with blas_threads(1):
            return np.matmul(a, np.ascontiguousarray(b))
    return np.matmul(a, b)


# --- the backend: every override, listed ---------------------------------------------------------

class NumbaBackend(Backend):
    """NumPy arrays, Numba kernels, and an int8 GEMM whose speed depends on the CPU."""

    def int8_gemm_path(self) -> str | None:
        return numba_int8.fast_path()

    def gemm_threads(self) -> int:
        # Numba's pool size (NUMBA_NUM_THREADS, default: the cores), read as a config value
        # because numba.get_num_threads() costs ~1 us. NumPy's OpenBLAS defaults to the cores
        # too (OPENBLAS_NUM_THREADS); the benchmarks set both.
        return numba.config.NUMBA_NUM_THREADS


numba_backend = NumbaBackend("numba", np, kernels={
    "matmul": matmul,
    "softmax_fwd": softmax_fwd, "softmax_bwd": softmax_bwd,
    "log_softmax_fwd": log_softmax_fwd, "log_softmax_bwd": log_softmax_bwd,
    "cross_entropy_fwd": cross_entropy_fwd, "cross_entropy_bwd": cross_entropy_bwd,
    "layer_norm_fwd": layer_norm_fwd, "layer_norm_bwd": layer_norm_bwd,
    "no_norm_fwd": no_norm_fwd, "no_norm_bwd": no_norm_bwd,
    "gelu_fwd": elementwise.gelu_fwd, "gelu_bwd": elementwise.gelu_bwd,
    "relu_fwd": elementwise.relu_fwd, "relu_bwd": elementwise.relu_bwd,
    "embedding_bwd": elementwise.embedding_bwd,
    "adamw_update": elementwise.adamw_update, "lamb_update": elementwise.lamb_update,
})

# --- int8: the GEMM (LLVM IR micro-kernels per instruction set) and the activation quantizer ---

from backends import numba_int8, numba_quantize  # noqa: E402


def int8_matmul(a, w, a_zero_point=0, a_scale=None, w_scale=None, bias=None):
    """The kernel-table entry: the fastest path this CPU runs (`numba_int8.int8_matmul` takes
    `path=` to force one, for tests and benchmarks)."""
    return numba_int8.int8_matmul(a, w, a_zero_point, a_scale, w_scale, bias)


numba_backend.register("int8_matmul")(int8_matmul)
numba_backend.register("quantize_u8")(numba_quantize.quantize_u8)
numba_backend.register("quantize_u8_static")(numba_quantize.quantize_u8_static)


__all__ = ["numba_backend"]
