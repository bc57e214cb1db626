"""Matrix products: batched, broadcasting matmul and the fused linear layer.

Both go straight to the backend's BLAS: `MatMul` through the `matmul` kernel (the reference is
`xp.matmul`; the Numba backend runs stacked products on one BLAS thread, see backends/blas.py),
`Linear` as one 2-D GEMM: it flattens the leading axes so one GEMM does the whole batch and no
transposed copy of the (out, in) weight is made.
"""
from __future__ import annotations

from autograd.function import Function, unbroadcast


class MatMul(Function):
    """a @ b for a (..., m, k), b (..., k, n), batch axes broadcasting (both at least 2-d)."""

    def forward(self, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError("matmul: operands must be at least 2-d here; "
                             "autograd.functional.matmul handles 1-d operands")
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(f"matmul: inner dimensions differ: a is {tuple(a.shape)}, "
                             f"b is {tuple(b.shape)}")
        self.a, self.b = a, b
        return self.be.kernel("matmul")(a, b)

    def backward(self, g):
        a, b = self.a, self.b
        na, nb = self.needs_input_grad
        matmul = self.be.kernel("matmul")
        ga = unbroadcast(matmul(g, b.swapaxes(-1, -2)), a.shape) if na else None
        if not nb:
            gb = None
        elif b.ndim == 2:
            # A shared 2-d weight: one GEMM over the flattened batch, instead of a (batch, k, n)
            # product that unbroadcast would then sum away (375 MB at vocab size).
            gb = a.reshape(-1, a.shape[-1]).T @ g.reshape(-1, g.shape[-1])
        else:
            gb = unbroadcast(matmul(a.swapaxes(-1, -2), g), b.shape)
        return ga, gb


class Linear(Function):
    """y = x W^T + b with W stored (out_features, in_features), as in PyTorch and Hugging Face."""

    def forward(self, x, w, b=None):
        if w.ndim != 2:
            raise ValueError(f"linear: weight must be 2-d (out, in), got {tuple(w.shape)}")
        if x.ndim < 1 or x.shape[-1] != w.shape[1]:
            raise ValueError(f"linear: x has {x.shape[-1] if x.ndim else 0} input features but "
                             f"weight is (out, in) = {tuple(w.shape)}")
        if b is not None and b.shape != (w.shape[0],):
            raise ValueError(f"linear: bias shape {tuple(b.shape)} does not match "
                             f"out_features {w.shape[0]}")
        self.x2 = x.reshape(-1, x.shape[-1])                      # (N, in)
        self.w, self.in_shape = w, x.shape
        y = self.x2 @ w.T                                         # (N, out), one GEMM
        if b is not None:
            y += b
        return y.reshape(*x.shape[:-1], w.shape[0])

    def backward(self, g):
        g2 = g.reshape(-1, g.shape[-1])                           # (N, out)
        needs = self.needs_input_grad
        gx = (g2 @ self.w).reshape(self.in_shape) if needs[0] else None
        gw = g2.T @ self.x2 if needs[1] else None
        gb = g2.sum(axis=0) if len(needs) > 2 and needs[2] else None
        return (gx, gw, gb) if len(needs) > 2 else (gx, gw)
