"""Task heads and their losses: MLM, NSP, pre-training (both), sequence/token classification
and QA span scores; the task models that put them on a backbone are in `tasks.py`.

Names follow Hugging Face (`modeling_mobilebert.py`): `cls.predictions.{transform,dense,decoder,
bias}`, `cls.seq_relationship`, `classifier`, `qa_outputs`. BERT's MLM head (no extra dense
block) is in `bert.py`; it shares `TiedDecoder` from here.

MobileBERT's MLM head (spec 2.8): a dense + act + real LayerNorm transform, then scores against
[word embeddings (V x E, tied) | extra output weights (V x (H - E))] plus a bias. HF stores the
extra block transposed as `cls.predictions.dense.weight` (H - E, V); we use it as two GEMMs on
the two slices of the transformed state, instead of concatenating a V x H matrix per call.
`masked_positions` (B, P) gathers the hidden states at the masked tokens before the head, as
Google's pre-training does, so the V-wide logits are computed only where a loss needs them.

Losses (HF's): MLM / token classification: cross-entropy ignoring label -100; NSP: cross-entropy;
sequence classification: MSE for regression (num_labels == 1), cross-entropy for integer labels,
BCE-with-logits for float multi-label targets; QA: mean of start and end cross-entropy, with
positions outside the sequence clamped to T and ignored.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import autograd.functional as F
from autograd import nn
from autograd.tensor import Tensor
from tinybert_core.config import MobileBertConfig
from tinybert_core.models.layers import Initializer, get_activation, int_array
from tinybert_core.models.outputs import PreTrainingHeadsOutput

IGNORE_INDEX = -100  # HF's label for a position that is not predicted

# --- helpers -------------------------------------------------------------------------------------


def gather_positions(sequence: Tensor, positions: Any) -> Tensor:
    """sequence[b, positions[b, p]] as (B, P, C), a row gather whose backward scatter-adds."""
    B, T, C = sequence.shape
    pos = int_array("masked_positions", positions)
    if pos.ndim != 2 or pos.shape[0] != B:
        raise ValueError(f"masked_positions must be (batch, num_predictions) with batch {B}, "
                         f"got shape {pos.shape}")
    if pos.size and (pos.min() < 0 or pos.max() >= T):
        raise ValueError(f"masked_positions must lie in [0, {T}), got values in "
                         f"[{pos.min()}, {pos.max()}]")
    flat = (pos + (np.arange(B) * T)[:, None]).reshape(-1)                   # (B*P,)
    rows = F.embedding(flat, sequence.reshape(B * T, C))                     # (B*P, C)
    return rows.reshape(B, pos.shape[1], C)


def _labels(name: str, labels: Any, shape: tuple) -> np.ndarray:
    arr = int_array(name, labels)
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    return arr


def token_loss(logits: Tensor, labels: Any, name: str = "labels",
               reduction: str = "mean") -> Tensor:
    """Cross-entropy of (..., C) logits against integer `labels` of shape (...), over the
    labels that are not IGNORE_INDEX (-100); `name` is the argument errors mention."""
    target = _labels(name, labels, logits.shape[:-1])
    return F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX, reduction=reduction)


def masked_lm_loss(prediction_logits: Tensor, labels: Any, reduction: str = "mean",
                   num_items: float | None = None) -> Tensor:
    """BERT's masked-LM loss L_MLM (spec 4.1), the one code path for it: cross-entropy of the
    (..., V) prediction logits against the original ids, mean over the predicted positions.

    `labels` has the logits' leading shape and holds -100 wherever nothing is predicted (HF's
    form; for gathered (B, P) logits, the padded prediction slots). reduction="none" gives the
    per-position losses (0 at ignored ones), "sum" their total, for evaluation over batches.
    `num_items` (with "mean") divides the sum by that count instead of this batch's own: the
    training step passes the average count per micro-batch and process, so that averaging over
    micro-batches and processes gives the mean over every masked token of the global batch.
    """
    loss = token_loss(prediction_logits, labels, "labels", reduction)
    if num_items is None or reduction != "mean":
        return loss
    return rescale_mean(loss, count_items(labels), num_items)


def count_items(labels: Any) -> int:
    """The positions a loss is averaged over: labels that are not IGNORE_INDEX."""
    arr = labels.numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    return int((arr != IGNORE_INDEX).sum())


def rescale_mean(mean: Tensor, count: int, num_items: float) -> Tensor:
    """A mean over `count` items turned into (their sum) / `num_items`; unchanged (the same
    tensor, so bit for bit) when the two counts agree."""
    if num_items <= 0:
        raise ValueError(f"num_items must be positive, got {num_items}")
    if count == num_items:
        return mean
    return mean * (count / num_items)


def next_sentence_loss(seq_relationship_logits: Tensor, next_sentence_label: Any,
                       name: str = "next_sentence_label") -> Tensor:
    """BERT's NSP loss: mean cross-entropy of the (B, 2) logits; label 0 = B follows A."""
    return token_loss(seq_relationship_logits, next_sentence_label, name)


