"""Fine-tuning, evaluation and prediction on downstream tasks: what `tinybert finetune`,
`tinybert evaluate` and `tinybert predict` call.

`finetune` reads and checks the task files (`data/glue.py`, `data/squad.py`), loads the model
through the one loader (`models/auto.py`, so any saved MobileBERT/BERT directory works, or
builds it from the directory's config with `from_scratch`), and hands one "finetune" stage to
the pre-training loop (`training/loop.py`): AdamW with bias correction (torch's AdamW), linear
warm-up then linear decay to 0 (Google's BERT schedule), global-norm clipping, evaluation on
the dev file every epoch or N steps, the best evaluated weights kept in OUTPUT_DIR/best,
atomic checkpoints and bit-exact `--resume`. At the end it writes OUTPUT_DIR/model (the last
weights) and OUTPUT_DIR/eval_results.json: the best and last dev scores, the task's baseline on
the same dev examples (majority class; SQuAD: the all-null answer) and the training time per
epoch.

Labels: a GLUE task's labels come from `evaluation/glue.py`; a fine-tuned model saves them as
`id2label` / `label2id` (HF's fields) and its own order wins when it is read back (a model
trained with another MNLI order is scored in the task's order); a `custom` task takes
`labels`, else the saved ones, else the training file's, sorted.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from autograd.serialization import atomic_write_text
from tinybert_core.config import MobileBertConfig
from tinybert_core.data import tasks as T
from tinybert_core.data.glue import TaskExample, check_labels, labels_in, read_task_file
from tinybert_core.data.squad import SquadExample, featurize_squad, gold_answers, read_squad
from tinybert_core.distillation.strategies import Stage
from tinybert_core.evaluation import tasks as E
from tinybert_core.evaluation.glue import (
    REGRESSION,
    GlueTask,
    majority_baseline,
    predictions_from_logits,
)
from tinybert_core.evaluation.squad import squad_evaluate
from tinybert_core.evaluation.squad_postprocess import write_predictions
from tinybert_core.models.auto import load_model, model_class
from tinybert_core.models.heads import rescale_mean
from tinybert_core.quantization.checkpoint import quantization_config
from tinybert_core.quantization.qat import CONFIG_KEY as QAT_KEY
from tinybert_core.quantization.qat import QATConfig, prepare_for_finetuning
from tinybert_core.text.tokenization import BertTokenizer
from tinybert_core.training.loop import METRICS_NAME, TrainingArguments, train
from tinybert_core.training.run_dir import open_job_directory, open_run_directory

RESULTS_NAME = "eval_results.json"


@dataclass
class TaskOptions:
    """How a task's files become model inputs and answers (finetune, evaluate, predict)."""

    task: str
    max_seq_length: int | None = None     # None: see `resolved`
    doc_stride: int | None = None         # Google's meaning: the step between windows
    max_query_length: int | None = None
    labels: Sequence[str] | None = None   # a custom task's labels
    eval_batch_size: int = 64
    n_best_size: int = 20
    max_answer_length: int = 30
    null_score_diff_threshold: float = 0.0

    def resolved(self, spec: T.TaskSpec, config: MobileBertConfig) -> TaskOptions:
        """Every window size filled in: as given, else as the model was fine-tuned with
        (saved in its config), else the default: max_seq_length 128 (SQuAD 384) cut to the
        model's position table (as HF's run_glue cuts it to the tokenizer's limit),
        doc_stride 128, max_query_length 64."""
        saved = config.extra.get("finetuning_options") or {}
        default = {"max_seq_length": min(384 if spec.is_squad else 128,
                                         config.max_position_embeddings),
                   "doc_stride": 128, "max_query_length": 64}
        return replace(self, **{k: getattr(self, k) if getattr(self, k) is not None
                                else int(saved.get(k) or v) for k, v in default.items()})


