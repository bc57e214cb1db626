"""Runs that learn (issue 9): a short pre-training run on real text beats the unigram baseline
by a stated margin, and does not show the collapse the issue reported (one token predicted
everywhere, the same accuracy at every evaluation).

Two texts: the embedded default corpus (docstrings of Python's standard library, with the
WordPiece vocabulary trained on it), which needs nothing from ../shared; and the State of the
Union speeches in ../shared/data/corpus with the real bert-base-uncased vocabulary (the issue's
setting; skipped without the shelf). The numbers in the comments were measured on Python 3.11,
2-core AMD EPYC Zen 4.
"""
from __future__ import annotations

import json

import pytest
from learning import assert_learned
from paths import BERT_VOCAB, SHARED_DATA

from tinybert_core import MobileBertConfig, recipes

# Measured: 5.84 vs unigram 6.28 (0.44 nats), accuracy 0.100 vs 0.037 (2.7x), in about 20 s on
# 2 cores. The assertions leave room for another Python version's slightly different corpus.
MIN_LOSS_MARGIN = 0.25        # nats below the unigram baseline
MIN_ACCURACY_RATIO = 1.8      # times the most-frequent-token accuracy


def short_run(tmp_path, steps: int, lr: float, **text) -> dict:
    """A 2-layer, width-64 MobileBERT, batch 8 x 64 tokens, on the embedded corpus (or `text`:
    DataOptions' corpus, eval_corpus, vocab); three evaluations on 10 held-out batches."""
    config = MobileBertConfig.from_pretrained(
        "mobilebert-small", hidden_size=64, embedding_size=32, num_hidden_layers=2,
        num_attention_heads=2, intra_bottleneck_size=16, intermediate_size=64,
        max_position_embeddings=64)
    config.to_json(tmp_path / "config.json")
    data = recipes.DataOptions(batch_size=8, max_seq_length=64, max_predictions_per_seq=10,
                               eval_batches=10, cache_dir=tmp_path / "cache", **text)
    return recipes.pretrain(tmp_path / "config.json", tmp_path / "run", data,
                            dict(pd_steps=steps, learning_rate=lr, eval_every=steps // 3,
                                 save_every=10**6))


def test_a_short_run_on_the_embedded_corpus_beats_the_unigram_baseline(tmp_path):
    summary = short_run(tmp_path, steps=600, lr=2e-2)
    records = [json.loads(line)
               for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert_learned(records, summary["eval"], MIN_LOSS_MARGIN, MIN_ACCURACY_RATIO)


def test_the_checker_fails_the_collapse_the_issue_reported():
    """Issue 9's log: accuracy 0.2215 at every evaluation, one token predicted everywhere.
    `assert_learned` must fail it even where the loss alone would pass."""
    final = {"mlm_loss": 5.0, "mlm_accuracy": 0.2215, "unigram_loss": 6.0,
             "unigram_accuracy": 0.1, "distinct_predictions": 1, "collapsed": True,
             "beats_unigram": True}
    records = [{"step": s, "eval_mlm_loss": 6.0 - s / 100, "eval_mlm_accuracy": 0.2215}
               for s in (10, 20, 100, 200)]
    with pytest.raises(AssertionError, match="accuracy never changed"):
        assert_learned(records, final, 0.25, 1.8)
    records[-1]["eval_mlm_accuracy"] = 0.23                     # accuracy moves, still one token
    with pytest.raises(AssertionError):
        assert_learned(records, final, 0.25, 1.8)
    assert_learned(records, {**final, "distinct_predictions": 40, "collapsed": False}, 0.25, 1.8)


def test_the_old_default_learning_rate_stays_at_the_baseline(tmp_path):
    """The other side of the same claim (learning-diagnosis): at LAMB 1e-3 the same short run
    does not get past the unigram baseline, and the evaluation says so."""
    summary = short_run(tmp_path, steps=200, lr=1e-3)
    assert not summary["eval"]["beats_unigram"]


SOTU = SHARED_DATA / "corpus"
# Measured: 6.310 vs unigram 6.712 (0.40 nats), accuracy 0.163 vs 0.079 (2.05x), 12 distinct
# tokens predicted; about 1.5 minutes on 2 cores (the 30,522-row BERT vocabulary), so slow.
# The text is the first 6,000 lines of sotu-train.txt.
SOTU_MIN_LOSS_MARGIN = 0.25
SOTU_MIN_ACCURACY_RATIO = 1.5


@pytest.mark.slow
@pytest.mark.skipif(not (SOTU / "sotu-valid.txt").is_file() or not BERT_VOCAB.is_file(),
                    reason="needs ../shared/data (State of the Union corpus, BERT vocab)")
def test_a_short_run_on_the_state_of_the_union_beats_the_unigram_baseline(tmp_path):
    head = tmp_path / "sotu-head.txt"
    with open(SOTU / "sotu-train.txt", encoding="utf-8") as f:
        head.write_text("".join(line for _, line in zip(range(6000), f)), encoding="utf-8")
    summary = short_run(tmp_path, steps=600, lr=2e-2, corpus=[head],
                        eval_corpus=[SOTU / "sotu-valid.txt"], vocab=BERT_VOCAB)
    records = [json.loads(line)
               for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert_learned(records, summary["eval"], SOTU_MIN_LOSS_MARGIN, SOTU_MIN_ACCURACY_RATIO)
