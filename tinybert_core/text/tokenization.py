"""BERT WordPiece tokenization: text -> input_ids / token_type_ids / attention_mask / offsets.

A pure-Python re-implementation of Hugging Face's "slow" BERT tokenizer (transformers
``models/bert/tokenization_bert.py``, now ``tokenization_bert_legacy.py``: ``BasicTokenizer``,
``WordpieceTokenizer``, ``BertTokenizer``), which is itself a port of Google's
``tokenization.py`` for BERT (Devlin et al., 2019, section 3 and appendix A.2). MobileBERT
(Sun et al., 2020) uses the same uncased 30,522-token vocabulary.

Output equals the reference token for token (``tests/fixtures/tokenizer_reference.json``).
The character tests are HF's ``_is_control`` / ``_is_whitespace`` / ``_is_punctuation`` and
``_is_chinese_char``, compiled once into regular expressions so that whole lines are normalized
and split in C rather than one character at a time in Python. ``offset_mapping`` follows the
Rust ``tokenizers`` convention used by ``BertTokenizerFast``: (start, end) character offsets into
the original string, ``(0, 0)`` for added special tokens.
"""

from __future__ import annotations

import functools
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from autograd.serialization import atomic_write_text

VOCAB_NAME = "vocab.txt"
CONFIG_NAME = "tokenizer_config.json"

# ASCII characters the basic tokenizer deletes: category Cc minus \t \n \r, which count as spaces.
_ASCII_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# CJK Unified Ideographs blocks, exactly HF's BasicTokenizer._is_chinese_char.
_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)


class _Tables(NamedTuple):
    remove: re.Pattern  # control/format/unassigned characters, U+0000 and U+FFFD: deleted
    cjk: re.Pattern  # CJK ideographs: surrounded by spaces
    mn: re.Pattern  # nonspacing marks: deleted after NFD when stripping accents
    word: re.Pattern  # a run of non-space non-punctuation characters, or one punctuation char


def _char_class(ranges: Iterable[tuple[int, int]]) -> str:
    return "".join(f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in ranges)