@dataclass
class FinetuneOptions:
    """The schedule (HF's run_glue names where one exists)."""

    epochs: float = 3.0
    max_steps: int | None = None          # overrides epochs
    batch_size: int = 32
    lr: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    # HF Trainer's and torch.optim.AdamW's default. Google's BERT used 1e-6, which damps every
    # gradient below ~1e-6: on a small model that is most of them early on, and it kept a
    # 4-layer BERT at the majority class on epistemic where 1e-8 learns (docs/finetuning.md).
    adam_epsilon: float = 1e-8
    eval_every: int = 0                   # steps; 0 = once per epoch
    save_every: int = 0                   # steps; 0 = once per epoch
    seed: int = 0
    max_train_examples: int | None = None  # a seeded subsample of the training file
    from_scratch: bool = False            # random weights from MODEL_DIR's config
    overwrite_output_dir: bool = False
    qat: QATConfig | None = None          # QAT (quantization/qat.py); keep-float as patterns
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- model & labels

def load_tokenizer(model_dir: Path) -> BertTokenizer:
    if not (Path(model_dir) / "vocab.txt").is_file():
        raise FileNotFoundError(f"{model_dir}: no vocab.txt; a model directory needs the "
                                f"vocabulary it was trained with")
    return BertTokenizer.from_pretrained(model_dir)


def _is_task_model(config: MobileBertConfig, task: str) -> bool:
    suffix = "ForQuestionAnswering" if task == "question_answering" else \
        "ForSequenceClassification"
    return any(a.endswith(suffix) for a in config.architectures or ())


def resolve_labels(spec: T.TaskSpec, config: MobileBertConfig, where: Path,
                   labels: Sequence[str] | None = None,
                   train: Sequence[TaskExample] | None = None) -> GlueTask:
    """The task's label table, checked against a fine-tuned model's own labels."""
    saved = [config.id2label[i] for i in range(config.num_labels)] if config.id2label else None
    if spec.name == T.CUSTOM:
        labels = labels or saved or (labels_in(train) if train is not None else None)
        if not labels:
            raise ValueError("task custom: no labels; pass them (--labels), or fine-tune "
                             "from a file with a label column")
    task = spec.glue_task(labels)
    trained = _is_task_model(config, "sequence_classification")
    if trained and config.num_labels != task.num_labels:
        raise ValueError(f"{where}: the model has num_labels {config.num_labels} but task "
                         f"{task.name} has {task.num_labels} "
                         f"({', '.join(task.labels) if task.labels else 'regression'})")
    if trained and saved and task.labels and set(saved) != set(task.labels):
        raise ValueError(f"{where}: the model's labels ({', '.join(saved)}) are not task "
                         f"{task.name}'s ({', '.join(task.labels)})")
    return task


def model_label2id(task: GlueTask, config: MobileBertConfig) -> dict[str, int] | None:
    """How label strings map to the model's outputs: its own saved order when it has the
    task's labels, else the task's (None for regression)."""
    if task.output_mode == REGRESSION:
        return None
    if config.id2label and set(config.id2label.values()) == set(task.labels):
        return {name: i for i, name in config.id2label.items()}
    return task.label2id


def to_task_order(logits: np.ndarray, task: GlueTask, label2id: dict[str, int] | None
                  ) -> np.ndarray:
    """Logit columns reordered from the model's label order to the task table's."""
    if label2id is None or label2id == task.label2id:
        return logits
    return logits[:, [label2id[name] for name in task.labels]]


def load_task_model(model_dir: Path, spec: T.TaskSpec, task: GlueTask | None, seed: int,
                    from_scratch: bool) -> Any:
    """The model to fine-tune: the directory's weights (a new head where it has none), or
    random weights from its config; the head sized and labelled for the task."""
    config = MobileBertConfig.from_pretrained(model_dir)
    if quantization_config(config, str(model_dir / "config.json")) is not None:
        raise ValueError(f"{model_dir} is an int8 model, which is inference-only (int8 weights "
                         f"have no gradient): fine-tune its float original, then quantize")
    overrides: dict[str, Any] = {}
    if task is not None:
        label2id = model_label2id(task, config)
        overrides = {"num_labels": task.num_labels,
                     "id2label": None if label2id is None else
                     {i: name for name, i in label2id.items()}}
    if from_scratch:
        config = config.replace(**overrides)
        model = model_class(config, spec.model_task)(config, seed=seed)
    else:
        model = load_model(model_dir, spec.model_task, seed=seed, **overrides)
    model.config.extra["finetuning_task"] = spec.name
    return model


