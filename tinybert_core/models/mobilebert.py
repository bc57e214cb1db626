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

from typing import Any

import numpy as np

import autograd.functional as F
from autograd import nn
from autograd.tensor import Tensor
from tinybert_core.config import MobileBertConfig
from tinybert_core.models.layers import (
    AttentionMask,
    Backbone,
    Encoder,
    Initializer,
    get_activation,
    multi_head_attention,
)
from tinybert_core.models.outputs import AttentionOutput, BottleneckOutput, LayerOutput


# --- embeddings ----------------------------------------------------------------------------------

class MobileBertEmbeddings(nn.Module):
    """Word (E wide) -> trigram [next, current, previous] (3E) -> dense to hidden_size, plus
    position and token-type embeddings (hidden_size wide), then the norm and dropout (spec 2.2)."""

    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.trigram_input = config.trigram_input
        self.embedding_size, self.hidden_size = config.embedding_size, config.hidden_size
        # HF's padding_idx: [PAD] gets no gradient from the lookup (the tied decoder's only).
        self.word_embeddings = init.embedding(config.vocab_size, config.embedding_size,
                                              padding_idx=config.pad_token_id)
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
        x = self.word_embeddings(input_ids, "input_ids")                      # (B, T, E)
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
            x = x + self.position_embeddings(position_ids, "position_ids")
        types = np.zeros((B, T), np.int64) if token_type_ids is None else token_type_ids
        types = self.token_type_embeddings(types, "token_type_ids")
        x = self.LayerNorm(x, residual=types)                                 # norm(x + type)
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
                attention_mask: AttentionMask | None = None,
                need_scores: bool = False) -> AttentionOutput:
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
                need_scores: bool = False) -> AttentionOutput:
        attn = self.self(query_tensor, key_tensor, value_tensor, attention_mask, need_scores)
        return attn._replace(hidden_states=self.output(attn.hidden_states, layer_input))


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

    Returns the inputs of query, key and value, and layer_input, per spec 2.4's table: TINY
    uses the bottleneck for all four; MobileBERT the shared bottleneck for Q/K and the block
    input for V; IB-BERT the block input for Q/K/V. layer_input is the attention-output
    residual in every case.
    """

    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.key_query_shared_bottleneck = config.key_query_shared_bottleneck
        self.use_bottleneck_attention = config.use_bottleneck_attention
        self.input = BottleneckLayer(config, init)
        if self.key_query_shared_bottleneck:
            self.attention = BottleneckLayer(config, init)

    def forward(self, hidden_states: Tensor) -> BottleneckOutput:
        layer_input = self.input(hidden_states)                               # (B, T, D)
        if self.use_bottleneck_attention:
            return BottleneckOutput(layer_input, layer_input, layer_input, layer_input)
        if self.key_query_shared_bottleneck:
            shared = self.attention(hidden_states)                            # (B, T, D)
            return BottleneckOutput(shared, shared, hidden_states, layer_input)
        return BottleneckOutput(hidden_states, hidden_states, hidden_states, layer_input)


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
                need_scores: bool = False) -> LayerOutput:
        if self.use_bottleneck:
            b = self.bottleneck(hidden_states)
        else:
            b = BottleneckOutput(hidden_states, hidden_states, hidden_states, hidden_states)
        attn = self.attention(b.query, b.key, b.value, b.layer_input, attention_mask, need_scores)
        attention_output = attn.hidden_states
        for ffn_module in self.ffn:
            attention_output = ffn_module(attention_output)
        intermediate_output = self.intermediate(attention_output)
        layer_output = self.output(intermediate_output, attention_output, hidden_states)
        return LayerOutput(layer_output, attn.attention_probs, attn.attention_scores)


class MobileBertEncoder(Encoder):
    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        super().__init__(MobileBertLayer(config, init) for _ in range(config.num_hidden_layers))


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


class MobileBertModel(Backbone):
    """The MobileBERT / IB-BERT backbone: embeddings, encoder and (optional) pooler; the call
    is `Backbone.forward` (layers.py), shared with BertModel."""

    model_type = "mobilebert"
    base_model_prefix = "mobilebert"

    def __init__(self, config: MobileBertConfig, add_pooling_layer: bool = True,
                 seed: Any = None) -> None:
        self.check_config(config)
        self.config = config
        init = seed if isinstance(seed, Initializer) else Initializer(config, seed)
        self.embeddings = MobileBertEmbeddings(config, init)
        self.encoder = MobileBertEncoder(config, init)
        self.pooler = MobileBertPooler(config, init) if add_pooling_layer else None
