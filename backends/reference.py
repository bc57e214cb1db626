"""xp-generic reference implementations of the named fused kernels.

Each kernel works on raw arrays of any array module (NumPy or CuPy, found from the input's type)
and fills the same contract that a backend override must honour; `tests/backends` checks every
override against these functions, kernel by kernel, forward and backward. Kernels reduce over the
last axis; the ops in `autograd/ops/` move the axis there. Nothing here keeps state.

The signatures, written down once here and followed by every backend's override (a test
compares each override's parameters with these). Forward kernels take the op's arrays, then its
options; backward kernels take what forward saved (in forward's order, then forward's own
results such as `y` or the `(mean, rstd)` cache), then the options, and the upstream gradient
`gy` last:

    matmul(a, b) -> a @ b                          (stacked and broadcasting, as np.matmul)
    softmax_fwd(x, mask, scale) -> y               softmax_bwd(y, scale, gy) -> gx
    log_softmax_fwd(x) -> y                        log_softmax_bwd(y, gy) -> gx
    cross_entropy_fwd(logits, target, ignore_index) -> (loss, lse)
                                   cross_entropy_bwd(logits, lse, target, ignore_index, gy) -> g
    layer_norm_fwd(x, gamma, beta, eps) -> (y, mean, rstd)
                                   layer_norm_bwd(x, gamma, mean, rstd, gy) -> (gx, ggamma, gbeta)
    no_norm_fwd(x, gamma, beta, residual) -> y     no_norm_bwd(x, gamma, residual, gy)
                                                       -> (gx, ggamma, gbeta)
    gelu_fwd(x, approximate) -> y                  gelu_bwd(x, approximate, gy) -> gx
    relu_fwd(x) -> y                               relu_bwd(y, gy) -> gx
    embedding_bwd(ids, num_embeddings, gy) -> gweight   (forward is weight[ids], no kernel)
    dropout_mask(rng, shape, p, dtype) -> mask
    adamw_update(w, g, m, v, lr, beta1, beta2, eps, weight_decay, bias_c1, bias_c2) -> None
    lamb_update(w, g, m, v, lr, beta1, beta2, eps, weight_decay, bias_c1, bias_c2, adapt)
        -> trust ratio
    int8_matmul(a, w, a_zero_point, a_scale, w_scale, bias) -> int32 acc, or float32 when scaled
    quantize_u8(x, qmax, per_row) -> (codes, scale, zero_point)
    quantize_u8_static(x, lo, hi, qmax) -> (codes, scale, zero_point)

A kernel added to `KERNELS` follows the same order; its parity test and this signature check
come with it.

Contract notes that overrides must keep:
- Inputs are never modified, except the optimizer updates, which update `w`, `m`, `v` in place.
- Gradient outputs are freshly allocated (the autograd engine may hand the same array to two
  inputs, so nobody may write into an incoming gradient).
- float32 and float64 both work; the output dtype is the input dtype.
- Index arrays (embedding ids, class targets other than ignore_index) are in range: the op
  that calls the kernel checked them once (`autograd/ops/nn.py`), and kernels do not re-check.

References: llm.c doc/layernorm (the fused layer-norm backward with a (mean, rstd) cache),
MobileBERT spec sections 2.1-2.3 and 6 (NoNorm, GELU forms, LAMB/AdamW without bias correction).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from backends.int8 import check_matmul_args, quantize_params
from backends.special import erf


def array_module(x: Any) -> Any:
    """numpy or cupy, whichever owns `x` (cupy is only imported when handed a cupy array)."""
    if type(x).__module__.split(".")[0] == "cupy":
        import cupy
        return cupy
    return np


# --- softmax over the last axis, with the attention scale and additive mask fused ----------------

def matmul(a, b):
    """a @ b with NumPy's semantics (stacked, broadcasting): the array module's BLAS."""
    return array_module(a).matmul(a, b)


def softmax_fwd(x, mask=None, scale: float = 1.0):
    """y = softmax(x * scale + mask) over the last axis. A row masked entirely to -inf gives 0s."""
    xp = array_module(x)
    z = x * scale if scale != 1.0 else x.copy()
    if mask is not None:
        z += mask
    m = z.max(axis=-1, keepdims=True)
    m[~xp.isfinite(m)] = 0                      # all -inf rows: exp(-inf - 0) = 0, not nan
    z -= m
    xp.exp(z, out=z)
    s = z.sum(axis=-1, keepdims=True)
    s[s == 0] = 1                               # only the all-masked rows sum to 0
    z /= s
    return z


def softmax_bwd(y, scale: float, gy):
    """dL/dx for y = softmax(x * scale + mask): scale * y * (gy - sum(y * gy))."""
    s = (y * gy).sum(axis=-1, keepdims=True)
    gx = gy - s
    gx *= y
    if scale != 1.0:
        gx *= scale
    return gx


def log_softmax_fwd(x):
    """y = x - logsumexp(x) over the last axis, shifted by the row max so 1e4 logits stay finite."""
    xp = array_module(x)
    m = x.max(axis=-1, keepdims=True)
    m[~xp.isfinite(m)] = 0
    z = x - m
    lse = xp.log(xp.exp(z).sum(axis=-1, keepdims=True))
    z -= lse
    return z


def log_softmax_bwd(y, gy):
    """dL/dx for y = log_softmax(x): gy - softmax(x) * sum(gy)."""
    xp = array_module(y)
    return gy - xp.exp(y) * gy.sum(axis=-1, keepdims=True)


# --- cross-entropy on (N, C) logits with integer targets, fused with log_softmax -----------------

def cross_entropy_fwd(logits, target, ignore_index: int = -100):
    """Per-row loss (0 where target == ignore_index) and the row logsumexp that backward reuses.

    Saving the (N,) logsumexp instead of the (N, C) probabilities is llm.c's trade: backward
    recomputes one exp over the logits rather than keeping a vocab-sized copy alive.
    """
    xp = array_module(logits)
    n = logits.shape[0]
    m = logits.max(axis=-1)
    lse = xp.log(xp.exp(logits - m[:, None]).sum(axis=-1)) + m
    valid = target != ignore_index
    picked = logits[xp.arange(n), xp.where(valid, target, 0)]
    loss = xp.where(valid, lse - picked, 0).astype(logits.dtype, copy=False)
    return loss, lse


def cross_entropy_bwd(logits, lse, target, ignore_index: int, gy):
    """dL/dlogits = gy[row] * (softmax(logits) - onehot(target)), zero on ignored rows; `gy` is
    the (N,) gradient of the per-row losses."""
    xp = array_module(logits)
    valid = target != ignore_index
    g = xp.where(valid, gy, 0).astype(logits.dtype, copy=False)
    p = xp.exp(logits - lse[:, None])
    p *= g[:, None]
    rows = xp.arange(logits.shape[0])[valid]
    p[rows, target[valid]] -= g[valid]
    return p


# --- normalisations ------------------------------------------------------------------------------

def layer_norm_fwd(x, gamma, beta, eps: float):
    """y = (x - mean) * rstd * gamma + beta over the last axis; returns (y, mean, rstd).

    gamma and beta may be None: the parameter-free layer norm of Google's feature-map transfer.
    """
    xp = array_module(x)
    mean = x.mean(axis=-1, keepdims=True)
    xc = x - mean
    var = (xc * xc).mean(axis=-1, keepdims=True)
    rstd = 1.0 / xp.sqrt(var + eps)
    xc *= rstd
    if gamma is not None:
        xc *= gamma
    if beta is not None:
        xc += beta
    return xc, mean, rstd


def layer_norm_bwd(x, gamma, mean, rstd, gy):
    """Gradients (gx, ggamma, gbeta) of layer_norm, recomputing xhat from the (mean, rstd) cache.

    gx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = gy * gamma (llm.c's derivation).
    """
    xhat = (x - mean) * rstd
    c = x.shape[-1]
    ggamma = (gy * xhat).reshape(-1, c).sum(axis=0) if gamma is not None else None
    gbeta = gy.reshape(-1, c).sum(axis=0) if gamma is not None else None
    g = gy * gamma if gamma is not None else gy
    gx = g - g.mean(axis=-1, keepdims=True)
    gx -= xhat * (g * xhat).mean(axis=-1, keepdims=True)
    gx *= rstd
    return gx, ggamma, gbeta


def no_norm_fwd(x, gamma, beta, residual=None):
    """MobileBERT's NoNorm fused with the residual add before it: (x + residual) * gamma + beta."""
    h = x + residual if residual is not None else x.copy()
    h *= gamma
    h += beta
    return h


def no_norm_bwd(x, gamma, residual, gy):
    """(gh, ggamma, gbeta) of no_norm; gh is the gradient of both x and the residual."""
    c = x.shape[-1]
    h = x + residual if residual is not None else x
    ggamma = (gy * h).reshape(-1, c).sum(axis=0)
    gbeta = gy.reshape(-1, c).sum(axis=0)
    return gy * gamma, ggamma, gbeta


# --- activations ---------------------------------------------------------------------------------

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def gelu_fwd(x, approximate: bool = False):
    """Exact x * Phi(x) (Hugging Face's "gelu"), or Google's tanh approximation."""
    xp = array_module(x)
    if approximate:
        return 0.5 * x * (1.0 + xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))
    return 0.5 * x * (1.0 + erf(x * _INV_SQRT_2, xp))


