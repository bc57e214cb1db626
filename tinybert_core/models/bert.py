"""Standard BERT (Devlin et al., 2019) for bert-base / bert-large, with HF's names and keys.

`transformers/models/bert/modeling_bert.py`: BertEmbeddings (word + token type + position,
LayerNorm, dropout), BertLayer (self-attention, dropout + residual + LayerNorm, GELU FFN), a
dense + tanh pooler, and the MLM head whose decoder is tied to the word embeddings. The
attention core, input checks, encoder loop and the backbone's call are shared with MobileBERT
(`layers.py`); only the blocks differ. The task models are in `tasks.py`. Configs are
`MobileBertConfig` with model_type "bert" (presets "bert-base", "bert-large"; HF BERT
config.json files load directly).
"""
from __future__ import annotations

from typing import Any

import numpy as np

import autograd.functional as F
from autograd import nn
from autograd.tensor import Tensor
from tinybert_core.config import MobileBertConfig
from tinybert_core.models.heads import TiedDecoder
from tinybert_core.models.layers import (
    AttentionMask,
    Backbone,
    Encoder,
    Initializer,
    get_activation,
    multi_head_attention,
)
from tinybert_core.models.outputs import AttentionOutput, LayerOutput, PreTrainingHeadsOutput


class BertEmbeddings(nn.Module):
    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        # HF's padding_idx: [PAD] gets no gradient from the lookup (the tied decoder's only).
        self.word_embeddings = init.embedding(config.vocab_size, config.hidden_size,
                                              padding_idx=config.pad_token_id)
        self.position_embeddings = init.embedding(config.max_position_embeddings,
                                                  config.hidden_size)
        self.token_type_embeddings = init.embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = init.dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: np.ndarray, token_type_ids: np.ndarray | None = None,
                position_ids: np.ndarray | None = None) -> Tensor:
        B, T = input_ids.shape
        types = np.zeros((B, T), np.int64) if token_type_ids is None else token_type_ids
        x = (self.word_embeddings(input_ids, "input_ids")
             + self.token_type_embeddings(types, "token_type_ids"))              # (B, T, C)
        pos = (self.position_embeddings.weight[:T] if position_ids is None
               else self.position_embeddings(position_ids, "position_ids"))
        return self.dropout(self.LayerNorm(x, residual=pos))


class BertSelfAttention(nn.Module):
    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.num_attention_heads = config.num_attention_heads
        self.query = init.linear(config.hidden_size, config.hidden_size)
        self.key = init.linear(config.hidden_size, config.hidden_size)
        self.value = init.linear(config.hidden_size, config.hidden_size)
        self.dropout = init.dropout(config.attention_probs_dropout_prob)

    def forward(self, hidden_states: Tensor, attention_mask: AttentionMask | None = None,
                need_scores: bool = False) -> AttentionOutput:
        return multi_head_attention(self.query(hidden_states), self.key(hidden_states),
                                    self.value(hidden_states), self.num_attention_heads,
                                    attention_mask, self.dropout, need_scores)


class BertSelfOutput(nn.Module):
    """dense, dropout, LayerNorm(. + residual); also the FFN's output half (BertOutput)."""

    def __init__(self, config: MobileBertConfig, init: Initializer,
                 in_features: int | None = None) -> None:
        self.dense = init.linear(in_features or config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = init.dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: Tensor, input_tensor: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)), residual=input_tensor)


class BertAttention(nn.Module):
    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.self = BertSelfAttention(config, init)
        self.output = BertSelfOutput(config, init)

    def forward(self, hidden_states: Tensor, attention_mask: AttentionMask | None = None,
                need_scores: bool = False) -> AttentionOutput:
        attn = self.self(hidden_states, attention_mask, need_scores)
        return attn._replace(hidden_states=self.output(attn.hidden_states, hidden_states))


class BertIntermediate(nn.Module):
    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.dense = init.linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = get_activation(config.hidden_act)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class BertOutput(BertSelfOutput):
    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        super().__init__(config, init, in_features=config.intermediate_size)


class BertLayer(nn.Module):
    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.attention = BertAttention(config, init)
        self.intermediate = BertIntermediate(config, init)
        self.output = BertOutput(config, init)

    def forward(self, hidden_states: Tensor, attention_mask: AttentionMask | None = None,
                need_scores: bool = False) -> LayerOutput:
        attn = self.attention(hidden_states, attention_mask, need_scores)
        attention_output = attn.hidden_states
        layer_output = self.output(self.intermediate(attention_output), attention_output)
        return LayerOutput(layer_output, attn.attention_probs, attn.attention_scores)


class BertEncoder(Encoder):
    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        super().__init__(BertLayer(config, init) for _ in range(config.num_hidden_layers))


class BertPooler(nn.Module):
    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.dense = init.linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return F.tanh(self.dense(hidden_states[:, 0]))                         # (B, C)


class BertModel(Backbone):
    """The BERT backbone; the call is `Backbone.forward` (layers.py), shared with
    MobileBertModel, so the outputs are the same."""

    model_type = "bert"
    base_model_prefix = "bert"

    def __init__(self, config: MobileBertConfig, add_pooling_layer: bool = True,
                 seed: Any = None) -> None:
        self.check_config(config)
        self.config = config
        init = seed if isinstance(seed, Initializer) else Initializer(config, seed)
        self.embeddings = BertEmbeddings(config, init)
        self.encoder = BertEncoder(config, init)
        self.pooler = BertPooler(config, init) if add_pooling_layer else None


# --- heads ---------------------------------------------------------------------------------------

class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.dense = init.linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = get_activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class BertLMPredictionHead(nn.Module):
    """transform, then the tied decoder (word embeddings, V x H) plus `bias`."""

    def __init__(self, config: MobileBertConfig, init: Initializer,
                 word_embeddings: nn.Parameter) -> None:
        self.bias = nn.Parameter(np.zeros(config.vocab_size, np.float32))
        self.transform = BertPredictionHeadTransform(config, init)
        self.decoder = TiedDecoder(word_embeddings, self.bias)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.decoder(self.transform(hidden_states))                     # (..., V)


class BertOnlyMLMHead(nn.Module):
    def __init__(self, config: MobileBertConfig, init: Initializer,
                 word_embeddings: nn.Parameter) -> None:
        self.predictions = BertLMPredictionHead(config, init, word_embeddings)

    def forward(self, sequence_output: Tensor) -> Tensor:
        return self.predictions(sequence_output)


class BertPreTrainingHeads(nn.Module):
    def __init__(self, config: MobileBertConfig, init: Initializer,
                 word_embeddings: nn.Parameter) -> None:
        self.predictions = BertLMPredictionHead(config, init, word_embeddings)
        self.seq_relationship = init.linear(config.hidden_size, 2)

    def forward(self, sequence_output: Tensor, pooled_output: Tensor) -> PreTrainingHeadsOutput:
        return PreTrainingHeadsOutput(self.predictions(sequence_output),
                                      self.seq_relationship(pooled_output))


__all__ = [
    "BertEmbeddings",
    "BertEncoder",
    "BertLayer",
    "BertModel",
    "BertOnlyMLMHead",
    "BertPreTrainingHeads",
    "BertPooler",
]
