"""Corpora: plain-text files read as documents, tokenized once into a cache of int32 shards.

Steps 1 and 2 of the pre-training data pipeline (``pretraining.py`` has the overview):

1. ``iter_documents``: UTF-8 text, one sentence or paragraph per line, documents separated by
   blank lines (a file's end also ends a document), read line by line.
2. ``tokenize_corpus``: every line tokenized once into int32 ids, grouped into ``.npz`` shards
   of whole documents in a cache directory keyed by the files (path, size, mtime), the
   vocabulary and the tokenizer's case handling. A second run reads the shards back. Shards
   are written with the atomic ``save_npz`` and read with ``load_npz`` (no pickle, checked
   headers and CRCs); a corrupt one is rebuilt with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from autograd.serialization import CheckpointError, atomic_write_text, load_npz, save_npz
from tinybert_core.text.tokenization import BertTokenizer

CACHE_FORMAT = 1
DEFAULT_SHARD_TOKENS = 1 << 20  # about 4 MB of int32 ids per shard
PathLike = str | os.PathLike


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/tinybert``, else ``~/.cache/tinybert``."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "tinybert"


# ----- reading text -----

def check_corpus(paths: PathLike | Iterable[PathLike]) -> list[Path]:
    """Validate corpus files before any work: every file exists and at least one holds a
    non-blank line. Returns the paths as ``Path`` objects."""
    files = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    if not files:
        raise ValueError("pretraining data: no corpus files given")
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"pretraining data: corpus file not found: {str(path)!r}")
    for path in files:
        for _, line in _lines(path):
            if line:
                return files
    raise ValueError(f"pretraining data: empty corpus: {', '.join(map(str, files))} "
                     f"(no non-blank lines)")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, stripped text) of a UTF-8 file, decoded one line at a time so that an
    error names its line."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"pretraining data: {str(path)!r} line {lineno} is not valid "
                                 f"UTF-8 ({e.reason} at byte {e.start} of the line)") from e
            if lineno == 1:
                line = line.removeprefix("\ufeff")
            yield lineno, line.strip()


def iter_documents(paths: PathLike | Iterable[PathLike]) -> Iterator[list[str]]:
    """Stream the documents of ``paths`` in order: lists of non-blank, stripped lines.

    A blank line ends a document, and so does the end of a file; runs of blank lines make no
    empty documents. Memory holds one document.
    """
    for path in check_corpus(paths):
        doc: list[str] = []
        for _, line in _lines(path):
            if line:
                doc.append(line)
            elif doc:
                yield doc
                doc = []
        if doc:
            yield doc


# ----- the token shard cache -----

class Shard(NamedTuple):
    """Whole documents of a corpus as flat arrays."""

    tokens: np.ndarray  # (N,) int32 ids, no special tokens
    segment_offsets: np.ndarray  # (S + 1,) int64: line s is tokens[off[s]:off[s + 1]]
    document_offsets: np.ndarray  # (D + 1,) int64: document d is lines off[d]:off[d + 1]


def concat_shards(shards: Sequence[Shard]) -> Shard:
    tokens, segs, docs = [], [np.zeros(1, np.int64)], [np.zeros(1, np.int64)]
    n_tok = n_seg = 0
    for s in shards:
        tokens.append(s.tokens)
        segs.append(s.segment_offsets[1:] + n_tok)
        docs.append(s.document_offsets[1:] + n_seg)
        n_tok += len(s.tokens)
        n_seg += len(s.segment_offsets) - 1
    return Shard(np.concatenate(tokens), np.concatenate(segs), np.concatenate(docs))


def _corpus_key(files: Sequence[Path], tokenizer: BertTokenizer, shard_tokens: int) -> str:
    vocab = hashlib.sha256("\n".join(tokenizer.ids_to_tokens).encode("utf-8")).hexdigest()
    stats = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    meta = {"format": CACHE_FORMAT, "files": stats, "vocab_sha256": vocab,
            "do_lower_case": tokenizer.do_lower_case, "strip_accents": tokenizer.strip_accents,
            "tokenize_chinese_chars": tokenizer.tokenize_chinese_chars,
            "shard_tokens": shard_tokens}
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode("utf-8")).hexdigest()[:24]


class TokenizedCorpus:
    """A corpus tokenized into shards on disk; build or reuse with ``tokenize_corpus``.

    Attributes: ``directory``, ``files``, ``key``, ``num_documents``, ``num_segments``,
    ``num_tokens``, ``num_shards``, ``from_cache`` (True when no tokenization was needed) and
    ``build_seconds`` (tokenize + write time, 0 when read from the cache).
    """

    INDEX = "index.json"

    def __init__(self, files: list[Path], tokenizer: BertTokenizer, directory: Path, key: str,
                 shard_tokens: int) -> None:
        self.files, self.tokenizer, self.directory, self.key = files, tokenizer, directory, key
        self.shard_tokens = shard_tokens
        self.from_cache, self.build_seconds = False, 0.0
        self._index: dict[str, Any] = {}

    num_documents = property(lambda self: self._index["documents"])
    num_segments = property(lambda self: self._index["segments"])
    num_tokens = property(lambda self: self._index["tokens"])
    num_shards = property(lambda self: len(self._index["shards"]))

    def shard_sizes(self) -> list[int]:
        """Tokens in each shard."""
        return [s["tokens"] for s in self._index["shards"]]

    def shard(self, i: int) -> Shard:
        """Shard ``i``; a shard that fails to load makes the whole cache rebuild, with a warning."""
        try:
            return self._read_shard(i)
        except ValueError as e:
            warnings.warn(f"pretraining data: {e}; re-tokenizing the corpus", stacklevel=2)
            self._build()
            return self._read_shard(i)

    def documents(self) -> Iterator[list[np.ndarray]]:
        """Every document, in file order, as a list of per-line id arrays."""
        for i in range(self.num_shards):
            tok, seg, doc = self.shard(i)
            for d in range(len(doc) - 1):
                yield [tok[seg[s]:seg[s + 1]] for s in range(doc[d], doc[d + 1])]

    def _read_shard(self, i: int) -> Shard:
        meta = self._index["shards"][i]
        path = self.directory / meta["file"]
        try:
            arrays = load_npz(path)             # no pickle; CRC and headers checked
            shard = Shard(*(arrays[k] for k in Shard._fields))
        except (OSError, CheckpointError, KeyError) as e:  # missing, corrupt, or a key gone
            raise ValueError(f"cache shard {str(path)!r} is unreadable ({type(e).__name__}: "
                             f"{e})") from e
        tok, seg, doc = shard
        ok = (tok.dtype == np.int32 and seg.dtype == np.int64 and doc.dtype == np.int64
              and tok.shape == (meta["tokens"],) and seg.shape == (meta["segments"] + 1,)
              and doc.shape == (meta["documents"] + 1,) and seg[0] == 0 and doc[0] == 0
              and seg[-1] == len(tok) and doc[-1] == len(seg) - 1
              and bool(np.all(np.diff(seg) > 0)) and bool(np.all(np.diff(doc) > 0))
              and (len(tok) == 0 or 0 <= tok.min() and tok.max() < len(self.tokenizer.vocab)))
        if not ok:
            raise ValueError(f"cache shard {str(path)!r} does not match its index")
        return shard

    def _open(self) -> bool:
        """Load the index and check every shard; False when the cache must be (re)built."""
        index_path = self.directory / self.INDEX
        if not index_path.is_file():
            return False
        try:
            self._index = json.loads(index_path.read_text(encoding="utf-8"))
            if self._index.get("key") != self.key:
                raise ValueError(f"{str(index_path)!r} belongs to another corpus")
            for i in range(self.num_shards):
                self._read_shard(i)
        except (ValueError, KeyError, TypeError) as e:
            warnings.warn(f"pretraining data: corrupt token cache in {str(self.directory)!r} "
                          f"({e}); re-tokenizing the corpus", stacklevel=3)
            return False
        return True

    def _build(self) -> None:
        if _corpus_key(self.files, self.tokenizer, self.shard_tokens) != self.key:
            raise ValueError(f"pretraining data: the corpus files {[str(p) for p in self.files]} "
                             f"changed while their token cache was in use")
        start = time.perf_counter()
        self.directory.mkdir(parents=True, exist_ok=True)
        tok = self.tokenizer
        # Special tokens written in the text would break the [CLS] A [SEP] B [SEP] layout.
        reserved = np.array([tok.cls_token_id, tok.sep_token_id, tok.pad_token_id,
                             tok.mask_token_id])
        shards: list[dict[str, Any]] = []
        pieces: list[np.ndarray] = []
        seg_lens: list[int] = []
        doc_lens: list[int] = []

        def flush() -> None:
            name = f"shard-{len(shards):05d}.npz"
            tokens = np.concatenate(pieces).astype(np.int32) if pieces else np.zeros(0, np.int32)
            seg = np.concatenate([[0], np.cumsum(seg_lens)]).astype(np.int64)
            doc = np.concatenate([[0], np.cumsum(doc_lens)]).astype(np.int64)
            save_npz(self.directory / name, Shard(tokens, seg, doc)._asdict())
            shards.append({"file": name, "tokens": len(tokens), "segments": len(seg_lens),
                           "documents": len(doc_lens)})
            pieces.clear(), seg_lens.clear(), doc_lens.clear()

        held = 0  # tokens in the shard being filled
        for lines in iter_documents(self.files):
            ids = [np.asarray(x, dtype=np.int32)
                   for x in tok(lines, add_special_tokens=False)["input_ids"]]
            ids = [np.where(np.isin(x, reserved), tok.unk_token_id, x).astype(np.int32)
                   for x in ids if len(x)]
            if not ids:
                continue  # a document of lines that tokenize to nothing
            pieces.extend(ids)
            seg_lens.extend(len(x) for x in ids)
            doc_lens.append(len(ids))
            held += sum(len(x) for x in ids)
            if held >= self.shard_tokens:  # documents stay whole: a shard may run over
                flush()
                held = 0
        if doc_lens or not shards:
            flush()
        self._index = {
            "format": CACHE_FORMAT, "key": self.key, "files": [str(p) for p in self.files],
            "shards": shards, "documents": sum(s["documents"] for s in shards),
            "segments": sum(s["segments"] for s in shards),
            "tokens": sum(s["tokens"] for s in shards)}
        atomic_write_text(self.directory / self.INDEX, json.dumps(self._index, indent=1) + "\n")
        self.build_seconds = time.perf_counter() - start


def tokenize_corpus(paths: PathLike | Iterable[PathLike], tokenizer: BertTokenizer,
                    cache_dir: PathLike | None = None,
                    shard_tokens: int = DEFAULT_SHARD_TOKENS) -> TokenizedCorpus:
    """Tokenize ``paths`` into cached shards, or reuse the shards of an earlier run.

    The cache lives in ``cache_dir/corpora/<key>`` (default ``default_cache_dir()``), the key
    hashing each file's resolved path, size and mtime, the vocabulary and the tokenizer's
    lower-casing/accent options. Shards are written atomically and checked when opened; a
    corrupt one is rebuilt with a warning. Special tokens written in the text become [UNK].
    """
    files = check_corpus(paths)
    if isinstance(shard_tokens, bool) or not isinstance(shard_tokens, int) or shard_tokens < 1:
        raise ValueError(f"tokenize_corpus: shard_tokens must be an int >= 1, got "
                         f"{shard_tokens!r}")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = _corpus_key(files, tokenizer, shard_tokens)
    corpus = TokenizedCorpus(files, tokenizer, root / "corpora" / key, key, shard_tokens)
    corpus.from_cache = corpus._open()
    if not corpus.from_cache:
        corpus._build()
    return corpus
