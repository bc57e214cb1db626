"""The public op set: `import autograd.functional as F`.

Each wrapper carries the docstring and the formula; the differentiable work happens in one
`Function` per primitive op in `autograd/ops/`. The composite ops here (var, stack, split,
masked_fill, dropout, kl_div and kl_from_logits, mse_loss, soft-target and label-smoothed
cross-entropy) have no backward of their own: autograd differentiates their primitives.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from autograd.ops import elementwise as E
from autograd.ops import matmul as M
from autograd.ops import movement as V
from autograd.ops import nn as N
from autograd.ops import quantize as Q
from autograd.ops import reduce as R
from autograd.ops.reduce import normalize_axes
from autograd.tensor import Tensor, as_tensor

# --- element-wise --------------------------------------------------------------------------------


def add(a: Any, b: Any) -> Tensor:
    """a + b with NumPy broadcasting."""
    return as_tensor(a) + b


def sub(a: Any, b: Any) -> Tensor:
    """a - b with NumPy broadcasting."""
    return as_tensor(a) - b


def mul(a: Any, b: Any) -> Tensor:
    """a * b with NumPy broadcasting."""
    return as_tensor(a) * b


def div(a: Any, b: Any) -> Tensor:
    """a / b with NumPy broadcasting."""
    return as_tensor(a) / b


def pow(a: Any, b: Any) -> Tensor:  # noqa: A001 - the name users expect
    """a ** b; a constant exponent differentiates without log(a)."""
    return as_tensor(a) ** b


def exp(x: Tensor) -> Tensor:
    """e ** x."""
    return E.Exp.apply(x)


def log(x: Tensor) -> Tensor:
    """Natural logarithm; d/dx = 1 / x."""
    return E.Log.apply(x)


def sqrt(x: Tensor) -> Tensor:
    """x ** 0.5; d/dx = 1 / (2 sqrt(x))."""
    return E.Sqrt.apply(x)


def abs(x: Tensor) -> Tensor:  # noqa: A001
    """|x|; the derivative at 0 is taken as 0."""
    return E.Abs.apply(x)


def tanh(x: Tensor) -> Tensor:
    """tanh(x); d/dx = 1 - tanh(x)^2."""
    return E.Tanh.apply(x)


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + e^-x), computed without overflow for large |x|."""
    return E.Sigmoid.apply(x)


def relu(x: Tensor) -> Tensor:
    """max(x, 0): MobileBERT's activation (the "OPT" replacement for GELU)."""
    return E.Relu.apply(x)


def relu6(x: Tensor) -> Tensor:
    """min(max(x, 0), 6): the activation of MobileBERT's quantization-aware config."""
    return E.Relu6.apply(x)


def gelu(x: Tensor, approximate: bool = False) -> Tensor:
    """x * Phi(x) with the exact erf (Hugging Face's "gelu"), or with `approximate=True` Google's
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return N.Gelu.apply(x, approximate=approximate)


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """Element-wise cond ? a : b (all three broadcast); `cond` is a constant boolean mask."""
    a_is_t = isinstance(a, Tensor)
    ref = a if a_is_t else as_tensor(b)
    a, b = ref._lift(a), ref._lift(b)
    if a.dtype != b.dtype and a.dtype.kind == "f" and b.dtype.kind != "f":
        b = b.astype(a.dtype)
    elif a.dtype != b.dtype and b.dtype.kind == "f" and a.dtype.kind != "f":
        a = a.astype(b.dtype)
    cond = cond.data if isinstance(cond, Tensor) else ref.backend.asarray(cond)
    if cond.dtype != np.bool_:
        raise TypeError(f"where: cond must be a boolean mask, got {cond.dtype}")
    return E.Where.apply(a, b, cond=cond)


def masked_fill(x: Tensor, mask: Any, value: float) -> Tensor:
    """x with `value` wherever the boolean `mask` (broadcast against x) is True."""
    return where(mask, x._lift(value), x)


# --- matrix products -----------------------------------------------------------------------------


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """NumPy's matmul: batched, broadcasting over leading axes; 1-d operands are promoted to
    a row (a) or column (b) vector and the added axis is removed from the result."""
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: operands must have at least one dimension; use * for scalars")
    squeeze_a, squeeze_b = a.ndim == 1, b.ndim == 1
    if squeeze_a:
        a = a.reshape(1, a.shape[0])
    if squeeze_b:
        b = b.reshape(b.shape[0], 1)
    y = M.MatMul.apply(a, b)
    if squeeze_a or squeeze_b:
        shape = y.shape[:-2] + (() if squeeze_a else y.shape[-2:-1]) + (
            () if squeeze_b else y.shape[-1:])
        y = y.reshape(shape)
    return y


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x W^T + b, with W stored (out_features, in_features); one GEMM over all leading axes."""
    return M.Linear.apply(x, weight) if bias is None else M.Linear.apply(x, weight, bias)


