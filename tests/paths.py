"""Where the tests find things, in one place, so that moving a test file changes no path.

`SHARED_DATA` is the read-only shelf next to the repository (`../shared/data`); tests that need
it skip when it is absent, as it is for users.
"""
from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
FIXTURES = TESTS / "fixtures"
MODEL_FIXTURES = FIXTURES / "models"
SHARED_DATA = ROOT.parent / "shared" / "data"
BERT_VOCAB = SHARED_DATA / "vocab" / "bert-base-uncased-vocab.txt"
SOTU_TRAIN = SHARED_DATA / "corpus" / "sotu-train.txt"
MOBY_DICK = SHARED_DATA / "corpus" / "moby-dick.txt"
