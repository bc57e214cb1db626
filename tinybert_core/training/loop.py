"""The training loop behind `tinybert pretrain`, `tinybert distill` and `tinybert finetune`.

One loop runs every strategy: it walks the strategy's stages (distillation/strategies.py), with
LAMB, a per-stage warm-up + decay schedule, periodic held-out MLM evaluation, a JSONL metrics
log and atomic checkpoints of model + optimizer + data position + RNG state, so `resume=True`
continues a killed run bit for bit. Each global step is one `optimizer_step` (step.py:
gradient accumulation, global-norm clipping, the update), the same step fine-tuning uses.
A non-finite loss stops the run at once, naming the step, the loss term and the first
parameter whose gradient is not finite. The library never prints: progress goes to `on_step`.

Data parallelism (`data_parallel`, autograd/distributed.py): every process runs this loop on its
slice of each global batch (data/pretraining.py's `shard`); the masked-token count the losses
divide by is summed over processes, the gradients are averaged in `optimizer_step`'s
`reduce_gradients` hook and the logged losses averaged, so N processes train the model one
process trains at the same global batch. Only rank 0 evaluates, writes metrics.jsonl, the
checkpoint and the final model; the checkpoint holds every rank's dropout generators, and its
model, optimizer and data position do not depend on N, so a run resumes with any N.

Fine-tuning (`tinybert_core/finetuning.py`) runs this same loop with its own single stage
(`stages=`), AdamW (`args.optimizer`), its task's dev-set evaluation (`evaluate=`), and
`metric_for_best_model`, which keeps the best evaluated weights in OUTPUT_DIR/best.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


from autograd import optim
from autograd.distributed import DataParallel
from autograd.files import atomic_write_text
from tinybert_core.training.checkpoint import (ResumeMismatch, config_differences, dropout_states,
                                               load_training_checkpoint, restore_dropout_states,
                                               save_training_checkpoint)
from tinybert_core.training.run_dir import RunDirectory, open_job_directory
from tinybert_core.distillation.strategies import KTOptions, Stage, build_stages, stage_schedule
from tinybert_core.evaluation.baselines import UNIGRAM_FILE, UnigramBaseline
from tinybert_core.evaluation.mlm import evaluate_mlm
from tinybert_core.training.step import (TrainingDiverged, locate_non_finite, optimizer_step)

CHECKPOINT_NAME = "checkpoint.npz"
METRICS_NAME = "metrics.jsonl"
BEST_DIR = "best"
OPTIMIZERS = ("lamb", "adamw")


@dataclass
class TrainingArguments:
    """Everything a run needs besides the models and the data.

    The defaults are `tinybert pretrain`'s (the CLI reads them from here): 1000 steps of LAMB
    at 2e-2 take mobilebert-small on the embedded corpus well past the unigram baseline in a
    few minutes on 2 cores (README). LAMB changes each weight tensor by at most lr x its norm
    per step (the trust ratio), so Google's 1e-3, tuned for 500k steps at batch 4096, leaves a
    run of a few hundred steps at the unigram baseline (issue 9); 5e-2 diverges.
    """

    output_dir: Path
    strategy: str = "none"
    pd_steps: int = 1000                  # steps of the final (or only) stage
    kt_steps_per_layer: int = 0           # layer-wise transfer steps per student block
    learning_rate: float = 2e-2
    end_lr_rate: float = 1e-4
    warmup_proportion: float = 0.1
    weight_decay: float = 0.01
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    eval_every: int = 100
    save_every: int = 100
    seed: int = 0
    kt: KTOptions = field(default_factory=KTOptions)
    optimizer: str = "lamb"               # "adamw" for fine-tuning
    adam_epsilon: float = 1e-6
    bias_correction: bool = False         # Google's LAMB/AdamW: off; torch's AdamW: on
    metric_for_best_model: str | None = None  # an evaluation key, higher is better (HF's name)

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; known: "
                             f"{', '.join(OPTIMIZERS)}")
        for name in ("gradient_accumulation_steps", "eval_every", "save_every"):
            if getattr(self, name) < 1:   # eval_every = 0 was a ZeroDivisionError mid-run
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; the message says which checkpoint is the last good one and
    `checkpoint_step` is its step (None: none was written)."""

    def __init__(self, message: str, checkpoint_step: int | None) -> None:
        super().__init__(message)
        self.checkpoint_step = checkpoint_step


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


