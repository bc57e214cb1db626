"""`Module` and `Parameter`: named, nestable containers of trainable tensors.

Parameters are found by walking `vars(self)` in insertion order (tinygrad's get_state_dict), so
attribute names become state-dict keys exactly as in Hugging Face (`attention.self.query.weight`)
and a ModuleList's children become `layer.0.`, `layer.1.`, ... There is no metaclass and no
`__setattr__` hook: assigning an attribute is all it takes to register a child. Tied weights (one
Parameter reachable under two names) are reported once, under the first name.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

import backends
from autograd import function as _function
from autograd.tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor that requires grad: what optimizers update and state dicts save."""

    __slots__ = ()

    def __init__(self, data: Any, dtype: Any = None, device: Any = None) -> None:
        super().__init__(data, requires_grad=True, dtype=dtype, device=device)

    def __repr__(self) -> str:
        return "Parameter" + super().__repr__()[len("Tensor"):]


class Module:
    """Base class of layers and models. Subclasses set attributes in `__init__` and write
    `forward`; `module(...)` calls `forward(...)`."""

    training = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        observer = _function._observer
        if observer is None:
            return self.forward(*args, **kwargs)
        observer.enter_module(self)           # a trace groups ops by the module that ran them
        try:
            return self.forward(*args, **kwargs)
        finally:
            observer.exit_module(self)

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    # --- traversal -------------------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        for name, value in _members(self):
            if isinstance(value, Module):
                yield name, value

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """Every module in the tree, depth first, self first (iterative: deep models are fine)."""
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            yield name, module
            children = list(module.named_children())
            for child_name, child in reversed(children):
                stack.append((f"{name}.{child_name}" if name else child_name, child))

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs in attribute order, depth first, each parameter once
        (a tied weight keeps the name of its first appearance)."""
        seen: set[int] = set()
        stack: list[tuple[str, Any]] = [("", self)]
        while stack:
            name, value = stack.pop()
            if isinstance(value, Parameter):
                if id(value) not in seen:
                    seen.add(id(value))
                    yield name, value
                continue
            items = [(n, v) for n, v in _members(value) if isinstance(v, (Module, Parameter))]
            for child, v in reversed(items):
                stack.append((f"{name}.{child}" if name else child, v))

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def apply(self, fn: Callable[["Module"], Any]) -> "Module":
        """Call fn on every submodule, children before parents (as PyTorch does); returns self."""
        for m in reversed(list(self.modules())):
            fn(m)
        return self

    # --- modes and devices -----------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Set training mode (dropout active) on this module and every submodule."""
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def to(self, device: Any = None, dtype: Any = None) -> "Module":
        """Move every parameter to backend `device` and/or cast to float `dtype`, in place."""
        be = backends.get_backend(device) if device is not None else None
        for p in self.parameters():
            data = p.data
            if be is not None and be is not p.backend:
                data = be.asarray(p.backend.to_numpy(data))
                p.backend = be
            if dtype is not None:
                data = data.astype(dtype, copy=False)
            p.data = data
            p.grad = None
        return self

    @property
    def device(self) -> str:
        for p in self.parameters():
            return p.device
        return backends.default_backend_name()

    # --- state dicts -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """name -> host NumPy array of every parameter (shared memory on CPU backends)."""
        return {name: p.numpy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> tuple[list, list]:
        """Copy arrays into the parameters by name, cast to each parameter's dtype.

        Shape mismatches always raise; with strict=True missing or unexpected keys raise too,
        listing every offending name. Returns (missing, unexpected).
        """
        params = dict(self.named_parameters())
        missing = [k for k in params if k not in state]
        unexpected = [k for k in state if k not in params]
        mismatched = [f"{k}: checkpoint {tuple(np.shape(state[k]))} vs model {params[k].shape}"
                      for k in params
                      if k in state and tuple(np.shape(state[k])) != params[k].shape]
        problems = []
        if mismatched:
            problems.append("shape mismatch for " + "; ".join(mismatched))
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__}: " + " | ".join(problems))
        for name, p in params.items():
            if name in state:
                value = state[name]
                value = value.data if isinstance(value, Tensor) else value
                p.data = p.backend.asarray(np.asarray(value) if p.backend.xp is np else value,
                                           dtype=p.dtype).copy()
                p.grad = None
        return missing, unexpected


def _members(module: Module) -> Iterator[tuple[str, Any]]:
    """A module's attributes in definition order; a ModuleList's are its items."""
    if isinstance(module, ModuleList):
        return ((str(i), m) for i, m in enumerate(module._modules))
    return iter(vars(module).items())


class ModuleList(Module):
    """A list of modules whose parameters are named `<attr>.<index>.<name>`."""

    def __init__(self, modules: Any = ()) -> None:
        self._modules: list[Module] = []
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> "ModuleList":
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList holds Modules, got {type(module).__name__}")
        self._modules.append(module)
        return self

    def __getitem__(self, i: int) -> Module:
        return self._modules[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules)
