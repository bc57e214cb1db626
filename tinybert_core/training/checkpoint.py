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
from pathlib import Path
from typing import Any

import numpy as np

from autograd import nn
from autograd.serialization import CheckpointError, load_npz, save_npz

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


def restore_dropout_states(model: nn.Module, states: dict[str, dict[str, Any]]) -> None:
    modules = dict(model.named_modules())
    for name, per_device in states.items():
        module = modules.get(name)
        if not isinstance(module, nn.Dropout):
            raise CheckpointError(f"checkpoint has dropout state for {name!r}, which is not a "
                                  f"Dropout module of this model")
        module._generators = {}
        for dev, state in per_device.items():
            g = np.random.default_rng()
            g.bit_generator.state = state
            module._generators[dev] = g


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
    """(meta, arrays) of a training checkpoint, with the format checked."""
    arrays = load_npz(path)
    if "meta" not in arrays:
        raise CheckpointError(f"{path}: not a tinybert training checkpoint (no 'meta' entry)")
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: the checkpoint's meta entry is not valid JSON") from e
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unsupported checkpoint format {meta.get('format')!r}; "
                              f"expected {FORMAT!r}")
    return meta, arrays


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Fields whose values differ between two config dicts, as "name: saved vs current"."""
    keys = sorted(set(saved) | set(current))
    return [f"{k}: {saved.get(k)!r} vs {current.get(k)!r}" for k in keys
            if saved.get(k) != current.get(k)]


def load_training_checkpoint(path: str | Path, model: nn.Module, optimizer: Any,
                             config: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """Restore a checkpoint into `model` and `optimizer`; returns (step, data_state, extra).

    Raises CheckpointError, naming the differing fields, when the checkpoint was written for
    another config, and before anything is modified.
    """
    meta, arrays = read_checkpoint_meta(path)
    diffs = config_differences(meta.get("config", {}), config)
    if diffs:
        raise CheckpointError(f"{path} was written for a different model config: "
                              + "; ".join(diffs))
    model_state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    optim_state = {k[len("optim/"):]: v for k, v in arrays.items() if k.startswith("optim/")}
    data_state = {k[len("data/"):]: v for k, v in arrays.items() if k.startswith("data/")}
    data_state.update(meta.get("data", {}))
    try:
        model.load_state_dict(model_state, strict=True)
        if optimizer is not None:
            optimizer.load_state_dict(optim_state)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from e
    restore_dropout_states(model, meta.get("generators", {}))
    return int(meta["step"]), data_state, meta.get("extra", {})
