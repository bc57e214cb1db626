"""Run a recorded tinybert graph again in PyTorch: a second opinion on every gradient.

`record_ops` (autograd/function.py) lists every op a function applies, with its inputs and
attributes. `torch_gradients` runs the same list through PyTorch's own ops in float64, from the
same leaf values, and returns PyTorch's output and gradients: every backward rule is then
checked against an implementation written by other people (`tinybert gradcheck --against
torch`). PyTorch is never a dependency: it is imported only here, only when asked for, and its
absence is a `TorchUnavailable` error that says how to install it.

Where tinybert defines an edge case on purpose, the replay follows tinybert (a fully masked
softmax row is zeros, a mean cross-entropy over only ignored targets is 0), so the two agree on
everything both define. User-defined ops have no PyTorch twin unless the caller passes one in
`extra_rules` ({FunctionClass: rule(torch, *inputs, **attrs)}).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from autograd.function import record_ops
from autograd.ops import elementwise as E
from autograd.ops import matmul as M
from autograd.ops import movement as V
from autograd.ops import nn as N
from autograd.ops import quantize as Q
from autograd.ops import reduce as R

INSTALL_HINT = ("pip install torch --index-url https://download.pytorch.org/whl/cpu "
                "(the CPU wheel is enough)")


class TorchUnavailable(ImportError):
    """PyTorch is not installed; the message says how to get it."""


def import_torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise TorchUnavailable(f"the PyTorch cross-check needs PyTorch, which is not installed "
                               f"here: {INSTALL_HINT}") from e
    return torch


def _index(torch: Any, index: Any) -> Any:
    """A NumPy index as a PyTorch one: arrays become tensors; negative steps have no twin."""
    if isinstance(index, tuple):
        return tuple(_index(torch, i) for i in index)
    if isinstance(index, np.ndarray):
        return torch.as_tensor(index)
    if isinstance(index, list):
        return torch.as_tensor(np.asarray(index))
    if isinstance(index, slice) and index.step is not None and index.step < 0:
        raise NotImplementedError("getitem: PyTorch has no negative-step slices to replay")
    return index


def _softmax(torch: Any, x: Any, axis: int = -1, scale: float = 1.0, mask: Any = None) -> Any:
    z = x * scale
    if mask is None:
        return torch.softmax(z, dim=axis)
    z = z + torch.as_tensor(np.asarray(mask), dtype=x.dtype)
    dead = torch.isneginf(z).all(dim=-1, keepdim=True)           # tinybert: such rows are 0
    y = torch.softmax(torch.where(dead, torch.zeros_like(z), z), dim=-1)
    return torch.where(dead, torch.zeros_like(y), y)


def _cross_entropy(torch: Any, logits: Any, target: Any, ignore_index: int = -100,
                   reduction: str = "mean") -> Any:
    t = torch.as_tensor(np.asarray(target)).long()
    if reduction == "mean" and not bool((t != ignore_index).any()):
        return logits.sum() * 0.0                                # tinybert: 0, not nan
    return torch.nn.functional.cross_entropy(logits, t, ignore_index=ignore_index,
                                             reduction=reduction)


def _reduce(name: str) -> Callable:
    def rule(torch: Any, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        axes = R.normalize_axes(axis, x.ndim)
        if not axes:                                             # NumPy: nothing is reduced
            return x
        if name == "max":
            return torch.amax(x, dim=axes, keepdim=keepdims)
        return getattr(torch, name)(x, dim=axes, keepdim=keepdims)
    return rule


def _pad(torch: Any, x: Any, pad_width: Any, value: float = 0.0) -> Any:
    flat = [n for pair in reversed(pad_width) for n in pair]    # last axis first, as torch wants
    return torch.nn.functional.pad(x, flat, mode="constant", value=value)


def _fake_quantize(torch: Any, x: Any, scale: Any, zero_point: Any, qmin: int,
                   qmax: int) -> Any:
    """Our fake quantization in torch's ops: torch's own fake_quantize_* multiply by 1 / scale
    (a different rounding at ties) and take only per-tensor or one-axis scales."""
    s = torch.as_tensor(np.asarray(scale), dtype=x.dtype)
    z = torch.as_tensor(np.asarray(zero_point), dtype=x.dtype)
    codes = torch.round(x.detach() / s) + z                    # round half to even, as rint
    y = (codes.clamp(qmin, qmax) - z) * s
    inside = (codes >= qmin) & (codes <= qmax)
    return torch.where(inside, x - x.detach() + y, y)          # straight-through gradient


def _no_norm(torch: Any, x: Any, gamma: Any, beta: Any, residual: Any = None) -> Any:
    return (x if residual is None else x + residual) * gamma + beta


def _layer_norm(torch: Any, x: Any, gamma: Any = None, beta: Any = None,
                eps: float = 1e-12) -> Any:
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), gamma, beta, eps)


RULES: dict[type, Callable] = {
    E.Add: lambda torch, a, b: a + b,
    E.Sub: lambda torch, a, b: a - b,
    E.Mul: lambda torch, a, b: a * b,
    E.Div: lambda torch, a, b: a / b,
    E.Pow: lambda torch, a, b: torch.pow(a, b),
    E.PowScalar: lambda torch, x, p: x ** p,
    E.Neg: lambda torch, x: -x,
    E.Exp: lambda torch, x: torch.exp(x),
    E.Log: lambda torch, x: torch.log(x),
    E.Sqrt: lambda torch, x: torch.sqrt(x),
    E.Tanh: lambda torch, x: torch.tanh(x),
    E.Sigmoid: lambda torch, x: torch.sigmoid(x),
    E.Abs: lambda torch, x: torch.abs(x),
    E.Relu: lambda torch, x: torch.relu(x),
    E.Relu6: lambda torch, x: torch.nn.functional.relu6(x),
    E.Where: lambda torch, a, b, cond: torch.where(torch.as_tensor(np.asarray(cond)), a, b),
    E.Cast: lambda torch, x, dtype: x.to(getattr(torch, np.dtype(dtype).name)),
    M.MatMul: lambda torch, a, b: torch.matmul(a, b),
    M.Linear: lambda torch, x, w, b=None: torch.nn.functional.linear(x, w, b),
    V.Reshape: lambda torch, x, shape: x.reshape(shape),
    V.Permute: lambda torch, x, axes: x.permute(*axes),
    V.GetItem: lambda torch, x, index: x[_index(torch, index)],
    V.Concat: lambda torch, *xs, axis=0: torch.cat(xs, dim=axis),
    V.Pad: _pad,
    N.Softmax: _softmax,
    N.LogSoftmax: lambda torch, x, axis=-1: torch.log_softmax(x, dim=axis),
    N.CrossEntropy: _cross_entropy,
    N.LayerNorm: _layer_norm,
    N.NoNorm: _no_norm,
    N.Gelu: lambda torch, x, approximate=False: torch.nn.functional.gelu(
        x, approximate="tanh" if approximate else "none"),
    N.Embedding: lambda torch, w, ids, name="ids", padding_idx=None: torch.nn.functional.embedding(
        torch.as_tensor(np.asarray(ids)).long(), w, padding_idx=padding_idx),
    Q.FakeQuantize: _fake_quantize,
    N.Dropout: lambda torch, x, mask: x * torch.as_tensor(np.asarray(mask), dtype=x.dtype),
    R.Sum: _reduce("sum"),
    R.Mean: _reduce("mean"),
    R.Max: _reduce("max"),
}


def torch_gradients(fn: Callable, args: list, checked: list, cot: np.ndarray,
                    extra_rules: dict[type, Callable] | None = None
                    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run fn(*args) once while recording its ops, replay them in PyTorch (float64) from the
    same values, and backpropagate `cot`. Returns PyTorch's output and {name: gradient} for
    the (name, tensor) pairs in `checked` (zeros where the output does not depend on one)."""
    torch = import_torch()
    rules = {**RULES, **(extra_rules or {})}
    with record_ops() as ops:
        out = fn(*args)
    leaves = {id(t): torch.tensor(t.numpy(), dtype=torch.float64, requires_grad=True)
              for _, t in checked}
    env: dict[int, Any] = dict(leaves)

    def value(t: Any) -> Any:
        found = env.get(id(t))
        return found if found is not None else torch.as_tensor(np.array(t.numpy()))

    for op in ops:
        rule = rules.get(op.op)
        if rule is None:
            raise NotImplementedError(f"{op.op.__name__} has no PyTorch rule to replay; pass "
                                      f"one in extra_rules={{{op.op.__name__}: rule}}")
        with torch.set_grad_enabled(op.grad_enabled):
            env[id(op.output)] = rule(torch, *[value(t) for t in op.inputs], **op.attrs)
    y = value(out)
    if y.requires_grad:
        y.backward(torch.as_tensor(cot, dtype=y.dtype))
    grads = {name: (leaves[id(t)].grad.numpy() if leaves[id(t)].grad is not None
                    else np.zeros(t.shape)) for name, t in checked}
    return y.detach().numpy().astype(np.float64), grads
