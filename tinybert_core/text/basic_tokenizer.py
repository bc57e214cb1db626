"""BERT's basic tokenizer: cleaning, CJK splitting, lower-casing, accent stripping and
punctuation splitting, with the character offsets every word came from.

Hugging Face's ``BasicTokenizer`` (``tokenization_bert_legacy.py``), a port of Google's BERT
``tokenization.py``. The character tests are HF's ``_is_control`` / ``_is_whitespace`` /
``_is_punctuation`` and ``_is_chinese_char``, compiled once into regular expressions so that
whole lines are normalized and split in C rather than one character at a time in Python.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

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
