"""Numba kernels over flat element ranges: GELU and ReLU, the embedding gradient's scatter-add
and the in-place AdamW / LAMB updates.

Same shape as the row kernels in `numba_backend.py` (whose docstring has the design choices and
lists every override in the backend's table): `_<name>_rows` is a module-level
`@njit(parallel=True, cache=True)` kernel that fills preallocated outputs, and `<name>` the
wrapper that checks its inputs, falls back to the reference for anything it does not handle,
allocates and calls it.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from backends import reference
from backends.numba_math import erf, exp, row_dot
from backends.numba_support import CHUNK_ELEMS, floats, rows, run

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
            y[i] = v / (one + exp(-(u + u)))
        else:
            y[i] = half * v * (one + dt(erf(np.float64(v * inv_sqrt2))))


def gelu_fwd(x, approximate: bool = False):
    if not floats(x):
        return reference.gelu_fwd(x, approximate)
    x1 = np.ascontiguousarray(x).reshape(-1)
    y = np.empty_like(x1)
    run(_gelu_fwd_rows, x1.size, x1, bool(approximate), y)
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
            e = exp(-(u + u))
            s = one / (one + e)
            rest = e * s if e < np.inf else one          # 1 - s, without inf * 0
            d = s + two * v * s * rest * k * (one + a3 * x2)
        else:
            d = (half * (one + dt(erf(np.float64(v * inv_sqrt2))))
                 + v * inv_sqrt2pi * exp(-half * v * v))
        gx[i] = gy[i] * d


def gelu_bwd(x, approximate: bool, gy):
    if not floats(x, gy) or x.shape != gy.shape:
        return reference.gelu_bwd(x, approximate, gy)
    x1 = np.ascontiguousarray(x).reshape(-1)
    gx = np.empty_like(x1)
    run(_gelu_bwd_rows, x1.size, x1, np.ascontiguousarray(gy).reshape(-1), bool(approximate),
         gx)
    return gx.reshape(x.shape)


@njit(parallel=True, cache=True, error_model="numpy")
def _relu_fwd_rows(x, y):
    """max(x, 0); nan stays nan, as with np.maximum."""
    zero = x.dtype.type(0)
    for i in prange(x.shape[0]):
        v = x[i]
        y[i] = zero if v <= zero else v


def relu_fwd(x):
    if not floats(x):
        return reference.relu_fwd(x)
    x1 = np.ascontiguousarray(x).reshape(-1)
    y = np.empty_like(x1)
    run(_relu_fwd_rows, x1.size, x1, y)
    return y.reshape(x.shape)


@njit(parallel=True, cache=True, error_model="numpy")
def _relu_bwd_rows(y, gy, gx):
    """gy * (y > 0), a multiplication as in the reference (so inf * 0 is nan there too)."""
    zero, one = y.dtype.type(0), y.dtype.type(1)
    for i in prange(y.shape[0]):
        gx[i] = gy[i] * (one if y[i] > zero else zero)


def relu_bwd(y, gy):
    if not floats(y, gy) or y.shape != gy.shape:
        return reference.relu_bwd(y, gy)
    y1 = np.ascontiguousarray(y).reshape(-1)
    gx = np.empty_like(y1)
    run(_relu_bwd_rows, y1.size, y1, np.ascontiguousarray(gy).reshape(-1), gx)
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


def embedding_bwd(ids, num_embeddings: int, gy):
    if (not floats(gy) or not isinstance(ids, np.ndarray) or ids.dtype.kind not in "iu"
            or gy.ndim == 0 or ids.size * gy.shape[-1] != gy.size):
        return reference.embedding_bwd(ids, num_embeddings, gy)
    gy2 = rows(gy)
    d = gy2.shape[1]
    # Column blocks of at least 16 values (one 64-byte line of float32), one per thread.
    width = max(16, -(-d // numba.get_num_threads()))
    gw = np.zeros((num_embeddings, d), gy.dtype)
    flat_ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    run(_embedding_bwd_rows, gy2.size, flat_ids, gy2, width, gw)
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
    if not floats(w, g, m, v) or not (w.shape == g.shape == m.shape == v.shape):
        return None
    if not all(a.flags.c_contiguous and a.flags.writeable for a in (w, m, v)):
        return None
    return w.reshape(-1), np.ascontiguousarray(g).reshape(-1), m.reshape(-1), v.reshape(-1)


def _scalars(dt, lr, beta1, beta2, eps, weight_decay, bias_c1, bias_c2) -> tuple:
    """The hyper-parameters in the arrays' dtype, as NumPy rounds Python floats in `w -= lr * u`."""
    return (dt.type(lr), dt.type(beta1), dt.type(beta2), dt.type(eps), dt.type(weight_decay),
            dt.type(bias_c1), dt.type(bias_c2), dt.type(1.0 - beta1), dt.type(1.0 - beta2))


def adamw_update(w, g, m, v, lr: float, beta1: float, beta2: float, eps: float,
                 weight_decay: float, bias_c1: float = 1.0, bias_c2: float = 1.0) -> None:
    flat = _flat_in_place(w, g, m, v)
    if flat is None:
        return reference.adamw_update(w, g, m, v, lr, beta1, beta2, eps, weight_decay,
                                      bias_c1, bias_c2)
    run(_adamw_update_rows, w.size, *flat,
         *_scalars(w.dtype, lr, beta1, beta2, eps, weight_decay, bias_c1, bias_c2))
    return None


@njit(parallel=True, cache=True, error_model="numpy")
def _lamb_moments_rows(w, g, m, v, b1, b2, eps, wd, c1, c2, one_b1, one_b2, w_sq, u_sq):
    """Pass 1: update m, v; chunk k writes sum(w^2) and sum(u^2) of its elements."""
    for k in prange(w_sq.shape[0]):
        lo = k * CHUNK_ELEMS
        wk = w[lo:lo + CHUNK_ELEMS]       # slices: plain 0..len indices vectorise
        gk = g[lo:lo + CHUNK_ELEMS]
        mk = m[lo:lo + CHUNK_ELEMS]
        vk = v[lo:lo + CHUNK_ELEMS]
        u = np.empty(wk.shape[0], w.dtype)
        for i in range(wk.shape[0]):
            u[i] = _adam_u(wk, gk, mk, vk, i, b1, b2, c1, c2, eps, wd, one_b1, one_b2)
        w_sq[k] = row_dot(wk, wk)
        u_sq[k] = row_dot(u, u)


@njit(parallel=True, cache=True, error_model="numpy")
def _lamb_apply_rows(w, m, v, step, eps, wd, c1, c2):
    """Pass 2: w -= step * u, u recomputed from the new m, v (the same bits as in pass 1)."""
    for i in prange(w.shape[0]):
        w[i] -= step * _direction(w, m[i], v[i], i, c1, c2, eps, wd)


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
        run(_adamw_update_rows, w.size, *flat, lr_, b1, b2, eps_, wd, c1, c2, one_b1, one_b2)
        return 1.0
    wf, gf, mf, vf = flat
    chunks = -(-wf.shape[0] // CHUNK_ELEMS)
    w_sq, u_sq = np.empty(chunks), np.empty(chunks)
    run(_lamb_moments_rows, wf.size, wf, gf, mf, vf, b1, b2, eps_, wd, c1, c2, one_b1, one_b2,
         w_sq, u_sq)
    w_norm, u_norm = math.sqrt(w_sq.sum()), math.sqrt(u_sq.sum())
    ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
    run(_lamb_apply_rows, wf.size, wf, mf, vf, w.dtype.type(lr * ratio), eps_, wd, c1, c2)
    return ratio
