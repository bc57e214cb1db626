"""The model class for a config and a task, from one table (Hugging Face's AutoModel idea).

`MODEL_CLASSES[(model_type, task)]` is the whole mapping: the config's `model_type`
("mobilebert" or "bert") and a task name pick the class, so a directory written by
`save_pretrained` loads with `load_model(directory, task)` whatever family it holds, float32
or int8 (`from_pretrained` reads both).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tinybert_core.config import MobileBertConfig
from tinybert_core.models.bert import BertModel
from tinybert_core.models.hf_io import PreTrainedModel
from tinybert_core.models.mobilebert import MobileBertModel
from tinybert_core.models.tasks import (
    BertForMaskedLM,
    BertForNextSentencePrediction,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    MobileBertForMaskedLM,
    MobileBertForNextSentencePrediction,
    MobileBertForPreTraining,
    MobileBertForQuestionAnswering,
    MobileBertForSequenceClassification,
    MobileBertForTokenClassification,
)

MODEL_CLASSES: dict[tuple[str, str], type[PreTrainedModel]] = {
    ("mobilebert", "base"): MobileBertModel,
    ("mobilebert", "pretraining"): MobileBertForPreTraining,
    ("mobilebert", "masked_lm"): MobileBertForMaskedLM,
    ("mobilebert", "next_sentence"): MobileBertForNextSentencePrediction,
    ("mobilebert", "sequence_classification"): MobileBertForSequenceClassification,
    ("mobilebert", "token_classification"): MobileBertForTokenClassification,
    ("mobilebert", "question_answering"): MobileBertForQuestionAnswering,
    ("bert", "base"): BertModel,
    ("bert", "pretraining"): BertForPreTraining,
    ("bert", "masked_lm"): BertForMaskedLM,
    ("bert", "next_sentence"): BertForNextSentencePrediction,
    ("bert", "sequence_classification"): BertForSequenceClassification,
    ("bert", "token_classification"): BertForTokenClassification,
    ("bert", "question_answering"): BertForQuestionAnswering,
}
TASKS = tuple(dict.fromkeys(task for _, task in MODEL_CLASSES))


def model_class(config: MobileBertConfig, task: str = "base") -> type[PreTrainedModel]:
    """The tinybert class for `task` and the config's model_type (mobilebert or bert)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    return MODEL_CLASSES[(config.model_type, task)]


def saved_task(config: MobileBertConfig) -> str:
    """The task of the class that saved a model (config.json's `architectures`), "base" when
    it names none of ours."""
    for (model_type, task), cls in MODEL_CLASSES.items():
        if model_type == config.model_type and cls.__name__ in (config.architectures or []):
            return task
    return "base"


def load_model(directory: str | Path, task: str = "base", **kwargs: Any) -> PreTrainedModel:
    """`from_pretrained` of the right class for the directory's config and `task`."""
    config = MobileBertConfig.from_pretrained(Path(directory))
    return model_class(config, task).from_pretrained(directory, **kwargs)
