"""Whole-model gradient audits: every parameter of a MobileBERT, IB-BERT or BERT model, for
every loss it trains with, against finite differences (`tinybert gradcheck --config/--model`).

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
directions with kinks dodged (autograd/gradcheck.py), and reported by name under the paper's
block it belongs to (`block_of`). With `device` another backend runs the audit and its
gradients are compared with NumPy's; with `against="torch"` the same ops are replayed in
PyTorch and compared gradient by gradient.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from autograd import Tensor, no_grad
from autograd.crosscheck import Agreement, compare_gradients, gradients
from autograd.gradcheck import InputReport, gradcheck_report
from tinybert_core.config import MobileBertConfig
from tinybert_core.distillation import losses as L
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
BLOCK_ORDER = ["embedding", "input bottleneck", "attention", "stacked FFNs", "feed-forward",
               "output bottleneck", "pooler", "heads"]
ULPS = 32  # atol = ULPS units in the last place of the loss, over the step: the noise floor


def block_of(name: str, config: MobileBertConfig) -> str:
    """The paper's block a parameter belongs to ("layer 0: attention", "embedding", ...)."""
    m = re.search(r"\.encoder\.layer\.(\d+)\.(.*)$", name)
    if m is None:
        if ".embeddings." in name:
            return "embedding"
        return "pooler" if ".pooler." in name else "heads"
    layer, rest = m.groups()
    if rest.startswith("bottleneck."):
        part = "input bottleneck"
    elif rest.startswith("output.bottleneck."):
        part = "output bottleneck"
    elif rest.startswith("attention."):
        part = "attention"
    else:                                           # intermediate, output, ffn.i
        part = "stacked FFNs" if config.num_feedforward_networks > 1 else "feed-forward"
    return f"layer {layer}: {part}"


def _block_key(block: str) -> tuple:
    m = re.match(r"layer (\d+): (.*)", block)
    if m is None:
        return (0 if block == "embedding" else 2, 0, BLOCK_ORDER.index(block))
    return (1, int(m.group(1)), BLOCK_ORDER.index(m.group(2)))


# --- the report ----------------------------------------------------------------------------------

@dataclass
class ParamResult:
    name: str
    block: str
    check: InputReport                   # finite differences along random directions
    vs_numpy: Agreement | None = None    # this backend's gradient against NumPy's
    vs_torch: Agreement | None = None    # against the ops replayed in PyTorch

    @property
    def passed(self) -> bool:
        return self.check.passed and all(a is None or a.passed
                                          for a in (self.vs_numpy, self.vs_torch))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "block": self.block, "passed": self.passed,
                **{k: v for k, v in self.check.to_dict().items() if k not in ("name", "passed")},
                "vs_numpy": self.vs_numpy and self.vs_numpy.to_dict(),
                "vs_torch": self.vs_torch and self.vs_torch.to_dict()}


@dataclass
class LossAudit:
    loss: str
    title: str
    model: str                           # the class whose parameters were checked
    value: float
    atol: float
    seconds: float
    params: list[ParamResult] = field(default_factory=list)
    output: dict[str, Agreement] = field(default_factory=dict)   # the loss value across checks

    @property
    def passed(self) -> bool:
        return all(p.passed for p in self.params) and all(a.passed for a in self.output.values())

    def worst(self, kind: str) -> tuple[float, str]:
        best, where = -1.0, ""
        for p in self.params:
            value = p.check.max_abs_error if kind == "abs" else p.check.max_rel_error
            if value is not None and value > best:
                best, where = value, p.name
        return best, where

    def to_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "title": self.title, "model": self.model,
                "value": self.value, "atol": self.atol, "seconds": round(self.seconds, 2),
                "passed": self.passed, "output": {k: a.to_dict() for k, a in self.output.items()},
                "params": [p.to_dict() for p in self.params]}


@dataclass
class ModelAuditReport:
    setup: dict[str, Any]
    losses: list[LossAudit] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(a.passed for a in self.losses)

    def to_dict(self) -> dict[str, Any]:
        return {"setup": self.setup, "passed": self.passed, "seconds": round(self.seconds, 1),
                "losses": [a.to_dict() for a in self.losses]}

    def format(self) -> str:
        """The setup, then per loss one line per parameter under its block."""
        s, w = self.setup, self.setup["widths"]
        lines = [f"gradient audit of {s['model']} ({s['model_type']}, {s['layers']} layers; "
                 f"widths: embedding {w['embedding_size']}, hidden {w['hidden_size']}, "
                 f"intra-block {w['intra_bottleneck_size']}, intermediate "
                 f"{w['intermediate_size']} x {w['num_feedforward_networks']} FFN, "
                 f"{w['num_attention_heads']} heads, vocab {w['vocab_size']})",
                 f"float64 on {s['device']}, weights: {s['weights']}; batch {s['batch_size']} x "
                 f"{s['max_seq_length']} tokens; teacher: {s['teacher'] or '-'}; "
                 f"{s['directions']} random directions per parameter, eps {s['eps']}, rtol "
                 f"{s['rtol']}, atol {s['atol']}; seed {s['seed']}"]
        for a in self.losses:
            bad = sum(not p.passed for p in a.params)
            lines += ["", f"{a.title}: loss {a.value:.6g}, {len(a.params)} parameters of "
                          f"{a.model}, {bad} failed (atol {a.atol:.1e}, {a.seconds:.1f} s)"]
            lines += [f"  loss value {k.replace('_', ' ')}: |diff| {e.max_abs_diff:.1e}"
                      for k, e in a.output.items()]
            width = max(len(p.name) for p in a.params)
            block = None
            for p in a.params:
                if p.block != block:
                    block = p.block
                    lines.append(f"  {block}")
                lines.append(f"    {p.name:<{width}}  {_row(p)}")
        lines += ["", f"{'passed' if self.passed else 'FAILED'}: "
                      f"{sum(len(a.params) for a in self.losses)} parameter checks over "
                      f"{len(self.losses)} losses in {self.seconds:.1f} s"]
        return "\n".join(lines)


