"""GLUE tasks in one table: each task's label list, output mode and metrics.

`GLUE_TASKS` is the one place a task name is defined. The data readers take the label list
(`labels`, and `id2label` / `label2id` for the saved config, HF's field names) and the output
mode from it; the evaluation takes the metrics. It lives in `evaluation/` because its metric
column is evaluation code and `evaluation/` imports nothing else of tinybert_core, so `data/`
can import it without a cycle. (`data/` is still a module, `data.py`, on this branch.)

Metrics are those of Hugging Face's `glue_compute_metrics` (transformers
`src/transformers/data/metrics/__init__.py`), with its key names, as fractions (the GLUE
leaderboard prints them x100):

    cola                        {"mcc"}                          Matthews correlation
    sst-2, qnli, rte, wnli      {"acc"}                          accuracy
    mnli / mnli-mm              {"mnli/acc"} / {"mnli-mm/acc"}   accuracy, matched / mismatched
    mrpc, qqp                   {"acc", "f1", "acc_and_f1"}      F1 of class 1; mean of the two
    sts-b                       {"pearson", "spearmanr", "corr"} mean of the two correlations

`main_metric` is the number the GLUE benchmark ranks a task by (MRPC/QQP: the mean of F1 and
accuracy, STS-B: the mean of the correlations); fine-tuning keeps the checkpoint that maximises
it.

Label lists are the label strings of the official GLUE TSV files, in the order of HF's GLUE
processors (transformers `data/processors/glue.py`) and Google's `run_classifier.py`, so class 1
is the positive class of MRPC ("1" = paraphrase) and QQP ("1" = duplicate).

MNLI label order: ("contradiction", "entailment", "neutral"). This is the order of Google's BERT
and MobileBERT `run_classifier.py` (the code behind the paper's MNLI numbers) and of HF's GLUE
processors, and it is sorted, like our other multi-class tasks' labels (`../shared/data/glue/
vitaminc` uses the same three names), so one name has one id across NLI tasks. The `datasets`
library's GLUE/MNLI numbers its labels entailment=0, neutral=1, contradiction=2 (as HF's newer
`run_glue.py` therefore does); a checkpoint fine-tuned that way carries that order in its
config's `label2id`, and a reader must map label strings through the checkpoint's `label2id`
when it has one: this table only seeds the labels of a new classification head.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tinybert_core.evaluation.metrics import (
    accuracy,
    f1_score,
    matthews_corrcoef,
    pearson_corr,
    spearman_corr,
)

__all__ = [
    "CLASSIFICATION",
    "GLUE_TASKS",
    "REGRESSION",
    "GlueTask",
    "acc_and_f1",
    "custom_task",
    "get_task",
    "glue_compute_metrics",
    "majority_baseline",
    "pearson_and_spearman",
    "predictions_from_logits",
]

CLASSIFICATION, REGRESSION = "classification", "regression"
MetricFn = Callable[[np.ndarray, np.ndarray], dict[str, float]]


# ----------------------------------------------------------------------------- combinations

def simple_accuracy(preds, labels) -> dict[str, float]:
    return {"acc": accuracy(preds, labels)}


def acc_and_f1(preds, labels) -> dict[str, float]:
    """Accuracy, binary F1 of class 1, and their mean (MRPC, QQP)."""
    acc, f1 = accuracy(preds, labels), f1_score(preds, labels)
    return {"acc": acc, "f1": f1, "acc_and_f1": (acc + f1) / 2}


def pearson_and_spearman(preds, labels) -> dict[str, float]:
    """Pearson and Spearman correlation and their mean (STS-B)."""
    pearson, spearman = pearson_corr(preds, labels), spearman_corr(preds, labels)
    return {"pearson": pearson, "spearmanr": spearman, "corr": (pearson + spearman) / 2}


def mcc(preds, labels) -> dict[str, float]:
    return {"mcc": matthews_corrcoef(preds, labels)}


def mnli_matched_acc(preds, labels) -> dict[str, float]:
    return {"mnli/acc": accuracy(preds, labels)}


def mnli_mismatched_acc(preds, labels) -> dict[str, float]:
    return {"mnli-mm/acc": accuracy(preds, labels)}


# ----------------------------------------------------------------------------- the table

@dataclass(frozen=True)
class GlueTask:
    """One task: its name, label strings (None for regression), output mode and metrics."""

    name: str
    labels: tuple[str, ...] | None
    output_mode: str  # CLASSIFICATION or REGRESSION
    metric_fn: MetricFn
    main_metric: str

    @property
    def num_labels(self) -> int:
        """Width of the classifier head: one output for regression (HF's `num_labels=1`)."""
        return 1 if self.labels is None else len(self.labels)

    @property
    def id2label(self) -> dict[int, str]:
        """HF config field; a regression head keeps HF's default name for its one output."""
        if self.labels is None:
            return {0: "LABEL_0"}
        return dict(enumerate(self.labels))

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in self.id2label.items()}

    def compute_metrics(self, preds, labels) -> dict[str, float]:
        """This task's metrics of predictions (class ids, or floats for regression) against
        labels; class ids outside the label list are an error naming the task."""
        if self.output_mode == CLASSIFICATION:
            for name, values in (("preds", preds), ("labels", labels)):
                a = np.asarray(values)
                if a.size and np.issubdtype(a.dtype, np.number):
                    bad = a[(a < 0) | (a >= self.num_labels)]
                    if bad.size:
                        raise ValueError(f"{self.name}: {name} holds class id {bad[0].item()!r} "
                                         f"outside 0..{self.num_labels - 1} "
                                         f"({', '.join(self.labels)})")
        return self.metric_fn(preds, labels)


