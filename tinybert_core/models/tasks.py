"""Task models: a backbone, a head and the task's loss, for MobileBERT and BERT alike.

Each class wires its parts in `__init__` the way Hugging Face writes them, so `grep` finds
them: `self.mobilebert = MobileBertModel(config)` (or `self.bert = BertModel(config)`), then
`self.cls = ...`, `self.classifier = ...` or `self.qa_outputs = ...`. The backbone is assigned
first, so a tied decoder weight keeps the backbone's name (`mobilebert.embeddings.
word_embeddings.weight`) in the state dict. What a task does with the backbone's output is
written once, in the task's base class (`PreTrainingModel`, `MaskedLMModel`, ...), which
reaches the backbone through `self.base_model` (HF's `base_model_prefix`).

The IB-BERT teacher is `MobileBertForPreTraining` with an inverted-bottleneck config
("ib-bert-large", "ib-bert-small"); `IBBertForPreTraining` names the same class.
"""
from __future__ import annotations

from typing import Any

from autograd.tensor import Tensor
from tinybert_core.config import MobileBertConfig
from tinybert_core.models.bert import BertModel, BertOnlyMLMHead, BertPreTrainingHeads
from tinybert_core.models.heads import (
    MobileBertOnlyMLMHead,
    MobileBertOnlyNSPHead,
    MobileBertPreTrainingHeads,
    classification_loss,
    gather_positions,
    masked_lm_loss,
    next_sentence_loss,
    question_answering_loss,
    token_loss,
)
from tinybert_core.models.hf_io import PreTrainedModel
from tinybert_core.models.layers import Initializer
from tinybert_core.models.mobilebert import MobileBertModel
from tinybert_core.models.outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    NextSentencePredictorOutput,
    PreTrainingOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)


def classifier_dropout(config: MobileBertConfig) -> float:
    """The classifier's dropout: `classifier_dropout`, else `hidden_dropout_prob` (as HF)."""
    if config.classifier_dropout is not None:
        return config.classifier_dropout
    return config.hidden_dropout_prob


# --- one forward per task ------------------------------------------------------------------------

class TaskModel(PreTrainedModel):
    """A backbone (under `base_model_prefix`) plus a head; see the module docstring."""

    is_backbone = False

    def _setup(self, config: MobileBertConfig, seed: Any) -> Initializer:
        """Check and keep the config; the initializer every part of the model draws from."""
        self.check_config(config)
        self.config = config
        return Initializer(config, seed)

    def _backbone(self, input_ids: Any, attention_mask: Any, token_type_ids: Any,
                  position_ids: Any, output_hidden_states: bool,
                  output_attentions: bool) -> BaseModelOutputWithPooling:
        return self.base_model(input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids, position_ids=position_ids,
                               output_hidden_states=output_hidden_states,
                               output_attentions=output_attentions)


class PreTrainingModel(TaskModel):
    """Backbone + MLM and NSP heads; loss = MLM (labels) + NSP (next_sentence_label)."""

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
        heads = self.cls(seq, out.pooler_output)
        mlm = None if labels is None else masked_lm_loss(heads.prediction_logits, labels)
        nsp = None if next_sentence_label is None else next_sentence_loss(
            heads.seq_relationship_logits, next_sentence_label)
        loss = mlm if nsp is None else (nsp if mlm is None else mlm + nsp)
        return PreTrainingOutput(loss, heads.prediction_logits, heads.seq_relationship_logits,
                                 out.hidden_states, out.attentions, out.attention_scores, mlm,
                                 nsp, out.last_hidden_state)


class MaskedLMModel(TaskModel):
    """Backbone (no pooler) + MLM head; `masked_positions` as in PreTrainingModel."""

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
        loss = None if labels is None else masked_lm_loss(logits, labels)
        return MaskedLMOutput(loss, logits, out.hidden_states, out.attentions,
                              out.attention_scores)


class NextSentencePredictionModel(TaskModel):
    """Backbone + NSP head on the pooled [CLS] vector."""

    def forward(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None,
                position_ids: Any = None, labels: Any = None, output_hidden_states: bool = False,
                output_attentions: bool = False) -> NextSentencePredictorOutput:
        out = self._backbone(input_ids, attention_mask, token_type_ids, position_ids,
                             output_hidden_states, output_attentions)
        logits = self.cls(out.pooler_output)                                   # (B, 2)
        loss = None if labels is None else next_sentence_loss(logits, labels, "labels")
        return NextSentencePredictorOutput(loss, logits, out.hidden_states, out.attentions,
                                           out.attention_scores)


class SequenceClassificationModel(TaskModel):
    """dropout + Linear(hidden, num_labels) on the pooled output (regression if num_labels=1)."""

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
    """dropout + Linear(hidden, num_labels) on every token (no pooler)."""

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
    """Linear(hidden, 2) per token -> start and end logits (spec 2.11), no pooler."""

    def forward(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None,
                position_ids: Any = None, start_positions: Any = None, end_positions: Any = None,
                output_hidden_states: bool = False,
                output_attentions: bool = False) -> QuestionAnsweringModelOutput:
        if (start_positions is None) != (end_positions is None):
            raise ValueError("give both start_positions and end_positions, or neither")
        out = self._backbone(input_ids, attention_mask, token_type_ids, position_ids,
                             output_hidden_states, output_attentions)
        logits = self.qa_outputs(out.last_hidden_state)                        # (B, T, 2)
        start_logits, end_logits = logits[..., 0], logits[..., 1]             # (B, T) each
        loss = None
        if start_positions is not None:
            loss = question_answering_loss(start_logits, end_logits, start_positions,
                                           end_positions)
        return QuestionAnsweringModelOutput(loss, start_logits, end_logits, out.hidden_states,
                                            out.attentions, out.attention_scores)


