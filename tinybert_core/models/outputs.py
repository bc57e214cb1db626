"""Model outputs: small NamedTuples whose field names are Hugging Face's (`modeling_outputs.py`).

Inside a model, the blocks return NamedTuples too (`AttentionOutput`, `LayerOutput`,
`BottleneckOutput`), so the code that reads them (the encoder loop, attention plots, traces)
names what it takes instead of unpacking positions.

Every output carries the optional per-layer extras, filled only when asked for:
- `hidden_states` (output_hidden_states=True): the embedding output and every block's output,
  num_hidden_layers + 1 tensors of shape (B, T, hidden_size) (spec 2.6).
- `attentions` (output_attentions=True): each block's attention probabilities (B, H, T, T),
  before attention dropout.
- `attention_scores` (output_attentions=True): each block's scaled, masked, pre-softmax scores
  (B, H, T, T) (Google's `all_attention_maps`, what attention transfer compares, spec 2.6/4.3).
Fields are `Tensor`s (`.numpy()` for arrays) or None; `loss` is a scalar Tensor when labels
were given.
"""
from __future__ import annotations

from typing import NamedTuple

from autograd.tensor import Tensor


class AttentionOutput(NamedTuple):
    """One attention module's result: its output (B, T, C), the attention probabilities
    (B, H, T, T) before dropout, and the scaled masked scores (B, H, T, T) when asked for."""

    hidden_states: Tensor
    attention_probs: Tensor
    attention_scores: Tensor | None = None


class LayerOutput(NamedTuple):
    """One block's result: its output (B, T, hidden) and its attention's probs and scores."""

    hidden_states: Tensor
    attention_probs: Tensor
    attention_scores: Tensor | None = None


class BottleneckOutput(NamedTuple):
    """The tensors MobileBERT's bottlenecks feed a block's attention (spec 2.4): the inputs of
    the query, key and value projections, and `layer_input`, the attention output's residual."""

    query: Tensor
    key: Tensor
    value: Tensor
    layer_input: Tensor


class EncoderOutput(NamedTuple):
    last_hidden_state: Tensor
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    attention_scores: tuple | None = None


class BaseModelOutputWithPooling(NamedTuple):
    """Backbone output: the last layer (B, T, hidden) and the pooled [CLS] vector (B, hidden)."""

    last_hidden_state: Tensor
    pooler_output: Tensor | None = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    attention_scores: tuple | None = None


class PreTrainingHeadsOutput(NamedTuple):
    """What the MLM + NSP heads compute: (..., V) token scores and (B, 2) NSP scores."""

    prediction_logits: Tensor
    seq_relationship_logits: Tensor


class PreTrainingOutput(NamedTuple):
    """MLM + NSP. `prediction_logits` is (B, T, V), or (B, P, V) at the gathered
    `masked_positions`; `loss` = masked_lm_loss + next_sentence_loss (those given)."""

    loss: Tensor | None = None
    prediction_logits: Tensor | None = None
    seq_relationship_logits: Tensor | None = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    attention_scores: tuple | None = None
    masked_lm_loss: Tensor | None = None
    next_sentence_loss: Tensor | None = None
    last_hidden_state: Tensor | None = None


class MaskedLMOutput(NamedTuple):
    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    attention_scores: tuple | None = None


class NextSentencePredictorOutput(NamedTuple):
    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    attention_scores: tuple | None = None


class SequenceClassifierOutput(NamedTuple):
    """`logits` (B, num_labels); for regression (num_labels=1) the predicted value."""

    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    attention_scores: tuple | None = None


class TokenClassifierOutput(NamedTuple):
    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    attention_scores: tuple | None = None


class QuestionAnsweringModelOutput(NamedTuple):
    """Span scores (B, T) for the answer's first and last token."""

    loss: Tensor | None = None
    start_logits: Tensor | None = None
    end_logits: Tensor | None = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    attention_scores: tuple | None = None


__all__ = [
    "AttentionOutput",
    "BaseModelOutputWithPooling",
    "BottleneckOutput",
    "LayerOutput",
    "EncoderOutput",
    "MaskedLMOutput",
    "NextSentencePredictorOutput",
    "PreTrainingHeadsOutput",
    "PreTrainingOutput",
    "QuestionAnsweringModelOutput",
    "SequenceClassifierOutput",
    "TokenClassifierOutput",
]