def train(student: Any, args: TrainingArguments, batches: Any, teacher: Any = None,
          eval_batches: list[Any] | None = None, tokenizer: Any = None,
          on_step: Callable[[dict[str, Any]], None] | None = None, resume: bool = False,
          stop_after: int | None = None, run_dir: RunDirectory | None = None,
          baseline: UnigramBaseline | None = None, stages: list[Stage] | None = None,
          evaluate: Callable[[Any], dict[str, float]] | None = None,
          data_parallel: DataParallel | None = None) -> dict[str, Any]:
    """Train `student` with `args.strategy`, reading batches from the iterator `batches`.

    The run, in named steps: plan the stages and open (or resume) the run; then per global
    step, enter the step's stage when it changes, take one `optimizer_step` (step.py), and
    log, evaluate and save as due; at the end, write the model directory.
    `stages` replaces the strategy's stages (fine-tuning passes its one stage); `evaluate`
    (model -> metrics) replaces the held-out MLM evaluation of `eval_batches`.
    `stop_after` ends this call after that global step (as if the run were killed there; a
    checkpoint is written), which is how the resume test interrupts a run.
    `run_dir` is the output directory already opened by the caller with `open_run_directory`
    (a recipe opens it before it writes a vocabulary there); None opens it here, locked for
    the run, so two processes can never train into one directory. `baseline`, the training
    corpus's unigram counts, is scored next to every held-out MLM evaluation and saved with
    the model.
    `data_parallel`: a `DataParallel` when this process is one of several (module docstring);
    then rank 0 alone holds the directory (`open_job_directory`), `on_step` is called on every
    process and `eval_batches` / `evaluate` used on rank 0 only.
    Returns a summary with the final evaluation, the best one and the output paths.
    """
    plan = plan_stages(args, student, teacher, stages)
    if run_dir is not None and run_dir.path.resolve() != args.output_dir.resolve():
        raise ValueError(f"train: run_dir {run_dir.path} is not the output_dir "
                         f"{args.output_dir}")
    held = nullcontext(run_dir) if run_dir is not None else \
        open_job_directory(args.output_dir, data_parallel, resume=resume)
    with held:
        return _train(student, teacher, args, plan, batches, eval_batches, tokenizer, on_step,
                      resume, stop_after, evaluate, baseline, data_parallel)


def _train(student: Any, teacher: Any, args: TrainingArguments, plan: StagePlan, batches: Any,
           eval_batches: list[Any] | None, tokenizer: Any,
           on_step: Callable[[dict[str, Any]], None] | None, resume: bool,
           stop_after: int | None,
           evaluate: Callable[[Any], dict[str, float]] | None,
           baseline: UnigramBaseline | None,
           data_parallel: DataParallel | None) -> dict[str, Any]:
    """`train`'s body, in a directory this process (or its job's rank 0) holds."""
    run = open_run(student, args, plan, batches, resume, data_parallel)
    main = data_parallel is None or data_parallel.is_main
    if not main:
        eval_batches, evaluate = None, None
    if evaluate is None and eval_batches:
        def evaluate(model: Any) -> dict[str, float]:
            return evaluate_mlm(model, eval_batches, baseline)
    last_eval: dict[str, float] = {}
    current = -1
    try:
        log_path = args.output_dir / METRICS_NAME
        with open_metrics_log(log_path, run.step, resume) if main else nullcontext(_skip) as log:
            while run.step < plan.total:
                index, stage = plan.at(run.step)
                if index != current:
                    current = index
                    enter_stage(run.optimizer, student, stage,
                                fresh=run.step == plan.starts[index])
                record = train_step(student, teacher, run, stage, batches, args)
                run.step += 1
                if evaluate is not None and (run.step % args.eval_every == 0
                                             or run.step == plan.total):
                    last_eval = evaluate(student)
                    record.update({f"eval_{k}": v for k, v in last_eval.items()})
                    run.keep_best(last_eval, tokenizer)
                log(record)
                if on_step is not None:
                    on_step({**record, "total_steps": plan.total})
                if run.step % args.save_every == 0 or run.step in (plan.total, stop_after):
                    run.save(batches)
                if stop_after is not None and run.step >= stop_after:
                    break
    except KeyboardInterrupt:
        raise TrainingInterrupted(f"interrupted after step {run.step} of {plan.total}; "
                                  f"{run.last_good()}", run.saved_step) from None
    summary: dict[str, Any] = {"steps": run.step, "total_steps": plan.total,
                               "checkpoint": str(run.checkpoint), "eval": last_eval,
                               "best": run.best}
    if run.best is not None:
        summary["best_model_dir"] = str(args.output_dir / BEST_DIR)
    if run.step >= plan.total:
        model_dir = args.output_dir / "model"
        if main:
            student.save_pretrained(model_dir, tokenizer=tokenizer)
            if baseline is not None:
                baseline.save(model_dir / UNIGRAM_FILE)
        summary["model_dir"] = str(model_dir)
    return summary