def _word_embeddings(backbone: Any) -> Tensor:
    """The (V, E) table the MLM decoder is tied to."""
    return backbone.embeddings.word_embeddings.weight


# --- MobileBERT (and the IB-BERT teacher) --------------------------------------------------------

class MobileBertForPreTraining(PreTrainingModel):
    """MobileBERT + MLM + NSP heads. With the "ib-bert-large" (or "ib-bert-small") config this
    is the IB-BERT teacher, also exported as `IBBertForPreTraining`."""

    model_type = base_model_prefix = "mobilebert"

    def __init__(self, config: MobileBertConfig, seed: Any = None) -> None:
        init = self._setup(config, seed)
        self.mobilebert = MobileBertModel(config, seed=init)
        self.cls = MobileBertPreTrainingHeads(config, init, _word_embeddings(self.mobilebert))


class MobileBertForMaskedLM(MaskedLMModel):
    model_type = base_model_prefix = "mobilebert"

    def __init__(self, config: MobileBertConfig, seed: Any = None) -> None:
        init = self._setup(config, seed)
        self.mobilebert = MobileBertModel(config, add_pooling_layer=False, seed=init)
        self.cls = MobileBertOnlyMLMHead(config, init, _word_embeddings(self.mobilebert))


class MobileBertForNextSentencePrediction(NextSentencePredictionModel):
    model_type = base_model_prefix = "mobilebert"

    def __init__(self, config: MobileBertConfig, seed: Any = None) -> None:
        init = self._setup(config, seed)
        self.mobilebert = MobileBertModel(config, seed=init)
        self.cls = MobileBertOnlyNSPHead(config, init)


class MobileBertForSequenceClassification(SequenceClassificationModel):
    model_type = base_model_prefix = "mobilebert"

    def __init__(self, config: MobileBertConfig, seed: Any = None) -> None:
        init = self._setup(config, seed)
        self.mobilebert = MobileBertModel(config, seed=init)
        self.dropout = init.dropout(classifier_dropout(config))
        self.classifier = init.linear(config.hidden_size, config.num_labels)


class MobileBertForTokenClassification(TokenClassificationModel):
    model_type = base_model_prefix = "mobilebert"

    def __init__(self, config: MobileBertConfig, seed: Any = None) -> None:
        init = self._setup(config, seed)
        self.mobilebert = MobileBertModel(config, add_pooling_layer=False, seed=init)
        self.dropout = init.dropout(classifier_dropout(config))
        self.classifier = init.linear(config.hidden_size, config.num_labels)


class MobileBertForQuestionAnswering(QuestionAnsweringModel):
    model_type = base_model_prefix = "mobilebert"

    def __init__(self, config: MobileBertConfig, seed: Any = None) -> None:
        init = self._setup(config, seed)
        self.mobilebert = MobileBertModel(config, add_pooling_layer=False, seed=init)
        self.qa_outputs = init.linear(config.hidden_size, 2)


# The IB-BERT teacher is MobileBertForPreTraining with the inverted-bottleneck config.
IBBertForPreTraining = MobileBertForPreTraining


# --- BERT ----------------------------------------------------------------------------------------

class BertForPreTraining(PreTrainingModel):
    model_type = base_model_prefix = "bert"

    def __init__(self, config: MobileBertConfig, seed: Any = None) -> None:
        init = self._setup(config, seed)
        self.bert = BertModel(config, seed=init)
        self.cls = BertPreTrainingHeads(config, init, _word_embeddings(self.bert))


class BertForMaskedLM(MaskedLMModel):
    model_type = base_model_prefix = "bert"

    def __init__(self, config: MobileBertConfig, seed: Any = None) -> None:
        init = self._setup(config, seed)
        self.bert = BertModel(config, add_pooling_layer=False, seed=init)
        self.cls = BertOnlyMLMHead(config, init, _word_embeddings(self.bert))


class BertForNextSentencePrediction(NextSentencePredictionModel):
    model_type = base_model_prefix = "bert"

    def __init__(self, config: MobileBertConfig, seed: Any = None) -> None:
        init = self._setup(config, seed)
        self.bert = BertModel(config, seed=init)
        self.cls = MobileBertOnlyNSPHead(config, init)      # HF's BertOnlyNSPHead: the same


class BertForSequenceClassification(SequenceClassificationModel):
    model_type = base_model_prefix = "bert"

    def __init__(self, config: MobileBertConfig, seed: Any = None) -> None:
        init = self._setup(config, seed)
        self.bert = BertModel(config, seed=init)
        self.dropout = init.dropout(classifier_dropout(config))
        self.classifier = init.linear(config.hidden_size, config.num_labels)


class BertForTokenClassification(TokenClassificationModel):
    model_type = base_model_prefix = "bert"

    def __init__(self, config: MobileBertConfig, seed: Any = None) -> None:
        init = self._setup(config, seed)
        self.bert = BertModel(config, add_pooling_layer=False, seed=init)
        self.dropout = init.dropout(classifier_dropout(config))
        self.classifier = init.linear(config.hidden_size, config.num_labels)


class BertForQuestionAnswering(QuestionAnsweringModel):
    model_type = base_model_prefix = "bert"

    def __init__(self, config: MobileBertConfig, seed: Any = None) -> None:
        init = self._setup(config, seed)
        self.bert = BertModel(config, add_pooling_layer=False, seed=init)
        self.qa_outputs = init.linear(config.hidden_size, 2)