def gelu_bwd(x, approximate: bool, gy):
    """dL/dx of gelu: Phi(x) + x * phi(x) (exact), or the derivative of the tanh form."""
    xp = array_module(x)
    if approximate:
        x2 = x * x
        t = xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x2 * x))
        d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x2)
    else:
        d = 0.5 * (1.0 + erf(x * _INV_SQRT_2, xp)) + x * _INV_SQRT_2PI * xp.exp(-0.5 * x * x)
    return gy * d


def relu_fwd(x):
    """max(x, 0)."""
    xp = array_module(x)
    return xp.maximum(x, 0)


def relu_bwd(y, gy):
    """gy where the output is positive (the derivative at 0 is taken as 0)."""
    return gy * (y > 0)


# --- embedding, dropout --------------------------------------------------------------------------

def embedding_bwd(ids, num_embeddings: int, gy):
    """Scatter-add of the output gradient rows into a (num_embeddings, D) table gradient."""
    xp = array_module(gy)
    d = gy.shape[-1]
    gw = xp.zeros((num_embeddings, d), dtype=gy.dtype)
    xp.add.at(gw, ids.reshape(-1), gy.reshape(-1, d))
    return gw


def dropout_mask(rng, shape: tuple, p: float, dtype):
    """Inverted-dropout multiplier: 0 with probability p, else 1 / (1 - p)."""
    keep = rng.random(shape, dtype=np.float32) >= p
    mask = keep.astype(dtype)
    mask *= 1.0 / (1.0 - p)
    return mask


