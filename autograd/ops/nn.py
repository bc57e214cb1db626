"""Neural-network ops that run through the backend's named fused kernels.

softmax (with the attention scale and additive mask fused), log_softmax, cross_entropy (fused
with log_softmax), layer_norm, no_norm (fused with its residual add), gelu, embedding, dropout.
Each op calls `self.be.kernel(name)`: the backend's override (Numba, CuPy) or the xp-generic
reference in `backends/reference.py`. kl_div and mse_loss are compositions in
`autograd.functional`.

Integer inputs (embedding ids, class targets) and constant masks are never differentiated, so
they reach an op as attributes (`CrossEntropy.apply(logits, target=t)`), not as tensors. Their
range is checked here, once: the models, the losses and the kernels rely on it.
"""
from __future__ import annotations

from autograd.function import Function


def _is_last(axis, ndim: int) -> bool:
    return axis in (-1, ndim - 1)


def _to_last(xp, x, axis):
    """Move `axis` to the end (the kernels reduce over the last axis); a view, no copy."""
    return x if _is_last(axis, x.ndim) else xp.moveaxis(x, axis, -1)


def _from_last(xp, y, axis):
    return y if _is_last(axis, y.ndim) else xp.moveaxis(y, -1, axis)


class Softmax(Function):
    """y = softmax(x * scale + mask) along `axis`; `mask` is an additive constant (0 / -inf)."""

    def forward(self, x, axis=-1, scale=1.0, mask=None):
        if mask is not None and not _is_last(axis, x.ndim):
            raise ValueError("softmax: an additive mask needs axis=-1")
        self.axis, self.scale = axis, scale
        self.y = self.be.kernel("softmax_fwd")(_to_last(self.xp, x, axis), mask, scale)
        return _from_last(self.xp, self.y, axis)                    # backward needs only y

    def backward(self, g):
        xp, axis = self.xp, self.axis
        return (_from_last(xp, self.be.kernel("softmax_bwd")(
            self.y, self.scale, _to_last(xp, g, axis)), axis),)


class LogSoftmax(Function):
    def forward(self, x, axis=-1):
        self.axis = axis
        self.y = self.be.kernel("log_softmax_fwd")(_to_last(self.xp, x, axis))
        return _from_last(self.xp, self.y, axis)

    def backward(self, g):
        xp, axis = self.xp, self.axis
        return (_from_last(xp, self.be.kernel("log_softmax_bwd")(
            self.y, _to_last(xp, g, axis)), axis),)


class CrossEntropy(Function):
    """Cross-entropy of (N, C) logits against integer targets (N,), fused with log_softmax.

    reduction "mean" divides by the number of targets that are not `ignore_index` (0 when all
    are ignored, rather than NaN), "sum" adds, "none" returns the (N,) per-row losses.
    """

    def forward(self, logits, target, ignore_index=-100, reduction="mean"):
        if logits.ndim != 2 or target.shape != logits.shape[:1]:
            raise ValueError(f"cross_entropy: logits must be (N, C) and target (N,), got "
                             f"{tuple(logits.shape)} and {tuple(target.shape)}")
        if target.dtype.kind not in "iu":
            raise TypeError(f"cross_entropy: class targets must be integers, got {target.dtype}")
        valid = target != ignore_index
        if bool(((target[valid] < 0) | (target[valid] >= logits.shape[1])).any()):
            raise ValueError(f"cross_entropy: a target is outside [0, {logits.shape[1]}) "
                             f"and is not ignore_index={ignore_index}")
        self.logits, self.target, self.ignore_index = logits, target, ignore_index
        self.reduction = reduction
        loss, self.lse = self.be.kernel("cross_entropy_fwd")(logits, target, ignore_index)
        if reduction == "none":
            return loss
        total = loss.sum()
        if reduction == "sum":
            return total
        if reduction != "mean":
            raise ValueError(f"cross_entropy: reduction must be mean, sum or none, got {reduction}")
        self.count = max(int(valid.sum()), 1)
        return total / self.count

    def backward(self, g):
        xp, n = self.xp, self.logits.shape[0]
        if self.reduction == "none":
            g_rows = g
        else:
            scale = g / self.count if self.reduction == "mean" else g
            g_rows = xp.broadcast_to(scale, (n,))
        glogits = self.be.kernel("cross_entropy_bwd")(
            self.logits, self.lse, self.target, self.ignore_index, g_rows)
        return (glogits,)


