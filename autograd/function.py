"""`Function`: one differentiable op, its forward and backward side by side, and grad mode.

An op subclasses `Function` and writes `forward(self, *arrays, **attrs) -> array` and
`backward(self, grad_out) -> tuple[array | None, ...]` on raw backend arrays (first-order only).
`Op.apply(*tensors, **attrs)` checks that the inputs share a device (and, for most ops, a dtype),
runs forward, and records the node only when some input needs a gradient and grad mode is on.
Backward may skip inputs whose `self.needs_input_grad[i]` is False by returning None for them.
`record_ops()` lists every op applied inside a block (for the PyTorch replay of gradcheck).

Conventions (Chainer's and tinygrad's): `self.xp` is the array module and `self.be` the backend of
the inputs; save only what backward needs, prefer outputs or recomputation; every binary op ends
in `unbroadcast`; backward never writes into `grad_out` (the engine may pass one array to several
inputs).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

_grad_enabled = True


def is_grad_enabled() -> bool:
    return _grad_enabled


class _GradMode:
    """Context manager and decorator that sets grad mode and restores the previous one."""

    mode = True

    def __enter__(self) -> None:
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = self.mode

    def __exit__(self, *exc: Any) -> None:
        global _grad_enabled
        _grad_enabled = self._prev

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with type(self)():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """Record no graph inside this block: results have requires_grad=False."""

    mode = False


class enable_grad(_GradMode):
    """Turn graph recording back on inside a no_grad block."""

    mode = True


class OpRecord(NamedTuple):
    """One op application seen by `record_ops`: what a replay needs to run it again."""

    op: type                 # the Function subclass
    inputs: tuple            # the input tensors, in order
    attrs: dict[str, Any]    # the keyword attributes forward received (axis, mask, ids, ...)
    output: Any              # the output tensor
    grad_enabled: bool       # whether grad mode was on (False inside no_grad)


_recording: list[OpRecord] | None = None


class record_ops:
    """Record every op applied inside the block, in order, as `OpRecord`s:

        with record_ops() as ops:
            loss = model(...).loss

    `autograd.torch_replay` runs such a list again in PyTorch to cross-check gradients. Only the
    innermost block records; recording holds references to every tensor of the graph."""

    def __enter__(self) -> list[OpRecord]:
        global _recording
        self._prev, self.ops = _recording, []
        _recording = self.ops
        return self.ops

    def __exit__(self, *exc: Any) -> None:
        global _recording
        _recording = self._prev


def unbroadcast(grad: Any, shape: tuple) -> Any:
    """Sum `grad` down to `shape`, undoing NumPy broadcasting (leading axes, then size-1 axes)."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


class Function:
    """Base class of every op. See the module docstring for the contract."""

    # Most ops combine float inputs of one dtype; ops that take integer ids or masks say False.
    same_dtype = True
    parents: tuple | None = None

    @classmethod
    def apply(cls, *inputs: "_tensor.Tensor", **attrs: Any) -> "_tensor.Tensor":
        be = inputs[0].backend
        dtype = inputs[0].data.dtype
        for t in inputs[1:]:
            if t.backend is not be:
                raise ValueError(f"{cls.__name__}: inputs are on different devices: "
                                 f"{be.name} and {t.backend.name}; move one with .to()")
            if cls.same_dtype and t.data.dtype != dtype:
                raise TypeError(f"{cls.__name__}: inputs have different dtypes: {dtype} and "
                                f"{t.data.dtype}; convert one with .astype()")
        fn = cls.__new__(cls)
        fn.be = be
        fn.xp = be.xp
        needs = tuple([t.requires_grad for t in inputs])
        fn.needs_input_grad = needs
        try:
            out = fn.forward(*[t.data for t in inputs], **attrs)
        except ValueError as e:
            shapes = ", ".join(str(tuple(t.shape)) for t in inputs)
            raise ValueError(f"{cls.__name__}: {e} (input shapes {shapes})") from e
        if _grad_enabled and True in needs:
            fn.parents = inputs
            result = _tensor.Tensor._from_op(out, be, fn)
        else:
            result = _tensor.Tensor._from_op(out, be, None)
        if _recording is not None:
            _recording.append(OpRecord(cls, inputs, attrs, result, _grad_enabled))
        return result

    def forward(self, *arrays: Any, **attrs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad_out: Any) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def release(self) -> None:
        """Drop saved arrays and parents once backward has used them (frees the graph)."""
        self.__dict__.clear()
        self.parents = None


# Imported last: tensor.py imports the ops, which import Function from this module.
from autograd import tensor as _tensor  # noqa: E402
