"""The quickstart's stages, their settings, and the state file that makes a run resumable.

OUTPUT_DIR (default runs/quickstart) after a run:

    quickstart.json   settings, and per stage: done or not, seconds, what it produced
    configs/          the teacher's and the student's config.json (unless presets were given)
    vocab/vocab.txt   the WordPiece vocabulary (stage "vocab")
    task/             the task's train.tsv and dev.tsv (the embedded task, or a copy of yours)
    teacher/          `tinybert pretrain` run: checkpoint.npz, metrics.jsonl, model/
    student/          `tinybert distill` run (the strategy's stages in one metrics.jsonl)
    finetune/         `tinybert finetune` run: model/, best/, eval_results.json
    int8/             `tinybert quantize` output: the int8 model and quantization_report.json
    eval/             measurements: held-out MLM, task scores float and int8, latency,
                      examples, teacher-student comparison
    report.md, *.png  the report (pictures when matplotlib is installed)

Every stage is one library recipe (the commands' own code path). A training stage checkpoints
as it goes; a stage that is done is recorded in quickstart.json and skipped by the next call, a
training stage that was killed resumes from its checkpoint, any other unfinished stage is
redone from scratch (its directory is removed first: it lies inside this run's locked output
directory). A second call with other settings is refused unless the directory is overwritten.
"""
from __future__ import annotations

import json
import shutil
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autograd.files import atomic_write_text
from tinybert_core.config import PRESETS

STATE_NAME = "quickstart.json"
STAGES = ("vocab", "teacher", "student", "finetune", "quantize", "evaluate", "report")
DESCRIPTIONS = {
    "vocab": "WordPiece vocabulary of the corpus",
    "teacher": "pre-train the IB-BERT teacher (masked LM + next sentence)",
    "student": "knowledge transfer into the MobileBERT student",
    "finetune": "fine-tune the student on the task",
    "quantize": "post-training int8 quantization of the fine-tuned student",
    "evaluate": "held-out MLM, task accuracy float and int8, latency, examples",
    "report": "write report.md (and pictures)",
}

STATE_VERSION = 1

# The default teacher/student pair: the learn experiment's sizes (docs/experiment.md), small
# enough that the whole path fits in about 15 minutes on 2 cores. Same embedding width,
# inter-block width, heads and depth, so feature-map and attention transfer line up.
_TEACHER = {"embedding_size": 64, "hidden_size": 128, "num_hidden_layers": 4,
            "num_attention_heads": 4, "intra_bottleneck_size": 256, "intermediate_size": 512,
            "num_feedforward_networks": 1, "key_query_shared_bottleneck": False,
            "use_bottleneck_attention": False, "hidden_act": "gelu_new",
            "normalization_type": "layer_norm", "hidden_dropout_prob": 0.1,
            "max_position_embeddings": 128}
_STUDENT = {"embedding_size": 64, "hidden_size": 128, "num_hidden_layers": 4,
            "num_attention_heads": 4, "intra_bottleneck_size": 32, "intermediate_size": 128,
            "num_feedforward_networks": 4, "key_query_shared_bottleneck": True,
            "use_bottleneck_attention": False, "hidden_act": "relu",
            "normalization_type": "no_norm", "hidden_dropout_prob": 0.0,
            "max_position_embeddings": 128}
BUILT_IN = {"quickstart-teacher": _TEACHER, "quickstart-student": _STUDENT}


@dataclass
class QuickstartSettings:
    """Everything that decides what the run computes (saved in quickstart.json)."""

    strategy: str = "progressive"
    corpus: list[str] = field(default_factory=list)        # empty: the embedded corpus
    eval_corpus: list[str] = field(default_factory=list)   # empty: its held-out split
    task: str = "custom"
    train_file: str | None = None                           # None: the embedded task
    dev_file: str | None = None
    labels: list[str] | None = None
    teacher_config: str = "quickstart-teacher"
    student_config: str = "quickstart-student"
    vocab_size: int = 8000
    batch_size: int = 16
    max_seq_length: int = 64
    max_predictions: int = 10
    eval_batches: int = 10
    teacher_steps: int = 800
    teacher_lr: float = 1e-2
    kt_steps_per_layer: int = 40
    pd_steps: int = 240
    student_lr: float = 5e-3
    finetune_epochs: float = 4.0
    finetune_lr: float = 1e-3
    finetune_batch_size: int = 32
    max_train_examples: int | None = None
    latency_sentences: int = 32
    seed: int = 0

    def check(self) -> None:
        if self.corpus and not self.eval_corpus:
            raise ValueError("--corpus needs --eval-corpus too: the report measures held-out "
                             "masked-LM on text the models did not train on")
        if (self.train_file is None) != (self.dev_file is None):
            raise ValueError("--train-file and --dev-file go together (the dev file scores "
                             "the fine-tuned model)")
        if self.train_file is None and self.task != "custom":
            raise ValueError(f"--task {self.task} needs --train-file and --dev-file; without "
                             f"them the embedded task is used")
        if self.teacher_steps < 1 or self.kt_steps_per_layer * 4 + self.pd_steps < 1:
            raise ValueError("the teacher and the student need at least one step each")


