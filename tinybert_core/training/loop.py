"""The training loop behind `tinybert pretrain` and `tinybert distill`.

One loop runs every strategy: it walks the strategy's stages (distillation/strategies.py), with
LAMB, gradient accumulation, global-norm clipping, a per-stage warm-up + decay schedule,
periodic held-out MLM evaluation, a JSONL metrics log and atomic checkpoints of model +
optimizer + data position + RNG state, so `resume=True` continues a killed run bit for bit.
A non-finite loss stops the run at once, naming the step, the loss term and the first
parameter whose gradient is not finite. The library never prints: progress goes to `on_step`.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from autograd import optim
from tinybert_core.training.checkpoint import load_training_checkpoint, save_training_checkpoint
from tinybert_core.distillation.strategies import KTOptions, Stage, build_stages, stage_schedule
from tinybert_core.evaluation.mlm import evaluate_mlm

CHECKPOINT_NAME = "checkpoint.npz"
METRICS_NAME = "metrics.jsonl"


class TrainingDiverged(RuntimeError):
    """The loss or a gradient stopped being finite."""


@dataclass
class TrainingArguments:
    """Everything a run needs besides the models and the data (defaults fit a laptop)."""

    output_dir: Path
    strategy: str = "none"
    pd_steps: int = 200                   # steps of the final (or only) stage
    kt_steps_per_layer: int = 0           # layer-wise transfer steps per student block
    learning_rate: float = 1e-3
    end_lr_rate: float = 1e-4
    warmup_proportion: float = 0.1
    weight_decay: float = 0.01
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    eval_every: int = 100
    save_every: int = 100
    seed: int = 0
    kt: KTOptions = field(default_factory=KTOptions)

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        if self.gradient_accumulation_steps < 1:
            raise ValueError("gradient_accumulation_steps must be at least 1")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")


@dataclass
class StagePlan:
    """Stages laid end to end on the global step axis."""

    stages: list[Stage]
    starts: list[int]

    @classmethod
    def of(cls, stages: list[Stage]) -> "StagePlan":
        starts, s = [], 0
        for st in stages:
            starts.append(s)
            s += st.steps
        return cls(stages, starts)

    @property
    def total(self) -> int:
        return self.starts[-1] + self.stages[-1].steps if self.stages else 0

    def at(self, step: int) -> tuple[int, Stage]:
        for i in range(len(self.stages) - 1, -1, -1):
            if step >= self.starts[i] and self.stages[i].steps:
                return i, self.stages[i]
        raise ValueError(f"step {step} is outside the plan")

    def describe(self) -> str:
        return ",".join(f"{s.name}:{s.steps}" for s in self.stages)


def _first_bad_gradient(model: Any) -> str | None:
    for name, p in model.named_parameters():
        if p.grad is not None and not np.isfinite(p.backend.to_numpy(p.grad)).all():
            return name
    return None


def _diverged(step: int, stage: Stage, losses: dict[str, Any], model: Any) -> TrainingDiverged:
    bad_terms = [k for k, v in losses.items() if v is not None and not math.isfinite(v.item())]
    grad = _first_bad_gradient(model)
    where = f"; first non-finite gradient: {grad}" if grad else ""
    terms = ", ".join(bad_terms) if bad_terms else "none (the gradients diverged)"
    return TrainingDiverged(f"training diverged at step {step} (stage {stage.name}): "
                            f"non-finite loss terms: {terms}{where}")


def train(student: Any, args: TrainingArguments, batches: Any, teacher: Any = None,
          eval_batches: list[Any] | None = None, tokenizer: Any = None,
          on_step: Callable[[dict[str, Any]], None] | None = None, resume: bool = False,
          stop_after: int | None = None) -> dict[str, Any]:
    """Train `student` with `args.strategy`, reading batches from the iterator `batches`.

    `stop_after` ends this call after that global step (as if the run were killed there; a
    checkpoint is written), which is how the resume test interrupts a run.
    Returns a summary with the final evaluation and the output paths.
    """
    num_layers = student.config.num_hidden_layers
    plan = StagePlan.of(build_stages(args.strategy, num_layers, args.kt_steps_per_layer,
                                     args.pd_steps, args.kt, args.warmup_proportion))
    if plan.total == 0:
        raise ValueError("nothing to train: the strategy's stages have 0 steps in total")
    if any(st.needs_teacher for st in plan.stages) and teacher is None:
        raise ValueError(f"strategy {args.strategy!r} needs a teacher model")
    if teacher is not None:
        teacher.eval()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = args.output_dir / CHECKPOINT_NAME
    run_config = {**student.config.to_dict(), "strategy": args.strategy,
                  "stages": plan.describe()}

    schedules = [stage_schedule(st, args.learning_rate, args.end_lr_rate) for st in plan.stages]

    def lr_at(step: int) -> float:
        i, _ = plan.at(step)
        return schedules[i](step - plan.starts[i])

    opt = optim.LAMB(student, lr=lr_at, weight_decay=args.weight_decay)
    step = 0
    if resume and ckpt_path.exists():
        step, data_state, _ = load_training_checkpoint(ckpt_path, student, opt, run_config)
        batches.load_state(data_state)
    elif resume:
        raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
    elif ckpt_path.exists():
        raise ValueError(f"{args.output_dir} already holds a training checkpoint; resume it "
                         f"(--resume) or choose another output directory")

    def save(at_step: int) -> None:
        save_training_checkpoint(ckpt_path, student, opt, at_step, run_config,
                                 data_state=batches.state(), extra={"args": _jsonable(args)})

    # A fresh run starts a fresh log; a resumed one appends after the steps it kept.
    metrics_file = open(args.output_dir / METRICS_NAME, "a" if resume else "w", encoding="utf-8")
    last_eval: dict[str, float] = {}
    current = -1
    try:
        while step < plan.total:
            index, stage = plan.at(step)
            if index != current:
                current = index
                if step == plan.starts[index]:
                    opt.reset_state()        # a new stage starts from fresh moments
                opt.set_lr_scale(1.0)
                for pattern, scale in stage.lr_scales:
                    opt.set_lr_scale(scale, pattern)
                student.train(stage.train_mode)
            start = time.perf_counter()
            lr = opt.current_lr()
            tokens = 0
            sums: dict[str, float] = {}
            k = args.gradient_accumulation_steps
            for _ in range(k):
                batch = next(batches)
                tokens += int(batch.attention_mask.sum())
                losses = stage.loss(student, teacher, batch)
                values = {name: v.item() for name, v in losses.items() if v is not None}
                if not math.isfinite(values["loss"]):
                    raise _diverged(step, stage, losses, student)
                (losses["loss"] * (1.0 / k)).backward()
                for name, v in values.items():
                    sums[name] = sums.get(name, 0.0) + v / k
            grad_norm = optim.clip_grad_norm(student, args.max_grad_norm)
            if not math.isfinite(grad_norm):
                raise _diverged(step, stage, {}, student)
            opt.step()
            opt.zero_grad()
            step += 1
            seconds = time.perf_counter() - start
            record = {"step": step, "stage": stage.name, "lr": lr, "grad_norm": grad_norm,
                      "seconds": seconds, "tokens_per_s": tokens / seconds, **sums}
            if eval_batches and (step % args.eval_every == 0 or step == plan.total):
                last_eval = evaluate_mlm(student, eval_batches)
                record.update({f"eval_{k}": v for k, v in last_eval.items()})
            metrics_file.write(json.dumps(record) + "\n")
            metrics_file.flush()
            if on_step is not None:
                on_step({**record, "total_steps": plan.total})
            if step % args.save_every == 0 or step == plan.total or step == stop_after:
                save(step)
            if stop_after is not None and step >= stop_after:
                break
    finally:
        metrics_file.close()
    summary: dict[str, Any] = {"steps": step, "total_steps": plan.total,
                               "checkpoint": str(ckpt_path), "eval": last_eval}
    if step >= plan.total:
        model_dir = args.output_dir / "model"
        student.save_pretrained(model_dir, tokenizer=tokenizer)
        summary["model_dir"] = str(model_dir)
    return summary


def _jsonable(args: TrainingArguments) -> dict[str, Any]:
    d = asdict(args)
    d["output_dir"] = str(d["output_dir"])
    return d
