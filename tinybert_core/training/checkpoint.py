"""Training checkpoints: everything a killed run needs to continue bit for bit, in one file.

A checkpoint is one `.npz` written atomically (temp file + rename; a crash mid-write leaves the
previous checkpoint intact) and read without pickle. It holds:
- `model/<name>`: every parameter of the model being trained;
- `optim/<key>`: the optimizer's state_dict (step and moments);
- `data/<key>`: the data iterator's position (arrays or ints);
- `meta`: UTF-8 JSON as a uint8 array — format tag, the model config, the global step, the
  strategy stage, the dropout generators' states and any extra JSON the trainer wants back.

Loading checks the config before touching the model, so a checkpoint from another config is a
clear error before any training starts.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from autograd import nn
from autograd.files import CheckpointError, parse_json
from autograd.serialization import load_npz, save_npz

FORMAT = "tinybert-training-checkpoint/1"


def dropout_states(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Bit-generator state of every Dropout generator, by module name and device."""
    out: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Dropout):
            states = {dev: g.bit_generator.state for dev, g in module._generators.items()
                      if hasattr(g, "bit_generator")}
            if states:
                out[name] = states
    return out


def _parse_generators(states: Any, model: nn.Module, where: str
                      ) -> dict[str, dict[str, np.random.Generator]]:
    """Dropout generators rebuilt from their saved states, checked before any is installed."""
    if not isinstance(states, dict):
        raise CheckpointError(f"{where}: 'generators' must be an object, got "
                              f"{type(states).__name__}")
    modules = dict(model.named_modules())
    out: dict[str, dict[str, np.random.Generator]] = {}
    for name, per_device in states.items():
        if not isinstance(modules.get(name), nn.Dropout):
            raise CheckpointError(f"{where}: dropout state for {name!r}, which is not a "
                                  f"Dropout module of this model")
        if not isinstance(per_device, dict):
            raise CheckpointError(f"{where}: dropout state of {name!r} must be an object")
        out[name] = {}
        for dev, state in per_device.items():
            g = np.random.default_rng()
            try:
                if not isinstance(state, dict) or \
                        state.get("bit_generator") != g.bit_generator.state["bit_generator"]:
                    raise ValueError("not a PCG64 state")
                g.bit_generator.state = state
            except (TypeError, ValueError, KeyError, OverflowError) as e:
                raise CheckpointError(f"{where}: invalid dropout generator state for {name!r} "
                                      f"on {dev!r}: {e}") from None
            out[name][str(dev)] = g
    return out


def restore_dropout_states(model: nn.Module, states: Any, where: str = "dropout states") -> None:
    """Install saved Dropout generator states (all checked first); `where` names the source."""
    modules = dict(model.named_modules())
    for name, per_device in _parse_generators(states, model, where).items():
        modules[name]._generators = per_device


def _flatten_data_state(state: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays go to the npz; everything JSON-able goes to meta."""
    arrays, plain = {}, {}
    for k, v in state.items():
        if isinstance(v, np.ndarray):
            arrays[k] = v
        else:
            plain[k] = v
    return arrays, plain


def save_training_checkpoint(path: str | Path, model: nn.Module, optimizer: Any, step: int,
                             config: dict[str, Any], data_state: dict[str, Any] | None = None,
                             extra: dict[str, Any] | None = None) -> Path:
    """Write model + optimizer + step + data position + RNG states to `path` atomically."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    for name, value in model.state_dict().items():
        arrays[f"model/{name}"] = np.ascontiguousarray(value)
    if optimizer is not None:
        for key, value in optimizer.state_dict().items():
            arrays[f"optim/{key}"] = np.asarray(value)
    data_arrays, data_plain = _flatten_data_state(data_state or {})
    for key, value in data_arrays.items():
        arrays[f"data/{key}"] = value
    meta = {"format": FORMAT, "step": int(step), "config": config,
            "generators": dropout_states(model), "data": data_plain, "extra": extra or {}}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8).copy()
    save_npz(path, arrays)
    return path