def _skip(record: dict) -> None:
    """The metrics log of a process other than rank 0."""


def plan_stages(args: TrainingArguments, student: Any, teacher: Any,
                stages: list[Stage] | None = None) -> StagePlan:
    """`stages`, or the strategy's, on the global step axis; refuses an empty plan or a
    missing teacher before anything is written."""
    if stages is None:
        stages = build_stages(args.strategy, student.config.num_hidden_layers,
                              args.kt_steps_per_layer, args.pd_steps, args.kt,
                              args.warmup_proportion)
    plan = StagePlan.of(stages)
    if plan.total == 0:
        raise ValueError("nothing to train: the strategy's stages have 0 steps in total")
    if any(st.needs_teacher for st in plan.stages) and teacher is None:
        raise ValueError(f"strategy {args.strategy!r} needs a teacher model")
    if teacher is not None:
        teacher.eval()
    return plan


@dataclass
class Run:
    """What a run carries from step to step: the optimizer, the global step, where and with
    which config and plan it checkpoints, and the step of the last checkpoint written."""

    student: Any
    optimizer: optim.Optimizer
    step: int
    checkpoint: Path
    run_config: dict[str, Any]
    args: TrainingArguments
    plan: StagePlan
    saved_step: int | None = None
    best: dict[str, Any] | None = None    # the best evaluation so far, with its step
    data_parallel: DataParallel | None = None

    def save(self, batches: Any) -> None:
        """Write the checkpoint (rank 0); under DP, after checking that every process holds the
        same weights, with every process's dropout generators."""
        stages = [[st.name, st.steps] for st in self.plan.stages]
        extra: dict[str, Any] = {"args": _jsonable(self.args), "strategy": self.args.strategy,
                                 "stages": stages, "best": self.best}
        dp = self.data_parallel
        if dp is not None:
            dp.check_in_sync(self.student)
            extra["data_parallel"] = {"world_size": dp.size, "dropout_states":
                                      dp.allgather_json(dropout_states(self.student))}
        if dp is None or dp.is_main:
            save_training_checkpoint(self.checkpoint, self.student, self.optimizer, self.step,
                                     self.run_config, data_state=batches.state(), extra=extra)
        self.saved_step = self.step

    def last_good(self) -> str:
        """Where a stopped run can be resumed from, in words."""
        if self.saved_step is None:
            return "no checkpoint was written"
        return f"the last good checkpoint is {self.checkpoint} (step {self.saved_step})"

    def keep_best(self, metrics: dict[str, float], tokenizer: Any) -> None:
        """With `metric_for_best_model`, write the weights to OUTPUT_DIR/best when `metrics`
        beat the best so far (higher is better; NaN never beats a number)."""
        key = self.args.metric_for_best_model
        if key is None:
            return
        if key not in metrics:
            raise ValueError(f"metric_for_best_model {key!r} is not among the evaluation's "
                             f"metrics ({', '.join(metrics)})")
        value, best = float(metrics[key]), None if self.best is None else self.best[key]
        if best is None or value > best or (math.isnan(best) and not math.isnan(value)):
            self.student.save_pretrained(self.args.output_dir / BEST_DIR, tokenizer=tokenizer)
            self.best = {"step": self.step, **metrics}


