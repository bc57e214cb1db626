"""Tests for the pre-training data pipeline (tinybert_core.data, tinybert_core.masking) and the
embedded default corpus (tinybert_core.default_corpus).

Statistics are measured on real text: the first State of the Union addresses of
shared/data/corpus/sotu-train.txt and Moby-Dick, with the real bert-base-uncased vocabulary.
Tests that need shared/ skip when it is absent.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from tinybert_core import data as D
from tinybert_core.default_corpus import (
    build_default_corpus,
    default_vocab_path,
    iter_default_documents,
)
from tinybert_core.masking import mask_tokens, truncate_lengths
from tinybert_core.tokenization import BertTokenizer

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
VOCAB = SHARED / "vocab" / "bert-base-uncased-vocab.txt"
SOTU = SHARED / "corpus" / "sotu-train.txt"
MOBY = SHARED / "corpus" / "moby-dick.txt"
CLS, SEP, PAD, MASK = 101, 102, 0, 103

needs_shared = pytest.mark.skipif(not (VOCAB.is_file() and SOTU.is_file() and MOBY.is_file()),
                                  reason=f"shared data not found under {SHARED}")


# ----- fixtures -----

@pytest.fixture(scope="module")
def tok() -> BertTokenizer:
    if not VOCAB.is_file():
        pytest.skip(f"vocabulary not found: {VOCAB}")
    return BertTokenizer(VOCAB)


def _head(source: Path, out: Path, documents: int = 40) -> Path:
    """The first `documents` blank-line-separated documents of `source`, copied line by line."""
    with open(source, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        docs = 0
        for line in src:
            dst.write(line)
            docs += not line.strip()
            if docs == documents:
                break
    return out


@pytest.fixture(scope="module")
def sotu_file(tmp_path_factory) -> Path:
    """The first 40 speeches of sotu-train.txt (about 0.5 MB), copied line by line."""
    if not SOTU.is_file():
        pytest.skip(f"corpus not found: {SOTU}")
    return _head(SOTU, tmp_path_factory.mktemp("sotu") / "sotu-head.txt")


@pytest.fixture(scope="module")
def moby_head(tmp_path_factory) -> Path:
    """The first 40 sections of moby-dick.txt, for the cache tests."""
    if not MOBY.is_file():
        pytest.skip(f"corpus not found: {MOBY}")
    return _head(MOBY, tmp_path_factory.mktemp("moby") / "moby-head.txt")


@pytest.fixture(scope="module")
def sotu_corpus(sotu_file, tok, tmp_path_factory) -> D.TokenizedCorpus:
    return D.tokenize_corpus(sotu_file, tok, cache_dir=tmp_path_factory.mktemp("cache"))


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
        assert batch.mlm_labels.shape == (B, T)
        for b in range(B):
            k = int(batch.masked_lm_weights[b].sum())
            pos, ids = batch.masked_lm_positions[b], batch.masked_lm_ids[b]
            assert np.all(np.diff(pos[:k]) > 0)
            assert not np.isin(ids[:k], [CLS, SEP, PAD, MASK]).any()
            assert np.all(batch.attention_mask[b, pos[:k]] == 1)
            assert np.all(pos[k:] == 0) and np.all(ids[k:] == 0)
            assert np.all(batch.masked_lm_weights[b, k:] == 0)
            labels = np.full(T, -100)
            labels[pos[:k]] = ids[:k]
            np.testing.assert_array_equal(batch.mlm_labels[b], labels)
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
    with pytest.raises(ValueError, match="another corpus or data options"):
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


# ----- the shard cache -----

class CountingTokenizer(BertTokenizer):
    calls = 0

    def __call__(self, *args, **kwargs):
        type(self).calls += 1
        return super().__call__(*args, **kwargs)


def _arrays(corpus):
    return [np.concatenate(d) for d in corpus.documents()]


@needs_shared
def test_cache_is_reused_without_tokenizing(moby_head, tmp_path):
    tok = CountingTokenizer(VOCAB)
    first = D.tokenize_corpus(moby_head, tok, cache_dir=tmp_path)
    assert not first.from_cache and tok.calls == first.num_documents == 40
    assert first.build_seconds > 0
    tok.calls = 0
    again = D.tokenize_corpus(moby_head, tok, cache_dir=tmp_path)
    assert again.from_cache and tok.calls == 0 and again.build_seconds == 0
    assert again.directory == first.directory
    assert not list(first.directory.glob("*.tmp"))  # atomic writes leave no temp files
    assert _same([_arrays(first)], [_arrays(again)])
    cased = CountingTokenizer(VOCAB, do_lower_case=False)
    assert D.tokenize_corpus(moby_head, cased, cache_dir=tmp_path).directory != first.directory


@needs_shared
def test_changed_file_is_retokenized(tok, tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("one line here.\nand another.\n\nsecond document.\n", encoding="utf-8")
    first = D.tokenize_corpus(path, tok, cache_dir=tmp_path)
    path.write_text("one line here.\nand another.\n\nsecond document, longer.\n",
                    encoding="utf-8")
    second = D.tokenize_corpus(path, tok, cache_dir=tmp_path)
    assert not second.from_cache and second.directory != first.directory
    assert second.num_tokens == first.num_tokens + 2  # "," and "longer"


@needs_shared
@pytest.mark.parametrize("damage", ["garbage", "truncate", "delete"])
def test_corrupt_shard_is_rebuilt_with_a_warning(damage, moby_head, tok, tmp_path):
    first = D.tokenize_corpus(moby_head, tok, cache_dir=tmp_path, shard_tokens=20_000)
    assert first.num_shards > 2
    want = _arrays(first)
    shard = first.directory / "shard-00001.npz"
    if damage == "garbage":
        shard.write_bytes(b"not a zip file at all")
    elif damage == "truncate":
        shard.write_bytes(shard.read_bytes()[:5000])
    else:
        shard.unlink()
    with pytest.warns(UserWarning, match="corrupt token cache"):
        again = D.tokenize_corpus(moby_head, tok, cache_dir=tmp_path, shard_tokens=20_000)
    assert not again.from_cache
    assert _same([want], [_arrays(again)])
    # Damage found later, while reading, is repaired the same way.
    shard.write_bytes(b"junk")
    with pytest.warns(UserWarning, match="re-tokenizing"):
        tokens = again.shard(1).tokens
    assert len(tokens) == again.shard_sizes()[1]


# ----- reading text and errors -----

def test_iter_documents_splits_on_blank_lines_and_files(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes("\ufeffFirst line.\r\n  second line.  \n \n\n\nDoc two.\n".encode())
    b.write_text("Doc three.\n\n", encoding="utf-8")
    assert list(D.iter_documents([a, b])) == [
        ["First line.", "second line."], ["Doc two."], ["Doc three."]]


def test_empty_corpus_fails_before_anything_else(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("\n  \n\n", encoding="utf-8")
    b.write_text("", encoding="utf-8")
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=r"empty corpus: .*a\.txt, .*b\.txt"):
        D.make_pretraining_batches([a, b], cache_dir=cache)  # no vocab given: none is trained
    assert not cache.exists()


def test_missing_file_is_named(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("text\n", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        D.make_pretraining_batches([good, tmp_path / "nope.txt"], cache_dir=tmp_path)


@needs_shared
def test_bad_utf8_names_file_and_line(tok, tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine line\n\nalso fine\nbroken \xff\xfe here\n")
    with pytest.raises(ValueError, match=r"bad\.txt' line 4 is not valid UTF-8"):
        D.tokenize_corpus(path, tok, cache_dir=tmp_path)


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


# ----- masking.py units -----

def _truncate_reference(la: int, lb: int, m: int) -> tuple[int, int]:
    ca = cb = 0
    while la + lb > m:  # BERT's loop: trim the longer one (A on a tie)
        if la >= lb:
            la, ca = la - 1, ca + 1
        else:
            lb, cb = lb - 1, cb + 1
    return ca, cb


def test_truncate_lengths_matches_berts_loop():
    for la, lb, m in itertools.product(range(1, 14), range(1, 14), range(2, 20)):
        assert truncate_lengths(la, lb, m) == _truncate_reference(la, lb, m), (la, lb, m)


def test_mask_tokens_edge_cases():
    rng = np.random.default_rng(0)
    kw = {"special_ids": np.array([CLS, SEP, PAD, MASK]), "mask_id": MASK,
          "replacement_ids": np.array([5, 6, 7])}
    out = mask_tokens(np.array([CLS, SEP, SEP]), rng, **kw)
    assert len(out.positions) == 0
    out = mask_tokens(np.array([CLS, 9, SEP, 9, SEP]), rng, **kw)
    assert len(out.positions) == 1  # at least one prediction
    ids = np.array([CLS] + [9] * 300 + [SEP, 10, SEP])
    out = mask_tokens(ids, rng, max_predictions=20, **kw)
    assert len(out.positions) == 20 and np.all(out.labels == 9)


# ----- the default corpus -----

def test_default_corpus_subset_is_deterministic(tmp_path):
    mods = ("heapq", "json", "textwrap")
    a = build_default_corpus(tmp_path / "a", modules=mods, valid_every=2)
    b = build_default_corpus(tmp_path / "b", modules=mods, valid_every=2)
    assert a.train.read_bytes() == b.train.read_bytes()
    assert a.valid.read_bytes() == b.valid.read_bytes()
    assert a.documents == 4 and a.modules == mods
    text = a.train.read_text(encoding="utf-8")
    assert ">>>" not in text and "\n\n" in text and "``" not in text
    docs = list(D.iter_documents([a.train, a.valid]))
    assert len(docs) == 4 and sum(map(len, docs)) == a.lines
    again = build_default_corpus(tmp_path / "a", modules=mods, valid_every=2)
    assert again == a  # read back from the manifest


def test_default_corpus_full_build_matches_a_fresh_interpreter(tmp_path):
    corpus = build_default_corpus(tmp_path / "here")
    assert corpus.documents > 500 and corpus.bytes > 300_000
    assert corpus.valid.stat().st_size > 0.02 * corpus.bytes
    code = ("import sys; from tinybert_core.default_corpus import build_default_corpus; "
            "print(build_default_corpus(sys.argv[1]).train)")
    root = Path(D.__file__).resolve().parents[1]  # the checkout holding tinybert_core
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "there")], cwd=root,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert Path(out).read_bytes() == corpus.train.read_bytes()
    for _, _, lines in itertools.islice(iter_default_documents(), 50):
        assert all(line == " ".join(line.split()) and not line.startswith(">>>")
                   for line in lines)


def test_default_vocab_is_trained_once_and_feeds_batches(tmp_path):
    vocab = default_vocab_path(tmp_path, vocab_size=1000)
    assert len(vocab.read_text(encoding="utf-8").splitlines()) == 1000
    mtime = vocab.stat().st_mtime_ns
    assert default_vocab_path(tmp_path, vocab_size=1000).stat().st_mtime_ns == mtime  # cached
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no cache warnings on a clean run
        batch = next(D.make_pretraining_batches(vocab_file=vocab, cache_dir=tmp_path,
                                                batch_size=4, max_seq_length=64))
    assert batch.input_ids.shape[0] == 4 and batch.input_ids.max() < 1000
    evals = D.make_eval_batches(vocab_file=vocab, cache_dir=tmp_path, batch_size=4,
                                max_seq_length=64, max_batches=2)
    assert len(evals) == 2


@pytest.mark.slow
def test_zero_argument_pipeline_trains_the_8000_token_vocab(tmp_path):
    """Nothing given: default corpus, default vocabulary of up to 8000 tokens (trained: seconds;
    the small corpus runs out of pairs seen twice at about 6,000)."""
    batch = next(D.make_pretraining_batches(cache_dir=tmp_path, batch_size=4))
    tokens = default_vocab_path(tmp_path).read_text(encoding="utf-8").splitlines()
    assert 5000 < len(tokens) <= 8000 and {"the", "return", "object"} <= set(tokens)
    assert batch.input_ids.max() < len(tokens)
