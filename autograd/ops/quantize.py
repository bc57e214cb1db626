"""Fake quantization: the op of quantization-aware training (QAT).

y = (clip(rint(x / scale) + zero_point, qmin, qmax) - zero_point) * scale

is a float array holding exactly the values an int8 model computes with: the integer code of
each element, dequantized. It is computed with the int8 path's own operation order
(`backends.reference.quantize_u8` / `_codes`: divide, round half to even, add the zero point,
clip; then subtract and multiply), so in float32 a fake-quantized activation equals
`(codes - zero_point) * scale` of the int8 model's codes bit for bit, and a fake-quantized
weight equals `q * scale` of `quantize_weight` (tests/autograd/ops/test_quantize.py).

Backward is the straight-through estimator (Bengio et al. 2013; Jacob et al. 2018, the
gradient PyTorch's FakeQuantize uses): the rounding is treated as the identity, the clip is
not, so the gradient is 1 where the unrounded-then-rounded code rint(x / scale) + zero_point
lies in [qmin, qmax] and 0 outside. That is the exact derivative of the surrogate
clip(x, (qmin - zero_point - 1/2) scale, (qmax - zero_point + 1/2) scale) away from its two
kinks; of y itself, a staircase, the derivative is 0 almost everywhere, which would teach
nothing. `scale` and `zero_point` are constants of the op (attributes, not tensors): QAT
measures them from the detached data on every call, as dynamic int8 inference does.
"""
from __future__ import annotations

import numpy as np

from autograd.function import Function


class FakeQuantize(Function):
    """Quantize-dequantize with a straight-through gradient (see the module docstring)."""

    def forward(self, x, scale, zero_point, qmin, qmax):
        xp = self.xp
        if x.dtype.kind != "f":
            raise TypeError(f"fake_quantize: x must be floating point, got {x.dtype}")
        if not (isinstance(qmin, (int, np.integer)) and isinstance(qmax, (int, np.integer))
                and qmin < qmax):
            raise ValueError(f"fake_quantize: qmin and qmax must be integers with qmin < qmax, "
                             f"got {qmin!r} and {qmax!r}")
        s = xp.asarray(scale).astype(x.dtype, copy=False)
        z = xp.asarray(zero_point).astype(x.dtype, copy=False)
        for name, a in (("scale", s), ("zero_point", z)):
            try:
                fits = np.broadcast_shapes(x.shape, a.shape) == x.shape
            except ValueError:
                fits = False
            if not fits:
                raise ValueError(f"fake_quantize: {name} of shape {tuple(a.shape)} does not "
                                 f"broadcast to x's shape {tuple(x.shape)}")
        if s.size and not bool(((s > 0) & xp.isfinite(s)).all()):
            raise ValueError("fake_quantize: every scale must be finite and > 0")
        codes = xp.asarray(xp.rint(x / s))       # the int8 path's order: divide, round,
        codes += z                               # then add the (integer) zero point
        self.inside = (codes >= qmin) & (codes <= qmax)     # all backward needs
        xp.clip(codes, qmin, qmax, out=codes)
        codes -= z
        codes *= s
        return codes

    def backward(self, g):
        return (g * self.inside,)
