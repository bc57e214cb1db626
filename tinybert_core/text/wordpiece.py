"""WordPiece: greedy longest-match-first splitting of a basic token into vocabulary pieces.

Hugging Face's ``WordpieceTokenizer`` (Google's BERT ``tokenization.py``): the longest prefix
of the word that is in the vocabulary, then the longest ``##`` continuation, and so on; a word
with a part that matches nothing is one [UNK].
"""

from __future__ import annotations


class WordpieceTokenizer:
    """Greedy longest-match-first WordPiece (HF ``WordpieceTokenizer``), memoized per word."""

    def __init__(self, vocab: dict[str, int], unk_token: str = "[UNK]",
                 max_input_chars_per_word: int = 100, cache_size: int = 500_000) -> None:
        if unk_token not in vocab:
            raise ValueError(f"WordpieceTokenizer: unk_token {unk_token!r} is not in the vocab")
        self.vocab = vocab
        self.unk_token = unk_token
        self.unk_id = vocab[unk_token]
        self.max_input_chars_per_word = max_input_chars_per_word
        # No piece is longer than the longest vocab entry, so the inner search starts there.
        self._max_piece = max(len(t) - 2 if t.startswith("##") else len(t) for t in vocab)
        self._cache: dict[str, tuple[tuple[int, ...], tuple[tuple[int, int], ...]]] = {}
        self._cache_size = cache_size
        self._id_to_token = {i: t for t, i in vocab.items()}

    def pieces(self, word: str) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
        """Ids of the pieces of one basic token and their (start, end) spans within it."""
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        n, vocab = len(word), self.vocab
        unk = ((self.unk_id,), ((0, n),))
        ids, spans, start, result = [], [], 0, None
        if n > self.max_input_chars_per_word:
            result = unk
        while result is None and start < n:
            end = min(n, start + self._max_piece)
            prefix = "##" if start else ""
            while end > start:
                tid = vocab.get(prefix + word[start:end])
                if tid is not None:
                    break
                end -= 1
            else:
                result = unk  # no piece matches here: the whole word is unknown
                break
            ids.append(tid)
            spans.append((start, end))
            start = end
        if result is None:
            result = (tuple(ids), tuple(spans))
        if len(self._cache) < self._cache_size:  # a bound, so streaming a corpus cannot grow it
            self._cache[word] = result
        return result

    def tokenize(self, text: str) -> list[str]:
        """WordPiece tokens of whitespace-separated, already basic-tokenized ``text``."""
        return [self._id_to_token[i] for w in text.split() for i in self.pieces(w)[0]]
