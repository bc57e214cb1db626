"""Held-out masked-LM evaluation: the loss and top-1 accuracy at the masked positions.

What `tinybert evaluate-mlm` reports and what the training loop logs every `eval_every` steps.
The loss is averaged over real predictions only (padded prediction slots, weight 0, count
nowhere), so batches of different fill combine exactly.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from autograd import no_grad
from tinybert_core.models.heads import IGNORE_INDEX, masked_lm_loss


def evaluate_mlm(model: Any, batches: list[Any]) -> dict[str, float]:
    """Held-out masked-LM loss (mean over real predictions) and top-1 accuracy.

    `batches` are `PretrainingBatch`es (`make_eval_batches`); the model predicts at their
    `masked_lm_positions` and the loss is `masked_lm_loss`, the one the training computes.
    """
    was_training = model.training
    model.eval()
    total_loss = total_correct = total = 0.0
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
                total_correct += float((predicted == labels)[real].sum())
                total += float(real.sum())
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("evaluate_mlm: the evaluation batches contain no masked tokens")
    return {"mlm_loss": total_loss / total, "mlm_accuracy": total_correct / total,
            "predictions": int(total)}
