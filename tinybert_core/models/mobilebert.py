"""MobileBERT (and its IB-BERT teacher): embeddings, bottlenecks, attention, stacked FFNs, encoder.

Sun et al., "MobileBERT: a Compact Task-Agnostic BERT for Resource-Limited Devices" (ACL 2020);
the forward pass of spec section 2. Class and attribute names are Hugging Face's
(`transformers/models/mobilebert/modeling_mobilebert.py`), so state-dict keys equal HF's (spec
section 3) and loading a checkpoint is a checked copy. `LayerNorm` attributes hold a NoNorm when
`normalization_type="no_norm"`, and the attention module keeps HF's attribute name `self`.

Differences from HF, all deliberate:
- The IB-BERT teacher (spec 2.5), which HF cannot build: with neither
  `key_query_shared_bottleneck` nor `use_bottleneck_attention`, query/key read the
  `hidden_size`-wide block input (512 -> 1024 for IB-BERT-LARGE), as in Google's code.
- `attention_mask_value` (config): Google's -6 constant for masked keys instead of HF's
  additive finfo.min.
- Outputs can include the scaled, masked pre-softmax attention scores (attention transfer).
Kept from HF for checkpoint parity: the embedding and `output` norms of a layer_norm model use
PyTorch's default eps 1e-5 (HF passes no eps there); every other norm uses `layer_norm_eps`.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import numpy as np

import autograd.functional as F
from autograd import nn
from autograd.tensor import Tensor
from tinybert_core.config import ACTIVATIONS, MobileBertConfig
from tinybert_core.models.hf_io import PreTrainedModel
from tinybert_core.models.outputs import BaseModelOutputWithPooling, EncoderOutput

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
    Google's code) from one seeded generator, so a seed fixes every weight and dropout mask."""

    def __init__(self, config: MobileBertConfig, seed: Any = None) -> None:
        self.config = config
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def linear(self, in_features: int, out_features: int, bias: bool = True) -> nn.Linear:
        return nn.Linear(in_features, out_features, bias, std=self.config.initializer_range,
                         rng=self.rng)

    def embedding(self, num: int, dim: int) -> nn.Embedding:
        return nn.Embedding(num, dim, std=self.config.initializer_range, rng=self.rng)

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