def open_run(student: Any, args: TrainingArguments, plan: StagePlan, batches: Any,
             resume: bool, data_parallel: DataParallel | None = None) -> Run:
    """The LAMB optimizer with the plan's per-stage schedule, at step 0 of a fresh run or at
    the checkpoint's step (weights, moments, data position, RNG) of a resumed one. (That a
    fresh run starts in an empty directory is `open_run_directory`'s rule.) Under data
    parallelism every process opens the same run (checked), gets its own dropout stream (its
    saved one on resume) and rank 0's weights."""
    checkpoint = args.output_dir / CHECKPOINT_NAME
    run_config = student.config.to_dict()
    schedules = [stage_schedule(st, args.learning_rate, args.end_lr_rate) for st in plan.stages]

    def lr_at(step: int) -> float:
        i, _ = plan.at(step)
        return schedules[i](step - plan.starts[i])

    kind = optim.LAMB if args.optimizer == "lamb" else optim.AdamW
    opt = kind(student, lr=lr_at, eps=args.adam_epsilon, weight_decay=args.weight_decay,
               bias_correction=args.bias_correction)
    step, extra, saved_step = 0, {}, None
    if resume:
        if not checkpoint.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {checkpoint}")
        step, _, extra = load_training_checkpoint(
            checkpoint, student, opt, None,
            check=lambda meta, data: check_resumable(checkpoint, meta, data, run_config, args,
                                                     plan, batches))
        saved_step = step
    dp = data_parallel
    if dp is not None:
        join_data_parallel(dp, student, step, batches, extra)
    return Run(student, opt, step, checkpoint, run_config, args, plan, saved_step,
               best=extra.get("best"), data_parallel=dp)


def join_data_parallel(dp: DataParallel, student: Any, step: int, batches: Any,
                       extra: dict[str, Any]) -> None:
    """Every process starts from the same step and data position (checked), with its own
    dropout stream (its saved one on resume) and rank 0's weights."""
    dp.check_same("the run's starting step and data position (every process must see "
                  "--output-dir, e.g. on a shared filesystem)", [step, batches.state()])
    dp.seed_dropout(student)
    saved = extra.get("data_parallel", {}).get("dropout_states", [])
    if 0 < dp.rank < len(saved):
        restore_dropout_states(student, saved[dp.rank], "the checkpoint's dropout states")
    dp.broadcast_parameters(student)


def check_resumable(checkpoint: Path, meta: dict[str, Any], data_state: dict[str, Any],
                    model_config: dict[str, Any], args: TrainingArguments, plan: StagePlan,
                    batches: Any) -> None:
    """Whether this run can continue the checkpoint's: the same model config, strategy,
    stage boundaries and data stream; more steps (or fewer, down to the checkpoint's step) are
    fine, which is how a finished run is extended. Raises ResumeMismatch naming the field;
    on success the data iterator stands at the checkpoint's position."""
    saved = dict(meta.get("config", {}))
    legacy = {k: saved.pop(k) for k in ("strategy", "stages") if k in saved}  # older files
    diffs = config_differences(saved, model_config)
    if diffs:
        raise ResumeMismatch(f"{checkpoint} was written for a different model config: "
                             + "; ".join(diffs), "config")
    extra = meta.get("extra", {})
    strategy = extra.get("strategy", legacy.get("strategy", args.strategy))
    if strategy != args.strategy:
        raise ResumeMismatch(f"{checkpoint}: strategy differs: the checkpoint's run used "
                             f"{strategy!r}, this one {args.strategy!r}", "strategy")
    stages = extra.get("stages") or [s.rsplit(":", 1) for s in
                                     str(legacy.get("stages", "")).split(",") if ":" in s]
    ours = [(st.name, st.steps) for st in plan.stages]
    if stages and ([n for n, _ in stages] != [n for n, _ in ours]
                   or any(int(a[1]) != b[1] for a, b in zip(stages[:-1], ours[:-1]))):
        raise ResumeMismatch(
            f"{checkpoint}: kt_steps_per_layer differs: the checkpoint's stages are "
            f"{', '.join(f'{n}:{k}' for n, k in stages)}, this run's {plan.describe()}",
            "kt_steps_per_layer")
    if meta["step"] > plan.total:
        raise ResumeMismatch(f"{checkpoint} is at step {meta['step']}, past the {plan.total} "
                             f"steps this run asks for; ask for at least {meta['step']} to "
                             f"resume it (or more, to extend it)", "pd_steps")
    try:
        batches.load_state(data_state)
    except ValueError as e:
        raise ResumeMismatch(f"{checkpoint}: {e}", getattr(e, "field", "corpus")) from None


