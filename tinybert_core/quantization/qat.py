"""Quantization-aware training (QAT): fine-tune a float model through the rounding its dynamic
int8 version will do, so that the weights learn to live with it.

`prepare_qat(model, QATConfig(...))` swaps, in place, every layer that post-training
quantization makes int8 (`ptq.units`: every Linear of the backbone and heads, the
word-embedding table; minus `modules_to_not_convert`) for a QAT twin that holds the SAME
Parameter objects under the same attribute names, so optimizers, state dicts and checkpoints
see nothing new, and the fine-tuned model saves as an ordinary float checkpoint. Each twin
computes with fake-quantized values (`autograd.functional.fake_quantize`, the
straight-through estimator):

- weights: symmetric per output channel (per row for the embedding table), zero point 0,
  codes in [-127, 127], the scale amax / 127: `modules.weight_scale`, `quantize_weight`'s own;
- a Linear's input: asymmetric uint8 codes 0..qmax over [min(lo, 0), max(hi, 0)] of the batch
  itself, per row (token) or per tensor, through `backends.int8.quantize_params`: what dynamic
  int8 inference does at run time (`InputQuantizer`, the `quantize_u8` kernels).

Scales and zero points are measured from the detached data on every call and never
differentiated. The forward therefore equals the int8 model that `tinybert quantize --mode
dynamic` makes of the saved weights, up to float32 summation order (tests/tinybert_core/
quantization/test_qat.py), provided the inference machine uses the same `activation_max`:
255 (8-bit codes: the VNNI and portable kernels, the NumPy reference) or 127 (7-bit: the AVX2
kernel, `backends.numba_int8.activation_max()`). That is a choice of the training run
(`QATConfig.activation_max`; `default_activation_max()` is this machine's Numba choice), since
the model may be deployed elsewhere. Under `--int8-dispatch auto` a layer too small for int8
to pay runs float32 on its dequantized weight without quantizing its input; QAT then trained
for a rounding that does not happen there, which costs nothing measurable (weights stay on
their int8 grid either way).

Static mode (calibrated ranges) is not emulated; neither is the MLM head's tied int8 decoder:
a model with one is refused (fine-tuning heads have none).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import autograd.functional as F
from autograd import nn
from autograd.tensor import Tensor
from backends.int8 import quantize_params
from tinybert_core.quantization.checkpoint import ACTIVATIONS, is_quantized
from tinybert_core.quantization.modules import (
    WEIGHT_MAX,
    get_submodule,
    set_submodule,
    weight_scale,
)
from tinybert_core.quantization.ptq import resolve_keep_float, units

CONFIG_KEY = "quantization_aware_training"      # config.json's record of a QAT run
ACTIVATION_MAXES = (255, 127)                   # 8-bit codes, or the AVX2 kernel's 7-bit ones


def default_activation_max() -> int:
    """The activation codes this machine's Numba int8 kernels use: 255, or 127 on AVX2."""
    from backends.numba_int8 import activation_max
    return activation_max()


@dataclass
class QATConfig:
    """How the int8 model will quantize: the dynamic mode's activation ranges, its largest
    activation code, and the layers left float32 (`tinybert quantize --keep-float`)."""

    activations: str = "per_row"                 # "per_row" | "per_tensor", as quantize's
    activation_max: int = 255                    # 255 or 127 (see the module docstring)
    modules_to_not_convert: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.activations not in ACTIVATIONS:
            raise ValueError(f"QAT: activations must be one of {', '.join(ACTIVATIONS)}, got "
                             f"{self.activations!r}")
        if self.activation_max not in ACTIVATION_MAXES:
            raise ValueError(f"QAT: activation_max must be 255 (8-bit) or 127 (7-bit), got "
                             f"{self.activation_max!r}")

    @classmethod
    def from_record(cls, record: Any, where: str) -> "QATConfig":
        """The config a QAT run recorded (`to_dict`'s output, read back from `where`), checked
        as the constructor checks its arguments; a bad record is a ValueError naming `where`."""
        try:
            if not isinstance(record, dict) or record.get("mode") != "dynamic":
                raise ValueError(f"expected a dynamic-mode record, got {record!r}")
            keep = record.get("modules_to_not_convert", [])
            if not (isinstance(keep, list) and all(isinstance(k, str) for k in keep)):
                raise ValueError(f"modules_to_not_convert must be a list of layer names, got "
                                 f"{keep!r}")
            return cls(record.get("activations"), record.get("activation_max"), list(keep))
        except ValueError as e:
            raise ValueError(f"{where}: {CONFIG_KEY}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"mode": "dynamic", "activations": self.activations,
                "activation_max": self.activation_max,
                "weights": "int8 symmetric per output channel [-127, 127]",
                "modules_to_not_convert": list(self.modules_to_not_convert)}