_BINARY = ("0", "1")
_NLI2 = ("entailment", "not_entailment")

GLUE_TASKS: dict[str, GlueTask] = {
    task.name: task
    for task in (
        GlueTask("cola", _BINARY, CLASSIFICATION, mcc, "mcc"),
        GlueTask("sst-2", _BINARY, CLASSIFICATION, simple_accuracy, "acc"),
        GlueTask("mrpc", _BINARY, CLASSIFICATION, acc_and_f1, "acc_and_f1"),
        GlueTask("sts-b", None, REGRESSION, pearson_and_spearman, "corr"),
        GlueTask("qqp", _BINARY, CLASSIFICATION, acc_and_f1, "acc_and_f1"),
        GlueTask("mnli", ("contradiction", "entailment", "neutral"), CLASSIFICATION,
                 mnli_matched_acc, "mnli/acc"),
        GlueTask("mnli-mm", ("contradiction", "entailment", "neutral"), CLASSIFICATION,
                 mnli_mismatched_acc, "mnli-mm/acc"),
        GlueTask("qnli", _NLI2, CLASSIFICATION, simple_accuracy, "acc"),
        GlueTask("rte", _NLI2, CLASSIFICATION, simple_accuracy, "acc"),
        GlueTask("wnli", _BINARY, CLASSIFICATION, simple_accuracy, "acc"),
    )
}

# Other spellings in use: GLUE's directory names (SST-2, STS-B), the `datasets`/`evaluate`
# config names (sst2, stsb, mnli_matched, mnli_mismatched) and "-m" for matched.
_ALIASES = {
    "sst2": "sst-2",
    "stsb": "sts-b",
    "mnli-m": "mnli",
    "mnli_matched": "mnli",
    "mnli_mismatched": "mnli-mm",
}


def get_task(name: str) -> GlueTask:
    """The GLUE task called `name` (any case; "sst2", "stsb", "mnli_matched", ... accepted)."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in GLUE_TASKS:
        raise ValueError(f"unknown GLUE task {name!r}; known tasks: {', '.join(GLUE_TASKS)}")
    return GLUE_TASKS[key]


def custom_task(name: str, labels: Sequence[str] | None) -> GlueTask:
    """A user's own task: classification over `labels` scored by accuracy, or, with
    `labels=None`, regression scored as STS-B (Pearson, Spearman and their mean)."""
    if labels is None:
        return GlueTask(name, None, REGRESSION, pearson_and_spearman, "corr")
    labels = tuple(str(label) for label in labels)
    if len(labels) < 2:
        raise ValueError(f"task {name!r}: a classification task needs at least 2 labels, "
                         f"got {list(labels)}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"task {name!r}: duplicate labels in {list(labels)}")
    return GlueTask(name, labels, CLASSIFICATION, simple_accuracy, "acc")


def glue_compute_metrics(task_name: str, preds, labels) -> dict[str, float]:
    """HF's `glue_compute_metrics(task_name, preds, labels)`: the metrics dict of a GLUE task."""
    return get_task(task_name).compute_metrics(preds, labels)


def predictions_from_logits(task: GlueTask, logits) -> np.ndarray:
    """What HF's `run_glue.py` scores: argmax over classes, or the single regression output.

    logits: (N, num_labels) for classification; (N, 1) or (N,) for regression.
    """
    logits = np.asarray(logits)
    if task.output_mode == REGRESSION:
        if logits.ndim == 2 and logits.shape[1] == 1:
            return logits[:, 0]
        if logits.ndim == 1:
            return logits
        raise ValueError(f"{task.name}: regression logits must be (N, 1) or (N,), "
                         f"got {logits.shape}")
    if logits.ndim != 2 or logits.shape[1] != task.num_labels:
        raise ValueError(f"{task.name}: logits must be (N, {task.num_labels}), got {logits.shape}")
    return np.argmax(logits, axis=1)


def majority_baseline(task: GlueTask, train_labels, eval_labels) -> dict[str, float]:
    """The task's metrics for the constant predictor fit on the training labels: the most
    frequent training class (the lowest id among ties) or, for regression, the training mean
    (whose correlations are NaN: a constant has none). Print it next to every result."""
    train = np.asarray(train_labels)
    evaluated = np.asarray(eval_labels)
    if train.size == 0:
        raise ValueError(f"{task.name}: no training labels to fit the majority baseline on")
    if task.output_mode == REGRESSION:
        constant = np.full(evaluated.shape, float(np.mean(train.astype(np.float64))))
    else:
        train_ids = train.astype(np.int64)
        if train_ids.min() < 0:
            raise ValueError(f"{task.name}: negative class id {train_ids.min()} in train labels")
        constant = np.full(evaluated.shape, int(np.argmax(np.bincount(train_ids))))
    return task.compute_metrics(constant, evaluated)
