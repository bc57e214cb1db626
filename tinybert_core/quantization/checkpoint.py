"""The int8 checkpoint format: what `save_pretrained` writes for a quantized model, and the one
function that turns its arrays into a model (`fill_int8`), used both when a directory is loaded
and right after post-training quantization.

A quantized model directory is a Hugging Face-style directory (config.json, model.safetensors,
vocab.txt) in which:

- config.json has a `quantization_config` object (`QuantizationConfig.to_dict`):
  `quant_method` "tinybert_int8" (so transformers refuses the directory instead of misreading
  it), `format_version`, `mode` ("dynamic" | "static"), `activations` ("per_row" |
  "per_tensor"), the static calibration (`observer`, `percentile`, `calibration`), and
  `modules_to_not_convert` (layers deliberately left float32).
- model.safetensors keeps the float model's keys. Every quantized layer's `weight` is int8
  (symmetric, zero point 0, [-127, 127]) with a float32 `weight_scale` beside it, shaped to
  broadcast against the weight along its output channels: (out, 1) for a Linear's (out, in)
  weight and the word-embedding table's (V, E) rows, (1, V) for MobileBERT's MLM output block
  `cls.predictions.dense.weight`, which HF stores as (H - E, V). real = q * scale.
- Static mode adds `<layer>.input_range`: float32 [lo, hi], the calibrated range of the layer's
  input (`cls.predictions.decoder.input_range` for the MLM head's, which its two GEMMs share).
  The scale and zero point follow from it on the machine that runs the model (8-bit codes, or
  7-bit where the fastest GEMM is AVX2's), through the same `quantize_params` dynamic mode uses.
- Everything else is float32 as in the float model: biases, NoNorm/LayerNorm, position and
  token-type embeddings (small, and read by slicing), the MLM bias.

What is quantized: every Linear of the backbone and heads, the word-embedding table, and the
MLM decoder, which stays tied to it (its int8 table and scales are the embedding's). The one
rule is `quantizable` below; a layer in modules_to_not_convert stays float (the MLM decoder
follows the word embeddings).

Loading never creates a float32 copy of a quantized weight: the model is built with
`PendingLayers` placeholders and each is replaced by a layer packed straight from the int8
arrays. Every inconsistency (a missing scale, a wrong dtype or shape, a scale of 0, inf or nan,
a bad range, a mode that does not match the arrays) is a `CheckpointError` naming the file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autograd import nn
from autograd.serialization import CheckpointError
from tinybert_core.quantization.modules import (
    InputQuantizer,
    PendingEmbedding,
    PendingLinear,
    QuantizedEmbedding,
    QuantizedLinear,
    QuantizedLMPredictionHead,
    get_submodule,
    set_submodule,
)

QUANT_METHOD = "tinybert_int8"
FORMAT_VERSION = 1
MODES = ("dynamic", "static")
ACTIVATIONS = ("per_row", "per_tensor")
OBSERVERS = ("minmax", "percentile")
WORD_EMBEDDINGS = "embeddings.word_embeddings"     # HF's name; the only table quantized


@dataclass
class QuantizationConfig:
    """How a model was quantized: config.json's `quantization_config`."""

    mode: str = "dynamic"
    activations: str = "per_row"             # dynamic ranges per row (token) or per tensor
    observer: str | None = None              # static: how ranges were calibrated
    percentile: float | None = None          # static + percentile observer
    calibration: dict[str, Any] = field(default_factory=dict)   # informational: files, batches
    modules_to_not_convert: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"quantization_config: mode must be one of {', '.join(MODES)}, "
                             f"got {self.mode!r}")
        if self.activations not in ACTIVATIONS:
            raise ValueError(f"quantization_config: activations must be one of "
                             f"{', '.join(ACTIVATIONS)}, got {self.activations!r}")
        if self.mode == "static":
            if self.activations != "per_tensor":
                raise ValueError("quantization_config: static ranges are per tensor "
                                 "(activations must be 'per_tensor')")
            if self.observer not in OBSERVERS:
                raise ValueError(f"quantization_config: a static model needs an observer in "
                                 f"{', '.join(OBSERVERS)}, got {self.observer!r}")
        if self.percentile is not None and not (isinstance(self.percentile, (int, float))
                                                and 50.0 < self.percentile <= 100.0):
            raise ValueError(f"quantization_config: percentile must lie in (50, 100], got "
                             f"{self.percentile!r}")
        if not isinstance(self.modules_to_not_convert, list) or not all(
                isinstance(m, str) for m in self.modules_to_not_convert):
            raise ValueError("quantization_config: modules_to_not_convert must be a list of "
                             "module names")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"quant_method": QUANT_METHOD, "format_version": FORMAT_VERSION,
                               "mode": self.mode, "activations": self.activations,
                               "weights": "int8 symmetric per output channel [-127, 127]",
                               "modules_to_not_convert": list(self.modules_to_not_convert)}
        if self.mode == "static":
            out["observer"] = self.observer
            if self.percentile is not None:
                out["percentile"] = self.percentile
        if self.calibration:
            out["calibration"] = dict(self.calibration)
        return out

    @classmethod
    def from_dict(cls, data: Any, source: str = "quantization_config") -> QuantizationConfig:
        if not isinstance(data, dict):
            raise CheckpointError(f"{source}: quantization_config must be an object, got "
                                  f"{type(data).__name__}")
        if data.get("quant_method") != QUANT_METHOD:
            raise CheckpointError(f"{source}: quantization_config.quant_method is "
                                  f"{data.get('quant_method')!r}; tinybert reads only "
                                  f"{QUANT_METHOD!r} checkpoints")
        if data.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"{source}: int8 format_version {data.get('format_version')!r}"
                                  f" is not {FORMAT_VERSION}, the version this tinybert reads")
        try:
            return cls(mode=data.get("mode"), activations=data.get("activations"),
                       observer=data.get("observer"), percentile=data.get("percentile"),
                       calibration=data.get("calibration") or {},
                       modules_to_not_convert=data.get("modules_to_not_convert", []))
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{source}: {e}") from e