def fake_quantize_weight(w: Tensor) -> Tensor:
    """w on its int8 grid: one symmetric scale per row (a Linear's output channel, an
    embedding's token), measured from w's current values."""
    return F.fake_quantize(w, weight_scale(w.data, 1, w.backend.xp), 0, -WEIGHT_MAX, WEIGHT_MAX)


def fake_quantize_input(x: Tensor, per_row: bool, qmax: int) -> Tensor:
    """x on the uint8 grid dynamic quantization gives it: its own range per row (over the last
    axis) or over the whole tensor, mapped to codes 0..qmax with a zero point."""
    if not x.data.size:
        return x
    rows = x.data.reshape(-1, x.shape[-1])                                   # (M, K)
    if per_row:
        scale, zero_point = quantize_params(rows.min(axis=1), rows.max(axis=1), qmax,
                                            x.backend.xp)
        lead = (*x.shape[:-1], 1)
        scale, zero_point = scale.reshape(lead), zero_point.reshape(lead)
    else:
        scale, zero_point = quantize_params(rows.min(), rows.max(), qmax, x.backend.xp)
    return F.fake_quantize(x, scale, zero_point, 0, qmax)


class QATLinear(nn.Linear):
    """A Linear computing with fake-quantized input and weight; holds the original's
    Parameters (same objects, same names)."""

    def __init__(self, linear: nn.Linear, config: QATConfig) -> None:
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias
        self.per_row = config.activations == "per_row"
        self.activation_max = config.activation_max

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(fake_quantize_input(x, self.per_row, self.activation_max),
                        fake_quantize_weight(self.weight), self.bias)

    def __repr__(self) -> str:
        rows = "per row" if self.per_row else "per tensor"
        return (f"QATLinear({self.in_features}, {self.out_features}, bias="
                f"{self.bias is not None}, activations {rows} 0..{self.activation_max})")


class QATEmbedding(nn.Embedding):
    """An Embedding looked up in its fake-quantized table (int8 per row, as the int8 model
    stores it); holds the original's Parameter."""

    def __init__(self, embedding: nn.Embedding) -> None:
        self.num_embeddings, self.embedding_dim = embedding.num_embeddings, \
            embedding.embedding_dim
        self.padding_idx = embedding.padding_idx
        self.weight = embedding.weight

    def forward(self, ids: Any, name: str = "ids") -> Tensor:
        return F.embedding(ids, fake_quantize_weight(self.weight), name, self.padding_idx)

    def __repr__(self) -> str:
        return f"QATEmbedding({self.num_embeddings}, {self.embedding_dim}, int8 per row)"


def prepare_qat(model: Any, config: QATConfig | None = None) -> Any:
    """Make `model` (a float tinybert PreTrainedModel) train through dynamic int8's rounding,
    in place (see the module docstring), and record `config` in its config.json
    (`quantization_aware_training`). Returns the model."""
    config = config or QATConfig()
    if is_quantized(model):
        raise ValueError("prepare_qat: the model is already int8 (inference-only); prepare "
                         "its float original")
    if any(isinstance(m, (QATLinear, QATEmbedding)) for m in model.modules()):
        raise ValueError("prepare_qat: the model is already prepared for QAT")
    layers = units(model, config.modules_to_not_convert)
    heads = [name for name, kind in layers.items() if kind == "lm_head"]
    if heads:
        raise ValueError(f"prepare_qat: {heads[0]} is an MLM decoder tied to the int8 "
                         f"word-embedding table, which QAT does not emulate; keep the table "
                         f"float (modules_to_not_convert) or fine-tune a task head")
    for name, kind in layers.items():
        layer = get_submodule(model, name)
        twin = QATLinear(layer, config) if kind == "linear" else QATEmbedding(layer)
        set_submodule(model, name, twin)
    if getattr(model, "config", None) is not None:
        model.config.extra[CONFIG_KEY] = config.to_dict()
    return model


def prepare_for_finetuning(model: Any, config: QATConfig | None) -> Any:
    """`prepare_qat` for `tinybert finetune --qat` when `config` is given, its
    modules_to_not_convert read as --keep-float patterns (`ptq.resolve_keep_float`). A QAT
    record that the model inherited from an earlier run is dropped either way: it describes
    that run, not this one. (The record is in the run's config, so a --resume with other
    settings is refused as a different config.)"""
    model.config.extra.pop(CONFIG_KEY, None)
    if config is None:
        return model
    keep = resolve_keep_float(model, config.modules_to_not_convert)
    return prepare_qat(model, replace(config, modules_to_not_convert=keep))


__all__ = ["CONFIG_KEY", "ACTIVATION_MAXES", "QATConfig", "QATEmbedding", "QATLinear",
           "default_activation_max", "fake_quantize_input", "fake_quantize_weight",
           "prepare_for_finetuning", "prepare_qat"]