# --- reductions ----------------------------------------------------------------------------------


def sum(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over `axis` (None: all; int or tuple)."""
    return R.Sum.apply(x, axis=axis, keepdims=keepdims)


def mean(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Arithmetic mean over `axis`."""
    return R.Mean.apply(x, axis=axis, keepdims=keepdims)


def max(x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Maximum over `axis`; tied maxima share the gradient equally."""
    return R.Max.apply(x, axis=axis, keepdims=keepdims)


def var(x: Tensor, axis: Any = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Variance sum((x - mean)^2) / (n - ddof) over `axis` (population variance by default)."""
    axes = normalize_axes(axis, x.ndim)
    n = 1
    for a in axes:
        n *= x.shape[a]
    if n - ddof <= 0:
        raise ValueError(f"var: {n} elements with ddof={ddof} leave no degrees of freedom")
    centred = x - R.Mean.apply(x, axis=axes, keepdims=True)
    return R.Sum.apply(centred * centred, axis=axes, keepdims=keepdims) * (1.0 / (n - ddof))


# --- movement ------------------------------------------------------------------------------------


def reshape(x: Tensor, shape: Sequence[int]) -> Tensor:
    """The same values in a new shape (one entry may be -1)."""
    return V.Reshape.apply(x, shape=tuple(shape))


def permute(x: Tensor, axes: Sequence[int]) -> Tensor:
    """Reorder the axes: result axis i is input axis axes[i]."""
    return V.Permute.apply(x, axes=tuple(axes))


def transpose(x: Tensor, axis1: int = -2, axis2: int = -1) -> Tensor:
    """Swap two axes (the last two by default)."""
    return x.transpose(axis1, axis2)


def concat(xs: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    if not xs:
        raise ValueError("concat: needs at least one tensor")
    return V.Concat.apply(*[as_tensor(x) for x in xs], axis=axis)


def stack(xs: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join same-shape tensors along a new axis."""
    if not xs:
        raise ValueError("stack: needs at least one tensor")
    xs = [as_tensor(x) for x in xs]
    shape = xs[0].shape
    for i, x in enumerate(xs):
        if x.shape != shape:
            raise ValueError(f"stack: tensor {i} has shape {x.shape}, tensor 0 has {shape}")
    ndim = len(shape) + 1
    if not -ndim <= axis < ndim:
        raise ValueError(f"stack: axis {axis} is out of range for {ndim}-d output")
    axis %= ndim
    new_shape = shape[:axis] + (1,) + shape[axis:]
    return concat([x.reshape(new_shape) for x in xs], axis=axis)


def split(x: Tensor, sections: int | Sequence[int], axis: int = 0) -> list[Tensor]:
    """Split along `axis` into `sections` equal parts, or into parts of the listed sizes."""
    n = x.shape[axis]
    if isinstance(sections, int):
        if sections <= 0 or n % sections:
            raise ValueError(f"split: axis of size {n} does not divide into {sections} parts")
        sizes = [n // sections] * sections
    else:
        sizes = list(sections)
        if builtin_sum(sizes) != n or builtin_min(sizes, default=0) < 0:
            raise ValueError(f"split: sizes {sizes} do not add up to the axis size {n}")
    parts, start = [], 0
    index = [slice(None)] * x.ndim
    for size in sizes:
        index[axis] = slice(start, start + size)
        parts.append(x[tuple(index)])
        start += size
    return parts


def pad(x: Tensor, pad_width: Sequence[Sequence[int]], value: float = 0.0) -> Tensor:
    """Constant padding; `pad_width` is NumPy's: one (before, after) pair per axis."""
    return V.Pad.apply(x, pad_width=tuple(tuple(p) for p in pad_width), value=value)


# --- neural-network ops --------------------------------------------------------------------------


def softmax(x: Tensor, axis: int = -1, scale: float = 1.0, mask: Any = None) -> Tensor:
    """softmax(x * scale + mask) along `axis`: exp(z - max z) / sum exp(z - max z).

    `mask` is an additive constant broadcast against x (0 to keep, a large negative value or
    -inf to drop) — attention's scale and padding mask fused into one pass. Rows masked entirely
    give zeros, not NaN.
    """
    m = mask.data if isinstance(mask, Tensor) else mask
    return N.Softmax.apply(x, axis=axis, scale=scale, mask=m)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """x - logsumexp(x) along `axis`, stable for logits of any magnitude."""
    return N.LogSoftmax.apply(x, axis=axis)


def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-12) -> Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias over the last axis (weight/bias optional)."""
    if (weight is None) != (bias is None):
        raise ValueError("layer_norm: give both weight and bias, or neither")
    if weight is None:
        return N.LayerNorm.apply(x, eps=eps)
    return N.LayerNorm.apply(x, weight, bias, eps=eps)


def no_norm(x: Tensor, weight: Tensor, bias: Tensor, residual: Tensor | None = None) -> Tensor:
    """MobileBERT's NoNorm: (x + residual) * weight + bias, element-wise over the last axis."""
    if residual is None:
        return N.NoNorm.apply(x, weight, bias)
    return N.NoNorm.apply(x, weight, bias, residual)


def dropout(x: Tensor, p: float, training: bool = True, generator: Any = None) -> Tensor:
    """Inverted dropout: zero each element with probability p, scale the rest by 1 / (1 - p).

    `generator` is the backend's random generator (`backend.rng(seed)`); pass one for
    reproducible masks. Identity when not training or p == 0.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    rng = generator if generator is not None else x.backend.rng()
    mask = x.backend.kernel("dropout_mask")(rng, x.shape, p, x.dtype)
    return N.Dropout.apply(x, mask=mask)


def embedding(ids: Any, weight: Tensor, name: str = "ids", padding_idx: int | None = None
              ) -> Tensor:
    """Rows of `weight` (num_embeddings, dim) picked by integer `ids`; repeated ids accumulate.

    ids outside [0, num_embeddings) raise ValueError naming them `name`. The lookup sends no
    gradient to row `padding_idx` (torch's `padding_idx`: padding tokens do not train it)."""
    ids = ids.data if isinstance(ids, Tensor) else weight.backend.asarray(ids)
    return N.Embedding.apply(weight, ids=ids, name=name, padding_idx=padding_idx)


def fake_quantize(x: Tensor, scale: Any, zero_point: Any, qmin: int, qmax: int) -> Tensor:
    """(clip(rint(x / scale) + zero_point, qmin, qmax) - zero_point) * scale: x rounded to the
    values an int8 model computes with, in its operation order (autograd/ops/quantize.py).
    `scale` (> 0) and `zero_point` are constants broadcast against x (per tensor, per row, per
    channel). Backward is the straight-through estimator: gradient 1 where the code
    rint(x / scale) + zero_point lies in [qmin, qmax], 0 where it was clipped."""
    def raw(a: Any) -> Any:
        return x.backend.asarray(a.data if isinstance(a, Tensor) else a)
    return Q.FakeQuantize.apply(x, scale=raw(scale), zero_point=raw(zero_point),
                                qmin=int(qmin), qmax=int(qmax))


def cross_entropy(logits: Tensor, target: Any, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """-log softmax(logits)[target] over the last axis of (..., C) logits.

    `target` is either integer classes of shape (...) — rows equal to `ignore_index` count
    nowhere, and "mean" divides by the rows that remain — or soft targets of logits' shape
    (probabilities, e.g. a teacher's). `label_smoothing` eps mixes eps / C into every class.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be mean, sum or none, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    c = logits.shape[-1]
    lead = logits.shape[:-1]
    target_t = target if isinstance(target, Tensor) else None
    t = target.data if target_t is not None else logits.backend.asarray(target)
    if t.dtype.kind == "f":
        if t.shape != logits.shape:
            raise ValueError(f"cross_entropy: soft targets must have the logits' shape "
                             f"{logits.shape}, got {t.shape}")
        soft = target_t if target_t is not None else logits._lift(t)
        if label_smoothing != 0.0:
            soft = soft * (1.0 - label_smoothing) + label_smoothing / c
        return _reduce(-_xlogy(soft, log_softmax(logits)).sum(axis=-1), reduction)
    if t.shape != lead:
        raise ValueError(f"cross_entropy: class targets must have shape {lead} for logits "
                         f"{logits.shape}, got {t.shape}")
    flat = logits.reshape(-1, c)
    t_flat = t.reshape(-1)
    if label_smoothing == 0.0:
        out = N.CrossEntropy.apply(flat, target=t_flat, ignore_index=ignore_index,
                                   reduction=reduction)
        return out.reshape(lead) if reduction == "none" else out
    # (1 - eps) * nll + eps * mean over classes of -log p, on the rows that are not ignored.
    nll = N.CrossEntropy.apply(flat, target=t_flat, ignore_index=ignore_index,
                               reduction="none")
    valid = t_flat != ignore_index
    # where, not a 0/1 product: an ignored row may hold -inf logits, and inf * 0 is nan.
    smooth = where(valid, -log_softmax(flat).mean(axis=-1), 0.0)
    rows = nll * (1.0 - label_smoothing) + smooth * label_smoothing
    if reduction == "none":
        return rows.reshape(lead)
    total = rows.sum()
    return total if reduction == "sum" else total * (1.0 / builtin_max(int(valid.sum()), 1))


def kl_div(log_q: Tensor, p: Any, reduction: str = "batchmean") -> Tensor:
    """KL(p || q) = sum p (log p - log q) from log-probabilities `log_q` and probabilities `p`
    (PyTorch's argument order); 0 log 0 is taken as 0. reduction: batchmean (sum / first axis),
    sum, mean (over elements) or none."""
    p = log_q._lift(p)
    positive = p.data > 0
    safe_p = where(positive, p, 1.0)
    pointwise = where(positive, p * log(safe_p), 0.0) - _xlogy(p, log_q)
    if reduction == "batchmean":
        return pointwise.sum() * (1.0 / (log_q.shape[0] if log_q.ndim else 1))
    return _reduce(pointwise, reduction)


def kl_from_logits(logits: Tensor, target_logits: Any, axis: int = -1) -> Tensor:
    """Mean over rows of KL(softmax(target_logits) || softmax(logits)) along `axis`.

    The distillation divergence between a teacher's scores (`target_logits`) and a student's:
    MobileBERT's attention transfer on attention scores, and the KD term of pre-training
    distillation on MLM logits. It is `kl_div` of the two softmaxes (one KL in the code base);
    a row is every position of the other axes. Pass a detached target for a teacher that must
    not be trained. Target entries at -inf or a large negative mask value get probability 0,
    and 0 log 0 counts as 0, so masked keys add nothing.
    """
    target = as_tensor(target_logits, device=logits.backend)
    if target.shape != logits.shape:
        raise ValueError(f"kl_from_logits: target shape {target.shape} differs from logits shape "
                         f"{logits.shape}")
    rows = logits.size // logits.shape[axis] if logits.size else 1
    pointwise = kl_div(log_softmax(logits, axis=axis), softmax(target, axis=axis),
                       reduction="none")
    return pointwise.sum() * (1.0 / rows)


def mse_loss(a: Tensor, b: Any, reduction: str = "mean") -> Tensor:
    """Mean (or sum, or none) of the squared difference (a - b)^2."""
    d = a - b
    return _reduce(d * d, reduction)


def _xlogy(p: Tensor, log_q: Tensor) -> Tensor:
    """p * log_q with 0 * (-inf) taken as 0: a class masked out of q that p gives no mass adds
    nothing (as 0 log 0 = 0), instead of turning the loss into nan."""
    xp = log_q.backend.xp
    keep = (p.data != 0) | xp.isfinite(log_q.data)
    return p * (log_q if bool(keep.all()) else where(keep, log_q, 0.0))


def _reduce(x: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    if reduction == "none":
        return x
    raise ValueError(f"reduction must be mean, sum or none, got {reduction!r}")


# The wrappers above shadow these builtins inside this module.
import builtins as _builtins  # noqa: E402

builtin_sum, builtin_min, builtin_max = _builtins.sum, _builtins.min, _builtins.max
