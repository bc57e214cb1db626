"""What MobileBERT and BERT share: initialisation, input checks, the attention core, the
encoder loop and the backbone's call.

`multi_head_attention` is the one scaled dot-product attention both families run (spec 2.3:
softmax(Q K^T / sqrt(hs) + mask) V); `Encoder` runs a stack of blocks and collects the
per-layer extras distillation reads (`hidden_states`, `attentions`, `attention_scores`);
`Backbone` is the call of `MobileBertModel` and `BertModel`, which differ only in the blocks
they build. Every module here returns a NamedTuple from `outputs.py`, never a bare tuple.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, NamedTuple

import numpy as np

import autograd.functional as F
from autograd import nn
from autograd.tensor import Tensor
from tinybert_core.config import ACTIVATIONS, MobileBertConfig
from tinybert_core.models.hf_io import PreTrainedModel
from tinybert_core.models.outputs import (
    AttentionOutput,
    BaseModelOutputWithPooling,
    EncoderOutput,
)
from tinybert_core.quantization.modules import PendingLayers

TORCH_LAYER_NORM_EPS = 1e-5  # nn.LayerNorm's default, used where HF passes no eps


def get_activation(name: str) -> Callable[[Tensor], Tensor]:
    """The activation called `name` in HF's ACT2FN ("gelu" is exact, "gelu_new" tanh)."""
    try:
        kind, approximate = ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}") from None
    if kind == "gelu":
        return partial(F.gelu, approximate=approximate)
    return F.relu if kind == "relu" else F.relu6


class Initializer:
    """Creates layers with the config's init (truncated normal, std initializer_range, as in
    Google's code) from one seeded generator, so a seed fixes every weight and dropout mask.

    `seed=PendingLayers()` (tinybert_core.quantization) builds a model to receive an int8
    checkpoint: Linear and Embedding layers are then weightless placeholders, so loading never
    draws or holds a float32 copy of the weights."""

    def __init__(self, config: MobileBertConfig, seed: Any = None) -> None:
        self.config = config
        self.pending = seed if isinstance(seed, PendingLayers) else None
        if self.pending is not None:
            seed = 0
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def linear(self, in_features: int, out_features: int, bias: bool = True) -> nn.Module:
        if self.pending is not None:
            return self.pending.linear(in_features, out_features, bias)
        return nn.Linear(in_features, out_features, bias, std=self.config.initializer_range,
                         rng=self.rng)

    def embedding(self, num: int, dim: int, padding_idx: int | None = None) -> nn.Module:
        if self.pending is not None:      # an int8 table: padding_idx matters only in training
            return self.pending.embedding(num, dim)
        return nn.Embedding(num, dim, std=self.config.initializer_range, rng=self.rng,
                            padding_idx=padding_idx)

    def dropout(self, p: float) -> nn.Dropout:
        return nn.Dropout(p, seed=int(self.rng.integers(2**31)))

    def norm(self, size: int, eps: float | None = None, kind: str | None = None) -> nn.Module:
        """NoNorm or LayerNorm per `normalization_type` (or `kind`); eps defaults to PyTorch's."""
        kind = kind or self.config.normalization_type
        if kind == "no_norm":
            return nn.NoNorm(size)
        return nn.LayerNorm(size, eps=TORCH_LAYER_NORM_EPS if eps is None else eps)


# --- inputs and masks ----------------------------------------------------------------------------

class ModelInputs(NamedTuple):
    input_ids: np.ndarray                 # (B, T) int64
    attention_mask: np.ndarray | None     # (B, T) bool, None when nothing is masked
    token_type_ids: np.ndarray | None     # (B, T) int64
    position_ids: np.ndarray | None       # (T,) or (B, T) int64, None for arange(T)