def classification_loss(logits: Tensor, labels: Any, config: MobileBertConfig) -> Tensor:
    """HF's sequence-classification loss, chosen by problem_type (or inferred like HF)."""
    arr = labels.numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    problem = config.problem_type
    if problem is None:
        if config.num_labels == 1:
            problem = "regression"
        elif arr.dtype.kind in "iu":
            problem = "single_label_classification"
        else:
            problem = "multi_label_classification"
    if problem == "single_label_classification":
        return token_loss(logits, labels)
    target = Tensor(arr.astype(logits.dtype), device=logits.backend)
    if problem == "regression":
        pred = logits.reshape(-1) if config.num_labels == 1 else logits
        if target.size != pred.size:
            raise ValueError(f"labels: regression needs {pred.size} targets, got shape {arr.shape}")
        return F.mse_loss(pred, target.reshape(pred.shape))
    if target.shape != logits.shape:
        raise ValueError(f"labels: multi-label targets must have shape {logits.shape}, "
                         f"got {arr.shape}")
    # BCE with logits, stable form: max(x, 0) - x y + log(1 + exp(-|x|)).
    x = logits
    return (F.relu(x) - x * target + F.log(F.exp(-F.abs(x)) + 1.0)).mean()


def question_answering_loss(start_logits: Tensor, end_logits: Tensor, start_positions: Any,
                            end_positions: Any) -> Tensor:
    """Mean of the start and end cross-entropies over (B, T) span scores; positions outside
    the sequence are clamped to T and ignored (HF's convention for truncated answers)."""
    B, T = start_logits.shape
    start = _labels("start_positions", start_positions, (B,)).clip(0, T)
    end = _labels("end_positions", end_positions, (B,)).clip(0, T)
    return (F.cross_entropy(start_logits, start, ignore_index=T)
            + F.cross_entropy(end_logits, end, ignore_index=T)) * 0.5


# --- MobileBERT heads ----------------------------------------------------------------------------

class MobileBertPredictionHeadTransform(nn.Module):
    """dense (H -> H) + hidden_act + a real LayerNorm (even in a no_norm model)."""

    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.dense = init.linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = get_activation(config.hidden_act)
        self.LayerNorm = init.norm(config.hidden_size, config.layer_norm_eps, kind="layer_norm")

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class TiedDecoder(nn.Module):
    """`decoder`: a Linear whose weight and bias belong to other modules (tied, saved once)."""

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter) -> None:
        self.weight, self.bias = weight, bias

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)


class MobileBertLMPredictionHead(nn.Module):
    def __init__(self, config: MobileBertConfig, init: Initializer,
                 word_embeddings: nn.Parameter) -> None:
        self.embedding_size = config.embedding_size
        self.bias = nn.Parameter(np.zeros(config.vocab_size, np.float32))
        self.transform = MobileBertPredictionHeadTransform(config, init)
        # HF: nn.Linear(vocab, hidden - embedding, bias=False), used only as (H - E, V) storage.
        self.dense = init.linear(config.vocab_size, config.hidden_size - config.embedding_size,
                                 bias=False)
        self.decoder = TiedDecoder(word_embeddings, self.bias)

    def forward(self, hidden_states: Tensor) -> Tensor:
        z = self.transform(hidden_states)                                      # (..., H)
        lead, e = z.shape[:-1], self.embedding_size
        z = z.reshape(-1, z.shape[-1])                                         # (N, H)
        logits = self.decoder(z[:, :e])                                        # (N, V)
        if self.dense.weight.shape[0]:
            # 2-d on purpose: the weight gradient is then one GEMM, not a (B, H-E, V) stack.
            logits = logits + z[:, e:] @ self.dense.weight                     # (N, V)
        return logits.reshape(*lead, logits.shape[-1])


class MobileBertOnlyMLMHead(nn.Module):
    def __init__(self, config: MobileBertConfig, init: Initializer,
                 word_embeddings: nn.Parameter) -> None:
        self.predictions = MobileBertLMPredictionHead(config, init, word_embeddings)

    def forward(self, sequence_output: Tensor) -> Tensor:
        return self.predictions(sequence_output)


class MobileBertOnlyNSPHead(nn.Module):
    def __init__(self, config: MobileBertConfig, init: Initializer) -> None:
        self.seq_relationship = init.linear(config.hidden_size, 2)

    def forward(self, pooled_output: Tensor) -> Tensor:
        return self.seq_relationship(pooled_output)


class MobileBertPreTrainingHeads(nn.Module):
    def __init__(self, config: MobileBertConfig, init: Initializer,
                 word_embeddings: nn.Parameter) -> None:
        self.predictions = MobileBertLMPredictionHead(config, init, word_embeddings)
        self.seq_relationship = init.linear(config.hidden_size, 2)

    def forward(self, sequence_output: Tensor, pooled_output: Tensor) -> PreTrainingHeadsOutput:
        return PreTrainingHeadsOutput(self.predictions(sequence_output),
                                      self.seq_relationship(pooled_output))