# --- optimizer updates (MobileBERT spec section 6), in place on w, m, v -------------------------

def _adam_direction(w, g, m, v, beta1, beta2, eps, weight_decay, bias_c1, bias_c2):
    xp = array_module(w)
    m *= beta1
    m += (1.0 - beta1) * g
    v *= beta2
    v += (1.0 - beta2) * (g * g)
    u = m / bias_c1 if bias_c1 != 1.0 else m.copy()
    u /= xp.sqrt(v / bias_c2 if bias_c2 != 1.0 else v) + eps
    if weight_decay:
        u += weight_decay * w
    return u


def adamw_update(w, g, m, v, lr: float, beta1: float, beta2: float, eps: float,
                 weight_decay: float, bias_c1: float = 1.0, bias_c2: float = 1.0) -> None:
    """w -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * w); bias_c = 1 - beta^t or 1."""
    w -= lr * _adam_direction(w, g, m, v, beta1, beta2, eps, weight_decay, bias_c1, bias_c2)


def lamb_update(w, g, m, v, lr: float, beta1: float, beta2: float, eps: float,
                weight_decay: float, bias_c1: float = 1.0, bias_c2: float = 1.0,
                adapt: bool = True) -> float:
    """AdamW's direction u scaled by the trust ratio ||w|| / ||u|| (1 when adapt is off or a norm
    is 0); returns the ratio used."""
    xp = array_module(w)
    u = _adam_direction(w, g, m, v, beta1, beta2, eps, weight_decay, bias_c1, bias_c2)
    ratio = 1.0
    if adapt:
        w_norm = float(xp.linalg.norm(w.reshape(-1)))
        u_norm = float(xp.linalg.norm(u.reshape(-1)))
        if w_norm > 0 and u_norm > 0:
            ratio = w_norm / u_norm
    w -= (lr * ratio) * u
    return ratio


# --- int8 GEMM (the exact integer semantics; the contract is in backends/int8.py) ---------------