def _row(p: ParamResult) -> str:
    c = p.check
    rel = "-" if c.max_rel_error is None else f"{c.max_rel_error:.1e}"
    out = f"{str(c.shape):<13} abs {c.max_abs_error:.1e}  rel {rel:>7}"
    if c.kinks:
        out += f"  ({c.kinks} kinks dodged)"
    for label, a in (("numpy", p.vs_numpy), ("torch", p.vs_torch)):
        if a is not None:
            out += f"  vs {label} {a.max_rel_diff:.0e}"
    return out + ("  ok" if p.passed else f"  FAIL at {c.worst_at}: analytic {c.analytic:.6g} "
                                          f"vs numeric {c.numeric:.6g}"
                  if not c.passed else "  FAIL (backend or torch disagrees)")


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
            model = cls.from_pretrained(model_dir, config=config, seed=seed, dtype=np.float64)
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
                progress: Callable[[str, str], None] | None = None) -> ModelAuditReport:
    """Audit every parameter's gradient for every loss in `losses`; see the module docstring.

    Give a `config` (preset name, directory or MobileBertConfig) or a `model_dir`. `device`
    runs the audit on another backend and compares its gradients with NumPy's; `against=
    "torch"` compares them with PyTorch's. `progress(loss, parameter)` is called before each
    parameter is checked."""
    start = time.perf_counter()
    if (config is None) == (model_dir is None):
        raise ValueError("audit_model: give a config or a model directory (one of them)")
    unknown = [k for k in losses if k not in LOSSES]
    if unknown or not losses:
        raise ValueError(f"unknown loss(es) {', '.join(unknown) or '(none given)'}; "
                         f"known: {', '.join(LOSSES)}")
    if batch_size < 1 or directions < 1:
        raise ValueError("batch_size and directions must be at least 1")
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
    batch = make_batch(cfg, batch_size, max_seq_length, seed)
    setup = {"model": str(model_dir if model_dir is not None else (
                 config if isinstance(config, (str, Path)) else "config")),
             "model_type": cfg.model_type, "layers": cfg.num_hidden_layers,
             "widths": _widths(cfg), "batch_size": batch_size, "max_seq_length": max_seq_length,
             "teacher": None if teacher_cfg is None else str(teacher_name or "the same config"),
             "device": device or "numpy", "against": against, "directions": directions,
             "eps": eps, "rtol": rtol, "atol": f"{ULPS} ulp(loss) / eps", "seed": seed,
             "weights": "model directory" if model_dir is not None else "audit point"}
    report = ModelAuditReport(setup)

    def plan(dev: str | None) -> dict[str, tuple[Callable[[], Tensor], Any, Any]]:
        models = build_models(cfg, needed, seed, model_dir, dev)
        teacher = None
        if teacher_cfg is not None:
            teacher = build_models(teacher_cfg, ["pretraining"], seed + 1, None, dev)[
                "pretraining"]
        fns = loss_functions(models, teacher, batch, list(losses))
        return {k: (fn, module, models[LOSSES[k][1]]) for k, (fn, module) in fns.items()}

    ours = plan(backend)
    reference = plan(None) if backend is not None else None
    for loss in losses:
        fn, module, model = ours[loss]
        t0 = time.perf_counter()
        named = _named(module, model)
        with no_grad():
            value = float(fn().item())
        atol = ULPS * np.finfo(np.float64).eps * max(abs(value), 1.0) / eps
        check = gradcheck_report(
            fn, params=named, mode="directional", directions=directions, eps=eps, atol=atol,
            rtol=rtol, seed=seed, kink_retries=kink_retries,
            progress=None if progress is None else (lambda p, k=loss: progress(k, p)))
        audit = LossAudit(loss, LOSSES[loss][0], type(module).__name__, value, atol, 0.0,
                          [ParamResult(r.name, block_of(r.name, cfg), r) for r in check.inputs])
        cross = {}
        if reference is not None:
            rfn, rmodule, rmodel = reference[loss]
            cross["vs_numpy"] = compare_gradients(
                "numpy", gradients(fn, params=named, seed=seed),
                gradients(rfn, params=_named(rmodule, rmodel), seed=seed))
        if against == "torch":
            from autograd.crosscheck import against_torch
            cross["vs_torch"] = against_torch(fn, params=named, seed=seed)
        for key, result in cross.items():
            audit.output[key] = result.entries[0]
            by_name = {e.name: e for e in result.entries[1:]}
            for p in audit.params:
                setattr(p, key, by_name[p.name])
        audit.params.sort(key=lambda p: _block_key(p.block))    # stable: HF order inside
        audit.seconds = time.perf_counter() - t0
        report.losses.append(audit)
    report.seconds = time.perf_counter() - start
    return report


def _widths(cfg: MobileBertConfig) -> dict[str, int]:
    return {"vocab_size": cfg.vocab_size, "embedding_size": cfg.embedding_size,
            "hidden_size": cfg.hidden_size, "intra_bottleneck_size": cfg.true_hidden_size,
            "intermediate_size": cfg.intermediate_size,
            "num_attention_heads": cfg.num_attention_heads,
            "num_feedforward_networks": cfg.num_feedforward_networks}
