"""Tests for the pre-training data pipeline's batches (tinybert_core/data/pretraining.py): masking
statistics, layout, NSP pairs, determinism and exact resume.

Statistics are measured on real text: the first State of the Union addresses of
shared/data/corpus/sotu-train.txt and Moby-Dick, with the real bert-base-uncased vocabulary.
Tests that need shared/ skip when it is absent.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from paths import BERT_VOCAB, MOBY_DICK, SHARED_DATA, SOTU_TRAIN

from tinybert_core.data import corpus as C
from tinybert_core.data import pretraining as D

VOCAB, SOTU, MOBY = BERT_VOCAB, SOTU_TRAIN, MOBY_DICK
needs_shared = pytest.mark.skipif(not (VOCAB.is_file() and SOTU.is_file() and MOBY.is_file()),
                                  reason=f"shared data not found under {SHARED_DATA}")
CLS, SEP, PAD, MASK = 101, 102, 0, 103


# ----- fixtures -----

@pytest.fixture(scope="module")
def sotu_corpus(sotu_file, tok, tmp_path_factory) -> C.TokenizedCorpus:
    return C.tokenize_corpus(sotu_file, tok, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def sotu_docs(sotu_corpus) -> list[bytes]:
    """Each document's ids, concatenated, as bytes (for contiguity searches)."""
    return [np.concatenate(d).astype(np.int32).tobytes() for d in sotu_corpus.documents()]


def _batches(corpus, tok, n, batch_size=8, **kw):
    it = D.PretrainingDataset(corpus, tok, **kw).batches(batch_size)
    return list(itertools.islice(it, n))


@pytest.fixture(scope="module")
def sotu_batches(sotu_corpus, tok) -> list[D.PretrainingBatch]:
    return _batches(sotu_corpus, tok, 200)


def _originals(batch: D.PretrainingBatch) -> np.ndarray:
    """input_ids with the masked positions restored to their labels."""
    ids = batch.input_ids.copy()
    for b in range(len(ids)):
        k = int(batch.masked_lm_weights[b].sum())
        ids[b, batch.masked_lm_positions[b, :k]] = batch.masked_lm_ids[b, :k]
    return ids


def _rows(batches):
    """(originals, batch, row) for every example."""
    for batch in batches:
        orig = _originals(batch)
        for b in range(len(orig)):
            yield orig[b], batch, b


