"""Train a WordPiece vocabulary from raw text, for ``BertTokenizer``.

The default procedure is the one ``tokenizers``' ``WordPieceTrainer`` (and so
``BertWordPieceTokenizer.train``) uses: byte-pair encoding with a ``##`` continuation prefix.

1. Pre-tokenize with our ``BasicTokenizer`` (cleaning, CJK splitting, lower-casing, accent
   stripping, punctuation splitting), so the vocabulary is learned on exactly the words that
   ``BertTokenizer`` will hand to WordPiece, and count the words.
2. The alphabet: every character, weighted by the counts of the words it occurs in, plus the
   ``initial_alphabet``; if there are more than ``limit_alphabet`` characters, the rarest go
   (ties: the higher code point goes first; forced characters stay). The vocabulary starts with
   the special tokens, the characters in code-point order, then ``##c`` for each character seen
   inside a word (and each forced one), in code-point order.
3. Every word becomes its characters: ``c0 ##c1 ##c2 ...``. Words with a character outside the
   alphabet, or longer than the tokenizer's 100-character limit, are left out: the tokenizer
   turns them into one [UNK] whatever the vocabulary holds. (``tokenizers`` drops the unknown
   characters and keeps the rest of the word instead.)
4. Repeatedly merge the adjacent pair (a, b) that occurs most often in the corpus into the new
   token ``a + b`` (with ``b``'s ``##`` dropped), until the vocabulary holds ``vocab_size``
   tokens or no pair occurs ``min_frequency`` times. Ties go to the pair whose left token has
   the smaller id, then the right one (the rule of ``tokenizers``' BPE trainer), so the output
   is a function of the corpus alone: the order of lines and files does not matter.

Frequent whole words become single tokens this way, because every merge is the one that
shortens the corpus the most. The likelihood score of the original WordPiece (Schuster &
Nakajima, 2012), count(ab) / (count(a) count(b)), which this trainer used before, prefers pairs
of rare symbols: on sotu-train.txt at 8,000 tokens it gave 3.38 tokens per word of held-out
text (frequency: 1.22), and even with a floor of 60 on the pair count 1.52; a floor of 100
reached 1.33 but ran out of pairs at 7,145 tokens. It is not offered.

Speed: the classic BPE trainer's bookkeeping (as in ``tokenizers``). Pair counts are kept for
the whole corpus with an index from each pair to the words that contain it; a merge rewrites
only those words and updates only the counts of the pairs it touched. The best pair comes
from a heap with lazy invalidation: an entry whose count went down is pushed back with its
current count when it reaches the top, and a count that goes up pushes a fresh entry.
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from autograd.serialization import atomic_write_text
from tinybert_core.text.basic_tokenizer import BasicTokenizer

DEFAULT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Bumped whenever the same corpus and options give a different vocabulary, so that cached
# vocabularies (default_corpus.py) are retrained. 2: merges by pair frequency, not likelihood.
TRAINER_VERSION = 2
CONTINUATION = "##"
MAX_INPUT_CHARS_PER_WORD = 100  # WordpieceTokenizer's default: longer words become [UNK]
_CHUNK_CHARS = 1 << 20  # pre-tokenize about 1 MB of text per call

Pair = tuple[int, int]


def _iter_lines(lines_or_files: str | os.PathLike | Iterable[str | os.PathLike],
                on_bytes: Callable[[int], None] | None = None) -> Iterator[str]:
    """Lines of text: a path is a file to read; a str inside an iterable is one line of text.
    `on_bytes(n)` is told how many bytes of files were read so far, every 4096 lines."""
    read_before = 0
    if isinstance(lines_or_files, (str, os.PathLike)):
        lines_or_files = [Path(lines_or_files)]  # a lone string is a path, not a 1-line corpus
    for item in lines_or_files:
        if isinstance(item, os.PathLike):
            path = Path(item)
            if not path.is_file():
                raise FileNotFoundError(f"train_wordpiece_vocab: corpus file not found: "
                                        f"{str(path)!r}")
            with open(path, "rb") as f:
                for lineno, raw in enumerate(f, start=1):
                    try:
                        yield raw.decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise ValueError(f"train_wordpiece_vocab: {str(path)!r} line {lineno} "
                                         f"is not UTF-8 text ({e.reason} at byte {e.start} of "
                                         f"the line); is it a binary file?") from None
                    if on_bytes is not None and lineno % 4096 == 0:
                        on_bytes(read_before + f.tell())
                read_before += f.tell()
            if on_bytes is not None:
                on_bytes(read_before)
        elif isinstance(item, str):
            yield item
        else:
            raise TypeError(f"train_wordpiece_vocab: expected lines (str) or paths, "
                            f"got {type(item).__name__}")


def count_words(lines_or_files: str | os.PathLike | Iterable[str | os.PathLike],
                lowercase: bool = True, on_bytes: Callable[[int], None] | None = None) -> Counter:
    """How often each basic token (word or punctuation character) occurs, as ``BertTokenizer``
    with ``do_lower_case=lowercase`` splits the text before WordPiece.

    Lines are joined into chunks of about 1 MB, one ``BasicTokenizer.tokenize`` call each: every
    step of the basic tokenizer is per character or per whitespace-separated run, so a newline
    between lines splits exactly as the end of a line does.
    """
    basic = BasicTokenizer(do_lower_case=lowercase)
    counts: Counter = Counter()
    chunk: list[str] = []
    size = 0
    for line in _iter_lines(lines_or_files, on_bytes):
        chunk.append(line)
        size += len(line)
        if size >= _CHUNK_CHARS:
            counts.update(basic.tokenize("\n".join(chunk)))
            chunk, size = [], 0
    if chunk:
        counts.update(basic.tokenize("\n".join(chunk)))
    return counts


def _alphabet(word_counts: Counter, limit: int | None, forced: set[str]) -> list[str]:
    """The characters to keep, in code-point order: the ``limit`` most frequent (weighted by
    word counts; a tie keeps the lower code point), the ``forced`` ones first."""
    chars: Counter = Counter()
    for word, n in word_counts.items():
        for c in word:
            chars[c] += n
    ranked = sorted(set(chars) | forced, key=lambda c: (c not in forced, -chars[c], c))
    return sorted(ranked if limit is None else ranked[:limit])


def _check_int(name: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"train_wordpiece_vocab: {name} must be an int >= {least}, "
                         f"got {value!r}")


def train_wordpiece_vocab(lines_or_files: str | os.PathLike | Iterable[str | os.PathLike],
                          vocab_size: int, min_frequency: int = 2,
                          special_tokens: Iterable[str] = DEFAULT_SPECIAL_TOKENS,
                          lowercase: bool = True, limit_alphabet: int | None = 1000,
                          initial_alphabet: Iterable[str] = (),
                          on_bytes: Callable[[int], None] | None = None) -> list[str]:
    """Learn a WordPiece vocabulary of at most ``vocab_size`` tokens (special tokens included).

    Args:
        lines_or_files: a path (str or ``Path``) to a UTF-8 text file, or an iterable whose items
            are ``Path`` objects (files) or str (lines of text).
        vocab_size: the size to reach; fewer tokens come back if no pair occurs
            ``min_frequency`` times any more.
        min_frequency: the least number of times a pair must occur in the corpus to be merged.
        special_tokens: placed first, in this order ([PAD] = 0 as BERT expects).
        lowercase: lower-case and strip accents while pre-tokenizing (an uncased vocabulary).
        limit_alphabet: keep at most this many distinct characters (the most frequent), None for
            all; words with other characters are left out, as the tokenizer maps them to [UNK].
        initial_alphabet: characters to include whatever their count (normalized as the text
            is), each with its ``##`` form, e.g. to cover text not in the training corpus.
        on_bytes: called with the number of bytes of corpus files read so far (progress).

    Returns:
        The tokens in id order: specials, characters, ``##``-characters, then merges in the
        order they were learned. Save with ``save_vocab`` and load with ``BertTokenizer``.
    """
    specials = list(special_tokens)
    if len(set(specials)) != len(specials) or not all(isinstance(t, str) and t for t in specials):
        raise ValueError(f"train_wordpiece_vocab: special_tokens must be distinct non-empty "
                         f"strings, got {specials!r}")
    _check_int("vocab_size", vocab_size, 1)
    _check_int("min_frequency", min_frequency, 1)
    if limit_alphabet is not None:
        _check_int("limit_alphabet", limit_alphabet, 1)
    initial = list(initial_alphabet)
    if not all(isinstance(c, str) and len(c) == 1 for c in initial):
        raise ValueError(f"train_wordpiece_vocab: initial_alphabet must hold single "
                         f"characters, got {initial!r}")
    basic = BasicTokenizer(do_lower_case=lowercase)
    forced = {n for c in initial for w in basic.tokenize(c) for n in w}

    word_counts = count_words(lines_or_files, lowercase, on_bytes)
    if not word_counts:
        raise ValueError("train_wordpiece_vocab: the corpus is empty (no words after "
                         "pre-tokenization)")
    for w in [w for w in word_counts if len(w) > MAX_INPUT_CHARS_PER_WORD]:
        del word_counts[w]
    alphabet = _alphabet(word_counts, limit_alphabet, forced)
    known = set(alphabet)
    # Sorted, so that ids and ties do not depend on the order of the input.
    words = sorted(w for w in word_counts if all(c in known for c in w))
    inside = {c for w in words for c in w[1:]} | forced

    tokens = list(specials)
    for tok in alphabet + [CONTINUATION + c for c in alphabet if c in inside]:
        if tok not in tokens:
            tokens.append(tok)
    if vocab_size < len(tokens):
        raise ValueError(f"train_wordpiece_vocab: vocab_size={vocab_size} is smaller than the "
                         f"{len(specials)} special tokens plus the {len(alphabet)} characters "
                         f"and their ## forms ({len(tokens)}); raise vocab_size or lower "
                         f"limit_alphabet")
    index = {t: i for i, t in enumerate(tokens)}
    corpus = _Corpus([[index[w[0]]] + [index[CONTINUATION + c] for c in w[1:]] for w in words],
                     [word_counts[w] for w in words])
    _learn_merges(corpus, tokens, index, vocab_size, min_frequency)
    return tokens


class _Corpus:
    """The distinct words as lists of token ids, with the count of every adjacent pair and,
    for each pair, the words that contain it (a superset: entries go stale)."""

    def __init__(self, words: list[list[int]], freqs: list[int]) -> None:
        self.words, self.freqs = words, freqs
        self.pair_count: dict[Pair, int] = {}
        self.where: defaultdict[Pair, set[int]] = defaultdict(set)
        for i, (w, n) in enumerate(zip(words, freqs)):
            for p in itertools.pairwise(w):
                self.pair_count[p] = self.pair_count.get(p, 0) + n
                self.where[p].add(i)

    def merge(self, a: int, b: int, c: int) -> dict[Pair, int]:
        """Replace every (a, b) by c, left to right, and return how each pair count changed."""
        delta: dict[Pair, int] = {}
        words, where = self.words, self.where
        for i in where.pop((a, b), ()):
            w = words[i]
            new, j, k, last = [], 0, 0, len(w) - 1
            while j <= last:
                if j < last and w[j] == a and w[j + 1] == b:
                    new.append(c)
                    j += 2
                    k += 1
                else:
                    new.append(w[j])
                    j += 1
            if not k:
                continue  # a stale entry: an earlier merge consumed this word's (a, b)
            n = self.freqs[i]
            for q in itertools.pairwise(w):
                delta[q] = delta.get(q, 0) - n
            for q in itertools.pairwise(new):
                delta[q] = delta.get(q, 0) + n
                if q[0] == c or q[1] == c:  # the other pairs were in w, so indexed already
                    where[q].add(i)
            words[i] = new
        counts = self.pair_count
        for q, d in delta.items():
            if d:
                total = counts.get(q, 0) + d
                if total:
                    counts[q] = total
                else:
                    del counts[q]
        return delta


def _new_token(tokens: list[str], index: dict[str, int], a: int, b: int) -> int:
    """The id of ``a + b`` (``b`` is always word-internal: its ``##`` goes), added if new."""
    merged = tokens[a] + tokens[b][len(CONTINUATION):]
    c = index.get(merged)
    if c is None:
        c = index[merged] = len(tokens)
        tokens.append(merged)
    return c


def _learn_merges(corpus: _Corpus, tokens: list[str], index: dict[str, int],
                        vocab_size: int, min_frequency: int) -> None:
    """Grow ``tokens`` (in place) by merging the most frequent pair until ``vocab_size``."""
    counts = corpus.pair_count
    # Max-heap on count, then the smallest (a, b); an entry's count is never below the pair's.
    heap = [(-n, a, b) for (a, b), n in counts.items() if n >= min_frequency]
    heapq.heapify(heap)
    while len(tokens) < vocab_size and heap:
        neg, a, b = heapq.heappop(heap)
        n = counts.get((a, b), 0)
        if n != -neg:
            if n < -neg and n >= min_frequency:
                heapq.heappush(heap, (-n, a, b))  # stale (the count fell): back in its place
            continue  # (n > -neg: a fresher entry with the higher count is in the heap)
        c = _new_token(tokens, index, a, b)
        for q, d in corpus.merge(a, b, c).items():
            if d > 0 and counts[q] >= min_frequency:
                heapq.heappush(heap, (-counts[q], *q))


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
