"""Knowledge-transfer losses, with the paper's names (spec section 4).

BERT's own objectives (MLM and NSP, 4.1) are `masked_lm_loss` and `next_sentence_loss` in
`models/heads.py`, the one code path for each, which the models and the losses here share.
- `feature_map_transfer_loss`: the paper's MSE between teacher and student block outputs, or
  Google's variant on parameter-free layer-normalised features (4.2).
- `hidden_distribution_loss`: Google's extra mean / variance terms (4.2), per matching layer as
  TF2 computes them (Google's TF1 code broadcasts against every teacher layer by mistake).
- `attention_transfer_loss`: per-head KL(teacher || student) of the attention distributions (4.3).
  It and the KD term of `pretraining_distillation_loss` are the one KL, `F.kl_from_logits`.
- `pretraining_distillation_loss`: alpha * MLM + (1 - alpha) * KD + NSP (4.5).
- `layer_wise_transfer_loss`: the weighted per-layer sum the strategies train on (4.4).

Teacher tensors are always detached: the teacher receives no gradient. Losses return Tensors;
the combined ones return a dict of named Tensors with the total under "loss", so training logs
can show every component.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

import autograd.functional as F
from autograd import Tensor, no_grad
from tinybert_core.models.heads import (IGNORE_INDEX, masked_lm_loss, next_sentence_loss,
                                        rescale_mean)


def _detached(t: Any) -> Tensor:
    return t.detach() if isinstance(t, Tensor) else Tensor(t)


def _check_same(name: str, student: Tensor, teacher: Tensor) -> None:
    if student.shape != teacher.shape:
        raise ValueError(f"{name}: student shape {student.shape} differs from teacher shape "
                         f"{teacher.shape}; the student and teacher must share the inter-block "
                         f"width, head count and sequence length")


def _token_weights(mask: Any, like: Tensor) -> tuple[Tensor | None, float]:
    """(B, T, 1) float weights from an attention mask, and the number of kept tokens."""
    if mask is None:
        return None, 0.0
    m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    m = m.astype(like.dtype)[..., None]
    return Tensor(m, device=like.backend), float(m.sum())


def feature_map_transfer_loss(student_hidden: Tensor, teacher_hidden: Tensor,
                              normalize: bool = False, attention_mask: Any = None) -> Tensor:
    """Mean squared difference of block outputs (B, T, N), the paper's L_FMT.

    normalize=True is Google's form: both sides first go through a parameter-free layer norm
    over the N features. `attention_mask` (B, T) restricts the mean to real tokens (Google
    averages over padding too, which is what happens when it is None).
    """
    teacher = _detached(teacher_hidden)
    _check_same("feature_map_transfer_loss", student_hidden, teacher)
    s = student_hidden
    if normalize:
        s = F.layer_norm(s, eps=1e-12)
        with no_grad():
            teacher = F.layer_norm(teacher, eps=1e-12)
    sq = (s - teacher) * (s - teacher)
    w, kept = _token_weights(attention_mask, s)
    if w is None:
        return sq.mean()
    return (sq * w).sum() * (1.0 / (max(kept, 1.0) * s.shape[-1]))


def hidden_distribution_loss(student_hidden: Tensor, teacher_hidden: Tensor
                             ) -> tuple[Tensor, Tensor]:
    """Google's distribution terms: mean over tokens of (mu_t - mu_s)^2 and of |var_t - var_s|,
    with mu, var the per-token mean and variance over the N features (spec 4.2)."""
    teacher = _detached(teacher_hidden)
    _check_same("hidden_distribution_loss", student_hidden, teacher)
    mu_s = student_hidden.mean(axis=-1)
    var_s = F.var(student_hidden, axis=-1)
    with no_grad():
        mu_t = teacher.mean(axis=-1)
        var_t = F.var(teacher, axis=-1)
    d = mu_t - mu_s
    return (d * d).mean(), F.abs(var_t - var_s).mean()


def attention_transfer_loss(student_scores: Tensor, teacher_scores: Tensor) -> Tensor:
    """Mean over batch, heads and queries of KL(p_teacher || p_student), the paper's L_AT.

    Inputs are the scaled, masked pre-softmax attention scores (B, A, T, T) that the models
    return as `attention_scores`; the mask's large negative values give masked keys zero
    probability on both sides. Google's code minimises the soft cross-entropy instead, which
    differs by the teacher's entropy (a constant) and so has the same gradient.
    """
    teacher = _detached(teacher_scores)
    _check_same("attention_transfer_loss", student_scores, teacher)
    return F.kl_from_logits(student_scores, teacher)


def pretraining_distillation_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Any,
                                  seq_relationship_logits: Tensor | None = None,
                                  next_sentence_labels: Any = None, alpha: float = 0.5,
                                  temperature: float = 1.0,
                                  num_items: float | None = None) -> dict[str, Tensor]:
    """L_PD = alpha * L_MLM + (1 - alpha) * L_KD + L_NSP (spec 4.5).

    Logits are (..., V) at the same positions for both models and `labels` marks the masked
    ones (-100 elsewhere, as for `masked_lm_loss`); L_KD = T^2 * mean over masked positions of
    KL(softmax(t / T) || softmax(s / T)). NSP uses the ground truth only, as in Google's code.
    `num_items` replaces the masked-token count both means divide by (see `masked_lm_loss`).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"pretraining_distillation_loss: alpha must be in [0, 1], got {alpha}")
    if temperature <= 0:
        raise ValueError(f"pretraining_distillation_loss: temperature must be > 0, "
                         f"got {temperature}")
    teacher = _detached(teacher_logits)
    _check_same("pretraining_distillation_loss", student_logits, teacher)
    v = student_logits.shape[-1]
    lab = labels.data if isinstance(labels, Tensor) else np.asarray(labels)
    idx = np.nonzero(lab.reshape(-1) != IGNORE_INDEX)[0]
    mlm = masked_lm_loss(student_logits, lab, num_items=num_items)
    out: dict[str, Tensor] = {"mlm": mlm}
    if idx.size:
        s = student_logits.reshape(-1, v)[idx] * (1.0 / temperature)
        t = teacher.reshape(-1, v)[idx] * (1.0 / temperature)
        out["kd"] = F.kl_from_logits(s, t) * (temperature * temperature)
        if num_items is not None:
            out["kd"] = rescale_mean(out["kd"], int(idx.size), num_items)
    else:
        out["kd"] = mlm * 0.0
    total = mlm * alpha + out["kd"] * (1.0 - alpha)
    if seq_relationship_logits is not None:
        if next_sentence_labels is None:
            raise ValueError("pretraining_distillation_loss: NSP logits given without labels")
        out["nsp"] = next_sentence_loss(seq_relationship_logits, next_sentence_labels)
        total = total + out["nsp"]
    out["loss"] = total
    return out


