"""Held-out masked-LM evaluation: the loss and top-1 accuracy at the masked positions.

What `tinybert evaluate-mlm` reports and what the training loop logs every `eval_every` steps.
The loss is averaged over real predictions only (padded prediction slots, weight 0, count
nowhere), so batches of different fill combine exactly.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import autograd.functional as F
from autograd import no_grad


def evaluate_mlm(model: Any, batches: list[Any]) -> dict[str, float]:
    """Held-out masked-LM loss (weighted mean over real predictions) and top-1 accuracy."""
    was_training = model.training
    model.eval()
    total_loss = total_correct = total = 0.0
    try:
        with no_grad():
            for b in batches:
                out = model(b.input_ids, attention_mask=b.attention_mask,
                            token_type_ids=b.token_type_ids, masked_positions=b.masked_lm_positions)
                logits = out.prediction_logits                                  # (B, P, V)
                per = F.cross_entropy(logits, b.masked_lm_ids, reduction="none").numpy()
                w = b.masked_lm_weights.astype(np.float64)                       # (B, P)
                total_loss += float((per * w).sum())
                total_correct += float(((logits.numpy().argmax(-1) == b.masked_lm_ids) * w).sum())
                total += float(w.sum())
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("evaluate_mlm: the evaluation batches contain no masked tokens")
    return {"mlm_loss": total_loss / total, "mlm_accuracy": total_correct / total,
            "predictions": int(total)}
