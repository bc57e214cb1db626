"""Data-parallel sharding of the pre-training batches (PretrainingBatches' `shard`): the slices
of N processes put together are exactly the batch one process draws, padded to the same width,
and the iterator state is the global position, so a run resumes with any number of processes."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from tinybert_core.data import corpus as C
from tinybert_core.data import pretraining as D


@pytest.fixture(scope="module")
def dataset(moby_head, tok, tmp_path_factory) -> D.PretrainingDataset:
    corpus = C.tokenize_corpus(moby_head, tok, cache_dir=tmp_path_factory.mktemp("cache"))
    # Short pairs and several predictions per sequence: the shards' widths and masked-token
    # counts then differ, which is what sharding must get right.
    return D.PretrainingDataset(corpus, tok, max_seq_length=64, max_predictions_per_seq=20,
                                short_seq_prob=0.9)


def _take(it, n):
    return list(itertools.islice(it, n))


def _joined(shards: list[D.PretrainingBatch]) -> D.PretrainingBatch:
    return D.PretrainingBatch(*(np.concatenate(fields) for fields in zip(*shards)))


@pytest.mark.parametrize("count", [2, 4])
@pytest.mark.parametrize("pad_to_multiple_of", [None, 8])
def test_shards_put_together_are_the_single_process_batch(dataset, count, pad_to_multiple_of):
    whole = dataset.batches(8, pad_to_multiple_of=pad_to_multiple_of)
    shards = [dataset.batches(8, pad_to_multiple_of=pad_to_multiple_of, shard=(r, count))
              for r in range(count)]
    expected = _take(whole, 12)
    got = [_take(it, 12) for it in shards]
    widths, counts = set(), set()
    for step, batch in enumerate(expected):
        parts = [g[step] for g in got]
        assert all(len(p.input_ids) == 8 // count for p in parts)
        joined = _joined(parts)
        for name, a, b in zip(D.PretrainingBatch._fields, joined, batch):
            np.testing.assert_array_equal(a, b, err_msg=f"step {step}, field {name}")
        # Each shard alone would be padded narrower: its width is the global batch's.
        widths.add(tuple(int(p.attention_mask.sum(1).max()) for p in parts))
        counts.add(tuple(int(p.masked_lm_weights.sum()) for p in parts))
    if count == 4:   # with 4 examples a shard, one full-length pair is in each half
        assert any(len(set(w)) > 1 for w in widths), "every shard had the same longest pair"
    assert any(len(set(c)) > 1 for c in counts), "every shard had the same masked-token count"
    assert all(it.state() == whole.state() for it in shards)


def test_a_sharded_state_resumes_with_another_number_of_processes(dataset):
    two = [dataset.batches(8, shard=(r, 2)) for r in range(2)]
    for it in two:
        _take(it, 5)
    state = two[0].state()
    assert two[1].state() == state
    whole = dataset.batches(8, state=state)
    four = [dataset.batches(8, state=state, shard=(r, 4)) for r in range(4)]
    for batch in _take(whole, 3):
        joined = _joined([next(it) for it in four])
        for a, b in zip(joined, batch):
            np.testing.assert_array_equal(a, b)


def test_a_short_last_batch_is_split_as_evenly_as_it_goes(tok, tmp_path):
    path = tmp_path / "three.txt"
    path.write_text("One sentence here.\nAnother one.\n\nSecond document.\nMore text.\n\n"
                    "Third document.\nAnd its end.\n", encoding="utf-8")
    ds = D.PretrainingDataset.from_files(path, tok, cache_dir=tmp_path)
    (whole,) = list(ds.batches(8, epochs=1))
    n = len(whole.input_ids)
    assert 2 <= n < 8
    parts = [list(ds.batches(8, epochs=1, shard=(r, 2))) for r in range(2)]
    assert [len(p[0].input_ids) for p in parts] == [n - n // 2, n // 2]
    for a, b in zip(_joined([p[0] for p in parts]), whole):
        np.testing.assert_array_equal(a, b)
    # More processes than pairs: every process stops, none is left waiting for a batch.
    assert all(list(ds.batches(n + 1, epochs=1, shard=(r, n + 1))) == [] for r in range(n + 1))


def test_shard_validation(dataset):
    with pytest.raises(ValueError, match="batch_size 6 does not split evenly over 4"):
        dataset.batches(6, shard=(0, 4))
    with pytest.raises(ValueError, match="0 <= rank < count"):
        dataset.batches(8, shard=(2, 2))