def quantization_config(config: Any, source: str = "config.json") -> QuantizationConfig | None:
    """The QuantizationConfig a model config carries (config.json's quantization_config), or
    None for a float model."""
    raw = getattr(config, "extra", {}).get("quantization_config")
    return None if raw is None else QuantizationConfig.from_dict(raw, source)


def is_quantized(model: nn.Module) -> bool:
    return quantization_config(getattr(model, "config", None)) is not None


def lm_heads(model: nn.Module) -> dict[str, nn.Module]:
    """HF's MLM prediction heads (`...cls.predictions`: a transform, a tied decoder, a bias),
    found by those attribute names, float or quantized."""
    return {name: m for name, m in model.named_modules()
            if name.endswith("predictions") and all(hasattr(m, a)
                                                    for a in ("transform", "decoder", "bias"))}


def word_embeddings_name(model: nn.Module) -> str | None:
    names = [n for n, _ in model.named_modules() if n.endswith(WORD_EMBEDDINGS)]
    return names[0] if names else None


def quantizable(name: str, kind: str, keep_float: Any) -> bool:
    """The one rule for what is int8: every Linear and the word-embedding table, minus the
    modules kept float. `kind` is "linear" or "embedding"."""
    if name in keep_float:
        return False
    return kind == "linear" or name.endswith(WORD_EMBEDDINGS)


# --- model -> arrays -----------------------------------------------------------------------------

def int8_state_dict(model: nn.Module) -> dict[str, np.ndarray]:
    """The arrays `save_pretrained` writes for a quantized model (see the module docstring)."""
    out = {name: p.numpy() for name, p in model.named_parameters()}
    tied = set()
    for name, head in lm_heads(model).items():
        if isinstance(head, QuantizedLMPredictionHead):
            tied.add(f"{name}.decoder")         # the word-embedding table, saved under its name
            if head.decoder.input_range is not None:
                out[f"{name}.decoder.input_range"] = np.asarray(head.decoder.input_range,
                                                                np.float32)
            if head.dense is not None:
                tied.add(f"{name}.dense")
                out[f"{name}.dense.weight"] = head.dense.int8_weight().T.copy()     # (H-E, V)
                out[f"{name}.dense.weight_scale"] = head.dense.weight_scale[None, :]
    for name, m in model.named_modules():
        if name in tied:
            continue
        if isinstance(m, QuantizedLinear):
            out[f"{name}.weight"] = m.int8_weight()
            out[f"{name}.weight_scale"] = m.weight_scale[:, None]
            if m.bias is not None:
                out[f"{name}.bias"] = m.bias
            if m.input_range is not None:
                out[f"{name}.input_range"] = np.asarray(m.input_range, np.float32)
        elif isinstance(m, QuantizedEmbedding):
            out[f"{name}.weight"] = m.weight
            out[f"{name}.weight_scale"] = m.weight_scale[:, None]
    return out


