"""What the op tests share: the independent plain-NumPy `*_expected` references (which never
call tinybert code) and the backends an op with named kernels runs on.

The tests (one file per op family, as in autograd/ops/) check every differentiable op with the
public kit, autograd.testing: forward against these references, backward by float64
`assert_gradients`, over hypothesis-drawn shapes. Binary ops broadcast on both sides;
reductions run over every axis / keepdims combination; inputs stay away from kinks (relu,
relu6, abs, max ties) and off the domain edges of log, sqrt and pow, and small enough (at most
256 elements) for gradcheck's element-wise mode, except where a shape draw happens to be larger.
"""
from __future__ import annotations

import math

import numpy as np

# Ops built on named kernels (softmax, layer_norm, NoNorm, cross-entropy, GELU, ReLU, embedding)
# are checked on both CPU backends: Numba overrides those kernels. Other ops run the same NumPy
# code on every CPU backend, so their tests use NumPy alone.
KERNEL_BACKENDS = ("numpy", "numba")


# --- independent references --------------------------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu_expected(x, approximate=False):
    if approximate:
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def matmul_expected(a, b):
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    out = np.einsum("...mn,...np->...mp", a2, b2)
    if a.ndim == 1:
        out = out[..., 0, :]
    if b.ndim == 1:
        out = out[..., 0]
    return out


def linear_expected(x, w, b=None):
    y = np.einsum("...i,oi->...o", x, w)
    return y if b is None else y + b


def var_expected(x, axis, keepdims, ddof=0):
    ax = tuple(range(x.ndim)) if axis is None else axis
    ax = (ax,) if isinstance(ax, int) else ax
    n = math.prod(x.shape[a] for a in ax)
    m = x.sum(axis=ax, keepdims=True) / n
    return ((x - m) ** 2).sum(axis=ax, keepdims=keepdims) / (n - ddof)


def softmax_expected(x, axis=-1, scale=1.0, mask=None):
    z = x * scale if mask is None else x * scale + mask
    z = np.ascontiguousarray(np.moveaxis(z, axis, -1))
    out = np.zeros(z.shape)
    rows = z.reshape(-1, z.shape[-1])
    flat = out.reshape(-1, z.shape[-1])
    for i, row in enumerate(rows):
        if np.isneginf(row).all():
            continue                                   # a fully masked row: zeros
        e = np.exp(row - row.max())
        flat[i] = e / e.sum()
    return np.moveaxis(out, -1, axis)


def log_softmax_expected(x, axis=-1):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def layer_norm_expected(x, w=None, b=None, eps=1e-12):
    mu = x.mean(axis=-1, keepdims=True)
    sigma2 = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    y = (x - mu) / np.sqrt(sigma2 + eps)
    return y if w is None else y * w + b


def cross_entropy_expected(logits, target, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0):
    """PyTorch's definition, from a plain log-sum-exp."""
    c = logits.shape[-1]
    m = logits.max(axis=-1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(axis=-1, keepdims=True))
    if target.dtype.kind == "f":
        q = target * (1 - label_smoothing) + label_smoothing / c
        rows = -(q * logp).sum(axis=-1)
        count = rows.size
    else:
        valid = target != ignore_index
        safe = np.where(valid, target, 0)
        nll = -np.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
        uniform = -logp.mean(axis=-1)
        rows = np.where(valid, (1 - label_smoothing) * nll + label_smoothing * uniform, 0.0)
        count = valid.sum()
    if reduction == "none":
        return rows
    if reduction == "sum":
        return rows.sum()
    return rows.sum() / count if count else 0.0


def kl_div_expected(log_q, p, reduction="batchmean"):
    with np.errstate(divide="ignore", invalid="ignore"):
        pointwise = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - log_q), 0.0)
    if reduction == "batchmean":
        return pointwise.sum() / log_q.shape[0]
    return {"sum": pointwise.sum, "mean": pointwise.mean, "none": lambda: pointwise}[reduction]()
