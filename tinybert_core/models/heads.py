"""Task heads and task models: MLM, NSP, pre-training, sequence/token classification, QA span.

Names follow Hugging Face (`modeling_mobilebert.py`): `cls.predictions.{transform,dense,decoder,
bias}`, `cls.seq_relationship`, `classifier`, `qa_outputs`. The task models here are written
once over a backbone class (`backbone_class`, kept under `base_model_prefix`): the MobileBert*
classes below, and the Bert* ones in `bert.py`, only fill in those class attributes.

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
from tinybert_core.models.hf_io import PreTrainedModel
from tinybert_core.models.mobilebert import (
    Initializer,
    MobileBertModel,
    _int_array,
    get_activation,
)
from tinybert_core.models.outputs import (
    MaskedLMOutput,
    NextSentencePredictorOutput,
    PreTrainingOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

# --- helpers -------------------------------------------------------------------------------------


def gather_positions(sequence: Tensor, positions: Any) -> Tensor:
    """sequence[b, positions[b, p]] as (B, P, C), a row gather whose backward scatter-adds."""
    B, T, C = sequence.shape
    pos = _int_array("masked_positions", positions)
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
    arr = _int_array(name, labels)
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    return arr


def token_loss(logits: Tensor, labels: Any, name: str = "labels") -> Tensor:
    """Mean cross-entropy over the (..., C) logits whose label is not -100."""
    target = _labels(name, labels, logits.shape[:-1])
    return F.cross_entropy(logits, target, ignore_index=-100)


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

    def forward(self, sequence_output: Tensor, pooled_output: Tensor) -> tuple[Tensor, Tensor]:
        return self.predictions(sequence_output), self.seq_relationship(pooled_output)


# --- task models, written once over a backbone ---------------------------------------------------

class TaskModel(PreTrainedModel):
    """A backbone under `base_model_prefix` plus a head; subclasses set the class attributes."""

    is_backbone = False
    backbone_class: type = MobileBertModel
    add_pooling_layer = True

    def __init__(self, config: MobileBertConfig, seed: Any = None) -> None:
        self.check_config(config)
        self.config = config
        init = Initializer(config, seed)
        # Set first, so tied parameters keep the backbone's name in state dicts.
        setattr(self, self.base_model_prefix,
                self.backbone_class(config, add_pooling_layer=self.add_pooling_layer, seed=init))
        self.build_head(config, init)

    def build_head(self, config: MobileBertConfig, init: Initializer) -> None:
        raise NotImplementedError

    def _backbone(self, input_ids: Any, attention_mask: Any, token_type_ids: Any,
                  position_ids: Any, output_hidden_states: bool, output_attentions: bool):
        return self.base_model(input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids, position_ids=position_ids,
                               output_hidden_states=output_hidden_states,
                               output_attentions=output_attentions)

    def classifier_dropout_prob(self) -> float:
        c = self.config
        return c.classifier_dropout if c.classifier_dropout is not None else c.hidden_dropout_prob

    @property
    def word_embeddings(self) -> nn.Parameter:
        return self.base_model.embeddings.word_embeddings.weight


class PreTrainingModel(TaskModel):
    """Backbone + MLM and NSP heads; loss = MLM (labels) + NSP (next_sentence_label)."""

    heads_class: type = MobileBertPreTrainingHeads

    def build_head(self, config: MobileBertConfig, init: Initializer) -> None:
        self.cls = self.heads_class(config, init, self.word_embeddings)

    def forward(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None,
                position_ids: Any = None, labels: Any = None, next_sentence_label: Any = None,
                masked_positions: Any = None, output_hidden_states: bool = False,
                output_attentions: bool = False) -> PreTrainingOutput:
        """`masked_positions` (B, P): MLM logits only there, (B, P, V), labels then (B, P)."""
        out = self._backbone(input_ids, attention_mask, token_type_ids, position_ids,
                             output_hidden_states, output_attentions)
        seq = out.last_hidden_state
        if masked_positions is not None:
            seq = gather_positions(seq, masked_positions)                     # (B, P, C)
        prediction_logits, nsp_logits = self.cls(seq, out.pooler_output)
        mlm = None if labels is None else token_loss(prediction_logits, labels)
        nsp = None if next_sentence_label is None else token_loss(
            nsp_logits, next_sentence_label, "next_sentence_label")
        loss = mlm if nsp is None else (nsp if mlm is None else mlm + nsp)
        return PreTrainingOutput(loss, prediction_logits, nsp_logits, out.hidden_states,
                                 out.attentions, out.attention_scores, mlm, nsp,
                                 out.last_hidden_state)


class MaskedLMModel(TaskModel):
    add_pooling_layer = False
    mlm_head_class: type = MobileBertOnlyMLMHead

    def build_head(self, config: MobileBertConfig, init: Initializer) -> None:
        self.cls = self.mlm_head_class(config, init, self.word_embeddings)

    def forward(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None,
                position_ids: Any = None, labels: Any = None, masked_positions: Any = None,
                output_hidden_states: bool = False,
                output_attentions: bool = False) -> MaskedLMOutput:
        out = self._backbone(input_ids, attention_mask, token_type_ids, position_ids,
                             output_hidden_states, output_attentions)
        seq = out.last_hidden_state
        if masked_positions is not None:
            seq = gather_positions(seq, masked_positions)
        logits = self.cls(seq)
        loss = None if labels is None else token_loss(logits, labels)
        return MaskedLMOutput(loss, logits, out.hidden_states, out.attentions,
                              out.attention_scores)


class NextSentencePredictionModel(TaskModel):
    nsp_head_class: type = MobileBertOnlyNSPHead

    def build_head(self, config: MobileBertConfig, init: Initializer) -> None:
        self.cls = self.nsp_head_class(config, init)

    def forward(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None,
                position_ids: Any = None, labels: Any = None, output_hidden_states: bool = False,
                output_attentions: bool = False) -> NextSentencePredictorOutput:
        out = self._backbone(input_ids, attention_mask, token_type_ids, position_ids,
                             output_hidden_states, output_attentions)
        logits = self.cls(out.pooler_output)                                   # (B, 2)
        loss = None if labels is None else token_loss(logits, labels)
        return NextSentencePredictorOutput(loss, logits, out.hidden_states, out.attentions,
                                           out.attention_scores)


class SequenceClassificationModel(TaskModel):
    """dropout + Linear(hidden, num_labels) on the pooled output (regression if num_labels=1)."""

    def build_head(self, config: MobileBertConfig, init: Initializer) -> None:
        self.dropout = init.dropout(self.classifier_dropout_prob())
        self.classifier = init.linear(config.hidden_size, config.num_labels)

    def forward(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None,
                position_ids: Any = None, labels: Any = None, output_hidden_states: bool = False,
                output_attentions: bool = False) -> SequenceClassifierOutput:
        out = self._backbone(input_ids, attention_mask, token_type_ids, position_ids,
                             output_hidden_states, output_attentions)
        logits = self.classifier(self.dropout(out.pooler_output))              # (B, num_labels)
        loss = None if labels is None else classification_loss(logits, labels, self.config)
        return SequenceClassifierOutput(loss, logits, out.hidden_states, out.attentions,
                                        out.attention_scores)


class TokenClassificationModel(TaskModel):
    add_pooling_layer = False

    def build_head(self, config: MobileBertConfig, init: Initializer) -> None:
        self.dropout = init.dropout(self.classifier_dropout_prob())
        self.classifier = init.linear(config.hidden_size, config.num_labels)

    def forward(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None,
                position_ids: Any = None, labels: Any = None, output_hidden_states: bool = False,
                output_attentions: bool = False) -> TokenClassifierOutput:
        out = self._backbone(input_ids, attention_mask, token_type_ids, position_ids,
                             output_hidden_states, output_attentions)
        logits = self.classifier(self.dropout(out.last_hidden_state))       # (B, T, num_labels)
        loss = None if labels is None else token_loss(logits, labels)
        return TokenClassifierOutput(loss, logits, out.hidden_states, out.attentions,
                                     out.attention_scores)


class QuestionAnsweringModel(TaskModel):
    """Linear(hidden, 2) per token -> start and end logits (spec 2.11)."""

    add_pooling_layer = False

    def build_head(self, config: MobileBertConfig, init: Initializer) -> None:
        self.qa_outputs = init.linear(config.hidden_size, 2)

    def forward(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None,
                position_ids: Any = None, start_positions: Any = None, end_positions: Any = None,
                output_hidden_states: bool = False,
                output_attentions: bool = False) -> QuestionAnsweringModelOutput:
        out = self._backbone(input_ids, attention_mask, token_type_ids, position_ids,
                             output_hidden_states, output_attentions)
        logits = self.qa_outputs(out.last_hidden_state)                        # (B, T, 2)
        start_logits, end_logits = logits[..., 0], logits[..., 1]             # (B, T) each
        loss = None
        if (start_positions is None) != (end_positions is None):
            raise ValueError("give both start_positions and end_positions, or neither")
        if start_positions is not None:
            B, T = start_logits.shape
            start = _labels("start_positions", start_positions, (B,)).clip(0, T)
            end = _labels("end_positions", end_positions, (B,)).clip(0, T)
            loss = (F.cross_entropy(start_logits, start, ignore_index=T)
                    + F.cross_entropy(end_logits, end, ignore_index=T)) * 0.5
        return QuestionAnsweringModelOutput(loss, start_logits, end_logits, out.hidden_states,
                                            out.attentions, out.attention_scores)


# --- the MobileBERT task models ------------------------------------------------------------------

class MobileBertForPreTraining(PreTrainingModel):
    """MobileBERT + MLM + NSP heads. With the "ib-bert-large" (or "ib-bert-small") config this
    is the IB-BERT teacher, also exported as `IBBertForPreTraining`."""


class MobileBertForMaskedLM(MaskedLMModel):
    pass


class MobileBertForNextSentencePrediction(NextSentencePredictionModel):
    pass


class MobileBertForSequenceClassification(SequenceClassificationModel):
    pass


class MobileBertForTokenClassification(TokenClassificationModel):
    pass


class MobileBertForQuestionAnswering(QuestionAnsweringModel):
    pass


# The IB-BERT teacher is MobileBertForPreTraining with the inverted-bottleneck config.
IBBertForPreTraining = MobileBertForPreTraining
