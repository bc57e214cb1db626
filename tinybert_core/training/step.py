"""One optimizer step: accumulate -> [reduce across workers] -> clip -> update.

`optimizer_step` is the only place tinybert turns losses into a weight update. Pre-training and
distillation (`loop.py`) call it once per global step; fine-tuning and data-parallel (MPI)
training call the same function, the latter passing `reduce_gradients`, the hook where the
gradients of every worker are averaged after accumulation and before clipping, so that every
worker clips the same global norm and applies the same update.

A non-finite loss stops the step before its backward, and a non-finite gradient norm before the
update, so a diverged step never touches the weights; the error names the loss terms that
are not finite and the first parameter whose gradient is not. An update that itself makes a
weight non-finite (a learning rate far too large) stops the run right after it, so no
checkpoint ever holds NaN or inf.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from autograd import nn, no_grad, optim
from autograd.tensor import Tensor

LossFn = Callable[[Any], dict[str, Tensor]]   # batch -> loss terms, the total under "loss"


class TrainingDiverged(RuntimeError):
    """The loss, a gradient or a weight stopped being finite. `batch` is the micro-batch whose
    loss was not finite (None otherwise), for the caller to locate where it went wrong."""

    def __init__(self, message: str, batch: Any = None) -> None:
        super().__init__(message)
        self.batch = batch


class StepResult(NamedTuple):
    losses: dict[str, float]      # every loss term, averaged over the micro-batches
    grad_norm: float              # the global gradient norm before clipping


def optimizer_step(model: nn.Module, optimizer: optim.Optimizer, micro_batches: Sequence[Any],
                   loss_fn: LossFn, max_grad_norm: float,
                   reduce_gradients: Callable[[nn.Module], None] | None = None) -> StepResult:
    """One update of `model` from the mean loss over `micro_batches`.

    1. accumulate: for each micro-batch, `loss_fn(batch)["loss"] / k` is back-propagated, so
       the gradients add up to those of the mean loss over the k micro-batches;
    2. `reduce_gradients(model)`, if given: e.g. an all-reduce averaging every worker's
       gradients (data parallelism); None for a single process;
    3. clip: the global gradient norm is scaled down to `max_grad_norm` (0 or less: no clip);
    4. update: `optimizer.step()`, then the gradients are cleared.

    Raises TrainingDiverged before any weight changes when a loss term or the gradient norm
    is not finite.
    """
    k = len(micro_batches)
    if k == 0:
        raise ValueError("optimizer_step: no micro-batches")
    sums: dict[str, float] = {}
    for batch in micro_batches:
        losses = loss_fn(batch)
        values = {name: v.item() for name, v in losses.items() if v is not None}
        if not math.isfinite(values["loss"]):
            raise diverged(model, values, batch)
        (losses["loss"] * (1.0 / k)).backward()
        for name, v in values.items():
            sums[name] = sums.get(name, 0.0) + v / k
    if reduce_gradients is not None:
        reduce_gradients(model)
    grad_norm = optim.clip_grad_norm(model, max_grad_norm)
    if not math.isfinite(grad_norm):
        raise diverged(model, {})
    optimizer.step()
    optimizer.zero_grad()
    bad = first_non_finite_parameter(model)
    if bad is not None:                 # e.g. a learning rate of 1e39: finite input, inf out
        raise TrainingDiverged(f"the update made {bad} non-finite (gradient norm "
                               f"{grad_norm:.3g}, learning rate {optimizer.current_lr():.3g})")
    return StepResult(sums, grad_norm)


def first_bad_gradient(model: nn.Module) -> str | None:
    """The name of the first parameter whose gradient holds inf or nan, if any."""
    for name, p in model.named_parameters():
        if p.grad is not None and not np.isfinite(p.backend.to_numpy(p.grad)).all():
            return name
    return None


def first_non_finite_parameter(model: nn.Module) -> str | None:
    """The name of the first parameter whose value holds inf or nan, if any."""
    for name, p in model.named_parameters():
        if not bool(p.backend.xp.isfinite(p.data).all()):
            return name
    return None


def diverged(model: nn.Module, values: dict[str, float], batch: Any = None) -> TrainingDiverged:
    """The error for a step whose loss `values` or gradients are not finite."""
    bad_terms = [k for k, v in values.items() if not math.isfinite(v)]
    grad = first_bad_gradient(model)
    where = f"; first non-finite gradient: {grad}" if grad else ""
    terms = ", ".join(bad_terms) if bad_terms else "none (the gradients diverged)"
    return TrainingDiverged(f"non-finite loss terms: {terms}{where}", batch)


def locate_non_finite(student: Any, teacher: Any, batch: Any) -> str:
    """Where a forward pass on `batch` first produces NaN or inf, as "; first non-finite
    output: <module>" (the embeddings, an encoder layer, a head), student first, then teacher.
    Runs in eval mode without a graph, so no dropout generator advances. Only a diagnosis:
    on a batch it cannot replay it says nothing rather than hide the divergence itself."""
    try:
        return _locate_non_finite(student, teacher, batch)
    except Exception:                     # noqa: BLE001 - the caller's message matters more
        return ""


_HEAD_OUTPUTS = (("cls.predictions", "prediction_logits"),
                 ("cls.seq_relationship", "seq_relationship_logits"),
                 ("classifier", "logits"), ("qa_outputs", "start_logits"))


def _locate_non_finite(student: Any, teacher: Any, batch: Any) -> str:
    for who, model in (("student", student), ("teacher", teacher)):
        if model is None:
            continue
        kw = {}
        if getattr(batch, "masked_lm_positions", None) is not None:     # pre-training batches
            kw["masked_positions"] = batch.masked_lm_positions
        was_training = model.training
        model.eval()
        try:
            with no_grad():
                out = model(batch.input_ids, attention_mask=batch.attention_mask,
                            token_type_ids=batch.token_type_ids, output_hidden_states=True,
                            **kw)
        finally:
            model.train(was_training)
        prefix = model.base_model_prefix
        names = [f"{prefix}.embeddings"] + [f"{prefix}.encoder.layer.{i}"
                                             for i in range(len(out.hidden_states) - 1)]
        named = list(zip(names, out.hidden_states)) + [
            (name, getattr(out, field)) for name, field in _HEAD_OUTPUTS
            if getattr(out, field, None) is not None]
        for name, value in named:
            if not np.isfinite(value.numpy()).all():
                bad = first_non_finite_parameter(model)
                weight = f" (parameter {bad} holds NaN or inf)" if bad else ""
                return f"; first non-finite output of the {who}: {name}{weight}"
    return ""