def int_array(name: str, x: Any) -> np.ndarray:
    """`x` (array, list or Tensor) as int64, or TypeError naming the argument."""
    arr = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
    if arr.dtype.kind not in "iub":
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def check_inputs(config: MobileBertConfig, input_ids: Any, attention_mask: Any = None,
                 token_type_ids: Any = None, position_ids: Any = None) -> ModelInputs:
    """Validate model inputs (NumPy arrays, lists or Tensors): dtypes, shapes, the mask's 0/1
    values; errors name the argument. The id *values* are checked once, by the embedding op
    each of them indexes (its error names the argument too)."""
    if input_ids is None:
        raise ValueError("input_ids is required")
    ids = int_array("input_ids", input_ids)
    if ids.ndim != 2:
        raise ValueError(f"input_ids must be 2-d (batch, seq_len), got shape {ids.shape}")
    batch, seq_len = ids.shape
    if batch == 0 or seq_len == 0:
        raise ValueError(f"input_ids is empty: shape {ids.shape}")
    if seq_len > config.max_position_embeddings:
        raise ValueError(f"sequence length {seq_len} exceeds max_position_embeddings "
                         f"{config.max_position_embeddings}")
    mask = None
    if attention_mask is not None:
        m = attention_mask.numpy() if isinstance(attention_mask, Tensor) else \
            np.asarray(attention_mask)
        if m.dtype.kind not in "iubf":
            raise TypeError(f"attention_mask must be numeric 0/1, got dtype {m.dtype}")
        if m.shape != ids.shape:
            raise ValueError(f"attention_mask has shape {m.shape}, input_ids {ids.shape}")
        if ((m != 0) & (m != 1)).any():
            raise ValueError("attention_mask must hold only 0 (padding) and 1 (token)")
        mask = None if m.all() else m.astype(bool)
    types = None
    if token_type_ids is not None:
        types = int_array("token_type_ids", token_type_ids)
        if types.shape != ids.shape:
            raise ValueError(f"token_type_ids has shape {types.shape}, input_ids {ids.shape}")
    positions = None
    if position_ids is not None:
        positions = int_array("position_ids", position_ids)
        if positions.shape not in ((seq_len,), (1, seq_len), ids.shape):
            raise ValueError(f"position_ids has shape {positions.shape}; want ({seq_len},) or "
                             f"{ids.shape}")
    return ModelInputs(ids, mask, types, positions)


class AttentionMask(NamedTuple):
    """How masked keys are treated: `additive` (B, 1, 1, T) of 0 / finfo.min (HF), or the
    boolean `keep` (B, 1, 1, T) with masked scaled scores replaced by `fill` (Google's -6)."""

    additive: Any = None
    keep: Any = None
    fill: float | None = None


def make_attention_mask(mask: np.ndarray | None, like: Tensor,
                        fill: float | None = None) -> AttentionMask | None:
    """The per-key mask for (B, T) `mask` (1 keep, 0 pad) in `like`'s dtype and backend."""
    if mask is None:
        return None
    keep = like.backend.asarray(mask[:, None, None, :])                      # (B, 1, 1, T)
    if fill is not None:
        return AttentionMask(keep=keep, fill=float(fill))
    additive = (~mask[:, None, None, :]).astype(like.dtype) * np.finfo(like.dtype).min
    return AttentionMask(additive=like.backend.asarray(additive))