def layer_wise_transfer_loss(student_out: Any, teacher_out: Any, layers: Sequence[int],
                             fmt_factor: float = 1.0, at_factor: float = 1.0,
                             beta_factor: float = 0.0, gamma_factor: float = 0.0,
                             normalize_fmt: bool = False, attention_mask: Any = None,
                             scale: float = 1.0) -> dict[str, Tensor]:
    """sum over blocks l in `layers` (1-based) of fmt_factor * FMT_l + at_factor * AT_l
    (+ beta_factor * beta_l + gamma_factor * gamma_l), times `scale`.

    The paper: factors 1 and 1. Google's progressive recipe: normalize_fmt=True, factors 100,
    1, 5000, 5 and scale 1/24 (spec 4.4). Model outputs must carry `hidden_states` (embedding
    output first) and `attention_scores` (one per block).
    """
    if not layers:
        raise ValueError("layer_wise_transfer_loss: no layers selected")
    n = len(student_out.hidden_states) - 1
    if len(teacher_out.hidden_states) - 1 != n:
        raise ValueError(f"layer_wise_transfer_loss: student has {n} blocks, teacher has "
                         f"{len(teacher_out.hidden_states) - 1}; layer-wise transfer needs equal "
                         f"depth")
    parts: dict[str, list[Tensor]] = {"fmt": [], "at": [], "beta": [], "gamma": []}
    for layer in layers:
        if not 1 <= layer <= n:
            raise ValueError(f"layer_wise_transfer_loss: layer {layer} is outside 1..{n}")
        hs, ht = student_out.hidden_states[layer], teacher_out.hidden_states[layer]
        if fmt_factor:
            parts["fmt"].append(feature_map_transfer_loss(hs, ht, normalize_fmt, attention_mask))
        if at_factor:
            parts["at"].append(attention_transfer_loss(student_out.attention_scores[layer - 1],
                                                       teacher_out.attention_scores[layer - 1]))
        if beta_factor or gamma_factor:
            beta, gamma = hidden_distribution_loss(hs, ht)
            parts["beta"].append(beta)
            parts["gamma"].append(gamma)
    factors = {"fmt": fmt_factor, "at": at_factor, "beta": beta_factor, "gamma": gamma_factor}
    out: dict[str, Tensor] = {}
    total = None
    for name, terms in parts.items():
        if not terms:
            continue
        summed = terms[0]
        for t in terms[1:]:
            summed = summed + t
        out[name] = summed
        weighted = summed * (factors[name] * scale)
        total = weighted if total is None else total + weighted
    out["loss"] = total
    return out