def _int_array(name: str, x: Any) -> np.ndarray:
    arr = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
    if arr.dtype.kind not in "iub":
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def check_inputs(config: MobileBertConfig, input_ids: Any, attention_mask: Any = None,
                 token_type_ids: Any = None, position_ids: Any = None) -> ModelInputs:
    """Validate model inputs (NumPy arrays, lists or Tensors); errors name the argument."""
    if input_ids is None:
        raise ValueError("input_ids is required")
    ids = _int_array("input_ids", input_ids)
    if ids.ndim != 2:
        raise ValueError(f"input_ids must be 2-d (batch, seq_len), got shape {ids.shape}")
    batch, seq_len = ids.shape
    if batch == 0 or seq_len == 0:
        raise ValueError(f"input_ids is empty: shape {ids.shape}")
    if seq_len > config.max_position_embeddings:
        raise ValueError(f"sequence length {seq_len} exceeds max_position_embeddings "
                         f"{config.max_position_embeddings}")
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= config.vocab_size:
        bad = lo if lo < 0 else hi
        raise ValueError(f"input_ids: token id {bad} is out of range for vocab_size "
                         f"{config.vocab_size}")
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
        types = _int_array("token_type_ids", token_type_ids)
        if types.shape != ids.shape:
            raise ValueError(f"token_type_ids has shape {types.shape}, input_ids {ids.shape}")
        if types.min() < 0 or types.max() >= config.type_vocab_size:
            raise ValueError(f"token_type_ids must lie in [0, {config.type_vocab_size}), got "
                             f"values in [{types.min()}, {types.max()}]")
    positions = None
    if position_ids is not None:
        positions = _int_array("position_ids", position_ids)
        if positions.shape not in ((seq_len,), (1, seq_len), ids.shape):
            raise ValueError(f"position_ids has shape {positions.shape}; want ({seq_len},) or "
                             f"{ids.shape}")
        if positions.min() < 0 or positions.max() >= config.max_position_embeddings:
            raise ValueError(f"position_ids must lie in [0, {config.max_position_embeddings}), "
                             f"got values in [{positions.min()}, {positions.max()}]")
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
                         need_scores: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
    """softmax(Q K^T / sqrt(hs) + mask) V over `num_heads` heads.

    query/key/value are the projected (B, T, C) tensors. Returns the merged context (B, T, C),
    the probabilities (B, H, T, T) and, with `need_scores` (or Google's fill mask), the scaled
    masked scores (B, H, T, T); otherwise scale and mask are fused into the softmax.
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
            s = s + Tensor._from_op(mask.additive, s.backend, None)
        probs = F.softmax(s, axis=-1)
    else:
        s = None
        probs = F.softmax(scores, axis=-1, scale=scale,
                          mask=None if mask is None else mask.additive)
    context = dropout(probs) @ v                                              # (B, H, T, hs)
    context = context.permute(0, 2, 1, 3).reshape(B, T, C)                    # (B, T, C)
    return context, probs, (s if need_scores else None)


# --- embeddings ----------------------------------------------------------------------------------

class MobileBertEmbeddings(nn.Module):
    """Word (E wide) -> trigram [next, current, previous] (3E) -> dense to hidden_size, plus
    position and token-type embeddings (hidden_size wide), then the norm and dropout (spec 2.2)."""

    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.trigram_input = config.trigram_input
        self.embedding_size, self.hidden_size = config.embedding_size, config.hidden_size
        self.word_embeddings = init.embedding(config.vocab_size, config.embedding_size)
        self.position_embeddings = init.embedding(config.max_position_embeddings,
                                                  config.hidden_size)
        self.token_type_embeddings = init.embedding(config.type_vocab_size, config.hidden_size)
        width = config.embedding_size * (3 if config.trigram_input else 1)
        # HF creates it even when unused (no trigram and E == H), so the keys match.
        self.embedding_transformation = init.linear(width, config.hidden_size)
        self.LayerNorm = init.norm(config.hidden_size)
        self.dropout = init.dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: np.ndarray, token_type_ids: np.ndarray | None = None,
                position_ids: np.ndarray | None = None) -> Tensor:
        B, T = input_ids.shape
        x = self.word_embeddings(input_ids)                                   # (B, T, E)
        if self.trigram_input:
            # One padded copy, then three shifted views joined in one concat; the zero rows
            # sit at the ends of the (possibly padded) tensor, as in HF and Google.
            padded = F.pad(x, ((0, 0), (1, 1), (0, 0)))                        # (B, T+2, E)
            x = F.concat([padded[:, 2:], padded[:, 1:-1], padded[:, :-2]], axis=-1)  # (B,T,3E)
        if self.trigram_input or self.embedding_size != self.hidden_size:
            x = self.embedding_transformation(x)                              # (B, T, C)
        if position_ids is None:
            x = x + self.position_embeddings.weight[:T]                       # (T, C) broadcast
        else:
            x = x + self.position_embeddings(position_ids)
        types = np.zeros((B, T), np.int64) if token_type_ids is None else token_type_ids
        x = self.LayerNorm(x, residual=self.token_type_embeddings(types))    # norm(x + type)
        return self.dropout(x)


# --- attention -----------------------------------------------------------------------------------

class MobileBertSelfAttention(nn.Module):
    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.num_attention_heads = config.num_attention_heads
        self.all_head_size = config.true_hidden_size
        self.query = init.linear(config.attention_input_size, self.all_head_size)
        self.key = init.linear(config.attention_input_size, self.all_head_size)
        self.value = init.linear(config.value_input_size, self.all_head_size)
        self.dropout = init.dropout(config.attention_probs_dropout_prob)

    def forward(self, query_tensor: Tensor, key_tensor: Tensor, value_tensor: Tensor,
                attention_mask: AttentionMask | None = None, need_scores: bool = False):
        return multi_head_attention(self.query(query_tensor), self.key(key_tensor),
                                    self.value(value_tensor), self.num_attention_heads,
                                    attention_mask, self.dropout, need_scores)


class MobileBertSelfOutput(nn.Module):
    """dense + norm(. + residual); the dropout exists only without bottlenecks (as in HF)."""

    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.use_bottleneck = config.use_bottleneck
        self.dense = init.linear(config.true_hidden_size, config.true_hidden_size)
        self.LayerNorm = init.norm(config.true_hidden_size, config.layer_norm_eps)
        if not self.use_bottleneck:
            self.dropout = init.dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: Tensor, residual_tensor: Tensor) -> Tensor:
        out = self.dense(hidden_states)
        if not self.use_bottleneck:
            out = self.dropout(out)
        return self.LayerNorm(out, residual=residual_tensor)


class MobileBertAttention(nn.Module):
    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.self = MobileBertSelfAttention(config, init)
        self.output = MobileBertSelfOutput(config, init)

    def forward(self, query_tensor: Tensor, key_tensor: Tensor, value_tensor: Tensor,
                layer_input: Tensor, attention_mask: AttentionMask | None = None,
                need_scores: bool = False):
        context, probs, scores = self.self(query_tensor, key_tensor, value_tensor,
                                           attention_mask, need_scores)
        return self.output(context, layer_input), probs, scores


# --- bottlenecks and feed-forward networks -------------------------------------------------------

class BottleneckLayer(nn.Module):
    """hidden_size -> intra_bottleneck_size dense + norm."""

    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.dense = init.linear(config.hidden_size, config.intra_bottleneck_size)
        self.LayerNorm = init.norm(config.intra_bottleneck_size, config.layer_norm_eps)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.LayerNorm(self.dense(hidden_states))


class Bottleneck(nn.Module):
    """The block's input bottleneck and, with key_query_shared_bottleneck, the shared Q/K one.

    Returns (query, key, value, layer_input) per spec 2.4's table: TINY uses the bottleneck
    for all four; MobileBERT the shared bottleneck for Q/K and the block input for V; IB-BERT
    the block input for Q/K/V. layer_input is the attention-output residual in every case.
    """

    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.key_query_shared_bottleneck = config.key_query_shared_bottleneck
        self.use_bottleneck_attention = config.use_bottleneck_attention
        self.input = BottleneckLayer(config, init)
        if self.key_query_shared_bottleneck:
            self.attention = BottleneckLayer(config, init)

    def forward(self, hidden_states: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        layer_input = self.input(hidden_states)                               # (B, T, D)
        if self.use_bottleneck_attention:
            return layer_input, layer_input, layer_input, layer_input
        if self.key_query_shared_bottleneck:
            shared = self.attention(hidden_states)                            # (B, T, D)
            return shared, shared, hidden_states, layer_input
        return hidden_states, hidden_states, hidden_states, layer_input


class MobileBertIntermediate(nn.Module):
    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.dense = init.linear(config.true_hidden_size, config.intermediate_size)
        self.intermediate_act_fn = get_activation(config.hidden_act)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class FFNOutput(nn.Module):
    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.dense = init.linear(config.intermediate_size, config.true_hidden_size)
        self.LayerNorm = init.norm(config.true_hidden_size, config.layer_norm_eps)

    def forward(self, hidden_states: Tensor, residual_tensor: Tensor) -> Tensor:
        return self.LayerNorm(self.dense(hidden_states), residual=residual_tensor)


class FFNLayer(nn.Module):
    """One of the stacked FFNs before the block's last one: norm(W2 act(W1 x) + x)."""

    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.intermediate = MobileBertIntermediate(config, init)
        self.output = FFNOutput(config, init)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.output(self.intermediate(hidden_states), hidden_states)