def multi_head_attention(query: Tensor, key: Tensor, value: Tensor, num_heads: int,
                         mask: AttentionMask | None, dropout: nn.Dropout,
                         need_scores: bool = False) -> AttentionOutput:
    """softmax(Q K^T / sqrt(hs) + mask) V over `num_heads` heads.

    query/key/value are the projected (B, T, C) tensors. Returns the merged context (B, T, C)
    as `hidden_states`, the probabilities (B, H, T, T) and, with `need_scores`, the scaled
    masked scores (B, H, T, T); without it, scale and mask are fused into the softmax.
    """
    B, T, C = query.shape
    hs = C // num_heads
    q = query.reshape(B, T, num_heads, hs).permute(0, 2, 1, 3)                # (B, H, T, hs)
    k = key.reshape(B, T, num_heads, hs).permute(0, 2, 3, 1)                  # (B, H, hs, T)
    v = value.reshape(B, T, num_heads, hs).permute(0, 2, 1, 3)                # (B, H, T, hs)
    scores = q @ k                                                            # (B, H, T, T)
    scale = 1.0 / math.sqrt(hs)
    if mask is not None and mask.fill is not None:
        s = F.where(mask.keep, scores * scale, mask.fill)
        probs = F.softmax(s, axis=-1)
    elif need_scores:
        s = scores * scale
        if mask is not None:
            s = s + mask.additive                                             # a constant
        probs = F.softmax(s, axis=-1)
    else:
        s = None
        probs = F.softmax(scores, axis=-1, scale=scale,
                          mask=None if mask is None else mask.additive)
    context = dropout(probs) @ v                                              # (B, H, T, hs)
    context = context.permute(0, 2, 1, 3).reshape(B, T, C)                    # (B, T, C)
    return AttentionOutput(context, probs, s if need_scores else None)


# --- the encoder loop and the backbone call ------------------------------------------------------

class Encoder(nn.Module):
    """A stack of blocks (`layer.0`, `layer.1`, ... in the state dict, as in HF), each returning
    a `LayerOutput`; collects what `output_hidden_states` / `output_attentions` ask for."""

    def __init__(self, layers: Iterable[nn.Module]) -> None:
        self.layer = nn.ModuleList(list(layers))

    def forward(self, hidden_states: Tensor, attention_mask: AttentionMask | None = None,
                output_hidden_states: bool = False,
                output_attentions: bool = False) -> EncoderOutput:
        all_hidden = [hidden_states] if output_hidden_states else None
        all_probs, all_scores = ([], []) if output_attentions else (None, None)
        for layer_module in self.layer:
            out = layer_module(hidden_states, attention_mask, output_attentions)
            hidden_states = out.hidden_states
            if output_hidden_states:
                all_hidden.append(hidden_states)
            if output_attentions:
                all_probs.append(out.attention_probs)
                all_scores.append(out.attention_scores)

        def as_tuple(xs):
            return None if xs is None else tuple(xs)
        return EncoderOutput(hidden_states, as_tuple(all_hidden), as_tuple(all_probs),
                             as_tuple(all_scores))


class Backbone(PreTrainedModel):
    """The call both backbones share: check the inputs, embed, build the key mask, run the
    encoder, pool. `MobileBertModel` and `BertModel` build `embeddings`, `encoder` and `pooler`
    (None without a pooling layer) in their own `__init__`.

    `model(input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
    output_hidden_states=False, output_attentions=False)` -> BaseModelOutputWithPooling.
    Inputs are (B, T) integer arrays (NumPy, lists or Tensors); `attention_mask` is 1 for
    tokens and 0 for padding.
    """

    is_backbone = True
    embeddings: nn.Module
    encoder: Encoder
    pooler: nn.Module | None

    def forward(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None,
                position_ids: Any = None, output_hidden_states: bool = False,
                output_attentions: bool = False) -> BaseModelOutputWithPooling:
        inputs = check_inputs(self.config, input_ids, attention_mask, token_type_ids,
                              position_ids)
        embedding_output = self.embeddings(inputs.input_ids, inputs.token_type_ids,
                                           inputs.position_ids)               # (B, T, C)
        mask = make_attention_mask(inputs.attention_mask, embedding_output,
                                   self.config.attention_mask_value)
        enc = self.encoder(embedding_output, mask, output_hidden_states, output_attentions)
        pooled = self.pooler(enc.last_hidden_state) if self.pooler is not None else None
        return BaseModelOutputWithPooling(enc.last_hidden_state, pooled, enc.hidden_states,
                                          enc.attentions, enc.attention_scores)
