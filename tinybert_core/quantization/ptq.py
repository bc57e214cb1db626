"""Post-training quantization of a float model: dynamic, or static with calibrated ranges.

`quantize_model(model, mode=...)` returns a new, inference-only int8 model of the same class
(MobileBERT, IB-BERT or BERT, any task head); the float model is left as it was. It is two
steps, so that a model quantized here and the same model saved and loaded again are one and
the same thing:

1. `quantize_arrays`: the float weights -> the int8 format's arrays (checkpoint.py): every
   quantizable Linear's weight to int8 per output channel (symmetric, [-127, 127]), the
   word-embedding table per row, MobileBERT's MLM output block per vocabulary column; in
   static mode the calibrated input range of every int8 layer.
2. `fill_int8` on a model of the same class built with `PendingLayers` placeholders: exactly
   what loading an int8 directory does.

Dynamic mode (PyTorch's `quantize_dynamic`, TFLite's dynamic range) measures each activation's
range at run time, per tensor or per row; static mode (TFLite's full-integer, ONNX Runtime's
`quantize_static`) fixes it beforehand from calibration batches of real text, through an
observer (observers.py) on each int8 layer's input.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from fnmatch import fnmatchcase
from typing import Any

import numpy as np

from autograd import nn
from autograd.function import no_grad
from autograd.tensor import Tensor
from tinybert_core.quantization.checkpoint import (
    QuantizationConfig,
    fill_int8,
    lm_heads,
    quantizable,
    word_embeddings_name,
)
from tinybert_core.quantization.modules import (
    PendingLayers,
    get_submodule,
    quantize_weight,
    set_submodule,
)
from tinybert_core.quantization.observers import DEFAULT_PERCENTILE, make_observer


def units(model: nn.Module, keep_float: Iterable[str] = ()) -> dict[str, str]:
    """The int8 layers post-training quantization makes of a float model: name -> kind
    ("linear", "embedding", or "lm_head" for an MLM decoder tied to an int8 word-embedding
    table, named `<head>.decoder`)."""
    keep = set(keep_float)
    heads = lm_heads(model)
    in_head = {f"{h}.{part}" for h in heads for part in ("dense", "decoder")}
    out: dict[str, str] = {}
    for name, m in model.named_modules():
        if name in in_head:
            continue
        if isinstance(m, nn.Linear) and quantizable(name, "linear", keep):
            out[name] = "linear"
        elif isinstance(m, nn.Embedding) and quantizable(name, "embedding", keep):
            out[name] = "embedding"
    table = word_embeddings_name(model)
    if table in out:
        out.update({f"{h}.decoder": "lm_head" for h in heads})
    return out


def resolve_keep_float(model: nn.Module, patterns: Iterable[str]) -> list[str]:
    """Module names matched by shell-style `patterns` among the Linear and Embedding layers:
    a pattern matches a whole name ("mobilebert.encoder.layer.23.*") or its end after a dot
    ("classifier", "attention.self.value"). An unmatched pattern is an error, so a typo cannot
    silently quantize everything."""
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Embedding))]
    out: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if fnmatchcase(n, pattern) or fnmatchcase(n, "*." + pattern)]
        if not hits:
            raise ValueError(f"keep-float pattern {pattern!r} matches no Linear or Embedding "
                             f"layer (names look like {names[min(3, len(names) - 1)]!r})")
        out += [n for n in hits if n not in out]
    return out


# --- watching layers: what calibration and the error report see ----------------------------------

class Watched(nn.Module):
    """A layer wrapped to show its input and output to callbacks (only inside `watching`)."""

    def __init__(self, inner: nn.Module, on_input: Callable | None,
                 on_output: Callable | None) -> None:
        self.inner, self.on_input, self.on_output = inner, on_input, on_output

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Any:
        if self.on_input is not None:
            self.on_input(x)
        y = self.inner(x, *args, **kwargs)
        if self.on_output is not None:
            self.on_output(x, y)
        return y


@contextlib.contextmanager
def watching(model: nn.Module, callbacks: dict[str, tuple[Callable | None, Callable | None]]
             ) -> Iterator[None]:
    """Wrap the modules named in `callbacks` ({name: (on_input(x), on_output(x, y))}) for the
    duration of the block, then put the originals back (also after an error)."""
    # Deepest first, so that a parent is never a wrapper when its child is replaced (the MLM
    # head's transform is watched, and so is the Linear inside it); undone in reverse.
    order = sorted(callbacks, key=lambda n: -n.count("."))
    originals = {name: get_submodule(model, name) for name in order}
    done: list[str] = []
    try:
        for name in order:
            on_input, on_output = callbacks[name]
            set_submodule(model, name, Watched(originals[name], on_input, on_output))
            done.append(name)
        yield
    finally:
        for name in reversed(done):
            set_submodule(model, name, originals[name])


def observed_module(model: nn.Module, unit: str, kind: str) -> tuple[str, str]:
    """Which module shows the tensor an int8 layer quantizes: a Linear's input, or the output
    of an MLM head's transform (the z both decoder GEMMs read)."""
    if kind == "lm_head":
        return unit.removesuffix(".decoder") + ".transform", "output"
    return unit, "input"


