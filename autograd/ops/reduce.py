"""Reductions over any axes, with or without keepdims: sum, mean, max.

Backward re-inserts the reduced axes (when keepdims was off) and broadcasts back; `var` is a
composition in `autograd.functional`.
"""
from __future__ import annotations

from autograd.function import Function


def normalize_axes(axis, ndim: int) -> tuple[int, ...]:
    """`axis` (None, int or tuple, negatives allowed) as a sorted tuple of positive axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a {ndim}-d tensor")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis}")
    return tuple(sorted(out))


def _expand(g, in_shape, axes, keepdims, xp):
    if not keepdims:
        g = g.reshape([1 if i in axes else n for i, n in enumerate(in_shape)])
    return xp.broadcast_to(g, in_shape)


class Sum(Function):
    def forward(self, x, axis=None, keepdims=False):
        self.axes = normalize_axes(axis, x.ndim)
        self.shape, self.keepdims = x.shape, keepdims
        return x.sum(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        return (_expand(g, self.shape, self.axes, self.keepdims, self.xp),)


class Mean(Function):
    def forward(self, x, axis=None, keepdims=False):
        self.axes = normalize_axes(axis, x.ndim)
        self.shape, self.keepdims = x.shape, keepdims
        n = 1
        for a in self.axes:
            n *= x.shape[a]
        self.n = n
        return x.mean(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        return (_expand(g / self.n, self.shape, self.axes, self.keepdims, self.xp),)


class Max(Function):
    """Max over axes; tied maxima share the gradient equally (as torch.amax does)."""

    def forward(self, x, axis=None, keepdims=False):
        self.axes = normalize_axes(axis, x.ndim)
        if x.size == 0:
            raise ValueError("max of an empty tensor")
        self.x, self.keepdims = x, keepdims
        self.y = x.max(axis=self.axes, keepdims=True)
        return self.y if keepdims else self.y.reshape(
            [n for i, n in enumerate(x.shape) if i not in self.axes])

    def backward(self, g):
        x = self.x
        g = g.reshape(self.y.shape)
        hit = x == self.y
        count = hit.sum(axis=self.axes, keepdims=True, dtype=g.dtype)  # int counts would upcast
        return (hit * (g / count),)
