"""BERT's segment pairs, truncation and masked-LM selection, on NumPy id arrays.

The per-example steps of Google's ``create_pretraining_data.py`` (BERT, Devlin et al., 2019,
section 3.1 and appendix A.1; MobileBERT spec section 4.1), rewritten over int arrays:

- ``document_pairs`` is ``create_instances_from_document``: gather a document's lines into a
  chunk of about the target length, split it at a random line into segments A and B, and half
  the time (always for a one-line chunk) replace B by text from another document.
- ``truncate_lengths`` is ``truncate_seq_pair``: shorten the longer of the two segments one token
  at a time until the pair fits, dropping each token from the front or the back at random.
- ``mask_tokens`` is ``create_masked_lm_predictions``: pick ``masked_lm_prob`` of the
  non-special tokens (at least one, at most ``max_predictions``); of those, 80% become [MASK],
  10% a random token, 10% stay as they are. With ``whole_word`` a word's ``##`` pieces are
  chosen together, as in BERT's ``--do_whole_word_mask``.

Both take a ``numpy.random.Generator``; ``pretraining.py`` seeds one per window and per example,
so that every draw is reproducible from a position in the data stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

# Fractions of the selected positions: [MASK] below 0.8, unchanged below 0.9, else random.
MASK_FRACTION = 0.8
KEEP_FRACTION = 0.1


def truncate_lengths(len_a: int, len_b: int, max_num_tokens: int) -> tuple[int, int]:
    """How many tokens ``truncate_seq_pair`` removes from segment A and from segment B.

    BERT removes one token at a time from the longer segment (A on a tie) until
    ``len_a + len_b <= max_num_tokens``; the counts follow in closed form: first the longer one
    is cut down to the other's length, then the rest alternates, A taking the odd one.
    """
    excess = len_a + len_b - max_num_tokens
    if excess <= 0:
        return 0, 0
    gap = abs(len_a - len_b)
    if excess <= gap:
        return (excess, 0) if len_a >= len_b else (0, excess)
    rest = excess - gap
    cut_a, cut_b = (rest + 1) // 2, rest // 2
    return (cut_a + gap, cut_b) if len_a >= len_b else (cut_a, cut_b + gap)


def truncate_pair(a: tuple[int, int], b: tuple[int, int], max_num_tokens: int,
                  rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Shrink the half-open ranges ``a`` and ``b`` so that together they hold at most
    ``max_num_tokens`` tokens; each dropped token comes off the front or the back with
    probability 1/2 (a binomial split of the cut, the same distribution as BERT's coin per
    token). Returns ``(a_start, a_end, b_start, b_end)``."""
    (a0, a1), (b0, b1) = a, b
    cut_a, cut_b = truncate_lengths(a1 - a0, b1 - b0, max_num_tokens)
    if cut_a:
        front = int(rng.binomial(cut_a, 0.5))
        a0, a1 = a0 + front, a1 - (cut_a - front)
    if cut_b:
        front = int(rng.binomial(cut_b, 0.5))
        b0, b1 = b0 + front, b1 - (cut_b - front)
    return a0, a1, b0, b1


def document_pairs(d: int, seg: Sequence[int], doc: Sequence[int], rng: np.random.Generator,
                   out: list[tuple[int, int, int, int, int]], *, max_num_tokens: int,
                   short_seq_prob: float) -> None:
    """Append the pairs of document ``d`` to ``out`` as ``(a0, a1, b0, b1, label)``.

    ``seg`` holds line offsets into a token array (line s is ``tokens[seg[s]:seg[s + 1]]``)
    and ``doc`` document offsets into the lines; A and B are half-open token ranges; label 0
    means B follows A, 1 that B is random. ``max_num_tokens`` is ``max_seq_length - 3``. As in
    BERT, the document draws one target length (shorter with ``short_seq_prob``), and the lines
    left over when B is random go back to start the next chunk.
    """
    target = max_num_tokens
    if rng.random() < short_seq_prob:
        target = int(rng.integers(2, max_num_tokens + 1))
    first, last = doc[d], doc[d + 1]  # the document's lines
    n_docs = len(doc) - 1
    start, i, length = first, first, 0
    while i < last:
        length += seg[i + 1] - seg[i]
        if i == last - 1 or length >= target:
            n = i + 1 - start  # lines in the chunk
            a_end = start + (int(rng.integers(1, n)) if n >= 2 else 1)
            if n == 1 or rng.random() < 0.5:
                label, want = 1, target - (seg[a_end] - seg[start])
                for _ in range(10):  # another document, if the window holds one
                    r = int(rng.integers(0, n_docs))
                    if r != d:
                        break
                j = b_start = int(rng.integers(doc[r], doc[r + 1]))
                while True:  # whole lines from a random one until B reaches its share
                    j += 1
                    if j == doc[r + 1] or seg[j] - seg[b_start] >= want:
                        break
                b = (seg[b_start], seg[j])
                i = a_end - 1  # lines after A were not used: the next chunk starts there
            else:
                label, b = 0, (seg[a_end], seg[i + 1])
            out.append((*truncate_pair((seg[start], seg[a_end]), b, max_num_tokens, rng), label))
            start, length = i + 1, 0
        i += 1