def load_finetuned(model_dir: Path, spec: T.TaskSpec) -> Any:
    """A fine-tuned model for evaluation or prediction; refuses one without a trained head."""
    model = load_model(model_dir, spec.model_task)
    missing = getattr(model, "loading_info", {}).get("missing_keys", [])
    if missing:
        raise ValueError(f"{model_dir}: no trained {spec.model_task.replace('_', ' ')} head "
                         f"(missing {', '.join(missing[:3])}); fine-tune it first "
                         f"(tinybert finetune)")
    return model


# ----------------------------------------------------------------------------- data

@dataclass
class TaskSet:
    """One file of a task, encoded: batches on demand, and what scoring needs."""

    n: int
    make_batch: Callable[[np.ndarray], Any]
    lengths: list[int]
    labels: np.ndarray | None = None                      # in the task table's label order
    examples: list[Any] = field(default_factory=list)     # TaskExample / SquadExample
    features: list[Any] = field(default_factory=list)     # SquadFeature (post-processing)

    def eval_batches(self, batch_size: int) -> Any:
        return T.eval_batches(self.make_batch, self.lengths, batch_size)


def subsample(examples: list[Any], limit: int | None, seed: int) -> list[Any]:
    """A seeded random subset of `limit` examples, in file order (all when limit is None)."""
    if limit is None or limit >= len(examples):
        return examples
    keep = np.sort(np.random.default_rng([seed, 1]).choice(len(examples), limit, replace=False))
    return [examples[i] for i in keep]


def sentence_set(examples: list[TaskExample], path: Path, tokenizer: BertTokenizer,
                 task: GlueTask, label2id: dict[str, int] | None, max_seq_length: int,
                 labelled: bool = True) -> TaskSet:
    """Sentence(-pair) examples encoded; batches carry labels in the model's order
    (`label2id`), `TaskSet.labels` keeps the task's."""
    labels = model_labels = check_labels(path, examples, task) if labelled else None
    if labels is not None and label2id is not None and label2id != task.label2id:
        model_labels = np.array([label2id[name] for name in task.labels])[labels]
    enc = T.encode_pairs(tokenizer, [e.text_a for e in examples],
                         [e.text_b for e in examples], max_seq_length)
    make = T.classification_collate(enc, model_labels, tokenizer.pad_token_id)
    return TaskSet(len(examples), make, [len(r) for r in enc.input_ids], labels, examples)


def squad_set(examples: list[SquadExample], tokenizer: BertTokenizer, opts: TaskOptions,
              training: bool) -> TaskSet:
    f = featurize_squad(examples, tokenizer, opts.max_seq_length, opts.doc_stride,
                        opts.max_query_length)
    make = T.qa_collate(f.input_ids, f.token_type_ids, f.start_positions if training else None,
                        f.end_positions if training else None, tokenizer.pad_token_id)
    return TaskSet(len(f.input_ids), make, [len(r) for r in f.input_ids], None, examples,
                   f.features)


def check_seq_length(config: MobileBertConfig, max_seq_length: int) -> None:
    if max_seq_length > config.max_position_embeddings:
        raise ValueError(f"max_seq_length {max_seq_length} exceeds the model's "
                         f"max_position_embeddings {config.max_position_embeddings}")


# ----------------------------------------------------------------------------- scoring

def score(model: Any, spec: T.TaskSpec, task: GlueTask | None, data: TaskSet,
          opts: TaskOptions, label2id: dict[str, int] | None,
          on_batch: E.Progress | None = None) -> tuple[dict[str, float], Any]:
    """(metrics, predictions) of `model` on a labelled set: class ids / targets in the task's
    order, or the SQuAD predictions."""
    if spec.is_squad:
        result = predict_squad(model, data, opts, spec, on_batch)
        metrics, _ = E.score_squad(gold_answers(data.examples), result, spec.squad_version)
        return metrics, result
    logits = to_task_order(E.classifier_logits(model, data.eval_batches(opts.eval_batch_size),
                                               data.n, on_batch), task, label2id)
    return task.compute_metrics(predictions_from_logits(task, logits), data.labels), logits


