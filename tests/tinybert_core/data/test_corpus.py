"""Tests for corpora (tinybert_core/data/corpus.py): reading documents, the token shard cache
(reuse, invalidation, corrupt shards) and the errors a bad corpus gives.
"""
from __future__ import annotations

import numpy as np
import pytest
from paths import BERT_VOCAB, MOBY_DICK, SHARED_DATA, SOTU_TRAIN

from tinybert_core.data import corpus as C
from tinybert_core.data import pretraining as D
from tinybert_core.text.tokenization import BertTokenizer

VOCAB, SOTU, MOBY = BERT_VOCAB, SOTU_TRAIN, MOBY_DICK
needs_shared = pytest.mark.skipif(not (VOCAB.is_file() and SOTU.is_file() and MOBY.is_file()),
                                  reason=f"shared data not found under {SHARED_DATA}")


def _same(xs, ys) -> bool:
    return len(xs) == len(ys) and all(
        all(np.array_equal(f, g) for f, g in zip(x, y)) for x, y in zip(xs, ys))


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
    first = C.tokenize_corpus(moby_head, tok, cache_dir=tmp_path)
    assert not first.from_cache and tok.calls == first.num_documents == 40
    assert first.build_seconds > 0
    tok.calls = 0
    again = C.tokenize_corpus(moby_head, tok, cache_dir=tmp_path)
    assert again.from_cache and tok.calls == 0 and again.build_seconds == 0
    assert again.directory == first.directory
    assert not list(first.directory.glob("*.tmp"))  # atomic writes leave no temp files
    assert _same([_arrays(first)], [_arrays(again)])
    cased = CountingTokenizer(VOCAB, do_lower_case=False)
    assert C.tokenize_corpus(moby_head, cased, cache_dir=tmp_path).directory != first.directory


@needs_shared
def test_changed_file_is_retokenized(tok, tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("one line here.\nand another.\n\nsecond document.\n", encoding="utf-8")
    first = C.tokenize_corpus(path, tok, cache_dir=tmp_path)
    path.write_text("one line here.\nand another.\n\nsecond document, longer.\n",
                    encoding="utf-8")
    second = C.tokenize_corpus(path, tok, cache_dir=tmp_path)
    assert not second.from_cache and second.directory != first.directory
    assert second.num_tokens == first.num_tokens + 2  # "," and "longer"


@needs_shared
@pytest.mark.parametrize("damage", ["garbage", "truncate", "delete"])
def test_corrupt_shard_is_rebuilt_with_a_warning(damage, moby_head, tok, tmp_path):
    first = C.tokenize_corpus(moby_head, tok, cache_dir=tmp_path, shard_tokens=20_000)
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
        again = C.tokenize_corpus(moby_head, tok, cache_dir=tmp_path, shard_tokens=20_000)
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
    assert list(C.iter_documents([a, b])) == [
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
        C.tokenize_corpus(path, tok, cache_dir=tmp_path)