class MaskedExample(NamedTuple):
    input_ids: np.ndarray  # (T,) int64, with the replacements made
    positions: np.ndarray  # (k,) int64, increasing
    labels: np.ndarray  # (k,) int64, the original ids at ``positions``


def _word_ids(candidates: np.ndarray, continuation: np.ndarray) -> np.ndarray:
    """The word each candidate position belongs to (0, 1, ...): a ``##`` piece joins the piece
    before it, unless that one is not a candidate (a word never spans [SEP])."""
    starts = np.ones(len(candidates), dtype=bool)
    if len(candidates) > 1:
        follows = candidates[1:] == candidates[:-1] + 1
        starts[1:] = ~(follows & continuation[1:])
    return np.cumsum(starts) - 1


def mask_tokens(input_ids: np.ndarray, rng: np.random.Generator, *, special_ids: np.ndarray,
                mask_id: int, replacement_ids: np.ndarray, masked_lm_prob: float = 0.15,
                max_predictions: int = 20, continuation: np.ndarray | None = None
                ) -> MaskedExample:
    """BERT's masked-LM corruption of one sequence.

    Args:
        input_ids: (T,) ids of ``[CLS] A [SEP] B [SEP]``.
        rng: the generator for this sequence.
        special_ids: ids never selected ([CLS], [SEP], [PAD], [MASK]).
        mask_id: the [MASK] id.
        replacement_ids: the ids a "random token" is drawn from, uniformly.
        masked_lm_prob: fraction of the candidates to predict; the count is
            ``min(max_predictions, max(1, round(n_candidates * masked_lm_prob)))``.
        max_predictions: ``max_predictions_per_seq``.
        continuation: for whole-word masking, a bool table over the vocabulary, True for
            ``##`` pieces; None masks pieces independently.
    """
    ids = np.asarray(input_ids, dtype=np.int64)
    candidates = np.flatnonzero(~(ids[:, None] == special_ids).any(axis=1))  # (T, n) beats isin
    empty = np.zeros(0, dtype=np.int64)
    if len(candidates) == 0:
        return MaskedExample(ids.copy(), empty, empty)
    k = min(max_predictions, max(1, round(len(candidates) * masked_lm_prob)))
    if continuation is None:
        chosen = rng.permutation(candidates)[:k]
    else:
        word = _word_ids(candidates, continuation[ids[candidates]])
        sizes = np.bincount(word).tolist()
        picked = np.zeros(len(sizes), dtype=bool)
        total = 0
        for g in rng.permutation(len(sizes)).tolist():
            if total >= k:
                break
            if total + sizes[g] > k:
                continue  # a word that does not fit is skipped; a shorter one may still fit
            picked[g] = True
            total += sizes[g]
        chosen = candidates[picked[word]]
    positions = np.sort(chosen)
    labels = ids[positions]
    u = rng.random(len(positions))
    random_ids = replacement_ids[rng.integers(0, len(replacement_ids), size=len(positions))]
    out = ids.copy()
    out[positions] = np.where(u < MASK_FRACTION, mask_id,
                              np.where(u < MASK_FRACTION + KEEP_FRACTION, labels, random_ids))
    return MaskedExample(out, positions, labels)
