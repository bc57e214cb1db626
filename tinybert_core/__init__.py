"""tinybert_core: MobileBERT model, tokenizer and training code.

    from tinybert_core import MobileBertConfig, MobileBertForPreTraining, BertTokenizer
    config = MobileBertConfig.from_pretrained("mobilebert")       # a preset, a dir or a .json
    model = MobileBertForPreTraining.from_pretrained("path/to/hf_dir")
    model.save_pretrained("out_dir")

The IB-BERT teacher is `MobileBertForPreTraining` with an inverted-bottleneck config
("ib-bert-large", or "ib-bert-small" for small machines); `IBBertForPreTraining` is an alias.
"""
from tinybert_core.config import PRESETS, MobileBertConfig
from tinybert_core.models.bert import BertModel
from tinybert_core.models.auto import load_model, model_class
from tinybert_core.models.hf_io import PreTrainedModel
from tinybert_core.models.mobilebert import MobileBertModel
from tinybert_core.models.tasks import (
    BertForMaskedLM,
    BertForNextSentencePrediction,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    IBBertForPreTraining,
    MobileBertForMaskedLM,
    MobileBertForNextSentencePrediction,
    MobileBertForPreTraining,
    MobileBertForQuestionAnswering,
    MobileBertForSequenceClassification,
    MobileBertForTokenClassification,
)
from tinybert_core.text.tokenization import BertTokenizer

__all__ = [
    "PRESETS",
    "BertForMaskedLM",
    "BertForNextSentencePrediction",
    "BertForPreTraining",
    "BertForQuestionAnswering",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertModel",
    "BertTokenizer",
    "IBBertForPreTraining",
    "MobileBertConfig",
    "MobileBertForMaskedLM",
    "MobileBertForNextSentencePrediction",
    "MobileBertForPreTraining",
    "MobileBertForQuestionAnswering",
    "MobileBertForSequenceClassification",
    "MobileBertForTokenClassification",
    "MobileBertModel",
    "PreTrainedModel",
    "load_model",
    "model_class",
]