def _find_all(needle: np.ndarray, doc: bytes) -> list[int]:
    """Token offsets at which ``needle`` occurs in ``doc``."""
    pattern, out = needle.astype(np.int32).tobytes(), []
    start = doc.find(pattern)
    while start != -1:
        if start % 4 == 0:
            out.append(start // 4)
        start = doc.find(pattern, start + 1)
    return out


def _contained(needle: np.ndarray, docs: list[bytes]) -> bool:
    return any(_find_all(needle, doc) for doc in docs)


def _gaps(a: np.ndarray, b: np.ndarray, docs: list[bytes]) -> list[int]:
    """For every place where B follows A in one document, the tokens between them."""
    out = []
    for doc in docs:
        starts_b = _find_all(b, doc)
        for i in _find_all(a, doc):
            out += [j - (i + len(a)) for j in starts_b if j >= i + len(a)]
    return out


# ----- masking statistics on real text -----

@needs_shared
def test_masked_count_is_15_percent_of_non_special_tokens(sotu_batches):
    chosen = candidates = 0
    for orig, batch, b in _rows(sotu_batches):
        n_cand = int(np.isin(orig, [CLS, SEP, PAD], invert=True).sum())
        k = int(batch.masked_lm_weights[b].sum())
        assert k == min(20, max(1, round(0.15 * n_cand)))
        chosen, candidates = chosen + k, candidates + n_cand
    assert 0.14 < chosen / candidates < 0.16


@needs_shared
def test_80_10_10_replacement(sotu_batches):
    masked = kept = rand = 0
    for batch in sotu_batches:
        w = batch.masked_lm_weights > 0
        seen = np.take_along_axis(batch.input_ids, batch.masked_lm_positions, axis=1)[w]
        labels = batch.masked_lm_ids[w]
        masked += int((seen == MASK).sum())
        kept += int((seen == labels).sum())
        rand += int(((seen != MASK) & (seen != labels)).sum())
    total = masked + kept + rand
    assert total > 20_000
    assert abs(masked / total - 0.8) < 0.015
    assert abs(kept / total - 0.1) < 0.01
    assert abs(rand / total - 0.1) < 0.01


@needs_shared
def test_specials_are_never_masked_and_labels_agree(sotu_batches):
    for batch in sotu_batches:
        B, T = batch.input_ids.shape
        assert batch.masked_lm_positions.shape == (B, 20)
        assert batch.masked_lm_labels().shape == (B, 20)
        for b in range(B):
            k = int(batch.masked_lm_weights[b].sum())
            pos, ids = batch.masked_lm_positions[b], batch.masked_lm_ids[b]
            assert np.all(np.diff(pos[:k]) > 0)
            assert not np.isin(ids[:k], [CLS, SEP, PAD, MASK]).any()
            assert np.all(batch.attention_mask[b, pos[:k]] == 1)
            assert np.all(pos[k:] == 0) and np.all(ids[k:] == 0)
            assert np.all(batch.masked_lm_weights[b, k:] == 0)
            labels = np.full(20, -100)
            labels[:k] = ids[:k]
            np.testing.assert_array_equal(batch.masked_lm_labels()[b], labels)
        # Special positions keep their ids: [CLS] first, [SEP]s untouched.
        assert np.all(batch.input_ids[:, 0] == CLS)


@needs_shared
def test_layout_segments_attention_and_dynamic_padding(sotu_batches):
    for batch in sotu_batches:
        n = batch.attention_mask.sum(1)
        assert batch.input_ids.shape[1] == n.max() <= 128  # padded to the longest only
        for b, orig in enumerate(_originals(batch)):
            L = n[b]
            assert np.all(batch.attention_mask[b, :L] == 1)
            assert np.all(batch.attention_mask[b, L:] == 0)
            assert np.all(batch.input_ids[b, L:] == PAD)
            seps = np.flatnonzero(orig[:L] == SEP)
            assert len(seps) == 2 and seps[1] == L - 1 and orig[0] == CLS
            assert 1 < seps[0] < L - 2  # A and B both hold at least one token
            types = np.zeros_like(batch.token_type_ids[b])
            types[seps[0] + 1:L] = 1
            np.testing.assert_array_equal(batch.token_type_ids[b], types)
    for field in D.PretrainingBatch._fields:
        want = np.float32 if field == "masked_lm_weights" else np.int64
        assert getattr(sotu_batches[0], field).dtype == want


@needs_shared
def test_nsp_labels_balanced_and_is_next_pairs_are_consecutive_text(sotu_batches, sotu_docs):
    labels = np.concatenate([b.next_sentence_labels for b in sotu_batches])
    assert 0.45 < labels.mean() < 0.58  # BERT forces "random" for one-line chunks: a bit over 1/2
    follows = {0: 0, 1: 0}
    counts = {0: 0, 1: 0}
    for orig, batch, b in itertools.islice(_rows(sotu_batches), 600):
        L = int(batch.attention_mask[b].sum())
        sep = int(np.flatnonzero(orig == SEP)[0])
        a, bb = orig[1:sep], orig[sep + 1:L - 1]
        label = int(batch.next_sentence_labels[b])
        assert _contained(a, sotu_docs) and _contained(bb, sotu_docs)
        counts[label] += 1
        gaps = _gaps(a, bb, sotu_docs)
        if label == 0:
            # B continues A in the same document; only truncation (which trims the longer
            # segment at its front or back) may have cut tokens out between them.
            assert gaps, "IsNext pair whose B does not follow A"
            if L < 128:  # under max_num_tokens: nothing was truncated
                assert 0 in gaps
            else:
                assert min(gaps) < 128
        follows[label] += bool(gaps) and min(gaps) < 128
    assert counts[0] > 200 and follows[0] == counts[0]
    assert follows[1] < 0.02 * counts[1]  # random B: (almost) never the text after A


@needs_shared
def test_max_length_short_sequences_and_multiple_of_8(sotu_corpus, tok):
    batches = _batches(sotu_corpus, tok, 60, max_seq_length=64)
    lengths = np.concatenate([b.attention_mask.sum(1) for b in batches])
    assert lengths.max() <= 64 and (lengths == 64).mean() > 0.8

    def pair_lengths(p):  # of every pair in epoch 0
        table = D.PretrainingDataset(sotu_corpus, tok, max_seq_length=64,
                                     short_seq_prob=p).window_pairs(0, 0)[1]
        return table[:, 1] - table[:, 0] + table[:, 3] - table[:, 2] + 3

    full, short = pair_lengths(0.0), pair_lengths(1.0)
    assert full.max() == short.max() == 64
    # A document's target below max_seq_length - 3 makes smaller chunks: more, shorter pairs.
    # (Not much shorter: a one-line chunk gets a whole random line as B, then is truncated.)
    assert len(short) > 1.2 * len(full)
    assert (short < 50).mean() > 2 * (full < 50).mean()
    padded = D.PretrainingDataset(sotu_corpus, tok, max_seq_length=100).batches(
        4, pad_to_multiple_of=8)
    for batch in itertools.islice(padded, 30):
        T = batch.input_ids.shape[1]
        assert T % 8 == 0 or T == 100
        assert T <= 100


@needs_shared
def test_whole_word_masking_keeps_words_whole(sotu_corpus, tok):
    cont = np.array([t.startswith("##") for t in tok.ids_to_tokens])
    batches = _batches(sotu_corpus, tok, 60, whole_word_mask=True)
    words_with_pieces = 0
    for orig, batch, b in _rows(batches):
        k = int(batch.masked_lm_weights[b].sum())
        assert 1 <= k <= 20
        chosen = np.zeros(len(orig), dtype=bool)
        chosen[batch.masked_lm_positions[b, :k]] = True
        normal = ~np.isin(orig, [CLS, SEP, PAD])
        for p in range(1, len(orig)):
            if normal[p] and normal[p - 1] and cont[orig[p]]:  # p continues the word at p - 1
                assert chosen[p] == chosen[p - 1]
                words_with_pieces += chosen[p]
    assert words_with_pieces > 50


# ----- determinism and resuming -----

def _same(xs, ys) -> bool:
    return len(xs) == len(ys) and all(
        all(np.array_equal(f, g) for f, g in zip(x, y)) for x, y in zip(xs, ys))


@needs_shared
def test_same_seed_same_batches_other_seed_and_epoch_differ(sotu_corpus, tok):
    a = _batches(sotu_corpus, tok, 5, seed=3)
    assert _same(a, _batches(sotu_corpus, tok, 5, seed=3))
    assert not _same(a, _batches(sotu_corpus, tok, 5, seed=4))
    ds = D.PretrainingDataset(sotu_corpus, tok, seed=3)
    first, second = ds.window_pairs(0, 0)[1], ds.window_pairs(1, 0)[1]
    assert not np.array_equal(first, second)  # each epoch reshuffles and re-pairs
    np.testing.assert_array_equal(second, D.PretrainingDataset(sotu_corpus, tok, seed=3)
                                  .window_pairs(1, 0)[1])


@pytest.fixture(scope="module")
def moby_sharded(tok, tmp_path_factory) -> D.PretrainingDataset:
    """Moby-Dick in ~15 small shards read 2-3 at a time: several windows per epoch."""
    if not MOBY.is_file():
        pytest.skip(f"corpus not found: {MOBY}")
    return D.PretrainingDataset.from_files(MOBY, tok, cache_dir=tmp_path_factory.mktemp("moby"),
                                           shard_tokens=20_000, shuffle_buffer_tokens=50_000,
                                           max_seq_length=64, seed=7)


@needs_shared
def test_windows_cover_every_document_once_per_epoch(moby_sharded):
    ds = moby_sharded
    assert ds.corpus.num_shards > 10
    for epoch in (0, 1):
        windows = ds.windows(epoch)
        assert len(windows) > 3
        assert sorted(itertools.chain(*windows)) == list(range(ds.corpus.num_shards))
    assert ds.windows(0) != ds.windows(1)


@pytest.mark.parametrize("which, batch_size, stop", [("sotu", 8, 4), ("moby", 128, 23)])
@needs_shared
def test_resume_gives_the_same_batches(which, batch_size, stop, request, tok):
    if which == "sotu":
        ds = D.PretrainingDataset(request.getfixturevalue("sotu_corpus"), tok, seed=11)
        total = 10
    else:  # crosses windows and an epoch boundary
        ds = request.getfixturevalue("moby_sharded")
        total = 50  # an epoch is about 40 batches of 128
    straight = list(itertools.islice(ds.batches(batch_size), total))
    it = ds.batches(batch_size)
    head = list(itertools.islice(it, stop))
    state = json.loads(json.dumps(it.state()))  # survives a JSON checkpoint
    resumed = D.PretrainingBatches.from_state(ds, state, batch_size)
    tail = list(itertools.islice(resumed, total - stop))
    assert _same(straight, head + tail)
    if which == "moby":
        assert it.state()["window"] > 0 and resumed.state()["epoch"] == 1


@needs_shared
def test_finite_epochs_and_state_checks(moby_sharded, sotu_corpus, tok):
    ds = moby_sharded
    n_pairs = sum(len(ds.window_pairs(0, w)[1]) for w in range(len(ds.windows(0))))
    batches = list(ds.batches(100, epochs=1))
    assert sum(len(b.input_ids) for b in batches) == n_pairs
    assert len(list(ds.batches(100, epochs=1, drop_last=True))) == n_pairs // 100
    state = ds.batches(8).state()
    other = D.PretrainingDataset(ds.corpus, tok, seed=8, max_seq_length=64,
                                 shuffle_buffer_tokens=50_000)
    with pytest.raises(ValueError, match="seed differs: the saved data stream used 7, this one 8"):
        other.batches(8, state=state)
    with pytest.raises(ValueError, match="not a data-iterator state"):
        ds.batches(8, state={"epoch": 1})
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        ds.batches(0)


@needs_shared
def test_eval_batches_are_fixed_and_independent_of_batch_size(sotu_file, tok, tmp_path):
    a = D.make_eval_batches(sotu_file, tokenizer=tok, batch_size=8, max_batches=5,
                            cache_dir=tmp_path)
    b = D.make_eval_batches(sotu_file, tokenizer=tok, batch_size=8, max_batches=5,
                            cache_dir=tmp_path)
    assert len(a) == 5 and _same(a, b)
    c = D.make_eval_batches(sotu_file, tokenizer=tok, batch_size=4, max_batches=10,
                            cache_dir=tmp_path)
    for i in range(8):  # example i, unpadded, is the same whatever the batch size
        x, y = a[i // 8], c[i // 4]
        n = int(x.attention_mask[i % 8].sum())
        assert n == int(y.attention_mask[i % 4].sum())
        np.testing.assert_array_equal(x.input_ids[i % 8, :n], y.input_ids[i % 4, :n])
        np.testing.assert_array_equal(x.masked_lm_positions[i % 8], y.masked_lm_positions[i % 4])


# ----- reading text: errors that come from the dataset -----

@needs_shared
@pytest.mark.parametrize("text, found", [("Just one line.\n", "1 document"),
                                         ("One document.\nWith two lines.\n", "1 document"),
                                         ("\u200b\n\n[SEP]\n", "1 document")])
def test_corpus_too_small_for_a_pair(text, found, tok, tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=f"too small.*{found}"):
        D.make_pretraining_batches(path, tokenizer=tok, cache_dir=tmp_path)


@needs_shared
def test_two_tiny_documents_make_pairs_and_special_text_becomes_unk(tok, tmp_path):
    path = tmp_path / "two.txt"
    path.write_text("Hello there [SEP] friend.\n\nBye.\n", encoding="utf-8")
    batch = next(D.make_pretraining_batches(path, tokenizer=tok, cache_dir=tmp_path,
                                            batch_size=4))
    orig = _originals(batch)
    assert ((orig == SEP).sum(1) == 2).all()
    assert (orig == tok.unk_token_id).any()
    assert set(batch.next_sentence_labels.tolist()) <= {1}  # one-line documents: always random


def test_dataset_option_validation(tmp_path):
    corpus = type("C", (), {"num_documents": 5})()
    with pytest.raises(ValueError, match="max_seq_length must be an int >= 5"):
        D.PretrainingDataset(corpus, None, max_seq_length=4)
    with pytest.raises(ValueError, match="masked_lm_prob must be in"):
        D.PretrainingDataset(corpus, None, masked_lm_prob=1.5)