def read_checkpoint_meta(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(meta, arrays) of a training checkpoint, with the format and the meta's types checked."""
    arrays = load_npz(path)
    where = f"checkpoint {path}"
    raw = arrays.pop("meta", None)
    if raw is None:
        raise CheckpointError(f"{where}: not a tinybert training checkpoint (no 'meta' entry)")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"{where}: the meta entry must be UTF-8 bytes (1-D uint8), got "
                              f"{raw.dtype} of shape {raw.shape}")
    try:
        text = raw.tobytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{where}: the meta entry is not UTF-8: {e.reason}") from None
    meta = parse_json(text, f"{where}: meta")
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where}: the meta entry is a JSON {type(meta).__name__}, not an "
                              f"object")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{where}: unsupported checkpoint format {meta.get('format')!r}; "
                              f"expected {FORMAT!r}")
    step = meta.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{where}: 'step' must be a non-negative integer, got {step!r}")
    for key in ("config", "generators", "data", "extra"):
        if not isinstance(meta.get(key, {}), dict):
            raise CheckpointError(f"{where}: {key!r} must be an object, got "
                                  f"{type(meta[key]).__name__}")
    return meta, arrays


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Fields whose values differ between two config dicts, as "name: saved vs current"."""
    keys = sorted(set(saved) | set(current))
    return [f"{k}: {saved.get(k)!r} vs {current.get(k)!r}" for k in keys
            if saved.get(k) != current.get(k)]


def _check_model_state(state: dict[str, np.ndarray], model: nn.Module, where: str) -> None:
    """Exactly the model's parameters, each of its shape, floating point and finite."""
    params = dict(model.named_parameters())
    missing = [k for k in params if k not in state]
    unexpected = [k for k in state if k not in params]
    if missing or unexpected:
        raise CheckpointError(f"{where}: the weights do not match the model: missing "
                              f"{missing[:5] or 'none'}, unexpected {unexpected[:5] or 'none'}")
    for name, value in state.items():
        if value.shape != params[name].shape:
            raise CheckpointError(f"{where}: {name} has shape {value.shape}, the model "
                                  f"{params[name].shape}")
        if value.dtype.kind != "f":
            raise CheckpointError(f"{where}: {name} has dtype {value.dtype}, not floating point")
        if not np.isfinite(value).all():
            raise CheckpointError(f"{where}: {name} holds NaN or inf")


class ResumeMismatch(CheckpointError):
    """A checkpoint that belongs to a run set up differently: `field` names what differs
    (a config field, "strategy", "pd_steps", a data option), for the CLI to name its option."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def load_training_checkpoint(path: str | Path, model: nn.Module, optimizer: Any,
                             config: dict[str, Any] | None,
                             check: Callable[[dict[str, Any], dict[str, Any]], None]
                             | None = None) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """Restore a checkpoint into `model` and `optimizer`; returns (step, data_state, extra).

    Everything is checked before anything is modified: the format and the meta's types, the
    config (CheckpointError naming the differing fields when the checkpoint was written for
    another one; None leaves the comparison to `check`), then `check(meta, data_state)` if
    given (the caller's own conditions: the run's plan, the data position), then every
    weight's name, shape, dtype and finiteness, the optimizer state and the dropout
    generators. A failed load leaves model and optimizer unchanged.
    """
    meta, arrays = read_checkpoint_meta(path)
    where = f"checkpoint {path}"
    diffs = [] if config is None else config_differences(meta.get("config", {}), config)
    if diffs:
        raise ResumeMismatch(f"{path} was written for a different model config: "
                             + "; ".join(diffs), "config")
    model_state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    optim_state = {k[len("optim/"):]: v for k, v in arrays.items() if k.startswith("optim/")}
    data_state = {k[len("data/"):]: v for k, v in arrays.items() if k.startswith("data/")}
    other = [k for k in arrays if not k.startswith(("model/", "optim/", "data/"))]
    if other:
        raise CheckpointError(f"{where}: unexpected entries {other[:5]}")
    data_state.update(meta.get("data", {}))
    if check is not None:
        check(meta, data_state)
    _check_model_state(model_state, model, where)
    generators = _parse_generators(meta.get("generators", {}), model, where)
    step, extra = meta["step"], meta.get("extra", {})
    # Apply. Parameters and optimizer state are replaced, not written into, so keeping the
    # old objects is enough to put everything back if a step below still fails.
    params = list(model.named_parameters())
    before = [(p, p.data, p.grad) for _, p in params]
    opt_before = None if optimizer is None else (optimizer.state, optimizer.step_count)
    try:
        if optimizer is not None:
            optimizer.load_state_dict(optim_state)
        model.load_state_dict(model_state, strict=True)
    except (ValueError, TypeError) as e:
        for p, data, grad in before:
            p.data, p.grad = data, grad
        if opt_before is not None:
            optimizer.state, optimizer.step_count = opt_before
        raise CheckpointError(f"{where}: {e}") from None
    modules = dict(model.named_modules())
    for name, per_device in generators.items():
        modules[name]._generators = per_device
    return step, data_state, extra
