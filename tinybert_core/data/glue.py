"""Sentence and sentence-pair task files: the nine GLUE tasks in their official layouts, and a
user's own task as TSV, CSV or JSONL.

Every reader returns `TaskExample`s (text_a, text_b, label, and the file line they came from);
`check_labels` then maps labels to ids through the task's label table (`evaluation/glue.py`,
the one table of task names and labels) and raises on the first label outside it.

GLUE layouts (the files of the GLUE benchmark download, as HF's and Google's processors read
them: UTF-8 with an optional byte-order mark, tab-separated, no quoting):

    task      text_a column   text_b column   label column   header
    cola      4th             -               2nd            none (test.tsv: index, sentence)
    sst-2     sentence        -               label          yes
    mrpc      #1 String       #2 String       Quality        yes
    sts-b     sentence1       sentence2       score          yes
    qqp       question1       question2       is_duplicate   yes
    mnli(-mm) sentence1       sentence2       gold_label     yes
    qnli      question        sentence        label          yes
    rte, wnli sentence1       sentence2       label          yes

A test file has no label column (labels are then None). Every row must have as many fields as
the header (CoLA: 4); a row that does not is an error naming the file and the line (HF's QQP
reader skips such rows silently; we do not).

The generic format, for a task of your own or a GLUE task in another layout: a header (TSV,
CSV) or JSON keys (JSONL, one object a line) naming `sentence` or `sentence1`, optionally
`sentence2`, and `label` (absent in a file to predict). A `.tsv` file whose header lacks the
task's GLUE columns is read this way, so e.g. `index sentence1 sentence2 label` (RTE's layout,
the shared vitaminc/epistemic files) works for any task.
"""
from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinybert_core.evaluation.glue import REGRESSION, GlueTask


@dataclass(frozen=True)
class TaskExample:
    """One example: its texts, its label as written in the file (None when unlabelled), and
    where it came from (1-based line number, for error messages)."""

    text_a: str
    text_b: str | None
    label: Any
    line: int


@dataclass(frozen=True)
class GlueLayout:
    """Where a GLUE task's columns are: header names, and for a headerless file positions."""

    text_a: str
    text_b: str | None
    label: str
    headerless: tuple[int, int, int] | None = None   # (columns, text_a index, label index)


GLUE_LAYOUTS: dict[str, GlueLayout] = {
    "cola": GlueLayout("sentence", None, "label", headerless=(4, 3, 1)),
    "sst-2": GlueLayout("sentence", None, "label"),
    "mrpc": GlueLayout("#1 String", "#2 String", "Quality"),
    "sts-b": GlueLayout("sentence1", "sentence2", "score"),
    "qqp": GlueLayout("question1", "question2", "is_duplicate"),
    "mnli": GlueLayout("sentence1", "sentence2", "gold_label"),
    "mnli-mm": GlueLayout("sentence1", "sentence2", "gold_label"),
    "qnli": GlueLayout("question", "sentence", "label"),
    "rte": GlueLayout("sentence1", "sentence2", "label"),
    "wnli": GlueLayout("sentence1", "sentence2", "label"),
}
GENERIC = GlueLayout("sentence1", "sentence2", "label")
FORMATS = {".tsv": "tsv", ".txt": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}


def read_task_file(path: str | Path, task_name: str) -> list[TaskExample]:
    """The examples of a file of task `task_name` (a GLUE name picks its layout), in file
    order; the format comes from the extension (.tsv/.txt, .csv, .jsonl/.json). Raises
    ValueError naming the file (and line) when the file is empty, lacks a text column, or has
    a row of the wrong width."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    kind = FORMATS.get(path.suffix.lower(), "tsv")
    if kind == "jsonl":
        examples = _read_jsonl(path)
    else:
        rows = _read_rows(path, kind)
        examples = _from_rows(path, rows, GLUE_LAYOUTS.get(task_name) if kind == "tsv" else None)
    if not examples:
        raise ValueError(f"{path}: no examples (the file holds no data rows)")
    return examples


def _read_rows(path: Path, kind: str) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank line."""
    kw: dict[str, Any] = ({"delimiter": "\t", "quoting": csv.QUOTE_NONE} if kind == "tsv"
                          else {})
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, **kw)
            return [(reader.line_num, row) for row in reader if row and any(row)]
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e})") from e
    except csv.Error as e:
        raise ValueError(f"{path}: not a valid {kind.upper()} file: {e}") from e