def predict_squad(model: Any, data: TaskSet, opts: TaskOptions, spec: T.TaskSpec,
                  on_batch: E.Progress | None = None) -> Any:
    start, end = E.span_logits(model, data.eval_batches(opts.eval_batch_size), data.n, on_batch)
    contexts = {ex.qid: ex.context for ex in data.examples}
    return E.squad_predictions(contexts, data.features, start, end, spec.squad_version,
                               opts.n_best_size, opts.max_answer_length,
                               opts.null_score_diff_threshold)


def baseline(spec: T.TaskSpec, task: GlueTask | None, dev: TaskSet,
             train_labels: np.ndarray | None) -> dict[str, float]:
    """The task's baseline on `dev`: majority class (training mean) of `train_labels`, or of
    the dev labels themselves when there are none; SQuAD: every answer ""."""
    if spec.is_squad:
        gold = gold_answers(dev.examples)
        return squad_evaluate(gold, {q: "" for q in gold}, version=spec.squad_version)
    ref = dev.labels if train_labels is None else train_labels
    return majority_baseline(task, ref, dev.labels)


def main_metric(spec: T.TaskSpec, task: GlueTask | None) -> str:
    return "f1" if spec.is_squad else task.main_metric


# ----------------------------------------------------------------------------- recipes

def finetune(model_dir: Path, output_dir: Path, train_file: Path, dev_file: Path | None,
             opts: TaskOptions, fopts: FinetuneOptions, resume: bool = False,
             on_step: Callable[[dict], None] | None = None,
             data_parallel: Any = None) -> dict[str, Any]:
    """Fine-tune `model_dir` on a task (see the module docstring); returns the loop's summary
    and, once the run is complete, the `results` that eval_results.json holds.

    `data_parallel` (an autograd.distributed.DataParallel, under mpiexec): every process reads
    and encodes the task files, trains on its part of each global batch of `batch_size`
    (`TaskBatches(shard=)`); rank 0 alone evaluates and writes (training/loop.py)."""
    model_dir, output_dir = Path(model_dir), Path(output_dir)
    spec = T.resolve_task(opts.task)
    config = MobileBertConfig.from_pretrained(model_dir)
    opts = opts.resolved(spec, config)
    tokenizer = load_tokenizer(model_dir)
    data = prepare(spec, config, tokenizer, opts, fopts, model_dir, train_file, dev_file)
    model = load_task_model(model_dir, spec, data.task, fopts.seed, fopts.from_scratch)
    prepare_for_finetuning(model, fopts.qat)
    model.config.extra["finetuning_options"] = {
        "max_seq_length": opts.max_seq_length, "doc_stride": opts.doc_stride,
        "max_query_length": opts.max_query_length}
    dp = data_parallel
    batches = T.TaskBatches(data.train.make_batch, data.train.n, fopts.batch_size, fopts.seed,
                            shard=(0, 1) if dp is None else (dp.rank, dp.size))
    per_epoch = batches.steps_per_epoch
    total = fopts.max_steps or max(1, math.ceil(fopts.epochs * per_epoch))
    stage = Stage("finetune", total, task_loss, needs_teacher=False,
                  warmup_proportion=fopts.warmup_ratio, items=batch_examples)
    dev, metric = data.dev, main_metric(spec, data.task)
    args = TrainingArguments(
        output_dir=output_dir, learning_rate=fopts.lr, end_lr_rate=0.0,
        warmup_proportion=fopts.warmup_ratio, weight_decay=fopts.weight_decay,
        max_grad_norm=fopts.max_grad_norm, adam_epsilon=fopts.adam_epsilon,
        eval_every=fopts.eval_every or per_epoch,
        save_every=fopts.save_every or per_epoch, seed=fopts.seed, optimizer="adamw",
        bias_correction=True, metric_for_best_model=metric if dev else None)
    evaluate = None if dev is None else \
        (lambda m: score(m, spec, data.task, dev, opts, data.label2id)[0])
    # Only now, with every input read and checked, is the output directory touched.
    with open_job_directory(output_dir, dp, resume=resume, overwrite=fopts.overwrite_output_dir,
                            inputs=[model_dir, train_file, dev_file]) as run_dir:
        summary = train(model, args, batches, tokenizer=tokenizer,
                        on_step=on_step, resume=resume, stages=[stage], evaluate=evaluate,
                        run_dir=run_dir, data_parallel=dp)
        if summary["steps"] < total or (dp is not None and not dp.is_main):
            return summary
        seconds = sum(r.get("seconds", 0.0) for r in _records(output_dir / METRICS_NAME))
        results = {
            "task": spec.name, "model_dir": str(model_dir), "from_scratch": fopts.from_scratch,
            "train_examples": data.train_examples, "train_features": data.train.n,
            "dev_examples": len(dev.examples) if dev else 0, "max_seq_length":
            opts.max_seq_length, "batch_size": fopts.batch_size, "lr": fopts.lr,
            "steps": total, "epochs": total / per_epoch, "steps_per_epoch": per_epoch,
            "seconds_per_epoch": seconds * per_epoch / total, "metric": metric,
            "best": summary["best"], "final": summary["eval"],
            "baseline": baseline(spec, data.task, dev, data.train.labels) if dev else None,
            "qat": model.config.extra.get(QAT_KEY),
            "model": summary["model_dir"], "best_model": summary.get("best_model_dir")}
        atomic_write_text(output_dir / RESULTS_NAME, json.dumps(results, indent=2) + "\n")
    return {**summary, "results": results}