def enter_stage(opt: optim.Optimizer, student: Any, stage: Stage, fresh: bool) -> None:
    """Set up a stage: fresh moments when it starts (not when a run resumes inside it), its
    learning-rate scales (frozen parts at 0) and the student's dropout switch."""
    if fresh:
        opt.reset_state()
    opt.set_lr_scale(1.0)
    for pattern, scale in stage.lr_scales:
        opt.set_lr_scale(scale, pattern)
    student.train(stage.train_mode)


def train_step(student: Any, teacher: Any, run: Run, stage: Stage, batches: Any,
               args: TrainingArguments) -> dict[str, Any]:
    """Draw the step's micro-batches and take one `optimizer_step` on the stage's loss;
    returns the step's metrics record."""
    start = time.perf_counter()
    lr = run.optimizer.current_lr()
    micro = [next(batches) for _ in range(args.gradient_accumulation_steps)]
    dp = run.data_parallel
    items = sum(stage.items(b) for b in micro) if stage.items is not None else 0
    tokens = sum(int(b.attention_mask.sum()) for b in micro)
    if dp is not None:
        items, tokens = (int(v) for v in dp.sum([items, tokens]))
        reduced_s = dp.stats.allreduce_seconds
    # The items (masked tokens, examples) of an average micro-batch of one process: the
    # loss means divide by it, so accumulating and averaging give the global batch's mean.
    num_items = max(items, 1) / ((dp.size if dp else 1) * len(micro))

    def loss(batch: Any) -> dict[str, Any]:
        if stage.items is None:
            return stage.loss(student, teacher, batch)
        return stage.loss(student, teacher, batch, num_items)

    try:
        result = optimizer_step(student, run.optimizer, micro, loss, args.max_grad_norm,
                                dp.allreduce_gradients if dp is not None else None)
    except TrainingDiverged as e:
        where = "" if e.batch is None else locate_non_finite(student, teacher, e.batch)
        raise TrainingDiverged(f"training diverged at step {run.step + 1} (stage "
                               f"{stage.name}): {e}{where}; {run.last_good()}") from None
    losses = result.losses if dp is None else dp.average(result.losses)
    seconds = time.perf_counter() - start
    record = {"step": run.step + 1, "stage": stage.name, "lr": lr, "grad_norm": result.grad_norm,
              "seconds": seconds, "tokens_per_s": tokens / seconds, **losses}
    if dp is not None:
        record["allreduce_s"] = dp.stats.allreduce_seconds - reduced_s
    return record


@contextmanager
def open_metrics_log(path: Path, step: int, resume: bool) -> Iterator[Callable[[dict], None]]:
    """A function that appends one JSON record per line to `path`, flushed at once.

    A fresh run starts a fresh log. A resumed one first drops the records after its checkpoint
    (a killed run may have logged steps it then lost; they are about to be redone), rewriting
    the file atomically, then appends. The log itself is append-only: a crash loses at most
    the line being written, which the next resume drops.
    """
    if resume and path.exists():
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line + "\n")
            except (ValueError, KeyError, TypeError):
                continue                                   # a torn last line
        atomic_write_text(path, "".join(kept))
    with open(path, "a" if resume else "w", encoding="utf-8") as f:
        def log(record: dict) -> None:
            f.write(json.dumps(record) + "\n")
            f.flush()
        yield log


def _jsonable(args: TrainingArguments) -> dict[str, Any]:
    d = asdict(args)
    d["output_dir"] = str(d["output_dir"])
    return d