class StageReporter:
    """How a stage shows progress: `stage(name, total, unit)` is a context manager yielding
    `update(n, item)`; `note(text)` says something once. The CLI draws bars or lines."""

    def stage(self, name: str, total: int | None, unit: str = "steps") -> Any:
        return nullcontext(_Ignore())

    def note(self, text: str) -> None:
        pass


class _Ignore:
    def update(self, n: int = 1, item: Any = None, total: int | None = None) -> None:
        pass


class Run:
    """The output directory's state: settings and per-stage records, saved atomically."""

    def __init__(self, root: Path, settings: QuickstartSettings) -> None:
        self.root = root
        self.settings = settings
        self.path = root / STATE_NAME
        self.state: dict[str, Any] = {"version": STATE_VERSION, "settings": asdict(settings),
                                      "stages": {}}

    def load_or_start(self) -> bool:
        """True when an earlier call's state was found (and matches these settings)."""
        if not self.path.is_file():
            self.save()
            return False
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise ValueError(f"{self.path}: not JSON ({e}); pass --overwrite-output-dir to "
                             f"start afresh") from None
        old = state.get("settings", {})
        new = asdict(self.settings)
        differ = [k for k in new if old.get(k) != new[k]]
        if differ:
            k = differ[0]
            raise ValueError(f"{self.root} holds a quickstart run with other settings ({k}: "
                             f"{old.get(k)!r} there, {new[k]!r} now); pass "
                             f"--overwrite-output-dir to start afresh, or another --output-dir")
        self.state = state
        return True

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.state, indent=1) + "\n")

    def done(self, stage: str) -> bool:
        return self.state["stages"].get(stage, {}).get("status") == "done"

    def record(self, stage: str, seconds: float, resumed: bool, **info: Any) -> None:
        self.state["stages"][stage] = {"status": "done", "seconds": round(seconds, 2),
                                       "resumed": resumed, **info}
        self.save()

    def info(self, stage: str) -> dict[str, Any]:
        return self.state["stages"].get(stage, {})


def fresh_or_resume(stage_dir: Path, resumable: bool) -> bool:
    """Prepare a stage's directory: True to resume its checkpoint; else it is removed (an
    unfinished stage without a checkpoint starts over)."""
    if resumable and (stage_dir / "checkpoint.npz").is_file():
        return True
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    return False


def resolve_model_config(run: Run, name: str, which: str) -> str | Path:
    """A built-in quickstart config (written to configs/<which>/config.json), a preset, or a
    directory / config.json as given."""
    if name in BUILT_IN:
        from tinybert_core.config import MobileBertConfig
        d = run.root / "configs" / which
        if not (d / "config.json").is_file():
            d.mkdir(parents=True, exist_ok=True)
            MobileBertConfig.from_dict(BUILT_IN[name]).save_pretrained(d)
        return d
    return name if name in PRESETS else Path(name)


@dataclass
class Context:
    run: Run
    reporter: StageReporter
    cache_dir: Path | None

    @property
    def root(self) -> Path:
        return self.run.root

    @property
    def s(self) -> Any:
        return self.run.settings

    def data(self) -> Any:
        from tinybert_core.recipes import DataOptions
        s = self.s
        return DataOptions(corpus=[Path(p) for p in s.corpus] or None,
                           eval_corpus=[Path(p) for p in s.eval_corpus] or None,
                           vocab=self.root / "vocab" / "vocab.txt", batch_size=s.batch_size,
                           max_seq_length=s.max_seq_length,
                           max_predictions_per_seq=s.max_predictions,
                           eval_batches=s.eval_batches, cache_dir=self.cache_dir, seed=s.seed)

    def task_files(self) -> tuple[Path, Path]:
        return self.root / "task" / "train.tsv", self.root / "task" / "dev.tsv"

    def training(self, name: str, total: int) -> Any:
        return self.reporter.stage(name, total, "steps")


def rel(run: Run, path: Any) -> str:
    return Path(path).resolve().relative_to(run.root.resolve()).as_posix()


def task_options(ctx: Context) -> Any:
    from tinybert_core.finetuning import TaskOptions
    labels = ctx.s.labels or (None if ctx.s.train_file else
                              list(ctx.run.info("vocab").get("labels") or []) or None)
    return TaskOptions(task=ctx.s.task, labels=labels, max_seq_length=ctx.s.max_seq_length)


def task_paths(ctx: Context) -> tuple[Path, Path]:
    train, dev = ctx.task_files()
    if ctx.s.train_file is not None:
        train = train.with_suffix(Path(ctx.s.train_file).suffix)
        dev = dev.with_suffix(Path(ctx.s.dev_file).suffix)
    return train, dev


__all__ = ["BUILT_IN", "DESCRIPTIONS", "STAGES", "STATE_NAME", "Context", "QuickstartSettings",
           "Run", "StageReporter", "fresh_or_resume", "rel", "resolve_model_config",
           "task_options", "task_paths"]