# --- arrays -> model -----------------------------------------------------------------------------

class _State:
    """The checkpoint's arrays, with checked access and a record of what was read."""

    def __init__(self, state: dict[str, np.ndarray], source: str) -> None:
        self.arrays, self.source, self.used = state, source, set()

    def fail(self, message: str) -> CheckpointError:
        return CheckpointError(f"{self.source}: {message}")

    def get(self, key: str) -> np.ndarray:
        if key not in self.arrays:
            raise self.fail(f"missing tensor {key!r}")
        self.used.add(key)
        return self.arrays[key]

    def has(self, key: str) -> bool:
        return key in self.arrays

    def float32(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        arr = self.get(key)
        if arr.dtype != np.float32:
            raise self.fail(f"dtype mismatch: {key} is {arr.dtype}, expected float32")
        if arr.shape != shape:
            raise self.fail(f"{key} has shape {arr.shape}, expected {shape}")
        return arr

    def int8(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        arr = self.get(key)
        if arr.dtype != np.int8:
            raise self.fail(f"dtype mismatch: {key} is {arr.dtype}, expected int8 (it is "
                            f"quantized; list it in modules_to_not_convert to keep it float)")
        if arr.shape != shape:
            raise self.fail(f"{key} has shape {arr.shape}, expected {shape}")
        return arr

    def scale(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        """A weight scale: float32 of exactly `shape`, every value finite and > 0; flat."""
        if not self.has(key):
            raise self.fail(f"missing scale {key!r} for the int8 weight "
                            f"{key.removesuffix('_scale')!r}")
        arr = self.float32(key, shape)
        bad = ~(np.isfinite(arr) & (arr > 0))
        if bad.any():
            raise self.fail(f"{key} holds {int(bad.sum())} scale(s) that are 0, negative, inf "
                            f"or nan (first: {arr.reshape(-1)[np.argmax(bad.reshape(-1))]})")
        return arr.reshape(-1)

    def input_range(self, key: str, static: bool) -> tuple[float, float] | None:
        if not static:
            if self.has(key):
                raise self.fail(f"{key} is a static calibration range, but quantization_config "
                                f"says mode 'dynamic'")
            return None
        if not self.has(key):
            raise self.fail(f"missing calibrated range {key!r} (quantization_config says mode "
                            f"'static')")
        lo, hi = (float(v) for v in self.float32(key, (2,)))
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise self.fail(f"{key} must be a finite range [lo, hi] with lo <= hi, got "
                            f"[{lo}, {hi}]")
        return lo, hi


def _float_linear(state: _State, name: str, m: PendingLinear) -> nn.Linear:
    """A float32 Linear straight from the checkpoint (a layer kept float)."""
    layer = nn.Linear(1, 1, bias=m.has_bias)          # then given the checkpoint's arrays
    layer.in_features, layer.out_features = m.in_features, m.out_features
    layer.weight = nn.Parameter(state.float32(f"{name}.weight", (m.out_features, m.in_features)))
    if m.has_bias:
        layer.bias = nn.Parameter(state.float32(f"{name}.bias", (m.out_features,)))
    return layer


def _float_embedding(state: _State, name: str, m: PendingEmbedding) -> nn.Embedding:
    table = nn.Embedding(1, m.embedding_dim)
    table.num_embeddings = m.num_embeddings
    table.weight = nn.Parameter(state.float32(f"{name}.weight",
                                              (m.num_embeddings, m.embedding_dim)))
    return table


def _linear(state: _State, name: str, m: PendingLinear, quantizer: InputQuantizer,
            static: bool) -> QuantizedLinear:
    shape = (m.out_features, m.in_features)
    weight = state.int8(f"{name}.weight", shape)
    scale = state.scale(f"{name}.weight_scale", (m.out_features, 1))
    bias = state.float32(f"{name}.bias", (m.out_features,)) if m.has_bias else None
    return QuantizedLinear(weight, scale, bias, quantizer,
                           state.input_range(f"{name}.input_range", static))


def _lm_head(state: _State, name: str, head: nn.Module, embeddings: QuantizedEmbedding,
             quantizer: InputQuantizer, static: bool) -> QuantizedLMPredictionHead:
    """The MLM head with the tied int8 decoder; MobileBERT's extra block `dense` is stored as
    HF's (H - E, V) with one scale per vocabulary column."""
    dense = None
    pending = getattr(head, "dense", None)
    if isinstance(pending, PendingLinear) and pending.out_features:
        v, extra = pending.in_features, pending.out_features              # (V, H - E) storage
        q = state.int8(f"{name}.dense.weight", (extra, v))
        scale = state.scale(f"{name}.dense.weight_scale", (1, v))
        dense = QuantizedLinear(np.ascontiguousarray(q.T), scale, None, quantizer)
    bias = head.bias
    bias.data = state.float32(f"{name}.bias", bias.shape)
    state.used.add(f"{name}.bias")
    return QuantizedLMPredictionHead(head.transform, embeddings, dense, bias, quantizer,
                                     state.input_range(f"{name}.decoder.input_range", static))


def fill_int8(model: nn.Module, arrays: dict[str, np.ndarray], qconfig: QuantizationConfig,
              source: str) -> dict[str, list[str]]:
    """Replace the `PendingLayers` placeholders of `model` (built with seed=PendingLayers())
    by layers made from `arrays` (the format above, keys as the model names them), load the
    float parameters, and freeze the model for inference. Returns the loading info: keys
    ignored because the model has no module for them (another task's head)."""
    state, keep = _State(arrays, source), set(qconfig.modules_to_not_convert)
    static = qconfig.mode == "static"
    quantizer = InputQuantizer(per_row=qconfig.activations == "per_row")
    pending = [(n, m) for n, m in model.named_modules()
               if isinstance(m, (PendingLinear, PendingEmbedding))]
    heads = lm_heads(model)
    in_head = {f"{h}.{part}" for h in heads for part in ("dense", "decoder")}
    for name, m in pending:
        if name in in_head:
            continue
        kind = "linear" if isinstance(m, PendingLinear) else "embedding"
        if quantizable(name, kind, keep):
            layer = _linear(state, name, m, quantizer, static) if kind == "linear" else \
                QuantizedEmbedding(state.int8(f"{name}.weight", (m.num_embeddings,
                                                                 m.embedding_dim)),
                                   state.scale(f"{name}.weight_scale", (m.num_embeddings, 1)))
        else:
            layer = _float_linear(state, name, m) if kind == "linear" else \
                _float_embedding(state, name, m)
        set_submodule(model, name, layer)
    embeddings_name = word_embeddings_name(model)
    for name, head in heads.items():
        table = get_submodule(model, embeddings_name) if embeddings_name else None
        if isinstance(table, QuantizedEmbedding):
            set_submodule(model, name, _lm_head(state, name, head, table, quantizer, static))
        else:                                 # a float table: the float head, tied to it
            head.decoder.weight = table.weight
            dense = getattr(head, "dense", None)
            if isinstance(dense, PendingLinear):
                head.dense = _float_linear(state, f"{name}.dense", dense)
    params = dict(model.named_parameters())
    for key, p in params.items():
        if key in state.used:
            continue
        value = state.float32(key, p.shape)
        p.data = value
    for p in model.parameters():
        p.requires_grad, p.grad = False, None
    leftover = sorted(set(arrays) - state.used)
    module_names = {n for n, _ in model.named_modules() if n}
    stray = [k for k in leftover if k.rpartition(".")[0] in module_names]
    if stray:
        raise state.fail(f"unexpected tensors for this model's layers: {', '.join(stray[:8])}"
                         f"{' ...' if len(stray) > 8 else ''}")
    model.train(False)
    return {"missing_keys": [], "unexpected_keys": leftover, "ignored_keys": []}


__all__ = ["QUANT_METHOD", "FORMAT_VERSION", "MODES", "ACTIVATIONS", "OBSERVERS",
           "QuantizationConfig", "quantization_config", "is_quantized", "lm_heads",
           "word_embeddings_name", "quantizable", "int8_state_dict", "fill_int8"]
