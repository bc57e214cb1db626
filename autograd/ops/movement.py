"""Movement ops: reshape, permute, indexing, concat, pad. Backward moves the gradient back.

stack and split are compositions of these (in `autograd.functional`).
"""
from __future__ import annotations

from autograd.function import Function


class Reshape(Function):
    def forward(self, x, shape):
        self.in_shape = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return (g.reshape(self.in_shape),)


class Permute(Function):
    def forward(self, x, axes):
        if sorted(a % x.ndim for a in axes) != list(range(x.ndim)):
            raise ValueError(f"permute: axes {tuple(axes)} are not a permutation of "
                             f"{x.ndim} dimensions")
        self.axes = tuple(axes)
        return x.transpose(self.axes)

    def backward(self, g):
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a % len(self.axes)] = i
        return (g.transpose(inverse),)


def _is_basic(index) -> bool:
    """True for NumPy basic indexing (ints, slices, None, Ellipsis): a view, no repeats."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice)) for p in parts)


class GetItem(Function):
    """x[index] for slices, integer arrays and boolean masks.

    Basic indexing selects each element at most once, so backward assigns into zeros; integer
    arrays may repeat an element, so backward scatter-adds (`add.at`).
    """

    def forward(self, x, index):
        self.in_shape, self.index = x.shape, index
        try:
            return x[index]
        except IndexError as e:
            raise ValueError(f"getitem: {e} for a tensor of shape {tuple(x.shape)}") from e

    def backward(self, g):
        gx = self.xp.zeros(self.in_shape, dtype=g.dtype)
        if _is_basic(self.index):
            gx[self.index] = g
        else:
            self.xp.add.at(gx, self.index, g)
        return (gx,)


class Concat(Function):
    def forward(self, *xs, axis=0):
        ndim = xs[0].ndim
        if not -ndim <= axis < ndim:
            raise ValueError(f"concat: axis {axis} is out of range for {ndim}-d inputs")
        self.axis = axis % ndim
        self.sizes = [x.shape[self.axis] for x in xs]
        return self.xp.concatenate(xs, axis=self.axis)

    def backward(self, g):
        out, start = [], 0
        index = [slice(None)] * g.ndim
        for size, needs in zip(self.sizes, self.needs_input_grad):
            index[self.axis] = slice(start, start + size)
            out.append(g[tuple(index)] if needs else None)
            start += size
        return tuple(out)


class Pad(Function):
    """Constant padding with NumPy's pad_width: one (before, after) pair per axis."""

    def forward(self, x, pad_width, value=0.0):
        if len(pad_width) != x.ndim or any(len(p) != 2 or min(p) < 0 for p in pad_width):
            raise ValueError(f"pad: pad_width {pad_width} needs one non-negative (before, after) "
                             f"pair per axis of a {x.ndim}-d tensor")
        self.slices = tuple(slice(b, b + n) for (b, _), n in zip(pad_width, x.shape))
        return self.xp.pad(x, pad_width, mode="constant", constant_values=value)

    def backward(self, g):
        return (g[self.slices],)
