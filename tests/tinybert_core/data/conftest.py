"""Fixtures of the data tests: the real bert-base-uncased tokenizer and the heads of two
public-domain corpora from ../shared/data (skipped when it is absent)."""
from __future__ import annotations

from pathlib import Path

import pytest
from paths import BERT_VOCAB, MOBY_DICK, SOTU_TRAIN

from tinybert_core.text.tokenization import BertTokenizer


@pytest.fixture(scope="module")
def tok() -> BertTokenizer:
    if not BERT_VOCAB.is_file():
        pytest.skip(f"vocabulary not found: {BERT_VOCAB}")
    return BertTokenizer(BERT_VOCAB)


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
    if not SOTU_TRAIN.is_file():
        pytest.skip(f"corpus not found: {SOTU_TRAIN}")
    return _head(SOTU_TRAIN, tmp_path_factory.mktemp("sotu") / "sotu-head.txt")


@pytest.fixture(scope="module")
def moby_head(tmp_path_factory) -> Path:
    """The first 40 sections of moby-dick.txt, for the cache tests."""
    if not MOBY_DICK.is_file():
        pytest.skip(f"corpus not found: {MOBY_DICK}")
    return _head(MOBY_DICK, tmp_path_factory.mktemp("moby") / "moby-head.txt")
