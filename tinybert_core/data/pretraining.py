"""Pre-training data: plain-text corpora -> cached token shards -> masked MLM/NSP batches.

The data side of BERT pre-training (Devlin et al., 2019, section 3.1 and appendix A.1), as in
Google's ``create_pretraining_data.py`` and MobileBERT spec section 4.1, built for streaming:

1. ``iter_documents`` (``corpus.py``): UTF-8 text, one sentence or paragraph per line,
   documents separated by blank lines (a file's end also ends a document), read line by line.
2. ``tokenize_corpus`` (``corpus.py``): every line tokenized once into int32 ids, grouped into
   ``.npz`` shards of whole documents in a cache directory keyed by the files (path, size,
   mtime), the vocabulary and the tokenizer's case handling. A second run reads the shards back.
3. ``PretrainingDataset`` / ``make_pretraining_batches``: each epoch shuffles the shards and
   reads them a window at a time (``shuffle_buffer_tokens`` bounds memory); inside a window the
   documents are shuffled and cut into BERT segment pairs (target length ``max_seq_length - 3``,
   shorter with ``short_seq_prob``; B is the true continuation, label 0, or with probability 1/2
   text from another document, label 1), the pairs are shuffled, masked (``masking.py``) and
   padded per batch to their longest sequence.

Randomness is counter-based: the generator of a window is seeded by ``(seed, epoch, window)``
and the one that masks an example by ``(seed, epoch, window, index)``, so the position in the
stream (epoch, window, offset) is the whole iterator state: ``state()`` is a few ints, and a
resumed run yields exactly the batches an uninterrupted one would have.

Data parallelism (``shard=(rank, count)``): every process walks the same global stream of
``batch_size`` pairs but masks and encodes only its contiguous ``batch_size / count`` of each
batch, padded to the width of the whole global batch, so the ``count`` slices together are
exactly the batch one process would draw. The state is the global position, the same in every
process, so a run can resume with any number of processes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from tinybert_core.data.corpus import (
    DEFAULT_SHARD_TOKENS,
    PathLike,
    TokenizedCorpus,
    check_corpus,
    concat_shards,
    tokenize_corpus,
)
from tinybert_core.data.default_corpus import build_default_corpus, default_vocab_path
from tinybert_core.data.masking import document_pairs, mask_tokens
from tinybert_core.text.tokenization import BertTokenizer

DEFAULT_SHUFFLE_BUFFER_TOKENS = 1 << 24  # ids held in memory at once (64 MB)
IGNORE_INDEX = -100  # HF's label for positions that are not predicted

# SeedSequence pads short entropy with zeros ([1, 2] and [1, 2, 0] collide), so every key has
# the same length: (seed, stream, epoch, window, index).
_EPOCH_STREAM, _WINDOW_STREAM, _MASK_STREAM = 0, 1, 2


def _rng(seed: int, stream: int, epoch: int = 0, window: int = 0, index: int = 0
         ) -> np.random.Generator:
    return np.random.default_rng([seed, stream, epoch, window, index])


# ----- batches -----

class PretrainingBatch(NamedTuple):
    """One padded batch for ``MobileBertForPreTraining`` (HF and Google field names)."""

    input_ids: np.ndarray  # (B, T) int64
    token_type_ids: np.ndarray  # (B, T) int64: 0 for [CLS] A [SEP] and padding, 1 for B [SEP]
    attention_mask: np.ndarray  # (B, T) int64: 1 for tokens, 0 for padding
    masked_lm_positions: np.ndarray  # (B, P) int64, P = max_predictions_per_seq
    masked_lm_ids: np.ndarray  # (B, P) int64: original ids at the positions
    masked_lm_weights: np.ndarray  # (B, P) float32: 1 for predictions, 0 for padded slots
    next_sentence_labels: np.ndarray  # (B,) int64: 0 = B follows A, 1 = B is random

    def masked_lm_labels(self) -> np.ndarray:
        """(B, P) labels for the logits gathered at `masked_lm_positions`: the original ids,
        -100 (HF's "not predicted") on padded prediction slots."""
        return np.where(self.masked_lm_weights > 0, self.masked_lm_ids, IGNORE_INDEX)


class PretrainingDataset:
    """BERT segment pairs with dynamic masking over a ``TokenizedCorpus``.

    Each epoch permutes the shards and groups them into windows of about
    ``shuffle_buffer_tokens`` ids; a window is the unit held in memory, shuffled and cut into
    pairs. A corpus that fits in one window is shuffled globally, as BERT's is. Iterate with
    ``batches(...)``.
    """

    def __init__(self, corpus: TokenizedCorpus, tokenizer: BertTokenizer, *,
                 max_seq_length: int = 128, short_seq_prob: float = 0.1,
                 masked_lm_prob: float = 0.15, max_predictions_per_seq: int = 20,
                 whole_word_mask: bool = False, seed: int = 0,
                 shuffle_buffer_tokens: int = DEFAULT_SHUFFLE_BUFFER_TOKENS) -> None:
        for name, value, least in (("max_seq_length", max_seq_length, 5),
                                   ("max_predictions_per_seq", max_predictions_per_seq, 1),
                                   ("seed", seed, 0),
                                   ("shuffle_buffer_tokens", shuffle_buffer_tokens, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                    or value < least:
                raise ValueError(f"PretrainingDataset: {name} must be an int >= {least}, "
                                 f"got {value!r}")
        for name, value in (("short_seq_prob", short_seq_prob), ("masked_lm_prob", masked_lm_prob)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"PretrainingDataset: {name} must be in [0, 1], got {value!r}")
        if corpus.num_documents < 2:
            raise ValueError(
                f"PretrainingDataset: corpus {[str(p) for p in corpus.files]} is too small to "
                f"make next-sentence pairs: it has {corpus.num_documents} document(s) "
                f"({corpus.num_segments} non-empty line(s)); at least 2 documents separated by "
                f"a blank line are needed")
        self.corpus, self.tokenizer = corpus, tokenizer
        self.max_seq_length, self.short_seq_prob = int(max_seq_length), float(short_seq_prob)
        self.masked_lm_prob = float(masked_lm_prob)
        self.max_predictions_per_seq = int(max_predictions_per_seq)
        self.whole_word_mask, self.seed = bool(whole_word_mask), int(seed)
        self.shuffle_buffer_tokens = int(shuffle_buffer_tokens)
        self.cls_id, self.sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
        self.pad_id, self.mask_id = tokenizer.pad_token_id, tokenizer.mask_token_id
        self.special_ids = np.array([self.cls_id, self.sep_id, self.pad_id, self.mask_id])
        vocab = tokenizer.ids_to_tokens
        self.replacement_ids = np.setdiff1d(np.arange(len(vocab)),
                                            np.array(tokenizer.all_special_ids))
        self.continuation = (np.array([t.startswith("##") for t in vocab])
                             if self.whole_word_mask else None)
        self._windows_cache: tuple[int, list[list[int]]] | None = None

    @classmethod
    def from_files(cls, paths: PathLike | Iterable[PathLike], tokenizer: BertTokenizer, *,
                   cache_dir: PathLike | None = None, shard_tokens: int = DEFAULT_SHARD_TOKENS,
                   **kwargs: Any) -> PretrainingDataset:
        """``tokenize_corpus(paths, tokenizer, cache_dir, shard_tokens)`` wrapped in a dataset."""
        corpus = tokenize_corpus(paths, tokenizer, cache_dir=cache_dir, shard_tokens=shard_tokens)
        return cls(corpus, tokenizer, **kwargs)

    def options(self) -> dict[str, Any]:
        """The options that shape the stream, by name (what a resumed run must repeat)."""
        return {"corpus": [str(p) for p in self.corpus.files],
                "max_seq_length": self.max_seq_length, "short_seq_prob": self.short_seq_prob,
                "masked_lm_prob": self.masked_lm_prob,
                "max_predictions_per_seq": self.max_predictions_per_seq,
                "whole_word_mask": self.whole_word_mask, "seed": self.seed,
                "shuffle_buffer_tokens": self.shuffle_buffer_tokens}

    def fingerprint(self) -> str:
        """What a saved iterator state must match: corpus and every option that shapes the
        stream."""
        parts = (self.corpus.key, self.max_seq_length, self.short_seq_prob, self.masked_lm_prob,
                 self.max_predictions_per_seq, self.whole_word_mask, self.seed,
                 self.shuffle_buffer_tokens)
        return hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()[:16]

    def windows(self, epoch: int) -> list[list[int]]:
        """The shard indices of each window of ``epoch``, in reading order."""
        if self._windows_cache is not None and self._windows_cache[0] == epoch:
            return self._windows_cache[1]
        order = _rng(self.seed, _EPOCH_STREAM, epoch).permutation(self.corpus.num_shards)
        sizes = self.corpus.shard_sizes()
        out: list[list[int]] = [[]]
        held = 0
        for s in order.tolist():
            if out[-1] and held + sizes[s] > self.shuffle_buffer_tokens:
                out.append([])
                held = 0
            out[-1].append(s)
            held += sizes[s]
        self._windows_cache = (epoch, out)
        return out

    def window_pairs(self, epoch: int, window: int) -> tuple[np.ndarray, np.ndarray]:
        """The tokens of a window and its shuffled pairs: rows ``(a0, a1, b0, b1, label)``
        of half-open ranges into the tokens."""
        data = concat_shards([self.corpus.shard(s) for s in self.windows(epoch)[window]])
        rng = _rng(self.seed, _WINDOW_STREAM, epoch, window)
        seg, doc = data.segment_offsets.tolist(), data.document_offsets.tolist()
        pairs: list[tuple[int, int, int, int, int]] = []
        for d in rng.permutation(len(doc) - 1).tolist():
            document_pairs(d, seg, doc, rng, pairs, max_num_tokens=self.max_seq_length - 3,
                           short_seq_prob=self.short_seq_prob)
        table = np.array(pairs, dtype=np.int64).reshape(-1, 5)
        return data.tokens, table[rng.permutation(len(table))]

    def encode_pair(self, tokens: np.ndarray, row: np.ndarray, epoch: int, window: int,
                    index: int) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, int]:
        """Assemble and mask one pair: ``(input_ids, len_a, positions, labels, nsp_label)``."""
        a0, a1, b0, b1, label = row.tolist()
        ids = np.concatenate([[self.cls_id], tokens[a0:a1], [self.sep_id], tokens[b0:b1],
                              [self.sep_id]]).astype(np.int64)
        masked = mask_tokens(ids, _rng(self.seed, _MASK_STREAM, epoch, window, index),
                             special_ids=self.special_ids, mask_id=self.mask_id,
                             replacement_ids=self.replacement_ids,
                             masked_lm_prob=self.masked_lm_prob,
                             max_predictions=self.max_predictions_per_seq,
                             continuation=self.continuation)
        return masked.input_ids, a1 - a0, masked.positions, masked.labels, label

    def batches(self, batch_size: int, *, epochs: int | None = None, drop_last: bool = False,
                pad_to_multiple_of: int | None = None, state: dict[str, Any] | None = None,
                shard: tuple[int, int] = (0, 1)) -> PretrainingBatches:
        """An iterator of ``PretrainingBatch``: endless when ``epochs`` is None; else it stops
        after ``epochs`` passes (the last batch short unless ``drop_last``). ``state`` resumes
        from ``PretrainingBatches.state()``; ``shard=(rank, count)`` yields only this
        process's slice of each global batch (module docstring)."""
        it = PretrainingBatches(self, batch_size, epochs=epochs, drop_last=drop_last,
                                pad_to_multiple_of=pad_to_multiple_of, shard=shard)
        if state is not None:
            it.load_state(state)
        return it


def padded_width(lengths: Sequence[int], max_seq_length: int,
                 pad_to_multiple_of: int | None = None) -> int:
    """The width a batch of sequences of ``lengths`` is padded to: the longest, rounded up to
    ``pad_to_multiple_of`` but never past ``max_seq_length``."""
    width = max(lengths)
    if pad_to_multiple_of:
        rounded_up = -(-width // pad_to_multiple_of) * pad_to_multiple_of
        width = max(width, min(max_seq_length, rounded_up))
    return width


def collate(rows: Sequence[tuple[np.ndarray, int, np.ndarray, np.ndarray, int]], *,
            pad_id: int, max_predictions: int, max_seq_length: int,
            pad_to_multiple_of: int | None = None, width: int | None = None) -> PretrainingBatch:
    """Stack ``encode_pair`` rows padded to ``width`` (default: ``padded_width`` of the rows;
    a data-parallel shard passes its global batch's)."""
    if width is None:
        width = padded_width([len(r[0]) for r in rows], max_seq_length, pad_to_multiple_of)
    B, P = len(rows), max_predictions
    input_ids = np.full((B, width), pad_id, dtype=np.int64)  # (B, T)
    token_type_ids = np.zeros((B, width), dtype=np.int64)
    attention_mask = np.zeros((B, width), dtype=np.int64)
    positions = np.zeros((B, P), dtype=np.int64)  # (B, P)
    ids = np.zeros((B, P), dtype=np.int64)
    weights = np.zeros((B, P), dtype=np.float32)
    nsp = np.zeros(B, dtype=np.int64)
    for i, (seq, len_a, pos, lab, label) in enumerate(rows):
        n, k = len(seq), len(pos)
        input_ids[i, :n] = seq
        token_type_ids[i, len_a + 2:n] = 1
        attention_mask[i, :n] = 1
        positions[i, :k], ids[i, :k], weights[i, :k] = pos, lab, 1.0
        nsp[i] = label
    return PretrainingBatch(input_ids, token_type_ids, attention_mask, positions, ids, weights,
                            nsp)


class PretrainingBatches:
    """Iterator over a dataset's batches with a resumable position.

    ``state()`` returns JSON-able ints: the epoch, window and offset of the next pair, and the
    batch count. There is no generator state to carry: every draw comes from a generator seeded
    by its position. ``load_state`` (or ``from_state``) puts a fresh iterator at that position.
    ``shard=(rank, count)``: ``batch_size`` is the global batch, of which this iterator yields
    rows ``rank * b`` to ``(rank + 1) * b``, ``b = batch_size / count``; a short last batch is
    split as evenly as it goes, and one with fewer pairs than shards ends the iteration.
    """

    STATE_VERSION = 1

    def __init__(self, dataset: PretrainingDataset, batch_size: int, *,
                 epochs: int | None = None, drop_last: bool = False,
                 pad_to_multiple_of: int | None = None, shard: tuple[int, int] = (0, 1)) -> None:
        for name, value, optional in (("batch_size", batch_size, False), ("epochs", epochs, True),
                                      ("pad_to_multiple_of", pad_to_multiple_of, True)):
            if optional and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"PretrainingBatches: {name} must be an int >= 1"
                                 f"{' or None' if optional else ''}, got {value!r}")
        rank, count = shard
        if not (isinstance(count, int) and isinstance(rank, int) and 0 <= rank < count):
            raise ValueError(f"PretrainingBatches: shard must be (rank, count) with "
                             f"0 <= rank < count, got {shard!r}")
        if batch_size % count:
            raise ValueError(f"PretrainingBatches: batch_size {batch_size} does not split evenly "
                             f"over {count} processes; use a multiple of {count}")
        self.shard = (rank, count)
        self.dataset, self.batch_size, self.epochs = dataset, batch_size, epochs
        self.drop_last, self.pad_to_multiple_of = drop_last, pad_to_multiple_of
        self.epoch = self.window = self.offset = self.batches_done = 0
        self._current: tuple[int, int, np.ndarray, np.ndarray] | None = None

    @classmethod
    def from_state(cls, dataset: PretrainingDataset, state: dict[str, Any], batch_size: int,
                   **kwargs: Any) -> PretrainingBatches:
        it = cls(dataset, batch_size, **kwargs)
        it.load_state(state)
        return it

    def state(self) -> dict[str, Any]:
        return {"version": self.STATE_VERSION, "fingerprint": self.dataset.fingerprint(),
                "options": self.dataset.options(), "epoch": self.epoch, "window": self.window,
                "offset": self.offset, "batches": self.batches_done}

    def load_state(self, state: dict[str, Any]) -> None:
        try:
            version, fingerprint = state["version"], state["fingerprint"]
            pos = [int(state[k]) for k in ("epoch", "window", "offset", "batches")]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"PretrainingBatches.load_state: not a data-iterator state: "
                             f"{state!r}") from e
        if version != self.STATE_VERSION:
            raise ValueError(f"PretrainingBatches.load_state: state version {version!r}, "
                             f"expected {self.STATE_VERSION}")
        if fingerprint != self.dataset.fingerprint():
            raise _mismatch(state.get("options"), self.dataset.options())
        if min(pos) < 0:
            raise ValueError(f"PretrainingBatches.load_state: negative position in {state!r}")
        self.epoch, self.window, self.offset, self.batches_done = pos
        self._current = None

    def __iter__(self) -> PretrainingBatches:
        return self

    def _pairs(self) -> tuple[np.ndarray, np.ndarray]:
        cur = self._current
        if cur is None or cur[:2] != (self.epoch, self.window):
            tokens, table = self.dataset.window_pairs(self.epoch, self.window)
            cur = self._current = (self.epoch, self.window, tokens, table)
        return cur[2], cur[3]

    def __next__(self) -> PretrainingBatch:
        picks = []   # the global batch's pairs: (tokens, row, epoch, window, index)
        while len(picks) < self.batch_size:
            if self.epochs is not None and self.epoch >= self.epochs:
                break
            tokens, table = self._pairs()
            take = min(self.batch_size - len(picks), len(table) - self.offset)
            for k in range(self.offset, self.offset + take):
                picks.append((tokens, table[k], self.epoch, self.window, k))
            self.offset += take
            if self.offset >= len(table):
                self.offset, self.window = 0, self.window + 1
                if self.window >= len(self.dataset.windows(self.epoch)):
                    self.window, self.epoch = 0, self.epoch + 1
        rank, count = self.shard
        if len(picks) < count or (self.drop_last and len(picks) < self.batch_size):
            raise StopIteration
        self.batches_done += 1
        ds = self.dataset
        # [CLS] A [SEP] B [SEP]: the global width comes from the pair table, unencoded.
        width = padded_width([3 + int(r[1] - r[0] + r[3] - r[2]) for _, r, *_ in picks],
                             ds.max_seq_length, self.pad_to_multiple_of)
        per, extra = divmod(len(picks), count)
        lo = rank * per + min(rank, extra)
        hi = lo + per + (rank < extra)
        rows = [ds.encode_pair(*pick) for pick in picks[lo:hi]]
        return collate(rows, pad_id=ds.pad_id, max_predictions=ds.max_predictions_per_seq,
                       max_seq_length=ds.max_seq_length, width=width)


def _mismatch(saved: Any, current: dict[str, Any]) -> ValueError:
    """The error for a data state from another stream, naming the first option that differs
    (`.field` holds its name, for a caller to translate into its own option's name)."""
    if isinstance(saved, dict):
        for name, value in current.items():
            if name in saved and saved[name] != value:
                e = ValueError(f"{name} differs: the saved data stream used {saved[name]!r}, "
                               f"this one {value!r}")
                e.field = name  # type: ignore[attr-defined]
                return e
        e = ValueError("the corpus or the vocabulary changed since the state was saved (the "
                       "files' sizes or modification times, or the tokens)")
        e.field = "corpus"  # type: ignore[attr-defined]
        return e
    return ValueError("PretrainingBatches.load_state: the state was saved for another corpus "
                      "or data options")


# ----- entry points -----

def _tokenizer_for(vocab_file: PathLike | None, tokenizer: BertTokenizer | None,
                   cache_dir: PathLike | None) -> BertTokenizer:
    if tokenizer is not None:
        return tokenizer
    if vocab_file is None:
        vocab_file = default_vocab_path(cache_dir=cache_dir)
    return BertTokenizer(vocab_file)


def make_pretraining_batches(paths: PathLike | Iterable[PathLike] | None = None, *,
                             vocab_file: PathLike | None = None,
                             tokenizer: BertTokenizer | None = None, batch_size: int = 8,
                             max_seq_length: int = 128, max_predictions_per_seq: int = 20,
                             masked_lm_prob: float = 0.15, short_seq_prob: float = 0.1,
                             whole_word_mask: bool = False, seed: int = 0,
                             epochs: int | None = None, pad_to_multiple_of: int | None = None,
                             drop_last: bool = False, cache_dir: PathLike | None = None,
                             shuffle_buffer_tokens: int = DEFAULT_SHUFFLE_BUFFER_TOKENS,
                             state: dict[str, Any] | None = None,
                             shard: tuple[int, int] = (0, 1)) -> PretrainingBatches:
    """Masked MLM + NSP training batches from text files, ready to iterate.

    ``paths`` None uses the training split of the embedded default corpus; ``vocab_file`` and
    ``tokenizer`` None use (and on first use train) the default WordPiece vocabulary. The
    corpus is checked (missing file, empty corpus) before anything else happens.
    ``shard=(rank, count)``: this process's slice of each global batch of ``batch_size``.
    """
    if paths is None:
        paths = build_default_corpus(cache_dir=cache_dir).train
    files = check_corpus(paths)
    tok = _tokenizer_for(vocab_file, tokenizer, cache_dir)
    dataset = PretrainingDataset.from_files(
        files, tok, cache_dir=cache_dir, max_seq_length=max_seq_length,
        short_seq_prob=short_seq_prob, masked_lm_prob=masked_lm_prob,
        max_predictions_per_seq=max_predictions_per_seq, whole_word_mask=whole_word_mask,
        seed=seed, shuffle_buffer_tokens=shuffle_buffer_tokens)
    return dataset.batches(batch_size, epochs=epochs, drop_last=drop_last,
                           pad_to_multiple_of=pad_to_multiple_of, state=state, shard=shard)


def make_eval_batches(paths: PathLike | Iterable[PathLike] | None = None, *,
                      vocab_file: PathLike | None = None, tokenizer: BertTokenizer | None = None,
                      batch_size: int = 8, max_seq_length: int = 128,
                      max_predictions_per_seq: int = 20, masked_lm_prob: float = 0.15,
                      whole_word_mask: bool = False, max_batches: int | None = None,
                      seed: int = 12345, cache_dir: PathLike | None = None
                      ) -> list[PretrainingBatch]:
    """A fixed list of held-out masked batches for ``evaluate-mlm``: one pass over ``paths``
    (None: the default corpus's validation split), the same pairs and masks on every call, with
    no short sequences; at most ``max_batches``. An example's mask does not depend on
    ``batch_size``."""
    if paths is None:
        paths = build_default_corpus(cache_dir=cache_dir).valid
    files = check_corpus(paths)
    tok = _tokenizer_for(vocab_file, tokenizer, cache_dir)
    dataset = PretrainingDataset.from_files(
        files, tok, cache_dir=cache_dir, max_seq_length=max_seq_length, short_seq_prob=0.0,
        masked_lm_prob=masked_lm_prob, max_predictions_per_seq=max_predictions_per_seq,
        whole_word_mask=whole_word_mask, seed=seed)
    out = []
    for batch in dataset.batches(batch_size, epochs=1):
        if max_batches is not None and len(out) >= max_batches:
            break
        out.append(batch)
    return out