class LayerNorm(Function):
    """Layer normalisation over the last axis; gamma and beta optional (parameter-free form)."""

    def forward(self, x, gamma=None, beta=None, eps=1e-12):
        c = x.shape[-1]
        for name, p in (("weight", gamma), ("bias", beta)):
            if p is not None and p.shape != (c,):
                raise ValueError(f"layer_norm: {name} shape {tuple(p.shape)} does not match the "
                                 f"normalised size {c}")
        self.x, self.gamma = x, gamma
        y, self.mean, self.rstd = self.be.kernel("layer_norm_fwd")(x, gamma, beta, eps)
        return y

    def backward(self, g):
        gx, ggamma, gbeta = self.be.kernel("layer_norm_bwd")(
            self.x, self.gamma, self.mean, self.rstd, g)
        return (gx,) if self.gamma is None else (gx, ggamma, gbeta)


class NoNorm(Function):
    """MobileBERT's NoNorm, (x [+ residual]) * gamma + beta, the residual add fused in."""

    def forward(self, x, gamma, beta, residual=None):
        c = x.shape[-1]
        if gamma.shape != (c,) or beta.shape != (c,):
            raise ValueError(f"no_norm: weight {tuple(gamma.shape)} and bias {tuple(beta.shape)} "
                             f"must both be ({c},)")
        if residual is not None and residual.shape != x.shape:
            raise ValueError(f"no_norm: residual shape {tuple(residual.shape)} differs from x "
                             f"shape {tuple(x.shape)}")
        self.x, self.gamma, self.residual = x, gamma, residual
        return self.be.kernel("no_norm_fwd")(x, gamma, beta, residual)

    def backward(self, g):
        gh, ggamma, gbeta = self.be.kernel("no_norm_bwd")(self.x, self.gamma, self.residual, g)
        return (gh, ggamma, gbeta) if self.residual is None else (gh, ggamma, gbeta, gh)


class Gelu(Function):
    def forward(self, x, approximate=False):
        self.x, self.approximate = x, approximate
        return self.be.kernel("gelu_fwd")(x, approximate)

    def backward(self, g):
        return (self.be.kernel("gelu_bwd")(self.x, self.approximate, g),)


class Embedding(Function):
    """weight[ids]; backward scatter-adds rows, so repeated ids accumulate. `name` is what an
    error calls the ids (a model passes "input_ids", "token_type_ids", ...). The row
    `padding_idx`, if given, gets no gradient from the lookup (torch's `padding_idx`)."""

    def forward(self, weight, ids, name="ids", padding_idx=None):
        if ids.dtype.kind not in "iu":
            raise TypeError(f"embedding: {name} must be integers, got {ids.dtype}")
        n = weight.shape[0]
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= n):
            raise ValueError(f"embedding: {name} must lie in [0, {n}), got values in "
                             f"[{int(ids.min())}, {int(ids.max())}]")
        if padding_idx is not None and not 0 <= padding_idx < n:
            raise ValueError(f"embedding: padding_idx {padding_idx} is outside [0, {n})")
        self.ids, self.n, self.padding_idx = ids, n, padding_idx
        return weight[ids]

    def backward(self, g):
        gw = self.be.kernel("embedding_bwd")(self.ids, self.n, g)  # a fresh (n, D) array
        if self.padding_idx is not None:
            gw[self.padding_idx] = 0
        return (gw,)


class Dropout(Function):
    """x * mask, with the inverted-dropout mask (0, or 1 / (1 - p)) drawn by the caller."""

    def forward(self, x, mask):
        self.mask = mask
        return x * mask

    def backward(self, g):
        return (g * self.mask,)