def task_loss(student: Any, teacher: Any, batch: Any, num_items: float | None = None
              ) -> dict[str, Any]:
    """The task head's loss (HF's: a mean over the batch's examples), as the sum over them
    / `num_items` when the training loop counts the examples of a larger global batch."""
    loss = student(**batch._asdict()).loss
    return {"loss": loss if num_items is None else
            rescale_mean(loss, batch_examples(batch), num_items)}


def batch_examples(batch: Any) -> int:
    """The examples (SQuAD: windows) a task batch's loss averages over."""
    return len(batch.input_ids)


@dataclass
class Prepared:
    """A fine-tuning run's data: the label table, the encoded training and dev sets."""

    task: GlueTask | None
    label2id: dict[str, int] | None
    train: TaskSet
    dev: TaskSet | None
    train_examples: int            # examples (SQuAD: questions) before windowing


def prepare(spec: T.TaskSpec, config: MobileBertConfig, tokenizer: BertTokenizer,
            opts: TaskOptions, fopts: FinetuneOptions, model_dir: Path, train_file: Path,
            dev_file: Path | None) -> Prepared:
    """Read, check and encode the training and dev files (nothing is written)."""
    check_seq_length(config, opts.max_seq_length)
    if spec.is_squad:
        train_ex = subsample(read_squad(train_file, spec.squad_version),
                             fopts.max_train_examples, fopts.seed)
        dev_ex = read_squad(dev_file, spec.squad_version) if dev_file else None
        return Prepared(None, None, squad_set(train_ex, tokenizer, opts, training=True),
                        squad_set(dev_ex, tokenizer, opts, training=False) if dev_ex else None,
                        len(train_ex))
    train_ex = subsample(read_task_file(train_file, spec.name), fopts.max_train_examples,
                         fopts.seed)
    dev_ex = read_task_file(dev_file, spec.name) if dev_file else None
    task = resolve_labels(spec, config, model_dir, opts.labels, train_ex)
    label2id = model_label2id(task, config)
    seq = opts.max_seq_length
    return Prepared(task, label2id,
                    sentence_set(train_ex, train_file, tokenizer, task, label2id, seq),
                    sentence_set(dev_ex, dev_file, tokenizer, task, label2id, seq)
                    if dev_ex else None, len(train_ex))


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def read_labelled(spec: T.TaskSpec, path: Path, config: MobileBertConfig, model_dir: Path,
                  tokenizer: BertTokenizer, opts: TaskOptions, labelled: bool = True
                  ) -> tuple[GlueTask | None, dict[str, int] | None, TaskSet]:
    """A task file encoded for `config`'s model: (task, the model's label2id, the set)."""
    check_seq_length(config, opts.max_seq_length)
    if spec.is_squad:
        examples = read_squad(path, spec.squad_version, labelled=labelled)
        return None, None, squad_set(examples, tokenizer, opts, training=False)
    examples = read_task_file(path, spec.name)
    task = resolve_labels(spec, config, model_dir, opts.labels)
    if config.num_labels != task.num_labels:
        raise ValueError(f"{model_dir}: the model has num_labels {config.num_labels} but task "
                         f"{task.name} has {task.num_labels}")
    label2id = model_label2id(task, config)
    return task, label2id, sentence_set(examples, path, tokenizer, task, label2id,
                                        opts.max_seq_length, labelled)


