"""Whole-model gradient audits: every parameter of a MobileBERT, IB-BERT or BERT model, for
every loss it trains with, against finite differences (`tinybert gradcheck --config NAME` or
`tinybert gradcheck MODEL_DIR`).

The model comes from a preset or config (or a model directory), shrunk to `layers` blocks when
asked (every width kept), cast to float64 and put in eval mode: a gradient check needs a
deterministic function, so dropout is off (the op audit checks dropout with a fixed mask).

A model built from a config is audited at an "audit point" rather than at its training
initialisation: matrices drawn N(0, 1/fan_in) and 1-D parameters (norm scales, biases) moved by
N(0, 0.1^2). At the initialisation (std 0.02, NoNorm scales 1, biases 0) attention is almost
uniform and the gradients reaching queries and keys are ~1e-9, below what a finite difference
can resolve, so an error there would go unseen. A model loaded from a directory is audited at
its own weights.

Losses (`LOSSES`): "mlm+nsp" (pre-training), "fmt" and "at" (feature-map and attention transfer
summed over every block, the paper's forms, through `layer_wise_transfer_loss`), "pd"
(pre-training distillation: alpha MLM + (1 - alpha) KD + NSP), and the fine-tuning heads
"sequence_classification", "question_answering", "token_classification". FMT, AT and PD need a
teacher: the teacher config's model (shrunk to the same depth) runs once, and its outputs are
constants of the student's loss. Each parameter is checked along `directions` random unit
directions, and reported by name under the paper's block it belongs to (`block_of`).

Kinks. A ReLU network has ~1e5 points where it is not differentiable; one relu input within a
step of 0 spoils the central difference along almost any direction of every parameter upstream
of it. So the batch is redrawn until no relu input lies within KINK_MARGIN of its kink
(`kink_distance`), and a direction along which the loss still bends is redrawn (gradcheck's
kink_retries). With `device` another backend runs the audit and its
gradients are compared with NumPy's; with `against="torch"` the same ops are replayed in
PyTorch and compared gradient by gradient.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from autograd import Tensor, no_grad
from autograd.crosscheck import compare_gradients, gradients
from autograd.gradcheck import gradcheck_report, kink_distance
from tinybert_core.config import MobileBertConfig
from tinybert_core.distillation import losses as L
from tinybert_core.model_audit_report import (
    LossAudit,
    ModelAuditReport,
    ParamResult,
    block_key,
    block_of,
)
from tinybert_core.models.auto import model_class

LOSSES = {
    "mlm+nsp": ("MLM + NSP", "pretraining"),
    "fmt": ("feature-map transfer (FMT)", "pretraining"),
    "at": ("attention transfer (AT)", "pretraining"),
    "pd": ("pre-training distillation (PD)", "pretraining"),
    "sequence_classification": ("sequence classification", "sequence_classification"),
    "question_answering": ("question answering", "question_answering"),
    "token_classification": ("token classification", "token_classification"),
}
NEEDS_TEACHER = ("fmt", "at", "pd")
# A student preset's teacher, as the paper pairs them; any other model is paired with a copy of
# its own architecture (another seed): the losses only need matching widths, heads and vocab.
TEACHERS = {"mobilebert": "ib-bert-large", "mobilebert-4l": "ib-bert-large",
            "mobilebert-tiny": "ib-bert-large", "mobilebert-small": "ib-bert-small"}
ULPS = 32  # atol = ULPS units in the last place of the loss, over the step: the noise floor
# The audit batch is redrawn (up to BATCH_TRIES seeds) until no relu input lies closer to its
# kink than KINK_MARGIN, ten steps of eps: a ReLU network has ~1e5 of them, and one within a step
# of 0 spoils the difference along almost every direction of every parameter upstream of it.
KINK_MARGIN, BATCH_TRIES = 1e-5, 16
_LAYER = re.compile(r"encoder\.layer\.(\d+)\.")


# --- building the models and the batch -----------------------------------------------------------

@dataclass
class AuditBatch:
    """One small batch with everything every loss needs, drawn from a seed."""

    input_ids: np.ndarray                # (B, T)
    attention_mask: np.ndarray           # (B, T), the last row padded at the end
    token_type_ids: np.ndarray           # (B, T), segment B in the second half
    masked_positions: np.ndarray         # (B, P)
    mlm_labels: np.ndarray               # (B, P), one -100 slot
    nsp_labels: np.ndarray               # (B,)
    class_labels: np.ndarray             # (B,)
    token_labels: np.ndarray             # (B, T), -100 on padding
    start_positions: np.ndarray          # (B,)
    end_positions: np.ndarray            # (B,)

    def inputs(self) -> dict[str, Any]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask,
                "token_type_ids": self.token_type_ids}


def make_batch(config: MobileBertConfig, batch_size: int, seq_length: int,
               seed: int = 0) -> AuditBatch:
    if seq_length < 4 or seq_length > config.max_position_embeddings:
        raise ValueError(f"the audit's sequence length must be in [4, "
                         f"{config.max_position_embeddings}] (max_position_embeddings), "
                         f"got {seq_length}")
    rng = np.random.default_rng(seed)
    B, T = batch_size, seq_length
    mask = np.ones((B, T), np.int64)
    mask[-1, T - max(1, T // 4):] = 0 if B > 1 else 1
    types = np.zeros((B, T), np.int64)
    types[:, T // 2:] = 1
    p = min(3, T // 4)
    positions = np.stack([np.sort(rng.choice(T - T // 4, p, replace=False)) for _ in range(B)])
    labels = rng.integers(0, config.vocab_size, (B, p))
    labels[-1, -1] = -100
    tokens = rng.integers(0, config.num_labels, (B, T))
    tokens[mask == 0] = -100
    return AuditBatch(rng.integers(1, config.vocab_size, (B, T)), mask,
                      types if config.type_vocab_size > 1 else np.zeros_like(types),
                      positions, labels, rng.integers(0, 2, B),
                      rng.integers(0, config.num_labels, B), tokens,
                      rng.integers(0, T - T // 4, B), rng.integers(0, T - T // 4, B))


def audit_point(model: Any, seed: int) -> None:
    """Move a freshly initialised model to the audit point (see the module docstring)."""
    rng = np.random.default_rng(seed)
    for _, p in model.named_parameters():
        if p.ndim == 2:
            value = rng.standard_normal(p.shape) / np.sqrt(p.shape[1])
        else:
            value = p.numpy() + 0.1 * rng.standard_normal(p.shape)
        p.data = p.backend.asarray(value.astype(np.float64))


def load_config(config: str | Path | MobileBertConfig, layers: int | None) -> MobileBertConfig:
    cfg = config if isinstance(config, MobileBertConfig) else MobileBertConfig.from_pretrained(
        config)
    if layers is not None:
        if layers < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        cfg = cfg.replace(num_hidden_layers=min(layers, cfg.num_hidden_layers))
    return cfg


def build_models(config: MobileBertConfig, tasks: list[str], seed: int,
                 model_dir: str | Path | None = None, device: Any = None) -> dict[str, Any]:
    """One float64 eval-mode model per task, sharing the backbone's weights: those of
    `model_dir` (read by the one loader, `from_pretrained`; heads it lacks are drawn from
    `seed`) when given, else the audit point drawn from `seed`."""
    models: dict[str, Any] = {}
    for task in dict.fromkeys(tasks):
        cls = model_class(config, task)
        if model_dir is not None:
            model = _load_shrunk(cls, model_dir, config, seed)
        else:
            model = cls(config, seed=seed).to(dtype=np.float64)
            audit_point(model, seed)
            if models:                                 # the same backbone in every task model
                first = next(iter(models.values()))
                model.load_hf_state_dict({k: v for k, v in first.state_dict().items()
                                          if k.startswith(first.base_model_prefix + ".")})
        model.eval()
        models[task] = model.to(device) if device is not None else model
    return models


def _load_shrunk(cls: Any, model_dir: str | Path, config: MobileBertConfig, seed: int) -> Any:
    """`model_dir`'s model in float64, keeping its first config.num_hidden_layers blocks. The
    loader refuses a checkpoint deeper than its config (the wrong config, for any other
    caller), so the whole model is loaded, checked as usual, and its first blocks copied."""
    full = MobileBertConfig.from_pretrained(model_dir)
    if full.num_hidden_layers == config.num_hidden_layers:
        return cls.from_pretrained(model_dir, config=config, seed=seed, dtype=np.float64)
    whole = cls.from_pretrained(model_dir, config=full, seed=seed)
    model = cls(config, seed=seed)
    kept = {k: v for k, v in whole.state_dict().items()
            if (m := _LAYER.search(k)) is None or int(m.group(1)) < config.num_hidden_layers}
    model.load_hf_state_dict(kept, strict=True, source=str(model_dir))
    return model.to(dtype=np.float64)


def _check_teacher(student: MobileBertConfig, teacher: MobileBertConfig) -> None:
    odd = [f"{k} {getattr(student, k)} vs {getattr(teacher, k)}"
           for k in ("vocab_size", "hidden_size", "num_attention_heads")
           if getattr(student, k) != getattr(teacher, k)]
    if odd:
        raise ValueError("the teacher does not fit the student for FMT, AT and PD (student vs "
                         "teacher): " + ", ".join(odd))


def loss_functions(models: dict[str, Any], teacher: Any, batch: AuditBatch,
                   losses: list[str]) -> dict[str, tuple[Callable[[], Tensor], Any]]:
    """loss name -> (a function of no arguments giving the scalar loss, the model whose
    parameters it is checked against: the whole task model, or the backbone for FMT/AT)."""
    kw = batch.inputs()
    fns: dict[str, tuple[Callable[[], Tensor], Any]] = {}
    pre = models.get("pretraining")
    t_out = None
    if teacher is not None:
        with no_grad():
            t_out = teacher(**kw, masked_positions=batch.masked_positions,
                            output_hidden_states=True, output_attentions=True)
    layers = list(range(1, (pre.config.num_hidden_layers if pre else 0) + 1))
    for loss in losses:
        if loss == "mlm+nsp":
            fns[loss] = (lambda: pre(**kw, masked_positions=batch.masked_positions,
                                     labels=batch.mlm_labels,
                                     next_sentence_label=batch.nsp_labels).loss, pre)
        elif loss in ("fmt", "at"):
            factors = {"fmt_factor": float(loss == "fmt"), "at_factor": float(loss == "at")}
            fns[loss] = (lambda f=factors: L.layer_wise_transfer_loss(
                pre.base_model(**kw, output_hidden_states=True, output_attentions=True),
                t_out, layers, attention_mask=batch.attention_mask, **f)["loss"], pre.base_model)
        elif loss == "pd":
            def pd() -> Tensor:
                s = pre(**kw, masked_positions=batch.masked_positions)
                return L.pretraining_distillation_loss(
                    s.prediction_logits, t_out.prediction_logits, batch.mlm_labels,
                    s.seq_relationship_logits, batch.nsp_labels)["loss"]
            fns[loss] = (pd, pre)
        elif loss == "sequence_classification":
            m = models[loss]
            fns[loss] = (lambda m=m: m(**kw, labels=batch.class_labels).loss, m)
        elif loss == "token_classification":
            m = models[loss]
            fns[loss] = (lambda m=m: m(**kw, labels=batch.token_labels).loss, m)
        else:
            m = models[loss]
            fns[loss] = (lambda m=m: m(**kw, start_positions=batch.start_positions,
                                       end_positions=batch.end_positions).loss, m)
    return fns


# --- running it ----------------------------------------------------------------------------------

def _named(module: Any, model: Any) -> list[tuple[str, Any]]:
    prefix = "" if module is model else model.base_model_prefix + "."
    return [(prefix + n, p) for n, p in module.named_parameters()]


def audit_model(config: str | Path | MobileBertConfig | None = None,
                model_dir: str | Path | None = None, *, layers: int | None = None,
                max_seq_length: int = 16, batch_size: int = 2,
                losses: tuple[str, ...] | list[str] = tuple(LOSSES),
                teacher_config: str | Path | None = None, directions: int = 2, seed: int = 0,
                device: str | None = None, against: str | None = None, eps: float = 1e-6,
                rtol: float = 1e-5, kink_retries: int = 8,
                progress: Callable[[int, str], None] | None = None) -> ModelAuditReport:
    """Audit every parameter's gradient for every loss in `losses`; see the module docstring.

    Give a `config` (preset name, directory or MobileBertConfig) or a `model_dir`. `device`
    runs the audit on another backend and compares its gradients with NumPy's; `against=
    "torch"` compares them with PyTorch's. `progress(total, "loss: parameter")` is called as
    each of the `total` parameter checks starts."""
    start = time.perf_counter()
    if (config is None) == (model_dir is None):
        raise ValueError("audit_model: give a config or a model directory (one of them)")
    unknown = [k for k in losses if k not in LOSSES]
    if unknown or not losses:
        raise ValueError(f"unknown loss(es) {', '.join(unknown) or '(none given)'}; "
                         f"known: {', '.join(LOSSES)}")
    if batch_size < 1 or directions < 1:
        raise ValueError("batch_size and directions must be at least 1")
    if against not in (None, "torch"):
        raise ValueError(f"against must be None or 'torch', got {against!r}")
    if against == "torch":
        from autograd.torch_replay import import_torch
        import_torch()                           # fail before the audit when it is absent
    cfg = load_config(model_dir if model_dir is not None else config, layers)
    if cfg.extra.get("quantization_config") is not None:
        raise ValueError(f"{model_dir}: an int8 model has no float gradients to audit; audit "
                         f"the float model it was quantized from")
    needed = [LOSSES[k][1] for k in losses]
    teacher_cfg, teacher_name = None, None
    if any(k in NEEDS_TEACHER for k in losses):
        teacher_name = teacher_config or (TEACHERS.get(config) if isinstance(config, str)
                                          else None)
        teacher_cfg = load_config(teacher_name, None) if teacher_name else cfg
        teacher_cfg = teacher_cfg.replace(num_hidden_layers=cfg.num_hidden_layers)
        _check_teacher(cfg, teacher_cfg)
    backend = None if device in (None, "numpy") else device

    def plan(dev: str | None) -> tuple[dict[str, Any], Any]:
        models = build_models(cfg, needed, seed, model_dir, dev)
        teacher = None
        if teacher_cfg is not None:
            teacher = build_models(teacher_cfg, ["pretraining"], seed + 1, None, dev)[
                "pretraining"]
        return models, teacher

    def bind(models: dict[str, Any], teacher: Any, batch: AuditBatch) -> dict[str, tuple]:
        fns = loss_functions(models, teacher, batch, list(losses))
        return {k: (fn, module, models[LOSSES[k][1]]) for k, (fn, module) in fns.items()}

    models, teacher = plan(backend)
    batch_seed, margin, ours = seed, -1.0, {}
    for k in range(BATCH_TRIES):                 # dodge kinks at the point (see KINK_MARGIN)
        batch = make_batch(cfg, batch_size, max_seq_length, seed + k)
        fns = bind(models, teacher, batch)
        m = min(kink_distance(fn) for fn, _, _ in fns.values())
        if m > margin:
            batch_seed, margin, ours = seed + k, m, fns
        if margin >= KINK_MARGIN:
            break
    batch = make_batch(cfg, batch_size, max_seq_length, batch_seed)
    reference = bind(*plan(None), batch) if backend is not None else None
    setup = {"model": str(model_dir if model_dir is not None else (
                 config if isinstance(config, (str, Path)) else "config")),
             "model_type": cfg.model_type, "layers": cfg.num_hidden_layers,
             "widths": _widths(cfg), "batch_size": batch_size, "max_seq_length": max_seq_length,
             "teacher": None if teacher_cfg is None else str(teacher_name or "the same config"),
             "device": device or "numpy", "against": against, "directions": directions,
             "eps": eps, "rtol": rtol, "atol": f"{ULPS} ulp(loss) / eps", "seed": seed,
             "batch_seed": batch_seed, "kink_margin": margin,
             "weights": "model directory" if model_dir is not None else "audit point"}
    report = ModelAuditReport(setup)
    total = sum(len(_named(module, model)) for _, module, model in ours.values())
    for loss in losses:
        fn, module, model = ours[loss]
        cross_fns = {}
        if reference is not None:
            rfn, rmodule, rmodel = reference[loss]
            cross_fns["vs_numpy"] = lambda named, rfn=rfn, rm=rmodule, rmo=rmodel: \
                compare_gradients("numpy", gradients(fn, params=named, seed=seed),
                                  gradients(rfn, params=_named(rm, rmo), seed=seed))
        if against == "torch":
            from autograd.crosscheck import against_torch
            cross_fns["vs_torch"] = lambda named, fn=fn: against_torch(fn, params=named,
                                                                      seed=seed)
        report.losses.append(audit_loss(
            loss, fn, module, model, directions=directions, eps=eps, rtol=rtol, seed=seed,
            kink_retries=kink_retries, cross_checks=cross_fns,
            progress=None if progress is None else (lambda p, k=loss: progress(total,
                                                                              f"{k}: {p}"))))
    report.seconds = time.perf_counter() - start
    return report


def audit_loss(loss: str, fn: Callable[[], Tensor], module: Any, model: Any, *,
               directions: int = 2, eps: float = 1e-6, rtol: float = 1e-5, seed: int = 0,
               kink_retries: int = 8, cross_checks: dict[str, Callable] | None = None,
               progress: Callable[[str], None] | None = None) -> LossAudit:
    """Check every parameter of `module` (the task `model` or its backbone) for the scalar
    loss `fn()`, as `audit_model` does for each loss. atol is ULPS units in the last place of
    the loss over the step: the rounding floor of a central difference. `cross_checks` maps
    "vs_numpy" / "vs_torch" to functions of the named parameters returning a CrossCheck."""
    t0 = time.perf_counter()
    named = _named(module, model)
    with no_grad():
        value = float(fn().item())
    atol = ULPS * np.finfo(np.float64).eps * max(abs(value), 1.0) / eps
    check = gradcheck_report(fn, params=named, mode="directional", directions=directions,
                             eps=eps, atol=atol, rtol=rtol, seed=seed,
                             kink_retries=kink_retries, progress=progress)
    audit = LossAudit(loss, LOSSES[loss][0], type(module).__name__, value, atol, 0.0,
                      [ParamResult(r.name, block_of(r.name, model.config), r)
                       for r in check.inputs])
    for key, run in (cross_checks or {}).items():
        result = run(named)
        audit.output[key] = result.entries[0]
        by_name = {e.name: e for e in result.entries[1:]}
        for p in audit.params:
            setattr(p, key, by_name[p.name])
    audit.params.sort(key=lambda p: block_key(p.block))        # stable: HF order inside
    audit.seconds = time.perf_counter() - t0
    return audit


def _widths(cfg: MobileBertConfig) -> dict[str, int]:
    return {"vocab_size": cfg.vocab_size, "embedding_size": cfg.embedding_size,
            "hidden_size": cfg.hidden_size, "intra_bottleneck_size": cfg.true_hidden_size,
            "intermediate_size": cfg.intermediate_size,
            "num_attention_heads": cfg.num_attention_heads,
            "num_feedforward_networks": cfg.num_feedforward_networks}
