"""Held-out masked-LM evaluation: the loss and top-1 accuracy at the masked positions, next to
the unigram baseline on the same positions, and a collapse check.

What `tinybert evaluate-mlm` reports and what the training loop logs every `eval_every` steps.
The loss is averaged over real predictions only (padded prediction slots, weight 0, count
nowhere), so batches of different fill combine exactly.

A model that learned something beats the unigram baseline (`baselines.py`) on both loss and
accuracy; one that predicts a single token at every masked position has collapsed (the failure
of issue 9: accuracy equal to the most-frequent-token accuracy at every evaluation). Both are
reported as fields, so a run's log and a summary say it plainly.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from autograd import no_grad
from tinybert_core.evaluation.baselines import UnigramBaseline
from tinybert_core.models.heads import IGNORE_INDEX, masked_lm_loss


def evaluate_mlm(model: Any, batches: list[Any],
                 baseline: UnigramBaseline | None = None) -> dict[str, Any]:
    """Held-out masked-LM loss (mean over real predictions) and top-1 accuracy.

    `batches` are `PretrainingBatch`es (`make_eval_batches`); the model predicts at their
    `masked_lm_positions` and the loss is `masked_lm_loss`, the one the training computes.
    Also returned: `distinct_predictions` (how many different ids the argmax takes),
    `top_prediction` (the id predicted most often) and its share, and `collapsed` (True when
    one id is predicted at every one of two or more positions). With a `baseline`: its
    `unigram_loss` and `unigram_accuracy` on the same labels, its argmax `unigram_top_id`, and
    `beats_unigram`: the model's loss is lower *and* its accuracy higher.
    """
    was_training = model.training
    model.eval()
    total_loss = 0.0
    labels_all, predicted_all = [], []
    try:
        with no_grad():
            for b in batches:
                out = model(b.input_ids, attention_mask=b.attention_mask,
                            token_type_ids=b.token_type_ids, masked_positions=b.masked_lm_positions)
                labels = b.masked_lm_labels()                                   # (B, P)
                per = masked_lm_loss(out.prediction_logits, labels, reduction="none")
                real = labels != IGNORE_INDEX
                total_loss += float(per.numpy().sum(dtype=np.float64))         # 0 where ignored
                predicted = out.prediction_logits.numpy().argmax(-1)            # (B, P)
                labels_all.append(labels[real])
                predicted_all.append(predicted[real])
    finally:
        model.train(was_training)
    labels = np.concatenate(labels_all) if labels_all else np.zeros(0, np.int64)
    predicted = np.concatenate(predicted_all) if predicted_all else np.zeros(0, np.int64)
    if labels.size == 0:
        raise ValueError("evaluate_mlm: the evaluation batches contain no masked tokens")
    ids, counts = np.unique(predicted, return_counts=True)
    result: dict[str, Any] = {
        "mlm_loss": total_loss / labels.size,
        "mlm_accuracy": float(np.mean(predicted == labels)),
        "predictions": int(labels.size),
        "distinct_predictions": int(ids.size),
        "top_prediction": int(ids[np.argmax(counts)]),
        "top_prediction_share": float(counts.max() / labels.size),
        "collapsed": bool(ids.size == 1 and labels.size > 1),
    }
    if baseline is not None:
        if baseline.vocab_size != model.config.vocab_size:
            raise ValueError(f"evaluate_mlm: the unigram baseline has {baseline.vocab_size} "
                             f"token counts but the model's vocabulary has "
                             f"{model.config.vocab_size} tokens")
        result.update(baseline.score(labels))
        result["unigram_top_id"] = baseline.most_frequent
        result["beats_unigram"] = bool(result["mlm_loss"] < result["unigram_loss"]
                                       and result["mlm_accuracy"] > result["unigram_accuracy"])
    return result