# --- calibration ---------------------------------------------------------------------------------

def calibrate(model: nn.Module, batches: Iterable[dict[str, Any]], layers: dict[str, str],
              observer: str = "minmax", percentile: float | None = None
              ) -> dict[str, tuple[float, float]]:
    """Run the float model on `batches` (dicts of model arguments) and return the observed
    input range of every int8 layer in `layers` (name -> kind, from `units`)."""
    observers = {name: make_observer(observer, percentile) for name, kind in layers.items()
                 if kind != "embedding"}
    callbacks: dict[str, tuple[Callable | None, Callable | None]] = {}
    for name in observers:
        module, side = observed_module(model, name, layers[name])
        update = observers[name].update
        callbacks[module] = ((lambda x, u=update: u(x.numpy())), None) if side == "input" \
            else (None, (lambda x, y, u=update: u(y.numpy())))
    was_training = model.training
    model.eval()
    seen = 0
    try:
        with no_grad(), watching(model, callbacks):
            for batch in batches:
                model(**batch)
                seen += 1
    finally:
        model.train(was_training)
    if not seen:
        raise ValueError("calibrate: no calibration batches")
    return {name: obs.range() for name, obs in observers.items()}


# --- float model -> the int8 format's arrays -> int8 model ---------------------------------------

def quantize_arrays(model: nn.Module, layers: dict[str, str],
                    ranges: dict[str, tuple[float, float]] | None = None
                    ) -> dict[str, np.ndarray]:
    """The int8 checkpoint's arrays for a float `model` (checkpoint.py's format): its float
    parameters, with every layer in `layers` replaced by int8 weights and scales, and the
    calibrated input ranges when `ranges` is given (static mode)."""
    arrays = {name: p.numpy() for name, p in model.named_parameters()}
    for name, kind in layers.items():
        if kind == "lm_head":
            head = get_submodule(model, name.removesuffix(".decoder"))
            dense = getattr(head, "dense", None)
            if dense is not None and dense.weight.shape[0]:
                key = name.removesuffix(".decoder") + ".dense"
                # HF stores it (H - E, V): one scale per vocabulary column, i.e. per output.
                arrays[f"{key}.weight"], arrays[f"{key}.weight_scale"] = quantize_weight(
                    dense.weight.numpy(), axis=0)
        else:
            weight = get_submodule(model, name).weight.numpy()
            arrays[f"{name}.weight"], arrays[f"{name}.weight_scale"] = quantize_weight(weight)
        if ranges is not None and kind != "embedding":
            arrays[f"{name}.input_range"] = np.asarray(ranges[name], np.float32)
    return arrays


def quantize_model(model: Any, mode: str = "dynamic", activations: str = "per_row",
                   calibration: Iterable[dict[str, Any]] | None = None,
                   observer: str = "minmax", percentile: float | None = None,
                   keep_float: Sequence[str] = (),
                   calibration_info: dict[str, Any] | None = None) -> Any:
    """An int8 copy of the float `model` (a tinybert PreTrainedModel), for inference.

    mode "dynamic": activations quantized at run time, `activations` "per_row" (one range per
    token, the default) or "per_tensor" (PyTorch's choice). mode "static": per-tensor ranges
    calibrated on `calibration` (model-argument dicts of real text) with `observer` "minmax" or
    "percentile". `keep_float`: exact module names to leave float32 (`resolve_keep_float`
    turns patterns into names). `calibration_info` is recorded in quantization_config.
    """
    static = mode == "static"
    if static and observer == "percentile" and percentile is None:
        percentile = DEFAULT_PERCENTILE
    qconfig = QuantizationConfig(
        mode=mode, activations="per_tensor" if static else activations,
        observer=observer if static else None,
        percentile=(percentile if observer == "percentile" else None) if static else None,
        calibration=dict(calibration_info or {}), modules_to_not_convert=list(keep_float))
    layers = units(model, keep_float)
    ranges = None
    if static:
        if calibration is None:
            raise ValueError("quantize_model: static mode needs calibration batches")
        ranges = calibrate(model, calibration, layers, observer, percentile)
    arrays = quantize_arrays(model, layers, ranges)
    config = model.config.replace(extra={**model.config.extra,
                                         "quantization_config": qconfig.to_dict()})
    qmodel = type(model)(config, seed=PendingLayers())
    qmodel.loading_info = fill_int8(qmodel, arrays, qconfig,
                                    f"quantize_model({type(model).__name__})")
    qmodel.name_or_path = getattr(model, "name_or_path", "")
    return qmodel


__all__ = ["units", "resolve_keep_float", "Watched", "watching", "observed_module",
           "calibrate", "quantize_arrays", "quantize_model"]
