"""The embedded default corpus and its vocabulary (tinybert_core/data/default_corpus.py): a
deterministic build, the same in a fresh interpreter, and the zero-argument pipeline."""
from __future__ import annotations

import itertools
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from paths import ROOT

from tinybert_core.data import corpus as C
from tinybert_core.data import pretraining as D
from tinybert_core.data.default_corpus import (
    build_default_corpus,
    default_vocab_path,
    iter_default_documents,
)


def test_default_corpus_subset_is_deterministic(tmp_path):
    mods = ("heapq", "json", "textwrap")
    a = build_default_corpus(tmp_path / "a", modules=mods, valid_every=2)
    b = build_default_corpus(tmp_path / "b", modules=mods, valid_every=2)
    assert a.train.read_bytes() == b.train.read_bytes()
    assert a.valid.read_bytes() == b.valid.read_bytes()
    assert a.documents == 4 and a.modules == mods
    text = a.train.read_text(encoding="utf-8")
    assert ">>>" not in text and "\n\n" in text and "``" not in text
    docs = list(C.iter_documents([a.train, a.valid]))
    assert len(docs) == 4 and sum(map(len, docs)) == a.lines
    again = build_default_corpus(tmp_path / "a", modules=mods, valid_every=2)
    assert again == a  # read back from the manifest


def test_default_corpus_full_build_matches_a_fresh_interpreter(tmp_path):
    corpus = build_default_corpus(tmp_path / "here")
    assert corpus.documents > 500 and corpus.bytes > 300_000
    assert corpus.valid.stat().st_size > 0.02 * corpus.bytes
    code = ("import sys; from tinybert_core.data.default_corpus import build_default_corpus; "
            "print(build_default_corpus(sys.argv[1]).train)")
    root = ROOT  # the checkout holding tinybert_core
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