class OutputBottleneck(nn.Module):
    """intra -> hidden dense, dropout, norm(. + block input)."""

    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.dense = init.linear(config.true_hidden_size, config.hidden_size)
        self.LayerNorm = init.norm(config.hidden_size, config.layer_norm_eps)
        self.dropout = init.dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: Tensor, residual_tensor: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)), residual=residual_tensor)


class MobileBertOutput(nn.Module):
    """The last FFN's output half, then the output bottleneck back to hidden_size."""

    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.use_bottleneck = config.use_bottleneck
        self.dense = init.linear(config.intermediate_size, config.true_hidden_size)
        self.LayerNorm = init.norm(config.true_hidden_size)          # HF: no eps passed here
        if self.use_bottleneck:
            self.bottleneck = OutputBottleneck(config, init)
        else:
            self.dropout = init.dropout(config.hidden_dropout_prob)

    def forward(self, intermediate_states: Tensor, residual_tensor_1: Tensor,
                residual_tensor_2: Tensor) -> Tensor:
        out = self.dense(intermediate_states)
        if not self.use_bottleneck:
            return self.LayerNorm(self.dropout(out), residual=residual_tensor_1)
        out = self.LayerNorm(out, residual=residual_tensor_1)
        return self.bottleneck(out, residual_tensor_2)