def _ranges(codepoints: Iterable[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for cp in codepoints:
        if out and out[-1][1] == cp - 1:
            out[-1] = (out[-1][0], cp)
        else:
            out.append((cp, cp))
    return out


@functools.cache
def _unicode_sets() -> tuple[list[int], list[int], list[int]]:
    """Code points that HF's per-character predicates select (one scan of Unicode, ~0.1 s)."""
    remove, mn, punct = [0xFFFD], [], []  # U+0000 is a control character (Cc) already
    for cp in range(0x110000):
        cat = unicodedata.category(chr(cp))
        if cat[0] == "C" and cp not in (9, 10, 13):
            remove.append(cp)
        elif cat == "Mn":
            mn.append(cp)
        # All non-alphanumeric printable ASCII counts as punctuation ("$", "^", "`", ...).
        if cat[0] == "P" or 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
            punct.append(cp)
    return sorted(remove), mn, punct


@functools.cache
def _tables(full: bool = False) -> _Tables:
    """HF's character predicates as compiled regexes, built on first use (imports stay cheap).

    ``full=False`` leaves out characters beyond U+FFFF: re then tests a character in O(1) with
    a bitmap, instead of walking hundreds of astral ranges for every character (5x faster).
    Use ``_tables_for(text)``, which picks the full tables only when ``text`` needs them.
    """
    top = 0x10FFFF if full else 0xFFFF
    remove, mn, punct = ([cp for cp in cps if cp <= top] for cps in _unicode_sets())
    p = _char_class(_ranges(punct))
    return _Tables(
        remove=re.compile(f"[{_char_class(_ranges(remove))}]+"),
        cjk=re.compile(f"[{_char_class(_CJK_RANGES)}]"),
        mn=re.compile(f"[{_char_class(_ranges(mn))}]+"),
        # \s is str.isspace(), the same test as the str.split() in HF's whitespace_tokenize.
        word=re.compile(f"[^\\s{p}]+|[{p}]"),
    )


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _tables_for(text: str) -> _Tables:
    return _tables(full=_ASTRAL.search(text) is not None)


Spans = tuple[list[int], list[int]]  # per character: original start index, original end index


def _expand(s: str, spans: Spans, f: Any) -> Spans:
    """Repeat each character's span once per character of ``f(char)`` (lower(), NFD)."""
    st, en = spans
    return ([x for c, x in zip(s, st) for _ in f(c)], [x for c, x in zip(s, en) for _ in f(c)])


def _nfc_indexed(s: str, spans: Spans) -> tuple[str, Spans]:
    """NFC-normalize ``s``; a composed character spans all the characters it came from.

    Composition never crosses whitespace, so each whitespace-free run is aligned on its own:
    output character j starts at the shortest prefix whose NFC form is longer than j.
    """
    out, st, en, pos = [], [], [], 0
    for m in re.finditer(r"\S+", s):
        run, base = m.group(), m.start()
        comp = unicodedata.normalize("NFC", run)
        out += [s[pos:base], comp]
        st += spans[0][pos:base]
        en += spans[1][pos:base]
        if comp == run:
            st += spans[0][base:m.end()]
            en += spans[1][base:m.end()]
        else:
            first, k = [], 0  # first[j]: index in run of the first source char of comp[j]
            for j in range(len(comp)):
                while k < len(run) - 1 and len(unicodedata.normalize("NFC", run[:k + 1])) <= j:
                    k += 1
                first.append(k)
            last = [max(f, nxt - 1) for f, nxt in zip(first, first[1:] + [len(run)])]
            st += [spans[0][base + f] for f in first]
            en += [spans[1][base + e] for e in last]
        pos = m.end()
    out.append(s[pos:])
    return "".join(out), (st + spans[0][pos:], en + spans[1][pos:])


class BasicTokenizer:
    """Cleaning, CJK splitting, lower-casing, accent stripping and punctuation splitting.

    Same output as HF's ``BasicTokenizer.tokenize``; ``tokenize_with_offsets`` also tells, for
    every character of every word, which characters of the input it came from.
    """

    def __init__(self, do_lower_case: bool = True, never_split: Iterable[str] = (),
                 tokenize_chinese_chars: bool = True, strip_accents: bool | None = None) -> None:
        self.do_lower_case = do_lower_case
        self.never_split = tuple(sorted(set(never_split), key=lambda t: (-len(t), t)))
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.strip_accents = strip_accents
        # HF: lower-casing implies accent stripping unless strip_accents is explicitly False.
        self._strip = do_lower_case if strip_accents is None else bool(strip_accents)
        self._never_re = (re.compile("(?<!\\S)(?:" + "|".join(map(re.escape, self.never_split))
                                     + ")(?!\\S)") if self.never_split else None)

    def _clean(self, text: str) -> str:
        if text.isascii():
            return _ASCII_CONTROL.sub("", text) if _ASCII_CONTROL.search(text) else text
        t = _tables_for(text)
        text = t.remove.sub("", text)
        return t.cjk.sub(r" \g<0> ", text) if self.tokenize_chinese_chars else text

    def _never_spans(self, s: str) -> list[tuple[int, int, bool]]:
        # A never_split token standing alone between spaces is kept whole (HF checks whitespace
        # tokens against never_split before lower-casing and punctuation splitting).
        if self._never_re is None or not any(t in s for t in self.never_split):
            return [(0, len(s), False)]
        spans, pos = [], 0
        for m in self._never_re.finditer(s):
            spans += [(pos, m.start(), False), (m.start(), m.end(), True)]
            pos = m.end()
        return spans + [(pos, len(s), False)]

    def _normalize(self, s: str) -> str:
        if s.isascii():
            return s.lower() if self.do_lower_case else s
        if not self._strip:
            # HF applies NFC before lower-casing; with stripping it is implied by the NFD below.
            s = unicodedata.normalize("NFC", s)
        if self.do_lower_case:
            s = s.lower()
        if self._strip:
            s = unicodedata.normalize("NFD", s)
            s = _tables_for(s).mn.sub("", s)
        return s

    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` into basic tokens (words and single punctuation characters)."""
        text = self._clean(text)
        out: list[str] = []
        for a, b, keep in self._never_spans(text):
            if keep:
                out.append(text[a:b])
            elif a < b:
                norm = self._normalize(text[a:b])
                out += _tables_for(norm).word.findall(norm)
        return out

    def tokenize_with_offsets(self, text: str) -> list[tuple[str, Sequence[int], Sequence[int]]]:
        """Like ``tokenize``; each word comes with, per character, the start and end indices in
        ``text`` of the characters it was normalized from."""
        t = _tables_for(text)
        if (text.isascii() and not _ASCII_CONTROL.search(text)
                and not any(tok in text for tok in self.never_split)):
            s = text.lower() if self.do_lower_case else text
            return [(m.group(), range(m.start(), m.end()), range(m.start() + 1, m.end() + 1))
                    for m in t.word.finditer(s)]
        chars, st = [], []
        for i, c in enumerate(text):
            if t.remove.match(c):
                continue
            if self.tokenize_chinese_chars and t.cjk.match(c):
                chars += (" ", c, " ")
                st += (i, i, i)
            else:
                chars.append(c)
                st.append(i)
        s, en = "".join(chars), [i + 1 for i in st]
        out: list[tuple[str, Sequence[int], Sequence[int]]] = []
        for a, b, keep in self._never_spans(s):
            if keep:
                out.append((s[a:b], st[a:b], en[a:b]))
            elif a < b:
                p, (pst, pen) = self._normalize_indexed(s[a:b], (st[a:b], en[a:b]))
                out += [(m.group(), pst[m.start():m.end()], pen[m.start():m.end()])
                        for m in _tables_for(p).word.finditer(p)]
        return out

    def _normalize_indexed(self, s: str, spans: Spans) -> tuple[str, Spans]:
        """``_normalize`` that also carries each character's original span."""
        if s.isascii():
            return (s.lower() if self.do_lower_case else s), spans
        if not self._strip and not unicodedata.is_normalized("NFC", s):
            s, spans = _nfc_indexed(s, spans)
        if self.do_lower_case:
            low = s.lower()  # whole-string lower() for the Greek final-sigma rule
            if len(low) != len(s):
                spans = _expand(s, spans, str.lower)
            s = low
        if self._strip:
            nfd = unicodedata.normalize("NFD", s)
            if len(nfd) != len(s):
                spans = _expand(s, spans, functools.partial(unicodedata.normalize, "NFD"))
            mn = _tables_for(nfd).mn
            if mn.search(nfd):
                keep = [j for j, c in enumerate(nfd) if not mn.match(c)]
                nfd = "".join(nfd[j] for j in keep)
                spans = ([spans[0][j] for j in keep], [spans[1][j] for j in keep])
            s = nfd
        return s, spans


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


class BatchEncoding(dict):
    """Tokenizer output: ``input_ids``, ``token_type_ids``, ``attention_mask`` (and
    ``offset_mapping``), as lists or, with ``return_tensors="np"``, int64 arrays."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(name) from e


def load_vocab(vocab_file: str | os.PathLike) -> dict[str, int]:
    """Read a one-token-per-line vocabulary; the line number (from 0) is the id."""
    path = Path(vocab_file)
    if not path.is_file():
        raise FileNotFoundError(f"load_vocab: vocabulary file not found: {str(path)!r}")
    vocab: dict[str, int] = {}
    with open(path, encoding="utf-8", newline="") as f:
        for lineno, line in enumerate(f, start=1):
            token = line.rstrip("\r\n")
            if not token:
                raise ValueError(f"load_vocab: {str(path)!r} line {lineno} is empty")
            if token in vocab:
                raise ValueError(f"load_vocab: duplicate token {token!r} in {str(path)!r} at "
                                 f"line {lineno} (first seen at line {vocab[token] + 1})")
            vocab[token] = len(vocab)
    if not vocab:
        raise ValueError(f"load_vocab: vocabulary file {str(path)!r} is empty")
    return vocab


_TRUNCATION = ("longest_first", "only_first", "only_second")
_PADDING = ("longest", "max_length")
_CONFIG_KEYS = ("do_lower_case", "strip_accents", "tokenize_chinese_chars", "unk_token",
                "sep_token", "pad_token", "cls_token", "mask_token", "model_max_length")

Offsets = list[tuple[int, int]]


class BertTokenizer:
    """BERT's uncased WordPiece tokenizer with HF's ``BertTokenizer`` interface.

    >>> tok = BertTokenizer.from_pretrained("path/to/dir")  # doctest: +SKIP
    >>> tok("Hello, world!")["input_ids"]  # doctest: +SKIP
    [101, 7592, 1010, 2088, 999, 102]
    """

    def __init__(self, vocab_file: str | os.PathLike, do_lower_case: bool = True,
                 strip_accents: bool | None = None, tokenize_chinese_chars: bool = True,
                 unk_token: str = "[UNK]", sep_token: str = "[SEP]", pad_token: str = "[PAD]",
                 cls_token: str = "[CLS]", mask_token: str = "[MASK]",
                 model_max_length: int = 512) -> None:
        self.vocab = load_vocab(vocab_file)
        self.ids_to_tokens = list(self.vocab)
        specials = {"unk_token": unk_token, "sep_token": sep_token, "pad_token": pad_token,
                    "cls_token": cls_token, "mask_token": mask_token}
        for name, token in specials.items():
            if not isinstance(token, str) or not token:
                raise TypeError(f"BertTokenizer: {name} must be a non-empty str, got {token!r}")
            if token not in self.vocab:
                raise ValueError(f"BertTokenizer: {name} {token!r} is missing from the vocabulary "
                                 f"{str(vocab_file)!r} ({len(self.vocab)} tokens)")
        if isinstance(model_max_length, bool) or not isinstance(model_max_length, int) \
                or model_max_length < 3:
            raise ValueError(f"BertTokenizer: model_max_length must be an int >= 3, "
                             f"got {model_max_length!r}")
        self.unk_token, self.sep_token, self.pad_token = unk_token, sep_token, pad_token
        self.cls_token, self.mask_token = cls_token, mask_token
        self.model_max_length = model_max_length
        self.all_special_tokens = list(dict.fromkeys(specials.values()))
        self.basic_tokenizer = BasicTokenizer(do_lower_case, self.all_special_tokens,
                                              tokenize_chinese_chars, strip_accents)
        self.wordpiece_tokenizer = WordpieceTokenizer(self.vocab, unk_token)
        # Special tokens written in the text are matched first, before any normalization
        # (HF's added-tokens trie): "a[MASK]b" -> a, [MASK], b; "[mask]" is plain text.
        self._special_re = re.compile("|".join(map(re.escape, self.basic_tokenizer.never_split)))

    # ----- loading and saving -----

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **kwargs: Any) -> BertTokenizer:
        """Load ``vocab.txt`` and, if present, ``tokenizer_config.json`` from ``directory``.

        Keyword arguments override the config file.
        """
        d = Path(directory)
        if not d.is_dir():
            raise FileNotFoundError(f"BertTokenizer.from_pretrained: no such directory {str(d)!r}")
        config: dict[str, Any] = {}
        if (d / CONFIG_NAME).is_file():
            try:
                raw = json.loads((d / CONFIG_NAME).read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise ValueError(f"BertTokenizer.from_pretrained: {str(d / CONFIG_NAME)!r} is not "
                                 f"valid JSON: {e}") from e
            if not isinstance(raw, dict):
                raise ValueError(f"BertTokenizer.from_pretrained: {str(d / CONFIG_NAME)!r} must "
                                 f"hold a JSON object, got {type(raw).__name__}")
            for key in _CONFIG_KEYS:
                value = raw.get(key)
                if isinstance(value, dict):  # HF serializes AddedToken as {"content": ...}
                    value = value.get("content")
                if value is not None or key == "strip_accents":
                    config[key] = value
        config.update(kwargs)
        return cls(d / VOCAB_NAME, **config)

    def save_pretrained(self, directory: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``vocab.txt`` and ``tokenizer_config.json`` (each atomically) to ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        config = {key: getattr(self, key) for key in _CONFIG_KEYS}
        config["tokenizer_class"] = "BertTokenizer"
        atomic_write_text(d / VOCAB_NAME, "".join(t + "\n" for t in self.ids_to_tokens))
        atomic_write_text(d / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
        return d / VOCAB_NAME, d / CONFIG_NAME

    # ----- vocabulary -----

    do_lower_case = property(lambda self: self.basic_tokenizer.do_lower_case)
    strip_accents = property(lambda self: self.basic_tokenizer.strip_accents)
    tokenize_chinese_chars = property(lambda self: self.basic_tokenizer.tokenize_chinese_chars)
    vocab_size = property(lambda self: len(self.vocab))
    unk_token_id = property(lambda self: self.vocab[self.unk_token])
    sep_token_id = property(lambda self: self.vocab[self.sep_token])
    pad_token_id = property(lambda self: self.vocab[self.pad_token])
    cls_token_id = property(lambda self: self.vocab[self.cls_token])
    mask_token_id = property(lambda self: self.vocab[self.mask_token])
    all_special_ids = property(lambda self: [self.vocab[t] for t in self.all_special_tokens])

    def __len__(self) -> int:
        return len(self.vocab)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]) -> int | list[int]:
        """Vocabulary ids; unknown tokens map to ``unk_token_id``."""
        unk = self.unk_token_id
        if isinstance(tokens, str):
            return self.vocab.get(tokens, unk)
        return [self.vocab.get(t, unk) for t in tokens]

    def convert_ids_to_tokens(self, ids: int | Iterable[int]) -> str | list[str]:
        """Tokens for ids; an id outside ``[0, vocab_size)`` is an error."""
        if isinstance(ids, (int, np.integer)):
            return self.convert_ids_to_tokens([ids])[0]
        out = []
        for i in np.asarray(ids).reshape(-1).tolist() if isinstance(ids, np.ndarray) else ids:
            if not 0 <= int(i) < len(self.ids_to_tokens):
                raise ValueError(f"convert_ids_to_tokens: id {i} is outside the vocabulary "
                                 f"[0, {len(self.ids_to_tokens)})")
            out.append(self.ids_to_tokens[int(i)])
        return out

    # ----- tokenization -----

    def _split_special(self, text: str) -> list[tuple[int, int, bool]]:
        if not any(t in text for t in self.all_special_tokens):
            return [(0, len(text), False)]
        spans, pos = [], 0
        for m in self._special_re.finditer(text):
            spans += [(pos, m.start(), False), (m.start(), m.end(), True)]
            pos = m.end()
        return [s for s in spans + [(pos, len(text), False)] if s[0] < s[1]]

    def _ids(self, text: str, with_offsets: bool) -> tuple[list[int], Offsets | None]:
        """Token ids of ``text`` without [CLS]/[SEP], and their offsets if asked."""
        if not isinstance(text, str):
            raise TypeError(f"BertTokenizer: text must be str, got {type(text).__name__}")
        ids: list[int] = []
        offsets: Offsets | None = [] if with_offsets else None
        pieces = self.wordpiece_tokenizer.pieces
        for a, b, special in self._split_special(text):
            if special:
                ids.append(self.vocab[text[a:b]])
                if offsets is not None:
                    offsets.append((a, b))
            elif offsets is None:
                for word in self.basic_tokenizer.tokenize(text[a:b]):
                    ids += pieces(word)[0]
            else:
                for word, st, en in self.basic_tokenizer.tokenize_with_offsets(text[a:b]):
                    wids, spans = pieces(word)
                    ids += wids
                    offsets += [(a + st[s], a + en[e - 1]) for s, e in spans]
        return ids, offsets

    def tokenize(self, text: str) -> list[str]:
        """WordPiece tokens of ``text`` (no [CLS]/[SEP])."""
        return [self.ids_to_tokens[i] for i in self._ids(text, False)[0]]

    def convert_tokens_to_string(self, tokens: Iterable[str]) -> str:
        """Join tokens with spaces, gluing ``##`` continuations to the previous piece."""
        return " ".join(tokens).replace(" ##", "").strip()

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False,
               clean_up_tokenization_spaces: bool = False) -> str:
        """Text of ``ids``: lower-cased, accent-stripped, punctuation space-separated.

        ``clean_up_tokenization_spaces`` applies HF's cleanup (``"a , b"`` -> ``"a, b"``).
        """
        tokens = self.convert_ids_to_tokens(ids)
        if skip_special_tokens:
            special = set(self.all_special_tokens)
            tokens = [t for t in tokens if t not in special]
        text = self.convert_tokens_to_string(tokens)
        if clean_up_tokenization_spaces:
            for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
                         (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"),
                         (" 're", "'re")):
                text = text.replace(a, b)
        return text

    # ----- model inputs -----

    @staticmethod
    def _truncate(a: list, b: list | None, strategy: str, max_length: int, n_special: int
                  ) -> tuple[list, list | None]:
        """HF ``truncate_sequences`` (right side): drop tokens until the inputs fit."""
        excess = len(a) + len(b or ()) + n_special - max_length
        if excess <= 0:
            return a, b
        if strategy == "longest_first" and b is not None:
            # Cut the longer one down to the shorter, then alternate, the pair losing the odd one.
            first = min(abs(len(a) - len(b)), excess)
            second = excess - first
            if len(a) > len(b):
                cut_a, cut_b = first + second // 2, second - second // 2
            else:
                cut_a, cut_b = second // 2, first + second - second // 2
        elif strategy == "only_second":
            if b is None:
                raise ValueError("truncation='only_second' needs a text_pair")
            if len(b) <= excess:  # HF refuses to delete a whole sequence
                raise ValueError(f"truncation='only_second': the second sequence has {len(b)} "
                                 f"tokens but {excess} must go to fit max_length={max_length}")
            cut_a, cut_b = 0, excess
        else:
            if strategy == "only_first" and len(a) <= excess:
                raise ValueError(f"truncation='only_first': the first sequence has {len(a)} "
                                 f"tokens but {excess} must go to fit max_length={max_length}")
            cut_a, cut_b = excess, 0
        return a[:len(a) - cut_a], (b[:len(b) - cut_b] if b is not None else None)

    def _encode_one(self, text: str, pair: str | None, add_special_tokens: bool,
                    truncation: str | None, max_length: int | None, with_offsets: bool
                    ) -> dict[str, list]:
        a, a_off = self._ids(text, with_offsets)
        b, b_off = self._ids(pair, with_offsets) if pair is not None else (None, None)
        if truncation is not None:
            n_special = (2 if b is None else 3) if add_special_tokens else 0
            a, b = self._truncate(a, b, truncation, max_length, n_special)
        cls, sep = ([self.cls_token_id], [self.sep_token_id]) if add_special_tokens else ([], [])
        ends = [(0, 0)] if add_special_tokens else []
        ids = cls + a + sep
        types = [0] * len(ids)
        offsets = ends + a_off[:len(a)] + ends if with_offsets else None
        if b is not None:
            ids += b + sep
            types += [1] * (len(b) + len(sep))
            if with_offsets:
                offsets += b_off[:len(b)] + ends
        out = {"input_ids": ids, "token_type_ids": types, "attention_mask": [1] * len(ids)}
        if with_offsets:
            out["offset_mapping"] = offsets
        return out

    def __call__(self, text: str | Sequence[str], text_pair: str | Sequence[str] | None = None,
                 add_special_tokens: bool = True, padding: bool | str = False,
                 truncation: bool | str | None = None, max_length: int | None = None,
                 return_offsets_mapping: bool = False, return_tensors: str | None = None
                 ) -> BatchEncoding:
        """Encode one text (flat lists) or a batch (lists of lists), optionally as pairs.

        padding: False, True / "longest" (to the longest in the batch) or "max_length".
        truncation: False, True / "longest_first", "only_first" or "only_second"; None (the
        default) means "longest_first" when ``max_length`` is given without padding, else no
        truncation (as in HF). Without ``max_length``, truncation and "max_length" padding use
        ``model_max_length``. "only_first"/"only_second" raise ValueError when that sequence is
        too short to take the whole cut (HF logs an error and returns it untruncated).
        return_tensors="np" gives int64 arrays of shape (B, T) (offsets (B, T, 2)); a single
        text becomes a batch of one, as in HF.
        """
        batched = isinstance(text, (list, tuple))
        texts = list(text) if batched else [text]
        if text_pair is None:
            pairs: list[str | None] = [None] * len(texts)
        elif batched != isinstance(text_pair, (list, tuple)) or \
                (batched and len(text_pair) != len(texts)):
            raise ValueError(f"BertTokenizer: text_pair must match text: got {type(text).__name__}"
                             f" of {len(texts)} and {type(text_pair).__name__} of "
                             f"{len(text_pair) if isinstance(text_pair, (list, tuple)) else 1}")
        else:
            pairs = list(text_pair) if batched else [text_pair]
        pad_to = self._padding_strategy(padding)
        strategy = self._truncation_strategy(truncation, max_length, pad_to)
        if max_length is None and (strategy is not None or pad_to == "max_length"):
            max_length = self.model_max_length
        if max_length is not None:
            least = (2 if text_pair is None else 3) if add_special_tokens and strategy else 1
            if isinstance(max_length, bool) or not isinstance(max_length, int) \
                    or max_length < least:
                raise ValueError(f"BertTokenizer: max_length must be an int >= {least}"
                                 f"{' (the special tokens)' if least > 1 else ''}, "
                                 f"got {max_length!r}")
        rows = [self._encode_one(t, p, add_special_tokens, strategy, max_length,
                                 return_offsets_mapping) for t, p in zip(texts, pairs)]
        if pad_to is not None and rows:
            width = max(len(r["input_ids"]) for r in rows)
            if pad_to == "max_length":
                width = max(width, max_length)
            for r in rows:
                n = width - len(r["input_ids"])
                r["input_ids"] += [self.pad_token_id] * n
                r["token_type_ids"] += [0] * n
                r["attention_mask"] += [0] * n
                if return_offsets_mapping:
                    r["offset_mapping"] += [(0, 0)] * n
        keys = ["input_ids", "token_type_ids", "attention_mask"]
        keys += ["offset_mapping"] if return_offsets_mapping else []
        out = BatchEncoding({k: [r[k] for r in rows] for k in keys})
        if return_tensors is not None:
            return self._to_numpy(out, return_tensors)
        return out if batched else BatchEncoding({k: v[0] for k, v in out.items()})

    def encode(self, text: str, text_pair: str | None = None, add_special_tokens: bool = True,
               max_length: int | None = None, truncation: bool | str | None = None) -> list[int]:
        """``input_ids`` of one text or one pair (see ``__call__`` for truncation)."""
        if not isinstance(text, str):
            raise TypeError(f"BertTokenizer.encode: text must be str, got {type(text).__name__}")
        return self(text, text_pair, add_special_tokens=add_special_tokens,
                    max_length=max_length, truncation=truncation)["input_ids"]

    @staticmethod
    def _truncation_strategy(truncation: bool | str | None, max_length: int | None,
                             pad_to: str | None) -> str | None:
        if truncation is None:  # HF: a bare max_length truncates, unless padding was asked for
            return "longest_first" if max_length is not None and pad_to is None else None
        if truncation is True:
            return "longest_first"
        if truncation is False or truncation == "do_not_truncate":
            return None
        if truncation not in _TRUNCATION:
            raise ValueError(f"BertTokenizer: truncation must be a bool or one of {_TRUNCATION}, "
                             f"got {truncation!r}")
        return truncation

    @staticmethod
    def _padding_strategy(padding: bool | str) -> str | None:
        if padding is True:
            return "longest"
        if padding is False or padding == "do_not_pad":
            return None
        if padding not in _PADDING:
            raise ValueError(f"BertTokenizer: padding must be a bool or one of {_PADDING}, "
                             f"got {padding!r}")
        return padding

    @staticmethod
    def _to_numpy(enc: BatchEncoding, return_tensors: str) -> BatchEncoding:
        if return_tensors != "np":
            raise ValueError(f"BertTokenizer: return_tensors must be None or 'np', "
                             f"got {return_tensors!r}")
        lengths = {len(r) for r in enc.get("input_ids", [])}
        if len(lengths) > 1:
            raise ValueError(f"BertTokenizer: return_tensors='np' needs equal lengths, got "
                             f"{sorted(lengths)}; pass padding=True")
        return BatchEncoding({k: np.asarray(v, dtype=np.int64) for k, v in enc.items()})
