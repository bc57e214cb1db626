"""Swappable array backends behind one narrow interface (`backends.base.Backend`).

Backends are named, not imported by model code: `get_backend("numba")` loads one on first use,
so a missing optional dependency (Numba, CuPy) costs nothing until it is asked for, and then
fails with a message that says what is missing. The process default is "numpy" unless the
environment variable TINYBERT_BACKEND (the one documented default; the CLI's --backend sets it
too) or `set_default_backend` names another.
"""
from __future__ import annotations

import importlib
import os
from typing import Any

from backends.base import Backend

# name -> (module, attribute). Listed here, not filled by import side effects, so that the set
# of backends is visible in one place.
_KNOWN = {
    "numpy": ("backends.numpy_backend", "numpy_backend"),
    "numba": ("backends.numba_backend", "numba_backend"),
    "cupy": ("backends.cupy_backend", "cupy_backend"),
}
ENV_VAR = "TINYBERT_BACKEND"
# Process settings a backend's runtime reads when it starts, applied when the backend is
# selected (first loaded by get_backend), never as a side effect of importing a module, and
# never over a value the user set. numba: OpenMP threads that sleep instead of spinning between
# kernels leave the cores to OpenBLAS's matmuls (numba_backend.py's docstring has the numbers).
ENVIRONMENT_DEFAULTS: dict[str, dict[str, str]] = {
    "numba": {"OMP_WAIT_POLICY": "PASSIVE"},
}

_loaded: dict[str, Backend] = {}
_default: str | None = None


class BackendUnavailable(RuntimeError):
    """A known backend that cannot run on this machine (missing package, no GPU)."""


def names() -> list[str]:
    """Every backend name tinybert knows, available here or not."""
    return list(_KNOWN)


def get_backend(name: str | Backend | None = None) -> Backend:
    """The backend called `name` (or the process default for None), loading it on first use."""
    if isinstance(name, Backend):
        return name
    if name is None:
        name = default_backend_name()
    if not isinstance(name, str):
        raise TypeError(f"device must be a backend name like 'numpy', got {type(name).__name__}")
    backend = _loaded.get(name)
    if backend is not None:
        return backend
    if name not in _KNOWN:
        raise ValueError(f"unknown device {name!r}; known backends: {', '.join(_KNOWN)}")
    module_name, attr = _KNOWN[name]
    for key, value in ENVIRONMENT_DEFAULTS.get(name, {}).items():
        os.environ.setdefault(key, value)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise BackendUnavailable(f"backend {name!r} is unavailable: {e}") from e
    backend = getattr(module, attr)
    _loaded[name] = backend
    return backend


def availability() -> dict[str, str | None]:
    """name -> None if the backend loads here, else the reason it does not."""
    out: dict[str, str | None] = {}
    for name in _KNOWN:
        try:
            get_backend(name)
            out[name] = None
        except (BackendUnavailable, ImportError, RuntimeError) as e:
            out[name] = str(e)
    return out


def default_backend_name() -> str:
    global _default
    if _default is None:
        _default = os.environ.get(ENV_VAR, "").strip() or "numpy"
        if _default not in _KNOWN:
            bad, _default = _default, None
            raise ValueError(f"{ENV_VAR}={bad!r} names no backend; known: {', '.join(_KNOWN)}")
    return _default


def default_backend() -> Backend:
    """The backend new tensors use when no device is given."""
    return get_backend(None)


def set_default_backend(name: str) -> Backend:
    """Make `name` the process default (loads it now, so an unavailable one fails here)."""
    global _default
    backend = get_backend(name)
    _default = backend.name
    return backend


def backend_of(array: Any) -> Backend:
    """The backend an existing array belongs to: CuPy arrays to cupy, NumPy ones to the default
    CPU backend (numpy and numba share array types, so the default decides)."""
    if type(array).__module__.split(".")[0] == "cupy":
        return get_backend("cupy")
    default = default_backend()
    return default if default.name != "cupy" else get_backend("numpy")


__all__ = ["Backend", "BackendUnavailable", "get_backend", "availability", "default_backend",
           "default_backend_name", "set_default_backend", "backend_of", "names", "ENV_VAR"]
