"""`Tensor`: an array on a backend, plus the node of the graph that made it, and backward.

A tensor holds a backend array in `.data`, its gradient in `.grad` (after backward), the
`Function` that produced it in `._ctx` (None for leaves) and its `backend`. Operators build the
graph by calling `Op.apply`; `backward` walks it once in reverse topological order.

Backward is iterative (24 layers x 4 FFNs make graphs far deeper than Python's recursion limit),
visits parents in tuple order (so float sums happen in the same order every run), accumulates
into leaves (`.grad` grows across calls until `zero_grad`), keeps gradients of intermediate
tensors only when `retain_grad()` asked for them, and frees each node's saved arrays as soon as
it has been used unless `retain_graph=True`.

References: micrograd's engine.py (the shape of backward), tinygrad (a small op set behind a
Tensor class), PyTorch's semantics for leaves, retain_grad and retain_graph.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import backends
from autograd.ops import elementwise as E
from autograd.ops import movement as V
from autograd.ops import nn as N
from autograd.ops import reduce as R

_ALLOWED_KINDS = "fiub"  # float, signed and unsigned int, bool


def _writeable(array: Any) -> bool:
    flags = getattr(array, "flags", None)
    return flags is None or flags.writeable


def _memory_key(array: Any) -> int:
    """id of the object that owns `array`'s memory, so that every view of one buffer (a reshape,
    a slice) has the same key."""
    while getattr(array, "base", None) is not None:
        array = array.base
    return id(array)


class GradientShapeError(RuntimeError):
    """An op's backward returned a gradient whose shape is not its input's (typically a missing
    `unbroadcast`). Carries the op's name, the input's position among the op's inputs, the input
    tensor itself (so gradcheck can name it) and the wrong shape."""

    def __init__(self, op: str, index: int, input: "Tensor", grad_shape: tuple) -> None:
        hint = ""
        try:
            if np.broadcast_shapes(input.shape, grad_shape) == tuple(grad_shape):
                hint = "; it was not summed back to the input's shape (a missing unbroadcast?)"
        except ValueError:
            pass
        super().__init__(f"{op}.backward returned a gradient of shape {tuple(grad_shape)} for "
                         f"an input of shape {input.shape} (its input {index}){hint}")
        self.op, self.index, self.input, self.grad_shape = op, index, input, tuple(grad_shape)


class Tensor:
    """An n-d array that records the ops applied to it, so `backward()` can differentiate them.

    `Tensor(data, requires_grad=False, dtype=None, device=None)`: `data` is a number, a nested
    list, a NumPy/CuPy array or a Tensor. Python floats become float32 (the framework default),
    Python ints int64; arrays keep their dtype unless `dtype` says otherwise. `device` names a
    backend ("numpy", "numba", "cupy"); by default arrays stay where they are and everything else
    goes to the process default backend.
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "backend", "_retains_grad",
                 "__weakref__")
    # Make NumPy defer `ndarray + Tensor` to Tensor.__radd__ instead of broadcasting an object.
    __array_ufunc__ = None

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None,
                 device: Any = None) -> None:
        if isinstance(data, Tensor):
            source = data.backend
            data = data.data
        else:
            source = None
        if device is not None:
            be = backends.get_backend(device)
        elif source is not None:
            be = source
        elif isinstance(data, np.ndarray) or type(data).__module__.split(".")[0] == "cupy":
            be = backends.backend_of(data)
        else:
            be = backends.default_backend()
        if source is not None and source.xp is not be.xp:
            data = source.to_numpy(data)
        elif type(data).__module__.split(".")[0] == "cupy" and be.xp is np:
            data = data.get()
        if dtype is None and not isinstance(data, (np.ndarray, be.array_type)):
            probe = np.asarray(data)
            dtype = np.float32 if probe.dtype.kind == "f" else probe.dtype
            data = probe
        array = be.asarray(data, dtype=dtype)
        if array.dtype.kind not in _ALLOWED_KINDS:
            raise TypeError(f"Tensor: unsupported dtype {array.dtype}; use a float, int or bool "
                            f"dtype")
        if requires_grad and array.dtype.kind != "f":
            raise TypeError(f"Tensor: only floating-point tensors can require gradients, "
                            f"got {array.dtype}")
        self.data = array
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = None
        self.backend = be
        self._retains_grad = False

    @classmethod
    def _from_op(cls, data: Any, backend: Any, ctx: Any) -> "Tensor":
        """Fast constructor for op outputs: no conversion or validation."""
        t = object.__new__(Tensor)
        t.data, t.grad, t.backend, t._ctx, t._retains_grad = data, None, backend, ctx, False
        t.requires_grad = ctx is not None
        return t

    # --- properties ------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def device(self) -> str:
        return self.backend.name

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.numpy(), precision=4, threshold=20, prefix="Tensor(")
        return f"Tensor({body}, dtype={self.dtype}, device={self.device!r}{grad})"

    __hash__ = object.__hash__  # comparison operators return tensors, so hash by identity

    def __bool__(self) -> bool:
        return bool(self.data)

    # --- conversion ------------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The values as a host NumPy array (shares memory on CPU backends)."""
        return self.backend.to_numpy(self.data)

    def item(self) -> Any:
        if self.size != 1:
            raise ValueError(f"item: only a one-element tensor converts to a Python number, "
                             f"this one has shape {self.shape}")
        return self.data.item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def detach(self) -> "Tensor":
        """The same array, cut from the graph."""
        return Tensor._from_op(self.data, self.backend, None)

    def to(self, device: Any) -> "Tensor":
        """A copy on backend `device` (a leaf; requires_grad is kept). Same backend: self."""
        be = backends.get_backend(device)
        if be is self.backend:
            return self
        out = Tensor._from_op(be.asarray(self.backend.to_numpy(self.data)), be, None)
        out.requires_grad = self.requires_grad
        return out

    def astype(self, dtype: Any) -> "Tensor":
        """The values cast to `dtype`; differentiable between float dtypes."""
        if np.dtype(dtype) == self.dtype:
            return self
        return E.Cast.apply(self, dtype=np.dtype(dtype))

    def requires_grad_(self, flag: bool = True) -> "Tensor":
        if flag and self.dtype.kind != "f":
            raise TypeError(f"requires_grad_: {self.dtype} tensors cannot require gradients")
        self.requires_grad = flag
        return self

    def retain_grad(self) -> None:
        """Keep `.grad` on this intermediate tensor during backward."""
        self._retains_grad = True

    # --- autograd --------------------------------------------------------------------------------
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's `.grad` that requires grad.

        `grad` is the gradient flowing into self (default 1 for a one-element tensor).
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad (was it made under "
                               "no_grad, or from tensors that do not require grad?)")
        xp = self.backend.xp
        given = set()  # memory already handed to a .grad (or owned by the caller): never shared
        if grad is None:
            if self.size != 1:
                raise ValueError(f"backward: grad can be omitted only for a one-element output; "
                                 f"pass grad= of shape {self.shape}")
            grad = xp.ones(self.shape, dtype=self.dtype)
        else:
            # Cast to the output's dtype, a Tensor as well as an array (else float32 leaves would
            # get float64 gradients).
            grad = self.backend.asarray(grad.data if isinstance(grad, Tensor) else grad, self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward: grad has shape {grad.shape}, output has {self.shape}")
            given.add(_memory_key(grad))

        grads = {id(self): grad}
        for node in _toposort(self):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            ctx = node._ctx
            if ctx is None or node._retains_grad:
                # Views count too: a reshape's gradient is a view of the array another input got.
                key = _memory_key(g)
                if key in given or not _writeable(g):
                    g = g.copy()
                    key = id(g)
                given.add(key)
                node.grad = g if node.grad is None else node.grad + g
                if ctx is None:
                    continue
            if ctx.parents is None:
                raise RuntimeError("backward: the graph through this tensor was already freed by "
                                   "an earlier backward; pass retain_graph=True to the first call")
            for index, (parent, pg) in enumerate(zip(ctx.parents, ctx.backward(g))):
                if pg is None or not parent.requires_grad:
                    continue
                if pg.shape != parent.shape:
                    raise GradientShapeError(type(ctx).__name__, index, parent, pg.shape)
                key = id(parent)
                prev = grads.get(key)
                grads[key] = pg if prev is None else prev + pg
            if not retain_graph:
                ctx.release()

    # --- operators -------------------------------------------------------------------------------
    def _lift(self, other: Any) -> "Tensor":
        """A constant operand as a tensor on self's backend. Python and NumPy scalars take self's
        dtype, except that a float scalar on an integer or bool tensor gives float32 and an
        integer scalar on a bool tensor int64."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (bool, int, float, np.bool_, np.integer, np.floating)):
            kind = self.dtype.kind
            if kind != "f" and isinstance(other, (float, np.floating)):
                dtype = np.float32
            elif kind == "b" and not isinstance(other, (bool, np.bool_)):
                dtype = np.int64
            else:
                dtype = self.dtype
            return Tensor._from_op(self.backend.xp.asarray(other, dtype=dtype), self.backend, None)
        return Tensor(other, device=self.backend)

    def _binary(self, op: type, other: Any, reverse: bool = False) -> "Tensor":
        a, b = self, self._lift(other)
        if reverse:
            a, b = b, a
        # Integer and boolean operands (masks, ids) take the float operand's dtype, and booleans
        # an integer operand's; two different float dtypes are a mistake that Function.apply
        # reports.
        ka, kb = a.dtype.kind, b.dtype.kind
        if ka != kb:
            if kb == "b" or (ka == "f" and kb in "iu"):
                b = Tensor._from_op(b.data.astype(a.dtype), b.backend, None)
            elif ka == "b" or (kb == "f" and ka in "iu"):
                a = Tensor._from_op(a.data.astype(b.dtype), a.backend, None)
        return op.apply(a, b)

    def __add__(self, other): return self._binary(E.Add, other)
    def __radd__(self, other): return self._binary(E.Add, other, reverse=True)
    def __sub__(self, other): return self._binary(E.Sub, other)
    def __rsub__(self, other): return self._binary(E.Sub, other, reverse=True)
    def __mul__(self, other): return self._binary(E.Mul, other)
    def __rmul__(self, other): return self._binary(E.Mul, other, reverse=True)
    def __truediv__(self, other): return self._binary(E.Div, other)
    def __rtruediv__(self, other): return self._binary(E.Div, other, reverse=True)
    def __neg__(self): return E.Neg.apply(self)

    def __pow__(self, other):
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            return E.PowScalar.apply(self, p=other)
        return self._binary(E.Pow, other)

    def __rpow__(self, other): return self._binary(E.Pow, other, reverse=True)

    def __matmul__(self, other):
        from autograd.functional import matmul
        return matmul(self, self._lift(other))

    def __rmatmul__(self, other):
        from autograd.functional import matmul
        return matmul(self._lift(other), self)

    def _compare(self, other: Any, op: str) -> "Tensor":
        b = other.data if isinstance(other, Tensor) else other
        return Tensor._from_op(getattr(self.data, op)(b), self.backend, None)

    def __lt__(self, other): return self._compare(other, "__lt__")
    def __le__(self, other): return self._compare(other, "__le__")
    def __gt__(self, other): return self._compare(other, "__gt__")
    def __ge__(self, other): return self._compare(other, "__ge__")
    def __eq__(self, other): return self._compare(other, "__eq__")  # type: ignore[override]
    def __ne__(self, other): return self._compare(other, "__ne__")  # type: ignore[override]

    def __getitem__(self, index: Any) -> "Tensor":
        return V.GetItem.apply(self, index=_raw_index(index))

    # --- common methods (the full set with docstrings is autograd.functional) --------------------
    def sum(self, axis=None, keepdims=False): return R.Sum.apply(self, axis=axis, keepdims=keepdims)
    def mean(self, axis=None, keepdims=False):
        return R.Mean.apply(self, axis=axis, keepdims=keepdims)
    def max(self, axis=None, keepdims=False): return R.Max.apply(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return V.Reshape.apply(self, shape=tuple(shape))

    def permute(self, *axes):
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        return V.Permute.apply(self, axes=tuple(axes))

    def transpose(self, axis1: int = -2, axis2: int = -1) -> "Tensor":
        axes = list(range(self.ndim))
        axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
        return V.Permute.apply(self, axes=tuple(axes))

    @property
    def T(self) -> "Tensor":
        return V.Permute.apply(self, axes=tuple(reversed(range(self.ndim))))

    def exp(self): return E.Exp.apply(self)
    def log(self): return E.Log.apply(self)
    def sqrt(self): return E.Sqrt.apply(self)
    def tanh(self): return E.Tanh.apply(self)
    def sigmoid(self): return E.Sigmoid.apply(self)
    def relu(self): return E.Relu.apply(self)
    def abs(self): return E.Abs.apply(self)
    def softmax(self, axis=-1): return N.Softmax.apply(self, axis=axis)
    def log_softmax(self, axis=-1): return N.LogSoftmax.apply(self, axis=axis)


def _raw_index(index: Any) -> Any:
    """Tensors inside an index become their arrays (integer or boolean, never differentiated)."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def _toposort(root: Tensor) -> list[Tensor]:
    """Nodes that need a gradient, outputs first; iterative DFS, parents in tuple order."""
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        ctx = node._ctx
        if ctx is not None and ctx.parents is not None:
            for parent in reversed(ctx.parents):
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    order.reverse()
    return order


def as_tensor(x: Any, device: Any = None) -> Tensor:
    """`x` unchanged if it is a Tensor (on `device`, when given), else a new constant tensor."""
    if isinstance(x, Tensor):
        return x if device is None else x.to(device)
    return Tensor(x, device=device)

