"""The baselines (tinybert_core/evaluation/baselines.py) against independent calculations, and
evaluate_mlm's baseline, margin and collapse fields (tinybert_core/evaluation/mlm.py)."""
from __future__ import annotations

import math
from collections import Counter

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograd.serialization import save_npz
from tinybert_core import BertTokenizer, MobileBertConfig, MobileBertForPreTraining
from tinybert_core.data.corpus import tokenize_corpus
from tinybert_core.data.pretraining import make_eval_batches
from tinybert_core.evaluation.baselines import (
    UNIGRAM_FILE,
    UnigramBaseline,
    majority_class_baseline,
    unigram_baseline,
)
from tinybert_core.evaluation.mlm import evaluate_mlm
from tinybert_core.text.wordpiece_trainer import save_vocab, train_wordpiece_vocab

TEXT = """The cat sat on the mat. The dog sat on the log.
A cat and a dog met on the road, and the cat ran.

Every evening the old dog slept by the fire while the cat watched the door.
The road was long and the night was cold.
Nobody knew where the cat went when the dog was asleep.

The fire went out. The cat came back in the morning and sat on the mat again.
"""


@pytest.fixture(scope="module")
def text_corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("corpus")
    path = tmp / "train.txt"
    path.write_text(TEXT * 6, encoding="utf-8")
    save_vocab(train_wordpiece_vocab([path], 120, min_frequency=1), tmp / "vocab.txt")
    return path, BertTokenizer(tmp / "vocab.txt"), tmp / "cache"


def expected_counts(path, tok) -> Counter:
    """Token counts by hand: every non-blank line tokenized, no special tokens."""
    counts: Counter = Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            counts.update(tok(line.strip(), add_special_tokens=False)["input_ids"])
    return counts


def expected_scores(counts: Counter, vocab_size: int, labels: list[int]) -> tuple[float, float]:
    """Add-one smoothed unigram loss and most-frequent-token accuracy, in plain Python."""
    n = sum(counts.values())
    loss = sum(-math.log((counts.get(t, 0) + 1) / (n + vocab_size)) for t in labels) / len(labels)
    top = min(counts, key=lambda t: (-counts[t], t))              # most frequent, lowest id
    return loss, sum(t == top for t in labels) / len(labels)


def test_counts_and_scores_match_a_hand_count(text_corpus):
    path, tok, cache = text_corpus
    baseline = unigram_baseline(tokenize_corpus([path], tok, cache_dir=cache))
    counts = expected_counts(path, tok)
    assert baseline.vocab_size == len(tok)
    assert {i: int(c) for i, c in enumerate(baseline.counts) if c} == dict(counts)
    labels = [tok.vocab["cat"], tok.vocab["the"], tok.vocab["road"], tok.vocab["[UNK]"]]
    loss, acc = expected_scores(counts, len(tok), labels)
    got = baseline.score(np.array(labels))
    assert got["unigram_loss"] == pytest.approx(loss, rel=1e-12)
    assert got["unigram_accuracy"] == acc == 0.25               # "the" is the most frequent
    assert baseline.most_frequent == tok.vocab["the"]


def test_an_unseen_token_costs_log_of_n_plus_v():
    baseline = UnigramBaseline(np.array([0, 5, 3, 0]))
    assert baseline.score(np.array([0]))["unigram_loss"] == pytest.approx(math.log(8 + 4))
    assert np.exp(baseline.log_probs).sum() == pytest.approx(1.0)


@given(hnp.arrays(np.int64, st.integers(1, 30), elements=st.integers(0, 50)), st.data())
def test_score_matches_plain_python(counts, data):
    labels = data.draw(st.lists(st.integers(0, len(counts) - 1), min_size=1, max_size=40))
    c = Counter({i: int(n) for i, n in enumerate(counts) if n})
    got = UnigramBaseline(counts).score(np.array(labels))
    if not c:                                    # all zero: every token equally likely
        assert got["unigram_loss"] == pytest.approx(math.log(len(counts)))
        assert got["unigram_accuracy"] == sum(t == 0 for t in labels) / len(labels)
        return
    loss, acc = expected_scores(c, len(counts), labels)
    assert got["unigram_loss"] == pytest.approx(loss, rel=1e-10)
    assert got["unigram_accuracy"] == acc


def test_bad_counts_and_labels_are_refused():
    for bad in (np.zeros((2, 2), np.int64), np.array([1.5, 2.0]), np.array([-1, 3]), []):
        with pytest.raises(ValueError, match="UnigramBaseline"):
            UnigramBaseline(bad)
    with pytest.raises(ValueError, match=r"label ids must lie in \[0, 3\)"):
        UnigramBaseline(np.array([1, 2, 3])).score(np.array([0, 3]))


