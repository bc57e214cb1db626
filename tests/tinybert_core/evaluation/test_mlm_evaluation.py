"""Held-out masked-LM evaluation (tinybert_core/evaluation/mlm.py)."""
from __future__ import annotations

import numpy as np
import pytest
from paths import SHARED_DATA

from tinybert_core import BertTokenizer, MobileBertConfig, MobileBertForPreTraining
from tinybert_core.data.pretraining import make_eval_batches
from tinybert_core.evaluation.mlm import evaluate_mlm

VOCAB = SHARED_DATA / "vocab/bert-base-uncased-vocab.txt"
CORPUS = SHARED_DATA / "corpus/sotu-valid.txt"
pytestmark = pytest.mark.skipif(not CORPUS.exists(), reason="needs ../shared/data")

SMALL = dict(hidden_size=32, embedding_size=16, num_hidden_layers=2, num_attention_heads=2,
             max_position_embeddings=32)


@pytest.fixture(scope="module")
def tok():
    return BertTokenizer(VOCAB)


def student_config(tok):
    return MobileBertConfig.from_pretrained("mobilebert-small", **SMALL, vocab_size=len(tok),
                                            intra_bottleneck_size=16, intermediate_size=32)


def test_evaluate_mlm_is_deterministic_and_plausible(tok, tmp_path):
    s_cfg = student_config(tok)
    student = MobileBertForPreTraining(s_cfg, seed=1)
    ev = make_eval_batches([CORPUS], tokenizer=tok, batch_size=2, max_seq_length=32,
                           max_predictions_per_seq=5, max_batches=2, cache_dir=tmp_path)
    a, b = evaluate_mlm(student, ev), evaluate_mlm(student, ev)
    assert a == b
    assert abs(a["mlm_loss"] - np.log(len(tok))) < 1.0     # an untrained model is near uniform
