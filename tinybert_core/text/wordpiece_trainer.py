"""Train a WordPiece vocabulary from raw text, for ``BertTokenizer``.

The procedure is the WordPiece training of Schuster & Nakajima (2012) in the form the Hugging Face
course and ``tokenizers``' ``WordPieceTrainer`` describe: pre-tokenize with BERT's
``BasicTokenizer``, split every word into characters (word-internal ones as ``##c``), then
repeatedly merge the adjacent pair (a, b) with the highest likelihood gain

    score(a, b) = count(ab) / (count(a) * count(b))

until the vocabulary is full. (``tokenizers``' trainer ranks pairs by raw count, i.e. BPE with a
``##`` prefix; the score above is the likelihood criterion of the original WordPiece.)

Pair and symbol counts are updated incrementally after each merge, only in the words that
contain the merged pair (as ``tokenizers``' BPE trainer does), and the best pair comes from a
heap with lazy invalidation, so a merge costs time proportional to what it changes, not to the
corpus. Ties are broken by the pair's strings, so the result is deterministic.
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from autograd.serialization import atomic_write_text
from tinybert_core.text.basic_tokenizer import BasicTokenizer

DEFAULT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

Pair = tuple[int, int]


def _iter_lines(lines_or_files: str | os.PathLike | Iterable[str | os.PathLike]) -> Iterator[str]:
    """Lines of text: a path is a file to read; a str inside an iterable is one line of text."""
    if isinstance(lines_or_files, (str, os.PathLike)):
        lines_or_files = [Path(lines_or_files)]  # a lone string is a path, not a 1-line corpus
    for item in lines_or_files:
        if isinstance(item, os.PathLike):
            path = Path(item)
            if not path.is_file():
                raise FileNotFoundError(f"train_wordpiece_vocab: corpus file not found: "
                                        f"{str(path)!r}")
            with open(path, encoding="utf-8") as f:
                yield from f
        elif isinstance(item, str):
            yield item
        else:
            raise TypeError(f"train_wordpiece_vocab: expected lines (str) or paths, "
                            f"got {type(item).__name__}")


def _alphabet(word_counts: Counter, limit: int) -> list[str]:
    """The ``limit`` most frequent characters (ties by code point), sorted by code point."""
    chars: Counter = Counter()
    for word, n in word_counts.items():
        for c in word:
            chars[c] += n
    ranked = sorted(chars.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return sorted(c for c, _ in ranked)


def train_wordpiece_vocab(lines_or_files: str | os.PathLike | Iterable[str | os.PathLike],
                          vocab_size: int, min_frequency: int = 2,
                          special_tokens: Iterable[str] = DEFAULT_SPECIAL_TOKENS,
                          lowercase: bool = True, limit_alphabet: int = 1000) -> list[str]:
    """Learn a WordPiece vocabulary of at most ``vocab_size`` tokens.

    Args:
        lines_or_files: a path (str or ``Path``) to a UTF-8 text file, or an iterable whose items
            are ``Path`` objects (files) or str (lines of text).
        vocab_size: the size to reach; fewer tokens come back if no pair occurs
            ``min_frequency`` times any more.
        min_frequency: the least count a pair needs to be merged.
        special_tokens: placed first, in this order ([PAD] = 0 as BERT expects).
        lowercase: lower-case and strip accents while pre-tokenizing (an uncased vocabulary).
        limit_alphabet: keep at most this many distinct characters (the most frequent); words
            with other characters are skipped, as the tokenizer maps them to [UNK].

    Returns:
        The tokens in id order: specials, characters, ``##``-characters, then merges in the
        order they were learned. Save with ``save_vocab`` and load with ``BertTokenizer``.
    """
    specials = list(special_tokens)
    if len(set(specials)) != len(specials) or not all(isinstance(t, str) and t for t in specials):
        raise ValueError(f"train_wordpiece_vocab: special_tokens must be distinct non-empty "
                         f"strings, got {specials!r}")
    for name, value, least in (("vocab_size", vocab_size, 1), ("min_frequency", min_frequency, 1),
                               ("limit_alphabet", limit_alphabet, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"train_wordpiece_vocab: {name} must be an int >= {least}, "
                             f"got {value!r}")

    basic = BasicTokenizer(do_lower_case=lowercase)
    word_counts: Counter = Counter()
    for line in _iter_lines(lines_or_files):
        word_counts.update(basic.tokenize(line))
    if not word_counts:
        raise ValueError("train_wordpiece_vocab: the corpus is empty (no words after "
                         "pre-tokenization)")

    alphabet = _alphabet(word_counts, limit_alphabet)
    tokens = list(specials)
    for tok in alphabet + ["##" + c for c in alphabet]:
        if tok not in tokens:
            tokens.append(tok)
    if vocab_size < len(tokens):
        raise ValueError(f"train_wordpiece_vocab: vocab_size={vocab_size} is smaller than the "
                         f"{len(specials)} special tokens plus the {len(alphabet)} characters "
                         f"and their ## forms ({len(tokens)}); raise vocab_size or lower "
                         f"limit_alphabet")
    index = {t: i for i, t in enumerate(tokens)}
    return _merge_until(word_counts, tokens, index, vocab_size, min_frequency)


def _merge_until(word_counts: Counter, tokens: list[str], index: dict[str, int],
                 vocab_size: int, min_frequency: int) -> list[str]:
    """The merge loop: grow ``tokens`` (in place) by best-scoring merges up to ``vocab_size``."""
    known = set(index)
    words: list[list[int]] = []
    freqs: list[int] = []
    # Sorted so that word indices, and so every later step, do not depend on input order.
    for word, n in sorted(word_counts.items()):
        if all(c in known for c in word):
            words.append([index[word[0]]] + [index["##" + c] for c in word[1:]])
            freqs.append(n)

    sym_count = [0] * len(tokens)
    pair_count: dict[Pair, int] = {}
    where: dict[Pair, set[int]] = {}  # words that contain the pair (may hold stale entries)
    pairs_of: dict[int, set[Pair]] = {}  # live pairs each symbol takes part in
    for i, (w, n) in enumerate(zip(words, freqs)):
        for s in w:
            sym_count[s] += n
        for p in itertools.pairwise(w):
            pair_count[p] = pair_count.get(p, 0) + n
            where.setdefault(p, set()).add(i)
            pairs_of.setdefault(p[0], set()).add(p)
            pairs_of.setdefault(p[1], set()).add(p)

    def entry(p: Pair) -> tuple[float, str, str, int, int]:
        # Max-heap by score, then the lexicographically smallest pair wins a tie.
        return (-pair_count[p] / (sym_count[p[0]] * sym_count[p[1]]), tokens[p[0]],
                tokens[p[1]], p[0], p[1])

    heap = [entry(p) for p, n in pair_count.items() if n >= min_frequency]
    heapq.heapify(heap)
    while len(tokens) < vocab_size and heap:
        neg_score, _, _, a, b = heapq.heappop(heap)
        p = (a, b)
        if pair_count.get(p, 0) < min_frequency or entry(p)[0] != neg_score:
            continue  # stale: the pair's counts changed and a fresher entry was pushed
        merged = tokens[a] + tokens[b][2:]  # b is always word-internal, so it starts with ##
        c = index.get(merged)
        if c is None:
            c = index[merged] = len(tokens)
            tokens.append(merged)
            sym_count.append(0)

        delta: dict[Pair, int] = {}
        for i in where.pop(p):
            w, n = words[i], freqs[i]
            new, j, k = [], 0, 0
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    new.append(c)
                    j, k = j + 2, k + 1
                else:
                    new.append(w[j])
                    j += 1
            if not k:
                continue  # a stale entry of ``where``: an earlier merge consumed the pair
            for q in itertools.pairwise(w):
                delta[q] = delta.get(q, 0) - n
            for q in itertools.pairwise(new):
                delta[q] = delta.get(q, 0) + n
                where.setdefault(q, set()).add(i)
            sym_count[a] -= n * k
            sym_count[b] -= n * k
            sym_count[c] += n * k
            words[i] = new

        changed = set()
        for q, d in delta.items():
            if not d:
                continue
            changed.add(q)
            total = pair_count.get(q, 0) + d
            if total:
                pair_count[q] = total
                pairs_of.setdefault(q[0], set()).add(q)
                pairs_of.setdefault(q[1], set()).add(q)
            else:
                pair_count.pop(q, None)
                pairs_of[q[0]].discard(q)
                pairs_of[q[1]].discard(q)
        # Every pair with a, b or c on either side has a new score: count(a), count(b) fell.
        for s in (a, b, c):
            changed |= pairs_of.get(s, set())
        for q in changed:
            if pair_count.get(q, 0) >= min_frequency:
                heapq.heappush(heap, entry(q))
    return tokens


def save_vocab(tokens: Iterable[str], path: str | os.PathLike) -> Path:
    """Write ``tokens`` one per line (the line number is the id), atomically."""
    tokens = list(tokens)
    seen: dict[str, int] = {}
    for i, t in enumerate(tokens):
        if not isinstance(t, str) or not t or "\n" in t or "\r" in t:
            raise ValueError(f"save_vocab: token {i} must be a non-empty single-line str, "
                             f"got {t!r}")
        if t in seen:
            raise ValueError(f"save_vocab: duplicate token {t!r} at positions {seen[t]} and {i}")
        seen[t] = i
    if not tokens:
        raise ValueError("save_vocab: no tokens to write")
    path = Path(path)
    atomic_write_text(path, "".join(t + "\n" for t in tokens))
    return path