def test_counts_are_cached_beside_the_shards_and_a_bad_cache_is_recomputed(text_corpus):
    path, tok, cache = text_corpus
    corpus = tokenize_corpus([path], tok, cache_dir=cache)
    first = unigram_baseline(corpus)
    cached = corpus.directory / UNIGRAM_FILE
    assert cached.is_file()
    # A file with the right size and total is read back, not recomputed: the cache is used.
    fake = np.zeros_like(first.counts)
    fake[7] = first.counts.sum()
    save_npz(cached, {"counts": fake})
    assert unigram_baseline(corpus).counts[7] == first.counts.sum()
    # A file that does not add up, or does not load, is recomputed and rewritten.
    save_npz(cached, {"counts": fake[:-1]})
    assert np.array_equal(unigram_baseline(corpus).counts, first.counts)
    cached.write_bytes(b"not a zip file")
    assert np.array_equal(unigram_baseline(corpus).counts, first.counts)
    assert np.array_equal(UnigramBaseline.load(cached).counts, first.counts)


def test_load_names_a_corrupt_file(tmp_path):
    bad = tmp_path / UNIGRAM_FILE
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="unigram_counts.npz"):
        UnigramBaseline.load(bad)


def test_majority_class_matches_a_hand_count():
    got = majority_class_baseline([2, 1, 2, 0, 1, 2], [2, 2, 1, 0])
    assert got == {"majority_class": 2, "majority_accuracy": 0.5}
    assert majority_class_baseline(["b", "a", "b", "a"], ["a", "b", "a"])["majority_class"] == "a"
    with pytest.raises(ValueError):
        majority_class_baseline([], [1])


# ----- evaluate_mlm: the baseline next to the model, and collapse ------------------------------

@pytest.fixture(scope="module")
def model_and_batches(text_corpus):
    path, tok, cache = text_corpus
    cfg = MobileBertConfig.from_pretrained(
        "mobilebert-small", vocab_size=len(tok), hidden_size=32, embedding_size=16,
        num_hidden_layers=2, num_attention_heads=2, intra_bottleneck_size=16,
        intermediate_size=32, max_position_embeddings=64)
    ev = make_eval_batches([path], tokenizer=tok, batch_size=4, max_seq_length=64,
                           max_predictions_per_seq=8, max_batches=3, cache_dir=cache)
    return MobileBertForPreTraining(cfg, seed=0), ev, unigram_baseline(
        tokenize_corpus([path], tok, cache_dir=cache))


def _labels(batches):
    return np.concatenate([b.masked_lm_ids[b.masked_lm_weights > 0] for b in batches])


def test_evaluate_mlm_scores_the_baseline_on_the_same_positions(model_and_batches):
    model, ev, baseline = model_and_batches
    r = evaluate_mlm(model, ev, baseline)
    labels = _labels(ev)
    assert r["predictions"] == len(labels)
    assert r["unigram_loss"] == baseline.score(labels)["unigram_loss"]
    assert r["unigram_accuracy"] == np.mean(labels == baseline.most_frequent)
    assert r["unigram_top_id"] == baseline.most_frequent
    assert r["beats_unigram"] == (r["mlm_loss"] < r["unigram_loss"]
                                  and r["mlm_accuracy"] > r["unigram_accuracy"])
    assert not r["beats_unigram"]              # an untrained model is near uniform: far worse
    assert "unigram_loss" not in evaluate_mlm(model, ev)


def test_a_model_predicting_one_token_everywhere_is_reported_collapsed(model_and_batches):
    model, ev, baseline = model_and_batches
    bias = model.cls.predictions.bias
    saved = bias.data.copy()
    try:
        bias.data[baseline.most_frequent] = 1e4   # the failure of issue 9: one token everywhere
        r = evaluate_mlm(model, ev, baseline)
    finally:
        bias.data[:] = saved
    assert r["collapsed"] and r["distinct_predictions"] == 1 and r["top_prediction_share"] == 1
    assert r["top_prediction"] == baseline.most_frequent
    assert r["mlm_accuracy"] == r["unigram_accuracy"]  # exactly the baseline's accuracy
    assert not r["beats_unigram"]
    assert not evaluate_mlm(model, ev, baseline)["collapsed"]


def test_a_baseline_of_another_vocabulary_is_refused(model_and_batches):
    model, ev, _ = model_and_batches
    with pytest.raises(ValueError, match="unigram baseline has 3 token counts"):
        evaluate_mlm(model, ev, UnigramBaseline(np.array([1, 2, 3])))
