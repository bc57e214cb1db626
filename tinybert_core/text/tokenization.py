"""BERT WordPiece tokenization: text -> input_ids / token_type_ids / attention_mask / offsets.

A pure-Python re-implementation of Hugging Face's "slow" BERT tokenizer (transformers
``models/bert/tokenization_bert.py``, now ``tokenization_bert_legacy.py``: ``BasicTokenizer``,
``WordpieceTokenizer``, ``BertTokenizer``), which is itself a port of Google's
``tokenization.py`` for BERT (Devlin et al., 2019, section 3 and appendix A.2). MobileBERT
(Sun et al., 2020) uses the same uncased 30,522-token vocabulary.

Output equals the reference token for token (``tests/fixtures/tokenizer_reference.json``).
Text goes through ``BasicTokenizer`` (``basic_tokenizer.py``), then ``WordpieceTokenizer``
(``wordpiece.py``); this file holds ``BertTokenizer``, the interface over both (special tokens,
pairs, truncation, padding, arrays, saving and loading). ``offset_mapping`` follows the
Rust ``tokenizers`` convention used by ``BertTokenizerFast``: (start, end) character offsets into
the original string, ``(0, 0)`` for added special tokens.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autograd.files import CheckpointError, atomic_write_text, load_json, read_text
from tinybert_core.text.basic_tokenizer import BasicTokenizer
from tinybert_core.text.wordpiece import WordpieceTokenizer

VOCAB_NAME = "vocab.txt"
CONFIG_NAME = "tokenizer_config.json"


class BatchEncoding(dict):
    """Tokenizer output: ``input_ids``, ``token_type_ids``, ``attention_mask`` (and
    ``offset_mapping``), as lists or, with ``return_tensors="np"``, int64 arrays."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(name) from e


def load_vocab(vocab_file: str | os.PathLike) -> dict[str, int]:
    """Read a one-token-per-line vocabulary; the line number (from 0) is the id.

    A file that is not a regular UTF-8 text file, an empty line, a duplicate token or an empty
    file raises CheckpointError naming the file and the line.
    """
    path = Path(vocab_file)
    text = read_text(path, "vocabulary file")
    vocab: dict[str, int] = {}
    # newline="" splits at \n, \r\n and \r as the file object did, and nowhere else.
    for lineno, line in enumerate(io.StringIO(text, newline=""), start=1):
        token = line.rstrip("\r\n")
        if not token:
            raise CheckpointError(f"load_vocab: {str(path)!r} line {lineno} is empty")
        if token in vocab:
            raise CheckpointError(f"load_vocab: duplicate token {token!r} in {str(path)!r} at "
                                  f"line {lineno} (first seen at line {vocab[token] + 1})")
        vocab[token] = len(vocab)
    if not vocab:
        raise CheckpointError(f"load_vocab: vocabulary file {str(path)!r} is empty")
    return vocab


def _check_config_values(config: dict[str, Any]) -> None:
    """The types tokenizer_config.json may give each setting (BertTokenizer checks the rest)."""
    for key in ("do_lower_case", "tokenize_chinese_chars"):
        if key in config and not isinstance(config[key], bool):
            raise TypeError(f"{key} must be true or false, got {config[key]!r}")
    if config.get("strip_accents") is not None and not isinstance(config["strip_accents"], bool):
        raise TypeError(f"strip_accents must be true, false or null, "
                        f"got {config['strip_accents']!r}")


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
        path = d / CONFIG_NAME
        if os.path.lexists(path):
            raw = load_json(path, "tokenizer config")
            if not isinstance(raw, dict):
                raise CheckpointError(f"tokenizer config {path} must hold a JSON object, got "
                                      f"{type(raw).__name__}")
            for key in _CONFIG_KEYS:
                value = raw.get(key)
                if isinstance(value, dict):  # HF serializes AddedToken as {"content": ...}
                    value = value.get("content")
                if value is not None or key == "strip_accents":
                    config[key] = value
            try:
                _check_config_values(config)
            except (TypeError, ValueError) as e:
                raise CheckpointError(f"tokenizer config {path}: {e}") from None
        config.update(kwargs)
        try:
            return cls(d / VOCAB_NAME, **config)
        except CheckpointError:
            raise
        except (TypeError, ValueError) as e:
            if not kwargs and config:
                raise CheckpointError(f"tokenizer config {path}: {e}") from None
            raise

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
