"""Downstream evaluation: a fine-tuned model run over a task's examples, and its scores next to
the task's baseline.

- `classifier_logits` / `span_logits`: the model in eval mode, no gradients, over (indices,
  batch) pairs (`data/tasks.py: eval_batches`), outputs put back in example order.
- `score_classification`: the GLUE metrics of `glue.py` and the majority-class baseline on the
  same examples.
- `score_squad`: post-processing (`squad_postprocess.py`: n-best, null odds) and the official
  v1.1 / v2.0 scores (`squad.py`), with the best-threshold search from the null odds, and the
  all-null baseline (every answer ""; for v2.0 it scores the unanswerable fraction).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from autograd import no_grad
from tinybert_core.evaluation.glue import GlueTask, majority_baseline, predictions_from_logits
from tinybert_core.evaluation.squad import squad_evaluate
from tinybert_core.evaluation.squad_postprocess import (
    SquadFeature,
    SquadPredictions,
    postprocess_qa_predictions,
)

# Span scores at padded positions: far below any real score, so that the top-n start and end
# positions of a window are never spent on padding (finite: post-processing refuses inf).
PAD_SCORE = -1e9


Progress = Callable[[int, int], None]   # (examples just done, examples in all)


def _run(model: Any, batches: Iterable[tuple[np.ndarray, Any]], n: int,
         on_batch: Progress | None, fn: Callable[[Any, Any], None]) -> None:
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for idx, batch in batches:
                fn(idx, batch)
                if on_batch is not None:
                    on_batch(len(idx), n)
    finally:
        model.train(was_training)


def classifier_logits(model: Any, batches: Iterable[tuple[np.ndarray, Any]], n: int,
                      on_batch: Progress | None = None) -> np.ndarray:
    """(n, num_labels) float32 logits of a sequence classifier, in example order."""
    out = np.zeros((n, model.config.num_labels), np.float32)

    def one(idx: np.ndarray, batch: Any) -> None:
        logits = model(batch.input_ids, attention_mask=batch.attention_mask,
                       token_type_ids=batch.token_type_ids).logits
        out[idx] = logits.numpy()
    _run(model, batches, n, on_batch, one)
    return out


def span_logits(model: Any, batches: Iterable[tuple[np.ndarray, Any]], n: int,
                on_batch: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(n, T) start and end logits of a span scorer, T the longest window, `PAD_SCORE` at
    every padded position."""
    rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def one(idx: np.ndarray, batch: Any) -> None:
        out = model(batch.input_ids, attention_mask=batch.attention_mask,
                    token_type_ids=batch.token_type_ids)
        start, end = out.start_logits.numpy(), out.end_logits.numpy()     # (B, T)
        for k, i in enumerate(idx):
            length = int(batch.attention_mask[k].sum())
            rows[int(i)] = (start[k, :length], end[k, :length])
    _run(model, batches, n, on_batch, one)
    width = max(len(s) for s, _ in rows.values())
    start = np.full((n, width), PAD_SCORE, np.float32)
    end = np.full((n, width), PAD_SCORE, np.float32)
    for i, (s, e) in rows.items():
        start[i, :len(s)], end[i, :len(e)] = s, e
    return start, end


def score_classification(task: GlueTask, logits: np.ndarray, labels: np.ndarray,
                         train_labels: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
    """(metrics, baseline): the task's metrics of the argmax (or regression) predictions, and
    those of the majority class (training mean) fit on `train_labels`, on the same labels."""
    metrics = task.compute_metrics(predictions_from_logits(task, logits), labels)
    return metrics, majority_baseline(task, train_labels, labels)


def squad_predictions(contexts: Mapping[str, str], features: Sequence[SquadFeature],
                      start: np.ndarray, end: np.ndarray, version: str,
                      n_best_size: int = 20, max_answer_length: int = 30,
                      null_score_diff_threshold: float = 0.0) -> SquadPredictions:
    """Answers, n-best lists and (v2.0) null odds from the windows' span logits."""
    return postprocess_qa_predictions(
        contexts, features, start, end, version_2_with_negative=version == "2.0",
        n_best_size=n_best_size, max_answer_length=max_answer_length,
        null_score_diff_threshold=null_score_diff_threshold)


def score_squad(gold: Mapping[str, list[str]], result: SquadPredictions,
                version: str) -> tuple[dict[str, float], dict[str, float]]:
    """(metrics, baseline): the official scores of `result` (v2.0 with the best-threshold
    search over its null odds) and those of answering "" to every question."""
    metrics = squad_evaluate(gold, result.predictions, version=version,
                             na_probs=result.null_odds)
    baseline = squad_evaluate(gold, {qid: "" for qid in gold}, version=version)
    return metrics, baseline
