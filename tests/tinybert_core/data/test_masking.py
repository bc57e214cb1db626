"""Unit tests of BERT's pair truncation and masked-LM selection (tinybert_core/data/masking.py);
the statistics on real text are in test_pretraining_data.py."""
from __future__ import annotations

import itertools

import numpy as np

from tinybert_core.data.masking import mask_tokens, truncate_lengths

CLS, SEP, PAD, MASK = 101, 102, 0, 103  # bert-base-uncased's ids


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