def int8_matmul(a, w, a_zero_point=0, a_scale=None, w_scale=None, bias=None):
    """Exact (a - a_zero_point) @ W^T of uint8 activations (..., K) and packed int8 weights,
    as int32 (..., N); with a_scale and w_scale, the dequantized float32
    acc * (a_scale * w_scale) + bias.

    Written in the kernels' offset form: a @ W^T - a_zero_point * col_sums(W). The product
    runs as a float64 BLAS GEMM, which is exact here: every product and every partial sum is
    an integer of magnitude at most 255 * 128 * K <= 2**31 (K <= MAX_K), far inside float64's
    2**53 of exact integers, whatever order BLAS adds them in. (NumPy's int64 matmul would be
    as exact, at ~3 GOP/s: it has no integer BLAS.)
    """
    xp = array_module(a)
    args = check_matmul_args(a, w, a_zero_point, a_scale, w_scale, bias, xp)
    n = w.out_features
    weight = xp.asarray(w.unpack()).astype(xp.float64)                # (N, K)
    col_sums = xp.asarray(w.col_sums[:n]).astype(xp.int64)            # (N,)
    acc = (args.a.astype(xp.float64) @ weight.T).astype(xp.int64)     # (M, N), exact
    acc -= args.zero_point.astype(xp.int64)[:, None] * col_sums[None, :]
    acc = acc.astype(xp.int32)
    if args.a_scale is None:
        return acc.reshape(args.out_shape)
    y = acc.astype(xp.float32)
    y *= args.a_scale[:, None] * args.w_scale[None, :]                # float32 products
    if args.bias is not None:
        y += args.bias
    return y.reshape(args.out_shape)


def _activation_max(qmax: int | None) -> int:
    """qmax=None asks for the backend's choice: the reference's exact GEMM takes all 8 bits."""
    return 255 if qmax is None else qmax


def quantize_u8(x, qmax: int | None = None, per_row: bool = False):
    """Dynamic asymmetric quantization of float activations (..., K) to uint8 codes 0..qmax:
    returns (codes, scale, zero_point) with x ~ (codes - zero_point) * scale, the range taken
    over the whole tensor (scale and zero_point 0-d) or over each row (shaped like x[..., 0]).
    qmax=None: the largest code the backend's `int8_matmul` takes at full speed (255 here)."""
    xp = array_module(x)
    qmax = _activation_max(qmax)
    rows = x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)
    if per_row:
        scale, zero_point = quantize_params(rows.min(axis=1), rows.max(axis=1), qmax, xp)
    else:
        scale, zero_point = quantize_params(rows.min(), rows.max(), qmax, xp)
    s, z = (scale[:, None], zero_point[:, None]) if per_row else (scale, zero_point)
    codes = _codes(rows, s, z, qmax, xp)
    lead = x.shape[:-1] if x.ndim else ()
    return (codes.reshape(x.shape), scale.reshape(lead) if per_row else scale,
            zero_point.reshape(lead) if per_row else zero_point)


def quantize_u8_static(x, lo: float, hi: float, qmax: int | None = None):
    """Static quantization: the codes of x in a FIXED range [lo, hi] (calibrated beforehand),
    per tensor; values outside the range clip to 0 or qmax. Returns (codes, scale, zero_point)
    as `quantize_u8` does, scale and zero_point from the same `quantize_params`, so a range
    equal to x's own min and max gives exactly `quantize_u8`'s codes. An inf or nan in x is an
    error here too (a model that produces one is broken, whatever the range says)."""
    xp = array_module(x)
    qmax = _activation_max(qmax)
    scale, zero_point = quantize_params(lo, hi, qmax, xp)
    if not bool(xp.isfinite(x).all()):
        raise ValueError("quantize_u8_static: x holds inf or nan")
    rows = x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)
    return _codes(rows, scale, zero_point, qmax, xp).reshape(x.shape), scale, zero_point


def _codes(rows, scale, zero_point, qmax: int, xp):
    """clip(rint(x / scale) + zero_point, 0, qmax) as uint8, in float32 throughout."""
    codes = xp.rint(rows.astype(xp.float32, copy=False) / scale)
    codes += xp.asarray(zero_point).astype(xp.float32)
    xp.clip(codes, 0, qmax, out=codes)
    return codes.astype(xp.uint8)


KERNELS = {
    "matmul": matmul,
    "softmax_fwd": softmax_fwd, "softmax_bwd": softmax_bwd,
    "log_softmax_fwd": log_softmax_fwd, "log_softmax_bwd": log_softmax_bwd,
    "cross_entropy_fwd": cross_entropy_fwd, "cross_entropy_bwd": cross_entropy_bwd,
    "layer_norm_fwd": layer_norm_fwd, "layer_norm_bwd": layer_norm_bwd,
    "no_norm_fwd": no_norm_fwd, "no_norm_bwd": no_norm_bwd,
    "gelu_fwd": gelu_fwd, "gelu_bwd": gelu_bwd,
    "relu_fwd": relu_fwd, "relu_bwd": relu_bwd,
    "embedding_bwd": embedding_bwd, "dropout_mask": dropout_mask,
    "adamw_update": adamw_update, "lamb_update": lamb_update,
    "int8_matmul": int8_matmul, "quantize_u8": quantize_u8,
    "quantize_u8_static": quantize_u8_static,
}