def evaluate(model_dir: Path, dev_file: Path, opts: TaskOptions, output_dir: Path,
             train_file: Path | None = None, overwrite: bool = False,
             on_batch: E.Progress | None = None) -> dict[str, Any]:
    """Score a fine-tuned model on a labelled file next to the task's baseline; writes
    OUTPUT_DIR/eval_results.json (and, for SQuAD, the three prediction files)."""
    model_dir, output_dir = Path(model_dir), Path(output_dir)
    spec = T.resolve_task(opts.task)
    model = load_finetuned(model_dir, spec)
    opts = opts.resolved(spec, model.config)
    task, label2id, dev = read_labelled(spec, dev_file, model.config, model_dir,
                                        load_tokenizer(model_dir), opts)
    train_labels, kind = None, "all-null answer" if spec.is_squad else \
        "majority class of the dev labels (no --train-file)"
    if train_file is not None and not spec.is_squad:
        train_labels = check_labels(train_file, read_task_file(train_file, spec.name), task)
        kind = "majority class of --train-file"
    metrics, predictions = score(model, spec, task, dev, opts, label2id, on_batch)
    results = {"task": spec.name, "model_dir": str(model_dir), "dev_file": str(dev_file),
               "examples": len(dev.examples), "metric": main_metric(spec, task),
               "metrics": metrics, "baseline": baseline(spec, task, dev, train_labels),
               "baseline_kind": kind}
    with open_run_directory(output_dir, overwrite=overwrite,
                            inputs=[model_dir, dev_file, train_file]):
        if spec.is_squad:
            write_predictions(output_dir, predictions)
        atomic_write_text(output_dir / RESULTS_NAME, json.dumps(results, indent=2) + "\n")
    return results


def predict(model_dir: Path, input_file: Path, output: Path, opts: TaskOptions,
            overwrite: bool = False, on_batch: E.Progress | None = None
            ) -> list[Path]:
    """Predict a (possibly unlabelled) file: a GLUE submission TSV (`index<TAB>prediction`,
    label names, or the score to 3 decimals for regression) or, for SQuAD, predictions.json
    at `output` with nbest_predictions.json and null_odds.json (v2.0) beside it."""
    model_dir, output = Path(model_dir), Path(output)
    spec = T.resolve_task(opts.task)
    siblings = {"nbest": output.with_name("nbest_predictions.json"),
                "null_odds": output.with_name("null_odds.json")}
    _refuse_existing([output, *siblings.values()] if spec.is_squad else [output], overwrite)
    model = load_finetuned(model_dir, spec)
    opts = opts.resolved(spec, model.config)
    task, label2id, data = read_labelled(spec, input_file, model.config, model_dir,
                                         load_tokenizer(model_dir), opts, labelled=False)
    output.parent.mkdir(parents=True, exist_ok=True)
    if spec.is_squad:
        result = predict_squad(model, data, opts, spec, on_batch)
        files = {output: result.predictions, siblings["nbest"]: result.nbest}
        if result.null_odds is not None:
            files[siblings["null_odds"]] = result.null_odds
        for path, content in files.items():
            atomic_write_text(path, json.dumps(content, indent=4) + "\n")
        return list(files)
    logits = to_task_order(E.classifier_logits(model, data.eval_batches(opts.eval_batch_size),
                                               data.n, on_batch), task, label2id)
    preds = predictions_from_logits(task, logits)
    rows = [f"{i}\t{task.labels[p] if task.labels else f'{p:.3f}'}" for i, p in enumerate(preds)]
    atomic_write_text(output, "index\tprediction\n" + "".join(r + "\n" for r in rows))
    return [output]


def _refuse_existing(paths: Sequence[Path], overwrite: bool) -> None:
    if overwrite:
        return
    for path in paths:
        if path.exists():
            raise FileExistsError(f"{path} already exists; refusing to mix two runs' outputs "
                                  f"(choose another path or pass --overwrite)")