class MobileBertLayer(nn.Module):
    """One block (spec 2.4): bottlenecks, attention, num_feedforward_networks FFNs, output."""

    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.use_bottleneck = config.use_bottleneck
        self.attention = MobileBertAttention(config, init)
        self.intermediate = MobileBertIntermediate(config, init)
        self.output = MobileBertOutput(config, init)
        if self.use_bottleneck:
            self.bottleneck = Bottleneck(config, init)
        self.ffn = nn.ModuleList([FFNLayer(config, init)
                                  for _ in range(config.num_feedforward_networks - 1)])

    def forward(self, hidden_states: Tensor, attention_mask: AttentionMask | None = None,
                need_scores: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
        if self.use_bottleneck:
            query, key, value, layer_input = self.bottleneck(hidden_states)
        else:
            query = key = value = layer_input = hidden_states
        attention_output, probs, scores = self.attention(query, key, value, layer_input,
                                                         attention_mask, need_scores)
        for ffn_module in self.ffn:
            attention_output = ffn_module(attention_output)
        intermediate_output = self.intermediate(attention_output)
        layer_output = self.output(intermediate_output, attention_output, hidden_states)
        return layer_output, probs, scores


class MobileBertEncoder(nn.Module):
    def __init__(self, config: MobileBertConfig, init: Initializer,
                 layer_class: type = MobileBertLayer) -> None:
        self.layer = nn.ModuleList([layer_class(config, init)
                                    for _ in range(config.num_hidden_layers)])

    def forward(self, hidden_states: Tensor, attention_mask: AttentionMask | None = None,
                output_hidden_states: bool = False,
                output_attentions: bool = False) -> EncoderOutput:
        all_hidden = [hidden_states] if output_hidden_states else None
        all_probs, all_scores = ([], []) if output_attentions else (None, None)
        for layer_module in self.layer:
            hidden_states, probs, scores = layer_module(hidden_states, attention_mask,
                                                        output_attentions)
            if output_hidden_states:
                all_hidden.append(hidden_states)
            if output_attentions:
                all_probs.append(probs)
                all_scores.append(scores)

        def as_tuple(xs):
            return None if xs is None else tuple(xs)
        return EncoderOutput(hidden_states, as_tuple(all_hidden), as_tuple(all_probs),
                             as_tuple(all_scores))


class MobileBertPooler(nn.Module):
    """[CLS] hidden state, through dense + tanh only when classifier_activation (spec 2.7)."""

    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.do_activate = config.classifier_activation
        if self.do_activate:
            self.dense = init.linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: Tensor) -> Tensor:
        first_token_tensor = hidden_states[:, 0]                              # (B, C)
        if not self.do_activate:
            return first_token_tensor
        return F.tanh(self.dense(first_token_tensor))


class MobileBertModel(PreTrainedModel):
    """The MobileBERT / IB-BERT backbone: embeddings, encoder and (optional) pooler.

    `model(input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
    output_hidden_states=False, output_attentions=False)` -> BaseModelOutputWithPooling.
    Inputs are (B, T) integer arrays (NumPy, lists or Tensors); `attention_mask` is 1 for
    tokens and 0 for padding.
    """

    model_type = "mobilebert"
    base_model_prefix = "mobilebert"
    embeddings_class: type = MobileBertEmbeddings      # BertModel swaps in its own blocks
    encoder_class: type = MobileBertEncoder
    pooler_class: type = MobileBertPooler

    def __init__(self, config: MobileBertConfig, add_pooling_layer: bool = True,
                 seed: Any = None) -> None:
        self.check_config(config)
        self.config = config
        init = seed if isinstance(seed, Initializer) else Initializer(config, seed)
        self.embeddings = self.embeddings_class(config, init)
        self.encoder = self.encoder_class(config, init)
        self.pooler = self.pooler_class(config, init) if add_pooling_layer else None

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

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings
