"""Fine-tuning data: which task a name means, examples encoded into model inputs, and the
shuffled, resumable mini-batches the training loop reads.

Task names: the GLUE tasks of `evaluation/glue.py` (the one label table), `squad` (v1.1) and
`squad-v2` (v2.0), and a user's own task, `custom` (classification; labels given, or those of
the training file, sorted) or `custom-regression` (one output, MSE, scored like STS-B).

Batches are padded to their longest row (not to max_seq_length): on a CPU every padded position
costs as much as a real one. `TaskBatches` draws a fresh permutation per epoch from
(seed, epoch), so its state is two ints and a resumed run sees exactly the batches an
uninterrupted one would have.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from tinybert_core.evaluation.glue import GLUE_TASKS, GlueTask, custom_task, get_task

SQUAD_TASKS = {"squad": "1.1", "squad-v1.1": "1.1", "squad_v1": "1.1", "squad1.1": "1.1",
               "squad-v2": "2.0", "squad-v2.0": "2.0", "squad_v2": "2.0", "squad2.0": "2.0"}
CUSTOM, CUSTOM_REGRESSION = "custom", "custom-regression"
TASK_NAMES = (*GLUE_TASKS, "squad", "squad-v2", CUSTOM, CUSTOM_REGRESSION)


@dataclass(frozen=True)
class TaskSpec:
    """What `--task NAME` means: a sentence(-pair) task or SQuAD of a version."""

    name: str
    squad_version: str | None = None     # "1.1" / "2.0" for SQuAD, else None

    @property
    def is_squad(self) -> bool:
        return self.squad_version is not None

    @property
    def model_task(self) -> str:
        """The head it trains (`models/auto.py` task name)."""
        return "question_answering" if self.is_squad else "sequence_classification"

    def glue_task(self, labels: Sequence[str] | None = None) -> GlueTask:
        """The label table and metrics of a sentence(-pair) task; a `custom` task needs its
        `labels` (a GLUE task ignores them: its labels are fixed)."""
        if self.is_squad:
            raise ValueError(f"task {self.name} is extractive QA, not classification")
        if self.name == CUSTOM_REGRESSION:
            return custom_task(CUSTOM_REGRESSION, None)
        if self.name == CUSTOM:
            if labels is None:
                raise ValueError("task custom needs its labels")
            return custom_task(CUSTOM, labels)
        return get_task(self.name)


def resolve_task(name: str) -> TaskSpec:
    """The task called `name` (any case; GLUE's aliases accepted); ValueError listing the
    known tasks otherwise."""
    key = name.strip().lower()
    if key in SQUAD_TASKS:
        version = SQUAD_TASKS[key]
        return TaskSpec("squad" if version == "1.1" else "squad-v2", version)
    if key in (CUSTOM, CUSTOM_REGRESSION):
        return TaskSpec(key)
    try:
        return TaskSpec(get_task(key).name)
    except ValueError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASK_NAMES)}") from None


# ----------------------------------------------------------------------------- batches

class ClassificationBatch(NamedTuple):
    """One padded batch for `*ForSequenceClassification` (HF argument names)."""

    input_ids: np.ndarray           # (B, T) int64
    token_type_ids: np.ndarray      # (B, T) int64
    attention_mask: np.ndarray      # (B, T) int64: 1 token, 0 padding
    labels: np.ndarray | None       # (B,) int64 class ids, or float32 targets (regression)


class QABatch(NamedTuple):
    """One padded batch for `*ForQuestionAnswering`; positions are token indices, 0 = [CLS]."""

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    attention_mask: np.ndarray
    start_positions: np.ndarray | None   # (B,) int64
    end_positions: np.ndarray | None


class EncodedPairs(NamedTuple):
    """Token ids of each example ([CLS] a [SEP] b [SEP], truncated), one row each, unpadded."""

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray]


def encode_pairs(tokenizer: Any, texts_a: Sequence[str], texts_b: Sequence[str | None],
                 max_seq_length: int) -> EncodedPairs:
    """Tokenize sentence(-pair)s, truncating the longer text first to `max_seq_length`
    (HF's "longest_first", Google's `_truncate_seq_pair`)."""
    ids, types = [], []
    for a, b in zip(texts_a, texts_b):
        enc = tokenizer(a, b, truncation=True, max_length=max_seq_length)
        ids.append(np.asarray(enc["input_ids"], np.int32))
        types.append(np.asarray(enc["token_type_ids"], np.int32))
    return EncodedPairs(ids, types)


def pad_rows(rows: Sequence[np.ndarray], pad: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, T) int64 rows padded with `pad` to the longest, and the 0/1 attention mask."""
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), pad, np.int64)
    mask = np.zeros((len(rows), width), np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
        mask[i, :len(r)] = 1
    return out, mask


def classification_collate(encoded: EncodedPairs, labels: np.ndarray | None,
                           pad_id: int) -> Callable[[np.ndarray], ClassificationBatch]:
    """index array -> the ClassificationBatch of those examples."""
    def make(idx: np.ndarray) -> ClassificationBatch:
        ids, mask = pad_rows([encoded.input_ids[i] for i in idx], pad_id)
        types, _ = pad_rows([encoded.token_type_ids[i] for i in idx], 0)
        return ClassificationBatch(ids, types, mask, None if labels is None else labels[idx])
    return make


def qa_collate(input_ids: Sequence[np.ndarray], token_type_ids: Sequence[np.ndarray],
               start_positions: np.ndarray | None, end_positions: np.ndarray | None,
               pad_id: int) -> Callable[[np.ndarray], QABatch]:
    """index array -> the QABatch of those windows (positions only when training)."""
    def make(idx: np.ndarray) -> QABatch:
        ids, mask = pad_rows([input_ids[i] for i in idx], pad_id)
        types, _ = pad_rows([token_type_ids[i] for i in idx], 0)
        if start_positions is None:
            return QABatch(ids, types, mask, None, None)
        return QABatch(ids, types, mask, start_positions[idx], end_positions[idx])
    return make


class TaskBatches:
    """Endless shuffled mini-batches over `n` examples, `batch_size` at a time; an epoch is
    ceil(n / batch_size) batches (the last one smaller), each epoch a new permutation drawn
    from (seed, epoch). `state()` / `load_state()` are what checkpoints save.

    `shard=(rank, processes)`: this process's contiguous part of every global batch (as even
    as it goes; the loss counts examples globally, so uneven parts are exact). Every process
    draws the same permutation, so the global batches, and the state, are one process's."""

    def __init__(self, make_batch: Callable[[np.ndarray], Any], n: int, batch_size: int,
                 seed: int = 0, shard: tuple[int, int] = (0, 1)) -> None:
        if n < 1:
            raise ValueError("TaskBatches: no examples to train on")
        if batch_size < 1:
            raise ValueError(f"TaskBatches: batch_size must be >= 1, got {batch_size}")
        rank, processes = shard
        smallest = min(n, batch_size) if n % batch_size == 0 else n % batch_size
        if processes > 1 and smallest < processes:
            raise ValueError(f"batch_size {batch_size} over {n} training examples leaves a "
                             f"batch of {smallest} example(s) per epoch, fewer than the "
                             f"{processes} processes: each needs at least one; choose "
                             f"batch_size and the example count so that every batch holds "
                             f"at least {processes}")
        self.make_batch, self.n, self.batch_size, self.seed = make_batch, n, batch_size, seed
        self.rank, self.processes = rank, processes
        self.steps_per_epoch = -(-n // batch_size)
        self.epoch, self.step_in_epoch = 0, 0
        self._order: np.ndarray | None = None

    def order(self) -> np.ndarray:
        if self._order is None:
            self._order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        return self._order

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        s = self.step_in_epoch * self.batch_size
        rows = self.order()[s:s + self.batch_size]
        if self.processes > 1:
            rows = np.array_split(rows, self.processes)[self.rank]
        batch = self.make_batch(rows)
        self.step_in_epoch += 1
        if self.step_in_epoch == self.steps_per_epoch:
            self.epoch, self.step_in_epoch, self._order = self.epoch + 1, 0, None
        return batch

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "n": self.n,
                "batch_size": self.batch_size, "seed": self.seed}

    def load_state(self, state: dict[str, Any]) -> None:
        """Stand at a checkpoint's position; a stream cut differently (another training set
        or subset, batch size or seed) would silently train on other batches: ValueError,
        with `.field` naming what differs (older checkpoints lack these keys)."""
        for name, what in (("n", "training examples"), ("batch_size", "batch_size"),
                           ("seed", "seed")):
            if name in state and int(state[name]) != getattr(self, name):
                e = ValueError(f"{what} differs: the checkpoint's run had {int(state[name])}, "
                               f"this one {getattr(self, name)}")
                e.field = name  # type: ignore[attr-defined]
                raise e
        self.epoch, self.step_in_epoch = int(state["epoch"]), int(state["step_in_epoch"])
        self._order = None


def eval_batches(make_batch: Callable[[np.ndarray], Any], lengths: Sequence[int],
                 batch_size: int) -> Iterator[tuple[np.ndarray, Any]]:
    """(indices, batch) over every example once, shortest first so that each batch pads
    little; scatter the outputs back by `indices`."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        yield idx, make_batch(idx)