def _from_rows(path: Path, rows: list[tuple[int, list[str]]],
               layout: GlueLayout | None) -> list[TaskExample]:
    if not rows:
        return []
    first = rows[0][1]
    if layout is not None and layout.headerless and not {"index", "sentence",
                                                           "sentence1"} & set(first):
        width, a, lab = layout.headerless
        return [TaskExample(fields[a], None, fields[lab], line)
                for line, fields in _checked(path, rows, width, "columns (CoLA's layout: "
                                             "source, label, author's mark, sentence)")]
    header, body = first, rows[1:]
    if layout is None or layout.text_a not in header or (
            layout.text_b is not None and layout.text_b not in header) or (
            layout.label not in header and "label" in header):
        layout = _generic_layout(path, header)
    col = {name: i for i, name in enumerate(header)}
    a = col[layout.text_a]
    b = col[layout.text_b] if layout.text_b in col else None
    lab = col.get(layout.label)
    return [TaskExample(fields[a], fields[b] if b is not None else None,
                        fields[lab] if lab is not None else None, line)
            for line, fields in _checked(path, body, len(header), "columns (the header's)")]


def _checked(path: Path, rows: Sequence[tuple[int, list[str]]], width: int,
             what: str) -> Sequence[tuple[int, list[str]]]:
    for line, fields in rows:
        if len(fields) != width:
            raise ValueError(f"{path}, line {line}: expected {width} {what}, got "
                             f"{len(fields)}")
    return rows


def _generic_layout(path: Path, header: Sequence[str]) -> GlueLayout:
    """The generic columns: sentence or sentence1, optionally sentence2, optionally label."""
    if "sentence1" in header:
        a = "sentence1"
    elif "sentence" in header:
        a = "sentence"
    else:
        raise ValueError(f"{path}: the header {list(header)} names no text column; expected "
                         f"'sentence' or 'sentence1' (plus optional 'sentence2' and 'label'), "
                         f"or the task's GLUE layout")
    return GlueLayout(a, "sentence2" if "sentence2" in header else None, "label")


def _read_jsonl(path: Path) -> list[TaskExample]:
    examples = []
    try:
        with open(path, encoding="utf-8-sig") as f:
            for line, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}, line {line}: not valid JSON: {e}") from None
                if not isinstance(obj, dict):
                    raise ValueError(f"{path}, line {line}: expected a JSON object, got "
                                     f"{type(obj).__name__}")
                a = obj.get("sentence1", obj.get("sentence"))
                b = obj.get("sentence2")
                if not isinstance(a, str) or not (b is None or isinstance(b, str)):
                    raise ValueError(f"{path}, line {line}: needs a string 'sentence' or "
                                     f"'sentence1' (and optionally 'sentence2'), got keys "
                                     f"{sorted(obj)}")
                examples.append(TaskExample(a, b, obj.get("label"), line))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e})") from e
    return examples


# ----------------------------------------------------------------------------- labels

def check_labels(path: str | Path, examples: Sequence[TaskExample], task: GlueTask,
                 label2id: dict[str, int] | None = None) -> np.ndarray:
    """Label ids (int64, classification) or targets (float32, regression) of `examples`.

    `label2id` (a fine-tuned model's, which wins over the task table) defaults to the task's.
    The first missing label, label outside the set, or non-numeric / non-finite regression
    target is a ValueError naming the file, the line and the allowed labels.
    """
    if task.output_mode == REGRESSION:
        out = np.empty(len(examples), np.float32)
        for i, ex in enumerate(examples):
            try:
                value = float(_present(path, ex))
            except (TypeError, ValueError):
                raise ValueError(f"{path}, line {ex.line}: the label {ex.label!r} is not a "
                                 f"number (task {task.name} is a regression)") from None
            if not math.isfinite(value):
                raise ValueError(f"{path}, line {ex.line}: the label {ex.label!r} is not finite")
            out[i] = value
        return out
    mapping = label2id if label2id is not None else task.label2id
    ids = np.empty(len(examples), np.int64)
    for i, ex in enumerate(examples):
        label = str(_present(path, ex))
        if label not in mapping:
            raise ValueError(f"{path}, line {ex.line}: label {label!r} is not one of task "
                             f"{task.name}'s labels ({', '.join(mapping)})")
        ids[i] = mapping[label]
    return ids


def _present(path: str | Path, ex: TaskExample) -> Any:
    if ex.label is None:
        raise ValueError(f"{path}, line {ex.line}: no label (the file needs a label column "
                         f"to train or evaluate on)")
    return ex.label


def labels_in(examples: Sequence[TaskExample]) -> list[str]:
    """The distinct labels of `examples`, sorted: a user task's label list when none is given
    (as HF's run_glue does for its own files)."""
    return sorted({str(ex.label) for ex in examples if ex.label is not None})
