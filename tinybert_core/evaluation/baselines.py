"""The baselines every learning claim is read against, computed on the same examples.

- Masked LM: the **unigram baseline**, a model that ignores its input and predicts, at every
  masked position, the token frequencies of the *training* corpus. Its loss is the mean negative
  log-probability of the true tokens under those frequencies, add-one smoothed over the whole
  vocabulary so that a token never seen in training costs a finite amount:

      p(t) = (count(t) + 1) / (N + V)        N: training tokens, V: vocabulary size

  and its accuracy is that of always predicting the most frequent training token (the lowest
  id on a tie). A pre-trained model that does not beat both numbers has learned nothing a
  frequency table does not know; a model that predicts one token everywhere has collapsed onto
  (roughly) this baseline's argmax.
- Classification: the **majority class** of the training labels, scored on the evaluation
  labels.

The training counts come from the corpus's token cache (`data/corpus.py`) and are cached beside
its shards; a trained model directory keeps a copy (`UNIGRAM_FILE`) so that `evaluate-mlm` can
show the baseline of the text the model was trained on.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from autograd.serialization import CheckpointError, load_npz, save_npz

UNIGRAM_FILE = "unigram_counts.npz"


class UnigramBaseline:
    """Token counts of a training corpus, and the scores of predicting their frequencies."""

    def __init__(self, counts: Any) -> None:
        counts = np.asarray(counts)
        if counts.ndim != 1 or counts.size == 0 or not np.issubdtype(counts.dtype, np.integer):
            raise ValueError(f"UnigramBaseline: counts must be a non-empty 1-D integer array, "
                             f"got dtype {counts.dtype} and shape {counts.shape}")
        if counts.min() < 0:
            raise ValueError("UnigramBaseline: counts must not be negative")
        self.counts = counts.astype(np.int64)

    @property
    def vocab_size(self) -> int:
        return len(self.counts)

    @property
    def log_probs(self) -> np.ndarray:
        """(V,) float64: log((count + 1) / (N + V)), add-one smoothing over the vocabulary."""
        return np.log(self.counts + 1.0) - np.log(float(self.counts.sum()) + self.vocab_size)

    @property
    def most_frequent(self) -> int:
        """The id always predicted for the accuracy: the most frequent, lowest id on a tie."""
        return int(np.argmax(self.counts))

    def score(self, labels: Any) -> dict[str, float]:
        """Loss and accuracy at `labels`, the true ids of the masked positions (1-D, no
        padding): {"unigram_loss", "unigram_accuracy"}."""
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.size == 0:
            raise ValueError(f"UnigramBaseline.score: labels must be a non-empty 1-D array, "
                             f"got shape {labels.shape}")
        if labels.min() < 0 or labels.max() >= self.vocab_size:
            raise ValueError(f"UnigramBaseline.score: label ids must lie in [0, "
                             f"{self.vocab_size}), got {labels.min()}..{labels.max()}")
        return {"unigram_loss": float(-self.log_probs[labels].mean()),
                "unigram_accuracy": float(np.mean(labels == self.most_frequent))}

    def save(self, path: str | Path) -> None:
        save_npz(Path(path), {"counts": self.counts})

    @classmethod
    def load(cls, path: str | Path) -> UnigramBaseline:
        """Read counts written by `save` (no pickle); a bad file is a ValueError naming it."""
        try:
            return cls(load_npz(Path(path))["counts"])
        except (OSError, CheckpointError, KeyError, ValueError) as e:
            raise ValueError(f"unigram counts {str(path)!r} are unreadable "
                             f"({type(e).__name__}: {e})") from e


def unigram_baseline(corpus: Any) -> UnigramBaseline:
    """The unigram baseline of a `TokenizedCorpus`: its token counts, computed once from the
    shards and cached as `UNIGRAM_FILE` in the corpus's cache directory (the directory's key
    already names the files and the vocabulary). A cached file that does not match the corpus
    (size, total) is recomputed."""
    vocab_size = len(corpus.tokenizer.vocab)
    path = Path(corpus.directory) / UNIGRAM_FILE
    if path.is_file():
        try:
            cached = UnigramBaseline.load(path)
            if cached.vocab_size == vocab_size and cached.counts.sum() == corpus.num_tokens:
                return cached
        except ValueError:
            pass                                   # corrupt: recompute and overwrite
    counts = np.zeros(vocab_size, np.int64)
    for i in range(corpus.num_shards):
        counts += np.bincount(corpus.shard(i).tokens, minlength=vocab_size)
    baseline = UnigramBaseline(counts)
    baseline.save(path)
    return baseline


def majority_class_baseline(train_labels: Any, eval_labels: Any) -> dict[str, float]:
    """Accuracy on `eval_labels` of always predicting the most frequent of `train_labels`
    (the lowest label on a tie): {"majority_class", "majority_accuracy"}."""
    train, ev = np.asarray(train_labels).ravel(), np.asarray(eval_labels).ravel()
    if train.size == 0 or ev.size == 0:
        raise ValueError("majority_class_baseline: both label arrays must be non-empty")
    values, counts = np.unique(train, return_counts=True)
    majority = values[np.argmax(counts)]
    return {"majority_class": majority.item(), "majority_accuracy": float(np.mean(ev == majority))}
